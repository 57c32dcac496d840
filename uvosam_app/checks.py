"""What the handlers check a request against before any work: the models offered, the video style, the merge text,
the settings' ranges (those of their sliders), an input's size, and that an upload or a linked Load's file is
still there; each refusal is a ``gr.Error`` saying what to do. ``run_request``: a Run's request, checked, as its job
takes it (``RunRequest``).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr

from uvosam.config import SAM2_MODEL_TYPES
from uvosam.errors import InputError, MissingPackageError
from uvosam.export_types import ExportOptions
from uvosam.job_types import JobOptions
from uvosam.remote_files import is_zip_download
from uvosam.render import STYLES
from uvosam.track_edit import parse_merge, parse_split
from uvosam.video import VideoInfo
from uvosam_app import links as app_links
from uvosam_app.gpu import GpuFrameCap
from uvosam_app.models import mask_model_label, sam2_missing, unavailable
from uvosam_app.settings import FILES_KEPT, AppSettings
from uvosam_app.uploads import FramesZip

FRAMES_BOX_VIDEOS = (".gif", ".webp", ".apng", ".png")
"""Video files the box of a zip of frames takes too: Gradio's video upload takes ``video/*`` files only (its
browser check: "Only video/x-m4v,video/* allowed"), and animated GIF, WebP and PNG files are ``image/*``. An APNG
is often named .png: taken as one, a still PNG (or WebP) is refused as a still image when probed."""


# how the texts name a file of ``FRAMES_BOX_VIDEOS`` (an APNG is an animated PNG; a .png may be a still one)
BOXED_NAMES = {
    ".gif": "an animated GIF",
    ".webp": "an animated WebP",
    ".apng": "an APNG",
    ".png": "a PNG",
}


def boxed_video(frames_zip: str | None) -> bool:
    """Whether the file in the box of a zip of frames is a video file (``FRAMES_BOX_VIDEOS``: an animated image)."""
    return bool(frames_zip) and Path(frames_zip).suffix.lower() in FRAMES_BOX_VIDEOS


def taken_inputs(video: str | None, frames_zip: str | None) -> tuple[str | None, str | None]:
    """(video, frames_zip) as a run takes them: a video file in the box of a zip of frames (``boxed_video``) is the
    video, unless a video is uploaded too (refused as two inputs: ``check_input``)."""
    if boxed_video(frames_zip) and not video:
        return frames_zip, None
    return video, frames_zip


def over_upload_limit(path: str | None, max_mb: int) -> str | None:
    """Why a file given to a handler is refused for its size (None: it is not). The browser's uploads are
    bounded by Gradio (``max_file_size``), a file passed over the API as a link by its download
    (``uvosam_app.file_links``); this is the second line behind both."""
    size = Path(path).stat().st_size if path and Path(path).is_file() else 0
    if size <= max_mb << 20:
        return None
    return (
        f"{Path(path).name} is {size / 2**20:.0f} MB, over this app's upload limit of {max_mb} MB: use a "
        "shorter or smaller file. (The app's host sets this limit: UVOSAM_MAX_UPLOAD_MB.)"
    )


def upload_gone(path: str | None, then: str = "Run") -> str | None:
    """Why an uploaded file given to a handler cannot be used: Gradio's cache sweep (``app.py``: files older than
    ``FILE_MAX_AGE_S``) deleted it under a page left open (None: it is there, or none was given). Named by its file
    name: the server's path means nothing to the user (the library's "No video or frame folder at
    /tmp/gradio/...")."""
    if not path or Path(path).exists():
        return None
    return (
        f"{Path(path).name} is no longer on the server (uploads are deleted after {FILES_KEPT}): upload it "
        f"again, then {then}."
    )


def check_uploads(*paths: str | None, then: str = "Run") -> None:
    """Refuse a request whose uploaded file is gone (``upload_gone``)."""
    for path in paths:
        gone = upload_gone(path, then)
        if gone:
            raise gr.Error(gone, print_exception=False)


def linked_file(path: str | None) -> str:
    if not path or not Path(path).is_file():
        raise gr.Error(app_links.GONE, print_exception=False)
    return path


def merge_map(text: str | None) -> dict[int, int]:
    try:
        return parse_merge(text)
    except InputError as err:
        raise gr.Error(str(err), print_exception=False) from None


def split_map(text: str | None) -> dict[int, list[int]]:
    try:
        return parse_split(text)
    except InputError as err:
        raise gr.Error(str(err), print_exception=False) from None


def not_one_of(setting: str, api_name: str, values: Any, got: Any, note: str = "") -> gr.Error:
    """The refusal of a value that is none of a setting's ``values``, naming the setting as the page does and as the
    API does: ``Mask model (sam over the API) takes one of vit_b, vit_l, vit_h; got 'vit_x'.``"""
    return gr.Error(
        f"{setting} ({api_name} over the API) takes one of {', '.join(map(str, values))}{note}; got {got!r}.",
        print_exception=False,
    )


def check_models(tracker: str, sam: str, settings: AppSettings) -> None:
    """Refuse a tracker preset or a mask model this app does not offer (on ZeroGPU: not loaded at start); a SAM 2.1
    one without the sam2 package says the host has not installed it (the log says how to)."""
    at_start = " (on ZeroGPU: those loaded at start)" if settings.start_models_only else ""
    if tracker not in settings.presets():
        raise not_one_of("Tracker preset", "tracker", settings.presets(), tracker, at_start)
    offered = settings.mask_models()
    if sam in offered:
        return
    missing = sam2_missing() if sam in SAM2_MODEL_TYPES else None
    if missing:  # the host's pip advice goes to the log; the visitor learns what it means for them
        raise gr.Error(
            str(unavailable(tracker, sam, MissingPackageError(missing))), print_exception=False
        )
    raise not_one_of("Mask model", "sam", offered, sam, at_start)


def check_style(style: str) -> str:
    if style not in STYLES:
        raise not_one_of("Video style", "style", STYLES, style)
    return style


@dataclass(frozen=True)
class SliderRange:
    """A setting's slider: the name the page gives it, its range, whether it is an upper bound (``capped``: a
    value over the maximum means "as many as the app allows", and is taken as the maximum), and whether it counts
    (``whole``: it takes whole numbers only; 2.0 is one)."""

    name: str
    minimum: float
    maximum: float
    capped: bool = False
    whole: bool = False

    def clamp(self, value: float | None) -> float:
        """What Gradio 6.31's page puts in the slider's box when it loses focus (an empty box: the minimum)."""
        return min(max(value or 0, self.minimum), self.maximum)


def slider_ranges(settings: AppSettings) -> dict[str, SliderRange]:
    """The settings' sliders, by ``App.segment``'s parameter names (the API's)."""
    return {
        "min_score": SliderRange("Detection score threshold", 0.0, 1.0),
        "max_objects": SliderRange("Max objects", 1, 20, capped=True, whole=True),
        "stride": SliderRange("Frame stride", 1, 10, whole=True),
        "max_frames": SliderRange("Max frames", 1, settings.max_frames, capped=True, whole=True),
    }


def check_ranges(settings: AppSettings, **values: Any) -> dict[str, float]:
    """``values`` (by ``slider_ranges``' names) as a run takes them, or a refusal naming the setting and its range.

    The page's sliders never send a value out of range (the page puts a number typed in a box back in range when
    the box loses focus); an API client may. An upper bound over its maximum is capped (Max frames 100000: all the
    frames the app allows); any other value out of range is refused rather than guessed at: a Frame stride of 15 is
    not 10 (that covers 1.5x the frames asked for), a score threshold of 50 is not 1 (that keeps no object); and so
    is a fraction of a count (a Frame stride of 2.5 is neither 2 nor 3)."""
    ranges = slider_ranges(settings)
    taken = {}
    for key, value in values.items():
        r = ranges[key]
        number = isinstance(value, numbers.Real) and not isinstance(value, bool)
        if not (number and r.minimum <= value and (r.capped or value <= r.maximum)):
            raise gr.Error(
                f"{r.name} ({key} over the API) takes {r.minimum:g} to {r.maximum:g}; got {value!r}.",
                print_exception=False,
            )
        if r.whole and math.isfinite(value) and not float(value).is_integer():
            near = [
                n
                for n in (math.floor(value), math.ceil(value))
                if n >= r.minimum and (r.capped or n <= r.maximum)
            ]
            raise gr.Error(
                f"{r.name} ({key} over the API) takes whole numbers, {r.minimum:g} to {r.maximum:g}; got "
                f"{value!r}. Send {' or '.join(map(str, near))}.",
                print_exception=False,
            )
        taken[key] = min(value, r.maximum)
    return taken


def page_values(settings: AppSettings, **values: float | None) -> tuple[dict[str, float], str]:
    """``values`` (by ``slider_ranges``' names) as the page's sliders take them once their box loses focus
    (``SliderRange.clamp``), for the description shown meanwhile; and a Markdown note naming each setting that this
    changes, with its range ("" if none)."""
    ranges = slider_ranges(settings)
    taken = {key: ranges[key].clamp(value) for key, value in values.items()}
    notes = [
        f"**{ranges[key].name} takes {ranges[key].minimum:g} to {ranges[key].maximum:g}:** Run takes "
        f"{taken[key]:g}.\n\n"
        for key, value in values.items()
        if value != taken[key]
    ]
    return taken, "".join(notes)


@dataclass(frozen=True)
class OutputChoices:
    """What Run and Re-render write alike, as the page (or an API client) chose it: the video's longest side
    (``output_side``: 0 or "0" for the source's size), its style, the boxes and labels drawn, and the alpha WebM."""

    output_side: str | int
    style: str
    show_boxes: bool
    show_labels: bool
    alpha_webm: bool

    def job_fields(self, settings: AppSettings) -> dict[str, Any]:
        """These choices as ``JobOptions`` fields (with the settings' streaming chunks); a style not offered is
        refused (``check_style``)."""
        return {
            "chunk_seconds": settings.chunk_seconds,
            "output_max_side": int(self.output_side) or None,
            "style": check_style(self.style),
            "show_boxes": bool(self.show_boxes),
            "show_labels": bool(self.show_labels),
            "export": ExportOptions(alpha_webm=bool(self.alpha_webm)),
        }


@dataclass(frozen=True)
class RunRequest:
    """A Run's request once checked (``run_request``): what its job takes.

    Attributes:
        source: the video's path, or the zip of frames (uploaded, or a linked Load's download).
        options: the job's options (its ``max_frames`` within ``frame_cap``).
        changes: the ``PipelineConfig`` fields the sliders set (``min_score``, ``max_objects``: ``run_config``).
        stride, max_frames: as asked (in range; ``max_frames`` capped at the app's maximum, not at ``frame_cap``).
        frame_cap: on ZeroGPU, the most frames a run covers; None elsewhere.
        held: the linked Load's folder, held for the run (None: the input was uploaded).
    """

    source: str | FramesZip
    options: JobOptions
    changes: Mapping[str, float]
    stride: int
    max_frames: int
    frame_cap: GpuFrameCap | None = None
    held: Path | None = None

    def cap_note(self, info: VideoInfo) -> str:
        """What the status line adds when ``frame_cap`` covers fewer frames of ``info`` than asked ("" if not)."""
        if self.frame_cap and self.frame_cap.cuts(
            info, stride=self.stride, max_frames=self.max_frames
        ):
            return f" · {self.frame_cap.text()}"
        return ""


def check_input(video: str | None, frames_zip: str | None, linked: str | None) -> None:
    """Refuse a Run with no input, or with both a video and a zip of frames."""
    if not video and not frames_zip and not linked:
        raise gr.Error(
            "Upload a video (or a zip of its frames) or pick an example first (over the API: pass a video or "
            "frames_zip, or call /load_url first in this session).",
            print_exception=False,
        )
    if video and frames_zip:
        raise gr.Error(
            f"{two_inputs(frames_zip)}: clear one of them (its ✕), then Run (over the API: pass only one of "
            "video and frames_zip).",
            print_exception=False,
        )


def two_inputs(frames_zip: str) -> str:
    """That a video and the file ``frames_zip`` in the box under it are both loaded (a zip of frames or an animated
    image)."""
    what = BOXED_NAMES.get(Path(frames_zip).suffix.lower(), "a zip of frames")
    return f"Both a video and {what} are loaded"


def run_request(
    settings: AppSettings,
    video: str | None,
    *,
    frames_zip: str | None,
    linked: str | None,
    tracker: str,
    sam: str,
    min_score: float,
    max_objects: int,
    stride: int,
    max_frames: int,
    outputs: OutputChoices,
) -> RunRequest:
    """Run's request (``App.segment``'s inputs) checked and turned into what its job takes, before any work.

    Args:
        settings: the app's settings. video, frames_zip: the uploads (paths; either or none).
        linked: the session's linked Load's download, taken when nothing is uploaded (a zip of frames or a video).
        tracker, sam: the tracker preset and the mask model.
        min_score, max_objects, stride, max_frames: the sliders' values as sent (``check_ranges``).
        outputs: what the run writes.

    Raises:
        gr.Error: saying what to do, in this order: no input or two; an upload gone; a model not offered; a
            setting out of range; an input over the upload limit; a bad output setting; the linked file gone.
    """
    check_input(video, frames_zip, linked)
    check_uploads(video, frames_zip)
    video, frames_zip = taken_inputs(video, frames_zip)
    check_models(tracker, sam, settings)
    taken = check_ranges(settings, min_score=min_score, max_objects=max_objects,
                         stride=stride, max_frames=max_frames)  # fmt: skip
    too_big = over_upload_limit(video or frames_zip, settings.max_upload_mb)
    if too_big:
        raise gr.Error(too_big, print_exception=False)
    # on ZeroGPU: no run is cut off by its GPU time
    frame_cap = GpuFrameCap.of(sam, mask_model=mask_model_label(sam))
    stride, max_frames = int(taken["stride"]), int(taken["max_frames"])
    options = JobOptions(
        stride=stride,
        max_frames=frame_cap.limit(max_frames) if frame_cap else max_frames,
        limits=settings.limits(),
        cache=True,
        fit_side=settings.max_side,
        **outputs.job_fields(settings),
    )
    changes = {"min_score": float(taken["min_score"]), "max_objects": int(taken["max_objects"])}
    # no video and no zip: a Load's download (a linked video; over the API any download, a zip too)
    loaded = None if video or frames_zip else linked_file(linked)
    if loaded and is_zip_download(Path(loaded)):
        frames_zip = loaded
    source = FramesZip(frames_zip) if frames_zip else str(video or loaded)
    # a Load's folder is idle: held, so that no new folder deletes it under the run
    held = Path(loaded).parent if loaded else None
    return RunRequest(source, options, changes, stride, max_frames, frame_cap, held)
