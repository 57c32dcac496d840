"""Triton kernels of multi-scale deformable attention (Deformable DETR, Zhu et al. 2021, arXiv 2010.04159).

One program handles one (batch n, block of ``BLOCK_Q`` queries, head m) and keeps a ``(BLOCK_Q, BLOCK_D)`` register
tile whose columns are the head's ``D`` channels (contiguous in memory, so every corner gather reads ``D``
consecutive values per query). The ``L * P`` sampling points are a runtime loop with a constexpr trip count: a
fully unrolled loop lets the compiler hoist all 4 * L * P corner gathers and spill registers (checked with ptxas).

Numerics follow the grid_sample reference exactly (TRACKER_SPEC §3.3): pixel coordinates ``x = loc_x * W - 0.5``,
``y = loc_y * H - 0.5``; bilinear weights of the corners ``(y0, x0), (y0, x0 + 1), (y0 + 1, x0), (y0 + 1, x0 + 1)``;
a corner outside ``[0, H - 1] x [0, W - 1]`` contributes 0 (and receives no gradient). Unlike the original CUDA
kernel there is no extra "skip the whole sample unless -1 < x < W" test: it only differs from grid_sample on the
measure-zero boundary ``x == -1`` / ``y == -1``, where we follow grid_sample. Coordinates are clamped to
``[-2, size + 1]`` before ``floor`` so far-away samples (all four corners outside) cannot overflow the int cast.

Layouts (all contiguous, int32 offsets; the launcher checks sizes):
value (N, S, M, D); shapes (L, 2) int64 (H, W); starts (L,) int64; loc (N, Lq, M, L, P, 2) (x, y);
attn (N, Lq, M, L, P); out / grad_out (N, Lq, M * D). Arithmetic is done in ``COMPUTE`` (float32, or float64 for
float64 inputs); loads of fp16/bf16 are upcast, stores cast to the destination's dtype.
"""

from __future__ import annotations

import triton
import triton.language as tl


@triton.jit
def _level(shapes_ptr, starts_ptr, lvl):
    """(H, W, start row) of level ``lvl`` as int32 scalars."""
    h = tl.load(shapes_ptr + 2 * lvl).to(tl.int32)
    w = tl.load(shapes_ptr + 2 * lvl + 1).to(tl.int32)
    start = tl.load(starts_ptr + lvl).to(tl.int32)
    return h, w, start


@triton.jit
def _sample_point(loc_ptr, attn_ptr, idx, q_mask, h, w, COMPUTE: tl.constexpr):
    """Attention weight, integer top-left corner and fractional offsets of one point for a block of queries.

    ``idx`` (BLOCK_Q,) indexes attn (and ``2 * idx`` loc). Returns a, x0, y0, fx, fy, each (BLOCK_Q,).
    """
    a = tl.load(attn_ptr + idx, mask=q_mask, other=0.0).to(COMPUTE)
    x = tl.load(loc_ptr + 2 * idx, mask=q_mask, other=0.0).to(COMPUTE) * w - 0.5
    y = tl.load(loc_ptr + 2 * idx + 1, mask=q_mask, other=0.0).to(COMPUTE) * h - 0.5
    x = tl.minimum(tl.maximum(x, -2.0), w + 1.0)
    y = tl.minimum(tl.maximum(y, -2.0), h + 1.0)
    x0f = tl.floor(x)
    y0f = tl.floor(y)
    return a, x0f.to(tl.int32), y0f.to(tl.int32), x - x0f, y - y0f


@triton.jit
def _corner(
    value_base, row0, yc, xc, h, w, q_mask, d, d_mask, ROW: tl.constexpr, COMPUTE: tl.constexpr
):
    """Gather one bilinear corner ``(yc, xc)`` (each (BLOCK_Q,)) for a block of queries.

    Returns the (BLOCK_Q, BLOCK_D) values (0 where the corner is outside the map or the query is padding), their
    element offsets from ``value_base`` and the 2-d validity mask (the backward scatters with these).
    """
    inside = (yc >= 0) & (yc < h) & (xc >= 0) & (xc < w) & q_mask
    offs = (row0 + yc * w + xc)[:, None] * ROW + d[None, :]
    mask = inside[:, None] & d_mask[None, :]
    v = tl.load(value_base + offs, mask=mask, other=0.0).to(COMPUTE)
    return v, offs, mask


@triton.jit
def _msda_fwd_kernel(
    value_ptr, shapes_ptr, starts_ptr, loc_ptr, attn_ptr, out_ptr,
    S, Lq,
    M: tl.constexpr, D: tl.constexpr, L: tl.constexpr, P: tl.constexpr,
    BLOCK_Q: tl.constexpr, BLOCK_D: tl.constexpr, COMPUTE: tl.constexpr,
):  # fmt: skip
    """out[n, q, m * D + d] = sum_{l,p} attn * bilinear(value[n, level l, m, d]; loc).

    Grid (cdiv(Lq, BLOCK_Q), M, N).
    """
    m = tl.program_id(1)
    n = tl.program_id(2)
    q = tl.program_id(0) * BLOCK_Q + tl.arange(0, BLOCK_Q)
    d = tl.arange(0, BLOCK_D)
    q_mask = q < Lq
    d_mask = d < D
    qm = (n * Lq + q) * M + m
    vb = value_ptr + n * S * (M * D) + m * D
    acc = tl.zeros((BLOCK_Q, BLOCK_D), dtype=COMPUTE)
    for lp in range(L * P):
        h, w, r0 = _level(shapes_ptr, starts_ptr, lp // P)
        idx = qm * (L * P) + lp
        a, x0, y0, fx, fy = _sample_point(loc_ptr, attn_ptr, idx, q_mask, h, w, COMPUTE)
        v00, _, _ = _corner(vb, r0, y0, x0, h, w, q_mask, d, d_mask, M * D, COMPUTE)
        v01, _, _ = _corner(vb, r0, y0, x0 + 1, h, w, q_mask, d, d_mask, M * D, COMPUTE)
        v10, _, _ = _corner(vb, r0, y0 + 1, x0, h, w, q_mask, d, d_mask, M * D, COMPUTE)
        v11, _, _ = _corner(vb, r0, y0 + 1, x0 + 1, h, w, q_mask, d, d_mask, M * D, COMPUTE)
        wx1 = fx[:, None]
        wy1 = fy[:, None]
        top = v00 + (v01 - v00) * wx1
        bottom = v10 + (v11 - v10) * wx1
        acc += (top + (bottom - top) * wy1) * a[:, None]
    out_offs = qm[:, None] * D + d[None, :]
    out_mask = q_mask[:, None] & d_mask[None, :]
    tl.store(out_ptr + out_offs, acc.to(out_ptr.dtype.element_ty), mask=out_mask)


@triton.jit
def _msda_bwd_kernel(
    value_ptr, shapes_ptr, starts_ptr, loc_ptr, attn_ptr, grad_out_ptr,
    grad_value_ptr, grad_loc_ptr, grad_attn_ptr,
    S, Lq,
    M: tl.constexpr, D: tl.constexpr, L: tl.constexpr, P: tl.constexpr,
    BLOCK_Q: tl.constexpr, BLOCK_D: tl.constexpr, COMPUTE: tl.constexpr,
):  # fmt: skip
    """Gradients of the forward; same grid.

    grad_value (value's layout, float32 or float64) is accumulated with atomic adds and must be zeroed by the
    caller; grad_loc / grad_attn are written once per point (their sums over D are register reductions).
    """
    m = tl.program_id(1)
    n = tl.program_id(2)
    q = tl.program_id(0) * BLOCK_Q + tl.arange(0, BLOCK_Q)
    d = tl.arange(0, BLOCK_D)
    q_mask = q < Lq
    d_mask = d < D
    qm = (n * Lq + q) * M + m
    vb = value_ptr + n * S * (M * D) + m * D
    gvb = grad_value_ptr + n * S * (M * D) + m * D
    g_mask = q_mask[:, None] & d_mask[None, :]
    g = tl.load(grad_out_ptr + qm[:, None] * D + d[None, :], mask=g_mask, other=0.0).to(COMPUTE)
    for lp in range(L * P):
        h, w, r0 = _level(shapes_ptr, starts_ptr, lp // P)
        idx = qm * (L * P) + lp
        a, x0, y0, fx, fy = _sample_point(loc_ptr, attn_ptr, idx, q_mask, h, w, COMPUTE)
        v00, o00, k00 = _corner(vb, r0, y0, x0, h, w, q_mask, d, d_mask, M * D, COMPUTE)
        v01, o01, k01 = _corner(vb, r0, y0, x0 + 1, h, w, q_mask, d, d_mask, M * D, COMPUTE)
        v10, o10, k10 = _corner(vb, r0, y0 + 1, x0, h, w, q_mask, d, d_mask, M * D, COMPUTE)
        v11, o11, k11 = _corner(vb, r0, y0 + 1, x0 + 1, h, w, q_mask, d, d_mask, M * D, COMPUTE)
        wx0 = (1.0 - fx)[:, None]
        wx1 = fx[:, None]
        wy0 = (1.0 - fy)[:, None]
        wy1 = fy[:, None]
        sample = (v00 * wx0 + v01 * wx1) * wy0 + (v10 * wx0 + v11 * wx1) * wy1
        dx = (v01 - v00) * wy0 + (v11 - v10) * wy1
        dy = (v10 - v00) * wx0 + (v11 - v01) * wx1
        g_attn = tl.sum(g * sample, axis=1)
        g_x = tl.sum(g * dx, axis=1) * a * w
        g_y = tl.sum(g * dy, axis=1) * a * h
        tl.store(grad_attn_ptr + idx, g_attn.to(grad_attn_ptr.dtype.element_ty), mask=q_mask)
        tl.store(grad_loc_ptr + 2 * idx, g_x.to(grad_loc_ptr.dtype.element_ty), mask=q_mask)
        tl.store(grad_loc_ptr + 2 * idx + 1, g_y.to(grad_loc_ptr.dtype.element_ty), mask=q_mask)
        ga = g * a[:, None]
        tl.atomic_add(gvb + o00, ga * (wx0 * wy0), mask=k00, sem="relaxed")
        tl.atomic_add(gvb + o01, ga * (wx1 * wy0), mask=k01, sem="relaxed")
        tl.atomic_add(gvb + o10, ga * (wx0 * wy1), mask=k10, sem="relaxed")
        tl.atomic_add(gvb + o11, ga * (wx1 * wy1), mask=k11, sem="relaxed")
