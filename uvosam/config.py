"""Frozen configuration dataclasses. Defaults are the released UVOSAM values; override with ``dataclasses.replace``.

The tracker's own configs (architecture, association thresholds) live in ``uvosam.tracker.config``.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from uvosam.errors import InputError

SAM_MODEL_TYPES = ("vit_b", "vit_l", "vit_h")
SAM2_MODEL_TYPES = ("sam2.1_tiny", "sam2.1_small", "sam2.1_base_plus", "sam2.1_large")
"""SAM 2.1 image models usable as the box-to-mask stage instead of SAM (``uvosam.sam2_segmenter``)."""
SEGMENTER_MODEL_TYPES = SAM_MODEL_TYPES + SAM2_MODEL_TYPES
OVERLAP_POLICIES = ("score", "none")
# The image encoder's precision by name (CLI --sam-precision, the app's UVOSAM_SAM_PRECISION) -> SegmenterConfig.fast
SAM_PRECISIONS = {"auto": None, "bf16": True, "fp32": False}


def is_integer(value: object) -> bool:
    """An integer, numpy's included; a bool is not one here (``True`` is no count)."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_number(value: object) -> bool:
    """A real number, numpy's included; a bool is not one here."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _got(value: object) -> str:
    return (
        repr(value)
        if is_number(value) or value is None
        else f"{value!r} (a {type(value).__name__})"
    )


def check_positive(
    owner: str, name: str, value: object, *, allow_none: bool = True
) -> float | None:
    """A positive finite number (``None`` allowed where it means "no limit": infinity is not taken for it);
    returned as a plain ``float``."""
    if value is None and allow_none:
        return None
    if not is_number(value) or not 0 < value < math.inf:  # NaN fails both comparisons
        raise InputError(
            f"{owner}.{name} must be a positive finite number{' or None' if allow_none else ''}; got {_got(value)}"
        )
    return float(value)


def check_count(owner: str, name: str, value: object, *, allow_none: bool = True) -> int | None:
    """A count: a positive integer (``None`` allowed where it means "no limit"); returned as a plain ``int``
    (a numpy integer would not go into ``run.json``)."""
    if value is None and allow_none:
        return None
    if not is_integer(value) or value <= 0:
        raise InputError(
            f"{owner}.{name} must be a positive integer{' or None' if allow_none else ''}; got {_got(value)}"
            + (
                f" (use {int(value)})"
                if isinstance(value, float) and value.is_integer() and value > 0
                else ""
            )
        )
    return int(value)


def check_flag(
    owner: str, name: str, value: object, *, none_means: str | None = None
) -> bool | None:
    """True or False (a numpy bool too; ``None`` where ``none_means`` says what it means); returned as ``bool``.
    A string such as ``"no"`` would otherwise count as true."""
    if value is None and none_means is not None:
        return None
    if not isinstance(value, bool | np.bool_):
        allowed = "True or False" if none_means is None else f"True, False or None ({none_means})"
        # a bad setting is a ValueError, whatever its type, like every other config check here
        raise InputError(f"{owner}.{name} must be {allowed}; got {_got(value)}")
    return bool(value)


def check_type(what: str, value: object, kind: type, example: str) -> None:
    """Refuse a ``value`` that is not a ``kind`` (a dict given for a config, say) with a ``TypeError`` that names
    ``what`` took it and shows ``example`` (how to build one)."""
    if isinstance(value, kind):
        return
    article = "an" if kind.__name__[0] in "AEIOU" else "a"
    got = "None" if value is None else type(value).__name__
    hint = f"; from a dict: {kind.__name__}(**{{...}})" if isinstance(value, Mapping) else ""
    raise TypeError(f"{what} takes {article} {kind.__name__} ({example}); got {got}{hint}")


def config_or(config: object, default: Any, example: str, *, what: str = "config") -> Any:
    """``config`` once ``check_type`` took it as one of ``default``'s type (e.g. a ``SegmenterConfig``), or
    ``default`` for ``None``: a dict given for a config is refused where it is given, not at its first use."""
    if config is None:
        return default
    check_type(what, config, type(default), example)
    return config


def check_fields(obj: object, check: Callable[..., object], *names: str, **kwargs: Any) -> None:
    """Check the fields ``names`` of the frozen dataclass ``obj`` with ``check`` (one of the ``check_*`` above) and
    store the plain Python value it returns."""
    for name in names:
        value = check(type(obj).__name__, name, getattr(obj, name), **kwargs)
        object.__setattr__(obj, name, value)


@dataclass(frozen=True)
class VideoLimits:
    """Limits checked from the container's metadata BEFORE any frame is decoded. ``None`` = unlimited.

    Attributes:
        max_frames: most frames read (after stride) before refusing; the app lowers this for a shared Space.
        max_side: longest side of the frame in pixels.
        max_duration_s: longest accepted duration in seconds.
        max_pixels: width * height per frame.
    """

    max_frames: int | None = 20_000
    max_side: int | None = 4096
    max_duration_s: float | None = 3600.0
    max_pixels: int | None = 4096 * 2304

    def __post_init__(self) -> None:
        check_fields(self, check_count, "max_frames", "max_side", "max_pixels")
        check_fields(self, check_positive, "max_duration_s")


@dataclass(frozen=True)
class SegmenterConfig:
    """How SAM is run. Defaults = the release's (ViT-H, one mask per box, logits > 0), except ``fast=None`` (a bf16
    encoder where bf16 is native; the release: float32) and ``overlap="score"`` (the release: later tracks overwrite).

    Attributes:
        model_type: SAM ``vit_b``, ``vit_l``, ``vit_h`` (``uvosam.segmenter``) or SAM 2.1 ``sam2.1_tiny``,
            ``sam2.1_small``, ``sam2.1_base_plus``, ``sam2.1_large`` (``uvosam.sam2_segmenter``).
        mask_threshold: logit threshold of SAM's masks (SAM's own ``mask_threshold``, 0.0).
        overlap: ``"score"``: where masks overlap, the pixel goes to the track with the higher tracker score
            (ties: lower track id); ``"none"``: masks are returned as SAM gives them (may overlap).
        fast: run the image encoder in bf16 with ``scaled_dot_product_attention`` (SAM 2.1's encoder uses it
            anyway); ``None`` = on where bf16 runs natively: a CUDA GPU of compute capability 8.0 on
            (not a T4 or V100: ``uvosam.devices.cuda_has_bf16``), or a CPU with AVX512-BF16 or AMX
            (``uvosam.box_segmenter.cpu_has_bf16``), and on a CUDA GPU without it SAM's encoder in float32 with SDPA
            attention (``uvosam.segmenter.sdpa_encode``: far less memory, the same result up to float rounding);
            ``False`` = the model's own float32 forward, as the release.
        encoder_batch: frames per image-encoder call.
        decoder_batch: boxes per mask-decoder call. All boxes of a frame share its one image embedding; the decoder
            and the upsampling of its masks to the frame's size need about 10 MB (fp32) per box, so a frame with
            hundreds of objects (``PipelineConfig.max_objects=None``) is decoded in chunks of this many. Each box is
            decoded independently: the chunk size does not change the masks.
        compile: run the function that computes the image encoder (the fast path's bf16 + SDPA forward, else SAM's
            own) through ``torch.compile`` (inductor, ``dynamic=False``). Off by default: the first encoder call
            then compiles, which costs seconds to minutes (ViT-H) before the first mask, e.g. on the first request
            to a freshly started Space. Compiled once per segmenter, at its first encoder call; every other
            batch size (at most ``encoder_batch`` of them) compiles once more, and past Dynamo's recompile limit
            (``torch._dynamo.config.recompile_limit``, 8) further sizes run uncompiled. Needs a working C++
            compiler on CPU and Triton on CUDA; a failed compile raises ``RuntimeError``.
        cuda_graph: run the image encoder by replaying a CUDA graph (``uvosam.encoder_graphs``): captured once per
            segmenter and input batch size at the first encoder call of that size (a few eager warm-up calls, then
            the capture), then one launch a frame instead of the encoder's several hundred kernel launches, which
            the CPU issues more slowly than the GPU runs them (ViT-H: about 700 a frame on the fast path). Off by
            default: not yet measured on a GPU. CUDA only: on another device the segmenter warns once at
            construction and runs eager. Each captured graph keeps its own memory pool (about the encoder's peak
            activation memory at that batch size; at most ``encoder_batch`` graphs) and a static input and
            output. A capture that fails, or whose replay differs from the eager output, warns once and the
            segmenter runs eager from then on (``describe()["cuda_graph_fallback"]`` says why). Not with
            ``compile`` (use one or the other).
        prepare_ahead: resize each frame for the image encoder (SAM's ``ResizeLongestSide``, on the CPU) in a
            background thread as frames are read (``uvosam.pipeline``), instead of in the models' thread right
            before the encoder, where the GPU waited for it; the same masks. ``None`` = on CUDA only (on a CPU the
            models use the cores themselves, and a frame that turns out to have no box would be resized for
            nothing). Only for segmenters with a ``prepare`` method (SAM's; SAM 2.1 resizes on the device).
    """

    model_type: str = "vit_h"
    mask_threshold: float = 0.0
    overlap: str = "score"
    fast: bool | None = None
    encoder_batch: int = 1
    decoder_batch: int = 64
    compile: bool = False
    prepare_ahead: bool | None = None
    cuda_graph: bool = False

    def __post_init__(self) -> None:
        check_fields(self, check_flag, "compile", "cuda_graph")
        if self.compile and self.cuda_graph:
            raise InputError(
                "SegmenterConfig.compile and SegmenterConfig.cuda_graph cannot both be on (command line: --compile "
                "and --cuda-graph): choose one (torch.compile's mode='reduce-overhead' makes its own CUDA graphs)"
            )
        check_fields(self, check_flag, "prepare_ahead", none_means="on CUDA only")
        check_fields(self, check_flag, "fast", none_means="on where bf16 runs natively")
        if not is_number(self.mask_threshold) or not math.isfinite(self.mask_threshold):
            raise InputError(
                "SegmenterConfig.mask_threshold must be a finite number (a logit threshold; SAM's own is 0.0); "
                f"got {_got(self.mask_threshold)}"
            )
        object.__setattr__(self, "mask_threshold", float(self.mask_threshold))
        if self.model_type not in SEGMENTER_MODEL_TYPES:
            raise InputError(
                f"SegmenterConfig.model_type must be one of {SEGMENTER_MODEL_TYPES}; got {self.model_type!r}"
            )
        if self.overlap not in OVERLAP_POLICIES:
            raise InputError(
                f"SegmenterConfig.overlap must be one of {OVERLAP_POLICIES}; got {self.overlap!r}"
            )
        check_fields(self, check_count, "encoder_batch", "decoder_batch", allow_none=False)


@dataclass(frozen=True)
class PipelineConfig:
    """Per-run options of ``UVOSAM``.

    Attributes:
        max_objects: at most this many tracks get masks (highest tracker score in the frame first);
            ``None`` = all. DAVIS export separately caps ids at 20.
        min_score: tracks whose per-frame score is below this are not segmented in that frame (0 = keep all).
    """

    max_objects: int | None = None
    min_score: float = 0.0

    def __post_init__(self) -> None:
        check_fields(self, check_count, "max_objects")
        if not is_number(self.min_score) or not 0.0 <= self.min_score <= 1.0:
            raise InputError(
                f"PipelineConfig.min_score must be a number in [0, 1] (0 = keep all); got {_got(self.min_score)}"
            )
        object.__setattr__(self, "min_score", float(self.min_score))
