"""Architecture and test-time preprocessing of the IDOL detector (Deformable DETR + re-id head).

Only the detector lives here; the association/tracking thresholds have their own config. Defaults
are the effective values of the released ``davis_r50.yaml`` (detectron2 defaults ->
``add_idol_config`` -> the YAML).
"""

from __future__ import annotations

from dataclasses import dataclass

from uvosam.errors import InputError

PRECISIONS = ("fp32", "tf32", "bf16")
RESNET_BLOCKS: dict[int, tuple[int, int, int, int]] = {
    50: (3, 4, 6, 3),
    101: (3, 4, 23, 3),
    152: (3, 8, 36, 3),
}
"""Bottleneck blocks per stage (res2..res5) of the detectron2 ResNets that use bottleneck blocks."""

_POSITIVE_INTS = (
    "stem_out_channels",
    "res2_out_channels",
    "width_per_group",
    "num_groups",
    "hidden_dim",
    "input_proj_norm_groups",
    "nheads",
    "dim_feedforward",
    "enc_layers",
    "dec_layers",
    "enc_n_points",
    "dec_n_points",
    "num_queries",
    "num_classes",
    "max_size_test",
    "size_divisibility",
    "batch_infer_len",
)


@dataclass(frozen=True)
class DetectorConfig:
    """IDOL detector hyper-parameters (names follow detectron2's ``MODEL.RESNETS.*`` /
    ``MODEL.IDOL.*``).

    Attributes:
        depth: ResNet depth (bottleneck variants only: 50, 101, 152).
        stem_out_channels: channels of the 7x7 stem conv (``RESNETS.STEM_OUT_CHANNELS``).
        res2_out_channels: output channels of res2; doubled for every later stage.
        width_per_group: bottleneck width per group of res2 (bottleneck = num_groups *
            width_per_group); doubled for every later stage.
        num_groups: groups of the 3x3 bottleneck convs (1 = ResNet, >1 = ResNeXt).
        stride_in_1x1: stride in the first 1x1 conv (MSRA/Caffe layout) instead of the 3x3.
        res5_dilation: 1 or 2 (2 keeps res5 at stride 16).
        hidden_dim: transformer width (also the re-id embedding size).
        input_proj_norm_groups: groups of the ``GroupNorm`` after each input projection (32, Deformable DETR's and
            the release's; not in checkpoints or YAMLs). A group needs more than one value per frame: with
            ``hidden_dim / groups == 1`` a 1x1 extra level (a small square frame) cannot be normalised.
        nheads: attention heads (deformable and decoder self-attention).
        dim_feedforward: FFN width.
        enc_layers: deformable encoder layers.
        dec_layers: deformable decoder layers (one class/box head each, iterative box refinement).
        enc_n_points: sampling points per head and level in the encoder.
        dec_n_points: sampling points per head and level in the decoder.
        num_feature_levels: res3, res4, res5 + ``num_feature_levels - 3`` extra stride-2 levels
            (>= 3).
        num_queries: object queries per frame.
        num_classes: classifier outputs (sigmoid, no background); 1 for UVOSAM (class-agnostic).
        pixel_mean: per-channel mean in RGB order, on 0-255 values.
        pixel_std: per-channel std in RGB order, on 0-255 values.
        min_size_test: the shortest frame edge is resized to this (``INPUT.MIN_SIZE_TEST``); 0: frames are
            not resized at all (detectron2's ``ResizeShortestEdge`` with size 0; ``max_size_test`` unused).
        max_size_test: cap for the longest edge after resizing (``INPUT.MAX_SIZE_TEST``).
        size_divisibility: network input is zero-padded (bottom/right) to a multiple of this.
        batch_infer_len: frames per forward pass (only bounds memory; frames never interact).
        precision: ``"fp32"`` (exact, the parity reference; TF32 off on CUDA), ``"tf32"`` (CUDA: TF32
            matmul/conv while the detector runs) or ``"bf16"`` (autocast to bfloat16; outputs returned in
            float32). Not an architecture setting: it changes only how ``detect_frames`` computes.
    """

    depth: int = 50
    stem_out_channels: int = 64
    res2_out_channels: int = 256
    width_per_group: int = 64
    num_groups: int = 1
    stride_in_1x1: bool = False
    res5_dilation: int = 1
    hidden_dim: int = 256
    input_proj_norm_groups: int = 32
    nheads: int = 8
    dim_feedforward: int = 1024
    enc_layers: int = 6
    dec_layers: int = 6
    enc_n_points: int = 4
    dec_n_points: int = 4
    num_feature_levels: int = 4
    num_queries: int = 300
    num_classes: int = 1
    pixel_mean: tuple[float, float, float] = (123.675, 116.28, 103.53)
    pixel_std: tuple[float, float, float] = (58.395, 57.12, 57.375)
    min_size_test: int = 480
    max_size_test: int = 1333
    size_divisibility: int = 32
    batch_infer_len: int = 10
    precision: str = "fp32"

    def __post_init__(self) -> None:
        for name in _POSITIVE_INTS:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise InputError(f"DetectorConfig.{name} must be a positive int; got {value!r}")
        size = self.min_size_test
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise InputError(
                "DetectorConfig.min_size_test must be a positive int (the shortest edge's size), or 0 for no "
                f"resize; got {size!r}"
            )
        self._check_architecture()
        if self.precision not in PRECISIONS:
            raise InputError(
                f"DetectorConfig.precision must be one of {PRECISIONS}; got {self.precision!r}"
            )
        for name in ("pixel_mean", "pixel_std"):
            value = getattr(self, name)
            if len(value) != 3:
                raise InputError(
                    f"DetectorConfig.{name} must have 3 entries (R, G, B); got {value!r}"
                )
            object.__setattr__(self, name, tuple(float(v) for v in value))
        if min(self.pixel_std) <= 0:
            raise InputError(f"DetectorConfig.pixel_std must be positive; got {self.pixel_std!r}")

    def _check_architecture(self) -> None:
        if self.depth not in RESNET_BLOCKS:
            raise InputError(
                f"DetectorConfig.depth must be one of {sorted(RESNET_BLOCKS)} "
                "(bottleneck ResNets); "
                f"got {self.depth!r}"
            )
        if self.res5_dilation not in (1, 2):
            raise InputError(
                f"DetectorConfig.res5_dilation must be 1 or 2; got {self.res5_dilation!r}"
            )
        if self.hidden_dim % self.input_proj_norm_groups:
            raise InputError(
                "DetectorConfig.hidden_dim must be a multiple of input_proj_norm_groups "
                f"({self.input_proj_norm_groups}, GroupNorm groups); got {self.hidden_dim!r}"
            )
        if self.hidden_dim % self.nheads:
            raise InputError(
                f"DetectorConfig.hidden_dim ({self.hidden_dim}) must be divisible by nheads; "
                f"got nheads={self.nheads!r}"
            )
        if isinstance(self.num_feature_levels, bool) or self.num_feature_levels < 3:
            raise InputError(
                "DetectorConfig.num_feature_levels must be >= 3 (res3, res4, res5 + extra levels); "
                f"got {self.num_feature_levels!r}"
            )

    @classmethod
    def davis_r50(cls) -> DetectorConfig:
        """The released UVOSAM tracker (``davis_r50.yaml``, checkpoint ``davis.pth``)."""
        return cls()

    @classmethod
    def tiny(cls) -> DetectorConfig:
        """Toy sizes for CPU tests (real layout, random weights, well under a second per small
        frame)."""
        return cls(
            stem_out_channels=8,
            res2_out_channels=16,
            width_per_group=4,
            hidden_dim=32,
            input_proj_norm_groups=8,  # 4 channels a group: a 1x1 extra level still normalises
            nheads=4,
            dim_feedforward=64,
            enc_layers=1,
            dec_layers=2,
            enc_n_points=2,
            dec_n_points=2,
            num_queries=8,
            min_size_test=64,
            max_size_test=128,
            batch_infer_len=3,
        )
