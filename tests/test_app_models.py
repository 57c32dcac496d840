"""The app's models: settings from the environment, the loader (``PipelineLoader``: each model once, warm-up,
precision), the banner when they do not load at start (``python app.py`` without weights), and the page's config
copying none of them."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

pytest.importorskip("gradio")
from app_helpers import (
    ROOT,
    app_process,
    app_process_env,
    free_port,
    launched,
    needs_sam2,
    stepped,
    wait_for_config,
)
from doubles import MovingBoxTracker
from gradio_client import Client, handle_file

from uvosam.pipeline import UVOSAM
from uvosam.segmenter import BoxPromptSegmenter
from uvosam_app.settings import AppSettings


def test_settings_from_env():
    settings = AppSettings.from_env(
        {"UVOSAM_MAX_FRAMES": "50", "UVOSAM_MAX_UPLOAD_MB": "10", "UVOSAM_SAM": "vit_h"}
    )
    assert (settings.max_frames, settings.max_upload_mb, settings.default_sam) == (50, 10, "vit_h")
    assert settings.limits().max_frames == 50 and settings.max_side == AppSettings().max_side
    with pytest.raises(
        ValueError, match="UVOSAM_MAX_SECONDS must be a finite positive float; got 'soon'"
    ):
        AppSettings.from_env({"UVOSAM_MAX_SECONDS": "soon"})
    assert settings.sam_precision == "auto"
    with pytest.raises(
        ValueError,
        match=r"^UVOSAM_SAM_PRECISION \(AppSettings.sam_precision\) must be one of \('auto', 'bf16', 'fp32'\)",
    ):
        AppSettings.from_env({"UVOSAM_SAM_PRECISION": "fp16"})


def test_an_unexpected_load_failure_at_start_gives_a_banner_not_a_crash(tmp_path):
    """E.g. the Hub client's own network error (not an OSError): the app still builds and says what failed."""
    import app as app_module

    calls = []

    def broken(preset, sam):
        calls.append((preset, sam))
        raise RuntimeError("xet download failed: connection reset by peer\n(details)")

    demo = app_module.build_demo(broken, settings=AppSettings(work_root=tmp_path / "work"))
    banner = next(
        c["props"] for c in demo.config["components"] if c["props"].get("elem_id") == "banner"
    )
    assert calls and banner["visible"]
    assert "Models not loaded" in banner["value"]
    assert "failed to load at start (RuntimeError, an unexpected error)" in banner["value"]
    assert "server log has the traceback" in banner["value"]
    assert "xet" not in banner["value"]  # the details are the host's: in the log
    demo.close()


def test_python_app_py_without_weights_serves_a_banner(tmp_path):
    """Offline, no checkpoints, empty HF cache: the page is served with a banner; the log names the files."""
    port = free_port()
    env = app_process_env(tmp_path, port, tmp_path / "w")
    empty = Path(env["UVOSAM_CHECKPOINTS"])
    with app_process(env, tmp_path / "app.log") as proc:
        config = wait_for_config(f"http://127.0.0.1:{port}", proc, tmp_path / "app.log")
        banner = next(
            c["props"]["value"]
            for c in config["components"]
            if c["props"].get("elem_id") == "banner"
        )
        assert "Models not loaded" in banner and "has not installed the weights" in banner
        assert "server log names the missing files" in banner and str(empty) not in banner
        logged = (tmp_path / "app.log").read_text(errors="replace")
        assert "sam_vit_b_01ec64.pth" in logged and "YTVIS19_R50_502AP.pth" in logged
        assert str(empty) in logged and "not found" in logged
        with pytest.raises(
            Exception, match="SAM ViT-B cannot run here: its weights are not"
        ) as err:
            Client(f"http://127.0.0.1:{port}/", verbose=False).predict(
                handle_file(str(ROOT / "examples" / "synthetic_shapes.mp4")), api_name="/segment"
            )
        assert str(empty) not in str(err.value)  # the server's paths stay in its log
        assert proc.poll() is None  # still serving


def test_a_run_says_it_loads_the_models_only_while_they_are_not_loaded(
    monkeypatch, tmp_path, tiny_sam_model
):
    """The first step's status said "loading the models on their first use" on every run, also with the models
    long loaded."""
    from uvosam import hub
    from uvosam_app import handlers as app_handlers
    from uvosam_app import models as app_models

    monkeypatch.setattr(hub, "resolve", lambda name, **kw: tmp_path / f"{name}.pth")
    loader = app_models.PipelineLoader(
        device="cpu",
        load_tracker=lambda name, device: MovingBoxTracker(num_objects=1),
        load_segmenter=lambda name, device: BoxPromptSegmenter(tiny_sam_model),
    )
    app = app_handlers.App(loader, AppSettings(work_root=tmp_path))
    assert not app._models_loaded("idol-ovis-r50", "vit_b")
    loader("idol-ovis-r50", "vit_b")
    assert app._models_loaded("idol-ovis-r50", "vit_b") and not app._models_loaded(
        "idol-ovis-r50", "vit_h"
    )
    # another source of pipelines (a function) cannot tell: the first step says they may be loading
    assert not app_handlers.App(lambda preset, sam: None, AppSettings())._models_loaded(
        "idol-ovis-r50", "vit_b"
    )


def _two_sessions_at_once(choose):
    """What ``choose()`` returned in each of two threads started together (two sessions' first Run of a pair)."""
    got = []
    threads = [threading.Thread(target=lambda: got.append(choose())) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return got


def test_pipeline_loader_loads_each_model_once_and_lists_every_missing_file(monkeypatch, tmp_path):
    """Each tracker and each mask model loads once, shared by every pair that uses it (concurrent first uses
    wait for one load); at most max_loaded of each kind are kept, never evicting the first."""
    from uvosam import hub
    from uvosam_app import models as app_models

    monkeypatch.setattr(hub, "resolve", lambda name, **kw: tmp_path / f"{name}.pth")
    calls = []

    def loading(kind):
        def load(name, device):
            calls.append((kind, name, device))
            time.sleep(0.05)
            return object()

        return load

    loader = app_models.PipelineLoader(
        device="cpu", load_tracker=loading("tracker"), load_segmenter=loading("sam"), max_loaded=2
    )
    got = _two_sessions_at_once(lambda: loader("idol-ovis-r50", "vit_b"))
    assert calls == [("tracker", "idol-ovis-r50", "cpu"), ("sam", "vit_b", "cpu")]
    assert got[0].tracker is got[1].tracker and got[0].segmenter is got[1].segmenter
    pair = loader(
        "idol-coco-r50", "vit_b"
    )  # a new tracker with the loaded mask model: no copy of it
    assert calls[2:] == [("tracker", "idol-coco-r50", "cpu")] and pair.segmenter is got[0].segmenter
    loader("idol-ytvis21-r50", "vit_h")  # evicts the least recently used, never the first
    assert loader("idol-ovis-r50", "vit_b").tracker is got[0].tracker and len(calls) == 5
    assert loader("idol-coco-r50", "vit_b").tracker is not pair.tracker  # it went: loaded again
    assert loader.weight_files["sam_vit_h"] == tmp_path / "sam_vit_h.pth"

    def missing(name, **kw):
        raise FileNotFoundError(f"Weight file for {name} was not found.")

    monkeypatch.setattr(hub, "resolve", missing)
    with pytest.raises(FileNotFoundError) as err:
        loader("idol-ytvis19-r50", "vit_l")
    assert "idol-ytvis19-r50" in str(err.value) and "sam_vit_l" in str(err.value)
    assert (
        loader("idol-ovis-r50", "vit_b").tracker is got[0].tracker
    )  # loaded pairs need no file check
    loader.stop_loading("on ZeroGPU only models loaded at start run")
    assert loader("idol-ovis-r50", "vit_b").segmenter is got[0].segmenter
    with pytest.raises(
        app_models.ModelsNotLoadedError,
        match="idol-ovis-r50 \\+ SAM ViT-L is not available on this app right now: on ZeroGPU only",
    ):
        loader("idol-ovis-r50", "vit_l")


def test_a_pair_without_its_weights_or_package_tells_a_visitor_no_server_path(
    tmp_path, caplog, monkeypatch
):
    """Choosing a pair whose weights were missing showed every visitor the server's paths and the host's `hf
    download`; a damaged file, its path; SAM 2.1 without sam2, the host's pip advice. The log has the full text,
    once per pair (a second refusal logs only its one line)."""
    import gradio as gr

    from uvosam.errors import MissingPackageError, MissingWeightsError, WeightsError
    from uvosam_app import handlers as app_handlers
    from uvosam_app import models as app_models

    monkeypatch.setattr(app_models, "_logged_unavailable", set())  # what earlier tests logged
    failures = {
        "vit_l": MissingWeightsError(
            "Weight file 'sam_vit_l.pth' was not found in /srv/ckpt; hf download x"
        ),
        "vit_h": WeightsError(
            "/srv/ckpt/sam_vit_h.pth is truncated: delete it and download it again"
        ),
        "sam2.1_tiny": MissingPackageError("SAM 2.1 needs sam2: pip install sam2==1.1.0"),
    }

    def get_pipeline(preset, sam):
        raise failures[sam]

    app = app_handlers.App(get_pipeline, AppSettings(work_root=tmp_path))
    clip = str(ROOT / "examples" / "synthetic_shapes.mp4")
    weights = (
        "idol-ytvis19-r50 + SAM ViT-{} cannot run here: its weights are not installed on this server (or are "
        "damaged). Choose another model; the server log names the files."
    )
    expected = {
        "vit_l": weights.format("L"),
        "vit_h": weights.format("H"),
        "sam2.1_tiny": "idol-ytvis19-r50 + SAM 2.1 tiny cannot run here: the host has not installed SAM 2.1's "
        "package (sam2). Choose a SAM model (ViT-B, ViT-L or ViT-H).",
    }
    for sam, text in expected.items():
        for _ in range(2):
            steps = stepped(app.segment(clip, "idol-ytvis19-r50", sam, 0.0, 10, 1, 4, 0, True, True,
                                        "overlay", None, False, None))  # fmt: skip
            with caplog.at_level("INFO", logger="uvosam.app"), pytest.raises(gr.Error) as err:
                list(steps)
            assert err.value.message == text
        assert caplog.text.count(str(failures[sam])) == 1, caplog.text


def test_pipeline_loader_finds_weights_with_the_librarys_locator(monkeypatch, tmp_path):
    """The app had its own copy of uvosam.pipeline.locate_weights (resolve each file, join the missing reports)."""
    from uvosam_app import models as app_models

    asked = []

    def locate(tracker, sam):
        asked.append((tracker, sam))
        return tmp_path / "tracker.pth", tmp_path / "sam.pth"

    monkeypatch.setattr(app_models, "locate_weights", locate)
    loader = app_models.PipelineLoader(
        device="cpu", load_tracker=lambda *a: object(), load_segmenter=lambda *a: object()
    )
    loader("idol-ovis-r50", "sam2.1_tiny")
    assert asked == [("idol-ovis-r50", "sam2.1_tiny")]
    assert loader.weight_files == {
        "idol-ovis-r50": tmp_path / "tracker.pth",
        "sam2.1_tiny": tmp_path / "sam.pth",
    }


def test_sessions_choosing_one_new_pair_at_once_look_for_its_files_once(monkeypatch, tmp_path):
    """Two sessions choosing the same pair not loaded yet each looked for (and downloaded) its weight files at
    once; now one does, the other waits for it and uses what it loaded."""
    from uvosam_app import models as app_models

    looking, most, asked = [0], [0], []

    def locate(tracker, sam):
        asked.append((tracker, sam))
        looking[0] += 1
        most[0] = max(most[0], looking[0])
        time.sleep(0.1)  # a download
        looking[0] -= 1
        return tmp_path / "tracker.pth", tmp_path / "sam.pth"

    monkeypatch.setattr(app_models, "locate_weights", locate)
    loader = app_models.PipelineLoader(
        device="cpu", load_tracker=lambda *a: object(), load_segmenter=lambda *a: object()
    )
    got = _two_sessions_at_once(lambda: loader("idol-ovis-r50", "vit_b"))
    assert len(got) == 2 and got[0].tracker is got[1].tracker
    assert most[0] == 1 and asked == [("idol-ovis-r50", "vit_b")]


@pytest.mark.parametrize(
    "device, zero, warmed", [("cuda", False, True), ("cpu", False, False), ("cuda", True, False)]
)
def test_loading_warms_the_pipeline_up_on_a_gpu_only(device, zero, warmed, monkeypatch):
    """One warm-up frame when a pair gets a newly loaded model on a GPU; never on CPU (seconds per frame) or
    ZeroGPU (no GPU while loading)."""
    from uvosam_app import models as app_models

    warm_ups = []
    monkeypatch.setattr(UVOSAM, "warm_up", lambda self: warm_ups.append(self) or 0.5)
    monkeypatch.setattr(app_models, "zero_gpu", lambda: zero)
    monkeypatch.setattr(app_models.PipelineLoader, "check_weights", lambda self, preset, sam: None)
    loader = app_models.PipelineLoader(
        device=device, load_tracker=lambda *a: object(), load_segmenter=lambda *a: object()
    )
    loader("idol-ytvis19-r50", "vit_b")
    loader("idol-ytvis19-r50", "vit_b")  # nothing new
    assert len(warm_ups) == (1 if warmed else 0)


@pytest.mark.parametrize(("precision", "fast"), [("auto", None), ("bf16", True), ("fp32", False)])
def test_sam_precision_setting_reaches_the_segmenter_config(precision, fast, monkeypatch):
    from uvosam_app import models as app_models

    seen = []
    monkeypatch.setattr(app_models, "load_segmenter", lambda sam, **kw: seen.append((sam, kw)))
    settings = AppSettings.from_env({"UVOSAM_SAM_PRECISION": precision.upper()})
    app_models.load_mask_model("vit_b", "cpu", settings.sam_precision)
    assert seen[0][0] == "vit_b" and seen[0][1]["config"].fast is fast
    assert str(seen[0][1]["device"]) == "cpu"


@pytest.mark.parametrize(("value", "on"), [(None, False), ("1", True), ("0", False)])
def test_the_cuda_graph_setting_reaches_the_segmenter_config_through_the_apps_loader(
    value, on, monkeypatch
):
    import app as app_module
    from uvosam_app import models as app_models

    seen = []
    monkeypatch.setattr(app_models, "load_segmenter", lambda sam, **kw: seen.append((sam, kw)))
    settings = AppSettings.from_env({} if value is None else {"UVOSAM_CUDA_GRAPH": value})
    assert settings.cuda_graph is on
    app_module.make_loader(settings)._segmenters._load("vit_b")
    assert seen[0][0] == "vit_b" and seen[0][1]["config"].cuda_graph is on


def test_the_cuda_graph_setting_is_refused_on_zero_gpu(monkeypatch):
    from uvosam_app import settings as app_settings

    monkeypatch.setattr(app_settings, "zero_gpu", lambda: True)
    with pytest.raises(
        ValueError, match=r"^UVOSAM_CUDA_GRAPH \(AppSettings.cuda_graph\) cannot be on on ZeroGPU"
    ):
        AppSettings.from_env({"UVOSAM_CUDA_GRAPH": "1"})
    assert AppSettings.from_env({}).cuda_graph is False


@needs_sam2
def test_the_apps_loader_keeps_every_model_loaded_at_start(monkeypatch, tmp_path, tiny_sam_model):
    """The loader keeps 3 models of a kind by default; UVOSAM_PRELOAD may list more. Unloading one loaded at start
    for another would leave it unloadable on ZeroGPU (models load only at start there)."""
    import app as app_module
    from uvosam_app import models as app_models

    monkeypatch.setattr(app_models.PipelineLoader, "check_weights", lambda self, preset, sam: None)
    monkeypatch.setattr(app_module, "load_tracker", lambda preset, device: MovingBoxTracker())
    loaded = []
    monkeypatch.setattr(
        app_module, "load_mask_model",
        lambda sam, device, sam_precision, cuda_graph: loaded.append(sam) or BoxPromptSegmenter(tiny_sam_model),
    )  # fmt: skip
    env = {"UVOSAM_PRELOAD": "vit_l,vit_h,sam2.1_tiny", "UVOSAM_WORK_DIR": str(tmp_path)}
    monkeypatch.setattr(
        app_models, "mask_models", lambda: ("vit_b", "vit_l", "vit_h", "sam2.1_tiny")
    )
    settings = AppSettings.from_env(env)
    loader = app_module.make_loader(settings)
    app_module.build_demo(loader, settings=settings).close()
    loader.stop_loading("on ZeroGPU ...")
    for preset, sam in settings.start_pairs():
        loader(preset, sam)  # none was unloaded: no ModelsNotLoadedError
    assert loaded == ["vit_b", "vit_l", "vit_h", "sam2.1_tiny"]


class _CopyCountingLoader:
    """A model loader (``get_pipeline``) that counts the deep copies made of it: the app's holds every model loaded."""

    def __init__(self) -> None:
        self.copies = 0

    def __call__(self, preset: str, sam: str) -> UVOSAM:
        raise FileNotFoundError("no weights in this test")

    def __deepcopy__(self, memo: dict) -> _CopyCountingLoader:
        self.copies += 1
        return self


def test_the_page_config_copies_no_model(tmp_path):
    """Gradio deep-copies the page's config for every GET /config, and a State's delete callback is in it: a bound
    method of the App copied the App, its loader and every model it held (0.3-1.4 s a request with SAM 2.1 tiny on
    CPU, 2-4 s for 6 at once: gradio_client's Client() timed out at 5 s)."""
    loader = _CopyCountingLoader()
    with launched(loader, AppSettings(work_root=tmp_path)) as url:
        for _ in range(2):
            with urllib.request.urlopen(f"{url.rstrip('/')}/config", timeout=10) as response:
                config = json.loads(response.read())
    assert any(c.get("type") == "state" for c in config["components"])
    assert loader.copies == 0


def test_a_weights_error_met_outside_the_loading_handler_keeps_its_paths_in_the_log(caplog):
    """``to_gr_error`` passed a ``WeightsError``'s or a ``MissingWeightsError``'s message (server paths) through."""
    from uvosam.errors import (
        MissingInputError,
        MissingPackageError,
        MissingWeightsError,
        WeightsError,
    )
    from uvosam_app.errors import MODEL_UNAVAILABLE, to_gr_error

    for err in (
        WeightsError("/srv/ckpt/sam_vit_h.pth is truncated"),
        MissingWeightsError("no /srv/ckpt/sam_vit_h.pth"),
        MissingPackageError("pip install sam2 (/srv/venv)"),
    ):
        with caplog.at_level("INFO", logger="uvosam.app"):
            assert to_gr_error(err).message == MODEL_UNAVAILABLE
        assert str(err) in caplog.text
    assert "/srv" not in MODEL_UNAVAILABLE
    # a missing input as uvosam refuses it (a plain FileNotFoundError is an unexpected one: tests/test_errors_told.py)
    assert to_gr_error(MissingInputError("No video at clip.mp4")).message == "No video at clip.mp4"
