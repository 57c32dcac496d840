"""detectron2-layout ResNet with frozen BatchNorm (He et al. 2016), as built by
``build_resnet_backbone``.

Module names follow detectron2 (``stem.conv1``, ``res2.0.conv1``, ``res2.0.shortcut``,
``<conv>.norm``) so the released checkpoints load after stripping the
``detr.detr.backbone.0.backbone.`` prefix. Unlike ``torchvision.models.resnet50`` the stem and res2
widths are set independently of the bottleneck width.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from uvosam.tracker.config import RESNET_BLOCKS, DetectorConfig

FROZEN_BN_EPS = 1e-5


class FrozenBatchNorm2d(nn.Module):
    """BatchNorm with fixed statistics and affine parameters, all buffers (detectron2
    ``FrozenBatchNorm2d``).

    Evaluated with ``F.batch_norm(training=False)`` exactly as detectron2 does at inference.
    """

    def __init__(self, num_features: int, eps: float = FROZEN_BN_EPS) -> None:
        super().__init__()
        self.eps = eps
        self.register_buffer("weight", torch.ones(num_features))
        self.register_buffer("bias", torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features) - eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.batch_norm(
            x,
            self.running_mean,
            self.running_var,
            self.weight,
            self.bias,
            training=False,
            eps=self.eps,
        )


class ConvNorm(nn.Conv2d):
    """Bias-free ``Conv2d`` followed by ``FrozenBatchNorm2d(eps=1e-5)`` stored as ``.norm``
    (detectron2 layout)."""

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int, **kwargs: int
    ) -> None:
        super().__init__(in_channels, out_channels, kernel_size, bias=False, **kwargs)
        self.norm = FrozenBatchNorm2d(out_channels, eps=FROZEN_BN_EPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(super().forward(x))


class Bottleneck(nn.Module):
    """1x1 -> 3x3 -> 1x1 bottleneck with a projection shortcut when the channel count changes."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        bottleneck_channels: int,
        *,
        stride: int,
        num_groups: int,
        stride_in_1x1: bool,
        dilation: int,
    ) -> None:
        super().__init__()
        self.shortcut = (
            ConvNorm(in_channels, out_channels, 1, stride=stride)
            if in_channels != out_channels
            else None
        )
        stride_1x1, stride_3x3 = (stride, 1) if stride_in_1x1 else (1, stride)
        self.conv1 = ConvNorm(in_channels, bottleneck_channels, 1, stride=stride_1x1)
        self.conv2 = ConvNorm(
            bottleneck_channels,
            bottleneck_channels,
            3,
            stride=stride_3x3,
            padding=dilation,
            dilation=dilation,
            groups=num_groups,
        )
        self.conv3 = ConvNorm(bottleneck_channels, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu_(self.conv1(x))
        out = F.relu_(self.conv2(out))
        out = self.conv3(out)
        identity = x if self.shortcut is None else self.shortcut(x)
        return F.relu_(out + identity)


class Stem(nn.Module):
    """7x7/2 conv + FrozenBN + ReLU + 3x3/2 max-pool (stride 4 overall)."""

    def __init__(self, out_channels: int) -> None:
        super().__init__()
        self.conv1 = ConvNorm(3, out_channels, 7, stride=2, padding=3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.max_pool2d(F.relu_(self.conv1(x)), kernel_size=3, stride=2, padding=1)


class ResNetBackbone(nn.Module):
    """ResNet trunk returning res3, res4, res5 (strides 8, 16, 32) and their padding masks.

    Attributes:
        out_channels: channels of (res3, res4, res5).
    """

    def __init__(self, cfg: DetectorConfig) -> None:
        super().__init__()
        self.stem = Stem(cfg.stem_out_channels)
        in_ch, out_ch = cfg.stem_out_channels, cfg.res2_out_channels
        bottleneck = cfg.num_groups * cfg.width_per_group
        channels = []
        for idx, num_blocks in enumerate(RESNET_BLOCKS[cfg.depth]):
            stage = idx + 2
            dilation = cfg.res5_dilation if stage == 5 else 1
            first_stride = 1 if stage == 2 or dilation == 2 else 2
            blocks = []
            for b in range(num_blocks):
                blocks.append(
                    Bottleneck(
                        in_ch,
                        out_ch,
                        bottleneck,
                        stride=first_stride if b == 0 else 1,
                        num_groups=cfg.num_groups,
                        stride_in_1x1=cfg.stride_in_1x1,
                        dilation=dilation,
                    )
                )
                in_ch = out_ch
            self.add_module(f"res{stage}", nn.Sequential(*blocks))
            channels.append(out_ch)
            out_ch, bottleneck = out_ch * 2, bottleneck * 2
        self.out_channels: tuple[int, int, int] = tuple(channels[1:])  # type: ignore[assignment]

    def forward(
        self, images: torch.Tensor, pad_mask: torch.Tensor
    ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Run the trunk.

        Args:
            images: (N, 3, Hp, Wp) float normalised, zero-padded.
            pad_mask: (N, Hp, Wp) bool, True on padding.

        Returns:
            ``[(res3, mask3), (res4, mask4), (res5, mask5)]``: features (N, C_l, h_l, w_l) and bool
            masks (N, h_l, w_l) = legacy-nearest ``F.interpolate`` of ``pad_mask`` to the feature
            size.
        """
        x = self.res2(self.stem(images))
        outputs = []
        for name in ("res3", "res4", "res5"):
            x = getattr(self, name)(x)
            outputs.append((x, resize_mask(pad_mask, x.shape[-2:])))
        return outputs


def resize_mask(mask: torch.Tensor, size: tuple[int, int] | torch.Size) -> torch.Tensor:
    """(N, H, W) bool -> (N, h, w) bool by legacy ``nearest`` interpolation (as detectron2/DETR
    do)."""
    return F.interpolate(mask[None].float(), size=tuple(size)).to(torch.bool)[0]
