"""Sam2BoxSegmenter on a tiny random SAM 2.1: SAM2ImagePredictor parity, call counts, loading, fast path."""

from __future__ import annotations

import dataclasses
import importlib.util
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from model_helpers import check_fast_path_tolerance, mask_iou

from uvosam import hub, sam2_segmenter, segmenter, weight_table
from uvosam.config import SAM2_MODEL_TYPES, SegmenterConfig
from uvosam.errors import MissingPackageError, WeightsError
from uvosam.sam2_segmenter import SAM2_CONFIGS, Sam2BoxSegmenter, sam2_missing_message
from uvosam.segmenter import BoxPromptSegmenter, load_segmenter
from uvosam.testing import moving_shapes, tiny_sam, tiny_sam2, tiny_sam2_overrides

TINY = SegmenterConfig(model_type="sam2.1_tiny")
NO_OVERLAP = SegmenterConfig(model_type="sam2.1_tiny", overlap="none")


@pytest.fixture(scope="module")
def model():
    return tiny_sam2()


@pytest.fixture(scope="module")
def clip():
    return moving_shapes(num_frames=4, height=96, width=128, num_objects=3, seed=2)


def present(boxes: np.ndarray) -> np.ndarray:
    return boxes[~np.isnan(boxes).any(axis=1)]


# SAM2Transforms' own
@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:FutureWarning")
@pytest.mark.parametrize(
    "height, width", [(120, 170), (1100, 1300)], ids=["upscaled", "downscaled"]
)
def test_equals_sam2_image_predictor_bit_for_bit(height, width):
    """The released image predictor, on a model at the released 1024 px input (its feature sizes are fixed);
    an image larger than 1024 px is shrunk, where the resize's antialiasing matters."""
    from sam2.sam2_image_predictor import SAM2ImagePredictor

    model = tiny_sam2(image_size=1024, seed=3)
    image = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
    boxes = np.array([[10, 10, 80, 90], [50.5, 20, 150, 110.25], [0, 0, 170, 120]], np.float32)
    boxes *= np.array([width / 170, height / 120] * 2, np.float32)
    predictor = SAM2ImagePredictor(model)
    predictor.set_image(image)
    masks, iou, _ = predictor.predict(box=boxes, multimask_output=False)
    out = Sam2BoxSegmenter(model, NO_OVERLAP).segment(image, boxes)
    assert out.masks.any(axis=(1, 2)).all() and not out.masks.all(axis=(1, 2)).any()
    np.testing.assert_array_equal(out.masks, masks[:, 0] > 0)
    np.testing.assert_array_equal(out.mask_scores, iou[:, 0])
    # no repeated image
    one_mask, one_iou, _ = predictor.predict(box=boxes[1], multimask_output=False)
    single = Sam2BoxSegmenter(model, NO_OVERLAP).segment(image, boxes[1:2])
    np.testing.assert_array_equal(single.masks[0], one_mask[0] > 0)
    np.testing.assert_array_equal(single.mask_scores, one_iou)


def test_one_encoder_and_one_decoder_call_per_frame(model, clip, monkeypatch):
    calls = {"encoder": 0, "decoder": 0}

    def counted(name, inner):
        def call(*args, **kwargs):
            calls[name] += 1
            return inner(*args, **kwargs)

        return call

    monkeypatch.setattr(model, "forward_image", counted("encoder", model.forward_image))
    monkeypatch.setattr(
        model.sam_mask_decoder, "forward", counted("decoder", model.sam_mask_decoder.forward)
    )
    seg = Sam2BoxSegmenter(model, TINY)
    out = seg.segment(clip.frames[0], present(clip.boxes_xyxy[0]))
    assert calls == {"encoder": 1, "decoder": 1} and len(out) == len(present(clip.boxes_xyxy[0]))
    seg.segment(clip.frames[0], np.zeros((0, 4), np.float32))
    seg.segment(clip.frames[0], np.array([[5, 5, 5, 40], [-9, -9, -1, -1]], np.float32))
    assert calls == {"encoder": 1, "decoder": 1}  # no usable box: SAM 2 does not run


def test_degenerate_boxes_get_empty_masks_and_overlaps_are_resolved(model, clip):
    image = clip.frames[1]
    good = present(clip.boxes_xyxy[1])
    boxes = np.concatenate([good, [[0, 0, 0, 0], [200, 200, 300, 300]]]).astype(np.float32)
    raw = Sam2BoxSegmenter(model, NO_OVERLAP).segment(image, boxes)
    assert raw.masks.shape == (len(boxes), 96, 128)
    assert not raw.masks[len(good) :].any() and (raw.mask_scores[len(good) :] == 0).all()
    assert raw.masks[: len(good)].any(axis=(1, 2)).all() and raw.masks.sum(axis=0).max() > 1
    out = Sam2BoxSegmenter(model, TINY).segment(
        image, boxes, scores=np.linspace(1, 0.5, len(boxes))
    )
    assert out.masks.sum(axis=0).max() == 1  # disjoint, by the tracker's score
    np.testing.assert_array_equal(out.masks[0], raw.masks[0])
    with pytest.raises(ValueError, match="NaN"):
        Sam2BoxSegmenter(model, TINY).segment(image, np.array([[1, 2, np.nan, 4]], np.float32))


def test_segment_batch_equals_per_frame_and_decoder_chunks_change_nothing(model, clip):
    frames, boxes = list(clip.frames), [present(b) for b in clip.boxes_xyxy]
    batched = Sam2BoxSegmenter(
        model, SegmenterConfig(model_type="sam2.1_tiny", encoder_batch=3, decoder_batch=1)
    )
    single = Sam2BoxSegmenter(model, TINY)
    for got, frame, b in zip(batched.segment_batch(frames, boxes), frames, boxes, strict=True):
        want = single.segment(frame, b)
        np.testing.assert_array_equal(got.masks, want.masks)
        np.testing.assert_allclose(got.mask_scores, want.mask_scores, atol=1e-5)


def test_fast_path_bf16_masks_match_fp32_within_the_documented_tolerance_and_leave_the_model_alone(
    model,
):
    state = {k: v.clone() for k, v in model.state_dict().items()}
    slow = Sam2BoxSegmenter(model, dataclasses.replace(TINY, fast=False))
    fast = Sam2BoxSegmenter(model, dataclasses.replace(TINY, fast=True))
    assert (slow.fast, fast.fast) == (False, True)
    check_fast_path_tolerance(slow, fast)
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())
    assert Sam2BoxSegmenter(model, TINY).fast is False  # a CPU without native bf16 (conftest)


def test_fast_is_on_by_default_on_a_cpu_with_native_bf16(model, monkeypatch):
    from uvosam import box_segmenter

    monkeypatch.setattr(box_segmenter, "cpu_has_bf16", lambda: True)
    assert Sam2BoxSegmenter(model, TINY).fast is True
    assert Sam2BoxSegmenter(model, dataclasses.replace(TINY, fast=False)).fast is False


def test_bf16_weights_run_and_stay_close(clip):
    model = tiny_sam2()
    image, boxes = clip.frames[2], present(clip.boxes_xyxy[2])
    ref = Sam2BoxSegmenter(model, NO_OVERLAP).segment(image, boxes)
    seg = Sam2BoxSegmenter(model, NO_OVERLAP, dtype=torch.bfloat16)
    assert seg.encoder_dtype == torch.bfloat16 and seg.decoder_dtype == torch.float32
    out = seg.segment(image, boxes)
    assert (mask_iou(ref.masks, out.masks) >= 0.9).all()


@pytest.fixture
def tiny_weights(tmp_path, monkeypatch):
    """checkpoints/sam2.1_hiera_tiny.pt = {"model": tiny_sam2(seed=0)}; the builder makes tiny_sam2(seed=5)."""
    path = tmp_path / weight_table.WEIGHTS["sam2.1_tiny"].basename
    torch.save({"model": tiny_sam2().state_dict()}, path)
    build = sam2_segmenter.build_sam2_model

    def tiny_build(model_type: str, overrides=()):
        if overrides:  # tiny_sam2() itself
            return build(model_type, overrides)
        torch.manual_seed(5)
        return build(model_type, tiny_sam2_overrides())

    monkeypatch.setattr(sam2_segmenter, "build_sam2_model", tiny_build)
    return path


def test_from_pretrained_and_load_segmenter(tiny_weights, clip):
    seg = load_segmenter("sam2.1_tiny", device="cpu", checkpoints_dir=tiny_weights.parent)
    assert isinstance(seg, Sam2BoxSegmenter) and seg.config.model_type == "sam2.1_tiny"
    reference = tiny_sam2()
    assert all(torch.equal(v, reference.state_dict()[k]) for k, v in seg.model.state_dict().items())
    image, boxes = clip.frames[0], present(clip.boxes_xyxy[0])
    want = Sam2BoxSegmenter(reference, TINY).segment(image, boxes).masks
    np.testing.assert_array_equal(seg.segment(image, boxes).masks, want)
    by_path = load_segmenter(tiny_weights, device="cpu")  # the released basename says SAM 2.1 tiny
    assert isinstance(by_path, Sam2BoxSegmenter) and by_path.config.model_type == "sam2.1_tiny"
    renamed = tiny_weights.with_name("mine.pt")
    renamed.write_bytes(tiny_weights.read_bytes())
    # any name, with the size in the config
    custom = load_segmenter(renamed, device="cpu", config=TINY)
    assert isinstance(custom, Sam2BoxSegmenter)


def test_a_checkpoint_that_does_not_fit_is_a_clear_error(tiny_weights, tmp_path):
    other = tmp_path / "other.pt"
    state = tiny_sam2().state_dict()
    state.pop("no_mem_embed")
    torch.save({"model": state}, other)
    with pytest.raises(
        WeightsError, match="does not fit SAM 2.1 sam2.1_tiny: 1 missing key .no_mem_embed."
    ):
        Sam2BoxSegmenter.from_pretrained(other, device="cpu", config=TINY)
    with pytest.raises(ValueError, match="cannot tell which SAM 2.1 model"):
        Sam2BoxSegmenter.from_pretrained(
            other, device="cpu", config=SegmenterConfig(model_type="vit_h")
        )


def test_sam_loader_refuses_a_sam2_checkpoint_and_names_the_fix(tiny_weights, monkeypatch):
    renamed = tiny_weights.with_name("mine.pt")
    renamed.write_bytes(tiny_weights.read_bytes())
    monkeypatch.setattr(
        segmenter, "sam_model_registry", {"vit_h": lambda checkpoint=None: tiny_sam()}
    )
    with pytest.raises(WeightsError, match="is a SAM 2 checkpoint"):
        load_segmenter(renamed, device="cpu")  # default config (vit_h): SAM's loader
    with pytest.raises(WeightsError, match="is a SAM 2 checkpoint"):
        BoxPromptSegmenter.from_pretrained(renamed, device="cpu")


def hiera_state(width: int, blocks: int, *, sam2_1: bool = True) -> dict:
    """The keys that tell a SAM 2 checkpoint's Hiera size and release apart, at a real size, without a model."""
    state = {"image_encoder.trunk.patch_embed.proj.weight": torch.zeros(width, 3, 7, 7)}
    state.update(
        {f"image_encoder.trunk.blocks.{i}.norm1.weight": torch.zeros(1) for i in range(blocks)}
    )
    if sam2_1:
        state.update(
            {
                "no_obj_embed_spatial": torch.zeros(1, 64),
                "obj_ptr_tpos_proj.weight": torch.zeros(1, 1),
            }
        )
    return {"model": state}


def test_a_sam_checkpoint_loaded_as_sam2_1_is_called_a_sam_checkpoint(tiny_weights, tmp_path):
    mine = tmp_path / "mine.pth"
    torch.save(tiny_sam().state_dict(), mine)
    with pytest.raises(
        WeightsError, match=r"is a SAM checkpoint \(ViT image encoder\), not a SAM 2.1 one"
    ) as err:
        # e.g. --sam mine.pth --sam-type sam2.1_tiny
        load_segmenter(mine, device="cpu", config=TINY)
    assert "vit_b, vit_l or vit_h" in str(err.value) and "--sam-type" in str(err.value)


def test_a_sam2_0_checkpoint_is_named_and_the_sam2_1_file_suggested(
    tiny_weights, tmp_path, monkeypatch
):
    state = tiny_sam2().state_dict()
    for key in [
        k for k in state if k == "no_obj_embed_spatial" or k.startswith("obj_ptr_tpos_proj.")
    ]:
        del state[key]
    old = tmp_path / "sam2_hiera_tiny.pt"  # the first release's file name
    torch.save({"model": state}, old)
    monkeypatch.setattr(
        segmenter, "sam_model_registry", {"vit_h": lambda checkpoint=None: tiny_sam()}
    )
    for config in (TINY, None):  # as SAM 2.1, and by name alone (then SAM's loader opens it)
        with pytest.raises(
            WeightsError, match=r"SAM 2 checkpoint of the first release \(2\.0\)"
        ) as err:
            load_segmenter(old, device="cpu", config=config)
        assert "sam2.1_hiera_" in str(err.value) and "facebook/sam2.1-hiera-" in str(err.value)
    torch.save(hiera_state(144, 48, sam2_1=False), old)
    with pytest.raises(
        WeightsError, match="hf download facebook/sam2.1-hiera-large sam2.1_hiera_large.pt"
    ) as err:
        # its size is known: the matching SAM 2.1 file is named
        load_segmenter(old, device="cpu", config=TINY)
    # a huggingface_hub before 0.34 has no `hf` command
    assert "huggingface-cli download facebook/sam2.1-hiera-large sam2.1_hiera_large.pt" in str(
        err.value
    )


def test_a_sam2_1_checkpoint_of_another_size_names_the_size_it_holds(
    tiny_weights, tmp_path, monkeypatch
):
    mine = tmp_path / "mine.pt"
    torch.save(hiera_state(144, 48), mine)  # Hiera-L's width and depth
    with pytest.raises(WeightsError, match="holds SAM 2.1 sam2.1_large .*, not sam2.1_tiny") as err:
        load_segmenter(mine, device="cpu", config=TINY)
    assert "--sam-type sam2.1_large" in str(err.value)
    monkeypatch.setattr(
        segmenter, "sam_model_registry", {"vit_h": lambda checkpoint=None: tiny_sam()}
    )
    with pytest.raises(WeightsError, match="is a SAM 2 checkpoint") as err:
        BoxPromptSegmenter.from_pretrained(
            mine, device="cpu"
        )  # SAM's loader: it names the size too
    assert "model_type='sam2.1_large'" in str(err.value) and "--sam-type sam2.1_large" in str(
        err.value
    )
    assert segmenter.sam2_file_size(mine) == "sam2.1_large"  # load_segmenter loads it as that


def test_a_renamed_sam2_1_file_of_a_released_size_loads_as_that_size(
    tiny_weights, monkeypatch, caplog
):
    """A SAM 2.1 file under another name than the released one was refused without --sam-type, although its size
    can be told: now it loads as that size (logged); a config that says another size is still refused."""
    toy = tiny_sam2().state_dict()
    width = toy["image_encoder.trunk.patch_embed.proj.weight"].shape[0]
    monkeypatch.setitem(
        sam2_segmenter._HIERA_SIZES, (width, 5), "sam2.1_tiny"
    )  # the toy as a released size
    renamed = tiny_weights.with_name("mine.pt")
    renamed.write_bytes(tiny_weights.read_bytes())
    with caplog.at_level("INFO", logger="uvosam.segmenter"):
        seg = load_segmenter(renamed, device="cpu")  # the default config is SAM vit_h
    assert isinstance(seg, Sam2BoxSegmenter) and seg.config.model_type == "sam2.1_tiny"
    assert all(torch.equal(v, toy[k]) for k, v in seg.model.state_dict().items())
    assert (
        f"{renamed} holds SAM 2.1 sam2.1_tiny (by its Hiera trunk's width and depth)" in caplog.text
    )
    small = SegmenterConfig(model_type="sam2.1_small")
    with pytest.raises(WeightsError, match="holds SAM 2.1 sam2.1_tiny .*, not sam2.1_small"):
        load_segmenter(renamed, device="cpu", config=small)


def test_the_hiera_size_table_matches_the_sam2_package_configs():
    import inspect

    from sam2.modeling.backbones.hieradet import Hiera

    default_stages = inspect.signature(Hiera).parameters["stages"].default
    for model_type in SAM2_MODEL_TYPES:
        trunk = sam2_segmenter.sam2_config(model_type).model.image_encoder.trunk
        stages = trunk.get("stages", default_stages)
        state = hiera_state(trunk.get("embed_dim", 96), sum(stages))["model"]
        assert sam2_segmenter.sam2_size_of(state) == model_type
    # toy sizes are no released size
    assert sam2_segmenter.sam2_size_of(tiny_sam2().state_dict()) is None


def test_each_loader_refuses_the_other_familys_model_names_before_any_download(monkeypatch):
    monkeypatch.setattr(hub, "resolve", lambda *a, **k: pytest.fail("looked for weights"))
    for name in ("sam2.1_small", "sam2.1_tiny"):
        with pytest.raises(ValueError, match=f"{name} is a SAM 2.1 model.*load_segmenter"):
            BoxPromptSegmenter.from_pretrained(name, device="cpu")
    for name in ("vit_b", "sam_vit_h"):
        with pytest.raises(ValueError, match=f"{name} is a SAM model, not SAM 2.1.*load_segmenter"):
            Sam2BoxSegmenter.from_pretrained(name, device="cpu")


def test_missing_sam2_package_is_named_before_any_download(monkeypatch, tmp_path):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "sam2" else real(name, *a)
    )
    # the pinned release, never any upload
    assert "'pip install sam2==1.1.0'" in sam2_missing_message()
    monkeypatch.setattr(hub, "resolve", lambda *a, **k: pytest.fail("looked for weights"))
    with pytest.raises(ImportError, match="pip install sam2==1.1.0"):
        load_segmenter("sam2.1_small", device="cpu", checkpoints_dir=tmp_path)
    monkeypatch.undo()
    assert sam2_missing_message() is None


def test_the_install_advice_names_the_release_the_project_pins():
    """PyPI's sam2 is a third party's upload: the advice must be the pinned 1.1.0 of pyproject and requirements."""
    root = Path(__file__).resolve().parents[1]
    pins = re.findall(r'"(sam2==[^"]+)"', (root / "pyproject.toml").read_text())
    pins += [line.strip() for line in (root / "requirements.txt").read_text().splitlines()
             if line.startswith("sam2")]  # fmt: skip
    assert pins and set(pins) == {sam2_segmenter.SAM2_REQUIREMENT}
    assert sam2_segmenter.SAM2_INSTALL == f"pip install {sam2_segmenter.SAM2_REQUIREMENT}"
    docs = [root / "README.md", *sorted((root / "docs").glob("*.md"))]
    assert len(docs) > 1  # the README and its reference pages
    for path in docs:
        text = path.read_text()
        assert "pip install sam2`" not in text and "pip install sam2)" not in text, path


def test_every_released_size_has_a_config_and_weights_entry():
    assert set(SAM2_CONFIGS) == set(SAM2_MODEL_TYPES)
    for model_type in SAM2_CONFIGS:
        cfg = sam2_segmenter.sam2_config(model_type)
        assert cfg.model.image_size == 1024 and cfg.model.image_encoder.trunk._target_.endswith(
            "Hiera"
        )
        spec = weight_table.WEIGHTS[model_type]
        assert spec.basename.startswith("sam2.1_hiera_") and spec.repo_id.startswith(
            "facebook/sam2.1-hiera-"
        )
    with pytest.raises(ValueError, match="unknown SAM 2 model type"):
        sam2_segmenter.build_sam2_model("sam2_tiny")


def test_the_real_tiny_architecture_builds_at_its_released_size():
    model = sam2_segmenter.build_sam2_model("sam2.1_tiny")
    params = sum(p.numel() for p in model.parameters())
    assert 38e6 < params < 40e6, params  # SAM 2.1 Hiera-T: 38.9 M
    # build_sam2's image-predictor setting
    assert model.sam_mask_decoder.dynamic_multimask_via_stability
    assert model.image_size == 1024 and model.directly_add_no_mem_embed


def test_two_threads_share_one_segmenter(model, clip):
    from concurrent.futures import ThreadPoolExecutor

    seg = Sam2BoxSegmenter(model, TINY)
    jobs = [(clip.frames[t], present(clip.boxes_xyxy[t])) for t in (0, 3)] * 3
    want = [seg.segment(image, boxes).masks for image, boxes in jobs]
    with ThreadPoolExecutor(2) as pool:
        got = list(pool.map(lambda job: seg.segment(*job).masks, jobs))
    for g, w in zip(got, want, strict=True):
        np.testing.assert_array_equal(g, w)


def test_tiny_idol_tracker_with_sam2_end_to_end(model):
    from uvosam.pipeline import UVOSAM
    from uvosam.testing import tiny_idol_tracker

    video = moving_shapes(8, height=48, width=64, seed=2)
    pipe = UVOSAM(tiny_idol_tracker(), Sam2BoxSegmenter(model, TINY))
    results = list(pipe(video.frames))
    assert [r.frame_index for r in results] == list(range(8))
    assert any(len(r.track_ids) for r in results)
    for r in results:
        assert r.masks.shape == (len(r.track_ids), 48, 64) and r.masks.dtype == bool
        if len(r.track_ids):
            assert r.masks.any()


def test_a_broken_sam2_install_is_a_clear_error(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "hydra", None)  # installed sam2, its hydra import fails
    monkeypatch.setattr(sam2_segmenter, "sam2_missing_message", lambda: None)
    with pytest.raises(
        MissingPackageError,
        match="installed but cannot be imported .*pip install --force-reinstall sam2==1.1.0 ",
    ):
        sam2_segmenter.sam2_config("sam2.1_tiny")


def test_pipeline_takes_the_mask_model_from_the_segmenter_config(monkeypatch, weights_found):
    from uvosam import pipeline
    from uvosam.tracker import loading

    loaded = []
    # stand-ins that are no strings: UVOSAM refuses a name given for a model
    monkeypatch.setattr(loading, "load_tracker", lambda *a, **k: object())
    monkeypatch.setattr(
        segmenter, "load_segmenter", lambda sam, **k: loaded.append(sam) or object()
    )
    pipeline.UVOSAM.from_pretrained(device="cpu", segmenter_config=TINY)
    pipeline.UVOSAM.from_pretrained(device="cpu")
    pipeline.UVOSAM.from_pretrained(sam="vit_b", device="cpu", segmenter_config=TINY)
    assert loaded == ["sam2.1_tiny", "vit_h", "vit_b"]


def test_from_pretrained_keeps_the_fast_encoders_matmul_weights_in_bf16_with_bit_identical_output(
    tiny_weights, clip
):
    fast = dataclasses.replace(NO_OVERLAP, fast=True)
    seg = Sam2BoxSegmenter.from_pretrained(
        "sam2.1_tiny", device="cpu", config=fast, checkpoints_dir=tiny_weights.parent
    )
    owned = [seg.model.image_encoder, seg.model.sam_mask_decoder.conv_s0,
             seg.model.sam_mask_decoder.conv_s1]  # fmt: skip
    matmuls = [
        m for o in owned for m in o.modules() if isinstance(m, torch.nn.Linear | torch.nn.Conv2d)
    ]
    assert matmuls and all(
        p.dtype == torch.bfloat16 for m in matmuls for p in m.parameters(recurse=False)
    )
    trunk = seg.model.image_encoder.trunk
    assert (
        trunk.pos_embed.dtype == torch.float32
        and trunk.blocks[0].norm1.weight.dtype == torch.float32
    )
    # the rest of the mask decoder runs outside autocast: it stays float32
    assert seg.model.sam_mask_decoder.iou_token.weight.dtype == torch.float32
    assert seg.describe()["encoder_dtype"] == "bfloat16 (matmul weights; the rest float32)"
    reference = tiny_sam2()  # float32, as the file holds it; the constructor leaves it so
    with_reference = Sam2BoxSegmenter(reference, fast)
    assert with_reference.describe()["encoder_dtype"] == "float32"
    for t in range(3):
        image, boxes = clip.frames[t], present(clip.boxes_xyxy[t])
        with torch.inference_mode():
            got, want = seg._encode([image], [None])[0], with_reference._encode([image], [None])[0]
        assert torch.equal(got[0], want[0])
        assert all(torch.equal(a, b) for a, b in zip(got[1], want[1], strict=True))
        ours, theirs = seg.segment(image, boxes), with_reference.segment(image, boxes)
        np.testing.assert_array_equal(ours.masks, theirs.masks)
        np.testing.assert_array_equal(ours.mask_scores, theirs.mask_scores)
    assert all(p.dtype == torch.float32 for p in reference.parameters())
