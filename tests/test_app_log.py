"""The server log of the Gradio app: one line for each refusal a visitor meets (``uvosam_app.errors.log_refusals``)."""

from __future__ import annotations

import logging
import threading

import pytest

pytest.importorskip("gradio")
from app_helpers import launched, wait_for, write_clip
from doubles import MovingBoxTracker
from gradio_client import Client, handle_file
from gradio_client.utils import Status

from uvosam.pipeline import UVOSAM
from uvosam.segmenter import BoxPromptSegmenter
from uvosam_app.settings import AppSettings

SECRET = "contents-of-the-visitors-file"


def _refusals(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith("refused ")]


def test_each_refusal_is_one_log_line_without_traceback_or_file_contents(
    tmp_path, tiny_sam_model, caplog
):
    """Refused or failed visitor runs left no line in the server log (only finished runs and unexpected errors
    did): a host could not see what visitors hit."""
    pipe = UVOSAM(MovingBoxTracker(num_objects=1), BoxPromptSegmenter(tiny_sam_model))

    def get_pipeline(preset: str, sam: str) -> UVOSAM:
        if preset == "idol-coco-r50":
            raise RuntimeError("a bug inside the app")
        return pipe

    text = tmp_path / "notes.mp4"
    text.write_bytes(f"{SECRET}\n".encode() * 20)
    clip = write_clip(tmp_path / "clip.mp4", 4, 64, 48)
    caplog.set_level(logging.INFO, logger="uvosam.app")
    with launched(get_pipeline, AppSettings(work_root=tmp_path / "work")) as url:
        client = Client(url, verbose=False)
        calls = {  # the track id first: a run's update of the tracks makes Gradio check them (its own message)
            "a track id that is none": lambda: client.predict(["x"], api_name="/rerender"),
            "a non-video": lambda: client.predict(handle_file(str(text)), api_name="/segment"),
            "stride 0": lambda: client.predict(
                handle_file(str(clip)), stride=0, api_name="/segment"
            ),
            "an unexpected error": lambda: client.predict(
                handle_file(str(clip)), "idol-coco-r50", api_name="/segment"
            ),
        }
        for call in calls.values():
            with pytest.raises(Exception):  # noqa: B017  (each message is checked in the log)
                call()
    refused = _refusals(caplog)
    assert len(refused) == 3, refused
    keep, non_video, stride = refused
    assert non_video.startswith("refused /segment (API): notes.mp4 is not a video")
    assert stride.startswith("refused /segment (API): Frame stride") and "got 0" in stride
    assert keep.startswith("refused /rerender (API): Tracks to keep")
    log = caplog.text
    assert SECRET not in log and "Traceback" not in log.split("run failed (error id")[0]
    # the unexpected error: logged once, with its id and traceback (no "refused" line besides)
    assert sum("run failed (error id" in r.getMessage() for r in caplog.records) == 1


def test_a_run_refused_because_the_queue_is_full_is_logged(tmp_path, tiny_sam_model, caplog):
    """Gradio answers "Queue is full" before any handler runs, and logged nothing."""
    pipe = UVOSAM(MovingBoxTracker(num_objects=1), BoxPromptSegmenter(tiny_sam_model))
    started, release, calls = threading.Event(), threading.Event(), []

    def get_pipeline(preset: str, sam: str) -> UVOSAM:
        calls.append(preset)
        if (
            len(calls) > 1
        ):  # a run (the first call loads the default pair at start): held until released
            started.set()
            assert release.wait(60)
        return pipe

    clip = write_clip(tmp_path / "clip.mp4", 2, 32, 32)
    settings = AppSettings(work_root=tmp_path / "work", concurrency_limit=1, max_queue=1)
    caplog.set_level(logging.INFO, logger="uvosam.app")
    with launched(get_pipeline, settings) as url:
        client = Client(url, verbose=False)
        running = client.submit(handle_file(str(clip)), api_name="/segment")
        assert started.wait(60)
        waiting = client.submit(handle_file(str(clip)), api_name="/segment")
        # submit returns at once: the queue is full only once the server holds it (else the next predict is
        # queued behind the held run and waits for the release that comes after it)
        assert wait_for(lambda: waiting.status().code == Status.IN_QUEUE, timeout=60)
        try:
            with pytest.raises(Exception, match="Queue is full"):
                client.predict(handle_file(str(clip)), api_name="/segment")
        finally:
            release.set()
        running.result(timeout=60), waiting.result(timeout=60)
    assert _refusals(caplog) == [
        "refused /segment (API): Queue is full. Max size is 1 and size is 1."
    ]


def test_a_refusal_to_the_page_is_logged_as_written_not_as_escaped_for_the_toast(caplog):
    """The page's toast gets the message escaped (``for_page``): the log gives the text, on one line."""
    import types

    import gradio as gr

    from uvosam_app import errors as app_errors

    page = types.SimpleNamespace(headers={"x-gradio-user": "app"})
    shown = app_errors.for_page(gr.Error("a<b>&amp;.mp4\nis empty"), page)
    assert shown.message == "a&lt;b&gt;&amp;amp;.mp4<br>is empty"
    caplog.set_level(logging.INFO, logger="uvosam.app")
    app_errors._log_refusal("/segment", shown.message, page)
    app_errors._log_refusal("/score", "x" * 400, None)
    assert _refusals(caplog) == [
        "refused /segment (page): a<b>&amp;.mp4 is empty",
        f"refused /score (API): {'x' * 299}…",
    ]
