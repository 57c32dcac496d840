"""CUDA checks (marked ``gpu``: ``pytest -m gpu`` runs only them; skipped without CUDA; ``scripts/gpu_check.sh`` runs
them).

What only a GPU can show: the tracker's parity with the original code (fixture ``idol_small_seed0``) holds with
either deformable-attention backend on CUDA; the SAM fast path (bf16 autocast + fused SDPA kernels) keeps its masks
within the documented tolerance of the float32 path, and with its matmul weights kept in bf16 gives the same masks as
with float32 weights; SAM 2.1's (bf16 autocast, bf16 weights) keeps its masks within tolerance of float32 on the CPU;
a whole tiny pipeline on CUDA gives the CPU's tracks.
The image encoder replayed from a CUDA graph (``SegmenterConfig.cuda_graph``) gives the eager path's masks exactly,
per batch size, from two threads on two streams at once, after a failed capture (eager, with a warning; the thread's
stream and the allocator left clean, a new capture works) and after the weights change in place (captured again); a
graph that ignores its input fails the capture's self-check.
The kernel's own numerics are in ``test_msda_kernel.py``.
"""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import pytest
import torch
from model_helpers import (
    OUTPUT_ATOL,
    mask_iou,
    msda_module_and_data,
    small_detector,
    with_random_rel_pos,
)

from uvosam.tracker import msda

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]

BACKENDS = {"triton": "msda: triton (uvosam_ops", "pytorch": "msda: pytorch reference"}


@pytest.fixture(scope="module")
def fixture_model(fixtures_dir):
    """The ``idol_small_seed0`` detector on CUDA, its frames and the original code's outputs."""
    root = fixtures_dir / "idol_small_seed0"
    return (
        small_detector(root).cuda(),
        np.load(root / "frames.npy"),
        dict(np.load(root / "outputs.npz")),
    )


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_fixture_parity_on_cuda_with_either_backend(fixture_model, backend, monkeypatch):
    monkeypatch.setenv("UVOSAM_MSDA", backend)
    assert msda.backend_status().startswith(BACKENDS[backend])
    model, frames, want = fixture_model
    det = model.detect_frames(frames)
    got = {
        "pred_logits": det.logits,
        "pred_boxes": det.boxes_cxcywh_norm,
        "pred_inst_embed": det.embeddings,
    }
    errors = {k: float((got[k].cpu() - torch.from_numpy(v)).abs().max()) for k, v in want.items()}
    print(backend, "max abs error vs original:", errors)
    assert all(errors[k] <= OUTPUT_ATOL[k] for k in errors), errors


def test_msdeformattn_module_fixture_with_the_kernel(fixtures_dir, monkeypatch):
    monkeypatch.setenv("UVOSAM_MSDA", "triton")
    module, data = msda_module_and_data(fixtures_dir)
    module = module.cuda()
    d = {k: v.cuda() for k, v in data.items()}
    for kind in ("2d", "4d"):
        with torch.no_grad():
            out = module(
                d["query"],
                d["reference_points_" + kind],
                d["input_flatten"],
                d["spatial_shapes"],
                d["level_start_index"],
                d["input_padding_mask"],
            )
        torch.testing.assert_close(out.cpu(), d["output_" + kind].cpu(), atol=1e-5, rtol=0)


@pytest.mark.parametrize("precision, box_tol", [("tf32", 0.01), ("bf16", 0.03)])
def test_fast_tracker_precisions_stay_close_to_fp32_on_cuda(precision, box_tol):
    from uvosam.tracker.config import DetectorConfig
    from uvosam.tracker.detector import IDOLDetector

    torch.manual_seed(0)
    cfg = DetectorConfig.tiny()
    exact = IDOLDetector(cfg).eval().cuda()
    fast = IDOLDetector(dataclasses.replace(cfg, precision=precision)).eval().cuda()
    fast.load_state_dict(exact.state_dict())
    frames = np.random.default_rng(0).integers(0, 255, (4, 96, 128, 3), dtype=np.uint8)
    a, b = exact.detect_frames(frames), fast.detect_frames(frames)
    assert b.boxes_cxcywh_norm.dtype == torch.float32
    assert (a.boxes_cxcywh_norm - b.boxes_cxcywh_norm).abs().max() < box_tol


def test_sam_fast_path_on_cuda_matches_fp32_masks():
    """bf16 autocast + SDPA (flash / memory-efficient kernels on CUDA) vs SAM's own float32 forward: mask
    IoU >= 0.99. The fast path with its matmul weights kept in bf16 (``keep_matmul_weights_bf16``, what
    ``from_pretrained`` gives) gives the fast path's masks exactly, as on the CPU (test_segmenter.py)."""
    from uvosam.config import SegmenterConfig
    from uvosam.segmenter import BoxPromptSegmenter
    from uvosam.testing import moving_shapes, tiny_sam

    # the CPU test's model: random weights put many logits near the threshold, so a
    sam = tiny_sam(depth=2)
    # wider random model can fall just under 0.99 from bf16 rounding alone (0.9898 seen on CPU at width 64)
    with_random_rel_pos(sam.image_encoder)
    # its own copy: the cast is in place, and slow and fast share sam
    kept_sam = copy.deepcopy(sam)
    clip = moving_shapes(num_frames=3, height=96, width=128, num_objects=3, seed=2)
    slow = BoxPromptSegmenter(sam, SegmenterConfig(overlap="none", fast=False), device="cuda")
    fast = BoxPromptSegmenter(sam, SegmenterConfig(overlap="none"), device="cuda")
    kept = BoxPromptSegmenter(kept_sam, SegmenterConfig(overlap="none"), device="cuda")
    assert (slow.fast, fast.fast) == (False, True)  # the fast path is the CUDA default
    assert kept.keep_matmul_weights_bf16() > 0 and fast.matmul_weights_bf16 is False
    for frame, boxes in zip(clip.frames, clip.boxes_xyxy):
        ref, got = slow.segment(frame, boxes), fast.segment(frame, boxes)
        assert ref.masks.any(axis=(1, 2)).all()
        assert (mask_iou(ref.masks, got.masks) >= 0.99).all(), mask_iou(ref.masks, got.masks)
        np.testing.assert_array_equal(kept.segment(frame, boxes).masks, got.masks)


def test_sam_float32_sdpa_encoder_on_cuda_equals_sams_forward():
    """The default on a GPU without native bf16 (T4, V100): SAM's encoder in float32 with SDPA attention (on CUDA its
    memory-efficient kernel with the rel-pos bias) computes SAM's own forward up to float rounding."""
    from uvosam.segmenter import plain_encode, sdpa_encode
    from uvosam.testing import tiny_sam

    sam = tiny_sam(depth=2)
    with_random_rel_pos(sam.image_encoder).cuda()
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(2)).cuda()
    with torch.inference_mode():
        expected, got = plain_encode(sam.image_encoder, x), sdpa_encode(sam.image_encoder, x)
    assert got.dtype == torch.float32
    assert (got - expected).abs().max().item() < 1e-4


def test_tiny_pipeline_on_cuda_gives_the_cpu_tracks():
    from uvosam.config import SegmenterConfig
    from uvosam.pipeline import UVOSAM
    from uvosam.segmenter import BoxPromptSegmenter
    from uvosam.testing import moving_shapes, tiny_idol_tracker, tiny_sam

    video = moving_shapes(14, height=48, width=64, seed=2)
    exact = SegmenterConfig(fast=False)

    def run(device: str):
        tracker = tiny_idol_tracker()
        tracker.detector.to(device)
        pipe = UVOSAM(tracker, BoxPromptSegmenter(tiny_sam(), exact, device=device))
        return list(pipe(video.frames))

    cpu, cuda = run("cpu"), run("cuda")
    assert [r.frame_index for r in cuda] == list(range(14))
    assert sum(len(r) for r in cpu) > 0
    for a, b in zip(cpu, cuda, strict=True):
        assert a.track_ids.tolist() == b.track_ids.tolist()
        np.testing.assert_allclose(a.boxes_xyxy, b.boxes_xyxy, atol=1e-2)
        if len(a):
            assert (mask_iou(a.masks, b.masks) >= 0.98).all()


def test_sam2_1_on_cuda_fast_path_and_bf16_weights_stay_close_to_cpu_fp32():
    """SAM 2.1's image path with every tensor on the GPU (the resize and normalisation too): its CUDA default (bf16
    autocast) and bf16 encoder weights vs float32 on the CPU, tiny random SAM 2.1 (as the CPU tests)."""
    from uvosam.config import SegmenterConfig
    from uvosam.sam2_segmenter import Sam2BoxSegmenter
    from uvosam.testing import moving_shapes, tiny_sam2

    clip = moving_shapes(num_frames=3, height=96, width=128, num_objects=3, seed=2)
    config = SegmenterConfig(model_type="sam2.1_tiny", overlap="none")
    cpu = Sam2BoxSegmenter(tiny_sam2(), dataclasses.replace(config, fast=False), device="cpu")
    fast = Sam2BoxSegmenter(tiny_sam2(), config, device="cuda")
    bf16 = Sam2BoxSegmenter(tiny_sam2(), dataclasses.replace(config, encoder_batch=3), device="cuda",
                            dtype=torch.bfloat16)  # fmt: skip
    assert fast.fast and fast.device.type == "cuda" and bf16.encoder_dtype == torch.bfloat16
    boxes = [b[~np.isnan(b).any(axis=1)] for b in clip.boxes_xyxy]
    batched = bf16.segment_batch(list(clip.frames), boxes)
    for frame, frame_boxes, got_bf16 in zip(clip.frames, boxes, batched, strict=True):
        ref, got = cpu.segment(frame, frame_boxes), fast.segment(frame, frame_boxes)
        assert ref.masks.any(axis=(1, 2)).all()
        assert (mask_iou(ref.masks, got.masks) >= 0.98).all(), mask_iou(ref.masks, got.masks)
        assert (mask_iou(ref.masks, got_bf16.masks) >= 0.9).all(), mask_iou(
            ref.masks, got_bf16.masks
        )


# --- SegmenterConfig.cuda_graph: the image encoder replayed from a CUDA graph (uvosam.encoder_graphs)


def _graph_pair(family: str, encoder_batch: int = 1):
    """(eager, graphed) fast-path segmenters on CUDA sharing one tiny model, and a clip; SAM's rel-pos parameters made
    non-zero (SAM zero-inits them) and its matmul weights kept in bf16 (what from_pretrained gives)."""
    from uvosam.config import SegmenterConfig
    from uvosam.sam2_segmenter import Sam2BoxSegmenter
    from uvosam.segmenter import BoxPromptSegmenter
    from uvosam.testing import moving_shapes, tiny_sam, tiny_sam2

    if family == "sam":
        model = tiny_sam(depth=2)
        with_random_rel_pos(model.image_encoder)
        cls, config = BoxPromptSegmenter, SegmenterConfig(overlap="none", fast=True)
    else:
        model, cls = tiny_sam2(), Sam2BoxSegmenter
        config = SegmenterConfig(model_type="sam2.1_tiny", overlap="none", fast=True)
    config = dataclasses.replace(config, encoder_batch=encoder_batch)
    eager = cls(model, config, device="cuda")
    graphed = cls(model, dataclasses.replace(config, cuda_graph=True))
    assert eager.keep_matmul_weights_bf16() > 0
    clip = moving_shapes(num_frames=5, height=96, width=128, num_objects=3, seed=2)
    boxes = [b[~np.isnan(b).any(axis=1)] for b in clip.boxes_xyxy]
    return eager, graphed, list(clip.frames), boxes


def _assert_same(got, want):
    assert any(b.masks.any() for b in want)  # not all empty: the comparison means something
    for a, b in zip(got, want, strict=True):
        np.testing.assert_array_equal(a.masks, b.masks)
        np.testing.assert_array_equal(a.mask_scores, b.mask_scores)


@pytest.mark.parametrize("family", ["sam", "sam2"])
def test_cuda_graph_masks_equal_eager_masks_over_frames_and_batch_sizes(family):
    """Five frames, two at a time: graphs of batch size 2 and 1, each replayed on several different frames; every
    mask and score equals the eager path's (the same kernels on the same data). Each reference is made with the same
    calls (the same batches): cuBLAS/cuDNN need not give the same bits at another batch size."""
    eager, graphed, frames, boxes = _graph_pair(family, encoder_batch=2)
    _assert_same(graphed.segment_batch(frames, boxes), eager.segment_batch(frames, boxes))
    _assert_same(
        graphed.segment_batch(frames[::-1], boxes[::-1]),
        eager.segment_batch(frames[::-1], boxes[::-1]),
    )
    _assert_same(
        [graphed.segment(f, b) for f, b in zip(frames, boxes, strict=True)],
        [eager.segment(f, b) for f, b in zip(frames, boxes, strict=True)],
    )
    graphs = graphed._graphs
    assert (
        graphs.fallback is None and graphs.captures == 2 == graphs.graph_count
    )  # (2, 3, S, S) and (1, 3, S, S)
    assert (
        graphed.describe()["cuda_graph"] is True
        and graphed.describe()["cuda_graph_fallback"] is None
    )


def test_cuda_graph_two_threads_on_two_streams_get_their_own_masks():
    from concurrent.futures import ThreadPoolExecutor

    eager, graphed, frames, boxes = _graph_pair("sam")
    want = [eager.segment(f, b) for f, b in zip(frames, boxes, strict=True)]
    graphed.segment(frames[0], boxes[0])  # captured here

    def worker(k: int):
        stream = torch.cuda.Stream()
        order = list(range(len(frames)))[:: 1 if k == 0 else -1] * 4
        with torch.cuda.stream(stream):
            return [(i, graphed.segment(frames[i], boxes[i])) for i in order]

    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(worker, [0, 1]))
    for pairs in results:
        for i, got in pairs:
            _assert_same([got], [want[i]])
    assert graphed._graphs.captures == 1 and graphed._graphs.fallback is None


def test_cuda_graph_a_failed_capture_warns_and_runs_eager():
    """A host sync inside the captured function (here: a read of the input) makes the capture fail for real; the
    segmenter warns once, runs eager from then on, and CUDA keeps working: the thread is back on its stream, the
    allocator no longer records into the capture's pool (empty_cache frees memory again), and a new segmenter's
    capture succeeds."""
    eager, graphed, frames, boxes = _graph_pair("sam")
    graphs = graphed._graphs
    encode = graphs._fn
    graphs._fn = lambda module, x: encode(module, x) if float(x.sum()) == float(x.sum()) else None
    stream = torch.cuda.current_stream()
    with pytest.warns(RuntimeWarning, match="CUDA-graph capture of the image encoder failed"):
        first = graphed.segment(frames[0], boxes[0])
    assert torch.cuda.current_stream() == stream  # not left on the capture stream
    assert not torch.cuda.is_current_stream_capturing()
    block = torch.empty(256 * 2**20, dtype=torch.uint8, device="cuda")
    del block
    reserved = torch.cuda.memory_reserved()
    torch.cuda.empty_cache()  # a no-op while the allocator counts a capture as underway
    assert torch.cuda.memory_reserved() < reserved
    _assert_same([first], [eager.segment(frames[0], boxes[0])])
    _assert_same(
        [graphed.segment(f, b) for f, b in zip(frames, boxes, strict=True)],
        [eager.segment(f, b) for f, b in zip(frames, boxes, strict=True)],
    )
    assert graphs.fallback is not None and graphs.graph_count == 0
    assert graphed.describe()["cuda_graph_fallback"] == graphs.fallback
    eager, graphed, frames, boxes = _graph_pair("sam")  # a fresh segmenter: its capture works
    _assert_same([graphed.segment(frames[1], boxes[1])], [eager.segment(frames[1], boxes[1])])
    assert graphed._graphs.captures == 1 and graphed._graphs.fallback is None


def test_cuda_graph_self_check_replays_a_second_input():
    """A graph that reads other memory than its static input (here: the function reads, under capture only, a copy
    of the first input) gives the eager output on that first input; the self-check's second input (mirrored, plus
    one) shows it, and the segmenter falls back to eager with its masks right."""
    eager, graphed, frames, boxes = _graph_pair("sam")
    graphs = graphed._graphs
    encode, first = graphs._fn, {}

    def baked(module, x):
        if torch.cuda.is_current_stream_capturing():
            return encode(module, first["x"])
        first.setdefault("x", x.clone())
        return encode(module, x)

    graphs._fn = baked
    with pytest.warns(RuntimeWarning, match="differs from the eager output"):
        got = graphed.segment(frames[2], boxes[2])
    _assert_same([got], [eager.segment(frames[2], boxes[2])])
    assert graphs.fallback is not None and graphs.graph_count == 0


@pytest.mark.parametrize("family", ["sam", "sam2"])
def test_cuda_graph_weights_changed_in_place_after_capture_give_the_new_weights_masks(family):
    eager, graphed, frames, boxes = _graph_pair(family)
    before = graphed.segment(frames[1], boxes[1])
    _assert_same([before], [eager.segment(frames[1], boxes[1])])
    encoder = graphed.model.image_encoder
    with torch.no_grad():  # in place: the same storage, a new version
        for module in encoder.modules():
            if isinstance(module, torch.nn.Linear):
                module.weight.mul_(1.5)
        if family == "sam":
            for block in encoder.blocks:
                block.attn.rel_pos_h.mul_(-1.0)
    after = graphed.segment(frames[1], boxes[1])
    _assert_same([after], [eager.segment(frames[1], boxes[1])])
    assert not np.array_equal(after.masks, before.masks)  # the change mattered
    assert graphed._graphs.captures == 2 and graphed._graphs.fallback is None
