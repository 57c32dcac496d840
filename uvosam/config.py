"""Frozen configuration dataclasses. Defaults are the released UVOSAM values; override with ``dataclasses.replace``.

The tracker's own configs (architecture, association thresholds) live in ``uvosam.tracker.config``.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

SAM_MODEL_TYPES = ("vit_b", "vit_l", "vit_h")
SAM2_MODEL_TYPES = ("sam2.1_tiny", "sam2.1_small", "sam2.1_base_plus", "sam2.1_large")
"""SAM 2.1 image models usable as the box-to-mask stage instead of SAM (``uvosam.sam2_segmenter``)."""
SEGMENTER_MODEL_TYPES = SAM_MODEL_TYPES + SAM2_MODEL_TYPES
OVERLAP_POLICIES = ("score", "none")
# The image encoder's precision by name (CLI --sam-precision, the app's UVOSAM_SAM_PRECISION) -> SegmenterConfig.fast
SAM_PRECISIONS = {"auto": None, "bf16": True, "fp32": False}


def _check_positive(owner: str, name: str, value: float | None, *, allow_none: bool = True) -> None:
    if value is None and allow_none:
        return
    if value is None or value <= 0:
        raise ValueError(
            f"{owner}.{name} must be a positive number{' or None' if allow_none else ''}; got {value!r}"
        )


def _check_count(owner: str, name: str, value: int | None, *, allow_none: bool = True) -> None:
    """A count: a positive integer (``None`` allowed where it means "no limit")."""
    if value is None and allow_none:
        return
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value <= 0:
        raise ValueError(
            f"{owner}.{name} must be a positive integer{' or None' if allow_none else ''}; got {value!r}"
            + (
                f" (use {int(value)})"
                if isinstance(value, float) and value.is_integer() and value > 0
                else ""
            )
        )


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
        for name in ("max_frames", "max_side", "max_pixels"):
            _check_count("VideoLimits", name, getattr(self, name))
        _check_positive("VideoLimits", "max_duration_s", self.max_duration_s)


@dataclass(frozen=True)
class SegmenterConfig:
    """How SAM is run. Defaults = the release (ViT-H, one mask per box, logits > 0).

    Attributes:
        model_type: SAM ``vit_b``, ``vit_l``, ``vit_h`` (``uvosam.segmenter``) or SAM 2.1 ``sam2.1_tiny``,
            ``sam2.1_small``, ``sam2.1_base_plus``, ``sam2.1_large`` (``uvosam.sam2_segmenter``).
        mask_threshold: logit threshold of SAM's masks (SAM's own ``mask_threshold``, 0.0).
        overlap: ``"score"``: where masks overlap, the pixel goes to the track with the higher tracker score
            (ties: lower track id); ``"none"``: masks are returned as SAM gives them (may overlap).
        fast: run the image encoder in bf16 with ``scaled_dot_product_attention`` (SAM 2.1's encoder uses it
            anyway); ``None`` = on where bf16 runs natively: CUDA, or a CPU with AVX512-BF16 or AMX
            (``uvosam.box_segmenter.cpu_has_bf16``); ``False`` = the model's own float32 forward, as the release.
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
    """

    model_type: str = "vit_h"
    mask_threshold: float = 0.0
    overlap: str = "score"
    fast: bool | None = None
    encoder_batch: int = 1
    decoder_batch: int = 64
    compile: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.compile, bool):
            raise ValueError(f"SegmenterConfig.compile must be True or False; got {self.compile!r}")
        if self.model_type not in SEGMENTER_MODEL_TYPES:
            raise ValueError(
                f"SegmenterConfig.model_type must be one of {SEGMENTER_MODEL_TYPES}; got {self.model_type!r}"
            )
        if self.overlap not in OVERLAP_POLICIES:
            raise ValueError(
                f"SegmenterConfig.overlap must be one of {OVERLAP_POLICIES}; got {self.overlap!r}"
            )
        _check_count("SegmenterConfig", "encoder_batch", self.encoder_batch, allow_none=False)
        _check_count("SegmenterConfig", "decoder_batch", self.decoder_batch, allow_none=False)


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
        _check_count("PipelineConfig", "max_objects", self.max_objects)
        if not 0.0 <= self.min_score <= 1.0:
            raise ValueError(f"PipelineConfig.min_score must be in [0, 1]; got {self.min_score!r}")
