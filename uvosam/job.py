"""One video, end to end: decode -> track + segment -> overlay video (+ ~1 s chunks) -> exports -> zip.

``run_job`` is a generator used by the CLI (with a progress bar) and by the Gradio app (which streams the chunks):
it yields a ``JobProgress`` after every frame and a last one carrying the ``JobResult``. Everything it writes goes
under ``work_dir``; per-frame memory is flat in video length (frames are decoded, segmented, rendered, encoded and
exported one at a time). Closing the generator (a cancelled Gradio job) stops ffmpeg and leaves no half-written
video behind.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from uvosam.config import VideoLimits
from uvosam.export import ExportOptions, ExportResult, ExportWriter, make_zip
from uvosam.mask_cache import MaskCache
from uvosam.pipeline import UVOSAM
from uvosam.prefetch import prefetch
from uvosam.render import overlay
from uvosam.types import FrameResult, TrackSummary
from uvosam.video import VideoInfo, iter_frames, probe
from uvosam.video_writer import VideoWriter

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class JobOptions:
    """What one run reads and writes.

    Attributes:
        stride, max_frames: which source frames are processed (``iter_frames`` semantics).
        limits: checked before decoding.
        chunk_seconds: also cut the overlay into chunks of about this many seconds (streaming); None = no chunks.
        output_max_side: longest side of the overlay video (None = the source size). Masks/exports keep the
            source size.
        show_boxes, show_labels: overlay drawing.
        export: which export files are written (and zipped).
        cache: keep a per-frame mask cache so the outputs can be re-rendered for a subset of tracks (``rerender``).
        video_name: name used in export paths and JSON (default: the input's file/folder stem).
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


@dataclass(frozen=True)
class JobResult:
    """Everything a finished run produced (all under the job's ``work_dir``)."""

    info: VideoInfo
    video_name: str
    overlay_mp4: Path
    zip_path: Path
    export: ExportResult
    tracks: tuple[TrackSummary, ...]
    num_frames: int
    seconds: float
    cache_dir: Path | None

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
    """

    frames_done: int
    frames_total: int
    elapsed_s: float
    preview: np.ndarray | None = None
    chunk: Path | None = None
    result: JobResult | None = None

    @property
    def eta_s(self) -> float | None:
        if self.frames_done == 0:
            return None
        return self.elapsed_s / self.frames_done * max(0, self.frames_total - self.frames_done)


def _overlay_size(width: int, height: int, max_side: int | None) -> tuple[int, int]:
    if max_side is None or max(width, height) <= max_side:
        return width, height
    scale = max_side / max(width, height)
    return max(2, round(width * scale)), max(2, round(height * scale))


def _safe_name(name: str) -> str:
    cleaned = "".join(c if c.isalnum() or c in "-_." else "_" for c in name).strip("._")
    return cleaned[:80] or "video"


def run_job(
    pipe: UVOSAM, source: str | Path, work_dir: str | Path, options: JobOptions | None = None
) -> Iterator[JobProgress]:
    """Process one video (file or frame folder) into ``work_dir``.

    Raises (at the first ``next``): ``FileNotFoundError``, ``VideoReadError``, ``VideoLimitError`` for bad input.
    """
    options = options or JobOptions()
    start = time.perf_counter()
    info = probe(source, limits=options.limits, stride=options.stride, max_frames=options.max_frames)
    # decoding runs in a background thread, a few frames ahead of the models (memory stays bounded)
    frames = prefetch(iter_frames(source, stride=options.stride, max_frames=options.max_frames, limits=None))
    total = info.num_output_frames(stride=options.stride, max_frames=options.max_frames)
    names = info.frame_names[:: options.stride]
    try:
        yield from _run(pipe, info, frames, total, names, Path(work_dir), options, start)
    finally:
        frames.close()  # stops the decoder now, also when the consumer stops early


def _run(
    pipe: UVOSAM,
    info: VideoInfo,
    frames: Iterable[np.ndarray],
    total: int,
    names: tuple[str, ...],
    work_dir: Path,
    options: JobOptions,
    start: float,
) -> Iterator[JobProgress]:
    video_name = _safe_name(options.video_name or info.path.stem)
    work_dir.mkdir(parents=True, exist_ok=True)
    out_w, out_h = _overlay_size(info.width, info.height, options.output_max_side)
    fps = info.fps / options.stride
    overlay_path = work_dir / f"{video_name}_overlay.mp4"
    cache = MaskCache(work_dir / "cache", meta={"video_name": video_name}) if options.cache else None
    writer = VideoWriter(overlay_path, fps=fps, width=out_w, height=out_h, chunk_seconds=options.chunk_seconds)
    exporter = ExportWriter(
        work_dir / "export", video_name=video_name, class_names=pipe.class_names,
        height=info.height, width=info.width, frame_names=names, options=options.export,
    )  # fmt: skip
    done = 0
    with writer, exporter:
        for result in pipe(frames):
            preview = _render(pipe, result, options, (out_w, out_h))
            chunk = writer.write(preview)
            exporter.add(result)
            if cache is not None:
                cache.append(result)
            done += 1
            yield JobProgress(done, max(total, done), time.perf_counter() - start, preview, chunk)
        last_chunk = writer.close()
        export = exporter.close()
    zip_path = make_zip(export, work_dir / f"{video_name}_uvosam.zip")
    seconds = time.perf_counter() - start
    result = JobResult(
        info=info, video_name=video_name, overlay_mp4=overlay_path, zip_path=zip_path, export=export,
        tracks=export.tracks, num_frames=done, seconds=seconds, cache_dir=cache.root if cache else None,
    )  # fmt: skip
    logger.info("%s: %d frames, %d tracks, %.1f s (%.2f fps)", video_name, done, len(export.tracks), seconds,
                result.fps)  # fmt: skip
    yield JobProgress(done, done, seconds, None, last_chunk, result)


def _render(pipe: UVOSAM, result: FrameResult, options: JobOptions, size: tuple[int, int]) -> np.ndarray:
    out_size = None if size == (result.image.shape[1], result.image.shape[0]) else size
    return overlay(
        result, class_names=pipe.class_names, show_boxes=options.show_boxes,
        show_labels=options.show_labels, out_size=out_size,
    )  # fmt: skip
