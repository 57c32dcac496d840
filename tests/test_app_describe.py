"""The description of an input before Run (``App.describe``): what it is, what Run will cover and about how
long it takes, what Run would refuse, probed once. Tiny models on CPU."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import pytest

pytest.importorskip("gradio")
from app_helpers import ROOT, stepped, zip_of
from doubles import MovingBoxTracker

from uvosam.pipeline import UVOSAM
from uvosam.segmenter import BoxPromptSegmenter
from uvosam_app.settings import AppSettings


def test_describe_video_says_what_a_run_covers_and_estimates_its_time():
    from uvosam.video import probe as probe_video
    from uvosam_app.text import describe_video

    info = probe_video(ROOT / "examples" / "synthetic_shapes.mp4")  # 48 frames, 320x240, 12 fps
    models = "idol-ytvis19-r50 + vit_b"
    first = describe_video(info, "shapes.mp4", stride=1, max_frames=900, models=models, fps=None)
    assert first == ("**shapes.mp4**: 320x240, 48 frames at 12 fps (4.0 s). Run covers 48 frames "
                     "(every frame). No time estimate yet for idol-ytvis19-r50 + vit_b (it takes a run of "
                     "10 frames or more here).")  # fmt: skip
    on_cpu = describe_video(
        info, "shapes.mp4", stride=1, max_frames=900, models=models, fps=None, on_cpu=True
    )
    assert on_cpu.startswith(first) and "On a CPU a frame takes seconds" in on_cpu
    assert describe_video(
        info, "shapes.mp4", stride=1, max_frames=900, models=models, fps=4.0, on_cpu=True
    ).endswith("(4.0 fps in the last run here).")  # with a speed, no CPU note
    later = describe_video(info, "shapes.mp4", stride=2, max_frames=10, models=models, fps=4.0)
    assert later.endswith(
        "Run covers 10 frames, every 2nd of the first 19 (Max frames is 10). "
        "About 2 s with idol-ytvis19-r50 + vit_b (4.0 fps in the last run here)."
    )
    assert "Run covers the first frame (every frame; Max frames is 1)." in describe_video(
        info, "s", stride=1, max_frames=1, models=models, fps=None
    )
    with_sound = describe_video(
        replace(info, audio_codec="aac"), "s", stride=1, max_frames=900, models=models, fps=None
    )
    assert with_sound.startswith(
        "**s**: 320x240, 48 frames at 12 fps (4.0 s), with sound (Run's video keeps it)."
    )
    # what Run does to the frames (``uvosam.video``): deinterlaces them; leaves HDR's colours as they are
    odd = describe_video(
        replace(info, interlaced=True, hdr=True),
        "s",
        stride=1,
        max_frames=900,
        models=models,
        fps=None,
    )
    assert odd.startswith(
        "**s**: 320x240, 48 frames at 12 fps (4.0 s). Interlaced: its frames are deinterlaced as they are read. "
        "HDR: its colours are not tone-mapped, so the frames (and the result) look flat or dim. Run covers"
    )
    # 5 frames at stride 3 span the first 13 (they read as "the first 5 frames")
    assert "Run covers 5 frames, every 3rd of the first 13 (Max frames is 5)." in describe_video(
        info, "s", stride=3, max_frames=5, models=models, fps=None
    )
    one = replace(info, num_frames=1, frame_names=info.frame_names[:1])
    assert "Run covers 1 frame (every frame)." in describe_video(
        one, "s", stride=1, max_frames=900, models=models, fps=None
    )

    def described(stride: int, clip=info) -> str:
        return describe_video(clip, "s", stride=stride, max_frames=900, models=models, fps=None)

    ordinals = [described(k).split("(every ")[1][:4] for k in (3, 4, 11, 21, 22)]
    assert ordinals == ["3rd ", "4th ", "11th", "21st", "22nd"]
    rates = [described(1, replace(info, fps=fps, nominal_fps=fps)).split(" fps")[0]
             for fps in (1000.0, 960.0, 29.97, 23.976, 0.5)]  # fmt: skip
    assert [r.split("frames at ")[1] for r in rates] == ["1000", "960", "29.97", "23.98", "0.5"]


def test_the_description_of_one_frame_and_of_a_rate_its_timestamps_do_not_keep():
    """ "1 frames at 25 fps (0.0 s)" for a 1-frame clip; "24.51 fps" for a 25 fps .avi whose 50 frames' timestamps
    skip one tick after the first frame (they span 2.04 s: 2% off the header's rate, so the probe takes the
    average, which keeps the output in time with the sound): the header's rate is said too."""
    from uvosam.video import probe as probe_video
    from uvosam_app.text import describe_video

    info = probe_video(ROOT / "examples" / "synthetic_shapes.mp4")  # 48 frames, 320x240, 12 fps
    assert info.nominal_fps == info.fps == 12
    one = replace(info, num_frames=1, duration_s=1 / 12, frame_names=info.frame_names[:1])
    assert describe_video(
        one, "one.mp4", stride=1, max_frames=900, models="m", fps=None
    ).startswith("**one.mp4**: 320x240, 1 frame. Run covers 1 frame (every frame).")
    avi = replace(info, fps=50 / 2.04, nominal_fps=25.0, num_frames=50, duration_s=2.04)
    assert describe_video(
        avi, "old.avi", stride=1, max_frames=900, models="m", fps=None
    ).startswith(
        "**old.avi**: 320x240, 50 frames at 25 fps nominal, 24.51 on average (2.0 s). Run covers 50 frames"
    )


def test_a_limit_refusal_reads_the_same_as_a_toast_and_in_the_description(tmp_path):
    """The toast shows a refusal as plain text, the description as Markdown: the advice to lower Max frames, written
    in Markdown (asterisks, backticks), showed its marks in the toast. It has none now."""
    from uvosam.errors import VideoLimitError
    from uvosam_app import handlers as app_handlers
    from uvosam_app.errors import LIMIT_ADVICE, limit_text

    too_long = VideoLimitError(
        "long", limit_name="max_duration_s", subject="long.mp4 lasts 36.0 s", limit=20.0
    )
    assert limit_text(too_long) == (
        "long.mp4 lasts 36.0 s, over this app's limit of 20 s. To use it, lower Max frames (under Settings; "
        "max_frames over the API) to cover less of it, or trim it. (The app's host sets this limit: "
        "UVOSAM_MAX_SECONDS.)"
    )
    assert not any(mark in advice for _, advice, _ in LIMIT_ADVICE.values() for mark in "*`[")
    app = app_handlers.App(lambda preset, sam: None, AppSettings(work_root=tmp_path, max_seconds=2))
    about = app.describe(
        str(ROOT / "examples" / "synthetic_shapes.mp4"), "idol-ytvis19-r50", "vit_b", 1, 900
    )
    assert "To use it, lower Max frames (under Settings; max_frames over the API)" in about


def _timed_run(frames: int, fps: float, width: int = 640, height: int = 360):
    """A finished run as ``record_speed`` reads it."""
    from types import SimpleNamespace

    return SimpleNamespace(
        num_frames=frames, fps=fps, info=SimpleNamespace(width=width, height=height)
    )


def test_a_short_run_does_not_spoil_the_time_estimate(tmp_path):
    """After a 1-frame run measured at 3.0 fps (its time mostly the run's start) an 88-frame clip was estimated at
    "About 30 s" and took 15 s (5.7 fps). A run of fewer than 10 frames leaves the speed the estimate uses."""
    from uvosam_app import handlers as app_handlers
    from uvosam_app.describe import record_speed

    app = app_handlers.App(lambda preset, sam: None, AppSettings(work_root=tmp_path))
    bunny = str(ROOT / "examples" / "bigbuckbunny_cut.mp4")  # 88 frames, 640x360
    models = ("idol-ytvis19-r50", "vit_b")
    record_speed(app.speeds, models, _timed_run(1, 3.0))
    assert "No time estimate yet for idol-ytvis19-r50 + SAM ViT-B (it takes a run" in app.describe(
        bunny, *models, 1, 900
    )
    record_speed(app.speeds, models, _timed_run(88, 5.7))
    record_speed(app.speeds, models, _timed_run(9, 3.0))
    assert "About 15 s with idol-ytvis19-r50 + SAM ViT-B (5.7 fps in the last run here)." in (
        app.describe(bunny, *models, 1, 900)
    )
    record_speed(app.speeds, models, _timed_run(10, 4.4))
    assert "About 20 s" in app.describe(bunny, *models, 1, 900)


def test_the_time_estimate_says_when_the_timed_run_had_other_frame_sizes(tmp_path):
    """A 2560x1440 clip after a 640x360 run was estimated at "About 2 s" and took 5.8 s: the estimate took the last
    run's fps whatever its frames' size. Where the pixels differ over twice, it is a bound and says why."""
    from uvosam_app import handlers as app_handlers
    from uvosam_app.describe import record_speed

    app = app_handlers.App(lambda preset, sam: None, AppSettings(work_root=tmp_path))
    bunny = str(ROOT / "examples" / "bigbuckbunny_cut.mp4")  # 88 frames, 640x360
    models = ("idol-ytvis19-r50", "vit_b")
    record_speed(app.speeds, models, _timed_run(48, 8.0, 320, 240))
    assert (
        "At least about 11 s with idol-ytvis19-r50 + SAM ViT-B (8.0 fps in the last run here, at 320x240; these "
        "frames have 3 times the pixels)."
    ) in app.describe(bunny, *models, 1, 900)
    record_speed(app.speeds, models, _timed_run(48, 2.0, 1920, 1080))
    assert (
        "At most about 44 s with idol-ytvis19-r50 + SAM ViT-B (2.0 fps in the last run here, at 1920x1080)."
    ) in app.describe(bunny, *models, 1, 900)
    # 1.8 times the pixels: an estimate
    record_speed(app.speeds, models, _timed_run(48, 2.0, 854, 480))
    assert app.describe(bunny, *models, 1, 900).endswith(
        " About 44 s with idol-ytvis19-r50 + SAM ViT-B (2.0 fps in the last run here)."
    )


def test_a_time_estimate_under_half_a_second_says_under_a_second(tmp_path):
    """One frame at 8 fps after a run of larger frames read "At most about 1 s" (and "About 1 s" after one of the
    same size, "At least about 1 s" after smaller ones): under half a second rounds to none."""
    from uvosam_app import handlers as app_handlers
    from uvosam_app.describe import record_speed

    app = app_handlers.App(lambda preset, sam: None, AppSettings(work_root=tmp_path))
    bunny = str(
        ROOT / "examples" / "bigbuckbunny_cut.mp4"
    )  # 640x360; Max frames 1: 0.125 s at 8 fps
    models = ("idol-ytvis19-r50", "vit_b")
    named = "with idol-ytvis19-r50 + SAM ViT-B (8.0 fps in the last run here"
    for size, said in [
        ((1920, 1080), f" Under a second {named}, at 1920x1080)."),
        ((640, 360), f" Under a second {named})."),
        (
            (320, 240),
            f" At least 0.1 s {named}, at 320x240; these frames have 3 times the pixels).",
        ),
    ]:
        record_speed(app.speeds, models, _timed_run(48, 8.0, *size))
        assert said in app.describe(bunny, *models, 1, 1)


def test_upload_is_described_before_run_with_what_run_would_refuse(tmp_path, clips, tiny_sam_model):
    from uvosam_app import handlers as app_handlers

    pipe = UVOSAM(MovingBoxTracker(num_objects=2), BoxPromptSegmenter(tiny_sam_model))
    settings = AppSettings(work_root=tmp_path, status_interval_s=0.1, max_side=150)
    app = app_handlers.App(lambda preset, sam: pipe, settings)
    preset = "idol-ytvis19-r50"
    assert app.describe(None, preset, "vit_b", 1, 900) == ""
    text = app.describe(str(clips["a"]), preset, "vit_b", 1, 900)
    assert text.startswith("**clip_a.mp4**: 96x64, 16 frames at 8 fps (2.0 s). Run covers 16")
    # the models as the UI names them
    assert "No time estimate yet for idol-ytvis19-r50 + SAM ViT-B" in text
    refused = app.describe(str(clips["text"]), preset, "vit_b", 1, 900)
    assert refused.startswith("**Run would refuse this input:** ") and "is not a video" in refused
    # the app's inputs
    assert "or a zip of its .jpg/.jpeg/.png frames." in refused and "folder" not in refused
    # over max_side: processed scaled down to it, and said so; only an absurd size is refused
    wide = app.describe(str(clips["wide"]), preset, "vit_b", 1, 900)
    assert wide.startswith(
        "**wide.mp4**: 160x48, will be processed at 150x44 (scaled down to this app's largest size; the masks and "
        "exports have it), 8 frames at 8 fps (1.0 s). Run covers 8 frames"
    ), wide
    huge = app.describe(str(clips["huge"]), preset, "vit_b", 1, 900)
    assert "over this app's limit of 4096 px" in huge and "UVOSAM_MAX_SIDE" in huge
    *_, last = stepped(app.segment(str(clips["a"]), preset, "vit_b", 0.0, 10, 1, 900, 0, True, True, "overlay",
                                   None, False, None))  # fmt: skip
    state = last[-1]  # the session's last run
    after = app.describe(str(clips["a"]), preset, "vit_b", 2, 900, None, None, state)
    assert re.search(
        r"Run covers 8 frames \(every 2nd frame\)\. (About \d+ s|Under a second) with "
        r"idol-ytvis19-r50 \+ SAM ViT-B \([\d.]+ fps in the last run here\)\.$",
        after,
    )  # the results shown are of this input: nothing more said
    # another upload: the results still shown (and what Re-render and Score act on) are of clip_a
    other = app.describe(str(clips["b"]), preset, "vit_b", 1, 900, None, None, state)
    assert other.startswith("**clip_b.mp4**: 128x80")
    assert other.endswith(
        "**The results below are of your last run, on an earlier input (clip_a.mp4):** Re-render and Score use "
        "them; Run replaces them with this input's."
    )
    assert "No time estimate yet" in app.describe(
        str(clips["a"]), preset, "vit_h", 1, 900
    )  # other models


def test_an_upload_is_probed_once_for_its_description_and_latest_frame(
    tmp_path, clips, monkeypatch
):
    """An upload was probed (ffprobe: its header, then its packets counted) once for its description and once for
    whether browsers can play it (two events on the same change), and again at every step of a slider the
    description follows. Now once; a file replaced at the same path is probed again."""
    import shutil

    from uvosam import video
    from uvosam_app import handlers as app_handlers

    headers = []

    def read_header(path, **kwargs):
        headers.append(Path(path).name)
        return real_read_header(path, **kwargs)

    real_read_header = video.read_header
    monkeypatch.setattr(video, "read_header", read_header)
    app = app_handlers.App(lambda preset, sam: None, AppSettings(work_root=tmp_path, max_side=150))
    upload = Path(shutil.copy(clips["a"], tmp_path / "upload.mp4"))
    assert app.links.input_changed(str(upload), None, None)[1] is None  # H.264: plays, no frame
    for stride in (1, 2, 3):
        text = app.describe(str(upload), "idol-ytvis19-r50", "vit_b", stride, 900)
        assert text.startswith("**upload.mp4**: 96x64, 16 frames at 8 fps (2.0 s)."), text
    assert "Run covers 6 frames (every 3rd frame)" in text
    assert headers == ["upload.mp4"]
    shutil.copy(clips["b"], upload)  # another file at the same path
    assert "**upload.mp4**: 128x80, 24 frames" in app.describe(
        str(upload), "idol-ytvis19-r50", "vit_b", 1, 900
    )
    assert headers == ["upload.mp4"] * 2
    # over the sanity limit (4096 px a side): refused from its header (nothing counted, nothing kept), no first frame
    shutil.copy(clips["huge"], upload)
    wide = app.describe(str(upload), "idol-ytvis19-r50", "vit_b", 1, 900)
    assert "over this app's limit of 4096 px" in wide
    assert app.links.input_changed(str(upload), None, None)[1] is None
    assert headers == ["upload.mp4"] * 4


def test_an_upload_is_probed_once_when_its_two_events_come_at_once(tmp_path, clips, monkeypatch):
    """The description and the playability check are two unqueued events on the same change: Gradio runs them in
    two threads at the same time, and both missed the cache and probed."""
    import shutil
    import threading

    from uvosam import video
    from uvosam_app import handlers as app_handlers

    headers = []
    both_in = threading.Barrier(2)

    def read_header(path, **kwargs):
        headers.append(Path(path).name)
        return real_read_header(path, **kwargs)

    real_read_header = video.read_header
    monkeypatch.setattr(video, "read_header", read_header)
    app = app_handlers.App(lambda preset, sam: None, AppSettings(work_root=tmp_path))
    upload = str(shutil.copy(clips["a"], tmp_path / "upload.mp4"))
    texts = []

    def describe():
        both_in.wait()
        texts.append(app.describe(upload, "idol-ytvis19-r50", "vit_b", 1, 900))

    def playable():
        both_in.wait()
        app.links.input_changed(upload, None, None)

    threads = [threading.Thread(target=describe), threading.Thread(target=playable)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert headers == ["upload.mp4"] and texts[0].startswith("**upload.mp4**: 96x64, 16 frames"), (
        headers,
        texts,
    )


def test_the_upload_description_is_told_again_when_a_run_finishes(tmp_path):
    """Before a run the description says "No time estimate yet for <models>"; once the run is done
    that is false, so the finished run asks for the description again (with its time estimate). A failed run asks
    too: it cleared the results that a note "the results below are of your last run, on an earlier input" named."""
    import app as app_module

    demo = app_module.build_demo(lambda preset, sam: None, settings=AppSettings(work_root=tmp_path))
    config = demo.get_config_file()
    info_id = next(
        c["id"] for c in config["components"] if c["props"].get("elem_id") == "video-info"
    )
    deps = config["dependencies"]
    segment = next(d["id"] for d in deps if d["api_name"] == "segment")
    after_run = [d for d in deps if d["trigger_after"] == segment]
    # on success only: the browser empties Merge tracks and Split tracks (their ids were the former run's)
    boxes = [
        c["id"] for c in config["components"] if c["props"].get("elem_id") in ("merge", "split")
    ]
    on_success = [d for d in after_run if d["trigger_only_on_success"]]
    assert [(sorted(d["outputs"]), d["backend_fn"]) for d in on_success] == [(sorted(boxes), False)]
    # the other one, on failure only, writes the status line
    assert [
        d["outputs"]
        for d in after_run
        if not d["trigger_only_on_failure"] and not d["trigger_only_on_success"]
    ] == [[info_id]]
    describes = [d for d in deps if d["outputs"] == [info_id]]
    # not behind the queue
    assert len(describes) == 2 and all(d["queue"] is False for d in describes)
    endpoints = {"/segment", "/rerender", "/score", "/load_url"}
    assert set(demo.get_api_info()["named_endpoints"]) == endpoints
    # every output has a name in the API (an unlabelled one is "value_<id>")
    returns = [
        r["label"] for e in demo.get_api_info()["named_endpoints"].values() for r in e["returns"]
    ]
    assert "Scores" in returns and not any(label.startswith("value_") for label in returns), returns


def test_the_description_shows_names_and_refusals_as_written(tmp_path):
    from uvosam_app import handlers as app_handlers

    # a zip member's name with a tag in it: Markdown rendered it as bold, or dropped it
    frames = zip_of(tmp_path / "a&b.zip", {"s/0<b>1.png": b"not a png", "s/00002.png": b"nor this"})
    app = app_handlers.App(lambda preset, sam: None, AppSettings(work_root=tmp_path))
    text = app.describe(None, "idol-ytvis19-r50", "vit_b", 1, 900, str(frames))
    assert text.startswith(
        "**Run would refuse this input:** a&amp;b.zip: s/0&lt;b&gt;1.png is not a readable"
    ), text


def test_max_frames_over_the_limit_is_capped_and_the_description_shows_what_the_boxes_will_hold(
    tmp_path, clips, tiny_sam_model
):
    """The page puts a number typed out of range back in range when its box loses focus (an empty box: the
    minimum), so Run never gets one from the page; the description shown while the number is typed says what Run
    will take, naming the setting and its range. It follows the sliders' change (the box put back in range, ↺)."""
    import app as app_module
    from uvosam_app import handlers as app_handlers

    pipe = UVOSAM(MovingBoxTracker(num_objects=2), BoxPromptSegmenter(tiny_sam_model))
    settings = AppSettings(work_root=tmp_path, status_interval_s=0.1, max_frames=5)
    app = app_handlers.App(lambda preset, sam: pipe, settings)
    *_, last = stepped(app.segment(str(clips["a"]), "idol-ytvis19-r50", "vit_b", 0.0, 10, 1, 100000, 0, True, True,
                                   "overlay", None, False, None))  # fmt: skip
    assert last[0].startswith("done: 5 frames")
    typed = app.describe(str(clips["a"]), "idol-ytvis19-r50", "vit_b", 0, 100000)
    assert typed.startswith(
        "**Frame stride takes 1 to 10:** Run takes 1.\n\n**Max frames takes 1 to 5:** Run takes 5.\n\n"
        "**clip_a.mp4**: 96x64, 16 frames at 8 fps (2.0 s). Run covers the first 5 frames (every frame; "
    )
    emptied = app.describe(str(clips["a"]), "idol-ytvis19-r50", "vit_b", 15, None)
    assert emptied.startswith("**Frame stride takes 1 to 10:** Run takes 10.\n\n**Max frames takes 1 to 5:** "
                              "Run takes 1.\n\n**clip_a.mp4**")  # fmt: skip
    assert app.describe(str(clips["a"]), "idol-ytvis19-r50", "vit_b", 2, 5).startswith(
        "**clip_a.mp4**"
    )

    demo = app_module.build_demo(lambda preset, sam: None, settings=settings)
    config = demo.get_config_file()
    ids = {c["props"].get("elem_id"): c["id"] for c in config["components"]}
    sliders = [ids["stride"], ids["max-frames"]]
    described = {
        tuple(t)
        for d in config["dependencies"]
        if d["api_name"] == "describe"
        for t in d["targets"]
    }
    assert {(s, "change") for s in sliders} <= described


def test_a_name_in_markdown_makes_no_link_nor_emphasis_and_reads_as_written():
    """``markdown_text`` escapes Markdown's marks (a Load's file named x** [login](https://evil) **.avi showed a link;
    the browser's view: tests/test_app_browser.py), and only those: names and settings read as written in the
    Markdown too."""
    from uvosam_app.text import markdown_text

    assert (
        markdown_text("x__ [login](https___evil) __.avi")
        == r"x\_\_ \[login\](https\_\_\_evil) \_\_.avi"
    )
    assert markdown_text("x** `a` ~b~ | c.avi") == r"x\*\* \`a\` \~b\~ \| c.avi"
    # bare links: https://, www., an e-mail address
    assert markdown_text("see https://evil, WWW.evil.com or me@evil.com") == (
        r"see https\://evil, WWW\.evil.com or me\@evil.com"
    )
    assert (
        markdown_text("clip_a & <b> 1.mp4: max_frames")
        == "clip_a &amp; &lt;b&gt; 1.mp4: max_frames"
    )
    assert markdown_text("_secret_.mp4") == r"\_secret\_.mp4"


def test_a_frame_of_too_many_pixels_is_refused_in_the_apps_words():
    """The app's sanity limits (``AppSettings.limits``): 4096 px a side and 4096x2304 px, checked on the source's
    size also when Run would scale it down; the pixel count said as a number, not 1.2e+07."""
    from uvosam.errors import VideoLimitError
    from uvosam.video import VideoInfo, check_limits, fit_info
    from uvosam_app.errors import limit_text

    info = VideoInfo(path=Path("tall.mp4"), fps=25.0, num_frames=2, width=4000, height=3000, rotation=0,
                     duration_s=0.08, is_folder=False, frame_names=("00000", "00001"))  # fmt: skip
    with pytest.raises(VideoLimitError) as err:
        check_limits(fit_info(info, 1920), AppSettings().limits())
    assert limit_text(err.value) == (
        "tall.mp4 is 4000x3000 = 12000000 px per frame, over this app's limit of 9437184 px (4096x2304). To use "
        "it, scale it down (e.g. to 1920x1080: the app scales larger frames down itself) and upload it again. (The "
        "app's host can raise it by setting UVOSAM_MAX_SIDE over 4096.)"
    )
    # a host's larger side raises both: 4800 px a side, 4800x2700 px
    check_limits(fit_info(info, 1920), AppSettings(max_side=4800).limits())
