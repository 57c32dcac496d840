"""Run's request checked before any work (``uvosam_app.checks.run_request``), without a server or models."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("gradio")
import gradio as gr

from uvosam.video import VideoInfo
from uvosam_app import gpu as app_gpu
from uvosam_app import links as app_links
from uvosam_app.checks import OutputChoices, RunRequest, run_request
from uvosam_app.settings import AppSettings
from uvosam_app.uploads import FramesZip

TRACKER = "idol-ytvis19-r50"
OUTPUTS = OutputChoices(output_side="480", style="cutout", show_boxes=False, show_labels=1,
                        alpha_webm=True)  # fmt: skip


def _file(path: Path, size: int = 16) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as f:
        f.truncate(size)  # sparse: the checks read its size, never its bytes
    return str(path)


def _request(settings: AppSettings, video: str | None, **changed) -> RunRequest:
    asked = {"frames_zip": None, "linked": None, "tracker": TRACKER, "sam": "vit_b", "min_score": 0.5,
             "max_objects": 3, "stride": 2, "max_frames": 30, "outputs": OUTPUTS}  # fmt: skip
    return run_request(settings, video, **(asked | changed))


def _info(num_frames: int) -> VideoInfo:
    names = tuple(f"{i:05d}" for i in range(num_frames))
    return VideoInfo(Path("clip.mp4"), 8.0, num_frames, 96, 64, 0, num_frames / 8, False, names)


def test_a_run_request_becomes_the_jobs_options_config_changes_and_source(tmp_path):
    settings = AppSettings(work_root=tmp_path / "work")
    video = _file(tmp_path / "up" / "clip.mp4")
    req = _request(settings, video)
    assert req.source == video and req.held is None and req.frame_cap is None
    assert req.changes == {"min_score": 0.5, "max_objects": 3}
    assert [type(v) for v in req.changes.values()] == [float, int]
    o = req.options
    assert (o.stride, o.max_frames, o.limits, o.cache) == (2, 30, settings.limits(), True)
    assert (o.output_max_side, o.style, o.show_boxes, o.show_labels) == (480, "cutout", False, True)
    assert (o.export.alpha_webm, o.chunk_seconds) == (True, settings.chunk_seconds)
    assert req.cap_note(_info(10_000)) == ""  # off ZeroGPU: no cap
    # an upper bound over its maximum is "as many as allowed"; "0" is the source's size
    req = _request(settings, video, stride=1, max_frames=10**6, max_objects=99, min_score=0,
                   outputs=OutputChoices(0, "overlay", True, True, False))  # fmt: skip
    assert (req.options.max_frames, req.max_frames, req.changes["max_objects"]) == (900, 900, 20)
    assert req.options.output_max_side is None and type(req.changes["min_score"]) is float
    # a whole number sent as a float (2.0) is one
    req = _request(settings, video, stride=3.0, max_frames=30.0, max_objects=4.0)
    assert (req.options.stride, req.options.max_frames, req.changes["max_objects"]) == (3, 30, 4)


def test_a_run_takes_the_linked_download_only_without_an_upload_and_holds_its_folder(tmp_path):
    settings = AppSettings(work_root=tmp_path / "work")
    linked_mp4 = _file(tmp_path / "link-1" / "clip.mp4")
    req = _request(settings, None, linked=linked_mp4)
    assert (req.source, req.held) == (linked_mp4, tmp_path / "link-1")
    linked_zip = _file(
        tmp_path / "link-2" / "frames.zip"
    )  # over the API a Load may fetch a zip of frames
    req = _request(settings, None, linked=linked_zip)
    assert (req.source, req.held) == (FramesZip(linked_zip), tmp_path / "link-2")
    upload = _file(tmp_path / "up" / "frames.zip")
    req = _request(settings, None, frames_zip=upload, linked=linked_mp4)
    assert (req.source, req.held) == (FramesZip(upload), None)
    gone = str(tmp_path / "link-3" / "clip.mp4")
    with pytest.raises(gr.Error, match=app_links.GONE[:30]):
        _request(settings, None, linked=gone)
    video = _file(tmp_path / "up" / "clip.mp4")
    req = _request(settings, video, linked=gone)  # an upload: the linked file is not looked at
    assert (req.source, req.held) == (video, None)


@pytest.mark.parametrize(
    ("changed", "message"),
    [
        ({"video": None}, r"Upload a video \(or a zip of its frames\) or pick an example first"),
        ({"frames_zip": "ZIP"}, "Both a video and a zip of frames are loaded"),
        ({"video": "GONE"}, "clip.mp4 is no longer on the server"),
        (
            {"tracker": "idol-nope"},
            r"Tracker preset \(tracker over the API\) takes one of idol-ytvis19-r50, .*; got 'idol-nope'\.",
        ),
        (
            {"sam": "vit_z"},
            r"Mask model \(sam over the API\) takes one of vit_b, .*; got 'vit_z'\.",
        ),
        ({"stride": 15}, r"Frame stride \(stride over the API\) takes 1 to 10; got 15"),
        # a fraction of a count was taken rounded down
        (
            {"stride": 2.5},
            r"Frame stride \(stride over the API\) takes whole numbers, 1 to 10; got 2\.5\. Send 2 or 3\.",
        ),
        (
            {"max_frames": 1e4 + 0.5},
            r"Max frames \(max_frames .*\) takes whole numbers, 1 to 900; got 10000\.5\. Send 10000 or 10001\.",
        ),
        (
            {"max_objects": 0.5},
            r"Max objects \(max_objects over the API\) takes 1 to 20; got 0\.5\.",
        ),
        (
            {"max_objects": 1.5},
            r"Max objects \(max_objects over the API\) takes whole numbers, 1 to 20; got 1\.5\. Send 1 or 2\.",
        ),
        ({"min_score": True}, r"Detection score threshold \(min_score over the API\)"),
        ({"video": "BIG"}, "big.mp4 is 2 MB, over this app's upload limit of 1 MB"),
        (
            {"outputs": OutputChoices(0, "no-such-style", True, True, False)},
            r"Video style \(style over the API\) takes one of overlay, .*; got 'no-such-style'\.",
        ),
        # the first refusal is the one said: a gone upload before a bad setting
        ({"video": "GONE", "stride": 15}, "clip.mp4 is no longer on the server"),
    ],
)
def test_a_run_request_is_refused_saying_what_to_do(tmp_path, changed, message):
    settings = AppSettings(work_root=tmp_path / "work", max_upload_mb=1)
    files = {
        "ZIP": _file(tmp_path / "up" / "frames.zip"),
        "GONE": str(tmp_path / "swept" / "clip.mp4"),
        "BIG": _file(tmp_path / "up" / "big.mp4", 2 << 20),
    }
    video = _file(tmp_path / "up" / "clip.mp4")
    changed = {k: files.get(v, v) if isinstance(v, str) else v for k, v in changed.items()}
    video = changed.pop("video", video)
    with pytest.raises(gr.Error, match=message):
        _request(settings, video, **changed)


def test_on_zerogpu_a_run_request_covers_the_frames_its_gpu_time_allows(tmp_path, monkeypatch):
    """A mask model's frame costing 100 s: 5 frames fit in ZeroGPU's 600 s; the status line then says why a run
    covered fewer frames than asked, and nothing when it covered them all."""
    monkeypatch.setattr(app_gpu, "zero_gpu", lambda: True)
    monkeypatch.setitem(app_gpu._PER_FRAME_S, "vit_b", 100.0)
    settings = AppSettings(work_root=tmp_path / "work")
    req = _request(settings, _file(tmp_path / "clip.mp4"), stride=1, max_frames=900)
    assert (req.options.max_frames, req.stride, req.max_frames) == (5, 1, 900)
    assert req.frame_cap == app_gpu.GpuFrameCap(5, "SAM ViT-B")
    assert req.cap_note(_info(16)) == f" · {req.frame_cap.text()}"
    assert "at most 5 frames with SAM ViT-B" in req.cap_note(_info(16))
    assert req.cap_note(_info(5)) == ""
    req = _request(settings, _file(tmp_path / "clip.mp4"), stride=1, max_frames=4)
    assert req.options.max_frames == 4 and req.cap_note(_info(16)) == ""


def test_the_style_choices_are_the_renderers_styles():
    """The page's style menu is a hand-kept (label, value) list: its values must be ``uvosam.render.STYLES``, in
    order (a style added to the renderer and not to the menu, or a menu value the renderer refuses, fails here)."""
    from uvosam.render import STYLES
    from uvosam_app.layout import STYLE_CHOICES

    assert tuple(value for _, value in STYLE_CHOICES) == STYLES
    assert all(label and label != value for label, value in STYLE_CHOICES)
