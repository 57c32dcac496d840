"""What the app's input files are, probed once each (``ProbeCache``): an upload was probed twice on arrival (its
description, and whether browsers can play it, for *Latest frame*), and again at every change of a setting its
description depends on (Frame stride, Max frames, the models). A probe runs ffprobe twice (the header, then every
packet counted): 50-80 ms for a 48- to 900-frame clip here, more for a long one. No gradio here.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path

from uvosam.config import VideoLimits
from uvosam.video import VideoInfo, check_limits, probe

ProbeKey = tuple[str, int, int]


class ProbeCache:
    """``probe`` results of the last ``size`` video files asked about, each kept under its path, size and
    modification time: a file replaced at the same path is probed again. Thread-safe (the page's small
    events run in worker threads). A file ``probe`` refuses is not kept: probed again when asked again (most
    refusals come from its header, before its frames are counted: an over-sized frame, not a video)."""

    def __init__(self, size: int = 64) -> None:
        self.size = size
        self._infos: OrderedDict[ProbeKey, VideoInfo] = OrderedDict()
        self._probing: dict[ProbeKey, threading.Lock] = {}  # the files being probed now
        self._lock = threading.Lock()

    def info(
        self,
        path: str | Path,
        *,
        limits: VideoLimits | None = None,
        stride: int = 1,
        max_frames: int | None = None,
    ) -> VideoInfo:
        """``probe(path, limits=limits, stride=stride, max_frames=max_frames)``, from the file's kept probe when
        there is one. The frame and duration limits are checked on the exact frame count (``probe`` checks the
        container's estimate first, to refuse a long file before counting its frames; every upload was counted
        anyway, by the check of whether browsers can play it).

        Raises:
            as ``probe``.
        """
        key = _key(path)
        if key is None:
            info = probe(path, limits=limits, max_frames=1)  # says why there is no file
        else:
            # one probe per file even when asked at once: an upload's two change events run in two threads
            with self._lock:
                probing = self._probing.setdefault(key, threading.Lock())
            with probing:
                info = self._kept(key) or self._probe(key, path, limits)
        check_limits(info, limits, stride=stride, max_frames=max_frames)
        return info

    def _kept(self, key: ProbeKey) -> VideoInfo | None:
        with self._lock:
            info = self._infos.get(key)
            if info is not None:
                self._infos.move_to_end(key)
            return info

    def _probe(self, key: ProbeKey, path: str | Path, limits: VideoLimits | None) -> VideoInfo:
        try:
            # frame and duration limits: checked by the caller, for its stride and max_frames
            info = probe(path, limits=limits, max_frames=1)
            self._keep(key, info)
            return info
        finally:
            with self._lock:
                self._probing.pop(key, None)

    def _keep(self, key: ProbeKey, info: VideoInfo) -> None:
        with self._lock:
            self._infos[key] = info
            while len(self._infos) > self.size:
                self._infos.popitem(last=False)


def _key(path: str | Path) -> ProbeKey | None:
    """(absolute path, size, modification time in ns) of a file or folder; None if there is none (``probe`` says
    why)."""
    try:
        stat = Path(path).stat()
    except OSError:
        return None
    return str(Path(path).absolute()), stat.st_size, stat.st_mtime_ns
