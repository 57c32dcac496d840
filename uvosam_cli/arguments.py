"""Argument types and options shared by the subcommands."""

from __future__ import annotations

import argparse
from pathlib import Path

from uvosam.config import SAM2_MODEL_TYPES, SAM_MODEL_TYPES, SAM_PRECISIONS, SegmenterConfig
from uvosam.errors import InputError


def positive_int(text: str) -> int:
    """An ``argparse`` type: an int >= 1, else a usage error that says so."""
    value = _int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer; got {text}")
    return value


def non_negative_int(text: str) -> int:
    """An ``argparse`` type: an int >= 0, else a usage error that says so."""
    value = _int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0; got {text}")
    return value


def max_side(text: str) -> int:
    """An ``argparse`` type: a longest side of the output video, an int >= 2 (an encoded video's sides are even)."""
    value = _int(text)
    if value < 2:
        raise argparse.ArgumentTypeError(
            f"must be a longest side of at least 2 pixels (an encoded video's sides are even); got {text}"
        )
    return value


FIT_SIDE_HELP = (
    "decode frames with a side over N pixels scaled down to fit N, aspect kept, even sides (a 3840x2160 phone clip "
    "at 1920: 1920x1080; never enlarged): faster, and masks about as good, as the models work at 1024 px or less"
)


def non_empty(text: str) -> str:
    """An ``argparse`` type: text that is not empty nor only spaces (a name or an id)."""
    if not text.strip():
        raise argparse.ArgumentTypeError(f"must not be empty; got {text!r}")
    return text


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer; got {text!r}") from None


def unit_interval(text: str) -> float:
    """An ``argparse`` type: a number in [0, 1] (a score threshold), else a usage error that says so."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0.0 <= value <= 1.0:  # also NaN
        raise argparse.ArgumentTypeError(
            f"must be a number in [0, 1] (scores are 0 to 1); got {text}"
        )
    return value


ALPHA_WEBM_HELP = (
    "also write <video>_alpha.webm into the zip: the objects over a transparent background (VP9 with alpha; "
    "browsers, OBS, Canva, Kdenlive)"
)

DEVICE_HELP = (
    "auto (default: CUDA if available, else CPU), or any device name torch takes: cpu, cuda, cuda:N, mps (an "
    "Apple GPU), xpu ... (checked before any model loads)"
)

CONFIG_YAML_HELP = (
    "detectron2-style IDOL YAML matching --tracker (default: the release's davis_r50 values, with the "
    "architecture a `uvosam train` checkpoint records)"
)

SAM_HELP = (
    f"the box-to-mask model: SAM {' | '.join(SAM_MODEL_TYPES)}, SAM 2.1 {' | '.join(SAM2_MODEL_TYPES)} (needs the "
    "sam2 package; only its image path is used, the tracker alone decides ids), or PATH to a SAM or SAM 2.1 "
    "checkpoint"
)


def add_sam_arguments(p: argparse.ArgumentParser) -> None:
    """``--sam`` (default ``vit_h``, the release's), ``--sam-type`` (the SAM 2.1 size of a renamed checkpoint) and
    ``--sam-precision`` (the image encoder's fast path)."""
    p.add_argument(
        "--sam", default="vit_h", help=SAM_HELP + " (default: vit_h, the release's and the paper's)"
    )
    p.add_argument("--sam-type", choices=SAM2_MODEL_TYPES,
                   help="which SAM 2.1 model a --sam PATH holds when its file name is not the released one (e.g. "
                        "sam2.1_hiera_small.pt; default: told from the file, SAM 2.1 of a released size by its "
                        "Hiera trunk, SAM by its image encoder, and a file of another size is refused with "
                        "it)")  # fmt: skip
    p.add_argument("--sam-precision", choices=tuple(SAM_PRECISIONS), default="auto",
                   help="the image encoder: bf16 (SAM: with scaled_dot_product_attention; masks within IoU 0.99 "
                        "of fp32 in the tests) or fp32 (the model's own forward, as the release); auto (default): "
                        "bf16 on GPUs and CPUs that compute bf16 natively (compute capability 8.0 on: not a T4 or "
                        "V100; AVX512-BF16, AMX), "
                        "else fp32")  # fmt: skip


def segmenter_config(args: argparse.Namespace, **options) -> SegmenterConfig:
    """The ``SegmenterConfig`` of ``--sam`` / ``--sam-type`` / ``--sam-precision`` (plus ``options``, e.g.
    ``compile=True``).

    Raises:
        ValueError: ``--sam-type`` with a ``--sam`` that already names a model (not a path), or with a path whose
            file name is the released checkpoint of another model (that name decides, so the flag would be ignored).
    """
    options = {"fast": SAM_PRECISIONS[getattr(args, "sam_precision", "auto")], **options}
    if args.sam_type is None:
        return SegmenterConfig(**options)
    from uvosam import weight_table

    if args.sam in SAM_MODEL_TYPES + SAM2_MODEL_TYPES or args.sam in weight_table.WEIGHTS:
        raise InputError(
            f"--sam-type is for a --sam PATH to a renamed SAM 2.1 checkpoint; --sam {args.sam} already names the "
            f"model: drop --sam-type, or pass the checkpoint's path as --sam"
        )
    released = _released_model(args.sam)
    if released not in (None, args.sam_type):
        raise InputError(
            f"--sam {args.sam} is the released {released} file (its name decides the model), so --sam-type "
            f"{args.sam_type} would be ignored: drop --sam-type, or rename the file if it holds {args.sam_type}"
        )
    return SegmenterConfig(model_type=args.sam_type, **options)


def _released_model(path: str) -> str | None:
    """The SAM or SAM 2.1 model type whose released checkpoint has ``path``'s file name, else ``None``."""
    from uvosam import weight_table

    for model_type in SAM_MODEL_TYPES + SAM2_MODEL_TYPES:
        spec = weight_table.WEIGHTS.get(model_type) or weight_table.WEIGHTS.get(f"sam_{model_type}")
        if spec is not None and spec.basename == Path(path).name:
            return model_type
    return None
