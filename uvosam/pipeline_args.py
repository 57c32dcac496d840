"""What ``UVOSAM`` checks of its arguments, so that a wrong one is refused with what to do instead of failing deep
inside a run: frames (a path, one frame or a PIL image given where frames go; each frame is checked by
``uvosam.tracker.frames.check_frame``) and the models and configs given to the constructor and ``from_pretrained``;
and what the models give back to the pipeline: each frame's tracks (``check_tracks``), the masks (``check_masks``).
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Iterable, Sequence

import numpy as np

from uvosam.config import PipelineConfig, SegmenterConfig, check_type
from uvosam.errors import InputError
from uvosam.tracker.config import PRECISIONS
from uvosam.tracker.frames import PATH_TYPES, READ_VIDEO, type_hint
from uvosam.types import FrameTracks, track_problem


def check_frames(frames: object) -> None:
    """Refuse, when called, what is no iterable of frames: a path, one frame, a PIL image, a number..."""
    expected = "frames: expected an iterable of (H, W, 3) uint8 RGB arrays, one per frame"
    if isinstance(frames, PATH_TYPES):
        raise TypeError(f"{expected}; got the path {frames!r}: {READ_VIDEO}")
    if isinstance(frames, np.ndarray) and frames.ndim == 3:
        raise TypeError(
            f"{expected}; got one array of shape {frames.shape}: pass a list of frames ([frame] for one) or a "
            "(T, H, W, 3) array"
        )
    if not isinstance(frames, Iterable):
        hint = type_hint(frames)
        hint = f"{hint} and pass a list of them" if hint else f" (a list, or {READ_VIDEO})"
        raise TypeError(f"{expected}; got {type(frames).__name__}{hint}")


def check_models(tracker: object, segmenter: object) -> None:
    """Refuse a name or path given to the constructor for a model (``from_pretrained`` loads by name)."""
    for name, model in (("tracker", tracker), ("segmenter", segmenter)):
        if isinstance(model, PATH_TYPES):
            raise TypeError(
                f"UVOSAM: {name} takes a loaded model; got {model!r}. To load models by name or path, use "
                "UVOSAM.from_pretrained(tracker=..., sam=...)"
            )


def check_prepare_ahead(segmenter: object) -> None:
    """A segmenter that asks to prepare ahead (a true ``prepare_ahead``) must have ``prepare(image)`` and take
    ``segment_batch(..., prepared=...)`` (``uvosam.types.BoxSegmenter``): said when the pipeline is made, not at the
    first frame with boxes after the tracker worked.

    Raises:
        TypeError: naming the segmenter's class and what it lacks.
    """
    if not getattr(segmenter, "prepare_ahead", False):
        return
    name = type(segmenter).__name__
    if not callable(getattr(segmenter, "prepare", None)):
        raise TypeError(
            f"{name} has a true prepare_ahead but no prepare(image) method (uvosam.types.BoxSegmenter): add one, or "
            "make prepare_ahead false"
        )
    params = inspect.signature(segmenter.segment_batch).parameters.values()
    if not any(p.name == "prepared" or p.kind is p.VAR_KEYWORD for p in params):
        raise TypeError(
            f"{name}.segment_batch takes no prepared= argument, which a true prepare_ahead needs "
            "(uvosam.types.BoxSegmenter): add it, or make prepare_ahead false"
        )


def check_tracks(tracker: object, tracks: FrameTracks) -> None:
    """One frame's tracks as a tracker's session decided them, checked where the pipeline receives them (the rules of
    ``uvosam.types.FrameTracks``): finite boxes, scores in [0, 1], finite class probabilities and track ids >= 0.
    Else a NaN score dropped its track unseen (``score >= min_score`` is False), an infinite box or score wrote
    ``Infinity`` into results.json (not JSON), and a negative id could not be named by a re-render's merge or split
    (``-3>1``) nor be a DAVIS label.

    Raises:
        ValueError: naming the tracker's class, the frame, what was wrong and with which track.
    """
    problem = track_problem(tracks)
    if problem is not None:
        raise ValueError(
            f"{type(tracker).__name__}: frame {tracks.frame_index}'s tracks have {problem}; a tracker gives finite "
            "pixel boxes, scores in [0, 1] and track ids >= 0 (uvosam.types.FrameTracks): drop such a detection in "
            "the tracker, or fix what made it"
        )


def check_masks(
    segmenter: object, outputs: Sequence[object], images: list[np.ndarray], counts: list[int]
) -> None:
    """What a segmenter's ``segment_batch`` returned, checked where the pipeline receives it: one output per frame,
    each with ``masks`` (N, H, W) bool and ``mask_scores`` (N,) for the N boxes of its HxW frame (``counts``).
    A plug-in's wrong shapes would otherwise fail later, in rendering or an export, far from their cause.

    Raises:
        ValueError: naming the segmenter's class, what was expected and what came.
    """
    name = f"{type(segmenter).__name__}.segment_batch"
    protocol = "(uvosam.types.BoxSegmenter)"
    if len(outputs) != len(images):
        raise ValueError(
            f"{name} returned {len(outputs)} output(s) for {len(images)} frame(s); expected one per frame, in "
            f"order {protocol}"
        )
    for index, (image, n, out) in enumerate(zip(images, counts, outputs)):
        h, w = image.shape[:2]
        masks = getattr(out, "masks", None)
        scores = getattr(out, "mask_scores", None)
        if not (
            isinstance(masks, np.ndarray)
            and masks.shape == (n, h, w)
            and masks.dtype == bool
            and isinstance(scores, np.ndarray)
            and scores.shape == (n,)
        ):
            raise ValueError(
                f"{name}: for frame {index} of the call ({n} box(es) on a {h}x{w} frame) expected .masks an "
                f"({n}, {h}, {w}) bool numpy array and .mask_scores ({n},); got .masks {_array_kind(masks)}, "
                f".mask_scores {_array_kind(scores)} {protocol}"
            )


def _array_kind(value: object) -> str:
    if isinstance(value, np.ndarray):
        return f"{value.shape} {value.dtype}"
    return f"a {type(value).__name__}"


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
        raise InputError(
            f"UVOSAM.from_pretrained: tracker_precision must be one of {PRECISIONS}; got {tracker_precision!r}"
        )
