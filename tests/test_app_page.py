"""The page (``build_demo``): its labels and layout, the handlers Gradio sees, the errors' toasts (as written,
no traceback for a user's mistake) and the file cache's age in the texts."""

from __future__ import annotations

import re

import pytest

pytest.importorskip("gradio")
from app_helpers import client, stepped, write_clip, zip_of, zip_of_frames
from gradio_client import Client, handle_file

from uvosam_app.settings import AppSettings


def _props(demo, elem_id: str) -> dict:
    return next(
        c["props"] for c in demo.config["components"] if c["props"].get("elem_id") == elem_id
    )


def test_the_score_panel_and_the_link_box_fit_a_phone(tmp_path):
    """On a 390 px phone the ground truth's long label ran under its box's X button (on a laptop too), the link
    box's placeholder was cut before its "not supported" part, and the scores table broke words and numbers
    ("obje|ct", "1.00|0")."""
    import app as app_module
    from uvosam_app.layout import CSS

    demo = app_module.build_demo(lambda p, s: None, settings=AppSettings(work_root=tmp_path))
    assert _props(demo, "gt")["label"] == "Ground truth (.zip)"
    assert "a .zip of indexed PNGs (0 background" in _props(demo, "gt-help")["value"]
    url = _props(demo, "url")
    assert url["placeholder"] == "https://example.com/clip.mp4" and "not a YouTube" in url["label"]
    assert re.search(
        r"#scores td, #scores th \{[^}]*overflow-wrap: normal; word-break: normal", CSS
    )
    demo.close()


def test_the_example_buttons_have_names(tmp_path):
    """The two example buttons showed a video thumbnail each and had no accessible name (Tab reached two unnamed
    buttons): they are named after their clips now."""
    import app as app_module

    demo = app_module.build_demo(lambda p, s: None, settings=AppSettings(work_root=tmp_path))
    assert _props(demo, "examples")["sample_labels"] == ["Big Buck Bunny", "Synthetic shapes"]
    demo.close()


def test_the_video_box_says_where_images_go(tmp_path):
    """An image dropped on the Video box got Gradio's "Only video/x-m4v,video/* allowed." and no hint that a zip
    of frames is the way in."""
    import app as app_module

    demo = app_module.build_demo(lambda p, s: None, settings=AppSettings(work_root=tmp_path))
    assert _props(demo, "inp")["label"] == "Video (animated GIFs, zipped images: below)"
    frames = _props(demo, "frames")
    assert frames["label"] == "…or a zip of its frames, or a GIF/WebP/APNG"
    assert frames["file_types"] == [".zip", ".gif", ".webp", ".apng", ".png"]
    demo.close()


def test_the_upload_box_states_the_limits_a_visitor_meets(tmp_path):
    """A visitor met each limit only in a refusal after uploading; the line under the upload box says them all, from
    the settings, and that larger frames are scaled down, not refused."""
    import app as app_module

    settings = AppSettings(
        work_root=tmp_path, max_upload_mb=50, max_frames=300, max_seconds=60.0, max_side=1280
    )
    demo = app_module.build_demo(lambda p, s: None, settings=settings)
    ids = [c["props"].get("elem_id") for c in demo.config["components"]]
    assert (
        ids.index("inp") < ids.index("limits") < ids.index("video-info")
    )  # right under the upload box
    assert _props(demo, "limits")["value"] == (
        "Up to 50 MiB; Run covers at most 300 frames and 60 s of a video. Frames over 1280 px a side are scaled "
        "down to it; larger than 4096x2304 (or over 4096 px a side), refused."
    )
    demo.close()


def test_the_settings_re_render_ignores_say_run_only(tmp_path):
    """Re-render ignored a changed Frame stride or Max frames (they need a new Run) and said nothing of it, while
    the style's label says "Run or Re-render"."""
    import app as app_module

    demo = app_module.build_demo(lambda p, s: None, settings=AppSettings(work_root=tmp_path))
    labels = {c["props"].get("label") for c in demo.config["components"]}
    assert {
        "Frame stride (Run only; 1 = every frame)",
        "Max frames (Run only)",
        "Max objects (Run only)",
    } <= labels
    assert "Video style (Run or Re-render)" in labels
    demo.close()


def test_gradio_resolves_every_handlers_annotations(tmp_path):
    """Gradio finds a handler's gr.Request (its session) and gr.Progress by resolving its type hints; a name it
    cannot resolve (e.g. imported only under TYPE_CHECKING) makes it see none, and the handler then runs as no
    session at all (Load once did: every user's download went to one shared folder)."""
    import inspect

    import gradio as gr
    from gradio import utils

    import app as app_module

    demo = app_module.build_demo(lambda preset, sam: None, settings=AppSettings(work_root=tmp_path))
    handlers = {
        f.fn for f in demo.fns.values() if getattr(f.fn, "__module__", "").startswith("uvosam_app")
    }
    assert {h.__name__ for h in handlers} >= {
        "segment",
        "rerender",
        "load_url",
        "unload",
        "score_shown",
    }
    with_session = set()
    for handler in handlers:
        params = inspect.signature(handler).parameters
        annotated = [n for n, p in params.items() if p.annotation is not p.empty]
        hints = utils.get_type_hints(handler)
        assert set(annotated) <= set(hints), handler.__qualname__
        if "request" in params:  # Gradio passes the session by annotation only
            assert hints.get("request") is gr.Request, handler.__qualname__
            with_session.add(handler.__name__)
    assert with_session >= {"segment", "rerender", "load_url", "unload"}


def test_refusals_of_what_the_user_did_print_no_traceback_in_the_server_log(tmp_path):
    """A refusal that tells the user what to do (no video yet, Re-render or Score before a run, no link, ...) is
    no failure of the app: Gradio prints the traceback of a ``gr.Error`` unless it says not to, and the server log
    filled with tracebacks of users' ordinary mistakes hides the real failures."""
    import gradio as gr

    from uvosam_app import handlers as app_handlers

    app = app_handlers.App(lambda preset, sam: None, AppSettings(work_root=tmp_path))
    video = write_clip(tmp_path / "v.mp4", 4, 32, 32)
    frames = zip_of_frames(tmp_path / "f.zip", "f", 2)
    state = app_handlers.SessionRun(tmp_path / "run", tmp_path / "run" / "cache")
    masks = zip_of(tmp_path / "masks.zip", {"davis/v/00000.png": b""})

    def segment(video, frames_zip, style="overlay"):
        return list(stepped(app.segment(video, "idol-ytvis19-r50", "vit_b", 0.0, 10, 1, 900, 0, True, True, style,
                                        frames_zip)))  # fmt: skip

    def rerender(state):
        return list(
            stepped(
                app.rerenders.rerender([1], True, True, 0, "overlay", "", False, 0.0, state, None)
            )
        )

    refusals = {
        "no input": lambda: segment(None, None),
        "two inputs": lambda: segment(str(video), str(frames)),
        "a style not offered": lambda: segment(str(video), None, style="sepia"),
        "Re-render before a run": lambda: rerender(None),
        "Re-render of a run gone": lambda: rerender(state),
        "Score before a run": lambda: app.views.score(None, None),
        "Score without ground truth": lambda: app.views.score(None, str(masks)),
        "Score of a zip Run did not make": lambda: app.views.score(str(masks), str(masks)),
        "Load without a link": lambda: app.links.load_url(" "),
    }
    for what, refuse in refusals.items():
        with pytest.raises(gr.Error) as err:
            refuse()
        assert err.value.print_exception is False, (what, err.value.message)


MARKUP = "f/00000<zipfile.ZipExtFile name='a'>&amp;.jpg"  # a zip member as a library's repr could name it


UNREADABLE = "is not a readable image (not a JPEG or PNG inside); replace or remove it"


def test_a_message_with_markup_reaches_the_toast_as_written_and_api_clients_as_text(
    server, tmp_path
):
    """The page's toast renders an error's message as HTML: "<zipfile.ZipExtFile ...>" vanished with all that
    followed it, "&amp;" showed as "&". The page (its requests say ``x-gradio-user: app``; a Client given that
    header stands in for it) gets the message escaped, so that the toast shows it as written; an API client gets
    the text itself, and the status line, the same text for both, says it too."""
    import html

    from gradio_client.exceptions import AppError

    frames = zip_of(tmp_path / "frames.zip", {MARKUP: b"not a jpeg", "f/00001.jpg": b"nor this"})
    page = Client(server[0], headers={"x-gradio-user": "app"}, verbose=False)
    for c, shown in ((client(server), MARKUP), (page, html.escape(MARKUP, quote=False))):
        job = c.submit(None, frames_zip=handle_file(str(frames)), api_name="/segment")
        with pytest.raises(AppError) as err:
            job.result()
        assert err.value.message == f"frames.zip: {shown} {UNREADABLE}"
        assert job.outputs()[-1][0] == f"failed: frames.zip: {MARKUP} {UNREADABLE}"


def test_every_endpoint_shows_its_errors_as_written_in_the_toast(tmp_path):
    """Each handler with an endpoint (each one that refuses with a toast) goes through ``text_toasts`` (a job's
    stream, and Score's: ``failures_in_status``); its
    escaping is for the page only, and leaves alone an error that is HTML already (ZeroGPU's ``HTMLError``: a
    link) or is not a plain ``gr.Error``."""
    import types

    import gradio as gr

    import app as app_module
    from uvosam_app import errors as app_errors
    from uvosam_app import handlers as app_handlers

    demo = app_module.build_demo(lambda preset, sam: None, settings=AppSettings(work_root=tmp_path))
    endpoints = {f.api_name: f.fn for f in demo.fns.values() if f.api_visibility == "public"}
    assert set(endpoints) == {"segment", "rerender", "score", "load_url"}
    assert all(hasattr(fn, "__wrapped__") for fn in endpoints.values()), endpoints

    page = types.SimpleNamespace(headers={"x-gradio-user": "app"}, session_hash="tab")
    api = types.SimpleNamespace(headers={"x-gradio-user": "api"}, session_hash="tab")
    app = app_handlers.App(
        lambda preset, sam: None, AppSettings(work_root=tmp_path, max_upload_mb=1)
    )
    masks = zip_of(tmp_path / "masks.zip", {"davis/v/00000.png": b""})
    gt = tmp_path / "g<1>&amp;.zip"
    gt.write_bytes(bytes(2 << 20))  # over the upload limit: the message names the file
    for request, name in ((page, "g&lt;1&gt;&amp;amp;.zip"), (api, gt.name), (None, gt.name)):
        updates = []
        with pytest.raises(gr.Error) as err:
            updates.extend(stepped(app.views.score_shown(str(gt), str(masks), request)))
        assert err.value.message.startswith(f"{name} is 2 MB, over this app's upload limit of 1 MB")
        # in place of the scores (Markdown, as written), for the page and the API alike
        [scores] = updates
        assert scores.startswith(
            "**Score failed:** g&lt;1&gt;&amp;amp;.zip is 2 MB, over this app's upload"
        )
    link = "You have exceeded your ZeroGPU quota. <a href='https://hf.co/pro'>Subscribe</a>"
    html_error = type("HTMLError", (gr.Error,), {})(link)  # spaces' class: its message is HTML
    assert app_errors.for_page(html_error, page) is html_error
    shown = app_errors.for_page(gr.Error("a<b>.mp4\nis empty", title="T", duration=3), page)
    assert (shown.message, shown.title, shown.duration) == ("a&lt;b&gt;.mp4<br>is empty", "T", 3)


def test_the_file_cache_sweep_and_the_texts_that_name_it_share_one_age(tmp_path):
    """ "About an hour" was written by hand beside app.py's sweep of its file cache (600, 3600): changing one would
    leave the texts saying the other. The sweep is the app's (``ServedFiles``, which runs Gradio's too), not
    Gradio's schedule (``delete_cache``), which ended for good on its first error."""
    import gradio as gr

    import app as app_module
    from uvosam_app import settings as app_settings
    from uvosam_app.checks import upload_gone
    from uvosam_app.handlers import App

    demo = app_module.build_demo(lambda p, s: None, settings=AppSettings(work_root=tmp_path))
    served = demo.served_files
    assert demo.delete_cache is None
    assert (served.sweep_every_s, served.max_age_s) == (
        app_settings.FILE_SWEEP_EVERY_S,
        app_settings.FILE_MAX_AGE_S,
    )
    demo.close()
    served.close()
    assert (
        app_settings.FILES_KEPT
        == app_settings.about(app_settings.FILE_MAX_AGE_S)
        == "about an hour"
    )
    assert [app_settings.about(s) for s in (7200, 600, 60)] == [
        "about 2 hours",
        "about 10 minutes",
        "about a minute",
    ]
    assert f"deleted after {app_settings.FILES_KEPT}): upload it again" in upload_gone(
        str(tmp_path / "x.mp4")
    )
    app = App(lambda p, s: None, AppSettings(work_root=tmp_path))
    with pytest.raises(
        gr.Error, match=f"no longer kept on the server \\({app_settings.FILES_KEPT}\\)"
    ):
        app.views.score(None, str(tmp_path / "gone.zip"))


def test_the_merge_syntax_is_an_info_line_and_the_timeline_alt_text_is_bounded(tmp_path):
    """The Merge box's syntax was only its placeholder (1.91:1, gone once typing started): it is its info line.
    The timeline's alt text names each track and its frames, at most ``TIMELINE_ALT_TRACKS`` of them."""
    import app as app_module
    from uvosam.timeline import TimelineRow
    from uvosam_app.results import TIMELINE_ALT_TRACKS, timeline_alt

    demo = app_module.build_demo(lambda p, s: None, settings=AppSettings(work_root=tmp_path))
    merge = _props(demo, "merge")
    assert merge["info"].startswith("e.g. 3>1, 5>1") and not merge.get("placeholder")
    demo.close()
    rows = [TimelineRow(i, "person", range(i, 20)) for i in range(1, 14)]
    rows[0] = TimelineRow(1, "dog", [0, 1, 5])
    alt = timeline_alt(rows, 20)
    assert alt.startswith(
        "Track timeline of 20 frames: #1 dog frames 0-5 (seen in 3); #2 person frames 2-19;"
    )
    assert alt.count("#") == TIMELINE_ALT_TRACKS and alt.endswith("; and 3 more tracks")
