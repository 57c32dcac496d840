"""The CPU backend of multi-scale deformable attention (``uvosam.tracker.msda_gather``) against the reference,
the original code's recordings and autograd; and the reference itself in half precision on CPU."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import torch
from msda_helpers import (
    ARGS,
    KEYS,
    ODD,
    assert_scaled_close,
    border_inputs,
    fixture_inputs,
    forward_backward,
    grad_for,
    make_inputs,
    reference,
)

from uvosam.tracker import msda_gather
from uvosam.tracker.msda_gather import ms_deform_attn_gather


def compare(inputs: dict, tol: float, seed: int = 2) -> dict:
    """Output and gradients of the gather vs the reference's for the same inputs; returns the reference's."""
    grad_out = grad_for(inputs, seed)
    got = forward_backward(ms_deform_attn_gather, inputs, grad_out)
    want = forward_backward(reference, inputs, grad_out)
    for key in KEYS:
        assert got[key].dtype == inputs["value"].dtype, key
        assert_scaled_close(got[key], want[key], tol, key)
    return want


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_forward_and_gradients_match_the_reference_float32_odd_shapes(seed):
    want = compare(make_inputs(**ODD, seed=seed), 1e-5)
    loc_grad = want["grad_sampling_locations"]
    assert (loc_grad != 0).any() and (loc_grad == 0).any(), "want samples inside and fully outside"


def test_float64_odd_shapes_and_far_outside_the_maps():
    compare(make_inputs(**ODD, dtype=torch.float64, seed=5, spread=1.5), 1e-12)


def test_exact_pixel_centres_and_borders():
    compare(border_inputs(), 1e-12)


def test_more_queries_levels_and_batch():
    """Three levels (one of a single row), 4 heads of 8, 4 points, 3 images, 50 queries."""
    inputs = make_inputs([(7, 11), (4, 6), (1, 3)], n=3, lq=50, m=4, d=8, p=4, seed=9)
    compare(inputs, 1e-5)


def test_no_queries():
    inputs = make_inputs(**{**ODD, "lq": 0})
    got = forward_backward(ms_deform_attn_gather, inputs, grad_for(inputs, 2))
    assert got["output"].shape == (2, 0, 15)
    assert got["grad_value"].shape == (2, 21, 3, 5) and not got["grad_value"].any()


def test_float64_row_numbers_give_the_same_result(monkeypatch):
    """Above 2**24 table rows the row numbers are computed in float64; forced here on a small input."""
    inputs = make_inputs(**ODD, seed=4)
    expected = ms_deform_attn_gather(*(inputs[k] for k in ARGS))
    monkeypatch.setattr(msda_gather, "_FLOAT32_EXACT", 0)
    torch.testing.assert_close(
        ms_deform_attn_gather(*(inputs[k] for k in ARGS)), expected, rtol=0, atol=1e-6
    )


@pytest.mark.parametrize(("chunk_points", "lq"), [(2 * 12, 7), (5 * 12, 2), (12, 7)])
def test_chunked_calls_give_the_same_result(monkeypatch, chunk_points, lq):
    """Chunks of 2 queries within an image, of 2 whole images (5 queries' worth) and of single queries (12 points
    per query here: 3 heads x 2 levels x 2 points), outputs and gradients as in one call."""
    inputs = make_inputs(**{**ODD, "n": 3, "lq": lq}, seed=8)
    grad_out = grad_for(inputs, 3)
    whole = forward_backward(ms_deform_attn_gather, inputs, grad_out)
    monkeypatch.setattr(msda_gather, "CHUNK_POINTS", chunk_points)
    calls = []
    real = msda_gather._gather
    monkeypatch.setattr(msda_gather, "_gather", lambda *a: calls.append(a[3].shape[:2]) or real(*a))
    chunked = forward_backward(ms_deform_attn_gather, inputs, grad_out)
    assert len(calls) > 1
    for key in KEYS:
        torch.testing.assert_close(chunked[key], whole[key], rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize(
    ("n", "lq", "per_chunk", "sizes"),
    [
        (3, 7, 2, [(1, 2), (1, 2), (1, 2), (1, 1)] * 3),
        (5, 2, 5, [(2, 2), (2, 2), (1, 2)]),
        (2, 4, 4, [(1, 4), (1, 4)]),
        (2, 0, 4, [(2, 0)]),
    ],
)
def test_chunks_cover_every_query_once(n, lq, per_chunk, sizes):
    chunks = msda_gather._chunks(n, lq, per_chunk)
    grid = torch.zeros(n, lq, dtype=torch.int64)
    for images, queries in chunks:
        grid[images, queries] += 1
    assert (grid == 1).all()
    assert [(grid[i, q].shape[0], grid[i, q].shape[1]) for i, q in chunks] == sizes


@pytest.mark.parametrize("name", ["A_float32", "B_float32", "C_float32", "C_float64"])
def test_fixture_sets(fixtures_dir, name):
    """Against the float64 recordings of the original code (README: ~1e-5 outputs, ~1e-3 rel. location grads)."""
    set_name, dtype = name.split("_")
    inputs, grad_out, expected = fixture_inputs(fixtures_dir, set_name, getattr(torch, dtype))
    got = forward_backward(ms_deform_attn_gather, inputs, grad_out)
    tol = 1e-5 if dtype == "float32" else 1e-12
    for key in KEYS:
        assert_scaled_close(got[key], expected[key], tol, f"set {name} {key}")


@pytest.mark.parametrize(("dtype", "tol"), [(torch.float16, 2e-3), (torch.bfloat16, 1.6e-2)])
def test_half_precision_forward(dtype, tol):
    """fp16 / bf16 values: bilinear and attention weights in float32, rounded once to the values' dtype."""
    inputs = make_inputs(**ODD, dtype=dtype, seed=4)
    out = ms_deform_attn_gather(*(inputs[k] for k in ARGS))
    assert out.dtype == dtype
    exact = {k: v.float() if v.is_floating_point() else v for k, v in inputs.items()}
    assert_scaled_close(out, reference(*(exact[k] for k in ARGS)), tol, f"{dtype} output")


def test_nan_location_leaves_the_other_queries_alone():
    """A diverged location (NaN) must not index outside the value table; other queries are unaffected."""
    inputs = make_inputs(**ODD, seed=6)
    expected = ms_deform_attn_gather(*(inputs[k] for k in ARGS))
    inputs["sampling_locations"][0, 3, 1, 0, 1, 0] = float("nan")
    out = ms_deform_attn_gather(*(inputs[k] for k in ARGS))
    keep = torch.ones(out.shape[:2], dtype=torch.bool)
    keep[0, 3] = False
    torch.testing.assert_close(out[keep], expected[keep], rtol=0, atol=0)


def test_reference_in_half_precision_on_cpu_does_not_crash():
    """torch's CPU grid_sample in bfloat16 read out of bounds on the reference's per-level views and killed the
    process (reproduced with these inputs, the benchmark's decoder shape); the reference samples in float32 on
    CPU now. Run in a subprocess so that a crash is a failure, not the end of the test session."""
    script = textwrap.dedent(
        """
        import torch
        from uvosam.tracker.msda import ms_deform_attn_pytorch
        torch.manual_seed(0)
        value = torch.randn(1, 8617, 8, 32)
        loc = torch.rand(1, 300, 8, 4, 4, 2) * 1.2 - 0.1
        attn = torch.rand(1, 300, 8, 4, 4)
        shapes = torch.tensor([[60, 108], [30, 54], [15, 27], [8, 14]])
        half = [value.bfloat16(), loc.bfloat16(), attn.bfloat16()]
        exact = ms_deform_attn_pytorch(half[0].float(), shapes, half[1].float(), half[2].float())
        out = ms_deform_attn_pytorch(half[0], shapes, half[1], half[2])
        assert out.dtype == torch.bfloat16
        err = (out.float() - exact).abs().max().item() / exact.abs().max().item()
        print(f"relative error {err:.2e}")
        assert err < 1e-2, err
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, (done.returncode, done.stdout, done.stderr[-2000:])
