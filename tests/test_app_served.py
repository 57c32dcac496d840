"""What Gradio keeps serving of the app's results goes as the app says: the copies of a run's files in Gradio's file
cache with the app's sweep and at shutdown (``uvosam_app.served.ServedFiles``; ``python app.py`` stopped by
SIGTERM with a page open), shown again kept longer, Gradio's own sweep never broken by them; the streamed video's
chunks of an API client without a heartbeat with the session's last run (``App.forget``). Tiny models on CPU."""

from __future__ import annotations

import asyncio
import functools
import json
import os
import signal
import threading
import zipfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

pytest.importorskip("gradio")
import gradio as gr
import httpx
from app_helpers import (
    app_process,
    app_process_env,
    free_port,
    launched,
    wait_for,
    wait_for_config,
    write_clip,
)
from doubles import MovingBoxTracker
from gradio.route_utils import delete_files_created_by_app
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError

import app as app_module
from uvosam.pipeline import UVOSAM
from uvosam.segmenter import BoxPromptSegmenter
from uvosam_app import served as served_module
from uvosam_app.layout import EXAMPLES
from uvosam_app.served import ServedFiles, drop_ended_streams
from uvosam_app.settings import AppSettings


@pytest.fixture(scope="module")
def pipeline(tiny_sam_model):
    pipe = UVOSAM(MovingBoxTracker(num_objects=2), BoxPromptSegmenter(tiny_sam_model))
    return lambda preset, sam: pipe


def _served_paths(job) -> set[Path]:
    """The server's paths of every file that the job's updates showed (``download_files=False``: as served)."""
    paths = set()
    for update in job.outputs():
        for value in update:
            if isinstance(value, dict) and value.get("path") and not value.get("is_stream"):
                paths.add(Path(value["path"]))
    return paths


def _left(paths: set[Path]) -> list[str]:
    return sorted(p.name for p in paths if p.exists())


def test_a_runs_files_in_gradios_cache_go_with_its_sweep_and_at_shutdown(
    monkeypatch, tmp_path, pipeline
):
    """Every run's mp4 and zip stayed in Gradio's cache, after the hourly sweep and after the server stopped (37 zips
    of 37 runs), and so did the previews shown after a status line without a new frame: Run and Re-render answer "no
    change" (``gr.skip()``) for them between frames, and Gradio then moved their files into the cache through a copy
    of the component that no sweep reads. Two different clips: a file of the same bytes is one copy, touched again
    when shown again."""
    monkeypatch.setattr(app_module, "FILE_SWEEP_EVERY_S", 1)
    monkeypatch.setattr(app_module, "FILE_MAX_AGE_S", 5)
    first = write_clip(tmp_path / "first.mp4", 24, 96, 64, seed=1)
    second = write_clip(tmp_path / "second.mp4", 24, 96, 64, seed=2)
    # status lines between frames (a "no change" of the preview), several chunks
    settings = AppSettings(work_root=tmp_path / "work", status_interval_s=0.01, chunk_seconds=0.5)
    with launched(pipeline, settings) as url:
        client = Client(url, verbose=False, download_files=False)
        run = client.submit(handle_file(str(first)), api_name="/segment")
        assert run.result()[0].startswith("done: 24 frames")
        redo = client.submit([1, 2], style="matte", api_name="/rerender")
        assert redo.result()[0].startswith("done")
        old = _served_paths(run) | _served_paths(redo)
        names = {p.name for p in old}
        assert {
            "first_uvosam.zip",
            "first_overlay.mp4",
            "first_keep-1-2_matte.mp4",
            "image.jpeg",
        } <= names
        assert wait_for(lambda: not _left(old), timeout=20), _left(old)
        run = client.submit(handle_file(str(second)), api_name="/segment")
        assert run.result()[0].startswith("done: 24 frames")
        new = _served_paths(run)
        results = {p for p in new if p.suffix in (".mp4", ".zip")}
        # younger than the sweep's age: kept
        assert len(results) == 2 and all(p.is_file() for p in results)
    assert not _left(new)  # the server stopped: Gradio emptied its cache of them


def _page_preview() -> tuple[gr.Blocks, gr.Image]:
    """A page with Gradio's sweep, and its *Latest frame* as the app's."""
    with gr.Blocks(delete_cache=(600, 3600)) as demo:
        preview = gr.Image(format="jpeg", interactive=False)
    return demo, preview


def test_previews_shown_from_threads_never_break_gradios_sweep_nor_the_apps(tmp_path, request):
    """Gradio's sweep iterates each component's ``temp_files`` in a worker thread; the previews were added to *Latest
    frame*'s set from other worker threads (twice a second a running session), so one added during the sweep's loop
    raised "Set changed size during iteration", and Gradio's scheduled sweep ended for good (no upload was deleted
    again). ``frame_now`` adds to no set: previews from four threads while both sweeps run, neither raises, and the
    app's keeps deleting. (Gradio still adds what an output shows to the page's component on the event loop, a
    session's first time: its sweep, run by the app, survives that: the next test.)"""
    demo, preview = _page_preview()
    gradio_cache = tmp_path / "gradio_files"
    gradio_cache.mkdir()
    for i in range(3000):  # an hour of previews
        preview.temp_files.add(str(gradio_cache / f"{i}.jpeg"))
    before = set(preview.temp_files)
    served = ServedFiles(demo.GRADIO_CACHE, preview=preview, max_age_s=0, sweep_every_s=0.001)
    request.addfinalizer(served.close)  # a failed assert leaves no sweeper running every ms
    stop, shown, failed = threading.Event(), [], []

    def previews(seed: int) -> None:
        rng = np.random.default_rng(seed)
        try:
            while not stop.is_set():
                shown.append(served.frame_now(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)))
        except Exception as err:  # reported below, not lost in the thread
            failed.append(err)
            raise

    threads = [threading.Thread(target=previews, args=(seed,)) for seed in range(4)]
    for thread in threads:
        thread.start()
    try:
        for _ in range(100):
            delete_files_created_by_app(demo, age=3600)
        assert wait_for(lambda: len(shown) > 200, timeout=30)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert not failed
    assert preview.temp_files == before  # Gradio's set: untouched from other threads
    assert wait_for(lambda: not any(Path(p).exists() for p in shown), timeout=10)
    last = Path(served.frame_now(np.ones((8, 8, 3), np.uint8)))
    assert wait_for(lambda: not last.exists(), timeout=10)  # still sweeping


def test_gradios_sweep_runs_in_the_apps_and_outlives_its_errors(tmp_path, caplog, request):
    """Gradio's own sweep of its cache (uploads) is run by the app's thread: one that fails ("Set changed size
    during iteration": the event loop added a file to the set it was going through) is logged and the next one
    runs; Gradio's schedule ended for good on it. At close, Gradio's files all go, as Gradio's shutdown did."""
    demo, preview = _page_preview()
    upload, kept = tmp_path / "upload.mp4", tmp_path / "later.mp4"
    upload.write_bytes(b"x")
    preview.temp_files.add(str(upload))
    calls = []

    def gradio_sweep(age: float | None) -> None:
        calls.append(age)
        if len(calls) == 1:
            raise RuntimeError("Set changed size during iteration")
        delete_files_created_by_app(demo, age)

    served = ServedFiles(
        demo.GRADIO_CACHE,
        preview=preview,
        max_age_s=0,
        sweep_every_s=0.01,
        gradio_sweep=gradio_sweep,
    )
    request.addfinalizer(served.close)
    assert wait_for(
        lambda: not upload.exists(), timeout=10
    )  # before any file was shown: started at once
    assert "the sweep of Gradio's cache failed" in caplog.text
    served.sweep_every_s = 3600  # the next sweep waits out the first: only close() runs it now
    kept.write_bytes(b"y")
    preview.temp_files.add(str(kept))
    served.close()
    assert calls[-1] is None and not kept.exists()


def test_empty_folders_go_once_unchanged_and_a_fresh_one_stays_even_at_close(tmp_path):
    """Gradio's sweep deletes an upload (a link's download) but not its ``<sha>/`` (``link-*``) folder: 38 empty
    folders after a soak of 33 API sessions, and after the server stopped. An empty folder unchanged ``max_age_s``
    goes (a younger one may be an upload's, made just before its file moves in); at close too, a folder changed
    just now stays (the cache may be another server's too: /tmp/gradio), but one the close's own sweeps emptied;
    a folder holding a file, a link to a folder, and what it links to stay. No thread: the ages are set."""
    cache = tmp_path / "cache"
    old, young, full, outside = cache / "link-x", cache / "c3d4", cache / "e5f6", tmp_path / "out"
    for folder in (old, young, full, outside):
        folder.mkdir(parents=True)
    (full / "kept.zip").write_bytes(b"zip")
    for folder in (old, full, outside):
        os.utime(folder, (0, 0))
    (cache / "link").symlink_to(outside)
    served = ServedFiles(cache)  # no Gradio sweep, nothing shown: no thread
    assert served.drop_empty_folders(3600) == 1 and not old.exists()
    assert served.drop_empty_folders(None) == 0  # at close: still too young (it was removed before)
    assert young.is_dir() and (full / "kept.zip").is_file()
    assert (cache / "link").is_symlink() and outside.is_dir()
    assert served.drop_empty_folders(None, emptied={"c3d4"}) == 1 and not young.exists()
    (full / "kept.zip").unlink()  # emptied just now
    assert served.drop_empty_folders(2) == 0 and full.is_dir()


def test_at_close_the_folders_its_sweeps_empty_go_and_a_fresh_empty_one_stays(tmp_path):
    """The close's own sweep deletes the uploads: their folders go with them, while another server's folder, made
    just now for its upload, stays (all empty folders went before)."""
    cache = tmp_path / "cache"
    upload, others = cache / "a1b2" / "clip.mp4", cache / "c3d4"
    upload.parent.mkdir(parents=True)
    others.mkdir()
    upload.write_bytes(b"x")
    swept = []

    def gradio_sweep(age):
        swept.append(age)
        upload.unlink()

    served = ServedFiles(cache, gradio_sweep=gradio_sweep, sweep_every_s=3600)
    served.close()
    assert swept == [None] and not upload.parent.exists() and others.is_dir()


def test_the_sweeps_thread_removes_the_folders_gradios_sweep_empties(
    tmp_path, request, monkeypatch
):
    """The wiring: Gradio's sweep, over ``max_age_s``, then the emptied folder with a later sweep."""
    demo, preview = _page_preview()
    cache = Path(demo.GRADIO_CACHE) / "served-folders"
    upload = cache / "a1b2" / "clip.mp4"
    upload.parent.mkdir(parents=True)
    upload.write_bytes(b"x")
    preview.temp_files.add(str(upload))
    monkeypatch.setattr(
        ServedFiles, "fresh_s", 0.2
    )  # the folder of a file just made: kept 0.2 s, not 10
    served = ServedFiles(
        cache,
        preview=preview,
        max_age_s=0.2,
        sweep_every_s=0.05,
        gradio_sweep=functools.partial(delete_files_created_by_app, demo),
    )
    request.addfinalizer(served.close)
    assert wait_for(lambda: not upload.parent.exists(), timeout=10)


def test_a_file_shown_after_close_is_deleted(tmp_path, monkeypatch):
    """A results copy still under way when the server stopped (a big zip, in its thread) was noted after
    ``close()`` and never deleted. Each is written into Gradio's cache as usual (its path there is returned), then
    deleted with its hash folder; the file it copies is left."""
    demo, preview = _page_preview()
    served = ServedFiles(demo.GRADIO_CACHE, preview=preview)
    deleted, delete = {}, served._delete

    def deleting(path: Path) -> None:
        deleted[str(path)] = path.read_bytes() if path.is_file() else None
        delete(path)

    monkeypatch.setattr(served, "_delete", deleting)
    served.close()
    result = tmp_path / "clip_uvosam.zip"
    result.write_bytes(b"zip" * 100)
    frame = Path(served.frame_now(np.zeros((8, 8, 3), np.uint8)))
    copy = Path(served.file_now(str(result)))
    cache = Path(demo.GRADIO_CACHE).resolve()
    for shown in (frame, copy):
        assert shown.resolve().parent.parent == cache, shown
        assert not shown.exists() and not shown.parent.exists()
    assert deleted[str(frame)].startswith(b"\xff\xd8\xff")  # a JPEG was written, then deleted
    assert deleted[str(copy)] == b"zip" * 100 and copy.name == result.name
    assert result.read_bytes() == b"zip" * 100


def test_a_file_shown_again_is_kept_while_one_shown_once_goes(monkeypatch, tmp_path):
    """A file's age is from when it was last shown: a result or a frame shown again (the same bytes: one copy in the
    cache) stays its full time, and its copy is touched (Gradio 6.27-6.30 did not, and aged it from its first
    copy); one not shown since goes, with its folder. ``close()`` deletes all."""
    now = [1000.0]
    monkeypatch.setattr(served_module, "time", SimpleNamespace(monotonic=lambda: now[0]))
    demo, preview = _page_preview()
    served = ServedFiles(demo.GRADIO_CACHE, preview=preview, max_age_s=60, sweep_every_s=3600)
    mp4, zip_path = tmp_path / "clip_overlay.mp4", tmp_path / "clip_uvosam.zip"
    mp4.write_bytes(b"mp4" * 100)
    zip_path.write_bytes(b"zip" * 100)
    rerendered = tmp_path / "rerendered" / zip_path.name
    rerendered.parent.mkdir()
    rerendered.write_bytes(b"zip2" * 100)
    kept, gone = np.zeros((8, 8, 3), np.uint8), np.full((8, 8, 3), 200, np.uint8)
    mp4_copy, zip_copy = map(Path, asyncio.run(served.results(mp4, zip_path)))
    kept_frame, gone_frame = Path(served.frame_now(kept)), Path(served.frame_now(gone))
    assert mp4_copy.parent.parent == Path(demo.GRADIO_CACHE) and kept_frame.name == "image.jpeg"
    os.utime(mp4_copy, (0, 0))
    now[0] += 50
    again, new_zip = asyncio.run(served.results(mp4, rerendered))
    assert again == str(mp4_copy)  # shown again
    assert served.frame_now(kept) == str(kept_frame)
    assert mp4_copy.stat().st_mtime > 1e9  # touched
    now[0] += 20  # 70 s after the first show, 20 s after the second
    assert served.sweep(60) == 2
    assert mp4_copy.is_file() and kept_frame.is_file() and Path(new_zip).is_file()
    assert not zip_copy.exists() and not zip_copy.parent.exists()
    assert not gone_frame.exists() and not gone_frame.parent.exists()
    served.close()
    assert not any(Path(p).exists() for p in (mp4_copy, kept_frame, new_zip, mp4_copy.parent))


def test_a_failed_sweep_is_logged_and_the_next_one_runs(monkeypatch, tmp_path, caplog):
    """The app's sweep never ends on an error (Gradio's did, for good): logged, and the next one runs."""
    demo, preview = _page_preview()
    served = ServedFiles(demo.GRADIO_CACHE, preview=preview, max_age_s=0, sweep_every_s=0.01)
    sweeps = []
    real_sweep = served.sweep

    def sweep(max_age_s: float | None) -> int:
        sweeps.append(max_age_s)
        if len(sweeps) == 1:
            raise OSError("disk gone")
        return real_sweep(max_age_s)

    monkeypatch.setattr(served, "sweep", sweep)
    frame = Path(served.frame_now(np.zeros((8, 8, 3), np.uint8)))
    assert wait_for(lambda: not frame.exists(), timeout=10)
    assert len(sweeps) >= 2 and "the sweep of the served files failed" in caplog.text
    served.close()


def _rest_segment(api: str, http: httpx.Client, clip: Path, defaults: list) -> list:
    """``/segment`` over Gradio's REST API (no heartbeat: a session of its own), the clip uploaded first; its
    outputs."""
    uploaded = http.post(f"{api}/upload", files={"files": (clip.name, clip.read_bytes())}).json()
    video = {"path": uploaded[0], "orig_name": clip.name, "meta": {"_type": "gradio.FileData"}}
    event = http.post(f"{api}/call/segment", json={"data": [video, *defaults[1:]]}).json()
    events = http.get(f"{api}/call/segment/{event['event_id']}").text.splitlines()
    assert "event: complete" in events, events[-4:]
    return json.loads(events[events.index("event: complete") + 1].removeprefix("data:"))


def test_an_api_sessions_streamed_video_goes_with_its_last_run(tmp_path, pipeline):
    """Gradio keeps a streamed video's chunks per session until the page's heartbeat drops: a REST call (or a raw
    queue client) has none, and its chunks stayed for the process's life (108 chunks, 2.6 MB, for one session of
    18 runs). They go when the session's last run expires, as its folders do."""
    clip = write_clip(tmp_path / "clip.mp4", 16, 96, 64)
    # 5 s: the playlist must still be there (200) when the test asks for it after the run's last update
    settings = AppSettings(work_root=tmp_path / "work", session_ttl_s=5)
    with launched(pipeline, settings) as url, httpx.Client(timeout=60) as http:
        info = Client(url, verbose=False).view_api(print_info=False, return_format="dict")
        params = info["named_endpoints"]["/segment"]["parameters"]
        defaults = [p["parameter_default"] if p["parameter_has_default"] else None for p in params]
        status, _, stream, *_ = _rest_segment(f"{url.rstrip('/')}/gradio_api", http, clip, defaults)
        assert status.startswith("done: 16 frames") and stream["url"].endswith("/playlist.m3u8")
        playlist = http.get(stream["url"])
        assert playlist.status_code == 200 and "#EXT-X-ENDLIST" in playlist.text
        assert wait_for(lambda: http.get(stream["url"]).status_code == 404, timeout=15)
        assert wait_for(lambda: not any((tmp_path / "work").iterdir()))  # its folders went with it


def test_a_sessions_streams_still_running_stay():
    """Only the runs whose streams all ended go: a re-render streaming when the last run expires keeps its chunks;
    another session's stay."""
    ended, live = SimpleNamespace(ended=True), SimpleNamespace(ended=False)
    pending = {
        "s1": {"done": {29: ended}, "running": {29: live}},
        "s2": {"done": {29: ended}},
    }
    assert drop_ended_streams(pending, "s1") == 1
    assert pending == {"s1": {"running": {29: live}}, "s2": {"done": {29: ended}}}
    assert drop_ended_streams(pending, "s2") == 1 and "s2" not in pending
    assert drop_ended_streams(pending, None) == 0 and drop_ended_streams(pending, "gone") == 0


def test_python_app_py_stopped_by_sigterm_with_a_page_open_empties_gradios_cache(tmp_path):
    """On SIGTERM (a Space's restart) with a page open, Gradio's wait closed the server, which waited 5 s for the
    page's heartbeat and exited without its shutdown: nothing in Gradio's cache was deleted, uploads included. Then
    it was, but not the ``<sha>/`` folder of each upload, nor the empty ``tmpXXXXXXXX`` file that Gradio's
    ``gr.File`` made each time a file box was read (two a Score), nor Gradio's empty ``vibe_edit_history``: all that
    stays is the examples' copies (Gradio keeps them for the next start). No weights: uploads stand for the files."""
    port = free_port()
    cache = tmp_path / "gradio"
    env = dict(app_process_env(tmp_path, port, tmp_path), GRADIO_TEMP_DIR=str(cache))
    url, log_path = f"http://127.0.0.1:{port}", tmp_path / "app.log"
    not_zip = tmp_path / "masks.zip"
    not_zip.write_bytes(b"not a zip")
    with app_process(env, log_path) as proc, httpx.Client(timeout=30) as http:
        wait_for_config(url, proc, log_path, timeout=120.0)
        (upload,) = http.post(
            f"{url}/gradio_api/upload", files={"files": ("x.mp4", b"0" * 999)}
        ).json()
        client = Client(url, verbose=False)
        for _ in range(2):  # refused once Gradio has read both file boxes
            with pytest.raises(AppError, match="masks.zip is not a readable zip file"):
                client.predict(
                    handle_file(str(not_zip)), handle_file(str(not_zip)), api_name="/score"
                )
        opened = threading.Event()
        threading.Thread(
            target=_page_open, args=(f"{url}/gradio_api/heartbeat/page", opened), daemon=True
        ).start()
        assert opened.wait(10) and Path(upload).is_file()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    assert not Path(upload).exists()
    left = sorted(
        str(p.relative_to(cache)) for p in cache.rglob("*") if p.is_file() or not any(p.iterdir())
    )
    assert sorted(Path(p).name for p in left) == sorted(p.name for p in EXAMPLES if p.is_file()), (
        left
    )


def _page_open(heartbeat: str, opened: threading.Event) -> None:
    """A page's heartbeat, held open until the server ends it."""
    try:
        with httpx.stream("GET", heartbeat, timeout=None) as response:
            for _ in response.iter_lines():
                opened.set()
    except httpx.HTTPError:
        pass


def _stream_url(job) -> str | None:
    """The live video's playlist that a ``gradio_client`` job of /segment streamed."""
    for update in job.outputs():
        for value in update:
            if isinstance(value, dict) and value.get("is_stream"):
                return value["url"]
    return None


def test_a_sessions_streams_go_even_when_its_last_run_failed(tmp_path, pipeline):
    """A Run clears the session's last run as it starts (its folder is replaced); one that then fails or is stopped
    left nothing naming the session when its states expired, so the chunks of its earlier runs stayed for the
    process's life for a client without heartbeat. The session's streams now expire on their own state, set by
    every Run as it starts."""
    clip = write_clip(tmp_path / "clip.mp4", 16, 96, 64)
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(
        clip.read_bytes()[: clip.stat().st_size // 3]
    )  # truncated: fails once the job runs
    # 5 s: the first run's stream must still be there (200) when the test asks for it after that run
    settings = AppSettings(work_root=tmp_path / "work", session_ttl_s=5)
    with launched(pipeline, settings) as url, httpx.Client(timeout=60) as http:
        client = Client(url, verbose=False, download_files=False)
        first = client.submit(handle_file(str(clip)), api_name="/segment")
        assert first.result()[0].startswith("done: 16 frames")
        stream = _stream_url(first)
        assert stream and http.get(stream).status_code == 200
        second = client.submit(handle_file(str(bad)), api_name="/segment")
        with pytest.raises(Exception, match="truncated"):
            second.result()
        assert second.outputs()[0][0] == "starting…"  # it had cleared the last run
        assert wait_for(lambda: http.get(stream).status_code == 404, timeout=20)


def test_a_run_longer_than_its_sessions_time_to_live_that_fails_frees_its_streams(
    tmp_path, tiny_sam_model
):
    """The session's streams state was set once, as a Run started: a Run that outlived the state's time to live and
    then failed left its chunks for good. Every update of a Run sets it again."""
    tracker = MovingBoxTracker(
        num_objects=2, delay_s=0.15, fail_at=30
    )  # ~4.5 s, then the model fails
    pipe = UVOSAM(tracker, BoxPromptSegmenter(tiny_sam_model))
    clip = write_clip(tmp_path / "clip.mp4", 40, 96, 64)
    settings = AppSettings(work_root=tmp_path / "work", session_ttl_s=2, chunk_seconds=0.5)
    with launched(lambda p, s: pipe, settings) as url, httpx.Client(timeout=60) as http:
        client = Client(url, verbose=False, download_files=False)
        job = client.submit(handle_file(str(clip)), api_name="/segment")
        # the run's own error ("failed|error" let pass Gradio's, which had failed the run's last chunk)
        with pytest.raises(Exception, match=r"\(error id [0-9a-f]{8}\)"):
            job.result()
        stream = _stream_url(job)
        assert stream and job.outputs()[-1][0].startswith("failed")
        assert wait_for(lambda: http.get(stream).status_code == 404, timeout=20)


def test_the_zip_shown_is_read_only_when_the_app_served_it(tmp_path, pipeline):
    """The timeline and merge hints of the zip shown come from an unqueued page event that plain HTTP reaches with
    any upload (``/run/predict``): a 1 MB zip holding 1 GiB of spaces as results.json took the server from 0.9 to
    2.9 GB. It reads a zip the app served only (``ServedFiles.shows``); the run's zip, given back as the page gives
    it, still shows its timeline."""
    clip = write_clip(tmp_path / "clip.mp4", 16, 96, 64)
    settings = AppSettings(work_root=tmp_path / "work")
    with launched(pipeline, settings) as url, httpx.Client(timeout=60) as http:
        api = f"{url.rstrip('/')}/gradio_api"
        info = Client(url, verbose=False).view_api(print_info=False, return_format="dict")
        params = info["named_endpoints"]["/segment"]["parameters"]
        defaults = [p["parameter_default"] if p["parameter_has_default"] else None for p in params]
        served_zip = _rest_segment(api, http, clip, defaults)[4]
        config = http.get(f"{url.rstrip('/')}/config").json()
        zip_id = next(c["id"] for c in config["components"] if c["props"].get("elem_id") == "zip")
        (shown,) = [
            d["id"] for d in config["dependencies"] if [zip_id, "change"] in map(list, d["targets"])
        ]

        def zip_shown(file: dict) -> list:
            body = {"fn_index": shown, "data": [file, ""], "session_hash": "hostile0001"}
            return http.post(f"{api}/run/predict", json=body).json()["data"]

        timeline, narrow, _, _ = zip_shown(served_zip)
        assert timeline is not None and narrow is not None
        # the run's zip, its results.json 64 MiB of spaces (64 KiB zipped)
        bomb = tmp_path / "results.zip"
        with zipfile.ZipFile(served_zip["path"]) as run:
            kept = {n: run.read(n) for n in run.namelist() if n != "results.json"}
        with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as zf:
            for name, data in kept.items():
                zf.writestr(name, data)
            zf.writestr("results.json", b"[" + b" " * (64 << 20) + b"]")
        uploaded = http.post(
            f"{api}/upload", files={"files": (bomb.name, bomb.read_bytes())}
        ).json()
        given = {"path": uploaded[0], "orig_name": bomb.name, "meta": {"_type": "gradio.FileData"}}
        assert zip_shown(given) == [None, None, "", ""]
