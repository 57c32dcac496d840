"""One waiting run per session (``uvosam_app.queue_turns``): an API client that submits many runs at once cannot
fill the shared queue; others still queue behind it; the refusal says what to do, and is logged."""

from __future__ import annotations

import logging

import pytest

pytest.importorskip("gradio")
from app_helpers import held_pipeline, launched, queued, wait_for, write_clip
from gradio_client import Client, handle_file
from gradio_client.exceptions import ValidationError

from uvosam_app.queue_turns import waiting_runs_text
from uvosam_app.settings import AppSettings


def test_a_session_with_a_run_waiting_is_refused_the_next_and_others_still_queue(
    tmp_path, tiny_sam_model, caplog
):
    get_pipeline, started, release = held_pipeline(tiny_sam_model)
    clip = write_clip(tmp_path / "clip.mp4", 2, 32, 32)
    settings = AppSettings(work_root=tmp_path / "work", concurrency_limit=1)
    assert settings.waiting_per_session == 1  # the default
    caplog.set_level(logging.INFO, logger="uvosam.app")
    with launched(get_pipeline, settings) as url:
        greedy, other = Client(url, verbose=False), Client(url, verbose=False)
        try:
            running = greedy.submit(handle_file(str(clip)), api_name="/segment")
            assert started.wait(60)
            # its running run does not count (a Run just after Stop waits for the stopped one)
            waiting = greedy.submit(handle_file(str(clip)), api_name="/segment")
            assert wait_for(lambda: queued(waiting), timeout=60)
            with pytest.raises(ValidationError) as refused:
                greedy.predict(handle_file(str(clip)), api_name="/segment")
            # another session queues behind the greedy one's
            behind = other.submit(handle_file(str(clip)), api_name="/segment")
            assert wait_for(lambda: queued(behind), timeout=60)
        finally:
            release.set()
        results = [job.result(timeout=60) for job in (running, waiting, behind)]
        # once its waiting run has started, the session may queue the next
        again = greedy.predict(handle_file(str(clip)), api_name="/segment")
    assert f"- session: {waiting_runs_text(1)}" in str(
        refused.value
    )  # not "- video:": the video is fine
    assert "`uvosam segment`" in str(refused.value)
    # every accepted run ended with its own video and zip
    for result in (*results, again):
        assert result[0].startswith("done") and result[3] and result[4]
    refusals = [r.getMessage() for r in caplog.records if r.getMessage().startswith("refused ")]
    assert refusals == [
        f"refused /segment (API, {greedy.session_hash[:6]}): {waiting_runs_text(1)}"
    ]


def test_with_no_limit_a_session_may_queue_several_runs(tmp_path, tiny_sam_model):
    get_pipeline, started, release = held_pipeline(tiny_sam_model)
    clip = write_clip(tmp_path / "clip.mp4", 2, 32, 32)
    settings = AppSettings(work_root=tmp_path / "work", concurrency_limit=1, waiting_per_session=0)
    with launched(get_pipeline, settings) as url:
        client = Client(url, verbose=False)
        try:
            jobs = [client.submit(handle_file(str(clip)), api_name="/segment")]
            assert started.wait(60)
            jobs += [client.submit(handle_file(str(clip)), api_name="/segment") for _ in range(2)]
            assert wait_for(lambda: all(queued(job) for job in jobs[1:]), timeout=60)
        finally:
            release.set()
        assert all(job.result(timeout=60)[0].startswith("done") for job in jobs)


@pytest.mark.parametrize(("raw", "limit"), [("0", 0), ("3", 3), ("", 1)])
def test_the_limit_is_read_from_its_variable(raw, limit):
    assert AppSettings.from_env({"UVOSAM_WAITING_PER_SESSION": raw}).waiting_per_session == limit


def test_a_negative_limit_is_refused_naming_its_variable():
    with pytest.raises(
        ValueError, match=r"^UVOSAM_WAITING_PER_SESSION must be a positive int or 0; got '-1'"
    ):
        AppSettings.from_env({"UVOSAM_WAITING_PER_SESSION": "-1"})


def test_a_negative_limit_given_to_the_settings_is_refused():
    """Built directly (not from the environment), -1 meant "no limit" without a word."""
    with pytest.raises(
        ValueError, match=r"^UVOSAM_WAITING_PER_SESSION \(AppSettings.waiting_per_session\) must be"
    ):
        AppSettings(waiting_per_session=-1)
