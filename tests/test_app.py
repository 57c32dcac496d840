"""The Gradio app over its API (gradio_client), with tiny models on CPU; plus `python app.py`
without weights."""

from __future__ import annotations

import importlib.util
import io
import json
import re
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import zipfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("gradio")
from app_helpers import (
    ROOT,
    app_process_env,
    davis_labels,
    free_port,
    launched,
    processes_mentioning,
    run_json,
    stepped,
    wait_for,
    wait_for_config,
    write_clip,
    zip_names,
)
from doubles import MovingBoxTracker
from gradio_client import Client, handle_file

from uvosam.pipeline import UVOSAM
from uvosam.segmenter import BoxPromptSegmenter
from uvosam.video import iter_frames, probe
from uvosam_app.settings import AppSettings

# SAM 2.1 models are offered (and may be listed in UVOSAM_PRELOAD) only where the sam2 package is installed
needs_sam2 = pytest.mark.skipif(
    importlib.util.find_spec("sam2") is None, reason="the sam2 package is not installed"
)


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    d = tmp_path_factory.mktemp("clips")
    return {
        "a": write_clip(d / "clip_a.mp4", 16, 96, 64),
        "b": write_clip(d / "clip_b.mp4", 24, 128, 80),
        "wide": write_clip(d / "wide.mp4", 8, 160, 48),  # over max_side=150
        "empty": _write(d / "empty.mp4", b""),
        "text": _write(d / "notes.mp4", b"this is a text file, not a video\n" * 20),
    }


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


@pytest.fixture(scope="module")
def tracker():
    return MovingBoxTracker(num_objects=2)


@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_sam_model, tracker):
    """The app on a tiny pipeline; presets idol-ovis-r50 / idol-coco-r50 fail (no weights / bug)."""
    pipe = UVOSAM(tracker, BoxPromptSegmenter(tiny_sam_model))

    def get_pipeline(preset: str, sam: str) -> UVOSAM:
        if preset == "idol-ovis-r50":
            raise FileNotFoundError(
                "Weight file 'OVIS_R50_294AP.pth' was not found. Put it in checkpoints/."
            )
        if preset == "idol-coco-r50":
            raise RuntimeError("a bug inside the app")
        return pipe

    work = tmp_path_factory.mktemp("work")
    settings = AppSettings(work_root=work, concurrency_limit=2, max_upload_mb=1, max_side=150)
    with launched(get_pipeline, settings) as url:
        yield url, work


def client(server) -> Client:
    return Client(server[0], verbose=False)


def test_segment_streams_updates_then_returns_a_valid_mp4_zip_and_table(server, clips):
    job = client(server).submit(handle_file(str(clips["b"])), api_name="/segment")
    updates = list(job)
    status, _, _, mp4, zip_path, table, keep = job.result()
    assert status.startswith("done: 24 frames, 2 tracks")
    streamed = [u for u in updates[:-1] if isinstance(u[0], str) and "frame " in u[0]]
    assert len(streamed) >= 2, [u[0] for u in updates]  # progress/chunks arrived before the end
    # the stream started mid-run
    assert any(u[2] and str(u[2]).endswith(".m3u8") for u in updates[:-1])
    info = probe(mp4)
    assert (info.num_frames, info.width, info.height) == (24, 128, 80)
    names = zip_names(zip_path)
    assert sum(n.startswith("davis/clip_b/") and n.endswith(".png") for n in names) == 24
    assert {"results.json", "ytvis_results.json", "tracks.csv", "README.txt", "run.json"} <= set(
        names
    )
    made = run_json(zip_path)  # what made the masks: the app's pipeline, through the library
    assert (made["models"]["tracker"]["class"], made["models"]["mask_model"]["class"]) == (
        "MovingBoxTracker", "BoxPromptSegmenter")  # fmt: skip
    assert (
        made["settings"]["stride"] == 1
        and made["rerender"] is None
        and made["video"]["name"] == "clip_b"
    )
    assert [row[:2] for row in table["data"]] == [[1, "person"], [2, "dog"]]
    assert keep["value"] == [1, 2]
    # the track timeline shown under the table comes from the zip: a bar for each track
    from uvosam.render import colour_for_id
    from uvosam_app import handlers as app_handlers

    # (and drawn for a phone's width: a 390 px phone's column is 326 px wide)
    image, narrow = app_handlers.App(lambda preset, sam: None, AppSettings()).timeline(zip_path)
    for shown in (image, narrow):
        assert all((shown == colour_for_id(i)).all(axis=2).sum() > 100 for i in (1, 2))
    assert narrow.shape[0] == image.shape[0] and narrow.shape[1] <= 326 < image.shape[1]
    # a zip whose run.json has no export record: the zip's timeline, none drawn for a phone (not a KeyError that
    # took the merge hints and the scores' clearing down with it)
    import json
    import zipfile

    bare = Path(zip_path).with_name("bare.zip")
    with zipfile.ZipFile(zip_path) as src, zipfile.ZipFile(bare, "w") as dst:
        for name in src.namelist():
            data = src.read(name)
            if name == "run.json":
                data = json.dumps(
                    {k: v for k, v in json.loads(data).items() if k != "export"}
                ).encode()
            dst.writestr(name, data)
    wide, none = app_handlers.App(lambda preset, sam: None, AppSettings()).timeline(str(bare))
    assert wide.shape == image.shape and none is None
    # a run starts: cleared
    assert app_handlers.App(lambda preset, sam: None, AppSettings()).timeline(None) == (None, None)


def test_the_status_line_counts_the_objects_live():
    from uvosam.job_types import JobProgress
    from uvosam_app.text import status_text

    status = status_text(JobProgress(5, 20, 2.0, objects=1, tracks_so_far=3), "segmenting", 0.0)
    assert status == "segmenting: frame 5/20 · 1 object (3 tracks so far) · 2.5 fps · ETA 6 s"
    first = status_text(JobProgress(1, 20, 1.0, objects=1, tracks_so_far=1), "segmenting", 0.0)
    assert first == "segmenting: frame 1/20 · 1 object (1 track so far) · 1.0 fps · ETA 19 s"
    unpacked = status_text(JobProgress(0, 20, 0.0), "segmenting", 0.0)
    # before the first frame: no count yet
    assert unpacked == "segmenting: frame 0/20 · 0.0 fps · ETA ?"


def test_the_done_line_counts_in_words():
    """ "done: 48 frames, 1 tracks" once a re-render kept one track (or a run found one): 1 track, 1 frame."""
    import types

    from uvosam.job_types import JobProgress
    from uvosam_app.text import status_text

    def done(frames: int, tracks: int) -> str:
        result = types.SimpleNamespace(
            num_frames=frames, tracks=(None,) * tracks, seconds=2.0, fps=4.0
        )
        return status_text(JobProgress(frames, frames, 2.0, result=result), "re-rendering", 0.0)

    assert done(48, 1) == "done: 48 frames, 1 track in 2.0 s (4.0 fps)"
    assert done(1, 2) == "done: 1 frame, 2 tracks in 2.0 s (4.0 fps)"
    assert done(5, 0) == "done: 5 frames, 0 tracks in 2.0 s (4.0 fps)"


def test_the_status_line_says_when_a_job_waits_for_a_worker():
    """Before its first step a job says it is starting (a Run: loading the models on their first use; a
    Re-render loads none), or, while other jobs hold every worker, that it waits for one."""
    import time

    from uvosam.job_types import JobProgress
    from uvosam_app.progress import drive
    from uvosam_app.text import status_text
    from uvosam_app.work import JobPump

    assert status_text(None, "re-rendering", time.monotonic()) == "re-rendering: starting… 0 s"
    slots = threading.BoundedSemaphore(1)
    slots.acquire()  # another job runs

    finish = threading.Event()

    def job():
        yield JobProgress(1, 2, 0.1)
        finish.wait(10)

    pump = JobPump(job, slots).start()
    updates = stepped(drive(pump, "re-rendering", 0.05))
    assert next(updates).status.startswith(
        "re-rendering: waiting for a free worker (other jobs run first)… "
    )
    slots.release()  # the job gets the worker: its frame counter replaces the waiting line
    statuses = [next(updates).status for _ in range(40)]
    assert statuses[-1].startswith("re-rendering: frame 1/2") and not pump.queued
    finish.set()
    list(updates)
    pump.cancel()


def test_a_preview_frame_is_sent_once_not_with_every_status_line():
    """While a frame takes long (seconds on a CPU), a status line goes out every ``interval`` s; the preview frame
    went with each, and Gradio wrote the same JPEG over its cached file every time, while the browser could be
    reading it (a broken image and "Too much data for declared Content-Length" in the server log)."""
    from uvosam.job_types import JobProgress
    from uvosam_app.progress import drive
    from uvosam_app.work import JobPump

    frame, next_frame = np.zeros((4, 4, 3), np.uint8), np.ones((4, 4, 3), np.uint8)
    go_on, end = threading.Event(), threading.Event()

    def job():
        yield JobProgress(1, 3, 0.1, preview=frame)
        go_on.wait(10)  # a slow frame: status lines meanwhile
        yield JobProgress(2, 3, 0.2, preview=next_frame)
        yield JobProgress(3, 3, 0.3)  # no preview of its own: the last one stays the latest
        end.wait(10)

    pump = JobPump(job, threading.BoundedSemaphore(1)).start()
    updates = stepped(drive(pump, "segmenting", 0.02))
    first = [next(updates) for _ in range(6)]
    assert first[0].status.startswith("segmenting: frame 1/3") and first[0].preview is frame
    assert all(u.preview is None for u in first[1:])
    go_on.set()
    rest = [next(updates) for _ in range(6)]
    end.set()
    rest += list(updates)
    pump.cancel()
    assert rest[-1].status.startswith("segmenting: frame 3/3")
    assert [u.preview for u in rest if u.preview is not None] == [next_frame]


def test_a_streamed_chunk_goes_to_gradio_as_a_str(tmp_path):
    """gradio 6.0-6.26's streaming video output calls ``.endswith(".ts")`` on the chunk it is given: a Path failed
    there ("'PosixPath' object has no attribute 'endswith'") and the run with it."""
    from uvosam.job_types import JobProgress
    from uvosam_app.progress import drive
    from uvosam_app.work import JobPump

    chunk = tmp_path / "stream" / "00000.ts"

    def job():
        yield JobProgress(1, 2, 0.1, chunk=chunk)

    pump = JobPump(job, threading.BoundedSemaphore(1)).start()
    sent = [u.chunk for u in stepped(drive(pump, "segmenting", 0.02)) if u.chunk is not None]
    pump.cancel()
    assert sent == [str(chunk)] and isinstance(sent[0], str)


def test_rerender_with_a_subset_of_tracks_drops_the_others(server, clips):
    c = client(server)
    first = c.predict(handle_file(str(clips["a"])), stride=2, api_name="/segment")  # 16 frames -> 8
    assert davis_labels(first[4], "clip_a") == (8, {0, 1, 2})
    status, _, _, mp4, zip_path, table = c.predict([2], api_name="/rerender")  # as in docs/app.md
    assert status.startswith("done: 8 frames, 1 track ")
    assert [row[0] for row in table["data"]] == [2]
    names = zip_names(zip_path)
    assert not any(n.startswith("cutouts/clip_a/1/") for n in names)
    assert any(n.startswith("cutouts/clip_a/2/") for n in names)
    assert davis_labels(zip_path, "clip_a") == (8, {0, 1})  # only the kept track, relabelled 1
    assert probe(mp4).num_frames == 8
    # the same masks again, as a matte: another style without running the models
    status, _, _, matte, zip_path, _ = c.predict(
        [1, 2], style="matte", alpha_webm=True, api_name="/rerender"
    )
    assert status.startswith("done: 8 frames, 2 tracks") and matte.endswith("clip_a_matte.mp4")
    assert "clip_a_alpha.webm" in zip_names(zip_path) and "clip_a_alpha.webm" not in names
    frame = next(iter_frames(matte))
    assert frame.max() > 200 and (frame < 30).mean() > 0.5  # white objects on black
    # one object split into two ids: merged, everywhere (table, zip), without the models
    status, _, _, _, zip_path, table = c.predict([1, 2], merge="2>1", api_name="/rerender")
    assert status.startswith("done: 8 frames, 1 track ")
    made, run = (
        run_json(zip_path),
        run_json(first[4]),
    )  # the run's models and stride, and what the re-render did
    assert (
        made["models"] == run["models"]
        and made["settings"] == run["settings"]
        and run["settings"]["stride"] == 2
    )
    assert (made["rerender"]["keep_ids"], made["rerender"]["merge"]) == ([1, 2], {"2": 1})
    assert [row[:2] for row in table["data"]] == [[1, "person"]]
    assert davis_labels(zip_path, "clip_a") == (8, {0, 1})
    assert not any(n.startswith("cutouts/clip_a/2/") for n in zip_names(zip_path))
    # a higher score threshold, applied to the cached masks: track 2 (0.6 in every frame) goes
    status, _, _, _, zip_path, table = c.predict([1, 2], min_score=0.7, api_name="/rerender")
    assert status.startswith("done: 8 frames, 1 track ") and [row[0] for row in table["data"]] == [
        1
    ]
    with pytest.raises(Exception, match=r"no track 9 in this run \(its tracks: 1, 2\)"):
        c.predict([1, 2], merge="9>1", api_name="/rerender")
    with pytest.raises(
        Exception, match=r"expected pairs 'source>target'.*could not read 'one>two'"
    ):
        c.predict([1, 2], merge="one>two", api_name="/rerender")


def test_segment_in_a_style_from_the_api(server, clips):
    status, _, _, mp4, zip_path, _, _ = client(server).predict(
        handle_file(str(clips["a"])), stride=4, style="cutout", show_boxes=False,
        show_labels=False, alpha_webm=True, api_name="/segment")  # fmt: skip
    assert status.startswith("done: 4 frames") and mp4.endswith("clip_a_cutout.mp4")
    assert "clip_a_alpha.webm" in zip_names(zip_path)  # the objects over transparency, in the zip
    frame = next(iter_frames(mp4))
    assert (frame < 30).mean() > 0.5 and frame.max() > 60  # objects kept, background black
    with pytest.raises(
        Exception, match=r"'sepia'.* is not in the list of choices: \['overlay', 'cutout'"
    ):
        client(server).predict(handle_file(str(clips["a"])), style="sepia", api_name="/segment")


def test_rerender_before_any_run_says_what_to_do(server):
    with pytest.raises(Exception, match="Run a video first"):
        client(server).predict([], True, True, 0, api_name="/rerender")


@pytest.mark.parametrize(
    "kind, message",
    [
        ("empty", "is empty"),
        ("text", "is not a video"),
        ("wide", "longest side 160 px, over this app's limit of 150 px.*UVOSAM_MAX_SIDE"),
    ],
)
def test_bad_upload_gets_a_clear_error(server, clips, kind, message):
    with pytest.raises(Exception, match=message):
        client(server).predict(handle_file(str(clips[kind])), api_name="/segment")


def test_missing_weights_and_internal_errors_are_reported(server, clips):
    c = client(server)
    with pytest.raises(Exception, match="OVIS_R50_294AP.pth' was not found"):
        c.predict(handle_file(str(clips["a"])), tracker="idol-ovis-r50", api_name="/segment")
    with pytest.raises(Exception, match=r"error id [0-9a-f]{8}") as err:
        c.predict(handle_file(str(clips["a"])), "idol-coco-r50", api_name="/segment")
    assert "a bug inside the app" not in str(err.value)  # internals stay in the server log


def test_two_clients_at_once_get_their_own_results(server, clips):
    results = {}

    def run(name):
        results[name] = client(server).predict(handle_file(str(clips[name])), api_name="/segment")

    threads = [threading.Thread(target=run, args=(n,)) for n in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    for name, (frames, w, h) in {"a": (16, 96, 64), "b": (24, 128, 80)}.items():
        _, _, _, mp4, zip_path, _, _ = results[name]
        info = probe(mp4)
        assert (info.num_frames, info.width, info.height) == (frames, w, h)
        assert davis_labels(zip_path, f"clip_{name}")[0] == frames
        assert not any(
            n.startswith("davis/clip_" + "ab".replace(name, "")) for n in zip_names(zip_path)
        )


def test_cancel_stops_the_run_cleans_up_and_the_next_run_works(server, clips, tracker):
    url, work = server
    c = client(server)
    tracker.delay_s = 0.4  # 24 frames: about 10 s if it were not stopped
    try:
        job = c.submit(handle_file(str(clips["b"])), api_name="/segment")
        session = work / c.session_hash
        assert wait_for(lambda: any(session.glob("run-*")), 30)
        run_dir = next(session.glob("run-*"))
        overlay = run_dir / "clip_b_overlay.mp4"
        assert wait_for(overlay.exists, 30)  # encoding has started
        assert job.cancel()
        # the worker stopped and removed the partial run
        assert wait_for(lambda: not run_dir.exists())
        assert processes_mentioning(str(run_dir)) == []  # no ffmpeg left behind
    finally:
        tracker.delay_s = 0.0
    status = c.predict(handle_file(str(clips["a"])), api_name="/segment")[0]
    assert status.startswith("done: 16 frames")


def test_uploads_over_the_limit_and_files_outside_the_run_folders_are_refused(server):
    url = server[0].rstrip("/")
    big = b"0" * (1024 * 1024 + 1)  # max_upload_mb=1
    boundary = "xUVOSAMx"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="big.mp4"\r\n'
            "Content-Type: video/mp4\r\n\r\n"
        ).encode()
        + big
        + f"\r\n--{boundary}--\r\n".encode()
    )
    request = urllib.request.Request(
        f"{url}/gradio_api/upload",
        data=body,
        method="POST",
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(request, timeout=30)
    assert err.value.code == 413
    for path in (ROOT / "README.md", ROOT / "app.py"):
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(f"{url}/gradio_api/file={path}", timeout=30)
        assert err.value.code in (403, 404)


def test_settings_from_env():
    settings = AppSettings.from_env(
        {"UVOSAM_MAX_FRAMES": "50", "UVOSAM_MAX_UPLOAD_MB": "10", "UVOSAM_SAM": "vit_h"}
    )
    assert (settings.max_frames, settings.max_upload_mb, settings.default_sam) == (50, 10, "vit_h")
    assert settings.limits().max_frames == 50 and settings.max_side == AppSettings().max_side
    with pytest.raises(
        ValueError, match="UVOSAM_MAX_SECONDS must be a finite positive float; got 'soon'"
    ):
        AppSettings.from_env({"UVOSAM_MAX_SECONDS": "soon"})
    assert settings.sam_precision == "auto"
    with pytest.raises(
        ValueError, match=r"UVOSAM_SAM_PRECISION\) must be one of \('auto', 'bf16', 'fp32'\)"
    ):
        AppSettings.from_env({"UVOSAM_SAM_PRECISION": "fp16"})


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


def test_an_unexpected_load_failure_at_start_gives_a_banner_not_a_crash(tmp_path):
    """E.g. the Hub client's own network error (not an OSError): the app still builds and says what failed."""
    import app as app_module

    calls = []

    def broken(preset, sam):
        calls.append((preset, sam))
        raise RuntimeError("xet download failed: connection reset by peer\n(details)")

    demo = app_module.build_demo(broken, settings=AppSettings(work_root=tmp_path / "work"))
    banner = next(
        c["props"] for c in demo.config["components"] if c["props"].get("elem_id") == "banner"
    )
    assert calls and banner["visible"]
    assert "Models not loaded" in banner["value"]
    assert "failed to load at start (RuntimeError, an unexpected error)" in banner["value"]
    assert "server log has the traceback" in banner["value"]
    assert "xet" not in banner["value"]  # the details are the host's: in the log
    demo.close()


def test_python_app_py_without_weights_serves_a_banner(tmp_path):
    """Offline, no checkpoints, empty HF cache: the page is served with a banner; the log names the files."""
    port = free_port()
    env = app_process_env(tmp_path, port, tmp_path / "w")
    empty = Path(env["UVOSAM_CHECKPOINTS"])
    log = open(tmp_path / "app.log", "wb")
    proc = subprocess.Popen(
        [sys.executable, "app.py"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        config = wait_for_config(f"http://127.0.0.1:{port}", proc, tmp_path / "app.log")
        banner = next(
            c["props"]["value"]
            for c in config["components"]
            if c["props"].get("elem_id") == "banner"
        )
        assert "Models not loaded" in banner and "has not installed the weights" in banner
        assert "server log names the missing files" in banner and str(empty) not in banner
        logged = (tmp_path / "app.log").read_text(errors="replace")
        assert "sam_vit_b_01ec64.pth" in logged and "YTVIS19_R50_502AP.pth" in logged
        assert str(empty) in logged and "not found" in logged
        with pytest.raises(Exception, match="was not found"):
            Client(f"http://127.0.0.1:{port}/", verbose=False).predict(
                handle_file(str(ROOT / "examples" / "synthetic_shapes.mp4")), api_name="/segment"
            )
        assert proc.poll() is None  # still serving
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def test_a_run_says_it_loads_the_models_only_while_they_are_not_loaded(
    monkeypatch, tmp_path, tiny_sam_model
):
    """The first step's status said "loading the models on their first use" on every run, also with the models
    long loaded."""
    from uvosam import hub
    from uvosam_app import handlers as app_handlers
    from uvosam_app import models as app_models

    monkeypatch.setattr(hub, "resolve", lambda name, **kw: tmp_path / f"{name}.pth")
    loader = app_models.PipelineLoader(
        device="cpu",
        load_tracker=lambda name, device: MovingBoxTracker(num_objects=1),
        load_segmenter=lambda name, device: BoxPromptSegmenter(tiny_sam_model),
    )
    app = app_handlers.App(loader, AppSettings(work_root=tmp_path))
    assert not app._models_loaded("idol-ovis-r50", "vit_b")
    loader("idol-ovis-r50", "vit_b")
    assert app._models_loaded("idol-ovis-r50", "vit_b") and not app._models_loaded(
        "idol-ovis-r50", "vit_h"
    )
    # another source of pipelines (a function) cannot tell: the first step says they may be loading
    assert not app_handlers.App(lambda preset, sam: None, AppSettings())._models_loaded(
        "idol-ovis-r50", "vit_b"
    )


def test_pipeline_loader_loads_each_model_once_and_lists_every_missing_file(monkeypatch, tmp_path):
    """Each tracker and each mask model loads once, shared by every pair that uses it (concurrent first uses
    wait for one load); at most max_loaded of each kind are kept, never evicting the first."""
    from uvosam import hub
    from uvosam_app import models as app_models

    monkeypatch.setattr(hub, "resolve", lambda name, **kw: tmp_path / f"{name}.pth")
    calls = []

    def loading(kind):
        def load(name, device):
            calls.append((kind, name, device))
            time.sleep(0.05)
            return object()

        return load

    loader = app_models.PipelineLoader(
        device="cpu", load_tracker=loading("tracker"), load_segmenter=loading("sam"), max_loaded=2
    )
    got = []
    threads = [
        threading.Thread(target=lambda: got.append(loader("idol-ovis-r50", "vit_b")))
        for _ in range(2)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert calls == [("tracker", "idol-ovis-r50", "cpu"), ("sam", "vit_b", "cpu")]
    assert got[0].tracker is got[1].tracker and got[0].segmenter is got[1].segmenter
    pair = loader(
        "idol-coco-r50", "vit_b"
    )  # a new tracker with the loaded mask model: no copy of it
    assert calls[2:] == [("tracker", "idol-coco-r50", "cpu")] and pair.segmenter is got[0].segmenter
    loader("idol-ytvis21-r50", "vit_h")  # evicts the least recently used, never the first
    assert loader("idol-ovis-r50", "vit_b").tracker is got[0].tracker and len(calls) == 5
    assert loader("idol-coco-r50", "vit_b").tracker is not pair.tracker  # it went: loaded again
    assert loader.weight_files["sam_vit_h"] == tmp_path / "sam_vit_h.pth"

    def missing(name, **kw):
        raise FileNotFoundError(f"Weight file for {name} was not found.")

    monkeypatch.setattr(hub, "resolve", missing)
    with pytest.raises(FileNotFoundError) as err:
        loader("idol-ytvis19-r50", "vit_l")
    assert "idol-ytvis19-r50" in str(err.value) and "sam_vit_l" in str(err.value)
    assert (
        loader("idol-ovis-r50", "vit_b").tracker is got[0].tracker
    )  # loaded pairs need no file check
    loader.stop_loading("on ZeroGPU only models loaded at start run")
    assert loader("idol-ovis-r50", "vit_b").segmenter is got[0].segmenter
    with pytest.raises(
        app_models.ModelsNotLoadedError, match="idol-ovis-r50 \\+ SAM ViT-L is not loaded"
    ):
        loader("idol-ovis-r50", "vit_l")


def test_pipeline_loader_finds_weights_with_the_librarys_locator(monkeypatch, tmp_path):
    """The app had its own copy of uvosam.pipeline.locate_weights (resolve each file, join the missing reports)."""
    from uvosam_app import models as app_models

    asked = []

    def locate(tracker, sam):
        asked.append((tracker, sam))
        return tmp_path / "tracker.pth", tmp_path / "sam.pth"

    monkeypatch.setattr(app_models, "locate_weights", locate)
    loader = app_models.PipelineLoader(
        device="cpu", load_tracker=lambda *a: object(), load_segmenter=lambda *a: object()
    )
    loader("idol-ovis-r50", "sam2.1_tiny")
    assert asked == [("idol-ovis-r50", "sam2.1_tiny")]
    assert loader.weight_files == {
        "idol-ovis-r50": tmp_path / "tracker.pth",
        "sam2.1_tiny": tmp_path / "sam.pth",
    }


@pytest.mark.parametrize(
    "device, zero, warmed", [("cuda", False, True), ("cpu", False, False), ("cuda", True, False)]
)
def test_loading_warms_the_pipeline_up_on_a_gpu_only(device, zero, warmed, monkeypatch):
    """One warm-up frame when a pair gets a newly loaded model on a GPU; never on CPU (seconds per frame) or
    ZeroGPU (no GPU while loading)."""
    from uvosam_app import models as app_models

    warm_ups = []
    monkeypatch.setattr(UVOSAM, "warm_up", lambda self: warm_ups.append(self) or 0.5)
    monkeypatch.setattr(app_models, "zero_gpu", lambda: zero)
    monkeypatch.setattr(app_models.PipelineLoader, "check_weights", lambda self, preset, sam: None)
    loader = app_models.PipelineLoader(
        device=device, load_tracker=lambda *a: object(), load_segmenter=lambda *a: object()
    )
    loader("idol-ytvis19-r50", "vit_b")
    loader("idol-ytvis19-r50", "vit_b")  # nothing new
    assert len(warm_ups) == (1 if warmed else 0)


@pytest.mark.parametrize(("precision", "fast"), [("auto", None), ("bf16", True), ("fp32", False)])
def test_sam_precision_setting_reaches_the_segmenter_config(precision, fast, monkeypatch):
    from uvosam_app import models as app_models

    seen = []
    monkeypatch.setattr(app_models, "load_segmenter", lambda sam, **kw: seen.append((sam, kw)))
    settings = AppSettings.from_env({"UVOSAM_SAM_PRECISION": precision.upper()})
    app_models.load_mask_model("vit_b", "cpu", settings.sam_precision)
    assert seen[0][0] == "vit_b" and seen[0][1]["config"].fast is fast
    assert str(seen[0][1]["device"]) == "cpu"


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
        gr.Error, match=r"from \('vit_b', 'vit_h'\) \(on ZeroGPU: those loaded at start\)"
    ):
        list(stepped(app.segment(str(clip), "idol-ytvis19-r50", "vit_l", 0.0, 10, 1, 900, 0, True, True,
                                 "overlay")))  # fmt: skip
    *_, last = stepped(app.segment(str(clip), "idol-ovis-r50", "vit_h", 0.0, 10, 1, 900, 0, True, True,
                                   "overlay"))  # fmt: skip
    assert last[0].startswith("done: 6 frames") and len(loaded) == 4
    demo.close()


@needs_sam2
def test_the_apps_loader_keeps_every_model_loaded_at_start(monkeypatch, tmp_path, tiny_sam_model):
    """The loader keeps 3 models of a kind by default; UVOSAM_PRELOAD may list more. Unloading one loaded at start
    for another would leave it unloadable on ZeroGPU (models load only at start there)."""
    import app as app_module
    from uvosam_app import models as app_models

    monkeypatch.setattr(app_models.PipelineLoader, "check_weights", lambda self, preset, sam: None)
    monkeypatch.setattr(app_module, "load_tracker", lambda preset, device: MovingBoxTracker())
    loaded = []
    monkeypatch.setattr(
        app_module, "load_mask_model",
        lambda sam, device, sam_precision: loaded.append(sam) or BoxPromptSegmenter(tiny_sam_model),
    )  # fmt: skip
    env = {"UVOSAM_PRELOAD": "vit_l,vit_h,sam2.1_tiny", "UVOSAM_WORK_DIR": str(tmp_path)}
    monkeypatch.setattr(
        app_models, "mask_models", lambda: ("vit_b", "vit_l", "vit_h", "sam2.1_tiny")
    )
    settings = AppSettings.from_env(env)
    loader = app_module.make_loader(settings)
    app_module.build_demo(loader, settings=settings).close()
    loader.stop_loading("on ZeroGPU ...")
    for preset, sam in settings.start_pairs():
        loader(preset, sam)  # none was unloaded: no ModelsNotLoadedError
    assert loaded == ["vit_b", "vit_l", "vit_h", "sam2.1_tiny"]


def zero_gpu_worker(task):
    """What ``spaces.GPU`` (0.51.3) does with a generator on a ZeroGPU Space: the task runs in a
    worker process and an exception comes back as itself only if it is a ``gr.Error``; any other
    one comes back as ``gr.Error(<its class name>)`` (spaces/zero/wrappers.py)."""
    import gradio as gr

    def handler(*args, **kwargs):
        try:
            yield from task(*args, **kwargs)
        except gr.Error:
            raise
        except Exception as err:
            raise gr.Error(type(err).__name__) from None

    return handler


def segment_directly(get_pipeline, work: Path, video: Path, preset: str = "idol-ytvis19-r50"):
    """``App.segment`` without a server (no session); returns its updates."""
    from uvosam_app import handlers as app_handlers

    app = app_handlers.App(get_pipeline, AppSettings(work_root=work, status_interval_s=0.1))
    steps = stepped(app.segment(str(video), preset, "vit_b", 0.0, 10, 1, 900, 0, True, True, "overlay", None, False,
                                None))  # fmt: skip
    return list(steps)


@pytest.mark.parametrize(
    "clip, tracker, message",
    [
        ("text", MovingBoxTracker(), "is not a video"),
        ("a", MovingBoxTracker(fail_at=2, error=lambda: __import__("torch").OutOfMemoryError(
            "CUDA out of memory")), "Out of GPU memory.*smaller SAM"),
    ],
)  # fmt: skip
def test_on_zerogpu_errors_inside_the_gpu_function_keep_their_message(
    monkeypatch, tmp_path, clips, tiny_sam_model, clip, tracker, message
):
    import gradio as gr

    from uvosam_app import gpu as app_gpu

    monkeypatch.setattr(app_gpu, "gpu_job", zero_gpu_worker(app_gpu.gpu_job))
    pipe = UVOSAM(tracker, BoxPromptSegmenter(tiny_sam_model))
    with pytest.raises(gr.Error, match=message):
        segment_directly(lambda preset, sam: pipe, tmp_path, clips[clip])


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


def test_describe_video_says_what_a_run_covers_and_estimates_its_time():
    from uvosam.video import probe as probe_video
    from uvosam_app.text import describe_video

    info = probe_video(ROOT / "examples" / "synthetic_shapes.mp4")  # 48 frames, 320x240, 12 fps
    models = "idol-ytvis19-r50 + vit_b"
    first = describe_video(info, "shapes.mp4", stride=1, max_frames=900, models=models, fps=None)
    assert first == ("**shapes.mp4**: 320x240, 48 frames at 12 fps (4.0 s). Run covers 48 frames "
                     "(every frame). No run with idol-ytvis19-r50 + vit_b here yet long enough to "
                     "estimate the time from (10 frames or more).")  # fmt: skip
    on_cpu = describe_video(
        info, "shapes.mp4", stride=1, max_frames=900, models=models, fps=None, on_cpu=True
    )
    assert on_cpu.startswith(first) and "On a CPU a frame takes seconds" in on_cpu
    assert describe_video(
        info, "shapes.mp4", stride=1, max_frames=900, models=models, fps=4.0, on_cpu=True
    ).endswith("more).")
    later = describe_video(info, "shapes.mp4", stride=2, max_frames=10, models=models, fps=4.0)
    assert later.endswith(
        "Run covers 10 frames, every 2nd of the first 19 (Max frames is 10). "
        "About 2 s with idol-ytvis19-r50 + vit_b (4.0 fps in the last run here of 10 frames or more)."
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


def test_a_short_run_does_not_spoil_the_time_estimate(tmp_path):
    """After a 1-frame run measured at 3.0 fps (its time mostly the run's start) an 88-frame clip was estimated at
    "About 30 s" and took 15 s (5.7 fps). A run of fewer than 10 frames leaves the speed the estimate uses."""
    from types import SimpleNamespace

    from uvosam_app import handlers as app_handlers
    from uvosam_app.describe import record_speed

    app = app_handlers.App(lambda preset, sam: None, AppSettings(work_root=tmp_path))
    bunny = str(ROOT / "examples" / "bigbuckbunny_cut.mp4")  # 88 frames
    models = ("idol-ytvis19-r50", "vit_b")
    record_speed(app.speeds, models, SimpleNamespace(num_frames=1, fps=3.0))
    assert "No run with idol-ytvis19-r50 + SAM ViT-B here yet long enough" in app.describe(
        bunny, *models, 1, 900
    )
    record_speed(app.speeds, models, SimpleNamespace(num_frames=88, fps=5.7))
    record_speed(app.speeds, models, SimpleNamespace(num_frames=9, fps=3.0))
    assert (
        "About 15 s with idol-ytvis19-r50 + SAM ViT-B (5.7 fps in the last run here of 10 frames"
        in (app.describe(bunny, *models, 1, 900))
    )
    record_speed(app.speeds, models, SimpleNamespace(num_frames=10, fps=4.4))
    assert "About 20 s" in app.describe(bunny, *models, 1, 900)


def test_the_video_box_says_where_images_go(tmp_path):
    """An image dropped on the Video box got Gradio's "Only video/x-m4v,video/* allowed." and no hint that a zip
    of frames is the way in."""
    import app as app_module

    demo = app_module.build_demo(lambda p, s: None, settings=AppSettings(work_root=tmp_path))
    assert _props(demo, "inp")["label"] == "Video (images: zip them, below)"
    assert _props(demo, "frames")["label"].startswith("…or a zip of its frames")
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
    # over max_side=150: refused from its header (nothing counted, nothing kept), no first frame
    shutil.copy(clips["wide"], upload)
    wide = app.describe(str(upload), "idol-ytvis19-r50", "vit_b", 1, 900)
    assert "over this app's limit of 150 px" in wide
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
    assert "No run with idol-ytvis19-r50 + SAM ViT-B here yet" in text
    refused = app.describe(str(clips["text"]), preset, "vit_b", 1, 900)
    assert refused.startswith("**Run would refuse this input:** ") and "is not a video" in refused
    # the app's inputs
    assert "or a zip of its .jpg/.jpeg/.png frames." in refused and "folder" not in refused
    wide = app.describe(str(clips["wide"]), preset, "vit_b", 1, 900)
    assert "over this app's limit of 150 px" in wide and "UVOSAM_MAX_SIDE" in wide
    *_, last = stepped(app.segment(str(clips["a"]), preset, "vit_b", 0.0, 10, 1, 900, 0, True, True, "overlay",
                                   None, False, None))  # fmt: skip
    state = last[-1]  # the session's last run
    after = app.describe(str(clips["a"]), preset, "vit_b", 2, 900, None, None, state)
    assert re.search(
        r"Run covers 8 frames \(every 2nd frame\)\. About \d+ s with "
        r"idol-ytvis19-r50 \+ SAM ViT-B \([\d.]+ fps in the last run here of 10 frames or more\)\.$",
        after,
    )  # the results shown are of this input: nothing more said
    # another upload: the results still shown (and what Re-render and Score act on) are of clip_a
    other = app.describe(str(clips["b"]), preset, "vit_b", 1, 900, None, None, state)
    assert other.startswith("**clip_b.mp4**: 128x80")
    assert other.endswith(
        "**The results below are of your last run, on an earlier input (clip_a.mp4):** Re-render and Score use "
        "them; Run replaces them with this input's."
    )
    assert "No run with" in app.describe(str(clips["a"]), preset, "vit_h", 1, 900)  # other models


def _zip_of(path: Path, files: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return path


def test_score_against_uploaded_ground_truth(server, clips, tmp_path):
    """The run's own DAVIS PNGs as ground truth (labels swapped, one PNG per SOURCE frame while the run
    took every 2nd): J&F 1 for both objects, each matched to its track."""
    c = client(server)
    fake = tmp_path / "fake.zip"
    fake.write_bytes(b"not a zip at all")
    with pytest.raises(Exception, match="Run a video first"):
        c.predict(handle_file(str(fake)), None, api_name="/score")
    masks_zip = c.predict(handle_file(str(clips["a"])), stride=2, api_name="/segment")[4]
    with zipfile.ZipFile(masks_zip) as zf:
        ours = {n.rsplit("/", 1)[1]: zf.read(n) for n in zf.namelist()
                if n.startswith("davis/clip_a/")}  # fmt: skip
    assert sorted(ours) == [f"{i:05d}.png" for i in range(0, 16, 2)]
    swap = np.array([0, 2, 1] + list(range(3, 256)), np.uint8)
    files = {}
    for i in range(16):  # odd source frames are not processed: any content
        ids = np.asarray(Image.open(io.BytesIO(ours[f"{i - i % 2:05d}.png"])))
        buffer = io.BytesIO()
        Image.fromarray(swap[ids]).save(buffer, format="PNG")
        files[f"gt/frame_{i}.png"] = buffer.getvalue()  # natural order: frame_2 before frame_10
    gt = _zip_of(
        tmp_path / "gt.zip", {**files, "__MACOSX/gt/._frame_0.png": b"junk", "gt/notes.txt": b"hi"}
    )
    text = c.predict(handle_file(str(gt)), handle_file(masks_zip), api_name="/score")
    assert text.startswith("**J&F 1.000** (J 1.000, F 1.000) over 2 objects and 8 frames")
    assert (
        "| 1 | 2 | 1.000 | 1.000 | 1.000 |" in text and "| 2 | 1 | 1.000 | 1.000 | 1.000 |" in text
    )
    # key frames only, named as the frames: those frames are scored
    keys = {f"k/{i:05d}.png": files[f"gt/frame_{i}.png"] for i in (0, 4, 8)}
    text = c.predict(handle_file(str(_zip_of(tmp_path / "keys.zip", keys))), handle_file(masks_zip),
                     api_name="/score")  # fmt: skip
    assert text.startswith(
        "**J&F 1.000** (J 1.000, F 1.000) over 2 objects and 3 of the 8 frames (those the ground truth annotates)"
    )
    short = _zip_of(tmp_path / "short.zip", dict(list(files.items())[:5]))
    with pytest.raises(
        Exception, match=r"5 PNGs, but the run processed 8 of the video's 16 frames"
    ):
        c.predict(handle_file(str(short)), handle_file(masks_zip), api_name="/score")
    two = _zip_of(tmp_path / "two.zip", {"a/0.png": files["gt/frame_0.png"], "b/0.png": b""})
    with pytest.raises(Exception, match=r"\.png files in 2 folders \(a, b, ...\)"):
        c.predict(handle_file(str(two)), handle_file(masks_zip), api_name="/score")
    with pytest.raises(Exception, match="fake.zip is not a readable zip file"):
        c.predict(handle_file(str(fake)), handle_file(masks_zip), api_name="/score")
    bare = _zip_of(tmp_path / "bare.zip", {f"davis/clip_a/{n}": data for n, data in ours.items()})
    with pytest.raises(
        Exception, match="bare.zip has no tracks.csv: score the zip that Run or Re-render made"
    ):
        c.predict(handle_file(str(gt)), handle_file(str(bare)), api_name="/score")


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


def test_the_upload_description_is_told_again_when_a_run_finishes(tmp_path):
    """Before a run the description says "No run with <models> here yet"; once the run is done
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
    assert not any(d["trigger_only_on_success"] for d in after_run)
    # the other one, on failure only, writes the status line
    assert [d["outputs"] for d in after_run if not d["trigger_only_on_failure"]] == [[info_id]]
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


def _frames_zip(path: Path, folder: str, count: int, size=(96, 64)) -> Path:
    """``count`` moving-shapes frames as JPEGs named ``<i>.jpg`` (natural order) in ``folder``."""
    from uvosam.testing import moving_shapes

    files = {}
    for i, frame in enumerate(moving_shapes(count, height=size[1], width=size[0], seed=4).frames):
        buffer = io.BytesIO()
        Image.fromarray(frame).save(buffer, format="JPEG", quality=95)
        files[f"{folder}/{i}.jpg"] = buffer.getvalue()
    return _zip_of(path, files)


def test_a_zip_of_frames_runs_like_a_video_and_keeps_their_names(server, clips, tmp_path):
    c = client(server)
    frames = _frames_zip(tmp_path / "upload.zip", "bmx-trees", 12)
    status, _, _, mp4, masks_zip, _, _ = c.predict(
        None, frames_zip=handle_file(str(frames)), api_name="/segment")  # fmt: skip
    assert status.startswith("done: 12 frames, 2 tracks")
    assert Path(mp4).name == "bmx-trees_overlay.mp4" and probe(mp4).num_frames == 12
    pngs = sorted(n for n in zip_names(masks_zip) if n.startswith("davis/bmx-trees/"))
    assert pngs == sorted(f"davis/bmx-trees/{i}.png" for i in range(12))  # named as the frames
    with pytest.raises(Exception, match="Both a video and a zip of frames are loaded"):
        c.predict(
            handle_file(str(clips["a"])), frames_zip=handle_file(str(frames)), api_name="/segment"
        )
    wide = _frames_zip(tmp_path / "wide.zip", "w", 3, size=(160, 48))  # over max_side=150
    with pytest.raises(Exception, match=r"longest side 160 px, over this app's limit of 150 px"):
        c.predict(None, frames_zip=handle_file(str(wide)), api_name="/segment")
    empty = _zip_of(tmp_path / "empty.zip", {"notes.txt": b"hi"})
    with pytest.raises(Exception, match=r"empty\.zip holds no \.jpg/\.jpeg/\.png file"):
        c.predict(None, frames_zip=handle_file(str(empty)), api_name="/segment")
    session = server[1] / c.session_hash
    assert wait_for(lambda: not any(session.glob("run-*")))  # the failed runs left no folder


def test_a_zip_of_frames_is_described_before_run(tmp_path):
    from uvosam_app import handlers as app_handlers

    app = app_handlers.App(lambda preset, sam: None, AppSettings(work_root=tmp_path, max_side=150))
    frames = _frames_zip(tmp_path / "upload.zip", "bmx-trees", 30)
    text = app.describe(None, "idol-ytvis19-r50", "vit_b", 2, 10, str(frames))
    assert text.startswith("**upload.zip**: 96x64, 30 frames. Run covers 10 frames, every 2nd of the first 19 "
                           "(Max frames is 10).")  # fmt: skip
    wide = _frames_zip(tmp_path / "wide.zip", "w", 2, size=(160, 48))
    assert "over this app's limit of 150 px" in app.describe(
        None, "idol-ytvis19-r50", "vit_b", 1, 900, str(wide)
    )
    both = app.describe(str(frames), "idol-ytvis19-r50", "vit_b", 1, 900, str(frames))
    assert both.startswith("**Both a video and a zip of frames are loaded:**")


def _jpeg(size=(96, 64), orientation: int | None = None, seed: int = 0) -> bytes:
    """A noise JPEG of ``size`` (w, h) as stored; ``orientation`` sets its EXIF Orientation tag."""
    pixels = np.random.default_rng(seed).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    buffer, exif = io.BytesIO(), Image.Exif()
    if orientation is not None:
        exif[0x0112] = orientation
    Image.fromarray(pixels).save(buffer, format="JPEG", exif=exif)
    return buffer.getvalue()


def test_a_zip_of_frames_is_described_as_run_sees_it(tmp_path):
    """Describe says what Run would do with the zip: EXIF-rotated size, and the refusals Run makes
    (frames of mixed sizes, two files for one frame, more files than Run unpacks)."""
    from uvosam_app import handlers as app_handlers

    app = app_handlers.App(lambda preset, sam: None, AppSettings(work_root=tmp_path, max_frames=3))
    args = ("idol-ytvis19-r50", "vit_b", 1, 3)
    rotated = _zip_of(
        tmp_path / "rot.zip", {f"s/{i:05d}.jpg": _jpeg(orientation=6) for i in range(2)}
    )
    # as decoded
    assert app.describe(None, *args, str(rotated)).startswith("**rot.zip**: 64x96, 2 frames.")
    from test_video import _png_with_exif_after_pixels

    image = Image.new("RGB", (96, 64))
    exif = image.getexif()
    exif[0x0112] = 6
    png = _png_with_exif_after_pixels(tmp_path / "late.png", image, exif).read_bytes()
    late = _zip_of(tmp_path / "late.zip", {f"s/{i:05d}.png": png for i in range(2)})
    # EXIF after pixels
    assert app.describe(None, *args, str(late)).startswith("**late.zip**: 64x96, 2 frames.")
    mixed = _zip_of(
        tmp_path / "mixed.zip", {"s/00000.jpg": _jpeg(), "s/00001.jpg": _jpeg((64, 96))}
    )
    text = app.describe(None, *args, str(mixed))
    assert text.startswith("**Run would refuse this input:** mixed.zip: frames differ in size: "
                           "s/00000.jpg is 96x64 but s/00001.jpg is 64x96")  # fmt: skip
    dup = _zip_of(
        tmp_path / "dup.zip", {"s/00000.jpg": _jpeg(), "s/00000.png": _jpeg(), "s/1.jpg": _jpeg()}
    )
    assert "dup.zip has two files for frame '00000' (00000.jpg, 00000.png)" in app.describe(
        None, *args, str(dup)
    )
    # Run unpacks <= 30
    many = _zip_of(tmp_path / "many.zip", {f"s/{i:05d}.jpg": _jpeg() for i in range(31)})
    assert "many.zip holds 31 .jpg/.jpeg/.png files" in app.describe(None, *args, str(many))


def test_a_zip_of_frames_keeps_a_non_ascii_folder_name(tmp_path):
    from uvosam_app import uploads

    files = {"велосипед/00000.jpg": _jpeg()}
    out = uploads.FramesZip(str(_zip_of(tmp_path / "u.zip", files))).extract(
        tmp_path / "f", AppSettings()
    )
    assert out.name == "велосипед"
    root = uploads.FramesZip(str(_zip_of(tmp_path / "мой клип.zip", {"00000.jpg": _jpeg()})))
    assert root.extract(tmp_path / "g", AppSettings()).name == "мой_клип"


def test_stop_while_a_zip_of_frames_unpacks_starts_no_model(tmp_path, monkeypatch):
    """Stop pressed while the run unpacks its zip: no model is loaded or run afterwards."""
    from uvosam_app import handlers as app_handlers
    from uvosam_app import uploads

    unpacking, go_on, loaded = threading.Event(), threading.Event(), []
    real_extract = uploads.FramesZip.extract

    def slow_extract(self, parent, settings):
        unpacking.set()
        go_on.wait(10)
        return real_extract(self, parent, settings)

    monkeypatch.setattr(uploads.FramesZip, "extract", slow_extract)
    app = app_handlers.App(
        lambda preset, sam: loaded.append(preset), AppSettings(work_root=tmp_path)
    )
    frames = _frames_zip(tmp_path / "upload.zip", "seq", 4)
    steps = stepped(app.segment(None, "idol-ytvis19-r50", "vit_b", 0.0, 10, 1, 900, 0, True, True, "overlay",
                                str(frames), False, None))  # fmt: skip
    next(steps)
    assert unpacking.wait(10)
    steps.close()  # Stop
    go_on.set()
    assert wait_for(lambda: not any(tmp_path.glob("*/run-*")))  # the run's folder went
    time.sleep(0.3)
    assert loaded == []  # the models were not asked for


def test_the_unpacked_frames_are_gone_before_the_run_says_done(tmp_path, monkeypatch):
    """Not after: a client that looks as soon as it hears "done" finds no frames left (seen once in CI)."""
    from uvosam.job_types import JobOptions, JobProgress
    from uvosam_app import handlers as app_handlers
    from uvosam_app import uploads

    app = app_handlers.App(lambda preset, sam: None, AppSettings(work_root=tmp_path))
    unpacked = []

    def models(tracker, sam, changes, source, run_dir, options):
        unpacked.append(Path(source))
        yield JobProgress(frames_done=1, frames_total=2, elapsed_s=0.1)
        yield JobProgress(frames_done=2, frames_total=2, elapsed_s=0.2, result="the result")

    monkeypatch.setattr(app, "_run_models", models)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    source = uploads.FramesZip(str(_frames_zip(tmp_path / "seq.zip", "seq", 2)))
    results = []
    for step in app._job("idol-ytvis19-r50", "vit_b", {}, source, run_dir, JobOptions()):
        results.append(step.result)
        # the models run on the unpacked frames; they are deleted once the models are done
        if unpacked:
            assert unpacked[0].is_dir() == (step.result is None), step
    assert results == [None, None, "the result"] and unpacked == [run_dir / "frames" / "seq"]


def test_a_run_of_frames_names_no_server_path_and_keeps_no_frames(server, tmp_path):
    """A damaged frame is named by its place in the zip, not by the server's run folder; after a
    run the unpacked frames are gone (the mask cache feeds Re-render) and Re-render works."""
    c = client(server)
    files = {f"seq/{i:05d}.jpg": _jpeg(seed=i) for i in range(4)}
    # cut: its header reads, its pixels do not
    files["seq/00002.jpg"] = files["seq/00002.jpg"][:-600]
    cut = _zip_of(tmp_path / "cut.zip", files)
    with pytest.raises(Exception) as refused:
        c.predict(None, frames_zip=handle_file(str(cut)), api_name="/segment")
    message = str(refused.value)
    assert "cut.zip/seq/00002.jpg" in message and str(server[1]) not in message, message
    ok = _frames_zip(tmp_path / "ok.zip", "seq", 6)
    assert c.predict(None, frames_zip=handle_file(str(ok)), api_name="/segment")[0].startswith(
        "done: 6 frames"
    )
    runs = list((server[1] / c.session_hash).glob("run-*"))
    assert len(runs) == 1 and not (runs[0] / "frames").exists(), sorted(
        p.name for p in runs[0].iterdir()
    )
    status = c.predict([1], api_name="/rerender")[0]
    assert status.startswith("done: 6 frames, 1 track "), status


def test_a_davis_sequence_zip_is_scored_by_name_with_its_annotations(server, tmp_path):
    """The researcher's story: JPEGImages/480p/bmx-trees zipped, run (every frame, Frame stride 2,
    stride 2 with Max frames), each scored against a zip like Annotations_unsupervised/480p/bmx-trees
    (one PNG per SOURCE frame, 00000.png ...): the run's own masks with labels swapped at the frames
    it processed, empty masks at the others. Only a match by name gives J&F 1."""
    from uvosam.testing import moving_shapes

    c = client(server)
    files = {}
    for i, frame in enumerate(moving_shapes(12, height=64, width=96, seed=4).frames):
        buffer = io.BytesIO()
        Image.fromarray(frame).save(buffer, format="JPEG", quality=95)
        files[f"bmx-trees/{i:05d}.jpg"] = buffer.getvalue()
    frames = _zip_of(tmp_path / "bmx-trees.zip", files)
    swap = np.array([0, 2, 1] + list(range(3, 256)), np.uint8)
    for settings, covered in (({}, range(12)), ({"stride": 2}, range(0, 12, 2)),
                              ({"stride": 2, "max_frames": 4}, range(0, 8, 2))):  # fmt: skip
        run = c.predict(None, frames_zip=handle_file(str(frames)), api_name="/segment", **settings)
        assert run[0].startswith(f"done: {len(covered)} frames"), (settings, run[0])
        with zipfile.ZipFile(run[4]) as zf:
            ours = {
                n.rsplit("/", 1)[1]: zf.read(n)
                for n in zf.namelist()
                if n.startswith("davis/bmx-trees/")
            }
        assert sorted(ours) == [f"{i:05d}.png" for i in covered], settings
        annotations = {}
        for i in range(12):
            ids = (
                np.asarray(Image.open(io.BytesIO(ours[f"{i:05d}.png"])))
                if i in covered
                else np.zeros((64, 96))
            )
            buffer = io.BytesIO()
            Image.fromarray(swap[ids.astype(np.uint8)]).save(buffer, format="PNG")
            annotations[f"bmx-trees/{i:05d}.png"] = buffer.getvalue()
        gt = _zip_of(tmp_path / "bmx-trees-gt.zip", annotations)
        text = c.predict(handle_file(str(gt)), handle_file(run[4]), api_name="/score")
        head = f"**J&F 1.000** (J 1.000, F 1.000) over 2 objects and {len(covered)} frames"
        assert text.startswith(head), (settings, text)


def _finished_run(app, request) -> object:
    """``app.segment`` of a 6-frame zip to its end (session of ``request``); returns its SessionRun."""
    import tempfile

    frames = _frames_zip(Path(tempfile.mkdtemp()) / "seq.zip", "seq", 6)
    steps = stepped(app.segment(None, "idol-ytvis19-r50", "vit_b", 0.0, 10, 1, 900, 0, True, True, "overlay",
                                str(frames), False, request))  # fmt: skip
    return list(steps)[-1][-1]


def test_a_run_started_during_a_rerender_of_the_same_session_leaves_its_masks_alone(
    tmp_path, tiny_sam_model, monkeypatch
):
    """Re-render (or Score) reads the last run's mask cache while a new Run of the same tab starts: the
    new Run deletes the session's idle folders, and the cache being read must not be one of them."""
    import types

    from uvosam_app import handlers as app_handlers

    pipe = UVOSAM(MovingBoxTracker(num_objects=2), BoxPromptSegmenter(tiny_sam_model))
    app = app_handlers.App(
        lambda preset, sam: pipe, AppSettings(work_root=tmp_path, status_interval_s=0.1)
    )
    request = types.SimpleNamespace(session_hash="tab")
    state = _finished_run(app, request)
    reading, go_on = threading.Event(), threading.Event()
    real = app_handlers.rerender_iter

    def slow_rerender(*args, **kwargs):
        reading.set()
        go_on.wait(10)
        yield from real(*args, **kwargs)

    monkeypatch.setattr(app_handlers, "rerender_iter", slow_rerender)
    redo = stepped(app.rerender([1, 2], True, True, 0, "matte", "", False, 0.0, state, request))  # fmt: skip
    first = next(redo)  # the re-render is under way
    assert reading.wait(10)
    new_run = app.work.new_dir("tab", "run")  # what a Run pressed now does first
    assert state.cache_dir.is_dir()
    go_on.set()
    updates = [first, *redo]
    assert updates[-1][0].startswith("done: 6 frames, 2 tracks"), updates[-1][0]
    app.work.release(new_run)


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
    state = _finished_run(app, request)
    busy = app.work.new_dir("api", "rerender", keep=state.run_dir)
    app.forget(state).join(10)
    # the run went, the busy one stays
    assert [p.name for p in (tmp_path / "api").iterdir()] == [busy.name]
    app.work.release(busy)
    app.forget(_finished_run(app, request)).join(10)
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


class _CopyCountingLoader:
    """A model loader (``get_pipeline``) that counts the deep copies made of it: the app's holds every model loaded."""

    def __init__(self) -> None:
        self.copies = 0

    def __call__(self, preset: str, sam: str) -> UVOSAM:
        raise FileNotFoundError("no weights in this test")

    def __deepcopy__(self, memo: dict) -> _CopyCountingLoader:
        self.copies += 1
        return self


def test_the_page_config_copies_no_model(tmp_path):
    """Gradio deep-copies the page's config for every GET /config, and a State's delete callback is in it: a bound
    method of the App copied the App, its loader and every model it held (0.3-1.4 s a request with SAM 2.1 tiny on
    CPU, 2-4 s for 6 at once: gradio_client's Client() timed out at 5 s)."""
    loader = _CopyCountingLoader()
    with launched(loader, AppSettings(work_root=tmp_path)) as url:
        for _ in range(2):
            with urllib.request.urlopen(f"{url.rstrip('/')}/config", timeout=10) as response:
                config = json.loads(response.read())
    assert any(c.get("type") == "state" for c in config["components"])
    assert loader.copies == 0


def test_a_video_over_the_limits_is_refused_before_the_models_load(tmp_path):
    """Run checks the video's limits before loading the models and before asking ZeroGPU for a GPU: an
    over-long upload costs no GPU quota and no model load."""
    import gradio as gr

    from uvosam_app import handlers as app_handlers

    loads = []
    settings = AppSettings(work_root=tmp_path / "work", max_seconds=1.0)
    app = app_handlers.App(lambda preset, sam: loads.append(preset), settings)
    clip = write_clip(tmp_path / "long.mp4", 24, 64, 48, fps=8)  # 3 s
    with pytest.raises(gr.Error, match="lasts 3.0 s"):
        list(stepped(app.segment(str(clip), "idol-ytvis19-r50", "vit_b", 0.0, 10, 1, 900, 0, True, True,
                                 "overlay")))  # fmt: skip
    assert loads == []


def test_a_file_over_the_upload_limit_is_refused_however_it_came(tmp_path):
    """Gradio bounds the browser's uploads (max_file_size), the app's downloader a file passed over the API as a
    link (tests/test_app_url.py); Run, the description and Score refuse a file over the limit too, whatever way it
    came."""
    import gradio as gr

    from uvosam_app import handlers as app_handlers

    app = app_handlers.App(
        lambda preset, sam: None, AppSettings(work_root=tmp_path / "work", max_upload_mb=1)
    )
    big = tmp_path / "big.mp4"
    big.write_bytes(bytes(3 << 19))  # 1.5 MiB
    message = r"big\.mp4 is 2 MB, over this app's upload limit of 1 MB.*UVOSAM_MAX_UPLOAD_MB"
    with pytest.raises(gr.Error, match=message):
        list(stepped(app.segment(str(big), "idol-ytvis19-r50", "vit_b", 0.0, 10, 1, 900, 0, True, True,
                                 "overlay")))  # fmt: skip
    with pytest.raises(gr.Error, match=message.replace("mp4", "zip")):
        list(stepped(app.segment(None, "idol-ytvis19-r50", "vit_b", 0.0, 10, 1, 900, 0, True, True, "overlay",
                                 str(big.rename(big.with_suffix(".zip"))))))  # fmt: skip
    about = app.describe(None, "idol-ytvis19-r50", "vit_b", 1, 900, str(big.with_suffix(".zip")))
    assert re.match(r"\*\*Run would refuse this input:\*\* " + message.replace("mp4", "zip"), about)
    masks = tmp_path / "masks.zip"
    masks.write_bytes(b"")
    with pytest.raises(gr.Error, match=message.replace("mp4", "zip")):
        app.score(str(big.with_suffix(".zip")), str(masks))
    assert not any((tmp_path / "work").iterdir())


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
        _finished_run(app, None)
    assert (err.value.title, err.value.message) == ("ZeroGPU quota exceeded", quota)


def test_rerender_with_no_track_ticked_says_so(server, clips):
    """``keep`` is optional in the API (default []): a re-render that keeps nothing is refused with what
    to pass, not a video without any object."""
    c = client(server)
    c.predict(handle_file(str(clips["a"])), stride=4, api_name="/segment")
    with pytest.raises(Exception, match=r"No track to keep.*keep=\[1, 2\]"):
        c.predict(style="matte", api_name="/rerender")


def test_a_zipped_frame_with_a_broken_exif_is_refused_clearly(tmp_path):
    from test_video import _before_iend, _png_chunk

    from uvosam_app import handlers as app_handlers

    buffer = io.BytesIO()
    Image.new("RGB", (32, 24)).save(buffer, format="PNG")
    broken = _before_iend(buffer.getvalue(), _png_chunk(b"eXIf", b"garbage!!"))
    frames = _zip_of(tmp_path / "bad.zip", {"s/00000.png": broken, "s/00001.png": broken})
    app = app_handlers.App(lambda preset, sam: None, AppSettings(work_root=tmp_path))
    text = app.describe(None, "idol-ytvis19-r50", "vit_b", 1, 900, str(frames))
    assert text.startswith(
        "**Run would refuse this input:** bad.zip: s/00000.png is not a readable image"
    )


def test_the_description_shows_names_and_refusals_as_written(tmp_path):
    from uvosam_app import handlers as app_handlers

    # a zip member's name with a tag in it: Markdown rendered it as bold, or dropped it
    frames = _zip_of(
        tmp_path / "a&b.zip", {"s/0<b>1.png": b"not a png", "s/00002.png": b"nor this"}
    )
    app = app_handlers.App(lambda preset, sam: None, AppSettings(work_root=tmp_path))
    text = app.describe(None, "idol-ytvis19-r50", "vit_b", 1, 900, str(frames))
    assert text.startswith(
        "**Run would refuse this input:** a&amp;b.zip: s/0&lt;b&gt;1.png is not a readable"
    ), text


def test_score_after_gradio_dropped_the_masks_zip_says_to_run_again(tmp_path):
    import gradio as gr

    from uvosam_app import handlers as app_handlers

    app = app_handlers.App(lambda preset, sam: None, AppSettings(work_root=tmp_path))
    gt = _zip_of(tmp_path / "gt.zip", {"gt/0.png": b""})
    with pytest.raises(gr.Error, match="no longer kept on the server .*run the video again"):
        app.score(str(gt), str(tmp_path / "gone" / "masks.zip"))


def test_refusals_of_what_the_user_did_print_no_traceback_in_the_server_log(tmp_path):
    """A refusal that tells the user what to do (no video yet, Re-render or Score before a run, no link, ...) is
    no failure of the app: Gradio prints the traceback of a ``gr.Error`` unless it says not to, and the server log
    filled with tracebacks of users' ordinary mistakes hides the real failures."""
    import gradio as gr

    from uvosam_app import handlers as app_handlers

    app = app_handlers.App(lambda preset, sam: None, AppSettings(work_root=tmp_path))
    video = write_clip(tmp_path / "v.mp4", 4, 32, 32)
    frames = _frames_zip(tmp_path / "f.zip", "f", 2)
    state = app_handlers.SessionRun(tmp_path / "run", tmp_path / "run" / "cache")
    masks = _zip_of(tmp_path / "masks.zip", {"davis/v/00000.png": b""})

    def segment(video, frames_zip, style="overlay"):
        return list(stepped(app.segment(video, "idol-ytvis19-r50", "vit_b", 0.0, 10, 1, 900, 0, True, True, style,
                                        frames_zip)))  # fmt: skip

    def rerender(state):
        return list(
            stepped(app.rerender([1], True, True, 0, "overlay", "", False, 0.0, state, None))
        )

    refusals = {
        "no input": lambda: segment(None, None),
        "two inputs": lambda: segment(str(video), str(frames)),
        "a style not offered": lambda: segment(str(video), None, style="sepia"),
        "Re-render before a run": lambda: rerender(None),
        "Re-render of a run gone": lambda: rerender(state),
        "Score before a run": lambda: app.score(None, None),
        "Score without ground truth": lambda: app.score(None, str(masks)),
        "Score of a zip Run did not make": lambda: app.score(str(masks), str(masks)),
        "Load without a link": lambda: app.links.load_url(" "),
    }
    for what, refuse in refusals.items():
        with pytest.raises(gr.Error) as err:
            refuse()
        assert err.value.print_exception is False, (what, err.value.message)


def test_a_failed_run_or_rerender_ends_its_status_line(tmp_path, tiny_sam_model, monkeypatch):
    """A run that fails after it started showed "starting…" (or its last frame count) in the status line for good,
    under the error toast that goes away: its last update now says it failed, and why."""
    import types

    import gradio as gr

    from uvosam_app import handlers as app_handlers

    pipe = UVOSAM(MovingBoxTracker(num_objects=2), BoxPromptSegmenter(tiny_sam_model))
    settings = AppSettings(work_root=tmp_path, status_interval_s=0.1)
    app = app_handlers.App(lambda preset, sam: pipe, settings)
    bad = _zip_of(tmp_path / "bad.zip", {"s/00000.jpg": b"not a jpeg", "s/00001.jpg": b"nor this"})
    run = stepped(app.segment(None, "idol-ytvis19-r50", "vit_b", 0.0, 10, 1, 900, 0, True, True, "overlay",
                              str(bad), False, None))  # fmt: skip
    updates = []
    with pytest.raises(gr.Error, match="s/00000.jpg is not a readable image") as err:
        updates.extend(run)
    assert updates[0][0] == "starting…"
    assert updates[-1][0] == f"failed: {err.value.message}"

    request = types.SimpleNamespace(session_hash="tab")
    state = _finished_run(app, request)

    def failing_rerender(*args, **kwargs):
        raise ValueError("the cached masks are damaged")
        yield

    monkeypatch.setattr(app_handlers, "rerender_iter", failing_rerender)
    redo = stepped(app.rerender([1, 2], True, True, 0, "matte", "", False, 0.0, state, request))
    updates = []
    with pytest.raises(gr.Error, match="the cached masks are damaged"):
        updates.extend(redo)
    assert updates[-1][0] == "failed: the cached masks are damaged"


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
    for shown in ("starting…", "segmenting: frame 3/48 · 4.1 fps · ETA 9 s", "re-rendering: frame 1/9",
                  "segmenting: waiting for a free worker (other jobs run first)… 4 s"):  # fmt: skip
        assert pressed(shown) == stopped, shown


def test_the_zip_shown_has_one_listener_which_also_clears_the_scores(tmp_path):
    """Gradio 6.31's page fires the change of a File that a generator sets again and again while two or more
    listeners watch it: the timeline and the merge hints, two listeners, were read from each run's zip dozens of
    times (the same cached image rewritten while the browser read it), and a third never let it stop. One listener
    shows both, and clears the scores shown (of other masks; they went under a failed Score too, "Error" over
    "J&F 1.000"), as a new ground truth does."""
    import app as app_module

    demo = app_module.build_demo(lambda preset, sam: None, settings=AppSettings(work_root=tmp_path))
    config = demo.get_config_file()
    ids = {c["props"].get("elem_id"): c["id"] for c in config["components"]}
    deps = config["dependencies"]
    on_zip = [d for d in deps if [ids["zip"], "change"] in [list(t) for t in d["targets"]]]
    assert len(on_zip) == 1 and on_zip[0]["queue"] is False
    assert on_zip[0]["outputs"] == [
        ids["timeline"],
        ids["timeline-narrow"],
        ids["hints"],
        ids["scores"],
    ]
    on_gt = [d for d in deps if [ids["gt"], "change"] in [list(t) for t in d["targets"]]]
    assert [d["outputs"] for d in on_gt] == [[ids["scores"]]]
    # a run starts: all cleared
    assert demo.fns[on_zip[0]["id"]].fn(None, "") == (None, None, "", "")
    assert demo.fns[on_gt[0]["id"]].fn() == ""


def test_rerender_or_score_during_a_run_say_to_let_it_finish(tmp_path):
    """A Run under way has let the tab's last run go: Re-render or Score pressed meanwhile said "Run a video
    first" to a user whose video was running."""
    import gradio as gr

    from uvosam_app import handlers as app_handlers

    app = app_handlers.App(lambda preset, sam: None, AppSettings(work_root=tmp_path))
    during_a_run = None  # the state once a Run has sent its first update
    with pytest.raises(gr.Error, match=r"Run a video first \(or let the run under way finish\)"):
        list(
            stepped(app.rerender([1], True, True, 0, "overlay", "", False, 0.0, during_a_run, None))
        )
    with pytest.raises(gr.Error, match=r"Run a video first \(or let the run under way finish\)"):
        app.score(None, None)


def test_enter_in_the_merge_box_re_renders(tmp_path):
    """Typing "2>1" in *Merge tracks* and pressing Enter did nothing (Enter in the link box loads)."""
    import app as app_module

    demo = app_module.build_demo(lambda preset, sam: None, settings=AppSettings(work_root=tmp_path))
    config = demo.get_config_file()
    ids = {c["props"].get("elem_id"): c["id"] for c in config["components"]}
    rerender = next(d for d in config["dependencies"] if d["api_name"] == "rerender")
    assert {tuple(t) for t in rerender["targets"]} == {
        (ids["rerender"], "click"),
        (ids["merge"], "submit"),
    }
    stop = next(d for d in config["dependencies"] if d["cancels"])
    assert rerender["id"] in stop["cancels"]  # Stop stops it either way


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

    frames = _zip_of(tmp_path / "frames.zip", {MARKUP: b"not a jpeg", "f/00001.jpg": b"nor this"})
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
    masks = _zip_of(tmp_path / "masks.zip", {"davis/v/00000.png": b""})
    gt = tmp_path / "g<1>&amp;.zip"
    gt.write_bytes(bytes(2 << 20))  # over the upload limit: the message names the file
    for request, name in ((page, "g&lt;1&gt;&amp;amp;.zip"), (api, gt.name), (None, gt.name)):
        updates = []
        with pytest.raises(gr.Error) as err:
            updates.extend(stepped(app.score_shown(str(gt), str(masks), request)))
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


def test_a_setting_out_of_its_range_is_refused_by_name_over_the_api(server, clips, capfd):
    """Gradio's slider refused a number out of its range (typed in its box, sent over the API) with "Value 0 is
    less than minimum value 1.", naming no setting, and printed a traceback. Run refuses it naming the setting and
    its range, and caps an upper bound (Max frames 100000: every frame the app allows); no traceback."""
    from gradio_client.exceptions import AppError

    c, video = client(server), handle_file(str(clips["a"]))
    refused = {
        "stride": (0, r"Frame stride \(stride over the API\) takes 1 to 10; got 0\."),
        "min_score": (
            5,
            r"Detection score threshold \(min_score over the API\) takes 0 to 1; got 5",
        ),
        "max_objects": (0, r"Max objects \(max_objects over the API\) takes 1 to 20; got 0\."),
        "max_frames": (0, r"Max frames \(max_frames over the API\) takes 1 to 900; got 0\."),
    }
    for name, (value, message) in refused.items():
        with pytest.raises(AppError, match=message):
            c.predict(video, **{name: value}, api_name="/segment")
    status, *_ = c.predict(video, max_frames=100000, max_objects=50, api_name="/segment")
    assert status.startswith("done: 16 frames, 2 tracks")
    with pytest.raises(AppError, match=r"Detection score threshold .* takes 0 to 1; got 2"):
        c.predict([1, 2], min_score=2, api_name="/rerender")
    assert "Traceback" not in capfd.readouterr().err


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


def test_the_file_cache_sweep_and_the_texts_that_name_it_share_one_age(tmp_path):
    """ "About an hour" was written by hand beside app.py's ``delete_cache=(600, 3600)``: changing one would leave
    the texts saying the other."""
    import gradio as gr

    import app as app_module
    from uvosam_app import settings as app_settings
    from uvosam_app.checks import upload_gone
    from uvosam_app.handlers import App

    demo = app_module.build_demo(lambda p, s: None, settings=AppSettings(work_root=tmp_path))
    assert demo.delete_cache == (app_settings.FILE_SWEEP_EVERY_S, app_settings.FILE_MAX_AGE_S)
    demo.close()
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
        app.score(None, str(tmp_path / "gone.zip"))


def test_the_apps_source_lines_fit_120_columns():
    """A docstring line of 155 columns (uploads.py) slipped past the formatter, which leaves long strings alone."""
    root = Path(__file__).resolve().parents[1]
    long = [
        f"{path.relative_to(root)}:{number}"
        for path in [root / "app.py", *sorted((root / "uvosam_app").glob("*.py"))]
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if len(line) > 120
    ]
    assert not long, long
