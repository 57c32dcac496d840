"""Multi-scale deformable attention core (Deformable DETR, Zhu et al. 2021, arXiv 2010.04159).

``ms_deform_attn_pytorch`` is the readable reference (bilinear ``grid_sample``, zero padding,
``align_corners=False``, i.e. pixel centres at ``(i + 0.5) / W``): it runs everywhere and defines the numerics.
``ms_deform_attn`` is what the model calls.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def ms_deform_attn_pytorch(
    value: torch.Tensor,
    spatial_shapes: torch.Tensor,
    sampling_locations: torch.Tensor,
    attention_weights: torch.Tensor,
) -> torch.Tensor:
    """Reference multi-scale deformable attention.

    Args:
        value: (N, S, M, D) per-head values, S = sum_l H_l * W_l, levels concatenated row-major in level order.
        spatial_shapes: (L, 2) int64 ``(H_l, W_l)``.
        sampling_locations: (N, Lq, M, L, P, 2) ``(x, y)`` normalised to [0, 1] on each level's (padded) map.
        attention_weights: (N, Lq, M, L, P), already softmax-normalised over L * P.

    Returns:
        (N, Lq, M * D), channel ``m * D + d`` = head m, channel d.
    """
    n, _, m, d = value.shape
    _, lq, _, n_levels, n_points, _ = sampling_locations.shape
    sizes = [int(h) * int(w) for h, w in spatial_shapes.tolist()]
    value_list = value.split(sizes, dim=1)
    grids = 2 * sampling_locations - 1
    sampled = []
    for lvl, (h, w) in enumerate(spatial_shapes.tolist()):
        value_l = value_list[lvl].flatten(2).transpose(1, 2).reshape(n * m, d, int(h), int(w))
        grid_l = grids[:, :, :, lvl].transpose(1, 2).flatten(0, 1)
        sampled.append(
            F.grid_sample(value_l, grid_l, mode="bilinear", padding_mode="zeros", align_corners=False)
        )
    weights = attention_weights.transpose(1, 2).reshape(n * m, 1, lq, n_levels * n_points)
    out = (torch.stack(sampled, dim=-2).flatten(-2) * weights).sum(-1)
    return out.view(n, m * d, lq).transpose(1, 2).contiguous()


def ms_deform_attn(
    value: torch.Tensor,
    spatial_shapes: torch.Tensor,
    level_start_index: torch.Tensor,
    sampling_locations: torch.Tensor,
    attention_weights: torch.Tensor,
) -> torch.Tensor:
    """Multi-scale deformable attention as called by the model (same arguments/return as the reference, plus
    ``level_start_index`` (L,) int64, the exclusive cumulative sum of ``H_l * W_l`` used by fused kernels)."""
    del level_start_index  # the reference derives level offsets from spatial_shapes
    return ms_deform_attn_pytorch(value, spatial_shapes, sampling_locations, attention_weights)
