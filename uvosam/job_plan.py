"""A job's plan: what its output loop needs to know about the video, however the results are made.

``JobPlan`` is built by ``uvosam.job.run_job`` from the probed video, or by ``rerender_iter`` from a mask cache's
meta: ``cache_meta`` is what a run keeps there (the plan, the stride, how it drew its video, the provenance record),
``info_from_meta`` reads its ``VideoInfo`` back and ``run_output`` how it drew its video (``uvosam rerender``'s
defaults). ``video_record`` is the plan's ``video`` entry of ``run.json`` (``uvosam.provenance``); ``job_name`` is
how a job names its output files (``portable_names.safe_name``).
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import MISSING, asdict, dataclass
from pathlib import Path
from typing import Any

from uvosam.job_types import JobOptions
from uvosam.mask_cache import damaged
from uvosam.portable_names import safe_name
from uvosam.video import VideoInfo


def drawing(options: JobOptions) -> dict[str, Any]:
    """How ``options`` draw the video, and whether it has sound (``JobOptions`` / ``ExportOptions`` fields,
    ``export.`` dropped): what a run keeps in its cache (``cache_meta``) and ``uvosam rerender`` draws again by default
    (``run_output``)."""
    return {
        "style": options.style,
        "output_max_side": options.output_max_side,
        "show_boxes": options.show_boxes,
        "show_labels": options.show_labels,
        "alpha_webm": options.export.alpha_webm,
        "audio": options.audio,
    }


@dataclass(frozen=True)
class JobPlan:
    """What a job's output loop (``uvosam.job_loop``) needs to know about the video, whatever the results come
    from."""

    info: VideoInfo
    video_name: str
    frame_names: tuple[str, ...]  # one per output frame (after stride)
    total: int  # expected output frames
    fps: float  # output frame rate
    class_names: tuple[str, ...]
    work_dir: Path
    start: float  # perf_counter() at the start of the run
    record: dict[str, Any] | None = None  # what made the results (uvosam.provenance), for run.json
    # a re-render whose source path holds another file than its run read: its sound would not match the frames
    source_replaced: bool = False


def job_name(info: VideoInfo, video_name: str | None = None) -> str:
    """A run's ``JobPlan.video_name``, which names its files: ``video_name`` (``JobOptions.video_name``), else the
    input's stem (a frame folder's whole name), as ``safe_name`` makes it."""
    return safe_name(video_name or (info.path.name if info.is_folder else info.path.stem))


def video_record(plan: JobPlan) -> dict[str, Any]:
    """The ``video`` entry of ``run.json``: the input by its own name only (no server or home folders), the frames'
    size and the source's (the same unless ``JobOptions.fit_side`` scaled them down)."""
    info = plan.info
    return {
        "name": plan.video_name,
        "source": info.path.name,
        "width": info.width,
        "height": info.height,
        "source_width": info.source_size[0],
        "source_height": info.source_size[1],
        "fps": info.fps,
        "source_frames": info.num_frames,
    }


def cache_meta(plan: JobPlan, stride: int, output: dict[str, Any]) -> dict[str, Any]:
    """What a run keeps in its mask cache's meta (JSON-able) for a re-render to rebuild its plan.

    ``output``: how the run drew its video (``drawing``: style, output_max_side, show_boxes, show_labels, alpha_webm,
    audio); read back by ``run_output``. The source's path is kept absolute, so
    that a re-render from another folder finds its sound (``job_outputs.source_sound``).
    """
    info = asdict(plan.info)
    info["path"] = str(plan.info.path.absolute())
    return {
        "video_name": plan.video_name,
        "fps": plan.fps,
        "stride": stride,
        "output": dict(output),
        "frame_names": list(plan.frame_names),
        "class_names": list(plan.class_names),
        "info": info,
        # a re-render takes the sound of the file at info's path only if it still has this size and these first and
        # last bytes (``job.rerender``)
        **_source_stamp(plan.info),
        "provenance": plan.record,  # a re-render's run.json still names the run's models and settings
    }


# the keys of ``cache_meta`` and the JSON types of their values (None: any): a re-render reads each
RUN_META_TYPES: dict[str, type | tuple[type, ...] | None] = {
    "video_name": str, "fps": (int, float), "stride": int, "output": dict, "frame_names": list,
    "class_names": list, "info": dict, "source_size": None, "source_digest": None, "provenance": dict,
}  # fmt: skip


def check_run_meta(root: Path, meta: dict[str, Any]) -> None:
    """Refuse the meta of a run's mask cache at ``root`` that lacks a key of ``cache_meta`` or holds a value of
    another type (damaged, or not a run's): ``ValueError`` "the mask cache at <root> is incomplete or damaged
    (meta.json lacks ... / its ... is a ...)"."""
    lacks = [key for key in RUN_META_TYPES if key not in meta]
    if lacks:
        damaged(root, f"meta.json lacks {', '.join(lacks)}")
    for key, kind in RUN_META_TYPES.items():
        if kind is not None and (not isinstance(meta[key], kind) or isinstance(meta[key], bool)):
            damaged(root, f"meta.json's {key} is a JSON {type(meta[key]).__name__}")
    problem = _info_problem(meta["info"])
    if problem:  # checked, not caught: a TypeError of info_from_meta is a bug, not a damaged cache
        damaged(root, f"meta.json's info is not a video's ({problem})")


def _info_problem(info: dict[str, Any]) -> str | None:
    """Why ``info`` (meta.json's, a JSON object) is not one that ``info_from_meta`` reads, or None."""
    fields = {f.name: f for f in dataclasses.fields(VideoInfo) if f.init}
    required = [name for name, f in fields.items() if f.default is f.default_factory is MISSING]
    lacks = [name for name in required if name not in info]
    if lacks:
        return f"it lacks {', '.join(lacks)}"
    unknown = sorted(set(info) - set(fields))
    if unknown:
        return f"it has fields a video's has not: {', '.join(unknown)}"
    if not isinstance(info["path"], str) or not isinstance(info["frame_names"], list):
        return "its path is no text or its frame_names no list"
    return None


def _source_stamp(info: VideoInfo) -> dict[str, int | str | None]:
    """``source_size`` and ``source_digest`` of the video file ``info`` describes (None for a frame folder)."""
    if info.is_folder:
        return {"source_size": None, "source_digest": None}
    return {"source_size": info.path.stat().st_size, "source_digest": source_digest(info.path)}


def source_digest(path: Path, span: int = 1 << 20) -> str:
    """SHA-256 of a file's first and last ``span`` bytes (its whole content when shorter than two spans): tells
    another file of the same size from the one read, in 2 MiB of reading. Not its modification time: Gradio moves
    each upload of the same bytes and name onto the same path, so a file the same as the run's gets a new one."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        digest.update(f.read(span))
        size = f.seek(0, 2)
        f.seek(max(span, size - span))
        digest.update(f.read(span))
    return digest.hexdigest()


def info_from_meta(data: dict[str, Any]) -> VideoInfo:
    """The ``VideoInfo`` that ``cache_meta`` wrote as ``meta["info"]``."""
    fields = dict(data)
    fields["path"] = Path(fields["path"])
    fields["frame_names"] = tuple(fields["frame_names"])
    return VideoInfo(**fields)


def run_output(meta: dict[str, Any]) -> dict[str, Any]:
    """How the run whose mask cache ``meta`` is drew its video: the ``drawing`` that ``cache_meta`` kept."""
    return dict(meta["output"])
