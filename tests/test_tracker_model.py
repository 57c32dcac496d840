"""IDOL detector: parity with the original code (fixture ``idol_small_seed0`` and the MSDeformAttn
module fixture), toy-size behaviour and test-time preprocessing."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from model_helpers import OUTPUT_ATOL, msda_module_and_data, small_detector
from msda_helpers import record_backend_calls
from PIL import Image

from uvosam.tracker.config import DetectorConfig
from uvosam.tracker.detector import IDOLDetector
from uvosam.tracker.preprocess import pad_and_normalize, resize_frame, resized_shape


@pytest.fixture(scope="module")
def small(fixtures_dir):
    """Fixture model built from the embedded detectron2 cfg and loaded from weights.pth, plus its
    data."""
    root = fixtures_dir / "idol_small_seed0"
    model = small_detector(root)
    frames = np.load(root / "frames.npy")
    return {
        "model": model,
        "frames": frames,
        "outputs": dict(np.load(root / "outputs.npz")),
        "inter": dict(np.load(root / "intermediates_frame0.npz")),
        "detected": model.detect_frames(frames),
    }


def assert_matches_original(detected, outputs: dict) -> None:
    ours = {
        "pred_logits": detected.logits,
        "pred_boxes": detected.boxes_cxcywh_norm,
        "pred_inst_embed": detected.embeddings,
    }
    errors = {}
    for name, ref in outputs.items():
        assert ours[name].shape == ref.shape, name
        errors[name] = float(np.abs(ours[name].numpy() - ref).max())
    print("max abs error vs original:", errors)
    for name, err in errors.items():
        assert err <= OUTPUT_ATOL[name], (name, err)


def test_fixture_outputs_match_original(small):
    assert_matches_original(small["detected"], small["outputs"])


@pytest.mark.parametrize("mode", ["auto", "pytorch"])
def test_fixture_outputs_match_original_with_either_cpu_backend(small, monkeypatch, mode):
    """CPU deformable attention: the gather (default) and the grid_sample reference (UVOSAM_MSDA=pytorch)."""
    calls = record_backend_calls(monkeypatch)
    monkeypatch.setenv("UVOSAM_MSDA", mode)
    detected = small["model"].detect_frames(small["frames"][:2])
    assert set(calls) == {"ms_deform_attn_gather" if mode == "auto" else "ms_deform_attn_pytorch"}
    outputs = {name: ref[:2] for name, ref in small["outputs"].items()}
    assert_matches_original(detected, outputs)


def test_fixture_frame0_intermediates(small):
    model, inter = small["model"], small["inter"]
    with torch.inference_mode():
        images, pad_mask = pad_and_normalize([small["frames"][0]], model.cfg)
        np.testing.assert_array_equal(images[0].numpy(), inter["padded_image0"])
        np.testing.assert_array_equal(pad_mask[0].numpy(), inter["image_mask0"])
        res5, res5_mask = model.backbone(images, pad_mask)[-1]
        srcs, masks, pos = model.feature_levels(images, pad_mask)
        out = model.forward_features(images, pad_mask)
    np.testing.assert_allclose(res5[0].numpy(), inter["backbone_res5"], atol=1e-4, rtol=1e-5)
    np.testing.assert_array_equal(res5_mask[0].numpy(), inter["backbone_res5_mask"])
    for lvl in range(4):
        np.testing.assert_array_equal(masks[lvl][0].numpy(), inter[f"mask_l{lvl}"])
        np.testing.assert_allclose(pos[lvl][0].numpy(), inter[f"pos_l{lvl}"], atol=1e-5)
        np.testing.assert_allclose(srcs[lvl][0].numpy(), inter[f"src_l{lvl}"], atol=1e-4)
    np.testing.assert_allclose(out.memory[0].numpy(), inter["memory"], atol=1e-4)
    np.testing.assert_allclose(out.hs[:, 0].numpy(), inter["hs"], atol=1e-4)
    np.testing.assert_allclose(out.init_reference[0].numpy(), inter["init_reference"], atol=1e-6)
    np.testing.assert_allclose(
        out.inter_references[:, 0].numpy(), inter["inter_references"], atol=1e-5
    )


@pytest.fixture(scope="module")
def msda_module_fixture(fixtures_dir):
    return msda_module_and_data(fixtures_dir)


@pytest.mark.parametrize("kind", ["2d", "4d", "2d_nomask"])
def test_msdeformattn_module_matches_original(msda_module_fixture, kind):
    module, d = msda_module_fixture
    refs = d["reference_points_" + kind[:2]]
    mask = None if kind.endswith("nomask") else d["input_padding_mask"]
    with torch.no_grad():
        out = module(
            d["query"], refs, d["input_flatten"], d["spatial_shapes"], d["level_start_index"], mask
        )
        locations, weights = module.sampling(d["query"], refs, d["spatial_shapes"])
    torch.testing.assert_close(out, d["output_" + kind], atol=1e-5, rtol=0)
    if not kind.endswith("nomask"):
        torch.testing.assert_close(locations, d["sampling_locations_" + kind], atol=1e-6, rtol=0)
        torch.testing.assert_close(weights, d["attention_weights_" + kind], atol=1e-6, rtol=0)


@pytest.fixture(scope="module")
def tiny_model():
    torch.manual_seed(0)
    return IDOLDetector(DetectorConfig.tiny()).eval()


def test_tiny_detect_frames_shapes_and_ranges(tiny_model):
    cfg = tiny_model.cfg
    rng = np.random.default_rng(0)
    # 5 frames -> chunks of 3 + 2
    frames = rng.integers(0, 256, size=(5, 50, 70, 3), dtype=np.uint8)
    out = tiny_model.detect_frames(frames)
    assert len(out) == 5
    assert out.logits.shape == (5, cfg.num_queries, cfg.num_classes)
    assert out.boxes_cxcywh_norm.shape == (5, cfg.num_queries, 4)
    assert out.embeddings.shape == (5, cfg.num_queries, cfg.hidden_dim)
    for t in (out.logits, out.boxes_cxcywh_norm, out.embeddings):
        assert t.dtype == torch.float32 and torch.isfinite(t).all()
    assert (out.boxes_cxcywh_norm >= 0).all() and (out.boxes_cxcywh_norm <= 1).all()
    single = tiny_model.detect_frames([frames[4]])  # chunking must not change a frame's result
    torch.testing.assert_close(single.logits[0], out.logits[4], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(
        single.boxes_cxcywh_norm[0], out.boxes_cxcywh_norm[4], atol=1e-5, rtol=1e-5
    )


def test_tiny_detect_frames_empty_and_bad_input(tiny_model):
    empty = tiny_model.detect_frames([])
    assert len(empty) == 0 and empty.embeddings.shape == (0, 8, 32)
    with pytest.raises(TypeError, match="uint8"):
        tiny_model.detect_frames([np.zeros((40, 40, 3), dtype=np.float32)])
    with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
        tiny_model.detect_frames([np.zeros((40, 40), dtype=np.uint8)])


@pytest.mark.parametrize(
    ("hw", "expected"),
    [
        ((480, 854), (480, 854)),  # DAVIS 480p: identity
        ((100, 136), (480, 653)),  # 136 * 4.8 = 652.8 -> 653
        ((720, 1280), (480, 853)),  # 853.33 -> 853
        ((1280, 720), (853, 480)),  # portrait
        ((300, 451), (480, 722)),  # 721.6 -> 722 (int(x + 0.5))
        ((100, 1000), (133, 1333)),  # long side capped: 480*1333/4800 = 133.3
        ((1, 2667), (1, 1333)),  # 0.4998 px would round to 0: at least 1
        ((2700, 1), (1333, 1)),
    ],
)
def test_resized_shape(hw, expected):
    assert resized_shape(*hw, 480, 1333) == expected


def test_extreme_aspect_ratio_frames_are_detected(tiny_model):
    """A 320x1 video with the tiny config (shortest edge 64, longest 128): resized to 128x1, not 128x0."""
    frames = [np.full((1, 320, 3), 90, np.uint8), np.full((320, 1, 3), 90, np.uint8)]
    assert [resize_frame(f, 64, 128).shape for f in frames] == [(1, 128, 3), (128, 1, 3)]
    assert len(tiny_model.detect_frames(frames)) == 2


def test_square_frame_through_the_tiny_tracker():
    """``uvosam.testing``'s tracker on a 100x100 video: resized to 64x64, the extra stride-64 level is 1x1, which
    ``GroupNorm(32, hidden_dim=32)`` (one value a group) refused: "Expected more than 1 value per channel"."""
    from uvosam.testing import tiny_idol_tracker

    assert resized_shape(100, 100, 64, 128) == (64, 64)
    session = tiny_idol_tracker(batch_size=1).new_video(height=100, width=100)
    frames = session.push(np.full((100, 100, 3), 90, np.uint8)) + session.finish()
    assert [f.frame_index for f in frames] == [0]


def test_min_size_test_0_keeps_the_frame_size(tiny_model):
    """``min_size_test`` 0 (detectron2: no resize): frames go in at their own size, ``max_size_test`` not applied;
    the results are those of a config whose resize is the identity for the frame."""
    frame = np.random.default_rng(3).integers(0, 256, size=(40, 200, 3), dtype=np.uint8)
    assert resized_shape(40, 200, 0, 128) == (40, 200)
    assert resize_frame(frame, 0, 128) is frame
    unresized = IDOLDetector(dataclasses.replace(tiny_model.cfg, min_size_test=0)).eval()
    unresized.load_state_dict(tiny_model.state_dict())
    identity = IDOLDetector(
        dataclasses.replace(tiny_model.cfg, min_size_test=40, max_size_test=200)
    ).eval()
    identity.load_state_dict(tiny_model.state_dict())
    got, want = unresized.detect_frames([frame]), identity.detect_frames([frame])
    torch.testing.assert_close(got.boxes_cxcywh_norm, want.boxes_cxcywh_norm, rtol=0, atol=0)
    torch.testing.assert_close(got.logits, want.logits, rtol=0, atol=0)


def test_resize_frame_uses_pil_bilinear_and_skips_identity():
    frame = np.random.default_rng(1).integers(0, 256, size=(30, 40, 3), dtype=np.uint8)
    out = resize_frame(frame, 45, 1333)
    assert out.shape == (45, 60, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(
        out, np.asarray(Image.fromarray(frame).resize((60, 45), Image.BILINEAR))
    )
    np.testing.assert_array_equal(resize_frame(frame, 30, 1333), frame)


def test_pad_and_normalize():
    cfg = DetectorConfig.tiny()
    a = np.full((33, 40, 3), 200, dtype=np.uint8)
    b = np.zeros((20, 70, 3), dtype=np.uint8)
    images, pad_mask = pad_and_normalize([a, b], cfg)
    assert images.shape == (2, 3, 64, 96) and pad_mask.shape == (2, 64, 96)
    expected = (200 - torch.tensor(cfg.pixel_mean)) / torch.tensor(cfg.pixel_std)
    torch.testing.assert_close(images[0, :, 0, 0], expected)
    assert not pad_mask[0, :33, :40].any() and pad_mask[0, 33:].all() and pad_mask[0, :, 40:].all()
    assert (images[0, :, 33:] == 0).all() and (images[1, :, :, 70:] == 0).all()
    assert not pad_mask[1, :20, :70].any() and pad_mask[1].sum() == 64 * 96 - 20 * 70


def test_pad_and_normalize_leaves_sides_already_divisible_unpadded():
    # "rounded up to size_divisibility": a side that is already a multiple gets no padding.
    cfg = DetectorConfig.tiny()
    assert cfg.size_divisibility == 32
    frame = np.full((64, 96, 3), 7, dtype=np.uint8)
    images, pad_mask = pad_and_normalize([frame], cfg)
    assert images.shape == (1, 3, 64, 96) and pad_mask.shape == (1, 64, 96)
    assert not pad_mask.any()


def test_bf16_precision_stays_close_to_fp32_and_returns_float32():
    torch.manual_seed(0)
    cfg = DetectorConfig.tiny()
    exact = IDOLDetector(cfg).eval()
    fast = IDOLDetector(dataclasses.replace(cfg, precision="bf16")).eval()
    fast.load_state_dict(exact.state_dict())
    frames = np.random.default_rng(0).integers(0, 255, (2, 48, 64, 3), dtype=np.uint8)
    a, b = exact.detect_frames(frames), fast.detect_frames(frames)
    assert b.logits.dtype == b.boxes_cxcywh_norm.dtype == b.embeddings.dtype == torch.float32
    assert (a.boxes_cxcywh_norm - b.boxes_cxcywh_norm).abs().max() < 0.03
    assert (a.logits - b.logits).abs().max() > 0  # bf16 really ran
    with pytest.raises(ValueError, match="precision must be one of"):
        DetectorConfig(precision="fp8")


@pytest.mark.parametrize("precision, inside", [("fp32", False), ("tf32", True)])
def test_cuda_precision_sets_tf32_switches_and_restores_them(precision, inside):
    """fp32 on CUDA must turn TF32 off (cuDNN convolutions default to TF32), tf32 turns it on; both restore."""
    from uvosam.tracker.detector import compute_precision

    matmul, cudnn = torch.backends.cuda.matmul, torch.backends.cudnn
    saved = matmul.allow_tf32, cudnn.allow_tf32
    try:
        matmul.allow_tf32 = cudnn.allow_tf32 = not inside
        with compute_precision(precision, torch.device("cuda")):
            assert (matmul.allow_tf32, cudnn.allow_tf32) == (inside, inside)
        assert (matmul.allow_tf32, cudnn.allow_tf32) == (not inside, not inside)
        with compute_precision(precision, torch.device("cpu")):
            assert (matmul.allow_tf32, cudnn.allow_tf32) == (not inside, not inside)
    finally:
        matmul.allow_tf32, cudnn.allow_tf32 = saved


def test_concurrent_fp32_runs_keep_tf32_off_until_the_last_one_ends():
    """The app runs up to UVOSAM_CONCURRENCY videos at once, each detector call in its own thread. Run A ends while
    run B is inside its fp32 block: B must keep TF32 off (a per-block save/restore switched cuDNN's TF32 back on
    under B), and once B ends the switches are what they were before A started (not left off for good)."""
    import threading

    from uvosam.tracker.detector import compute_precision

    matmul, cudnn = torch.backends.cuda.matmul, torch.backends.cudnn
    saved = matmul.allow_tf32, cudnn.allow_tf32
    a_inside, b_inside, a_done, b_may_end = (threading.Event() for _ in range(4))
    seen = {}

    def run_b():
        a_inside.wait(5)
        with compute_precision("fp32", torch.device("cuda")):
            b_inside.set()
            a_done.wait(5)
            seen["b after a ended"] = matmul.allow_tf32, cudnn.allow_tf32
            b_may_end.wait(5)

    try:
        matmul.allow_tf32, cudnn.allow_tf32 = False, True  # PyTorch's defaults
        b = threading.Thread(target=run_b)
        b.start()
        with compute_precision("fp32", torch.device("cuda")):
            a_inside.set()
            assert b_inside.wait(5)
        a_done.set()
        b_may_end.set()
        b.join(5)
        assert seen["b after a ended"] == (False, False)
        assert (matmul.allow_tf32, cudnn.allow_tf32) == (False, True)
    finally:
        matmul.allow_tf32, cudnn.allow_tf32 = saved


def test_flatten_carries_the_level_shapes_as_python_ints_and_uploads_them_once(tiny_model):
    """The encoder's reference points read the levels' sizes from Python (a CUDA tensor's .tolist() waited for the
    backbone in the middle of the forward), and the (L, 2) tensor is made once per input size (each upload waited
    for all queued work too); a frame of another size gets its own."""
    transformer = tiny_model.transformer
    dim = transformer.d_model

    def levels(h: int, w: int):
        sizes = [(h, w), ((h + 1) // 2, (w + 1) // 2)]
        srcs = [torch.randn(2, dim, a, b) for a, b in sizes]
        masks = [torch.zeros(2, a, b, dtype=torch.bool) for a, b in sizes]
        return transformer.flatten(srcs, masks, [torch.randn_like(s) for s in srcs])

    # made first in inference mode (a run), then used in grad mode (training) at a size no other test uses
    with torch.inference_mode():
        first = levels(11, 13)
    again, other = levels(11, 13), levels(10, 13)
    assert first.shapes == ((11, 13), (6, 7)) and first.spatial_shapes.tolist() == [
        [11, 13],
        [6, 7],
    ]
    assert again.spatial_shapes is first.spatial_shapes
    assert other.shapes == ((10, 13), (5, 7)) and other.spatial_shapes.tolist() == [
        [10, 13],
        [5, 7],
    ]
    assert not again.spatial_shapes.is_inference()  # training can save it for backward
