"""Video decoding: raw RGB frames out of one ffmpeg process, with no helper thread.

``RgbDecoder`` runs the ffmpeg binary bundled with imageio-ffmpeg and reads ``rgb24`` frames of a
size the caller knows (``probe`` read it from the header) from its stdout, one frame in memory at a
time. Its stderr goes to a temporary file, so nothing has to drain it while frames are read.

Why not ``imageio_ffmpeg.read_frames``: it starts ffmpeg with ``preexec_fn=os.setpgrp``. With a
``preexec_fn``, Python forks and then runs Python code in the child (the interpreter's after-fork
clean-up, which clears the other threads' state, and the function itself) BEFORE the child closes
the descriptors it inherited. In a process with many threads (a Gradio server running several jobs,
torch's thread pools) that child can deadlock, and while it lives it holds a copy of every pipe the
parent had open: the H.264 encoders of other jobs then never see the end of their input, and the
thread that started the decoder waits forever for it to start (CPython's documentation says
``preexec_fn`` is not safe with threads). Here ffmpeg gets its own session with
``start_new_session`` (done in C between fork and exec, so Ctrl-C in a terminal still reaches
Python, not ffmpeg, as before; on Windows its own process group) and no Python code runs in the
child. The process is always reaped.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import numpy as np

from uvosam.ffmpeg_binary import ffmpeg_exe

if TYPE_CHECKING:
    from typing_extensions import Self  # typing.Self from Python 3.11

__all__ = ["DecodeError", "RgbDecoder"]

_EXIT_TIMEOUT_S = 30.0


class DecodeError(OSError):
    """ffmpeg's output ended inside a frame. The message ends with what ffmpeg said."""


def _own_group() -> dict[str, Any]:
    """``Popen``'s arguments that start ffmpeg where a console's Ctrl-C does not reach it: a session of its own on
    POSIX, a process group of its own on Windows (whose Ctrl-C reaches every process of the console)."""
    if sys.platform == "win32":
        return {"creationflags": subprocess.CREATE_NEW_PROCESS_GROUP}
    return {"start_new_session": True}


class RgbDecoder:
    """One ffmpeg process: ``path`` -> ``(height, width, 3)`` uint8 RGB frames, in stream order.

    Use as a context manager and iterate it once::

        with RgbDecoder(path, width=w, height=h, output_args=["-frames:v", "10"]) as frames:
            for frame in frames:
                ...

    ``width``/``height`` are the size of the frames ffmpeg outputs (the STORED size with
    ``-noautorotate``; ffmpeg scales a mid-stream size change back to the FIRST frame's size, which
    need not be the header's: pass ``-s WxH`` in ``output_args`` to make ffmpeg scale to yours).
    Leaving the block early kills ffmpeg; at the end of the stream the iteration waits for it to
    exit. Iteration raises ``DecodeError`` if the output stops inside a frame; a stream that simply
    ends early is for the caller to notice (``said()`` then gives ffmpeg's reason, if any).
    """

    def __init__(
        self,
        path: Path,
        *,
        width: int,
        height: int,
        input_args: Sequence[str] = (),
        output_args: Sequence[str] = (),
    ) -> None:
        self.path = path
        self.width, self.height = width, height
        cmd = [
            ffmpeg_exe(),
            "-hide_banner",
            "-nostdin",
            "-loglevel",
            "error",
            *input_args,
            "-i",
            str(path),
            *output_args,
            "-f",
            "rawvideo",
            "-pix_fmt",
            "rgb24",
            "-",
        ]
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - ffmpeg's stderr, closed in close()
        self._proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            **_own_group(),
        )

    def __iter__(self) -> Iterator[np.ndarray]:
        size = self.width * self.height * 3
        while data := self._proc.stdout.read(size):
            if len(data) < size:
                raise DecodeError(
                    f"ffmpeg's output ended inside a frame ({len(data)} of {size} bytes). "
                    f"ffmpeg said: {self.said() or '(nothing)'}"
                )
            yield np.frombuffer(data, np.uint8).reshape(self.height, self.width, 3)
        try:
            self._proc.wait(timeout=_EXIT_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self._proc.kill()

    def said(self) -> str:
        """The last of what ffmpeg wrote to stderr (its errors); "" if nothing."""
        self._stderr.seek(0)
        text = self._stderr.read().decode("utf-8", "replace").strip()
        return text[-2000:]

    def close(self) -> None:
        """Kill ffmpeg if it still runs, reap it and close its pipes. Calling it again does nothing."""
        if self._proc.poll() is None:
            self._proc.kill()
        self._proc.wait()
        self._proc.stdout.close()
        self._stderr.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
