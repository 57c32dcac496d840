"""Stop and a session's clean-up: a cancelled run's folder and ffmpeg go, Stop's status line, and the States'
expiry (``App.forget``) removing the session's folders. Tiny models on CPU."""

from __future__ import annotations

import threading

import pytest

pytest.importorskip("gradio")
from app_helpers import client, finished_run, processes_mentioning, slow_run, wait_for
from doubles import MovingBoxTracker
from gradio_client import handle_file

from uvosam.pipeline import UVOSAM
from uvosam.segmenter import BoxPromptSegmenter
from uvosam_app.settings import AppSettings


def test_cancel_stops_the_run_cleans_up_and_the_next_run_works(server, clips, tracker):
    _url, work = server
    c = client(server)
    with slow_run(c, work, clips["b"], tracker) as (job, run_dir):
        assert job.cancel()
        # the worker stopped and removed the partial run
        assert wait_for(lambda: not run_dir.exists())
        assert processes_mentioning(str(run_dir)) == []  # no ffmpeg left behind
    status = c.predict(handle_file(str(clips["a"])), api_name="/segment")[0]
    assert status.startswith("done: 16 frames")


def test_stop_after_a_finished_job_keeps_its_status_line(tmp_path):
    """Stop pressed once a run is done (or failed) stopped nothing: its "done: 48 frames, 2 tracks..." line stays
    beside its results (it turned into "stopped: press Run to start again", as if they were cut short). A job
    starting, running or waiting in the queue is stopped, and the status line says so."""
    import app as app_module
    from uvosam_app import handlers as app_handlers

    app = app_handlers.App(lambda preset, sam: None, AppSettings(work_root=tmp_path))
    stopped = "stopped: press Run to start again"
    for shown in ("done: 48 frames, 2 tracks in 7.8 s (6.2 fps)", "failed: clip.mp4 is empty"):
        assert app.stopped(shown) == {"__type__": "update"}, shown  # gr.skip(): unchanged
    for shown in (
        "",
        None,
        "starting…",
        "segmenting: frame 3/48 · 4.1 fps · ETA 9 s",
        "re-rendering: frame 1/9",
    ):
        assert app.stopped(shown) == stopped, shown

    demo = app_module.build_demo(lambda preset, sam: None, settings=AppSettings(work_root=tmp_path))
    config = demo.get_config_file()
    status = next(c["id"] for c in config["components"] if c["props"].get("elem_id") == "status")
    stop_button = next(d["targets"] for d in config["dependencies"] if d["cancels"])
    stop = [d for d in config["dependencies"] if d["targets"] == stop_button and d["outputs"]]
    # Stop reads the line it replaces
    assert [(d["inputs"], d["outputs"]) for d in stop] == [([status], [status])]


def test_stop_pressed_when_nothing_runs_leaves_the_status_line(tmp_path):
    """Stop pressed on a fresh page (no line yet) wrote "stopped: press Run to start again", as if a run had been cut
    short; so did a second Stop. Stop's click leaves any line that is no job's under way; over a job's it says
    "stopped" (a run still waiting in Gradio's queue, no line of its own yet, says so from its failure listener)."""
    import app as app_module

    demo = app_module.build_demo(lambda preset, sam: None, settings=AppSettings(work_root=tmp_path))
    config = demo.get_config_file()
    stop_button = next(d["targets"] for d in config["dependencies"] if d["cancels"])
    stop = next(d for d in config["dependencies"] if d["targets"] == stop_button and d["outputs"])
    pressed = demo.fns[stop["id"]].fn
    stopped = "stopped: press Run to start again"
    for shown in (
        "",
        None,
        stopped,
        "done: 48 frames, 2 tracks in 7.8 s (6.2 fps)",
        "failed: clip.mp4 is empty",
    ):
        assert pressed(shown) == {"__type__": "update"}, shown  # gr.skip(): unchanged
    waiting = "segmenting: waiting for a free worker (other jobs, or a stopped one ending its frame, come first)… 4 s"
    for shown in (
        "starting…",
        "segmenting: frame 3/48 · 4.1 fps · ETA 9 s",
        "re-rendering: frame 1/9",
        waiting,
    ):
        assert pressed(shown) == stopped, shown


def test_forget_removes_the_whole_session_folder_but_folders_in_use(tmp_path, tiny_sam_model):
    """API clients never close a tab (no unload): the State's expiry is their only clean-up, and it must
    leave nothing behind (old runs, re-renders, the session folder itself), except a folder a request still
    uses."""
    import types

    from uvosam_app import handlers as app_handlers

    pipe = UVOSAM(MovingBoxTracker(num_objects=2), BoxPromptSegmenter(tiny_sam_model))
    app = app_handlers.App(
        lambda preset, sam: pipe, AppSettings(work_root=tmp_path, status_interval_s=0.1)
    )
    request = types.SimpleNamespace(session_hash="api")
    state = finished_run(app, request, tmp_path)
    busy = app.work.new_dir("api", "rerender", keep=state.run_dir)
    app.forget(state).join(10)
    # the run went, the busy one stays
    assert [p.name for p in (tmp_path / "api").iterdir()] == [busy.name]
    app.work.release(busy)
    app.forget(finished_run(app, request, tmp_path)).join(10)
    assert not (tmp_path / "api").exists()


def test_each_state_expiry_removes_its_own_folders_in_a_thread(tmp_path, monkeypatch):
    """The last run and the linked video are two States with their own clocks: a Load made after the last run
    outlives it (and the other way round), so the expiry of one leaves the other's folder. Gradio calls the
    clean-up on its event loop, which every stream shares: the deleting happens in a thread."""
    from uvosam_app import handlers as app_handlers
    from uvosam_app import work as app_work

    app = app_handlers.App(lambda preset, sam: None, AppSettings(work_root=tmp_path))
    run = app.work.new_dir("tab", "run")
    rerender = app.work.new_dir("tab", "rerender", keep=run)
    link = app.work.new_dir("tab", "link", keep=rerender)
    linked = link / "clip.avi"
    linked.write_bytes(b"video")
    for folder in (run, rerender, link):
        app.work.release(folder)
    state = app_handlers.SessionRun(run, run / "cache")
    real_rmtree, deleting = app_work.shutil.rmtree, threading.Event()

    def slow_rmtree(path, *args, **kwargs):
        assert deleting.wait(10)
        real_rmtree(path, *args, **kwargs)

    monkeypatch.setattr(app_work.shutil, "rmtree", slow_rmtree)
    forgetting = app.forget(str(linked))  # returns while the deleting waits
    assert forgetting.is_alive() and link.is_dir()
    deleting.set()
    forgetting.join(10)
    assert not link.exists() and run.is_dir() and rerender.is_dir()
    app.forget(state).join(10)
    assert not (tmp_path / "tab").exists()
    assert app.forget(None) is None
