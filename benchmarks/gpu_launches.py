"""Kernel launches and host syncs per frame on the CUDA path, counted on a CPU: no GPU needed.

The real-size models (random weights, built with the real constructors) run on a *fake* CUDA device
(``torch._subclasses.fake_tensor.FakeTensorMode``: tensors have shapes, dtypes and devices but no data, so ViT-H costs
no 2.5 GB of RAM) under a ``TorchDispatchMode`` that sees every ATen op the CUDA path would dispatch. Per stage it
counts:

* launches: ops that write a tensor (a new one or in place), i.e. that launch at least one kernel; views, metadata
  reads, ``empty`` and ops that return an input unchanged (``.contiguous()`` of a contiguous tensor, ``.to()`` of
  the same dtype) are left out. A composite op (``linear``, ``layer_norm``, ``einsum``) counts once: an estimate;
* H2D: host-to-device copies (``non_blocking`` and a pinned source noted; a copy from ordinary memory waits for the
  queued work), also the implicit one of an op that takes a CPU tensor of 1+ dims next to CUDA ones;
* D2H: device-to-host copies and ``item()`` / ``tolist()`` / ``bool()`` reads: each waits for the GPU (a sync);
* data-dependent shapes: ``nonzero``, boolean-mask indexing, ``unique``, ... (the host waits for the size).

Where each copy / read / data-dependent op comes from (file:line of the innermost frame in uvosam, segment_anything
or sam2) is printed. D2H copies return random data; values first uploaded from the host (box coordinates, level
shapes) are remembered, so reading them back gives the real values. Frame 2 is what is counted per frame (frame 1
also builds what is kept: SAM's relative-position tables, the detector's level-shapes tensor).

``torch.autocast("cuda")`` is disabled where CUDA is unavailable; to count the casts it adds, this process (only
this one) reports CUDA and bf16 as available (``torch.cuda.is_available`` / ``is_bf16_supported`` patched; the fake
device reports an H100's compute capability, 9.0, throughout) and counts the autocast stages a second time
(``autocast`` column); SAM's a third time with its encoder's matmul weights kept in bf16, as ``from_pretrained`` keeps
them on the fast path (``bf16 w`` column). The Triton deformable-attention kernel is replaced by a stand-in that makes
its ``.contiguous()`` calls and one launch, as ``ops/function.py`` does.

    python benchmarks/gpu_launches.py                       # SAM vit_h, 3 boxes, IDOL R50 batch 10, 854x480
    python benchmarks/gpu_launches.py --sam sam2.1_large --boxes 5
    python benchmarks/gpu_launches.py --sam vit_b --detector-batch 5 --height 720 --width 1280
"""

import argparse
import sys
import warnings
from collections import Counter
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
from torch._guards import detect_fake_mode
from torch._subclasses.fake_tensor import FakeTensorMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._launch_counter import (
    KINDS,
    LaunchCounter,
    Record,
    count,
    cuda_reported_available,
    fake_cuda_capability,
    to_fake_cuda,
    triton_stand_in,
)
from uvosam.config import SAM_MODEL_TYPES, SEGMENTER_MODEL_TYPES

aten = torch.ops.aten


def fake_segmenter(name: str):
    """The box segmenter of SAM / SAM 2.1 ``name`` with random weights on the fake CUDA device (call under
    ``FakeTensorMode``)."""
    from uvosam.config import SegmenterConfig

    config = SegmenterConfig(model_type=name)
    if name in SAM_MODEL_TYPES:
        from segment_anything import sam_model_registry

        from uvosam.segmenter import BoxPromptSegmenter

        return BoxPromptSegmenter(to_fake_cuda(sam_model_registry[name]().eval()), config)
    from uvosam.sam2_segmenter import Sam2BoxSegmenter, build_sam2_model

    with LaunchCounter(
        detect_fake_mode(), real_host=False
    ):  # Hiera's __init__ reads drop-path rates (item)
        model = build_sam2_model(name)
    return Sam2BoxSegmenter(to_fake_cuda(model), config)


def fake_idol_session(batch: int, precision: str, height: int, width: int):
    """A new ``IDOLSession`` of the R50 detector (``DetectorConfig()``: the released layout) with random weights on
    the fake CUDA device, ``batch`` frames per forward (call under ``FakeTensorMode``)."""
    from uvosam.tracker.config import DetectorConfig
    from uvosam.tracker.detector import IDOLDetector
    from uvosam.tracker.session import IDOLTracker

    cfg = DetectorConfig(batch_infer_len=batch, precision=precision)
    tracker = IDOLTracker(to_fake_cuda(IDOLDetector(cfg).eval()), ("object",), batch_size=batch)
    return tracker.new_video(height=height, width=width)


def example_boxes(n: int, height: int, width: int) -> np.ndarray:
    """``n`` overlapping (N, 4) xyxy pixel boxes inside a ``height`` x ``width`` frame."""
    x1 = np.linspace(0.05, 0.5, n) * width
    y1 = np.linspace(0.1, 0.4, n) * height
    return np.stack([x1, y1, x1 + 0.4 * width, y1 + 0.5 * height], 1).astype(np.float32)


def sam_frames(segmenter, frame: np.ndarray, boxes: np.ndarray, *, autocast: bool) -> list[Record]:
    """Records of two frames through ``segmenter.segment`` (the second is the steady state)."""
    ids = np.arange(1, len(boxes) + 1)
    scores = np.linspace(0.9, 0.5, len(boxes))

    def one():
        segmenter.segment(frame, boxes, scores=scores, track_ids=ids)

    with cuda_reported_available() if autocast else nullcontext():
        return [count(one), count(one)]


def idol_batches(session, frame: np.ndarray, batch: int, *, autocast: bool) -> list[Record]:
    """Records of two batches of ``batch`` frames pushed into ``session`` (the second is the steady state)."""

    def one():
        for _ in range(batch):
            session.push(frame)

    with cuda_reported_available() if autocast else nullcontext():
        return [count(one), count(one)]


SAM_STAGES = ("sam boxes upload", "sam preprocess", "sam image encoder", "sam rel-pos tables",
              "sam prompt+mask decoder", "sam finish")  # fmt: skip
IDOL_STAGES = ("idol preprocess", "idol forward", "idol outputs", "idol postprocess")


def table_rows(
    label: str,
    plain: Record,
    autocast: Record,
    stages: tuple[str, ...],
    per: int,
    kept: Record | None = None,
) -> list[str]:
    """One row per stage: launches (plain / under autocast / under autocast with the matmul weights kept in bf16,
    ``kept``: SAM only), H2D, D2H and data-dependent ops; counts divided by ``per`` (frames per batch) in the
    per-frame column."""
    rows = []
    for stage in stages:
        launches, cast = plain.launches[stage], autocast.launches[stage]
        bf16 = "" if kept is None else kept.launches[stage]
        counts = [plain.count(stage, kind) for kind in KINDS]
        per_frame = f"{launches / per:.1f}" if per > 1 else ""
        rows.append(
            f"{label:<14}{stage:<26}{launches:>9}{cast:>10}{bf16:>10}{per_frame:>10}"
            + "".join(f"{c:>6}" for c in counts)
        )
    return rows


def event_lines(record: Record, stages: tuple[str, ...]) -> list[str]:
    """Each distinct copy / read / data-dependent op of ``record`` with its count, stage and site, in order."""
    seen: Counter = Counter()
    for e in record.events:
        if e.stage in stages:
            seen[(e.stage, e.kind, e.what, e.site)] += 1
    return [f"  {n:4d} x {kind:<8} {what:<48} {stage:<24} @ {site}"
            for (stage, kind, what, site), n in seen.items()]  # fmt: skip


def top_sites(record: Record, stage: str, k: int = 6) -> list[str]:
    """The ``k`` sites that launch most in ``stage``."""
    sites = Counter({site: n for (s, site), n in record.launch_sites.items() if s == stage})
    return [f"      {n:5d}  {site}" for site, n in sites.most_common(k)]


def added_sites(record: Record, base: Record, k: int = 4) -> str:
    """``"n @ site, ..."``: the ``k`` sites whose launches ``record`` has most more of than ``base``."""
    added = record.launch_sites.copy()
    added.subtract(base.launch_sites)
    return ", ".join(f"{n} @ {site}" for (_, site), n in added.most_common(k) if n > 0)


def report(title: str, records: dict[str, list[Record]], stages, per: int, label: str) -> list[str]:
    """Print the details of one model (frame 2's events and busiest sites); return its table rows."""
    plain, cast, kept = records["plain"], records["autocast"], records.get("kept")
    first, second = plain
    kept_text = (
        ""
        if kept is None
        else f", with the matmul weights kept in bf16 {sum(kept[1].launches.values())}"
    )
    print(f"\n== {title}: first call {sum(first.launches.values())} launches, second (counted) "
          f"{sum(second.launches.values())}; under autocast {sum(cast[1].launches.values())}{kept_text}")  # fmt: skip
    print("  copies, reads and data-dependent ops (frame 2, no autocast):")
    print("\n".join(event_lines(second, stages)) or "    none")
    extra = [line for line in event_lines(first, stages) if line not in event_lines(second, stages)]
    if extra:
        print("  first call only:\n" + "\n".join(extra))
    print("  autocast adds (sites):", added_sites(cast[1], second))
    if kept is not None:
        print(
            "  autocast adds with the matmul weights kept in bf16 (sites):",
            added_sites(kept[1], second),
        )
    for stage in stages:
        if second.launches[stage]:
            print(f"  {stage}: busiest sites\n" + "\n".join(top_sites(second, stage)))
    return table_rows(label, second, cast[1], stages, per, None if kept is None else kept[1])


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--sam", default="vit_h", choices=SEGMENTER_MODEL_TYPES)
    p.add_argument("--boxes", type=int, default=3, help="boxes per frame for SAM (default 3)")
    p.add_argument("--height", type=int, default=480)
    p.add_argument("--width", type=int, default=854)
    p.add_argument(
        "--detector-batch", type=int, default=10, help="frames per IDOL forward (0: skip IDOL)"
    )
    args = p.parse_args(argv)
    warnings.filterwarnings(
        "ignore", "CUDA is not available or torch_xla is imported"
    )  # plain columns
    warnings.filterwarnings(
        "ignore", "Accessing the data pointer of FakeTensor"
    )  # sam_fast's table stamp
    frame = np.full((args.height, args.width, 3), 100, np.uint8)
    rows = []
    with FakeTensorMode(allow_non_fake_inputs=True), fake_cuda_capability():
        segmenter = fake_segmenter(args.sam)
        boxes = example_boxes(args.boxes, args.height, args.width)
        records = {
            mode: sam_frames(segmenter, frame, boxes, autocast=mode == "autocast")
            for mode in ("plain", "autocast")
        }
        # what from_pretrained gives (its model is its own): the encoder's matmul weights cast once, in place
        if segmenter.keep_matmul_weights_bf16():
            records["kept"] = sam_frames(segmenter, frame, boxes, autocast=True)
        title = f"SAM {args.sam} (fast={segmenter.fast}), {args.boxes} boxes, {args.width}x{args.height}"
        rows += report(title, records, SAM_STAGES, 1, args.sam)
        if args.detector_batch:
            rows += idol_rows(frame, args.detector_batch)
    print(f"\n{'model':<14}{'stage':<26}{'launches':>9}{'autocast':>10}{'bf16 w':>10}{'per frame':>10}"
          f"{'H2D':>6}{'D2H':>6}{'dd':>6}")  # fmt: skip
    print("\n".join(rows))
    print("launches: ops writing a tensor (composites once); autocast: the same under bf16 autocast (SAM's fast "
          "path, the model as the constructor takes it; IDOL precision bf16); bf16 w: SAM's fast path with the "
          "encoder's matmul weights kept in bf16 (from_pretrained's own model: keep_matmul_weights_bf16); H2D/D2H: "
          "copies and reads (each D2H waits for the GPU); dd: data-dependent shapes (a wait too). Frame 2 / batch 2, "
          "without autocast; torch " + torch.__version__)  # fmt: skip


def idol_rows(frame: np.ndarray, batch: int) -> list[str]:
    """Count the R50 detector's two batches in fp32 and bf16 (autocast); print the details, return table rows."""
    height, width = frame.shape[:2]
    with triton_stand_in():
        records = {
            mode: idol_batches(
                fake_idol_session(batch, "bf16" if mode == "autocast" else "fp32", height, width),
                frame,
                batch,
                autocast=mode == "autocast",
            )
            for mode in ("plain", "autocast")
        }
    title = f"IDOL R50 detector, {batch} frames per forward, {width}x{height}"
    return report(title, records, IDOL_STAGES, batch, f"idol B={batch}")


if __name__ == "__main__":
    main()
