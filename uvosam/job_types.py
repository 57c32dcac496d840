"""What a job takes and gives: ``JobOptions`` (what one run reads and writes), ``JobProgress`` (one step of it, as
``run_job`` / ``rerender_iter`` yield them) and ``JobResult`` (everything a finished run produced).

Plain frozen dataclasses (``uvosam.job`` runs the jobs); the export's own options and result are in
``uvosam.export_types``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from uvosam.config import (
    VideoLimits,
    check_count,
    check_fields,
    check_flag,
    check_positive,
    check_type,
    is_integer,
)
from uvosam.errors import InputError
from uvosam.export_types import ExportOptions, ExportResult
from uvosam.render import STYLES
from uvosam.types import TrackSummary
from uvosam.video import VideoInfo
from uvosam.video_fit import check_fit_side


@dataclass(frozen=True)
class JobOptions:
    """What one run reads and writes.

    Attributes:
        stride, max_frames: which source frames are processed (``iter_frames`` semantics).
        limits: checked before decoding.
        chunk_seconds: also cut the overlay into chunks of about this many seconds (streaming); None
            = no chunks.
        output_max_side: longest side of the overlay video (None = the source size; at least 2), which is then
            scaled to even sides, none over it (``job_outputs.overlay_size``). Masks/exports keep the frames' size.
        show_boxes, show_labels: boxes and tags on the video (every style but ``"matte"``).
        export: which export files are written (and zipped).
        cache: keep a per-frame mask cache so the outputs can be re-rendered for a subset of tracks
            (``rerender``).
        video_name: name used in export paths and JSON (default: the input file's stem, or the frame folder's
            whole name: ``seq.v1/`` is ``seq.v1``).
        style: the output video's look, one of ``uvosam.render.STYLES``: ``"overlay"`` (colour masks),
            ``"cutout"`` (objects on black), ``"blur"`` / ``"gray"`` (blurred / greyscale background) or
            ``"matte"`` (white objects on black); the video is ``<video>_<style>.mp4``.
        audio: give that video the source file's sound (its first audio stream, cut to the video's frames:
            ``uvosam.video_audio``); False: silent. A frame folder, a file without audio, the chunks and the alpha
            WebM have none; a re-render has it while the source file it read is still where it was.
        fit_side: decode frames with a side over this many pixels scaled down to fit it (aspect kept, even sides:
            a 2560x1440 clip at 1920 is read at 1920x1080; ``uvosam.video_fit``); everything the run makes (masks,
            video, exports, mask cache) has that size, and ``run.json`` records both. None: the source size.
            ``limits`` apply to the source's size.
    """

    stride: int = 1
    max_frames: int | None = None
    limits: VideoLimits = field(default_factory=VideoLimits)
    chunk_seconds: float | None = None
    output_max_side: int | None = None
    show_boxes: bool = True
    show_labels: bool = True
    export: ExportOptions = field(default_factory=ExportOptions)
    cache: bool = False
    video_name: str | None = None
    style: str = "overlay"  # last: code that passes yesterday's fields by position keeps working
    audio: bool = True  # after it, for the same reason
    fit_side: int | None = None

    def __post_init__(self) -> None:
        if self.style not in STYLES:
            raise InputError(f"JobOptions: style must be one of {STYLES}; got {self.style!r}")
        check_fields(self, check_count, "stride", allow_none=False)
        check_fields(self, check_count, "max_frames")
        check_fields(self, check_positive, "chunk_seconds")
        check_fields(self, check_flag, "show_boxes", "show_labels", "cache", "audio")
        side = self.output_max_side
        if side is not None and (not is_integer(side) or side < 2):
            raise InputError(
                "JobOptions: output_max_side must be at least 2 (an integer; an encoded video's sides are even) "
                f"or None (the source size); got {side!r}"
            )
        if side is not None:
            object.__setattr__(self, "output_max_side", int(side))
        object.__setattr__(self, "fit_side", check_fit_side(self.fit_side, "JobOptions: fit_side"))
        check_type("JobOptions.limits", self.limits, VideoLimits, "VideoLimits(max_frames=900)")
        check_type("JobOptions.export", self.export, ExportOptions, "ExportOptions(davis=True)")
        if self.video_name is not None and not isinstance(self.video_name, str):
            raise TypeError(
                f"JobOptions.video_name must be a str or None (the input's name); got {self.video_name!r}"
            )


SOURCE_GONE = "the source video is no longer there"
"""``JobResult.silent_because`` of a re-render whose run's source file (with sound) has since been moved or deleted."""
SOURCE_REPLACED = "the file at the source video's path is not the one the run read"
"""``JobResult.silent_because`` of a re-render whose run's source path now holds another file: its sound would not
match the frames."""


@dataclass(frozen=True)
class JobResult:
    """Everything a finished run produced (all under the job's ``work_dir``).

    ``silent_because``: why the video has no sound although its source had (``SOURCE_GONE``, ``SOURCE_REPLACED``;
    decided by ``job_outputs.source_sound``); None when it has the sound, or its source had none, or
    ``JobOptions.audio`` was off.
    """

    info: VideoInfo
    video_name: str
    overlay_mp4: Path  # the output video, ``<video>_<style>.mp4`` (in ``JobOptions.style``, overlay by default)
    zip_path: Path
    export: ExportResult
    tracks: tuple[TrackSummary, ...]
    num_frames: int
    seconds: float
    cache_dir: Path | None
    silent_because: str | None = None

    @property
    def fps(self) -> float:
        return self.num_frames / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True)
class JobProgress:
    """One step of a run.

    Attributes:
        frames_done, frames_total: processed / expected output frames.
        elapsed_s: seconds since the run started.
        preview: the latest overlay frame ((h, w, 3) uint8 RGB), or None.
        chunk: path of a streaming chunk completed at this step, or None.
        result: set on the last update only.
        objects: objects (tracks) in the frame just processed; tracks_so_far: distinct tracks seen up to it (on the
            last update: those of the last frame, and every track of the run).
    """

    frames_done: int
    frames_total: int
    elapsed_s: float
    preview: np.ndarray | None = None
    chunk: Path | None = None
    result: JobResult | None = None
    objects: int = 0
    tracks_so_far: int = 0

    @property
    def eta_s(self) -> float | None:
        if self.frames_done == 0:
            return None
        return self.elapsed_s / self.frames_done * max(0, self.frames_total - self.frames_done)
