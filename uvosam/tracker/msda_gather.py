"""Multi-scale deformable attention as one weighted gather: the CPU backend.

The reference (``uvosam.tracker.msda.ms_deform_attn_pytorch``) samples each level with ``grid_sample`` into an
(N·M, D, Lq, P) tensor, stacks the levels and weights them. Here the same sum is written out: every sampling point
reads the (up to) four value rows around it, ``x = loc_x * W_l - 0.5`` and ``y = loc_y * H_l - 0.5`` in pixels
(pixel centres at integers, as ``grid_sample(align_corners=False)``), with bilinear weights, and a corner outside
the map counts zero (``padding_mode="zeros"``). Folding the attention weight into each corner's bilinear weight
leaves, per query and head, a weighted sum of L·P·4 rows of ``value``, which ``F.embedding_bag(mode="sum")``
computes without materialising the sampled tensor. On the 2-core CPU of this project (``benchmarks/msda.py
--device cpu``) the forward pass at a 480x854 frame's encoder shape took 52 ms vs 298 ms (batch 1) and 580 ms vs
2037 ms (batch 10); its results equal the reference's within float rounding (≤ 1e-5 on the tests' odd shapes). It
is differentiable in the same three inputs (autograd through ``embedding_bag``'s table and per-sample weights; the
bilinear weights carry the gradient of the locations), but its backward is not faster than the reference's, so the
dispatcher gives it only calls that need no gradients.

Locations, weights and row numbers are computed in float32 (float64 for float64 locations, or when a row number
could exceed float32's exact integers: N·S·M ≥ 2**24); only the corner weights are rounded to ``value``'s dtype.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

_FLOAT32_EXACT = 2**24
# Sampling points per embedding_bag call: a 480x854 frame's encoder (8617 queries x 8 heads x 16 points) runs in
# chunks of 4096 queries, whose index and weight tensors stay in cache; a batch of 10 such frames in one call
# took 1.4x as long per frame.
CHUNK_POINTS = 2**19


def ms_deform_attn_gather(
    value: torch.Tensor,
    spatial_shapes: torch.Tensor,
    level_start_index: torch.Tensor,
    sampling_locations: torch.Tensor,
    attention_weights: torch.Tensor,
) -> torch.Tensor:
    """Multi-scale deformable attention (the reference's arguments plus ``level_start_index``).

    Args:
        value: (N, S, M, D) per-head values, levels concatenated row-major in level order.
        spatial_shapes: (L, 2) int64 ``(H_l, W_l)``.
        level_start_index: (L,) int64, the exclusive cumulative sum of ``H_l * W_l``.
        sampling_locations: (N, Lq, M, L, P, 2) ``(x, y)`` normalised to [0, 1] on each level's map.
        attention_weights: (N, Lq, M, L, P), already softmax-normalised over L * P.

    Returns:
        (N, Lq, M * D), channel ``m * D + d`` = head m, channel d; ``value``'s dtype.
    """
    n, _, m, d = value.shape
    _, lq, _, n_levels, n_points, _ = sampling_locations.shape
    value = value.contiguous()  # images sliced off along dim 0 stay views
    out = value.new_empty(n, lq, m * d)
    for images, queries in _chunks(n, lq, max(1, CHUNK_POINTS // (m * n_levels * n_points))):
        out[images, queries] = _gather(
            value[images],
            spatial_shapes,
            level_start_index,
            sampling_locations[images, queries],
            attention_weights[images, queries],
        )
    return out


def _chunks(n: int, lq: int, queries_per_chunk: int) -> list[tuple[slice, slice]]:
    """(images, queries) slices covering an (n, lq) grid of queries, about ``queries_per_chunk`` each: whole images
    grouped when an image has fewer queries, else ranges of queries within each image."""
    if lq == 0 or lq <= queries_per_chunk:
        group = max(1, queries_per_chunk // max(lq, 1))
        return [(slice(i, min(i + group, n)), slice(0, lq)) for i in range(0, n, group)]
    return [
        (slice(i, i + 1), slice(q, min(q + queries_per_chunk, lq)))
        for i in range(n)
        for q in range(0, lq, queries_per_chunk)
    ]


def _gather(
    value: torch.Tensor,
    spatial_shapes: torch.Tensor,
    level_start_index: torch.Tensor,
    sampling_locations: torch.Tensor,
    attention_weights: torch.Tensor,
) -> torch.Tensor:
    """``ms_deform_attn_gather`` in one ``embedding_bag`` call (same arguments; ``value`` contiguous)."""
    n, s, m, d = value.shape
    _, lq, _, n_levels, n_points, _ = sampling_locations.shape
    exact32 = n * s * m < _FLOAT32_EXACT and sampling_locations.dtype != torch.float64
    index_dtype = torch.float32 if exact32 else torch.float64
    rows, weights = _corner_rows_and_weights(
        spatial_shapes, level_start_index, sampling_locations, attention_weights, s, m, index_dtype
    )
    out = F.embedding_bag(
        rows.view(n * lq * m, n_levels * n_points * 4),
        value.view(n * s * m, d),
        per_sample_weights=weights.view(n * lq * m, n_levels * n_points * 4).to(value.dtype),
        mode="sum",
    )
    return out.view(n, lq, m * d)


def _corner_rows_and_weights(
    spatial_shapes: torch.Tensor,
    level_start_index: torch.Tensor,
    sampling_locations: torch.Tensor,
    attention_weights: torch.Tensor,
    s: int,
    m: int,
    index_dtype: torch.dtype,
) -> tuple[torch.Tensor, torch.Tensor]:
    """For every sampling point, the rows of ``value.reshape(N*S*M, D)`` at its four bilinear corners and their
    weights (bilinear x attention, 0 outside the map); both (N, Lq, M, L, P, 4), corners ordered
    (y0,x0), (y0,x1), (y1,x0), (y1,x1). Rows of zero-weight corners are clamped into the table."""
    n, _, _, n_levels, _, _ = sampling_locations.shape
    locations = sampling_locations.to(index_dtype)
    shapes = spatial_shapes.to(device=locations.device, dtype=index_dtype)
    height = shapes[:, 0].view(n_levels, 1)
    width = shapes[:, 1].view(n_levels, 1)
    x = locations[..., 0] * width - 0.5
    y = locations[..., 1] * height - 0.5
    x0 = x.floor()
    y0 = y.floor()
    weight_x = _axis_weights(x - x0, x0, width)
    weight_y = _axis_weights(y - y0, y0, height) * attention_weights.to(index_dtype).unsqueeze(-1)
    weights = (weight_y.unsqueeze(-1) * weight_x.unsqueeze(-2)).flatten(-2)

    starts = level_start_index.to(device=locations.device, dtype=index_dtype).view(n_levels, 1)
    batch = torch.arange(n, device=locations.device, dtype=index_dtype).view(n, 1, 1, 1, 1)
    head = torch.arange(m, device=locations.device, dtype=index_dtype).view(1, 1, m, 1, 1)
    first = ((batch * s + starts + y0 * width + x0) * m + head).unsqueeze(-1)
    corner_steps = (
        torch.stack([torch.zeros_like(width), torch.ones_like(width), width, width + 1], dim=-1) * m
    )  # (L, 1, 4): the (y0,x1), (y1,x0), (y1,x1) rows lie 1, W and W+1 pixels after (y0,x0)
    rows = (first + corner_steps).nan_to_num_(0.0).clamp_(0, n * s * m - 1)
    return rows.long(), weights


def _axis_weights(frac: torch.Tensor, low: torch.Tensor, size: torch.Tensor) -> torch.Tensor:
    """Bilinear weights of the two neighbours ``low`` and ``low + 1`` along one axis, 0 for a neighbour outside
    ``[0, size)``: (..., 2)."""
    zero = frac.new_zeros(())
    low_weight = torch.where((low >= 0) & (low < size), 1 - frac, zero)
    high_weight = torch.where((low >= -1) & (low < size - 1), frac, zero)
    return torch.stack([low_weight, high_weight], dim=-1)
