"""Where a frame's time goes on the models' thread: the GPU busy, or waiting for the CPU to launch its work?

Runs the pipeline (tracker + SAM, no rendering or encoding: those run on other threads in a job) over frames made
in memory, with ``--objects`` boxes on every frame (``benchmarks/_objects.py``, as ``e2e.py --objects``), and profiles
``--frames`` of them with ``torch.profiler`` after ``--warm`` unprofiled ones. Prints, per frame: the wall time, the
GPU's kernel time (the sum of every kernel's own time), their ratio (how busy the GPU was: near 1 = bound by the GPU,
low = bound by the CPU's launching or by waits), the CUDA runtime calls that launch kernels and those that wait for
the GPU (synchronise, blocking copies); then the ops that took the most GPU time and the most CPU time.

    python benchmarks/profile_frames.py                                     # CPU, tiny models (a smoke run)
    python benchmarks/profile_frames.py --device cuda --real-size --objects 3 --height 480 --width 854
    python benchmarks/profile_frames.py --device cuda --real-size --trace /tmp/frames.json   # + a Chrome trace
    python benchmarks/profile_frames.py --device cuda --real-size --cuda-graph              # the encoder's graph

``--frames`` should be a multiple of the detector's batch (10 on a GPU) so that the profiled frames carry their
share of the detector's batched calls. On the CPU only the CPU columns mean anything.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from torch.autograd import DeviceType

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._machine import load_text
from benchmarks._objects import FixedObjects
from benchmarks.e2e import build_pipeline, model_text
from uvosam.config import SAM_PRECISIONS, SEGMENTER_MODEL_TYPES
from uvosam.tracker.config import PRECISIONS
from uvosam_cli.arguments import non_negative_int, positive_int

# CUDA runtime / driver calls, by what they do to the host thread
LAUNCHES = (
    "cudaLaunchKernel",
    "cuLaunchKernel",
    "cudaLaunchKernelExC",
    "cuLaunchKernelEx",
    "cudaGraphLaunch",
)
WAITS = ("cudaStreamSynchronize", "cudaDeviceSynchronize", "cudaEventSynchronize", "cudaMemcpy")


def frames_in_memory(height: int, width: int) -> Iterator[np.ndarray]:
    """Endless (height, width, 3) uint8 RGB frames: smooth noise that drifts a pixel a frame."""
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (height, width + 512, 3), dtype=np.uint8)
    for index in itertools.count():
        shift = index % 512
        yield np.ascontiguousarray(base[:, shift : shift + width])


def device_time_key(event) -> str:
    """The name of an event's own device time: ``self_device_time_total`` (older torch: ``self_cuda_time_total``)."""
    return (
        "self_device_time_total"
        if hasattr(event, "self_device_time_total")
        else "self_cuda_time_total"
    )


def device_time_us(event) -> float:
    """An event's own time on the device in microseconds."""
    return float(getattr(event, device_time_key(event), 0.0))


def summarize(events, frames: int, wall_s: float) -> dict:
    """Per-frame numbers from ``profiler.key_averages()`` over ``frames`` frames that took ``wall_s`` seconds."""
    by_name = {e.key: e for e in events}
    # a kernel's time is on its own (device) row and again on the CPU op that launched it: the device rows only
    kernels_us = sum(device_time_us(e) for e in events if e.device_type != DeviceType.CPU)
    return {
        "wall_ms": 1000 * wall_s / frames,
        "gpu_ms": kernels_us / 1000 / frames,
        "launches": sum(by_name[k].count for k in LAUNCHES if k in by_name) / frames,
        "waits": {k: by_name[k].count / frames for k in WAITS if k in by_name},
    }


def report_lines(summary: dict, cuda: bool) -> list[str]:
    lines = [f"wall {summary['wall_ms']:.1f} ms a frame"]
    if cuda:
        busy = summary["gpu_ms"] / summary["wall_ms"] if summary["wall_ms"] else 0.0
        waits = ", ".join(f"{k} {v:.1f}" for k, v in summary["waits"].items()) or "none"
        lines += [
            (
                f"GPU kernels {summary['gpu_ms']:.1f} ms a frame: the GPU busy {100 * busy:.0f}% of the wall time "
                f"({'GPU-bound' if busy >= 0.8 else 'bound by the CPU or by waits'})"
            ),
            f"kernel launches {summary['launches']:.0f} a frame; host waits a frame: {waits}",
        ]
    return lines


def profile(args: argparse.Namespace) -> int:
    import torch
    from torch.profiler import ProfilerActivity

    cuda = args.device.startswith("cuda")
    fast = SAM_PRECISIONS[args.sam_precision]
    pipe = build_pipeline(
        args.device, args.real_size, args.sam, args.precision, fast=fast, cuda_graph=args.cuda_graph
    )
    pipe.tracker = FixedObjects(pipe.tracker, args.objects)
    graph = "; encoder replayed from a CUDA graph" if args.cuda_graph else ""
    print(
        ", ".join(model_text(args.sam, args.real_size, pipe.segmenter.fast))
        + f"; tracker {args.precision}{graph}"
    )
    if cuda:
        pipe.warm_up(height=args.height, width=args.width)
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    results = pipe(frames_in_memory(args.height, args.width))
    for _ in range(args.warm):
        next(results)
    sync()
    with torch.profiler.profile(activities=activities) as prof:
        start = time.perf_counter()
        for _ in range(args.frames):
            next(results)
        sync()
        wall = time.perf_counter() - start
    results.close()
    events = prof.key_averages()
    for line in report_lines(summarize(events, args.frames, wall), cuda):
        print(line)
    if args.cuda_graph and pipe.segmenter.cuda_graph_fallback:
        print(f"the encoder ran EAGER: {pipe.segmenter.cuda_graph_fallback}")
    rows = args.top
    if cuda:
        print(f"\nthe {rows} ops with the most GPU time (all {args.frames} frames):")
        print(
            events.table(
                sort_by=device_time_key(events[0]), row_limit=rows, max_name_column_width=60
            )
        )
    print(f"\nthe {rows} ops with the most CPU time of their own (all {args.frames} frames):")
    print(events.table(sort_by="self_cpu_time_total", row_limit=rows, max_name_column_width=60))
    if args.trace:
        prof.export_chrome_trace(str(args.trace))
        print(f"Chrome trace: {args.trace}")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--device", default="cpu")
    p.add_argument(
        "--real-size", action="store_true", help="SAM and IDOL R50 at real size (random weights)"
    )
    p.add_argument("--sam", default="vit_h", choices=SEGMENTER_MODEL_TYPES)
    p.add_argument("--sam-precision", default="auto", choices=tuple(SAM_PRECISIONS))
    p.add_argument(
        "--precision",
        default="fp32",
        choices=PRECISIONS,
        help="the tracker's compute precision (DetectorConfig)",
    )
    p.add_argument(
        "--cuda-graph",
        action="store_true",
        help="SAM's encoder replayed from a CUDA graph (SegmenterConfig)",
    )
    p.add_argument("--objects", type=positive_int, default=3, help="boxes on every frame")
    p.add_argument("--height", type=positive_int, default=480)
    p.add_argument("--width", type=positive_int, default=854)
    p.add_argument("--warm", type=non_negative_int, default=20, help="frames run before profiling")
    p.add_argument("--frames", type=positive_int, default=20, help="frames profiled")
    p.add_argument("--top", type=positive_int, default=15, help="rows of each table")
    p.add_argument(
        "--trace", type=Path, help="also write a Chrome trace (chrome://tracing, Perfetto) here"
    )
    args = p.parse_args(argv)
    print(
        f"profile_frames: {args.device}, {args.width}x{args.height}, {args.objects} boxes a frame, {args.warm} "
        f"frames warm then {args.frames} profiled; {load_text()}"
    )
    return profile(args)


if __name__ == "__main__":
    sys.exit(main())
