"""A job's per-frame outputs: the output video and the exports it writes frame by frame, opened, drawn into and
discarded as one.

``uvosam.job_loop``'s output loop opens them with ``open_outputs`` (the exports, then the video writer, which starts
ffmpeg; if either cannot start, nothing is left behind), draws each frame with ``render_frame`` at the size
``overlay_size`` gives, and on failure or cancellation deletes what they had written with ``discard_outputs``
(video, chunks, exports and the mask cache), so no partial output passes for a complete one. The video gets the
source's sound that ``source_sound`` finds (and why there is none, when the source had sound).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np

from uvosam.cleanup import best_effort
from uvosam.export import ExportWriter
from uvosam.job_plan import JobPlan
from uvosam.job_staging import EXPORT_FOLDER
from uvosam.job_types import SOURCE_GONE, SOURCE_REPLACED, JobOptions
from uvosam.mask_cache import MaskCache
from uvosam.render import render
from uvosam.types import FrameResult
from uvosam.video import VideoInfo
from uvosam.video_audio import AudioSource
from uvosam.video_fit import even_size_within
from uvosam.video_writer import VideoWriter

logger = logging.getLogger(__name__)


def overlay_size(width: int, height: int, max_side: int | None) -> tuple[int, int]:
    """The output video's ``(width, height)``: the source's, or scaled down so that the encoded video (whose sides are
    even: ``VideoWriter`` pads an odd one) has no side over ``max_side``.

    A scaled size has even sides (nothing to pad): the longest is ``max_side`` rounded down to even, the other the even
    number closest to the source's aspect (at least 2). E.g. 640x360 at ``max_side=101`` is 100x56.
    """
    if max_side is None or max(width + width % 2, height + height % 2) <= max_side:
        return width, height
    return even_size_within(width, height, max_side)


def source_sound(
    info: VideoInfo, options: JobOptions, *, replaced: bool = False
) -> tuple[AudioSource | None, str | None]:
    """The sound for the output video: the first audio stream of the video file ``info`` describes; and why there
    is none although that file had sound (``JobResult.silent_because``), else None.

    No sound and no reason with ``options.audio`` off or for a file without audio or a frame folder (no
    ``audio_codec``). No sound, with its reason, for a re-render's source that is no longer there (moved or
    deleted since its run: ``SOURCE_GONE``) or that is another file now (``replaced``, ``JobPlan.source_replaced``:
    ``SOURCE_REPLACED``).
    """
    if not options.audio or not info.audio_codec:
        return None, None
    if replaced:
        return None, SOURCE_REPLACED
    if not info.path.is_file():
        logger.info("%s is no longer there: the video is made without its sound", info.path)
        return None, SOURCE_GONE
    return AudioSource(info.path, info.audio_codec, info.start_s), None


def open_outputs(
    plan: JobPlan,
    options: JobOptions,
    cache: MaskCache | None,
    overlay_path: Path,
    size: tuple[int, int],
    merge: Mapping[int, int] | None,
) -> tuple[VideoWriter, ExportWriter, str | None]:
    """The overlay writer, the exporter and why the video is silent although its source had sound
    (``source_sound``); if either cannot be made, nothing is left behind (the writer, which starts ffmpeg, comes
    last)."""
    exporter = None
    try:
        exporter = ExportWriter(
            plan.work_dir / EXPORT_FOLDER,
            video_name=plan.video_name,
            class_names=plan.class_names,
            height=plan.info.height,
            width=plan.info.width,
            frame_names=plan.frame_names,
            options=options.export,
            fps=plan.fps,
            merge=merge,
            provenance=plan.record,
            sample_aspect=plan.info.sample_aspect,
        )
        audio, silent_because = source_sound(plan.info, options, replaced=plan.source_replaced)
        writer = VideoWriter(
            overlay_path,
            fps=plan.fps,
            width=size[0],
            height=size[1],
            chunk_seconds=options.chunk_seconds,
            audio=audio,
            sample_aspect=plan.info.sample_aspect,
        )
    except BaseException:
        discard = [] if exporter is None else [exporter.discard]
        best_effort("opening a run's outputs", *discard, *_cache_clear(cache))
        raise
    return writer, exporter, silent_because


def discard_outputs(writer: VideoWriter, exporter: ExportWriter, cache: MaskCache | None) -> None:
    """Delete what a run that did not finish wrote, whenever it failed: while writing frames, or after (the video
    and exports closed, e.g. zipping them). Only this run's files go: the video, chunks and exports it wrote and
    its cache (``run_job`` starts a fresh one). Each is tried; one that fails is logged as a warning
    (``best_effort``): the error that ended the run is the one raised."""
    best_effort("a run that did not finish", writer.discard, exporter.discard, *_cache_clear(cache))


def _cache_clear(cache: MaskCache | None) -> list[Callable[[], None]]:
    """The clean-up step of ``cache``: none without one."""
    return [] if cache is None else [cache.clear]


def render_frame(
    class_names: Sequence[str],
    result: FrameResult,
    options: JobOptions,
    size: tuple[int, int],
    notes: Mapping[int, str],
) -> np.ndarray:
    """One frame of the output video: ``result`` drawn in ``options.style`` at ``size`` (width, height), as a
    ``(height, width, 3)`` uint8 RGB array; ``notes``: tag notes by track id (``uvosam.reappearance``)."""
    out_size = None if size == (result.image.shape[1], result.image.shape[0]) else size
    return render(
        result,
        style=options.style,
        class_names=list(class_names),
        show_boxes=options.show_boxes,
        show_labels=options.show_labels,
        out_size=out_size,
        tag_notes=notes,
    )
