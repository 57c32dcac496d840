"""Run (``App.segment``) over the API (gradio_client) and called directly: its results, its refusals and its
status line. Tiny models on CPU; the server is conftest.py's ``server``, started once for all the app test files."""

from __future__ import annotations

import re
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("gradio")
from app_helpers import (
    ROOT,
    client,
    davis_labels,
    finished_run,
    run_json,
    stepped,
    wait_for,
    write_clip,
    zip_names,
    zip_of,
)
from doubles import MovingBoxTracker
from gradio_client import handle_file

from uvosam.errors import InputError
from uvosam.pipeline import UVOSAM
from uvosam.segmenter import BoxPromptSegmenter
from uvosam.video import iter_frames, probe
from uvosam_app.settings import AppSettings


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
    from uvosam.colours import colour_for_id
    from uvosam_app.results import timeline_views

    # (and drawn for a phone's width: a 390 px phone's column is 326 px wide)
    image, narrow, _ = timeline_views(zip_path)
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
    wide, none, _ = timeline_views(str(bare))
    assert wide.shape == image.shape and none is None
    # a run starts: cleared
    assert timeline_views(None)[:2] == (None, None)


def test_segment_in_a_style_from_the_api(server, clips):
    status, _, _, mp4, zip_path, _, _ = client(server).predict(
        handle_file(str(clips["a"])), stride=4, style="cutout", show_boxes=False,
        show_labels=False, alpha_webm=True, api_name="/segment")  # fmt: skip
    assert status.startswith("done: 4 frames") and mp4.endswith("clip_a_cutout.mp4")
    assert "clip_a_alpha.webm" in zip_names(zip_path)  # the objects over transparency, in the zip
    frame = next(iter_frames(mp4))
    assert (frame < 30).mean() > 0.5 and frame.max() > 60  # objects kept, background black
    with pytest.raises(
        Exception,
        match=r"\(style over the API\) takes one of overlay, cutout, .*; got 'no-such-style'",
    ):
        client(server).predict(
            handle_file(str(clips["a"])), style="no-such-style", api_name="/segment"
        )


@pytest.mark.parametrize(
    "kind, message",
    [
        ("empty", "is empty"),
        ("text", "is not a video"),
        ("huge", "longest side 4112 px, over this app's limit of 4096 px.*UVOSAM_MAX_SIDE"),
    ],
)
def test_bad_upload_gets_a_clear_error(server, clips, kind, message):
    with pytest.raises(Exception, match=message):
        client(server).predict(handle_file(str(clips[kind])), api_name="/segment")


def test_missing_weights_and_internal_errors_are_reported(server, clips):
    c = client(server)
    # the API gets the page's words: no server path (the server log names the file)
    with pytest.raises(
        Exception, match="idol-ovis-r50 \\+ SAM ViT-B cannot run here: its weights"
    ) as err:
        c.predict(handle_file(str(clips["a"])), tracker="idol-ovis-r50", api_name="/segment")
    assert "/srv/ckpt" not in str(err.value) and "OVIS_R50_294AP" not in str(err.value)
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
        app.views.score(str(big.with_suffix(".zip")), str(masks))
    assert not any((tmp_path / "work").iterdir())


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


def _until_status(updates, text: str, timeout: float = 30.0) -> list:
    """``drive``'s updates, stepped until one whose status starts with ``text`` (that one last), within ``timeout`` s:
    when the job thread's steps arrive depends on how busy the machine is, not on how many updates went before."""
    seen, end = [], time.monotonic() + timeout
    while not (seen and seen[-1].status.startswith(text)):
        assert time.monotonic() < end, f"no {text!r} within {timeout} s: {[u.status for u in seen]}"
        seen.append(next(updates))
    return seen


def test_the_status_line_says_when_a_job_waits_for_a_worker():
    """Before its first step a job says it is starting (a Run: loading the models on their first use; a
    Re-render loads none), or, while other jobs hold every worker, that it waits for one."""
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
        "re-rendering: waiting for a free worker (other jobs, or a stopped one ending its frame, come first)… "
    )
    slots.release()  # the job gets the worker: its frame counter replaces the waiting line
    _until_status(updates, "re-rendering: frame 1/2")
    assert not pump.queued
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
    # (after "starting" lines where the job's thread starts late)
    first = _until_status(updates, "segmenting: frame 1/3")
    assert first[-1].preview is frame and all(u.preview is None for u in first[:-1])
    # the job waits for go_on: status lines of frame 1/3 only, without its preview
    assert all(next(updates).preview is None for _ in range(5))
    go_on.set()
    rest = _until_status(updates, "segmenting: frame 3/3")  # steps 2 and 3 have come
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


def test_a_failed_run_or_rerender_ends_its_status_line(tmp_path, tiny_sam_model, monkeypatch):
    """A run that fails after it started showed "starting…" (or its last frame count) in the status line for good,
    under the error toast that goes away: its last update now says it failed, and why."""
    import types

    import gradio as gr

    from uvosam_app import handlers as app_handlers
    from uvosam_app import rerender_handlers

    pipe = UVOSAM(MovingBoxTracker(num_objects=2), BoxPromptSegmenter(tiny_sam_model))
    settings = AppSettings(work_root=tmp_path, status_interval_s=0.1)
    app = app_handlers.App(lambda preset, sam: pipe, settings)
    bad = zip_of(tmp_path / "bad.zip", {"s/00000.jpg": b"not a jpeg", "s/00001.jpg": b"nor this"})
    run = stepped(app.segment(None, "idol-ytvis19-r50", "vit_b", 0.0, 10, 1, 900, 0, True, True, "overlay",
                              str(bad), False, None))  # fmt: skip
    updates = []
    with pytest.raises(gr.Error, match="s/00000.jpg is not a readable image") as err:
        updates.extend(run)
    assert updates[0][0] == "starting…"
    assert updates[-1][0] == f"failed: {err.value.message}"

    request = types.SimpleNamespace(session_hash="tab")
    state = finished_run(app, request, tmp_path)

    def failing_rerender(*args, **kwargs):
        raise InputError("the cached masks are damaged")  # as uvosam.mask_cache.damaged refuses
        yield

    monkeypatch.setattr(rerender_handlers, "rerender_iter", failing_rerender)
    redo = stepped(
        app.rerenders.rerender([1, 2], True, True, 0, "matte", "", False, 0.0, state, request)
    )
    updates = []
    with pytest.raises(gr.Error, match="the cached masks are damaged"):
        updates.extend(redo)
    assert updates[-1][0] == "failed: the cached masks are damaged"


def test_the_chunk_a_failing_run_gave_gradio_stays_until_gradio_has_read_it(
    tmp_path, tiny_sam_model
):
    """A run that fails deletes the chunks it wrote at once, in its own thread, while Gradio can still be muxing the
    chunk of the update just yielded (after the yield, before it asks for the next): read from a deleted file, it
    failed the event with Gradio's own error, the run's "failed: ..." line never went out, and the page's failure
    listener wrote "stopped" (a run in 2 on a busy CPU). Gradio gets a file of the run's own, there until it asks
    for the next update."""
    import gradio as gr

    from uvosam_app import handlers as app_handlers

    # the model fails once the test holds an update with a chunk, as Gradio does while it muxes the chunk
    go = threading.Event()

    def failure() -> Exception:
        go.wait(30)
        return RuntimeError("the model failed")

    pipe = UVOSAM(
        MovingBoxTracker(num_objects=2, fail_at=12, error=failure),
        BoxPromptSegmenter(tiny_sam_model),
    )
    work = tmp_path / "work"
    settings = AppSettings(work_root=work, status_interval_s=0.05, chunk_seconds=0.5)
    app = app_handlers.App(lambda preset, sam: pipe, settings)
    clip = write_clip(tmp_path / "clip.mp4", 16, 96, 64)  # 8 fps: a chunk every 4 frames
    run = stepped(app.segment(str(clip), "idol-ytvis19-r50", "vit_b", 0.0, 10, 1, 900, 0, True, True,
                              "overlay", None, False, None))  # fmt: skip
    chunk = Path(next(update[2] for update in run if update[2] is not None))
    go.set()

    def run_files() -> list[Path]:  # the run's video and chunks
        return [*work.rglob("clip_overlay.mp4"), *work.rglob("clip_overlay_chunks/*")]

    assert wait_for(lambda: not run_files(), timeout=30)  # the failed run deleted them
    assert chunk.is_file() and probe(str(chunk)).num_frames == 4  # Gradio reads it whole
    rest = []
    with pytest.raises(gr.Error, match="error id"):
        rest.extend(run)
    assert rest[-1][0].startswith("failed: ") and not chunk.exists()


def test_a_phone_sized_clip_runs_scaled_down_to_the_apps_side(tmp_path, tiny_sam_model, tracker):
    """A 2560x1440 clip (Big Buck Bunny, CC-BY 3.0 Blender Foundation, scaled up by ffmpeg) was refused after its
    upload ("over this app's limit of 1920 px. To use it, resize it"); it runs at 1920x1080, which the description
    says before Run: the video, DAVIS PNGs and cut-outs have that size, run.json records both; ground truth at the
    source's size is refused naming the scaled run and what to do."""
    import io
    import zipfile

    from app_helpers import launched
    from clip_helpers import write_bunny
    from gradio_client import Client
    from PIL import Image

    from uvosam_app import handlers as app_handlers

    clip = write_bunny(tmp_path / "phone.mp4", 2560, 1440, frames=2)
    pipe = UVOSAM(tracker, BoxPromptSegmenter(tiny_sam_model))
    settings = AppSettings(work_root=tmp_path / "work")  # UVOSAM_MAX_SIDE's default: 1920
    text = app_handlers.App(lambda preset, sam: pipe, settings).describe(
        str(clip), "idol-ytvis19-r50", "vit_b", 1, 900
    )
    assert text.startswith(
        "**phone.mp4**: 2560x1440, will be processed at 1920x1080 (scaled down"
    ), text
    with launched(lambda preset, sam: pipe, settings) as url:
        c = Client(url, verbose=False)
        status, _, _, mp4, masks_zip, _, _ = c.predict(
            handle_file(str(clip)), output_side=0, api_name="/segment"
        )  # the video at the processed size (the app's default: 854 px)
        assert status.startswith("done: 2 frames"), status
        info = probe(mp4)
        assert (info.num_frames, info.width, info.height) == (2, 1920, 1080)
        with zipfile.ZipFile(masks_zip) as zf:
            pngs = [n for n in zf.namelist() if n.startswith(("davis/phone/", "cutouts/phone/"))]
            assert any(n.startswith("cutouts/") for n in pngs) and len(pngs) > 2
            assert {Image.open(io.BytesIO(zf.read(n))).size for n in pngs} == {(1920, 1080)}
        made = run_json(masks_zip)
        assert (made["video"]["width"], made["video"]["height"]) == (1920, 1080)
        assert (made["video"]["source_width"], made["video"]["source_height"]) == (2560, 1440)
        assert made["settings"]["fit_side"] == 1920
        truth = {}
        for i in range(2):
            buffer = io.BytesIO()
            Image.new("L", (2560, 1440), 1).save(buffer, format="PNG")
            truth[f"gt/{i:05d}.png"] = buffer.getvalue()
        gt = zip_of(tmp_path / "gt.zip", truth)
        with pytest.raises(Exception, match=re.escape(
            "gt.zip: gt/00000.png is 2560x1440 but these masks are from a run that scaled phone.mp4 down from its "
            "2560x1440 to 1920x1080 (WxH; run.json's fit_side 1920), the size its masks have. Run it again at "
            "its source size (with `uvosam segment`, or in an app whose host set UVOSAM_MAX_SIDE to 2560 or more)"
        )):  # fmt: skip
            c.predict(handle_file(str(gt)), handle_file(masks_zip), api_name="/score")
