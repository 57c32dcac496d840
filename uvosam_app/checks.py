"""What the handlers check a request against before any work: the models offered, the video style, the merge text,
an input's size, and that a linked Load's file is still there; each refusal is a ``gr.Error`` saying what to do.
"""

from __future__ import annotations

from pathlib import Path

import gradio as gr

from uvosam.config import SAM2_MODEL_TYPES
from uvosam.render import STYLES
from uvosam.track_edit import parse_merge
from uvosam_app import links as app_links
from uvosam_app.models import sam2_missing
from uvosam_app.settings import AppSettings


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


def linked_file(path: str | None) -> str:
    if not path or not Path(path).is_file():
        raise gr.Error(app_links.GONE, print_exception=False)
    return path


def merge_map(text: str | None) -> dict[int, int]:
    try:
        return parse_merge(text)
    except ValueError as err:
        raise gr.Error(str(err), print_exception=False) from None


def check_models(tracker: str, sam: str, settings: AppSettings) -> None:
    """Refuse a tracker preset or a mask model this app does not offer (on ZeroGPU: not loaded at start); a SAM 2.1
    one without the sam2 package says how to get it."""
    at_start = " (on ZeroGPU: those loaded at start)" if settings.start_models_only else ""
    if tracker not in settings.presets():
        raise gr.Error(
            f"Choose a tracker from {settings.presets()}{at_start}; got {tracker!r}.",
            print_exception=False,
        )
    offered = settings.mask_models()
    if sam in offered:
        return
    why = sam2_missing() if sam in SAM2_MODEL_TYPES else None
    raise gr.Error(
        why or f"Choose a mask model from {offered}{at_start}; got {sam!r}.", print_exception=False
    )


def check_style(style: str) -> str:
    if style not in STYLES:
        raise gr.Error(f"Choose a video style from {STYLES}; got {style!r}.", print_exception=False)
    return style
