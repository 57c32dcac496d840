"""MSDA inputs, reference and comparisons shared by the kernel and the gather tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from uvosam.tracker.msda import ms_deform_attn_pytorch

ARGS = ("value", "spatial_shapes", "level_start_index", "sampling_locations", "attention_weights")
KEYS = ("output", "grad_value", "grad_sampling_locations", "grad_attention_weights")
# Odd shapes: non-square levels, D not a power of two, 7 queries in blocks of 4, samples outside the maps.
ODD = {"shapes_hw": [(3, 5), (2, 3)], "n": 2, "lq": 7, "m": 3, "d": 5, "p": 2}


def make_inputs(shapes_hw, *, n, lq, m, d, p, dtype=torch.float32, seed=0, spread=0.2):
    """Random MSDA inputs; locations drawn in [-spread, 1 + spread] so some samples leave the maps."""
    gen = torch.Generator().manual_seed(seed)
    shapes = torch.tensor(shapes_hw, dtype=torch.int64)
    sizes = shapes.prod(1)
    starts = torch.cat([sizes.new_zeros(1), sizes.cumsum(0)[:-1]])
    n_levels = len(shapes_hw)
    value = torch.randn(n, int(sizes.sum()), m, d, generator=gen)
    loc = torch.rand(n, lq, m, n_levels, p, 2, generator=gen) * (1 + 2 * spread) - spread
    attn = (
        torch.randn(n, lq, m, n_levels * p, generator=gen).softmax(-1).view(n, lq, m, n_levels, p)
    )
    return {
        "value": value.to(dtype),
        "spatial_shapes": shapes,
        "level_start_index": starts,
        "sampling_locations": loc.to(dtype),
        "attention_weights": attn.to(dtype),
    }


def forward_backward(fn, inputs, grad_out) -> dict:
    """Output and the gradients of sum(fn(...) * grad_out), keyed like ``KEYS``."""
    leaves = {
        k: v.detach().clone().requires_grad_(v.is_floating_point()) for k, v in inputs.items()
    }
    out = fn(*(leaves[k] for k in ARGS))
    out.backward(grad_out)
    grads = [leaves[k].grad for k in ("value", "sampling_locations", "attention_weights")]
    return dict(zip(KEYS, [out.detach(), *grads], strict=True))


def reference(value, spatial_shapes, level_start_index, sampling_locations, attention_weights):
    del level_start_index
    return ms_deform_attn_pytorch(value, spatial_shapes, sampling_locations, attention_weights)


def assert_scaled_close(actual, expected, tol, what):
    """max |actual - expected| <= tol * max(1, max |expected|) (gradients w.r.t. locations scale with W, H)."""
    err = (actual.double() - expected.double()).abs().max().item()
    scale = max(1.0, expected.double().abs().max().item())
    assert err <= tol * scale, f"{what}: max abs error {err:.3g} > {tol:.1g} * {scale:.3g}"


# Odd shapes: non-square levels, D not a power of two, 7 queries in blocks of 4, samples outside the maps.
def grad_for(inputs, seed):
    """A random grad_output for ``inputs``, on value's device (backward rejects a CPU grad for a CUDA output)."""
    n, lq, m = inputs["attention_weights"].shape[:3]
    value = inputs["value"]
    gen = torch.Generator().manual_seed(seed)
    grad = torch.randn(n, lq, m * value.shape[-1], generator=gen, dtype=torch.float64)
    return grad.to(device=value.device, dtype=value.dtype)


def border_inputs():
    """Locations on pixel centres, on the map border and at exactly x == -1 / y == -1 (W = 8, H = 4: exact)."""
    inputs = make_inputs([(4, 8)], n=1, lq=8, m=1, d=4, p=2, dtype=torch.float64, seed=3)
    edges = torch.tensor(
        [-0.5 / 8, 0.0, 0.5 / 8, 0.25, 1.0, 8.5 / 8, -0.3, 1.3], dtype=torch.float64
    )
    inputs["sampling_locations"][..., 0, 0] = edges.view(8, 1, 1)
    inputs["sampling_locations"][..., 1, 1] = edges.flip(0).view(8, 1, 1)
    return inputs


def fixture_inputs(
    fixtures_dir: Path, name: str, dtype: torch.dtype
) -> tuple[dict, torch.Tensor, dict]:
    """Inputs, grad_output and the float64 recordings of fixture set ``name``."""
    data = np.load(fixtures_dir / "ms_deform_attn" / "deform_attn.npz")
    inputs = {k: torch.from_numpy(data[f"{name}__{k}"]) for k in ARGS}
    inputs = {k: v.to(dtype) if v.is_floating_point() else v for k, v in inputs.items()}
    expected = {k: torch.from_numpy(data[f"{name}__{k}_f64"]) for k in KEYS}
    return inputs, torch.from_numpy(data[f"{name}__grad_output"]).to(dtype), expected


def record_backend_calls(monkeypatch) -> list[str]:
    """Wrap the dispatcher's two non-Triton backends so that each call appends its name to the returned list."""
    from uvosam.tracker import msda

    calls: list[str] = []
    for name in ("ms_deform_attn_gather", "ms_deform_attn_pytorch"):
        real = getattr(msda, name)
        monkeypatch.setattr(msda, name, lambda *a, _r=real, _n=name: calls.append(_n) or _r(*a))
    return calls
