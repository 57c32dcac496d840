"""Image-encoder time per frame at real size: SAM (ViT-B/L/H) vs SAM 2.1 (Hiera tiny/small/base_plus/large), random
weights, one 1024x1024 input, all in one run so that the ratios come from one machine state.

What is timed is what the box-to-mask stage runs once per frame: SAM's ``uvosam.segmenter.plain_encode`` (its own
``image_encoder`` forward) and SAM 2.1's ``uvosam.sam2_segmenter.plain_forward`` (``SAM2Base.forward_image``: the
Hiera trunk, the FPN neck and the two convolutions of the high-resolution maps); with ``--fast`` the fast paths
instead (``fast_encode``: bf16 autocast + SDPA attention; ``fast_forward``: bf16 autocast), as by default on a GPU
with native bf16, with the encoder's matmul weights kept in bf16 as ``from_pretrained`` keeps them. Each runs
through its box segmenter's ``_run_encoder``.
Not timed: the resize/normalise before and the prompt encoder + mask decoder after (per box, small next to the
encoder). Both families take a 1024x1024 input at real size.

After one warm-up call per model, the timed calls go round-robin (A, B, C, A, B, C, ...), so a change in the
machine's load hits every model alike; the median per model is reported, and each model's median relative to the
first model's.

    python benchmarks/sam_encoders.py                                  # vit_b vs sam2.1_tiny, sam2.1_small (CPU)
    python benchmarks/sam_encoders.py --models vit_h sam2.1_large sam2.1_base_plus --device cuda --fast --repeats 20
    python benchmarks/sam_encoders.py --models vit_h --device cuda --fast --cuda-graph    # eager vs replayed graph
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._machine import load_text
from uvosam.config import SAM_MODEL_TYPES, SEGMENTER_MODEL_TYPES

DEFAULT_MODELS = ("vit_b", "sam2.1_tiny", "sam2.1_small")


def build_encoder(
    name: str, device: str, fast: bool, cuda_graph: bool = False
) -> tuple[Callable, int, int, Any]:
    """(``fn(x)``: the per-frame encoder call of model ``name`` on (1, 3, 1024, 1024) input, all parameters,
    image-encoder parameters, ``graphed``); random weights, eval mode, on ``device``.

    The call is the box segmenter's own (``_run_encoder``), on a model it owns as ``from_pretrained``'s: with
    ``fast`` its matmul weights are kept in bf16 (``keep_matmul_weights_bf16``). ``graphed``: with ``cuda_graph`` the
    same call on the same model through a second segmenter with ``SegmenterConfig.cuda_graph`` (a replayed CUDA
    graph; eager, with a warning, off CUDA) as ``(its fn(x), the segmenter)``, else ``None``."""
    import torch

    from uvosam.config import SegmenterConfig

    if name not in SEGMENTER_MODEL_TYPES:
        raise ValueError(f"unknown model {name!r}; expected one of {SEGMENTER_MODEL_TYPES}")
    torch.manual_seed(0)
    config = SegmenterConfig(model_type=name, fast=fast)
    if name in SAM_MODEL_TYPES:
        from segment_anything import sam_model_registry

        from uvosam.segmenter import BoxPromptSegmenter as Segmenter

        model = sam_model_registry[name](checkpoint=None).eval()
        encoder = module = model.image_encoder
    else:
        from uvosam.sam2_segmenter import Sam2BoxSegmenter as Segmenter
        from uvosam.sam2_segmenter import build_sam2_model

        model = build_sam2_model(name)
        encoder, module = model.image_encoder, model
    segmenter = Segmenter(model, config, device=device)
    segmenter.keep_matmul_weights_bf16()

    def fn(x):
        return segmenter._run_encoder(module, x)

    def count(m):
        return sum(p.numel() for p in m.parameters())

    graphed = None
    if cuda_graph:
        graphed_segmenter = Segmenter(model, replace(config, cuda_graph=True))
        graphed = (lambda x: graphed_segmenter._run_encoder(module, x)), graphed_segmenter
    return fn, count(model), count(encoder), graphed


def time_round_robin(
    fns: dict[str, Callable[[], object]], repeats: int, sync: Callable[[], None]
) -> dict:
    """One untimed warm-up call per function, then ``repeats`` timed rounds calling each function once in order.

    Returns:
        ``{name: [seconds of each timed call]}`` (``repeats`` values each), in ``fns``' order.
    """
    for fn in fns.values():
        fn()
        sync()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            sync()
            start = time.perf_counter()
            fn()
            sync()
            times[name].append(time.perf_counter() - start)
    return times


def report_rows(times: dict[str, list[float]], params: dict[str, tuple[int, int]]) -> list[str]:
    """A table: per model, its parameters (all / image encoder), the median, min and max seconds per call and
    the first model's median divided by its median ("x faster" than the first model; 1.00 for the first)."""
    base = statistics.median(next(iter(times.values())))
    rows = [
        f"{'model':<18}{'params all / encoder':>22}{'median s':>10}{'min s':>8}{'max s':>8}  speed vs first"
    ]
    for name, seconds in times.items():
        median = statistics.median(seconds)
        total, encoder = params[name]
        rows.append(
            f"{name:<18}{f'{total / 1e6:.1f}M / {encoder / 1e6:.1f}M':>22}{median:10.3f}{min(seconds):8.3f}"
            f"{max(seconds):8.3f}  {base / median:.2f}x"
        )
    return rows


def cpu_name() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else ``platform.processor()``, else ``unknown CPU``."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--models", nargs="+", default=list(DEFAULT_MODELS), choices=SEGMENTER_MODEL_TYPES,
                   help="the first is the reference of the 'speed vs first' column")  # fmt: skip
    p.add_argument("--device", default="cpu")
    p.add_argument(
        "--fast",
        action="store_true",
        help="the fast paths (bf16 autocast; SAM also SDPA attention)",
    )
    p.add_argument(
        "--cuda-graph",
        action="store_true",
        help="also time each model replayed from a CUDA graph (SegmenterConfig.cuda_graph; row '<model> graph', "
        "the same model and input, in the same round-robin)",
    )
    p.add_argument(
        "--repeats", type=int, default=3, help="timed calls per model (after one warm-up call each)"
    )
    p.add_argument(
        "--threads", type=int, help="torch threads (default: torch's own, i.e. the machine's cores)"
    )
    args = p.parse_args(argv)

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    cuda = args.device.startswith("cuda")
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    where = (
        torch.cuda.get_device_name(args.device)
        if cuda
        else f"{cpu_name()}, {torch.get_num_threads()} threads"
    )
    print(f"device {args.device} ({where}); torch {torch.__version__}; random weights; one 1x3x1024x1024 input; "
          f"{'fast path (bf16 autocast' + ', SAM: + SDPA)' if args.fast else 'fp32, each model own forward'}; "
          f"1 warm-up + {args.repeats} timed calls per model, round-robin; {load_text()}", flush=True)  # fmt: skip
    fns, params = {}, {}
    x = torch.randn(1, 3, 1024, 1024, device=args.device)
    graphed = {}
    for name in args.models:
        fn, total, encoder, graph = build_encoder(name, args.device, args.fast, args.cuda_graph)
        fns[name] = lambda fn=fn: fn(x)
        params[name] = (total, encoder)
        if graph is not None:
            fns[f"{name} graph"] = lambda fn=graph[0]: fn(x)
            params[f"{name} graph"] = (total, encoder)
            graphed[f"{name} graph"] = graph[1]
    with torch.inference_mode():
        times = time_round_robin(fns, args.repeats, sync)
    for row in report_rows(times, params):
        print(row)
    for label, segmenter in graphed.items():
        fallback = segmenter.cuda_graph_fallback
        print(f"{label}: {'ran EAGER: ' + fallback if fallback else 'replayed a CUDA graph'}")


if __name__ == "__main__":
    main()
