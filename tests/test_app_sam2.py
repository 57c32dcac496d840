"""SAM 2.1 as the app's mask model: offered next to SAM when the sam2 package is importable (and why not when it is
missing), a run through the served app with a SAM 2.1 choice segmenting with a tiny Sam2BoxSegmenter, and the SAM
2.1 weight file named where the app lists weights. Tiny models on CPU."""

from __future__ import annotations

import importlib.util
import sys
from collections import Counter

import pytest

pytest.importorskip("gradio")
from app_helpers import ROOT, davis_labels, launched, stepped, write_clip
from doubles import MovingBoxTracker
from gradio_client import Client, handle_file

import app as app_module
from uvosam import hub
from uvosam.config import SEGMENTER_MODEL_TYPES, SegmenterConfig
from uvosam.job_types import JobOptions
from uvosam.pipeline import UVOSAM
from uvosam.sam2_segmenter import Sam2BoxSegmenter
from uvosam.segmenter import BoxPromptSegmenter
from uvosam.testing import tiny_sam, tiny_sam2
from uvosam_app import gpu as app_gpu
from uvosam_app import handlers as app_handlers
from uvosam_app import models as app_models
from uvosam_app import text as app_text
from uvosam_app.settings import AppSettings

PRESET = "idol-ytvis19-r50"
SAM_ONLY = [("SAM ViT-B", "vit_b"), ("SAM ViT-L", "vit_l"), ("SAM ViT-H", "vit_h")]
SAM2 = [("SAM 2.1 tiny", "sam2.1_tiny"), ("SAM 2.1 small", "sam2.1_small"),
        ("SAM 2.1 base+", "sam2.1_base_plus"), ("SAM 2.1 large", "sam2.1_large")]  # fmt: skip
needs_sam2 = pytest.mark.skipif(
    importlib.util.find_spec("sam2") is None, reason="the sam2 package is not installed"
)


@pytest.fixture
def without_sam2(monkeypatch):
    """As if the sam2 package were not installed: ``importlib.util.find_spec("sam2")`` is None."""
    monkeypatch.setitem(sys.modules, "sam2", None)
    assert app_models.sam2_missing() is not None


def component(demo, elem_id: str) -> dict:
    return next(
        c["props"] for c in demo.config["components"] if c["props"].get("elem_id") == elem_id
    )


def no_pipeline(preset: str, sam: str):
    return None


@needs_sam2
def test_the_mask_model_radio_offers_sam2_1_when_the_sam2_package_is_importable(tmp_path):
    demo = app_module.build_demo(no_pipeline, settings=AppSettings(work_root=tmp_path))
    radio = component(demo, "mask-model")
    assert [
        tuple(c) for c in radio["choices"]
    ] == SAM_ONLY + SAM2  # labels shown, model types as values
    assert (radio["label"], radio["value"]) == ("Mask model", "vit_b")
    footer = component(demo, "footer")["value"]
    assert "not offered" not in radio["info"] and "not offered" not in footer
    assert "sam2 " in footer and "sam2 not installed" not in footer  # the sam2 version is shown
    demo.close()
    assert "SAM 2.1 tiny or small" in app_text.out_of_memory_text()
    assert AppSettings.from_env({"UVOSAM_SAM": "sam2.1_small"}).default_sam == "sam2.1_small"
    with pytest.raises(
        ValueError, match=r"must be one of \('vit_b', .*'sam2.1_large'\); got 'sam2.1_huge'"
    ):
        AppSettings(default_sam="sam2.1_huge")


def test_without_the_sam2_package_the_app_offers_sam_only_and_says_why(
    tmp_path, without_sam2, caplog
):
    with caplog.at_level("INFO", logger="uvosam.app"):
        demo = app_module.build_demo(no_pipeline, settings=AppSettings(work_root=tmp_path))
    radio = component(demo, "mask-model")
    assert [tuple(c) for c in radio["choices"]] == SAM_ONLY
    # a visitor is told what it means here; the host's pip advice is in the log
    assert (
        radio["info"]
        == "SAM 2.1 not offered here: the host has not installed SAM 2.1's package (sam2)."
    )
    footer = component(demo, "footer")["value"]
    assert (
        "SAM 2.1 not offered: the host has not installed" in footer and "pip install" not in footer
    )
    assert "SAM 2.1 not offered: SAM 2.1 models need the sam2 package" in caplog.text
    demo.close()
    assert "SAM 2.1" not in app_text.out_of_memory_text()  # advises only models it offers
    with pytest.raises(
        ValueError, match=r"UVOSAM_SAM.*got 'sam2.1_small' \(SAM 2.1 models need the sam2 pack"
    ):
        AppSettings.from_env({"UVOSAM_SAM": "sam2.1_small"})
    import gradio as gr

    asked = []
    app = app_handlers.App(lambda preset, sam: asked.append(sam), AppSettings(work_root=tmp_path))
    clip = str(ROOT / "examples" / "synthetic_shapes.mp4")
    steps = stepped(app.segment(clip, PRESET, "sam2.1_tiny", 0.0, 10, 1, 900, 0, True, True, "overlay", None,
                                False, None))  # fmt: skip
    with pytest.raises(gr.Error) as err:
        list(steps)  # its status line says so first ("failed: ...")
    assert err.value.message == (
        f"{PRESET} + SAM 2.1 tiny cannot run here: the host has not installed SAM 2.1's package (sam2). Choose a "
        "SAM model (ViT-B, ViT-L or ViT-H)."
    )
    assert asked == []  # no model was asked for


def test_gpu_time_is_estimated_for_every_mask_model_and_sam2_1_tiny_asks_less_than_vit_b():
    assert set(app_gpu._PER_FRAME_S) == set(SEGMENTER_MODEL_TYPES)
    clip = str(ROOT / "examples" / "synthetic_shapes.mp4")  # 48 frames

    def seconds(sam: str) -> int:
        return app_gpu.gpu_seconds("k", PRESET, sam, None, clip, "w", JobOptions())

    assert seconds("sam2.1_tiny") < seconds("vit_b") < seconds("vit_h")
    assert seconds("sam2.1_large") < seconds("vit_h")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """The app with a tiny SAM for the SAM types and a tiny SAM 2.1 for the SAM 2.1 types; ``frames`` counts the
    frames each one's image encoder saw."""
    frames = Counter()
    sam, sam2 = tiny_sam(), tiny_sam2()
    for name, model in (("sam", sam), ("sam2", sam2)):
        model.image_encoder.register_forward_hook(
            lambda module, args, out, name=name: frames.update({name: args[0].shape[0]})
        )
    tracker = MovingBoxTracker(num_objects=2)
    pipes = {
        "sam": UVOSAM(tracker, BoxPromptSegmenter(sam)),
        "sam2": UVOSAM(tracker, Sam2BoxSegmenter(sam2, SegmenterConfig(model_type="sam2.1_tiny"))),
    }
    asked = []

    def get_pipeline(preset: str, sam: str) -> UVOSAM:
        asked.append(sam)
        return pipes["sam2" if sam.startswith("sam2.1_") else "sam"]

    work = tmp_path_factory.mktemp("work")
    clip = write_clip(work.parent / "clip.mp4", 8, 96, 64)
    with launched(get_pipeline, AppSettings(work_root=work, status_interval_s=0.1)) as url:
        yield url, clip, frames, asked


@needs_sam2
def test_a_run_with_sam2_1_tiny_chosen_segments_with_sam2_1(server):
    url, clip, frames, asked = server
    client = Client(url, verbose=False)
    before = Counter(frames)
    status, _, _, _, masks_zip, table, _ = client.predict(
        handle_file(str(clip)), sam="sam2.1_tiny", stride=2, api_name="/segment"
    )
    assert status.startswith("done: 4 frames, 2 tracks"), status
    assert asked[-1] == "sam2.1_tiny"
    # SAM 2.1's encoder, once a frame; SAM's not at all
    assert frames - before == Counter({"sam2": 4})
    assert davis_labels(masks_zip, "clip") == (4, {0, 1, 2})  # both tracks have masks
    assert [row[0] for row in table["data"]] == [1, 2]
    before = Counter(frames)
    status = client.predict(handle_file(str(clip)), sam="vit_b", stride=2, api_name="/segment")[0]
    assert status.startswith("done: 4 frames") and frames - before == Counter({"sam": 4})


@needs_sam2
def test_missing_sam2_1_weights_are_named_in_the_log_and_the_footer(tmp_path, monkeypatch, caplog):
    """Offline, nothing in checkpoints/ nor in the Hugging Face cache, SAM 2.1 tiny as the default model: the banner
    says so to visitors, the log names the files for the host."""
    assert app_models.needed_weights(PRESET, "sam2.1_tiny") == (
        PRESET,
        "sam2.1_tiny",
    )  # keyed by the type
    assert app_models.needed_weights(PRESET, "vit_b") == (PRESET, "sam_vit_b")
    empty = tmp_path / "checkpoints"
    empty.mkdir()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("UVOSAM_CHECKPOINTS", str(empty))
    monkeypatch.setattr(hub.hf_constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    loaded = []
    loader = app_models.PipelineLoader(
        device="cpu",
        load_tracker=lambda *args: loaded.append(args),
        load_segmenter=lambda *args: loaded.append(args),
    )
    settings = AppSettings(work_root=tmp_path / "work", default_sam="sam2.1_tiny")
    with caplog.at_level("INFO", logger="uvosam.app"):
        demo = app_module.build_demo(loader, settings=settings)
    banner = component(demo, "banner")
    assert banner["visible"] and "Models not loaded" in banner["value"]
    assert (
        f"has not installed the weights of its models ({PRESET} + SAM 2.1 tiny)" in banner["value"]
    )
    assert "sam2.1_hiera_tiny.pt" in caplog.text and "YTVIS19_R50_502AP.pth" in caplog.text
    assert loaded == []  # nothing loaded without the files
    footer = component(demo, "footer")["value"]
    assert f"**{PRESET}** + **SAM 2.1 tiny**" in footer
    assert "sam2.1_tiny: sam2.1_hiera_tiny.pt (facebook/sam2.1-hiera-tiny)" in footer
    assert component(demo, "mask-model")["value"] == "sam2.1_tiny"
    demo.close()
