"""Benchmark: Triton multi-scale deformable attention kernel (CUDA) or the gather (CPU) vs the PyTorch
(grid_sample) reference.

Real tracker shapes (TRACKER_SPEC §3): a 480x854 frame gives four levels 60x108, 30x54, 15x27, 8x14
(S = 8617 pixels); 8 heads of D = 32 (d_model 256), 4 levels x 4 points; the decoder has 300 queries, the encoder
one query per pixel (8617); batch 1 and 10 (a 10-frame clip). For each dtype (fp32, fp16, bf16) it times forward
and forward+backward with CUDA events after warm-up and prints the speed-up and the max error of both backends
against a float64 reference computed from the same inputs.

    PYTHONPATH=$PWD python benchmarks/msda.py                 # needs CUDA; prints a table
    PYTHONPATH=$PWD python benchmarks/msda.py --device cpu    # the CPU backend (uvosam.tracker.msda_gather)
    PYTHONPATH=$PWD python benchmarks/msda.py --compile-check # no GPU needed: sm_90 registers / spills

Without CUDA (and without ``--device cpu``) it says so and runs a tiny sanity check in Triton's CPU interpreter
(exit 0 when it passes), so CI can smoke-test this script. ``--device cpu`` times with ``time.perf_counter``
(default 1 warm-up call and 5 timed calls: the reference takes seconds per call there).
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._machine import load_text
from uvosam.tracker import msda

LEVELS = [(60, 108), (30, 54), (15, 27), (8, 14)]
SHAPES = {"decoder": 300, "encoder": sum(h * w for h, w in LEVELS)}
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
GRADS = ("value", "sampling_locations", "attention_weights")


def make_inputs(
    batch: int, lq: int, *, levels=LEVELS, heads=8, head_dim=32, points=4, device="cuda", seed=0
):
    """Float32 MSDA inputs; locations in [-0.1, 1.1] (some samples leave the maps), softmaxed weights."""
    gen = torch.Generator(device=device).manual_seed(seed)
    shapes = torch.tensor(levels, dtype=torch.int64, device=device)
    sizes = shapes.prod(1)
    starts = torch.cat([sizes.new_zeros(1), sizes.cumsum(0)[:-1]])
    n_levels = len(levels)
    value = torch.randn(batch, int(sizes.sum()), heads, head_dim, device=device, generator=gen)
    loc = (
        torch.rand(batch, lq, heads, n_levels, points, 2, device=device, generator=gen) * 1.2 - 0.1
    )
    logits = torch.randn(batch, lq, heads, n_levels * points, device=device, generator=gen)
    attn = logits.softmax(-1).view(batch, lq, heads, n_levels, points)
    return {
        "value": value,
        "spatial_shapes": shapes,
        "level_start_index": starts,
        "sampling_locations": loc,
        "attention_weights": attn,
    }


def reference(value, spatial_shapes, level_start_index, sampling_locations, attention_weights):
    return msda.ms_deform_attn_pytorch(value, spatial_shapes, sampling_locations, attention_weights)


def run(fn: Callable, inputs: dict, grad_out: torch.Tensor | None) -> list[torch.Tensor]:
    """[output] or [output, grad value, grad loc, grad attn] (backward of sum(out * grad_out))."""
    if grad_out is None:
        return [fn(**inputs)]
    leaves = {k: v.detach().requires_grad_(k in GRADS) for k, v in inputs.items()}
    out = fn(**leaves)
    out.backward(grad_out)
    return [out.detach()] + [leaves[k].grad for k in GRADS]


def time_ms(fn: Callable, inputs: dict, grad_out, *, warmup: int, iters: int) -> list[float]:
    """Milliseconds of each of ``iters`` calls after ``warmup`` calls: CUDA events around each call on a GPU, else
    the wall clock."""
    for _ in range(warmup):
        run(fn, inputs, grad_out)
    times = []
    for _ in range(iters):
        if inputs["value"].is_cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            run(fn, inputs, grad_out)
            end.record()
            torch.cuda.synchronize()
            times.append(start.elapsed_time(end))
        else:
            start_s = time.perf_counter()
            run(fn, inputs, grad_out)
            times.append((time.perf_counter() - start_s) * 1000)
    return times


EDGE_PX = 1e-3
TENSORS = ("out", "value", "loc", "attn")  # the output, then the gradients in GRADS' order


def near_cell_edge(sampling_locations: torch.Tensor, spatial_shapes: torch.Tensor) -> torch.Tensor:
    """(N, Lq, M, L, P) bool: the samples whose pixel coordinate (``loc * size - 0.5``, x or y) lies within
    ``EDGE_PX`` of an integer, i.e. of a cell edge of the bilinear grid. There the location gradient jumps (it is the
    difference of the neighbouring cells' values), and fp32's rounding of the coordinate can put a sample on the other
    side than float64's: an O(1) difference that says nothing about the kernel."""
    size = spatial_shapes.flip(-1).to(torch.float64)  # (L, 2): (W, H), as loc's (x, y)
    pixel = sampling_locations.double() * size[:, None, :] - 0.5
    return ((pixel - pixel.round()).abs() < EDGE_PX).any(-1)


def tensor_errors(
    got: list[torch.Tensor], want: list[torch.Tensor], edge: torch.Tensor | None = None
) -> dict[str, float]:
    """Per tensor (``TENSORS``, as many as given) max|got - want| / max(1, max|want|) (location grads scale with W,
    H); for ``loc`` the samples in ``edge`` are left out, and ``loc_all`` keeps them."""
    errs = {}
    for name, g, w in zip(TENSORS, got, want, strict=False):
        diff = (g.double() - w).abs()
        scale = max(1.0, w.abs().max().item())
        errs[name] = diff.max().item() / scale
        if name == "loc" and edge is not None:
            errs["loc_all"] = errs["loc"]
            kept = diff[~edge]
            errs["loc"] = (kept.max().item() if kept.numel() else 0.0) / scale
    return errs


def max_error(errs: dict[str, float]) -> float:
    """The largest of ``tensor_errors``' (location grads without the samples at a cell edge)."""
    return max(v for k, v in errs.items() if k != "loc_all")


def errors_cell(errs: dict[str, float]) -> str:
    """``out 4.7e-06`` or ``out 4.7e-06 / value 2.5e-06 / loc 3.1e-06 (all 2.8e-02) / attn 4.1e-06``."""
    cells = []
    for name in TENSORS:
        if name in errs:
            extra = f" (all {errs['loc_all']:.1e})" if name == "loc" and "loc_all" in errs else ""
            cells.append(f"{name} {errs[name]:.1e}{extra}")
    return " / ".join(cells)


def time_stats(
    fn: Callable, inputs: dict, grad_out, *, warmup: int, iters: int
) -> tuple[float, float]:
    """(median, min) milliseconds per call, see ``time_ms``."""
    times = time_ms(fn, inputs, grad_out, warmup=warmup, iters=iters)
    return statistics.median(times), min(times)


def bench_case(kernel: Callable, batch: int, name: str, dtype: torch.dtype, args) -> list[str]:
    """Table rows (forward, forward+backward) for one shape and dtype, ``kernel`` vs the reference."""
    base = make_inputs(batch, SHAPES[name], device=args.device)
    inputs = {k: v.to(dtype) if v.is_floating_point() else v for k, v in base.items()}
    exact = {k: v.double() if v.is_floating_point() else v for k, v in inputs.items()}
    edge = near_cell_edge(inputs["sampling_locations"], inputs["spatial_shapes"])
    rows = []
    for label, backward in (("fwd", False), ("fwd+bwd", True)):
        grad_out = None
        if backward:
            grad_out = torch.randn(batch, SHAPES[name], 256, device=args.device).to(dtype)
        want = run(reference, exact, None if grad_out is None else grad_out.double())
        err_ref = tensor_errors(run(reference, inputs, grad_out), want, edge)
        err_kernel = tensor_errors(run(kernel, inputs, grad_out), want, edge)
        t_ref, min_ref = time_stats(
            reference, inputs, grad_out, warmup=args.warmup, iters=args.iters
        )
        t_kernel, min_kernel = time_stats(
            kernel, inputs, grad_out, warmup=args.warmup, iters=args.iters
        )
        rows.append(
            f"| {name} Lq={SHAPES[name]} | {batch} | {str(dtype)[6:]} | {label} | {t_ref:.3f} | "
            f"{t_kernel:.3f} | {t_ref / t_kernel:.2f}x | {min_ref / min_kernel:.2f}x | "
            f"{max_error(err_ref):.1e} | {max_error(err_kernel):.1e} | {errors_cell(err_kernel)} |"
        )
        print(rows[-1], flush=True)
        del want, grad_out
    edge_share = edge.double().mean().item()
    print(f"# {name} batch {batch} {str(dtype)[6:]}: {edge_share:.2%} of the samples lie within {EDGE_PX:g} px of a "
          "cell edge (left out of the location-gradient error)", flush=True)  # fmt: skip
    return rows


def benchmark(args) -> int:
    """The table for the Triton kernel on CUDA, or for the gather with ``--device cpu``."""
    if args.device == "cpu":
        kernel, name = msda.ms_deform_attn_gather, "gather"
        header = f"# CPU, {torch.get_num_threads()} threads | torch {torch.__version__}"
    else:
        ops = msda._import_ops_package()
        import triton

        kernel, name = ops.ms_deform_attn_triton, "triton"
        if args.block_q:
            kernel = functools.partial(ops.ms_deform_attn_triton, block_q=args.block_q)
        header = (
            f"# {torch.cuda.get_device_name()} | torch {torch.__version__}"
            f" | triton {triton.__version__} | block_q={args.block_q or 'auto'}"
        )
    print(
        f"{header} | {msda.backend_status()}"
        f" | median of {args.iters} calls after {args.warmup} warm-up calls | {load_text()}"
    )
    print(
        f"| shape | batch | dtype | pass | reference ms | {name} ms | speed-up | speed-up of the minima "
        f"| ref max err | {name} max err | {name} error per tensor |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for batch in args.batch:
        for shape in args.shapes:
            for dtype in args.dtypes:
                bench_case(kernel, batch, shape, DTYPES[dtype], args)
                if args.device == "cuda":
                    torch.cuda.empty_cache()
    print(
        "# max err: max |x - float64 reference| / max(1, max |reference|) over the output and, "
        "for fwd+bwd, the three gradients (per tensor in the last column); the float64 reference sees the same "
        f"(rounded) inputs. 'loc': the sampling-location gradient without the samples within {EDGE_PX:g} px of a "
        "cell edge, where it jumps and fp32 rounding alone can flip the cell; '(all ...)' with them."
    )
    return 0


def interpreter_sanity_check() -> int:
    """Tiny forward + backward in Triton's CPU interpreter vs the reference; 0 when within 1e-5."""
    os.environ["TRITON_INTERPRET"] = "1"  # before the kernel package (and triton) is imported
    ops = msda._import_ops_package()
    if not ops.INTERPRETED:
        print("sanity check skipped: triton was imported before TRITON_INTERPRET could be set")
        return 1
    inputs = make_inputs(1, 5, levels=[(3, 5), (2, 3)], heads=2, head_dim=4, points=2, device="cpu")
    grad_out = torch.randn(1, 5, 8, generator=torch.Generator().manual_seed(1))
    edge = near_cell_edge(inputs["sampling_locations"], inputs["spatial_shapes"])
    errs = tensor_errors(
        run(ops.ms_deform_attn_triton, inputs, grad_out), run(reference, inputs, grad_out), edge
    )
    err = max_error(errs)
    ok = err <= 1e-5
    print(f"CPU interpreter sanity check (forward + backward, tiny shape): max err {err:.1e} -> "
          f"{'ok' if ok else 'MISMATCH'} ({errors_cell(errs)})")  # fmt: skip
    return 0 if ok else 1


def compile_check(dtypes: list[str], block_q: int | None) -> int:
    msda._import_ops_package()  # this tree's ops/ as uvosam_ops
    from uvosam_ops.compile_check import compile_report

    for dtype in dtypes + ["fp64"]:
        for report in compile_report(dtype, block_q=block_q):
            print(report)
    return 0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 10])
    parser.add_argument("--shapes", nargs="+", choices=list(SHAPES), default=list(SHAPES))
    parser.add_argument("--dtypes", nargs="+", choices=list(DTYPES), default=list(DTYPES))
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    parser.add_argument("--warmup", type=int, default=None, help="default 5 (CUDA), 1 (CPU)")
    parser.add_argument("--iters", type=int, default=None, help="default 20 (CUDA), 5 (CPU)")
    parser.add_argument(
        "--block-q", type=int, default=None, help="queries per program (default: auto)"
    )
    parser.add_argument(
        "--compile-check", action="store_true", help="compile for sm_90 and report registers"
    )
    args = parser.parse_args(argv)
    on_cpu = args.device == "cpu"
    args.warmup = (1 if on_cpu else 5) if args.warmup is None else args.warmup
    args.iters = (5 if on_cpu else 20) if args.iters is None else args.iters
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.compile_check:
        return compile_check(args.dtypes, args.block_q)
    if args.device == "cuda" and not torch.cuda.is_available():
        print(
            "benchmarks/msda.py needs a CUDA GPU for the kernel's timings; none is available here "
            "(--device cpu times the CPU backend)."
        )
        return interpreter_sanity_check()
    return benchmark(args)


if __name__ == "__main__":
    sys.exit(main())
