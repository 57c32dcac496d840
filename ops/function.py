"""Autograd wrapper and launcher of the Triton multi-scale deformable attention kernels (see ``_kernels.py``).

Triton launches a kernel on torch's *current* CUDA device and stream, not on its arguments' device
(triton-lang/triton#2441), so every launch runs inside ``torch.cuda.device_of(value)``: a model on
``cuda:1`` (``--device cuda:1``) must not have its kernels launched on ``cuda:0``. A no-op for CPU tensors.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch.autograd.function import once_differentiable
from triton.runtime.interpreter import InterpretedFunction

from ._kernels import _msda_bwd_kernel, _msda_fwd_kernel

#: True when the kernels were decorated under ``TRITON_INTERPRET=1`` (they then run on CPU tensors, slowly).
INTERPRETED: bool = isinstance(_msda_fwd_kernel, InterpretedFunction)

_INT32_MAX = 2**31 - 1
_NUM_WARPS = 4
# BLOCK_Q * BLOCK_D elements per program: 32 queries at D = 32, i.e. 8 per thread per (BLOCK_Q, BLOCK_D) tile with
# 4 warps; sm_90 ptxas: forward 56 registers (fp32), backward 80, no spills (see compile_check.py).
_TILE = 1024


def _check_inputs(
    value: torch.Tensor,
    spatial_shapes: torch.Tensor,
    level_start_index: torch.Tensor,
    sampling_locations: torch.Tensor,
    attention_weights: torch.Tensor,
) -> None:
    """Raise ValueError/TypeError for inconsistent shapes, devices or dtypes (without a device sync)."""
    if value.dim() != 4 or sampling_locations.dim() != 6 or attention_weights.dim() != 5:
        raise ValueError(
            "expected value (N, S, M, D), sampling_locations (N, Lq, M, L, P, 2), "
            f"attention_weights (N, Lq, M, L, P); got {tuple(value.shape)}, "
            f"{tuple(sampling_locations.shape)}, {tuple(attention_weights.shape)}"
        )
    n, _, m, _ = value.shape
    _, lq, _, n_levels, n_points, _ = sampling_locations.shape
    if (
        sampling_locations.shape != (n, lq, m, n_levels, n_points, 2)
        or attention_weights.shape != sampling_locations.shape[:-1]
        or spatial_shapes.shape != (n_levels, 2)
        or level_start_index.shape != (n_levels,)
    ):
        raise ValueError(
            f"inconsistent shapes: value {tuple(value.shape)}, spatial_shapes "
            f"{tuple(spatial_shapes.shape)}, level_start_index {tuple(level_start_index.shape)}, "
            f"sampling_locations {tuple(sampling_locations.shape)}, attention_weights "
            f"{tuple(attention_weights.shape)}; N, M and L (= len(spatial_shapes)) must agree and "
            "the last loc axis must be (x, y)"
        )
    tensors = (value, spatial_shapes, level_start_index, sampling_locations, attention_weights)
    if len({t.device for t in tensors}) != 1:
        raise ValueError(
            f"all inputs must be on one device; got {[str(t.device) for t in tensors]}"
        )
    if value.device.type != "cuda" and not INTERPRETED:
        raise ValueError(
            f"ms_deform_attn_triton needs CUDA tensors, got {value.device}; use the PyTorch "
            "reference (uvosam.tracker.msda.ms_deform_attn dispatches) or import this package "
            "under TRITON_INTERPRET=1"
        )
    if not all(t.is_floating_point() for t in (value, sampling_locations, attention_weights)):
        raise TypeError("value, sampling_locations and attention_weights must be floating point")
    if max(value.numel(), sampling_locations.numel()) > _INT32_MAX:
        raise ValueError(
            "inputs with more than 2**31 - 1 elements are not supported (int32 offsets); split N"
        )


def _launch_config(lq: int, d: int, tile: int, block_q: int | None) -> tuple[int, int]:
    """(BLOCK_Q, BLOCK_D): BLOCK_D covers D (power of two, masked), BLOCK_Q fills ``tile`` elements."""
    block_d = triton.next_power_of_2(d)
    if block_q is None:
        block_q = max(16, min(128, tile // block_d))
        block_q = min(block_q, max(16, triton.next_power_of_2(lq)))
    return block_q, block_d


def _compute_dtype(*tensors: torch.Tensor) -> tl.dtype:
    """float64 if any input is float64, else float32 (fp16 / bf16 are accumulated in float32)."""
    return tl.float64 if any(t.dtype == torch.float64 for t in tensors) else tl.float32


class MSDeformAttnFunction(torch.autograd.Function):
    """``out = msda(value, loc, attn)``; gradients for value, sampling locations and attention weights."""

    @staticmethod
    def forward(
        ctx,
        value,
        spatial_shapes,
        level_start_index,
        sampling_locations,
        attention_weights,
        block_q,
    ):
        value, loc, attn = (t.contiguous() for t in (value, sampling_locations, attention_weights))
        shapes = spatial_shapes.contiguous().long()
        starts = level_start_index.contiguous().long()
        n, s, m, d = value.shape
        _, lq, _, n_levels, n_points, _ = loc.shape
        out = value.new_empty((n, lq, m * d))
        bq, bd = _launch_config(lq, d, _TILE, block_q)
        if out.numel():
            with torch.cuda.device_of(value):  # see the module docstring
                _msda_fwd_kernel[(triton.cdiv(lq, bq), m, n)](
                    value, shapes, starts, loc, attn, out, s, lq,
                    M=m, D=d, L=n_levels, P=n_points, BLOCK_Q=bq, BLOCK_D=bd,
                    COMPUTE=_compute_dtype(value, loc, attn), num_warps=_NUM_WARPS,
                )  # fmt: skip
        ctx.save_for_backward(value, shapes, starts, loc, attn)
        ctx.block_q = block_q
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out):
        value, shapes, starts, loc, attn = ctx.saved_tensors
        n, s, m, d = value.shape
        _, lq, _, n_levels, n_points, _ = loc.shape
        compute = _compute_dtype(value, loc, attn)
        acc_dtype = torch.float64 if compute == tl.float64 else torch.float32
        grad_value = torch.zeros(value.shape, dtype=acc_dtype, device=value.device)
        grad_loc = torch.zeros_like(loc)
        grad_attn = torch.zeros_like(attn)
        bq, bd = _launch_config(lq, d, _TILE, ctx.block_q)
        if grad_out.numel():
            with torch.cuda.device_of(value):
                _msda_bwd_kernel[(triton.cdiv(lq, bq), m, n)](
                    value, shapes, starts, loc, attn, grad_out.contiguous(),
                    grad_value, grad_loc, grad_attn, s, lq,
                    M=m, D=d, L=n_levels, P=n_points, BLOCK_Q=bq, BLOCK_D=bd, COMPUTE=compute,
                    num_warps=_NUM_WARPS,
                )  # fmt: skip
        needs = ctx.needs_input_grad
        return (
            grad_value.to(value.dtype) if needs[0] else None,
            None,
            None,
            grad_loc if needs[3] else None,
            grad_attn if needs[4] else None,
            None,
        )


def ms_deform_attn_triton(
    value: torch.Tensor,
    spatial_shapes: torch.Tensor,
    level_start_index: torch.Tensor,
    sampling_locations: torch.Tensor,
    attention_weights: torch.Tensor,
    *,
    block_q: int | None = None,
) -> torch.Tensor:
    """Multi-scale deformable attention (same numerics as ``uvosam.tracker.msda.ms_deform_attn_pytorch``).

    Args:
        value: (N, S, M, D) float32 / float16 / bfloat16 / float64, S = sum_l H_l * W_l, levels row-major in order.
        spatial_shapes: (L, 2) int64 ``(H_l, W_l)``.
        level_start_index: (L,) int64, the exclusive cumulative sum of ``H_l * W_l``.
        sampling_locations: (N, Lq, M, L, P, 2) ``(x, y)`` normalised to [0, 1] on each level's map.
        attention_weights: (N, Lq, M, L, P).
        block_q: queries per program (power of two); None picks one from D (tests use small blocks).

    Returns:
        (N, Lq, M * D) in value's dtype (accumulated in float32, or float64 for float64 inputs); channel
        ``m * D + d`` = head m, channel d. Differentiable w.r.t. value, sampling_locations, attention_weights.
    """
    if block_q is not None and (block_q < 1 or block_q & (block_q - 1)):
        raise ValueError(f"block_q must be a power of two, got {block_q}")
    _check_inputs(value, spatial_shapes, level_start_index, sampling_locations, attention_weights)
    return MSDeformAttnFunction.apply(
        value, spatial_shapes, level_start_index, sampling_locations, attention_weights, block_q
    )
