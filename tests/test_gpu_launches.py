"""Regression guards for host syncs on the CUDA path, counted on a CPU by benchmarks/gpu_launches.py: the tiny models
run on a fake CUDA device (FakeTensorMode) while every dispatched op, copy and read is logged."""

import numpy as np
import pytest
import torch
from script_helpers import load_benchmark
from torch._subclasses.fake_tensor import FakeTensorMode

from uvosam.config import SegmenterConfig
from uvosam.segmenter import BoxPromptSegmenter
from uvosam.testing import tiny_idol_tracker, tiny_sam

pytestmark = [
    pytest.mark.filterwarnings("ignore:CUDA is not available or torch_xla is imported"),
    pytest.mark.filterwarnings("ignore:Accessing the data pointer of FakeTensor"),
]


@pytest.fixture(scope="module")
def bench():
    # the counter uses torch internals (fake tensors, dispatch modes) that a torch other than this project's may lack
    try:
        return load_benchmark("gpu_launches")
    except ImportError as err:
        # our own benchmark broken: a failure, not a skip
        if not (err.name or "").startswith("torch"):
            raise
        pytest.skip(f"the launch counter needs torch internals this torch lacks: {err}")


@pytest.fixture(scope="module")
def sam_frames(bench):
    """Records of two frames of the tiny SAM's fast path (3 boxes) on fake CUDA."""
    frame = np.full((48, 80, 3), 100, np.uint8)
    with FakeTensorMode(allow_non_fake_inputs=True), bench.fake_cuda_capability():
        sam = bench.to_fake_cuda(tiny_sam())
        segmenter = BoxPromptSegmenter(sam, SegmenterConfig(fast=True))
        return bench.sam_frames(segmenter, frame, bench.example_boxes(3, 48, 80), autocast=False)


def test_the_fast_encoder_neither_copies_nor_reads_and_keeps_its_tables(sam_frames):
    first, second = sam_frames
    encoder = ("sam image encoder", "sam rel-pos tables")
    assert first.launches["sam rel-pos tables"] > 0  # built once ...
    assert second.launches["sam rel-pos tables"] == 0  # ... and kept
    assert [e for e in first.events + second.events if e.stage in encoder] == []
    assert second.launches["sam image encoder"] > 0


def test_the_boxes_go_up_before_the_encoder_and_masks_come_back_after(sam_frames):
    _, second = sam_frames
    uploads = [e for e in second.events if e.kind == "h2d"]
    assert {e.stage for e in uploads} == {"sam boxes upload", "sam preprocess"}
    boxes = next(e for e in uploads if e.stage == "sam boxes upload")
    assert "(3, 4) float32" in boxes.what
    encoder_start, encoder_end = second.spans["sam image encoder"]
    assert boxes.index < encoder_start
    reads = [e for e in second.events if e.kind == "d2h"]
    assert [e.what for e in reads] == ["copy (3, 48, 80) bool", "copy (3,) float32"]
    assert {e.stage for e in reads} == {"sam prompt+mask decoder"}
    assert min(e.index for e in reads) > encoder_end
    assert second.count("sam prompt+mask decoder", "h2d") == 0


def test_the_detector_forward_never_waits_for_the_gpu(bench):
    frame = np.full((40, 64, 3), 100, np.uint8)
    with FakeTensorMode(allow_non_fake_inputs=True), bench.triton_stand_in():
        tracker = tiny_idol_tracker(batch_size=2)
        bench.to_fake_cuda(tracker.detector)
        session = tracker.new_video(height=40, width=64)
        first, second = bench.idol_batches(session, frame, 2, autocast=False)
    forward = [e for e in second.events if e.stage == "idol forward"]
    assert forward == []  # no upload, read or data-dependent op in the middle of the forward
    assert second.launches["idol forward"] > 100
    assert [e for e in first.events if e.stage == "idol forward" and e.kind != "h2d"] == []
    reads = [e for e in second.events if e.kind == "d2h"]
    assert len(reads) == 3 and {e.stage for e in reads} == {"idol postprocess"}
    assert min(e.index for e in reads) > second.spans["idol forward"][1]
    # the batch goes up in one copy that does not wait for the GPU (non-blocking, from pinned memory), constants
    # and pad mask included, and is normalised in 3 launches; a single micro-batch's outputs are not copied
    uploads = [e for e in second.events if e.kind == "h2d"]
    assert [(e.stage, e.what.split(" ", 2)[2]) for e in uploads] == [
        ("idol preprocess", "uint8 non_blocking=True pinned=True")
    ]
    assert second.launches["idol preprocess"] <= 3
    assert second.launches["idol outputs"] == 0


def test_autocast_casts_no_encoder_weight_once_they_are_kept_in_bf16(bench):
    """``keep_matmul_weights_bf16`` (what ``from_pretrained`` does on the fast path) takes away exactly one cast
    launch per Linear/Conv2d weight and bias a frame, and nothing else changes."""
    frame = np.full((48, 80, 3), 100, np.uint8)
    boxes = bench.example_boxes(3, 48, 80)
    with FakeTensorMode(allow_non_fake_inputs=True), bench.fake_cuda_capability():
        sam = bench.to_fake_cuda(tiny_sam())
        segmenter = BoxPromptSegmenter(sam, SegmenterConfig(fast=True))
        _, given = bench.sam_frames(segmenter, frame, boxes, autocast=True)
        cast = segmenter.keep_matmul_weights_bf16()
        _, kept = bench.sam_frames(segmenter, frame, boxes, autocast=True)
    encoder = sam.image_encoder
    matmul = [p for m in encoder.modules() if isinstance(m, torch.nn.Linear | torch.nn.Conv2d)
              for p in m.parameters(recurse=False)]  # fmt: skip
    assert cast == len(matmul) > 0
    assert given.launches["sam image encoder"] - kept.launches["sam image encoder"] == cast
    others = set(given.launches) - {"sam image encoder"}
    assert {s: kept.launches[s] for s in others} == {s: given.launches[s] for s in others}
