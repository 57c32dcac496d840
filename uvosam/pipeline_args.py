"""What ``UVOSAM`` checks of its arguments, so that a wrong one is refused with what to do instead of failing deep
inside a run: frames (a path, one frame or a PIL image given where frames go) and the models and configs given to
the constructor and ``from_pretrained``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

import numpy as np

from uvosam.config import PipelineConfig, SegmenterConfig, check_type
from uvosam.tracker.config import PRECISIONS

_PATH = str | bytes | os.PathLike
_READ_VIDEO = "read a video file or frame folder with uvosam.video.iter_frames(path), e.g. pipe(iter_frames(path))"


def _frame_hint(frame: object) -> str:
    """What to do with a frame that is not an (H, W, 3) uint8 array, where that is clear ("" where not)."""
    if type(frame).__module__.startswith("PIL."):
        return "; convert a PIL image with np.asarray(image.convert('RGB'))"
    if isinstance(frame, _PATH):
        return f"; {_READ_VIDEO}"
    if not isinstance(frame, np.ndarray):
        return ""
    if frame.ndim == 2:
        return "; a grey frame: np.repeat(frame[:, :, None], 3, axis=2)"
    if frame.ndim == 3 and frame.shape[2] == 4:
        return "; drop the alpha channel: frame[:, :, :3]"
    if frame.dtype.kind == "f":
        return "; a float frame in [0, 1]: (frame * 255).round().astype(np.uint8)"
    return ""


def check_frame(frame: np.ndarray, index: int, size_hw: tuple[int, int] | None) -> None:
    """Refuse frame ``index`` unless it is an (H, W, 3) uint8 array of the first frame's size ``size_hw``."""
    if (
        not isinstance(frame, np.ndarray)
        or frame.dtype != np.uint8
        or frame.ndim != 3
        or frame.shape[2] != 3
    ):
        got = f"{type(frame).__name__} {getattr(frame, 'shape', '')} {getattr(frame, 'dtype', '')}"
        raise TypeError(
            f"frame {index}: expected an (H, W, 3) uint8 RGB numpy array; got {got}{_frame_hint(frame)}"
        )
    if size_hw is not None and frame.shape[:2] != size_hw:
        raise ValueError(
            f"frame {index}: size {frame.shape[:2]} differs from the first frame's {size_hw}; "
            "all frames of a video must have one size"
        )


def check_frames(frames: object) -> None:
    """Refuse, when called, what is no iterable of frames: a path, one frame, a PIL image, a number..."""
    expected = "frames: expected an iterable of (H, W, 3) uint8 RGB arrays, one per frame"
    if isinstance(frames, _PATH):
        raise TypeError(f"{expected}; got the path {frames!r}: {_READ_VIDEO}")
    if isinstance(frames, np.ndarray) and frames.ndim == 3:
        raise TypeError(
            f"{expected}; got one array of shape {frames.shape}: pass a list of frames ([frame] for one) or a "
            "(T, H, W, 3) array"
        )
    if not isinstance(frames, Iterable):
        hint = _frame_hint(frames)
        hint = f"{hint} and pass a list of them" if hint else f" (a list, or {_READ_VIDEO})"
        raise TypeError(f"{expected}; got {type(frames).__name__}{hint}")


def check_models(tracker: object, segmenter: object) -> None:
    """Refuse a name or path given to the constructor for a model (``from_pretrained`` loads by name)."""
    for name, model in (("tracker", tracker), ("segmenter", segmenter)):
        if isinstance(model, _PATH):
            raise TypeError(
                f"UVOSAM: {name} takes a loaded model; got {model!r}. To load models by name or path, use "
                "UVOSAM.from_pretrained(tracker=..., sam=...)"
            )


def check_load_args(
    tracker: object,
    sam: object,
    tracker_yaml: object,
    config: object,
    segmenter_config: object,
    tracker_precision: object,
) -> None:
    """``from_pretrained``'s arguments of the wrong kind, refused before anything is looked for or loaded."""
    for name, value, none_ok in (
        ("tracker", tracker, False),
        ("sam", sam, True),
        ("tracker_yaml", tracker_yaml, True),
    ):
        if not isinstance(value, str | os.PathLike) and not (none_ok and value is None):
            raise TypeError(
                f"UVOSAM.from_pretrained: {name} takes a name or a file path (str or pathlib.Path)"
                f"{' or None' if none_ok else ''}; got {value!r}"
                + (
                    "; to use a tracker object, build UVOSAM(tracker, segmenter)"
                    if name == "tracker"
                    else ""
                )
            )
    for name, value, kind, example in (
        ("config", config, PipelineConfig, "PipelineConfig(max_objects=3)"),
        ("segmenter_config", segmenter_config, SegmenterConfig, "SegmenterConfig(fast=False)"),
    ):
        if value is not None:
            check_type(f"UVOSAM.from_pretrained: {name}", value, kind, example)
    if tracker_precision not in PRECISIONS:
        raise ValueError(
            f"UVOSAM.from_pretrained: tracker_precision must be one of {PRECISIONS}; got {tracker_precision!r}"
        )
