"""Multi-scale deformable attention module (Deformable DETR, Zhu et al. 2021, arXiv 2010.04159).

Parameter names match the original ``MSDeformAttn`` (``sampling_offsets``, ``attention_weights``,
``value_proj``, ``output_proj``). The sampling core is ``uvosam.tracker.msda.ms_deform_attn``
(reference or fused kernel).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from uvosam.errors import InputError
from uvosam.tracker.msda import ms_deform_attn


class MSDeformAttn(nn.Module):
    """Deformable attention over L feature levels, M heads, P sampling points per head and level."""

    def __init__(self, d_model: int, n_levels: int, n_heads: int, n_points: int) -> None:
        super().__init__()
        if d_model % n_heads:
            raise InputError(
                f"MSDeformAttn: d_model ({d_model}) must be divisible by n_heads ({n_heads})"
            )
        self.d_model = d_model
        self.n_levels = n_levels
        self.n_heads = n_heads
        self.n_points = n_points
        self.sampling_offsets = nn.Linear(d_model, n_heads * n_levels * n_points * 2)
        self.attention_weights = nn.Linear(d_model, n_heads * n_levels * n_points)
        self.value_proj = nn.Linear(d_model, d_model)
        self.output_proj = nn.Linear(d_model, d_model)

    def forward(
        self,
        query: torch.Tensor,
        reference_points: torch.Tensor,
        input_flatten: torch.Tensor,
        spatial_shapes: torch.Tensor,
        level_start_index: torch.Tensor,
        padding_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Attend from each query to sampled points around its reference on every level.

        Args:
            query: (N, Lq, C).
            reference_points: (N, Lq, L, 2) ``(x, y)`` or (N, Lq, L, 4) ``(cx, cy, w, h)``,
                normalised to each level's padded map (already multiplied by the valid ratios).
            input_flatten: (N, S, C) values of all levels, row-major, concatenated in level order.
            spatial_shapes: (L, 2) int64 ``(H_l, W_l)``.
            level_start_index: (L,) int64 exclusive cumulative sum of ``H_l * W_l``.
            padding_mask: (N, S) bool, True on padding (those values are zeroed), or None.

        Returns:
            (N, Lq, C).
        """
        locations, weights = self.sampling(query, reference_points, spatial_shapes)
        n, s, _ = input_flatten.shape
        value = self.value_proj(input_flatten)
        if padding_mask is not None:
            value = value.masked_fill(padding_mask[..., None], 0.0)
        value = value.view(n, s, self.n_heads, self.d_model // self.n_heads)
        out = ms_deform_attn(value, spatial_shapes, level_start_index, locations, weights)
        return self.output_proj(out)

    def sampling(
        self, query: torch.Tensor, reference_points: torch.Tensor, spatial_shapes: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Sampling locations (N, Lq, M, L, P, 2) ``(x, y)`` in [0, 1] and attention weights (N, Lq,
        M, L, P) (softmax jointly over the L * P points of each head)."""
        n, lq, _ = query.shape
        m, lvl, p = self.n_heads, self.n_levels, self.n_points
        offsets = self.sampling_offsets(query).view(n, lq, m, lvl, p, 2)
        weights = self.attention_weights(query).view(n, lq, m, lvl * p)
        weights = F.softmax(weights, -1).view(n, lq, m, lvl, p)
        if reference_points.shape[-1] == 2:
            normalizer = torch.stack([spatial_shapes[..., 1], spatial_shapes[..., 0]], -1)
            locations = (
                reference_points[:, :, None, :, None, :]
                + offsets / normalizer[None, None, None, :, None, :]
            )
        elif reference_points.shape[-1] == 4:
            ref = reference_points[:, :, None, :, None]
            locations = ref[..., :2] + offsets / p * ref[..., 2:] * 0.5
        else:
            raise ValueError(
                "reference_points must end in 2 (x, y) or 4 (cx, cy, w, h); "
                f"got shape {tuple(reference_points.shape)}"
            )
        return locations, weights
