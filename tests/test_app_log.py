"""The server log of the Gradio app: a start and an end line for each job (``uvosam_app.server_log``), one line for
each refusal a visitor meets (``uvosam_app.refusals.log_refusals``), each with its session's tag; its level."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import pytest

pytest.importorskip("gradio")
from app_helpers import client, held_pipeline, launched, queued, wait_for, write_clip
from doubles import MovingBoxTracker
from gradio_client import Client, handle_file

from uvosam.errors import MissingWeightsError
from uvosam.pipeline import UVOSAM
from uvosam.segmenter import BoxPromptSegmenter
from uvosam_app import server_log
from uvosam_app.server_log import one_line
from uvosam_app.settings import AppSettings

SECRET = "contents-of-the-visitors-file"


def _refusals(caplog) -> list[str]:
    """The refusals' lines, without their session tag."""
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("refused ")]
    return [re.sub(r"\((API|page), [A-Za-z0-9]{6}\)", r"(\1)", line) for line in lines]


def _job_lines(caplog, tag: str) -> list[str]:
    """The app's lines of session ``tag``, without it: ``start /segment (API): ...``."""
    lines = [r.getMessage() for r in caplog.records if r.name == "uvosam.app"]
    return [line.replace(f", {tag})", ")") for line in lines if f", {tag})" in line]


def test_each_job_is_a_start_and_an_end_line_tagged_with_its_session(
    server, clips, tracker, caplog
):
    """A host saw one line per finished video ("clip: 25 frames, 10 tracks, 0.7 s"), none for a run stopped or
    refused, and no line said which session a line was of. Now: a start line (input by name, models, settings) and
    an end line (done / refused / stopped, frames, time, fps), with the session's tag, and no other line of the
    refusal."""
    caplog.set_level(logging.INFO)
    done, refused, stopped = client(server), client(server), client(server)
    done.predict(handle_file(str(clips["a"])), stride=2, api_name="/segment")
    with pytest.raises(Exception, match="is not a video"):
        refused.predict(handle_file(str(clips["text"])), api_name="/segment")
    tracker.delay_s = 0.3  # 24 frames: about 7 s if it were not stopped
    try:
        job = stopped.submit(handle_file(str(clips["b"])), api_name="/segment")

        def frames_done() -> int:
            lines = [str(o[0]) for o in job.outputs()]
            return max(
                (int(m[1]) for m in map(re.compile(r"segmenting: frame (\d+)/").match, lines) if m),
                default=0,
            )

        assert wait_for(lambda: frames_done() >= 2, 30)
        assert job.cancel()
        tag = stopped.session_hash[:6]
        assert wait_for(lambda: len(_job_lines(caplog, tag)) == 2, 30), caplog.text
        # its worker ended (its folder went): no thread of it left inside torch when the tests end
        assert wait_for(lambda: not any((server[1] / stopped.session_hash).glob("run-*")), 30)
    finally:
        tracker.delay_s = 0.0
    settings = (
        "tracker=idol-ytvis19-r50 sam=vit_b stride={} max_frames=900 min_score=0.0 max_objects=10"
    )
    start, end = _job_lines(caplog, done.session_hash[:6])
    assert (
        start
        == f"start /segment (API): video=clip_a.mp4 {settings.format(2)} output_side=854 style=overlay"
    )
    assert re.fullmatch(
        r"done /segment \(API\): 8 frames, 2 tracks in [\d.]+ s \([\d.]+ fps\), [\d.]+ s in all",
        end,
    )
    start, end = _job_lines(caplog, refused.session_hash[:6])
    assert start.startswith("start /segment (API): video=notes.mp4 tracker=idol-ytvis19-r50")
    assert re.fullmatch(
        r"refused /segment \(API\): 0 frames, [\d.]+ s in all: notes.mp4 is not a video: .*", end
    )
    start, end = _job_lines(caplog, stopped.session_hash[:6])
    assert start.startswith(f"start /segment (API): video=clip_b.mp4 {settings.format(1)}")
    frames = re.fullmatch(r"stopped /segment \(API\): (\d+) frames, 2 tracks in .* s in all", end)
    assert frames and 2 <= int(frames[1]) < 24, end


def test_each_endpoint_is_logged_under_its_own_name(tmp_path):
    """The handlers' decorators name their job's endpoint (``server_log.RUN`` ...): app.py's names."""
    import app as app_module

    demo = app_module.build_demo(lambda preset, sam: None, settings=AppSettings(work_root=tmp_path))
    endpoints = {
        f.api_name: f.fn.job.endpoint for f in demo.fns.values() if f.api_visibility == "public"
    }
    assert endpoints == {name: f"/{name}" for name in ("segment", "rerender", "score", "load_url")}


def test_a_job_closed_before_its_end_is_stopped_and_a_failed_one_names_its_error_id(
    tmp_path, tiny_sam_model, caplog
):
    """Gradio closes a cancelled job's generator (asyncio's finaliser of unused generators): its end line says
    "stopped" with the frames done. A job that failed gives the id of the error's own line (its traceback)."""
    import types

    from app_helpers import stepped

    from uvosam_app.handlers import App

    def app(tracker: MovingBoxTracker) -> App:
        pipe = UVOSAM(tracker, BoxPromptSegmenter(tiny_sam_model))
        settings = AppSettings(work_root=tmp_path / "work", status_interval_s=0.05)
        return App(lambda preset, sam: pipe, settings)

    def run(app: App, session: str) -> object:
        request = types.SimpleNamespace(session_hash=session)
        return stepped(app.segment(str(clip), "idol-ytvis19-r50", "vit_b", 0.0, 10, 1, 900, 0, True, True,
                                   "overlay", None, False, request))  # fmt: skip

    clip = write_clip(tmp_path / "clip.mp4", 12, 64, 48)
    caplog.set_level(logging.INFO, logger="uvosam.app")
    one = list(run(app(MovingBoxTracker(num_objects=1)), "one-track"))
    assert one[-1][0].startswith("done: 12 frames, 1 track")
    closed = run(app(MovingBoxTracker(delay_s=0.05)), "closed-tab")
    assert any(re.match(r"segmenting: frame [3-9]/12", update[0]) for update in closed)
    closed.close()
    with pytest.raises(Exception, match=r"error id (\w+)") as failed:
        list(run(app(MovingBoxTracker(fail_at=3)), "failed-tab"))
    error_id = re.search(r"error id (\w+)", str(failed.value))[1]
    missing = MovingBoxTracker(
        fail_at=2, error=lambda: MissingWeightsError("sam_vit_b_01ec64.pth: not found")
    )
    with pytest.raises(Exception, match="A model cannot run here"):
        list(run(app(missing), "no-weights"))
    lines = [r.getMessage() for r in caplog.records]
    # named by its request, as the end lines are ("run failed (error id ...)" named none)
    assert f"/segment (API, failed) failed (error id {error_id})" in lines
    ends = [
        line
        for line in lines
        if not line.startswith(("start ", "/segment (API, failed) failed", "a model cannot"))
    ]
    assert len(ends) == 4, lines
    # one of each: "1 track", not "1 tracks" (as the status line counts)
    assert re.fullmatch(
        r"done /segment \(API, onetra\): 12 frames, 1 track in .* s in all", ends[0]
    )
    assert re.fullmatch(
        r"stopped /segment \(API, closed\): [3-9] frames, 2 tracks in .* s in all", ends[1]
    )
    assert re.fullmatch(
        rf"failed /segment \(API, failed\): \d frames, .* s in all: error id {error_id}", ends[2]
    )
    # the server's weights, not the visitor's fault: "failed" (it said "refused")
    assert re.fullmatch(
        r"failed /segment \(API, noweig\): \d frames?, .* s in all: a model cannot run \(weights or package "
        r"missing or damaged\)",
        ends[3],
    )


@pytest.mark.parametrize("level", ["DEBUG", "INFO", "WARNING"])
def test_the_log_level_is_the_hosts_and_the_libraries_request_lines_are_quiet(
    level, capsys, monkeypatch
):
    """UVOSAM_LOG_LEVEL: the lines of that level and above; httpx's INFO line of each request Gradio makes at start,
    and the library's line of a finished video (the job's end line says it again), only at DEBUG."""
    root = logging.getLogger()
    loggers = [root, *map(logging.getLogger, server_log.QUIETED)]
    levels = [one.level for one in loggers]
    monkeypatch.setattr(root, "handlers", [])  # as in a fresh process: basicConfig sets it up
    try:
        server_log.set_up(level)
        app = logging.getLogger("uvosam.app")
        app.debug("a debug line")
        app.info("an info line")
        app.warning("a warning")
        logging.getLogger("httpx").info(
            'HTTP Request: HEAD http://127.0.0.1:7860/ "HTTP/1.1 200 OK"'
        )
        logging.getLogger("uvosam.job").info("clip: 25 frames, 10 tracks, 0.7 s (36.56 fps)")
    finally:
        for one, was in zip(loggers, levels, strict=True):
            one.setLevel(was)
    shown = [line.split(" ", 2)[2] for line in capsys.readouterr().err.splitlines()]
    expected = {
        "DEBUG": ["DEBUG uvosam.app: a debug line", "INFO uvosam.app: an info line", "WARNING uvosam.app: a warning",
                  'INFO httpx: HTTP Request: HEAD http://127.0.0.1:7860/ "HTTP/1.1 200 OK"',
                  "INFO uvosam.job: clip: 25 frames, 10 tracks, 0.7 s (36.56 fps)"],
        "INFO": ["INFO uvosam.app: an info line", "WARNING uvosam.app: a warning"],
        "WARNING": ["WARNING uvosam.app: a warning"],
    }  # fmt: skip
    assert shown == expected[level]


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
    # the runs' refusals end their job (its end line); the track id is refused before the handler
    assert re.match(
        r"refused /segment \(API\): 0 frames, [\d.]+ s in all: notes.mp4 is not a video", non_video
    )
    assert re.match(r"refused /segment \(API\): 0 frames, [\d.]+ s in all: Frame stride", stride)
    assert "got 0" in stride
    assert keep.startswith("refused /rerender (API): Tracks to keep")
    log = caplog.text
    assert SECRET not in log and "Traceback" not in log.split(") failed (error id")[0]
    # the unexpected error: logged once, with its id and traceback (no "refused" line besides)
    assert sum(") failed (error id" in r.getMessage() for r in caplog.records) == 1


def test_a_run_refused_because_the_queue_is_full_is_logged(tmp_path, tiny_sam_model, caplog):
    """Gradio answers "Queue is full" before any handler runs, and logged nothing."""
    get_pipeline, started, release = held_pipeline(tiny_sam_model)
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
        assert wait_for(lambda: queued(waiting), timeout=60)
        # another session (one session may have only one run waiting anyway: ``queue_turns``)
        other = Client(url, verbose=False)
        try:
            with pytest.raises(Exception, match="Queue is full"):
                other.predict(handle_file(str(clip)), api_name="/segment")
        finally:
            release.set()
        running.result(timeout=60), waiting.result(timeout=60)
    # tagged with the client's session (Gradio's request object of a queued call has no session hash: the line
    # had a fresh id's tag)
    assert [r.getMessage() for r in caplog.records if r.getMessage().startswith("refused ")] == [
        f"refused /segment (API, {other.session_hash[:6]}): Queue is full. Max size is 1 and size is 1."
    ]


def test_a_refusal_to_the_page_is_logged_as_written_not_as_escaped_for_the_toast(caplog):
    """The page's toast gets the message escaped (``for_page``): the log gives the text, on one line."""
    import types

    import gradio as gr

    from uvosam_app import errors as app_errors
    from uvosam_app import refusals as app_refusals

    page = types.SimpleNamespace(headers={"x-gradio-user": "app"})
    shown = app_errors.for_page(gr.Error("a<b>&amp;.mp4\nis empty"), page)
    assert shown.message == "a&lt;b&gt;&amp;amp;.mp4<br>is empty"
    caplog.set_level(logging.INFO, logger="uvosam.app")
    app_refusals._log_refusal("/segment", shown.message, page)
    app_refusals._log_refusal("/score", "x" * 400, None)
    assert _refusals(caplog) == [
        "refused /segment (page): a<b>&amp;.mp4 is empty",
        f"refused /score (API): {'x' * 299}…",
    ]


def test_the_log_level_setting_takes_any_case_in_python_too():
    """``UVOSAM_LOG_LEVEL=info`` was taken, ``AppSettings(log_level="info")`` refused (its docstring: any case)."""
    assert AppSettings(log_level=" info").log_level == "INFO"
    with pytest.raises(
        ValueError, match="must be one of DEBUG, INFO, WARNING, ERROR; got 'verbose'"
    ):
        AppSettings(log_level="verbose")


def test_a_call_with_too_few_values_is_told_how_many_the_endpoint_takes(
    server, clips, caplog, capfd
):
    """A plain HTTP client that sent /rerender's former 8 values (or /segment 1) got {"error": null}, and the server
    logged Gradio's "didn't receive enough input values" traceback per call: now the client is told what the
    endpoint takes and what it sent, and the log has one refusal line. Nothing is padded."""
    import httpx

    caplog.set_level(logging.INFO, logger="uvosam.app")
    c = client(server)
    c.predict(handle_file(str(clips["a"])), stride=4, api_name="/segment")
    url = server[0].rstrip("/")
    info = c.view_api(print_info=False, return_format="dict")["named_endpoints"]
    old = [[1, 2], True, True, "854", "matte", "", False, 0]  # /rerender before its split
    for endpoint, data in (("/rerender", old), ("/segment", [None])):
        takes = len(info[endpoint]["parameters"])
        body = {"session_hash": c.session_hash, "data": data}
        event = httpx.post(f"{url}/gradio_api/call{endpoint}", json=body, timeout=60).json()[
            "event_id"
        ]
        answer = httpx.get(f"{url}/gradio_api/call{endpoint}/{event}", timeout=60).text
        said = (
            f"{endpoint} takes {takes} values, those its API page lists, in order (GET /gradio_api/info); this "
            f"call sent {len(data)}."
        )
        assert "event: error" in answer and said in answer, answer
        assert f"refused {endpoint} (API): {said}" in _refusals(caplog)[-1]
    assert len(info["/rerender"]["parameters"]) == 9  # the 8 and the split
    assert "didn't receive enough input values" not in capfd.readouterr().err


def test_a_file_value_gradio_refuses_is_told_how_to_send_a_file_not_our_side(server, caplog, capfd):
    """A plain HTTP client that sent a path it had not uploaded (/etc/passwd, a relative path) or a file without its
    ``meta`` got "Something went wrong on our side (error id ...)", and the log an ERROR with Gradio's traceback:
    now the value as sent, how to send a file, and one refusal line; the server path it resolved to is not told."""
    import httpx

    caplog.set_level(logging.INFO, logger="uvosam.app")
    url = server[0].rstrip("/")
    settings = [
        "idol-ytvis19-r50",
        "vit_b",
        0,
        10,
        1,
        900,
        "854",
        True,
        True,
        "overlay",
        None,
        False,
    ]
    meta = {"_type": "gradio.FileData"}
    sent = {
        "/etc/passwd": {"path": "/etc/passwd", "meta": meta},
        "relative/clip.mp4": {"path": "relative/clip.mp4", "meta": meta},
        "no meta": {"path": "/etc/passwd"},
    }
    told = {
        "/etc/passwd": '/segment: the file "/etc/passwd" was not uploaded to this server: upload it first (POST',
        "relative/clip.mp4": '/segment: the file "relative/clip.mp4" was not uploaded to this server: upload',
        "no meta": '/segment got {"path": "/etc/passwd"} where it takes a file: upload it first (POST it to',
    }
    for name, value in sent.items():
        body = {"data": [value, *settings]}
        event = httpx.post(f"{url}/gradio_api/call/segment", json=body, timeout=60).json()[
            "event_id"
        ]
        answer = httpx.get(f"{url}/gradio_api/call/segment/{event}", timeout=60).text
        data = json.loads(answer.split("data: ")[-1])
        assert data["error"].startswith(told[name]), answer
        assert data["error"].endswith('gradio_client\'s handle_file("clip.mp4") does both.')
        assert _refusals(caplog)[-1] == f"refused /segment (API): {one_line(data['error'])}"
    # the page's toast renders HTML: "<that path>" is escaped for it (``for_page``), and logged as written
    page = {"x-gradio-user": "app"}
    body = {"data": [sent["/etc/passwd"], *settings]}
    event = httpx.post(f"{url}/gradio_api/call/segment", json=body, headers=page, timeout=60).json()
    answer = httpx.get(f"{url}/gradio_api/call/segment/{event['event_id']}", timeout=60).text
    assert '{"path": &lt;that path&gt;, ' in json.loads(answer.split("data: ")[-1])["error"]
    assert '{"path": <that path>, ' in _refusals(caplog)[-1]
    assert str(Path.cwd()) not in str(caplog.text)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert "InvalidPathError" not in capfd.readouterr().err


def test_a_full_disk_tells_the_visitor_so_and_the_host_which_folder(
    tmp_path, tiny_sam_model, caplog, monkeypatch
):
    """A full work folder (or Gradio's temp folder) answered "Something went wrong on our side (error id ...)", and
    a download that could not be saved was an INFO refusal ("network error with <host>")."""
    import errno
    import types

    from app_helpers import stepped

    from uvosam.errors import RemoteVideoError
    from uvosam_app.errors import DISK_FULL, to_gr_error
    from uvosam_app.handlers import App

    # the app's work folder is its own (main makes one in UVOSAM_WORK_DIR), named as it is
    monkeypatch.setenv("UVOSAM_WORK_DIR", str(tmp_path / "elsewhere"))
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "uploads"))
    full = MovingBoxTracker(
        fail_at=2, error=lambda: OSError(errno.ENOSPC, "No space left on device")
    )
    pipe = UVOSAM(full, BoxPromptSegmenter(tiny_sam_model))
    app = App(lambda preset, sam: pipe, AppSettings(work_root=tmp_path / "work"))
    clip = write_clip(tmp_path / "clip.mp4", 6, 64, 48)
    caplog.set_level(logging.INFO, logger="uvosam.app")
    request = types.SimpleNamespace(session_hash="full-disk")
    with pytest.raises(Exception) as failed:
        list(stepped(app.segment(str(clip), "idol-ytvis19-r50", "vit_b", 0.0, 10, 1, 900, 0, True, True,
                                 "overlay", None, False, request)))  # fmt: skip
    assert failed.value.message == DISK_FULL and "try again later" in DISK_FULL
    problems = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    # the run's folder (``run_job`` names it), in the session's, in the work folder
    assert len(problems) == 1 and re.fullmatch(
        rf"request stopped: {re.escape(str(tmp_path / 'work'))}/\S+ is out of disk space \(\[Errno 28\] No space "
        r"left on device: '.+'\)",
        problems[0],
    ), problems
    ends = [r.getMessage() for r in caplog.records if r.getMessage().startswith("failed /segment")]
    assert len(ends) == 1 and ends[0].endswith(": the server is out of disk space"), ends
    caplog.clear()
    assert (
        to_gr_error(OSError(errno.EDQUOT, "Disk quota exceeded")).message == DISK_FULL
    )  # no file named
    # a used-up quota is said so (it was "out of disk space"), as the library says it (write_problem)
    folders = (
        f"the work folder ({tmp_path / 'work'}) or Gradio's temp folder ({tmp_path / 'uploads'}, "
        "GRADIO_TEMP_DIR)"
    )
    quota = f"the disk quota of {folders} is used up; free some space there ([Errno 122] Disk quota exceeded)"
    assert [r.getMessage() for r in caplog.records] == [f"request stopped: {quota}"]
    caplog.clear()
    assert to_gr_error(OSError(errno.ENOSPC, "No space left on device")).message == DISK_FULL
    full = f"{folders} is out of disk space; free some space there ([Errno 28] No space left on device)"
    assert [r.getMessage() for r in caplog.records] == [f"request stopped: {full}"]
    caplog.clear()
    cause = OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "work" / "x.part"))
    try:
        raise RemoteVideoError(
            "Could not download http://h/clip.mp4: the file cannot be saved"
        ) from cause
    except RemoteVideoError as err:
        assert to_gr_error(err).message == DISK_FULL
    assert [r.getMessage() for r in caplog.records] == [
        (
            f"request stopped: {tmp_path / 'work'} is out of disk space ([Errno 28] No space left on device: "
            f"'{tmp_path / 'work' / 'x.part'}')"
        )
    ]
