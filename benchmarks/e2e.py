"""End-to-end benchmark: fps, time to first streamed chunk, peak memory for short vs long videos, and the speed
ratio against a release-equivalent pipeline, all measured in this one run.

CPU (default): tiny random-weight models built with the real constructors (``uvosam.testing``).
GPU (``--device cuda --real-size``): SAM ViT-H and the R50 IDOL tracker at real size with random weights.
``--sam`` picks the box-to-mask model: SAM ``vit_b|vit_l|vit_h`` or SAM 2.1 ``sam2.1_tiny|sam2.1_small|
sam2.1_base_plus|sam2.1_large`` (its image path, ``uvosam.sam2_segmenter``; needs the sam2 package). With
``--real-size`` that model at real size (random weights); without it, the tiny SAM for a ``vit_*`` and the tiny SAM 2.1
(``uvosam.testing.tiny_sam2``) for a ``sam2.1_*``.

    python benchmarks/e2e.py                       # CPU, tiny models, 100 vs 1000 frames
    python benchmarks/e2e.py --sam sam2.1_large    # CPU, tiny IDOL + tiny SAM 2.1
    python benchmarks/e2e.py --device cuda --real-size --sam sam2.1_large --frames 100 200 --height 480 --width 854
    python benchmarks/e2e.py --device cuda --real-size --frames 100 300 --height 480 --width 854
    python benchmarks/e2e.py --device cuda --real-size --frames 100 300 --height 480 --width 854 --variants
        # + the SHORT video once per variant (tracker fp32 / tf32 / bf16, SAM encoder compiled or not): a table

``--precision`` is the tracker's ``DetectorConfig.precision``; ``--compile`` runs SAM's image encoder through
``torch.compile`` (``SegmenterConfig.compile``). Every run that compiles gets a fresh inductor cache
(``TORCHINDUCTOR_CACHE_DIR``), so its first SAM encoder call includes a cold compile, as on a freshly started
server; the variants table shows that call's time and the fps without its extra time.

Each video length runs in its own child process so that its peak RSS belongs to that length alone: the child reads
its own high-water mark (``VmHWM`` in ``/proc/self/status``), not ``ru_maxrss``, which on Linux keeps the parent's
resident size across ``exec`` (the parent's RSS after writing a 480p test video outweighed the child's peak). Once
the models are loaded (and warmed up on CUDA) the child resets that mark (``5`` into ``/proc/self/clear_refs``), so
the peak is the run's, not that of building real-size models in fp32 on the CPU before moving them to the GPU; where
the reset is refused, a thread sampling ``VmRSS`` every 100 ms gives the peak instead. That thread also samples the
child's own child processes (the ffmpeg decoder and encoders), printed as "with ffmpeg".
Each child prints its results as it ends, so a length or variant that fails or is cut by a time limit loses only its
own numbers.
Release-equivalent = what the UVOSAM release does, minus its per-frame SAM reload: SAM loaded once, fp32, one
``SamPredictor.set_image`` per frame, the whole video tracked before any mask, a dummy ``[0,0,0,0]`` box for
every absent trajectory, a PNG per frame. Each side first runs one untimed frame, then the two alternate
``--release-repeats`` times (default 3); the ratio is of the medians, with the pairs' range. The release used SAM: with
a SAM 2.1 model that comparison is not run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
# as `uvosam` and app.py set it before torch loads OpenMP (the children inherit it): waiting threads sleep
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

# the parent imports uvosam anyway (it writes the test videos with it), once sys.path has ROOT
from benchmarks._machine import (  # noqa: E402
    MemorySampler,
    load_text,
    peak_rss_mb,
    reset_peak_rss,
    rss_mb,
)
from benchmarks._objects import FixedObjects  # noqa: E402
from benchmarks._release import compare_release, release_lines  # noqa: E402
from uvosam.config import SAM2_MODEL_TYPES, SAM_MODEL_TYPES, SAM_PRECISIONS  # noqa: E402
from uvosam.tracker.config import PRECISIONS  # noqa: E402
from uvosam_cli.arguments import non_negative_int, positive_int  # noqa: E402


def make_video(path: Path, frames: int, height: int, width: int) -> None:
    from uvosam.testing import moving_shapes
    from uvosam.video import VideoWriter

    with VideoWriter(path, fps=25, width=width, height=height) as writer:
        # generate in blocks: the parent's memory stays small too
        for start in range(0, frames, 50):
            clip = moving_shapes(
                min(50, frames - start), height=height, width=width, num_objects=3, seed=start
            )
            for frame in clip.frames:
                writer.write(frame)
        writer.close()


DEFAULT_VARIANTS = ("fp32", "tf32", "bf16", "bf16+compile", "bf16+graph")
SAM_OPTIONS = ("compile", "graph")
"""What a variant may add for SAM's image encoder: ``+compile`` (``SegmenterConfig.compile``), ``+graph``
(``SegmenterConfig.cuda_graph``: replayed from a CUDA graph)."""


def parse_variant(text: str) -> tuple[str, str]:
    """``"bf16"`` -> ``("bf16", "")``; ``"bf16+compile"`` -> ``("bf16", "compile")``; ``"bf16+graph"`` ->
    ``("bf16", "graph")``."""
    precision, plus, rest = text.partition("+")
    if precision not in PRECISIONS or ((plus, rest) != ("", "") and rest not in SAM_OPTIONS):
        raise argparse.ArgumentTypeError(
            f"a variant is a tracker precision {PRECISIONS}, optionally followed by '+compile' or '+graph'; got "
            f"{text!r}"
        )
    return precision, rest


def variant_name(precision: str, sam_option: str) -> str:
    return precision + (f"+{sam_option}" if sam_option else "")


def sam_option(args: argparse.Namespace) -> str:
    """The main run's ``SAM_OPTIONS`` entry (``--compile``, ``--cuda-graph``), ``""`` for neither."""
    return "compile" if args.compile else "graph" if args.cuda_graph else ""


def build_segmenter(
    device: str,
    real_size: bool,
    sam_size: str = "vit_h",
    compile_sam: bool = False,
    fast: bool | None = None,
    cuda_graph: bool = False,
):
    """The box-to-mask stage with random weights: ``sam_size`` at real size, or else the tiny model of its family
    (``tiny_sam`` for ``vit_*``, ``tiny_sam2`` for ``sam2.1_*``); ``fast``: ``SegmenterConfig.fast`` (``None`` = the
    device's default); ``cuda_graph``: ``SegmenterConfig.cuda_graph``."""
    import torch

    from uvosam.config import SegmenterConfig

    if sam_size in SAM2_MODEL_TYPES:
        from uvosam.sam2_segmenter import Sam2BoxSegmenter, build_sam2_model
        from uvosam.testing import tiny_sam2

        torch.manual_seed(0)
        model = build_sam2_model(sam_size) if real_size else tiny_sam2()
        segmenter = Sam2BoxSegmenter(
            model,
            SegmenterConfig(
                model_type=sam_size, compile=compile_sam, fast=fast, cuda_graph=cuda_graph
            ),
            device=device,
        )
    else:
        from uvosam.segmenter import BoxPromptSegmenter

        if real_size:
            from segment_anything import sam_model_registry

            torch.manual_seed(0)
            sam = sam_model_registry[sam_size](checkpoint=None).eval()
        else:
            from uvosam.testing import tiny_sam

            sam = tiny_sam()
        config = SegmenterConfig(
            model_type=sam_size, compile=compile_sam, fast=fast, cuda_graph=cuda_graph
        )
        segmenter = BoxPromptSegmenter(sam, config, device=device)
    segmenter.keep_matmul_weights_bf16()  # the model is its own, as from_pretrained's (the app's) is
    return segmenter


def build_pipeline(device: str, real_size: bool, sam_size: str = "vit_h", precision: str = "fp32",
                   compile_sam: bool = False, fast: bool | None = None,
                   detector_batch: int | None = None, cuda_graph: bool = False):  # fmt: skip
    """The pipeline of one child; ``detector_batch``: frames per detector call (None: the tiny tracker's 3, or at real
    size as ``load_tracker``: IDOL's 10 on a GPU, 1 on the CPU)."""
    import torch

    from uvosam.pipeline import UVOSAM
    from uvosam.testing import tiny_idol_tracker

    if not real_size:
        batch = {} if detector_batch is None else {"batch_size": detector_batch}
        tracker = tiny_idol_tracker(precision=precision, **batch)
        return UVOSAM(
            tracker, build_segmenter(device, False, sam_size, compile_sam, fast, cuda_graph)
        )
    from dataclasses import replace

    from uvosam.tracker.config import DetectorConfig
    from uvosam.tracker.detector import IDOLDetector
    from uvosam.tracker.loading import default_batch_size
    from uvosam.tracker.session import IDOLTracker

    torch.manual_seed(0)
    detector = (
        IDOLDetector(replace(DetectorConfig.davis_r50(), precision=precision)).eval().to(device)
    )
    # as load_tracker: IDOL's 10 on a GPU, 1 on the CPU
    batch = default_batch_size(detector.cfg, device) if detector_batch is None else detector_batch
    return UVOSAM(
        IDOLTracker(detector, ("object",), batch_size=batch),
        build_segmenter(device, True, sam_size, compile_sam, fast, cuda_graph),
    )


STAGES = {  # name: (what it covers, thread)
    "detect": "IDOL detector forward (models thread)",
    "sam_encode": "SAM image encoder (models thread)",
    "sam_decode": "SAM prompt encoder + mask decoder, per frame (models thread)",
    "sam_post": "mask upsampling to the frame, overlap rule, masks to numpy (models thread)",
    "render": "overlay drawing (main thread)",
    "encode": "frames piped to the ffmpeg encoders (main thread)",
    "export": "PNG masks, RLE, exports (main thread)",
}


def time_stages(pipe, cuda: bool = False) -> tuple[dict, Callable[[], None]]:
    """Wrap this process's stage functions to time them: ``{stage: [total seconds, calls, first call's seconds]}``
    (see ``STAGES``; with ``--compile`` the first ``sam_encode`` call includes the compile unless a warm-up ran), and
    a function that unwraps them all again and, on CUDA, fills the totals in (call it after a synchronize).

    Instance methods are wrapped on the instances; ``render_frame``, ``VideoWriter.write`` and ``ExportWriter.add`` are
    patched in this benchmark process only. On CUDA the model stages are timed with CUDA events on the current
    stream, without synchronizing the host, so the timed run overlaps as an untimed one would: their time is the
    GPU's from the stage's first to its last queued work (a host-side compile in between included). The pipeline
    overlaps threads, so the stages add up to more than the wall time.
    """
    import uvosam.job_loop
    from uvosam.export import ExportWriter
    from uvosam.video_writer import VideoWriter

    totals = {name: [0.0, 0, None] for name in STAGES}
    pending: list[tuple[str, object, object]] = []  # (stage, start event, end event), in call order
    undo = []

    def wrap(owner, attr: str, name: str, gpu: bool) -> None:
        original = getattr(owner, attr)
        in_dict = attr in vars(owner)  # an instance attribute or a class/module function of its own
        setattr(owner, attr, timed(name, original, gpu and cuda))
        undo.append(lambda: setattr(owner, attr, original) if in_dict else delattr(owner, attr))

    def add(name: str, seconds: float) -> None:
        total = totals[name]
        total[0] += seconds
        total[1] += 1
        total[2] = seconds if total[2] is None else total[2]

    def timed(name, fn, events: bool):
        def wrapper(*a, **kw):
            if events:
                import torch

                start, end = (torch.cuda.Event(enable_timing=True) for _ in range(2))
                start.record()
                result = fn(*a, **kw)
                end.record()
                pending.append((name, start, end))
                return result
            start_s = time.perf_counter()
            result = fn(*a, **kw)
            add(name, time.perf_counter() - start_s)
            return result

        return wrapper

    def unwrap() -> None:
        for u in reversed(undo):
            u()
        undo.clear()
        for name, start, end in pending:
            end.synchronize()
            add(name, start.elapsed_time(end) / 1000)
        pending.clear()

    detector, segmenter = getattr(pipe.tracker, "detector", None), pipe.segmenter
    if detector is not None:
        wrap(detector, "detect_frames", "detect", True)
    wrap(segmenter, "_encode", "sam_encode", True)
    wrap(segmenter, "_decode", "sam_decode", True)
    wrap(segmenter, "_finish", "sam_post", True)
    wrap(uvosam.job_loop, "render_frame", "render", False)
    wrap(VideoWriter, "write", "encode", False)
    wrap(ExportWriter, "add", "export", False)
    return totals, unwrap


def stage_line(r: dict) -> str | None:
    """'detect 12.3, ...' ms per processed frame for each stage, or None when no frame was processed."""
    stages, frames = r.get("stages"), r.get("frames")
    if not stages or not frames:
        return None
    return ", ".join(
        f"{name} {1000 * seconds / frames:.1f}" for name, (seconds, _, _) in stages.items()
    )


def encoder_stats(stages: dict) -> dict:
    """The SAM encoder's ``sam_encoder_s`` (all calls), ``sam_encoder_calls`` and ``first_sam_call_s`` (None if SAM
    never ran), from ``time_stages``' totals."""
    seconds, calls, first = stages["sam_encode"]
    return {"sam_encoder_s": seconds, "sam_encoder_calls": calls, "first_sam_call_s": first}


def child(args: argparse.Namespace) -> None:
    """Runs in a subprocess: one pipeline, one video, prints one JSON line."""
    import torch

    from uvosam.job import run_job
    from uvosam.job_types import JobOptions

    torch.set_num_threads(max(1, torch.get_num_threads()))
    fast = SAM_PRECISIONS[args.sam_precision]
    cuda = args.device.startswith("cuda")
    pipe = build_pipeline(args.device, args.real_size, args.sam, args.precision, args.compile, fast,
                          args.detector_batch, args.cuda_graph)  # fmt: skip
    if args.objects:
        pipe.tracker = FixedObjects(pipe.tracker, args.objects)
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    out = {"frames": 0, "sam_fast": pipe.segmenter.fast, "warm_up_s": None}
    # as the app does at load on a GPU (a +compile run compiles here)
    if cuda:
        out["warm_up_s"] = pipe.warm_up(height=args.warm_up_hw[0], width=args.warm_up_hw[1])
        torch.cuda.reset_peak_memory_stats()
    # the models' load (real size: built in fp32 on the CPU, then moved) set a high-water mark the run may never
    # reach: from here on, the run's own peak
    out["peak_rss_load_mb"] = peak_rss_mb()
    hwm_reset = reset_peak_rss()
    out["peak_rss_source"] = "VmHWM" if hwm_reset else "sampled"
    stages, unwrap = time_stages(pipe, cuda)
    sampler = MemorySampler(0.1)
    with tempfile.TemporaryDirectory() as work:
        rss0 = rss_mb() or peak_rss_mb()
        sampler.start()
        start = time.perf_counter()
        first_chunk = None
        options = JobOptions(chunk_seconds=1.0, limits=JobOptions().limits)
        for update in run_job(pipe, args.video, work, options):
            if update.chunk is not None and first_chunk is None:
                first_chunk = time.perf_counter() - start
                out["frames_at_first_chunk"] = update.frames_done
            out["frames"] = update.frames_done
        sync()
        out["seconds"] = time.perf_counter() - start
        sampler.stop()
        unwrap()  # the release comparison runs without the stage timers
        out["first_chunk_s"] = first_chunk
        out["stages"] = stages
        out.update(encoder_stats(stages))
        out["peak_rss_mb"] = peak_rss_mb() if hwm_reset else sampler.peak_self_mb
        out["peak_rss_with_ffmpeg_mb"] = sampler.peak_total_mb
        out["peak_ffmpeg_mb"] = sampler.peak_children_mb
        out["rss_after_load_mb"] = rss0
        if cuda:
            out["peak_gpu_mb"] = torch.cuda.max_memory_allocated() / 2**20
            out["peak_gpu_reserved_mb"] = torch.cuda.max_memory_reserved() / 2**20
        out["sam_cuda_graph_fallback"] = (
            pipe.segmenter.cuda_graph_fallback
        )  # with --cuda-graph: ran eager, why
        if args.compare_release and args.sam in SAM_MODEL_TYPES:  # the release used SAM
            out.update(compare_release(pipe, args.video, Path(work), sync, args.release_repeats))
    print(json.dumps(out), flush=True)


def run_child(
    args: argparse.Namespace, video: Path, compare: bool, precision: str, option: str
) -> dict:
    """One pipeline on one video in a fresh process; its JSON line. RuntimeError (with stderr's tail) if it fails."""
    cmd = [sys.executable, __file__, "--child", "--video", str(video), "--device", args.device]
    cmd += ["--sam", args.sam] + (["--real-size"] if args.real_size else [])
    cmd += ["--compare-release"] if compare else []
    compile_sam = option == "compile"
    cmd += ["--precision", precision] + (["--compile"] if compile_sam else [])
    cmd += ["--cuda-graph"] if option == "graph" else []
    cmd += ["--sam-precision", args.sam_precision]
    cmd += ["--warm-up-hw", str(args.height), str(args.width)]
    cmd += ["--release-repeats", str(args.release_repeats), "--objects", str(args.objects)]
    cmd += [] if args.detector_batch is None else ["--detector-batch", str(args.detector_batch)]
    with tempfile.TemporaryDirectory(prefix="inductor-") as cache:
        # a cold compile
        env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": cache} if compile_sam else None
        done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        tail = "\n".join(done.stderr.strip().splitlines()[-15:])
        raise RuntimeError(
            f"benchmark child {variant_name(precision, option)} on {video.name} failed "
            f"(exit {done.returncode}):\n{tail}"
        )
    return json.loads(done.stdout.strip().splitlines()[-1])


def after_first_chunk_fps(r: dict) -> float | None:
    """Frames per second from the first streamed chunk to the end (None when the whole video was one chunk)."""
    frames = r["frames"] - r.get("frames_at_first_chunk", r["frames"])
    seconds = r["seconds"] - (r["first_chunk_s"] or r["seconds"])
    return frames / seconds if frames > 0 and seconds > 0 else None


def first_call_overhead_s(r: dict) -> float | None:
    """How much longer the first SAM encoder call took than the mean of the others (compile, warm-up); None if < 2."""
    calls = r.get("sam_encoder_calls", 0)
    if calls < 2:
        return None
    first = r["first_sam_call_s"]
    return first - (r["sam_encoder_s"] - first) / (calls - 1)


def steady_fps(r: dict) -> float | None:
    """End-to-end fps with the first SAM call's overhead taken out (approximate: the pipeline overlaps stages)."""
    overhead = first_call_overhead_s(r)
    if overhead is None or r["seconds"] - overhead <= 0:
        return None
    return r["frames"] / (r["seconds"] - overhead)


def _cell(value: float | None, width: int, digits: int = 2) -> str:
    return f"{value:{width}.{digits}f}" if value is not None else f"{'-':>{width}}"


VARIANT_COLUMNS = (
    ("variant", 14),
    ("warm-up s", 10),
    ("fps e2e", 8),
    ("first chunk s", 14),
    ("fps after 1st chunk", 20),
    ("1st SAM call s", 15),
    ("fps w/o 1st-call extra", 23),
    ("SAM calls", 10),
    ("peak GPU MB", 12),
)


def variant_row(name: str, r: dict) -> str:
    cells = [
        f"{name:<14}",
        _cell(r.get("warm_up_s"), 10),
        _cell(r["frames"] / r["seconds"], 8),
        _cell(r["first_chunk_s"], 14),
        _cell(after_first_chunk_fps(r), 20),
        _cell(r.get("first_sam_call_s"), 15),
        _cell(steady_fps(r), 23),
        f"{r.get('sam_encoder_calls', 0):10d}",
        _cell(r.get("peak_gpu_mb"), 12, 0),
    ]
    return "  " + " ".join(cells)


def run_variants(args: argparse.Namespace, video: Path, reuse: dict | None) -> bool:
    """The short video once per variant, each in its own child; prints a table row as each finishes. False if one
    failed (its row says why; the others still run)."""
    print(
        f"variants on the {args.frames[0]}-frame video, each in its own process. Runs with +compile start from "
        "an empty inductor cache: their first SAM encoder call includes a cold compile. 'fps w/o 1st-call extra' "
        "takes out how much longer that first call was than the others (compile, warm-up). On CUDA every run first "
        "warms up on one frame, as the app does at load, so there the compile lands in 'warm-up s'. 'first chunk s': "
        f"{FIRST_CHUNK}. 'peak GPU MB': allocated by PyTorch. Boxes: {objects_text(args)}. {load_text()}",
        flush=True,
    )
    print("  " + " ".join(f"{title:<{w}}" if i == 0 else f"{title:>{w}}" for i, (title, w) in
                          enumerate(VARIANT_COLUMNS)), flush=True)  # fmt: skip
    main = variant_name(args.precision, sam_option(args))
    ok = True
    for precision, option in args.variants or [parse_variant(v) for v in DEFAULT_VARIANTS]:
        name = variant_name(precision, option)
        reused = reuse is not None and name == main
        try:
            r = reuse if reused else run_child(args, video, False, precision, option)
        except (
            RuntimeError
        ) as err:  # one failing variant (e.g. no compiler) must not lose the others' numbers
            print(f"  {name:<14} FAILED: {err}", flush=True)
            ok = False
            continue
        print(variant_row(name, r) + ("  (the run above)" if reused else ""), flush=True)
        if r.get("sam_cuda_graph_fallback"):
            print(
                f"  {name:<14} (its SAM encoder ran EAGER: {r['sam_cuda_graph_fallback']})",
                flush=True,
            )
    return ok


FIRST_CHUNK = (
    "the first 1 s chunk file closed on disk, timed from run_job's start with the models already loaded (as in the "
    "app after its load; on CPU without a warm-up frame), not from a click on Run"
)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--device", default="cpu")
    p.add_argument(
        "--real-size",
        action="store_true",
        help="--sam's model + R50 tracker at real size (random weights)",
    )
    p.add_argument("--sam", default="vit_h", choices=SAM_MODEL_TYPES + SAM2_MODEL_TYPES,
                   help="the box-to-mask model with --real-size; without it, a sam2.1_* picks the tiny SAM 2.1 "
                        "instead of the tiny SAM")  # fmt: skip
    p.add_argument("--frames", type=int, nargs=2, default=[100, 1000], metavar=("SHORT", "LONG"))
    p.add_argument("--height", type=int, default=96)
    p.add_argument("--width", type=int, default=128)
    p.add_argument(
        "--precision", default="fp32", choices=PRECISIONS, help="tracker compute precision"
    )
    # SegmenterConfig takes one or the other
    sam_runner = p.add_mutually_exclusive_group()
    sam_runner.add_argument(
        "--compile",
        action="store_true",
        help="torch.compile SAM's image encoder (SegmenterConfig.compile)",
    )
    sam_runner.add_argument(
        "--cuda-graph",
        action="store_true",
        help="replay SAM's image encoder from a CUDA graph (SegmenterConfig.cuda_graph; not with --compile)",
    )
    p.add_argument(
        "--sam-precision",
        default="auto",
        choices=tuple(SAM_PRECISIONS),
        help="SAM's image encoder as uvosam segment --sam-precision: auto (bf16 on GPUs and CPUs with native "
        "bf16: compute capability 8.0 on, AVX512-BF16 or AMX), bf16, fp32",
    )
    p.add_argument(
        "--detector-batch",
        type=positive_int,
        default=None,
        help="frames per detector call (default: the tiny tracker's 3; at real size IDOL's 10 on a GPU, 1 on a CPU)",
    )
    p.add_argument(
        "--objects",
        type=non_negative_int,
        default=0,
        metavar="N",
        help="every frame holds N tracked boxes: the tracker still runs on every frame, its random-weight output "
        "replaced (benchmarks/_objects.py), so SAM works on every frame as with trained weights; 0 (default): the "
        "random-weight tracker's own boxes (a real-size random tracker finds few: the report says on how many "
        "frames SAM ran)",
    )
    p.add_argument(
        "--release-repeats",
        type=positive_int,
        default=3,
        help="alternating timed pairs (ours, release-equivalent) on the SHORT video, after one untimed frame each",
    )
    p.add_argument(
        "--variants",
        nargs="*",
        type=parse_variant,
        metavar="VARIANT",
        help="after the usual report, run the SHORT video once per variant and print a table; a variant "
        f"is fp32|tf32|bf16 with an optional '+compile' or '+graph' (--cuda-graph) (no value: "
        f"{' '.join(DEFAULT_VARIANTS)})",
    )
    p.add_argument(
        "--variants-only",
        action="store_true",
        help="only the --variants table on the SHORT video (no main runs, no LONG video)",
    )
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--video", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--compare-release", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--warm-up-hw", type=int, nargs=2, default=[480, 854], help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        child(args)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        short_video = Path(tmp) / f"v{args.frames[0]}.mp4"
        if args.variants_only:
            make_video(short_video, args.frames[0], args.height, args.width)
            if args.variants is None:
                args.variants = []
            return 0 if run_variants(args, short_video, None) else 1
        runs = run_lengths(args, Path(tmp))
        ok = len(runs) == len(args.frames)
        if args.variants is not None:
            ok = run_variants(args, short_video, runs.get(args.frames[0])) and ok
    return 0 if ok else 1


def run_lengths(args: argparse.Namespace, tmp: Path) -> dict:
    """Each length in its own child, printing its lines as it ends (a later length that fails or is cut loses only
    its own); then the comparisons that need both. ``{frames: run}`` of those that finished."""
    runs: dict[int, dict] = {}
    header = False
    for n in args.frames:
        video = tmp / f"v{n}.mp4"
        make_video(video, n, args.height, args.width)
        try:
            r = run_child(args, video, (n == args.frames[0]), args.precision, sam_option(args))
        except RuntimeError as err:
            print(f"  {n:5d} frames: FAILED: {err}", flush=True)
            continue
        if not header:
            print(header_line(args, r["sam_fast"]), flush=True)
            header = True
        runs[n] = r
        for line in run_lines(n, r):
            print(line, flush=True)
        if n == args.frames[0]:
            for line in release_lines(args, r):
                print(line, flush=True)
    if header:
        print(stages_legend(), flush=True)
    if len(runs) == len(args.frames):
        short, long = (runs[n] for n in args.frames)
        for line in ratio_lines(args, short, long):
            print(line, flush=True)
    return runs


def model_text(sam: str, real_size: bool, fast: bool) -> tuple[str, str]:
    """(the models, how the image encoder runs: "SAM encoder bf16 + SDPA" ...) for the report's header line."""
    family = "SAM 2.1" if sam in SAM2_MODEL_TYPES else "SAM"
    size = (
        f"{family} {sam} + IDOL R50 (random weights)"
        if real_size
        else f"tiny {family} + tiny IDOL (random weights)"
    )
    if sam in SAM2_MODEL_TYPES:
        return size, "SAM 2.1 encoder " + ("bf16 autocast" if fast else "plain forward_image")
    return size, "SAM encoder " + ("bf16 + SDPA" if fast else "SAM's own forward")


def header_line(args: argparse.Namespace, fast: bool) -> str:
    size, encoder = model_text(args.sam, args.real_size, fast)
    return (
        f"device {args.device}; {size}; {args.width}x{args.height} synthetic video, 25 fps, 1 s chunks; "
        f"tracker {args.precision}; {encoder}, compile {'on' if args.compile else 'off'}, CUDA graph "
        f"{'on' if args.cuda_graph else 'off'}; {objects_text(args)}; "
        f"OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']}; {load_text()} (at the report)"
    )


def objects_text(args: argparse.Namespace) -> str:
    """What the tracker's boxes are: ``--objects``' fixed boxes, or the random-weight tracker's own."""
    if args.objects:
        return (
            f"{args.objects} boxes on every frame (the tracker runs on every frame; its random-weight output replaced: "
            "--objects)"
        )
    return "the random-weight tracker's own boxes (--objects N for N boxes on every frame, a trained tracker's load)"


def run_lines(n: int, r: dict) -> list[str]:
    """One length's lines: fps, first chunk, memory, stages, and its JSON (the whole child record)."""
    gpu = ""
    if "peak_gpu_mb" in r:
        gpu = (
            f", peak GPU {r['peak_gpu_mb']:.0f} MB allocated by PyTorch "
            f"({r.get('peak_gpu_reserved_mb', 0):.0f} MB reserved; CUDA context not counted)"
        )
    gpu += (
        f" (after a {r['warm_up_s']:.2f} s warm-up frame, as the app does at load)"
        if r.get("warm_up_s")
        else ""
    )
    first = f"{r['first_chunk_s']:.2f} s" if r.get("first_chunk_s") is not None else "- (no chunk)"
    lines = [
        (
            f"  {n:5d} frames: {r['frames'] / r['seconds']:6.2f} fps end to end (decode+track+SAM+render+"
            f"encode+export), first chunk after {first}, peak RSS {r['peak_rss_mb']:.0f} MB{rss_note(r)}{gpu}; "
            f"SAM's image encoder ran {r.get('sam_encoder_calls', 0)} times"
        )
    ]
    if (line := stage_line(r)) is not None:
        lines.append(
            f"         ms per frame by stage: {line} (end to end {1000 * r['seconds'] / r['frames']:.1f})"
        )
    lines.append(f"  json {n}: {json.dumps(r)}")
    return lines


def rss_note(r: dict) -> str:
    """How the run's peak RSS was read, the peak with the ffmpeg children, and the load's own peak."""
    if "peak_rss_with_ffmpeg_mb" not in r:
        return ""
    source = (
        "since the models were loaded"
        if r["peak_rss_source"] == "VmHWM"
        else "sampled every 100 ms"
    )
    return (
        f" ({source}; {r['peak_rss_with_ffmpeg_mb']:.0f} MB with the ffmpeg processes, sampled; "
        f"{r['peak_rss_load_mb']:.0f} MB while loading)"
    )


def stages_legend() -> str:
    return (
        "  stages: "
        + "; ".join(f"{k} = {v}" for k, v in STAGES.items())
        + ". On CUDA the model stages are timed by CUDA events (no host sync, so the run overlaps as untimed); "
        "threads overlap, so the stages add up to more than end to end; the slowest thread sets the pace. "
        f"First chunk: {FIRST_CHUNK}."
    )


def ratio_lines(args: argparse.Namespace, short: dict, long: dict) -> list[str]:
    """Memory of the LONG vs the SHORT video: peak RSS, with ffmpeg, the run's own part, and on CUDA the GPU."""
    n_short, n_long = args.frames
    lines = [
        (
            f"memory ratio {n_long} vs {n_short} frames (peak RSS): "
            f"{long['peak_rss_mb'] / short['peak_rss_mb']:.3f} (goal <= 1.15)"
        )
    ]
    if short.get("peak_rss_with_ffmpeg_mb") and long.get("peak_rss_with_ffmpeg_mb"):
        lines.append(
            f"  with the ffmpeg processes (sampled every 100 ms): {long['peak_rss_with_ffmpeg_mb']:.0f} vs "
            f"{short['peak_rss_with_ffmpeg_mb']:.0f} MB, ratio "
            f"{long['peak_rss_with_ffmpeg_mb'] / short['peak_rss_with_ffmpeg_mb']:.3f}"
        )
    grow = [r["peak_rss_mb"] - r["rss_after_load_mb"] for r in (short, long)]
    per_frame = (grow[1] - grow[0]) * 1024 / (n_long - n_short) if n_long != n_short else 0.0
    lines.append(
        f"  of which the run itself (peak RSS above the RSS after loading the models): {grow[1]:.0f} MB vs "
        f"{grow[0]:.0f} MB, i.e. {per_frame:.1f} KB per extra frame (the ratio above is diluted by the fixed cost "
        "of torch and the models)"
    )
    if "peak_gpu_mb" in short and "peak_gpu_mb" in long:
        lines.append(
            f"GPU memory ratio {n_long} vs {n_short} frames (peak allocated by PyTorch): "
            f"{long['peak_gpu_mb'] / short['peak_gpu_mb']:.3f} ({long['peak_gpu_mb']:.0f} vs "
            f"{short['peak_gpu_mb']:.0f} MB; reserved {long.get('peak_gpu_reserved_mb', 0):.0f} vs "
            f"{short.get('peak_gpu_reserved_mb', 0):.0f} MB)"
        )
    return lines


if __name__ == "__main__":
    sys.exit(main())
