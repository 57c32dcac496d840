"""The app on ZeroGPU (``spaces`` faked): the GPU function's duration, models loaded at start only, errors and
refusals from inside the GPU function, and the frames a run's GPU time allows."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

pytest.importorskip("gradio")
from app_helpers import ROOT, finished_run, needs_sam2, stepped, write_clip
from doubles import MovingBoxTracker

from uvosam.pipeline import UVOSAM
from uvosam.segmenter import BoxPromptSegmenter
from uvosam_app.settings import AppSettings


def test_zerogpu_path_wraps_the_gpu_job_with_a_duration_that_scales_with_frames(monkeypatch, clips):
    """With `spaces` importable (faked: not installed in CI) jobs run under spaces.GPU(duration)."""
    import importlib.util
    import types

    wrapped = {}
    fake = types.ModuleType("spaces")
    fake.GPU = lambda duration: lambda fn: wrapped.setdefault(fn.__name__, (fn, duration)) and fn
    monkeypatch.setitem(sys.modules, "spaces", fake)
    monkeypatch.setenv("SPACES_ZERO_GPU", "true")
    spec = importlib.util.spec_from_file_location(
        "app_gpu_on_zerogpu", ROOT / "uvosam_app" / "gpu.py"
    )
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)
    spec.loader.exec_module(module)
    assert wrapped["gpu_job"][1] is module.gpu_seconds
    assert module.zero_gpu() and module.default_device() == "cuda"
    from uvosam.job_types import JobOptions

    seconds = [
        module.gpu_seconds("k", "p", "vit_b", None, str(clips[n]), "w", JobOptions())
        for n in ("a", "b")
    ]
    assert seconds[0] < seconds[1]  # 16 vs 24 frames
    assert module.gpu_seconds("k", "p", "vit_b", None, str(clips["text"]), "w", JobOptions()) == 60


@needs_sam2
def test_on_zerogpu_models_load_at_start_once_each_and_only_they_are_offered(
    monkeypatch, tmp_path, tiny_sam_model
):
    """ZeroGPU's CUDA emulation works in the main thread only: a model loaded later, in a run's thread, failed.
    So there the app loads the defaults and UVOSAM_PRELOAD at start (each model once, shared by the pairs),
    offers only those, and loads nothing more."""
    import gradio as gr

    import app as app_module
    from uvosam_app import handlers as app_handlers
    from uvosam_app import models as app_models
    from uvosam_app import settings as app_settings

    monkeypatch.setattr(app_models.PipelineLoader, "check_weights", lambda self, preset, sam: None)
    loaded = []
    loader = app_models.PipelineLoader(
        device="cpu",
        load_tracker=lambda preset, device: (
            loaded.append(preset) or MovingBoxTracker(num_objects=2)
        ),
        load_segmenter=lambda sam, device: loaded.append(sam) or BoxPromptSegmenter(tiny_sam_model),
    )
    env = {"UVOSAM_PRELOAD": "vit_h, idol-ovis-r50", "UVOSAM_WORK_DIR": str(tmp_path / "work")}
    monkeypatch.setattr(app_settings, "zero_gpu", lambda: True)
    settings = AppSettings.from_env(env)
    assert settings.start_models_only
    demo = app_module.build_demo(loader, settings=settings)
    assert loaded == ["idol-ytvis19-r50", "vit_b", "vit_h", "idol-ovis-r50"]
    props = {c["props"].get("label"): c["props"] for c in demo.config["components"]}
    assert [v for _, v in props["Tracker preset"]["choices"]] == [
        "idol-ytvis19-r50",
        "idol-ovis-r50",
    ]
    assert [v for _, v in props["Mask model"]["choices"]] == ["vit_b", "vit_h"]
    assert "loaded at start" in props["Mask model"]["info"]
    loader.stop_loading("on ZeroGPU ...")  # as app.main does there
    app = app_handlers.App(loader, settings)
    clip = write_clip(tmp_path / "clip.mp4", 6, 64, 48)
    with pytest.raises(
        gr.Error,
        match=r"takes one of vit_b, vit_h \(on ZeroGPU: those loaded at start\); got 'vit_l'",
    ):
        list(stepped(app.segment(str(clip), "idol-ytvis19-r50", "vit_l", 0.0, 10, 1, 900, 0, True, True,
                                 "overlay")))  # fmt: skip
    *_, last = stepped(app.segment(str(clip), "idol-ovis-r50", "vit_h", 0.0, 10, 1, 900, 0, True, True,
                                   "overlay"))  # fmt: skip
    assert last[0].startswith("done: 6 frames") and len(loaded) == 4
    demo.close()


def zero_gpu_worker(task, seen: list[BaseException] | None = None):
    """What ``spaces.GPU`` (0.51.3) does with a generator on a ZeroGPU Space: the task runs in a
    worker process and an exception comes back as itself only if it is a ``gr.Error``; any other
    one comes back as ``gr.Error(<its class name>)`` (spaces/zero/wrappers.py). ``seen`` gets each
    exception that came out of the task."""
    import gradio as gr

    def handler(*args, **kwargs):
        try:
            yield from task(*args, **kwargs)
        except gr.Error as err:
            (seen if seen is not None else []).append(err)
            raise
        except Exception as err:  # noqa: BLE001 - what spaces does: any error becomes a gr.Error
            (seen if seen is not None else []).append(err)
            raise gr.Error(type(err).__name__) from None

    return handler


def segment_directly(get_pipeline, work: Path, video: Path, preset: str = "idol-ytvis19-r50"):
    """``App.segment`` without a server (no session); returns its updates."""
    from uvosam_app import handlers as app_handlers

    app = app_handlers.App(get_pipeline, AppSettings(work_root=work, status_interval_s=0.1))
    steps = stepped(app.segment(str(video), preset, "vit_b", 0.0, 10, 1, 900, 0, True, True, "overlay", None, False,
                                None))  # fmt: skip
    return list(steps)


def truncated_after_probing(monkeypatch, folder: Path) -> Path:
    """A 40-frame clip in ``folder`` that is cut to a third once the job has probed it (decoding then fails
    inside the GPU function)."""
    import os

    import uvosam.job

    video, real = write_clip(folder / "clip.mp4", 40, 96, 64), uvosam.job.iter_probed

    def probe_then_truncate(info, **kw):
        os.truncate(info.path, os.path.getsize(info.path) // 3)
        return real(info, **kw)

    monkeypatch.setattr(uvosam.job, "iter_probed", probe_then_truncate)
    return video


@pytest.mark.parametrize(
    "clip, tracker, message",
    [
        ("truncated", MovingBoxTracker(), r"decoding clip\.mp4 stopped at frame \d+ .* of 40"),
        ("a", MovingBoxTracker(fail_at=2, error=lambda: __import__("torch").OutOfMemoryError(
            "CUDA out of memory")), "Out of memory.*smaller SAM"),
    ],
)  # fmt: skip
def test_on_zerogpu_errors_inside_the_gpu_function_keep_their_message(
    monkeypatch, tmp_path, clips, tiny_sam_model, clip, tracker, message
):
    """The app's gr.Error, made inside the GPU function, comes through ZeroGPU's worker as itself (any other
    error would reach the user as its bare class name)."""
    import gradio as gr

    from uvosam_app import gpu as app_gpu

    seen = []
    monkeypatch.setattr(app_gpu, "gpu_job", zero_gpu_worker(app_gpu.gpu_job, seen))
    (tmp_path / "in").mkdir()
    video = clips.get(clip) or truncated_after_probing(monkeypatch, tmp_path / "in")
    pipe = UVOSAM(tracker, BoxPromptSegmenter(tiny_sam_model))
    with pytest.raises(gr.Error, match=message):
        segment_directly(lambda preset, sam: pipe, tmp_path / "work", video)
    assert [type(err) for err in seen] == [gr.Error]
    assert re.search(message, seen[0].message)


def zerogpu_refuses(monkeypatch) -> str:
    """``app_gpu.gpu_job`` refusing as ZeroGPU does (its own gr.Error, with a title); the message."""
    import gradio as gr

    from uvosam_app import gpu as app_gpu

    quota = "You have exceeded your free ZeroGPU quota (80s requested vs. 12s left). Try again"

    def refused(*args, **kwargs):
        raise gr.Error(quota, title="ZeroGPU quota exceeded", print_exception=False)
        yield

    monkeypatch.setattr(app_gpu, "gpu_job", refused)
    return quota


def test_zerogpu_refusals_reach_the_user_unchanged(monkeypatch, tmp_path, clips, tiny_sam_model):
    """ZeroGPU refuses a run with a gr.Error of its own (quota, duration, aborted task)."""
    import gradio as gr

    quota = zerogpu_refuses(monkeypatch)
    pipe = UVOSAM(MovingBoxTracker(), BoxPromptSegmenter(tiny_sam_model))
    with pytest.raises(gr.Error) as err:
        segment_directly(lambda preset, sam: pipe, tmp_path, clips["a"])
    assert (err.value.title, err.value.message) == ("ZeroGPU quota exceeded", quota)


def test_on_zerogpu_a_refusal_of_a_zip_of_frames_run_keeps_its_title(
    monkeypatch, tmp_path, tiny_sam_model
):
    import gradio as gr

    from uvosam_app import handlers as app_handlers

    quota = zerogpu_refuses(monkeypatch)
    pipe = UVOSAM(MovingBoxTracker(), BoxPromptSegmenter(tiny_sam_model))
    app = app_handlers.App(
        lambda preset, sam: pipe, AppSettings(work_root=tmp_path, status_interval_s=0.1)
    )
    with pytest.raises(gr.Error) as err:
        finished_run(app, None, tmp_path)
    assert (err.value.title, err.value.message) == ("ZeroGPU quota exceeded", quota)


def test_on_zerogpu_the_description_says_how_much_gpu_time_run_asks_for(monkeypatch, tmp_path):
    """A ZeroGPU run counts against the user's daily quota: they learn what a run asks before pressing Run, as
    the GPU function's duration computes it (here 20 s + 48 frames x 0.2 s for SAM ViT-B)."""
    from uvosam_app import gpu as app_gpu
    from uvosam_app import handlers as app_handlers

    app = app_handlers.App(lambda preset, sam: None, AppSettings(work_root=tmp_path))
    example = str(ROOT / "examples" / "synthetic_shapes.mp4")  # 48 frames
    assert "ZeroGPU" not in app.describe(example, "idol-ytvis19-r50", "vit_b", 1, 900)
    monkeypatch.setattr(app_gpu, "zero_gpu", lambda: True)
    text = app.describe(example, "idol-ytvis19-r50", "vit_b", 1, 900)
    assert "On ZeroGPU, Run asks for 29 s of GPU time, counted against your daily quota" in text
    assert "Run asks for 24 s" in app.describe(example, "idol-ytvis19-r50", "vit_b", 2, 900)


def test_on_zerogpu_a_run_covers_only_the_frames_its_gpu_time_allows(
    monkeypatch, tmp_path, clips, tiny_sam_model
):
    """On ZeroGPU a run is one GPU call that asks for at most 600 s: a host that raised UVOSAM_MAX_FRAMES let a run
    ask for more (SAM ViT-H: 20 s + 0.5 s a frame, over 600 s from 1161 frames), and ZeroGPU cut it off mid-run.
    Now a run covers at most the frames that fit (ViT-H: 1160), and the description and the status line say so.
    Here a mask model's frame costs 100 s: 5 frames fit."""
    from uvosam_app import gpu as app_gpu
    from uvosam_app import handlers as app_handlers

    monkeypatch.setattr(app_gpu, "zero_gpu", lambda: True)
    for sam, per_frame in app_gpu._PER_FRAME_S.items():
        fit = app_gpu.zero_gpu_max_frames(sam)
        assert 20 + fit * per_frame <= 600 < 20 + (fit + 1) * per_frame, sam
    assert app_gpu.zero_gpu_max_frames("vit_h") == 1160
    monkeypatch.setitem(app_gpu._PER_FRAME_S, "vit_b", 100.0)
    pipe = UVOSAM(MovingBoxTracker(num_objects=2), BoxPromptSegmenter(tiny_sam_model))
    app = app_handlers.App(
        lambda preset, sam: pipe, AppSettings(work_root=tmp_path, status_interval_s=0.1)
    )
    cap = (
        "on ZeroGPU a run covers at most 5 frames with SAM ViT-B (600 s of GPU time at most): a larger Frame stride "
        "spreads them over more of the video"
    )
    text = app.describe(str(clips["a"]), "idol-ytvis19-r50", "vit_b", 1, 900)  # 16 frames
    assert f"Run covers the first 5 frames (every frame; {cap})." in text
    assert "On ZeroGPU, Run asks for 520 s of GPU time" in text
    assert "Run covers the first 4 frames (every frame; Max frames is 4)." in app.describe(
        str(clips["a"]), "idol-ytvis19-r50", "vit_b", 1, 4
    )
    *_, last = stepped(app.segment(str(clips["a"]), "idol-ytvis19-r50", "vit_b", 0.0, 10, 1, 900, 0, True, True,
                                   "overlay", None, False, None))  # fmt: skip
    assert last[0].startswith("done: 5 frames, ") and last[0].endswith(f" · {cap}"), last[0]
    *_, last = stepped(app.segment(str(clips["a"]), "idol-ytvis19-r50", "vit_b", 0.0, 10, 4, 900, 0, True, True,
                                   "overlay", None, False, None))  # fmt: skip
    assert last[0].startswith("done: 4 frames, ") and "ZeroGPU" not in last[0], last[
        0
    ]  # all it asked for


def _spaces_config(get_config):
    """A stand-in for the `spaces` package as far as ``duration_factor`` reads it (``spaces.zero.config``)."""
    import types

    config = types.SimpleNamespace(get_config=get_config)
    return types.SimpleNamespace(zero=types.SimpleNamespace(config=config))


def test_the_duration_factor_comes_from_spaces_config_and_is_1_wherever_it_cannot_be_read(
    monkeypatch,
):
    """``spaces`` multiplies a GPU function's duration by its GPU's ``duration_factor`` (configs.json of 0.51.3:
    1.0 on the H200, 1.5 on the RTX PRO 6000 Blackwell). Its config is private: anything odd there, or no
    `spaces`, or off ZeroGPU, reads as 1.0."""
    from uvosam_app import gpu as app_gpu

    def broken():
        raise OSError("no configs.json")

    blackwell = _spaces_config(lambda: {"model": "NVIDIA RTX PRO 6000", "duration_factor": 1.5})
    monkeypatch.setattr(app_gpu, "spaces", blackwell)
    assert app_gpu.duration_factor() == 1.0  # SPACES_ZERO_GPU unset: not on ZeroGPU
    monkeypatch.setattr(app_gpu, "zero_gpu", lambda: True)
    assert app_gpu.duration_factor() == 1.5
    for odd in (
        None,  # no `spaces`
        object(),  # no spaces.zero
        _spaces_config(broken),
        _spaces_config(lambda: {"model": "NVIDIA H200"}),  # no factor
        _spaces_config(lambda: {"duration_factor": "fast"}),
        _spaces_config(lambda: {"duration_factor": 0}),
        _spaces_config(lambda: {"duration_factor": float("nan")}),
        _spaces_config(lambda: [1.5]),
    ):
        monkeypatch.setattr(app_gpu, "spaces", odd)
        assert app_gpu.duration_factor() == 1.0, odd


def test_a_factor_that_cannot_be_read_on_zerogpu_is_logged_once(monkeypatch, caplog):
    from uvosam_app import gpu as app_gpu

    app_gpu._factor_unread.cache_clear()
    monkeypatch.setattr(app_gpu, "zero_gpu", lambda: True)
    monkeypatch.setattr(app_gpu, "spaces", _spaces_config(lambda: {"model": "NVIDIA H200"}))
    with caplog.at_level("WARNING", logger="uvosam.app"):
        assert [app_gpu.duration_factor() for _ in range(3)] == [1.0] * 3
    (record,) = caplog.records
    assert (
        "duration factor could not be read" in record.getMessage()
        and "KeyError" in record.getMessage()
    )
    caplog.clear()
    monkeypatch.setattr(app_gpu, "spaces", _spaces_config(lambda: {"duration_factor": 1.5}))
    with caplog.at_level("WARNING", logger="uvosam.app"):
        assert app_gpu.duration_factor() == 1.5
    assert caplog.records == []


def test_on_a_zerogpu_whose_factor_is_1_5_the_page_states_the_multiplied_time_and_runs_stay_within_600_s(
    monkeypatch, tmp_path
):
    """On ZeroGPU's Blackwell GPUs ``spaces`` asks for 1.5 times the GPU function's duration (the visitor is charged
    that): the page said 29 s for a run charged 44 s, and a run sized to 600 s was asked as 900 s, over ZeroGPU's
    limit. Now the page states what is charged and a run asks for at most 400 s (600 once multiplied): SAM ViT-H
    covers 760 frames there."""
    from uvosam_app import gpu as app_gpu
    from uvosam_app import handlers as app_handlers

    monkeypatch.setattr(app_gpu, "zero_gpu", lambda: True)
    monkeypatch.setattr(app_gpu, "spaces", _spaces_config(lambda: {"duration_factor": 1.5}))
    app = app_handlers.App(lambda preset, sam: None, AppSettings(work_root=tmp_path))
    example = str(ROOT / "examples" / "synthetic_shapes.mp4")  # 48 frames: 20 s + 48 x 0.2 s, x 1.5
    assert "On ZeroGPU, Run asks for 44 s of GPU time" in app.describe(
        example, "idol-ytvis19-r50", "vit_b", 1, 900
    )
    assert app_gpu.max_request_s() == 400
    assert app_gpu.zero_gpu_max_frames("vit_h") == 760
    for sam, per_frame in app_gpu._PER_FRAME_S.items():
        fit = app_gpu.zero_gpu_max_frames(sam)
        assert 20 + fit * per_frame <= 400 < 20 + (fit + 1) * per_frame, sam
        assert app_gpu.quota_seconds_for(fit, sam) <= 600, sam
        assert app_gpu.gpu_seconds_for(10**6, sam) == 400, sam
        assert app_gpu.quota_seconds_for(10**6, sam) == 600, sam


@pytest.mark.parametrize(
    ("cuda", "cc", "shown"),
    [
        (True, (12, 0), "cuda (ZeroGPU: NVIDIA RTX PRO 6000 Blackwell Server Edition)"),
        (
            True,
            (7, 5),
            "cuda (ZeroGPU: NVIDIA RTX PRO 6000 Blackwell Server Edition, no native bf16)",
        ),
        (False, (12, 0), "cuda (ZeroGPU)"),
    ],
)
def test_on_zerogpu_the_footer_says_zerogpu_although_spaces_makes_cuda_available(
    monkeypatch, cuda, cc, shown
):
    """On a ZeroGPU Space `spaces` makes torch.cuda.is_available() True and supplies the GPU's name and compute
    capability (spaces/zero/torch/patching.py), so the footer's CUDA branch always won and " (ZeroGPU)" never
    showed. Now ZeroGPU is checked first; the name and the bf16 note are kept where CUDA answers."""
    import torch

    from uvosam_app import footer

    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: cc)
    monkeypatch.setattr(
        torch.cuda,
        "get_device_name",
        lambda index=None: "NVIDIA RTX PRO 6000 Blackwell Server Edition",
    )
    monkeypatch.setattr(footer, "zero_gpu", lambda: True)
    assert footer.device_text("cuda") == shown
    monkeypatch.setattr(footer, "zero_gpu", lambda: False)
    assert footer.device_text("cuda") == (
        shown.replace("ZeroGPU: ", "") if cuda else "cuda"
    )  # elsewhere as before
