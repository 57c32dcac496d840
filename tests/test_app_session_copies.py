"""A session's own copies of the components keep the app's checks (``uvosam_app.component_classes``): Gradio
rebuilds a component of a session from its class on any update of its props (``gr.skip()`` included, which every
Run sends), and an override set on the instance was lost there: after a /segment, a link given to /score went to
Gradio's unbounded download, /rerender said "Value: 1 ... not in the list of choices: []". And the page's config
and the API info are those of Gradio's own classes. Tiny models on CPU (the ``server`` of conftest.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

pytest.importorskip("gradio")
import gradio as gr
from app_helpers import client, slow_run, wait_for, zip_of
from gradio_client import handle_file

import app as app_module
from uvosam_app.settings import AppSettings

LINK = "http://127.0.0.1:9/masks.zip"
PRIVATE = r"^127\.0\.0\.1 is an address inside this server's network .*refused here"
RUN_FIRST = r"^Run a video first \(or let the run under way finish\)"


def _gradio_class(block: gr.blocks.Block) -> type:
    """The Gradio class of ``block``: the first of its classes that its module names so."""
    return next(
        cls
        for cls in type(block).__mro__
        if getattr(sys.modules[cls.__module__], cls.__name__, None) is cls
    )


def test_the_page_and_the_api_are_those_of_gradios_classes(tmp_path):
    """The classes of the app's components are Gradio's to the page (the config: the Svelte component it picks,
    the class id) and to the API (view_api): both are the same with each set back to Gradio's own."""
    demo = app_module.build_demo(lambda preset, sam: None, settings=AppSettings(work_root=tmp_path))
    components = [b for b in demo.blocks.values() if isinstance(b, gr.components.Component)]
    assert all(type(b) is not _gradio_class(b) for b in components)
    config, api = demo.get_config_file(), demo.get_api_info()
    for block in components:
        block.__class__ = _gradio_class(block)
    assert demo.get_config_file() == config and demo.get_api_info() == api


def _score_link(c, gt: Path) -> None:
    with pytest.raises(Exception, match=PRIVATE):
        c.predict(handle_file(str(gt)), handle_file(LINK), api_name="/score")


def test_after_a_run_a_link_to_score_is_refused_as_in_a_fresh_session(server, clips, tmp_path):
    """A link given as /score's masks zip after a /segment (a finished one, a refused one) went to Gradio's own
    download (no size limit, no deadline, links taken with UVOSAM_URL_INPUT=0): "The upstream Gradio app has raised
    an exception". The run's outputs (its zip's box among them) are updated on every step."""
    gt = zip_of(tmp_path / "gt.zip", {"clip_a/00000.png": b""})  # an upload: Gradio's way
    fresh = client(server)
    _score_link(fresh, gt)
    done = client(server)
    status, *_ = done.predict(handle_file(str(clips["a"])), stride=4, api_name="/segment")
    assert status.startswith("done: 4 frames")
    _score_link(done, gt)
    refused = client(server)
    with pytest.raises(
        Exception, match=r"Frame stride \(stride over the API\) takes 1 to 10; got 0"
    ):
        refused.predict(handle_file(str(clips["a"])), stride=0, api_name="/segment")
    _score_link(refused, gt)


def test_rerender_during_after_a_stopped_or_a_refused_run_says_to_run_first(server, clips, tracker):
    """/rerender([1]) while the session's first run goes on, after it was stopped, after a refused run: "Value: 1
    (type: <class 'int'>) is not in the list of choices: []" (the run had cleared the keep list's choices)."""
    _url, work = server
    c = client(server)
    with slow_run(c, work, clips["b"], tracker) as (job, run_dir):
        with pytest.raises(Exception, match=RUN_FIRST):
            c.predict([1], api_name="/rerender")
        assert job.cancel()
        assert wait_for(lambda: not any(run_dir.parent.glob("run-*")))
    with pytest.raises(Exception, match=RUN_FIRST):
        c.predict([1], api_name="/rerender")
    with pytest.raises(Exception, match=r"Max objects \(max_objects over the API\) takes 1 to 20"):
        c.predict(handle_file(str(clips["a"])), max_objects=0, api_name="/segment")
    with pytest.raises(Exception, match=RUN_FIRST):
        c.predict([1], api_name="/rerender")


def test_after_a_run_the_settings_checks_still_name_the_setting(server, clips):
    """The track ids (of the run), the sliders (whole numbers, ranges) and the output side's choices are refused
    naming the setting after a run as before one (Gradio's checks said "Value 2.5 ..." naming none)."""
    c = client(server)
    status, *_ = c.predict(handle_file(str(clips["a"])), stride=4, api_name="/segment")
    assert status.startswith("done: 4 frames, 2 tracks")
    with pytest.raises(
        Exception,
        match=r"^Tracks to keep \(keep over the API\) takes the track ids of the last run \(1, 2\); got 9\.",
    ):
        c.predict([1, 9], api_name="/rerender")
    stride = r"^Frame stride \(stride over the API\) takes whole numbers, 1 to 10; got 2\.5\. Send 2 or 3\."
    with pytest.raises(Exception, match=stride):
        c.predict(handle_file(str(clips["a"])), stride=2.5, api_name="/segment")
    with pytest.raises(Exception, match=r"^Detection score threshold \(min_score over the API\)"):
        c.predict([1], min_score=-1, api_name="/rerender")
    with pytest.raises(Exception, match=r"output_side over the API\) takes one of 0, 1280, 854"):
        c.predict([1], output_side="1000", api_name="/rerender")
    with pytest.raises(Exception, match=r"\(style over the API\) takes one of overlay, "):
        c.predict([1], style="nope", api_name="/rerender")
    with pytest.raises(Exception, match=r"^Mask model \(sam over the API\) takes one of vit_b, "):
        c.predict(handle_file(str(clips["a"])), sam="vit_x", api_name="/segment")
    status, *_ = c.predict(["2"], api_name="/rerender")
    assert status.startswith("done: 4 frames, 1 track")
