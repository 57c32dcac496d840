"""Normalised sine position encoding of DETR / Deformable DETR (Carion 2020; Zhu 2021).

Deformable-DETR variant: cumulative counts are shifted by 0.5 before normalisation. Padded positions
get large garbage values, exactly as in the original (they are masked out of attention anyway).
"""

from __future__ import annotations

import math

import torch

TEMPERATURE = 10000.0
SCALE = 2 * math.pi
EPS = 1e-6


def sine_position_embedding(mask: torch.Tensor, num_pos_feats: int) -> torch.Tensor:
    """Position embedding of a padded feature map.

    Args:
        mask: (N, H, W) bool, True on padding.
        num_pos_feats: channels per axis (hidden_dim // 2); must be even.

    Returns:
        (N, 2 * num_pos_feats, H, W) float32: channels ``[0, num_pos_feats)`` encode y, the rest x;
        within each half, even channels are sines and odd channels cosines of the same frequency.
    """
    not_mask = ~mask
    y_embed = not_mask.cumsum(1, dtype=torch.float32)
    x_embed = not_mask.cumsum(2, dtype=torch.float32)
    y_embed = (y_embed - 0.5) / (y_embed[:, -1:, :] + EPS) * SCALE
    x_embed = (x_embed - 0.5) / (x_embed[:, :, -1:] + EPS) * SCALE
    dim_t = torch.arange(num_pos_feats, dtype=torch.float32, device=mask.device)
    dim_t = TEMPERATURE ** (2 * torch.div(dim_t, 2, rounding_mode="floor") / num_pos_feats)
    pos_x = _interleave_sin_cos(x_embed[:, :, :, None] / dim_t)
    pos_y = _interleave_sin_cos(y_embed[:, :, :, None] / dim_t)
    return torch.cat((pos_y, pos_x), dim=3).permute(0, 3, 1, 2)


def _interleave_sin_cos(angles: torch.Tensor) -> torch.Tensor:
    """(N, H, W, F) -> (N, H, W, F): sin of even channels and cos of odd channels, interleaved."""
    return torch.stack((angles[..., 0::2].sin(), angles[..., 1::2].cos()), dim=4).flatten(3)
