"""The app under load and faults, over its API (gradio_client), tiny models on CPU.

Eight sessions at once (queued behind the default concurrency of 1, and 4 at a time), Stop and a
closed tab freeing the worker, a CUDA out-of-memory and a decoding error mid-video, a checkpoint failing its sha256.
Timings are printed (run with -s); the timed assertions are the Stop requirement itself (the next job has the
worker < 2 s after Stop) and a cancel ending its event at once (< 5 s, where the handler's wait was ~20 s). A closed
tab's run is checked by its end line (stopped before its video ended), which no load on the machine changes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import re
import subprocess
import sys
import threading
import time
import types
import urllib.request
from pathlib import Path

import pytest
import torch

pytest.importorskip("gradio")
from app_helpers import (
    davis_labels,
    ffmpeg_children,
    launched,
    processes_mentioning,
    wait_for,
    write_clip,
    zip_names,
)
from doubles import MovingBoxSession, MovingBoxTracker
from gradio_client import Client, handle_file
from proc import pattern_clip

import uvosam.job
from uvosam import hub, weight_checksums, weight_loading, weight_table
from uvosam.pipeline import UVOSAM
from uvosam.segmenter import BoxPromptSegmenter
from uvosam.testing import tiny_sam
from uvosam.video import probe
from uvosam_app import server_log
from uvosam_app.models import PipelineLoader
from uvosam_app.settings import AppSettings

FAST, SLOW, OOM = "idol-ytvis19-r50", "idol-ytvis21-r50", "idol-ovis-r50"
# (frames, width, height) of the eight load clips: all different
LOAD_CLIPS = [(8, 64, 48), (9, 48, 64), (10, 80, 48), (11, 64, 64),
              (12, 96, 48), (8, 48, 48), (9, 72, 56), (10, 64, 40)]  # fmt: skip


class CountingTracker(MovingBoxTracker):
    """MovingBoxTracker that records how many videos are being tracked at once."""

    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self.lock, self.active, self.most = threading.Lock(), 0, 0

    def new_video(self, *, height: int, width: int) -> MovingBoxSession:
        session = MovingBoxSession(self, height, width)
        finish = session.finish
        with self.lock:
            self.active += 1
            self.most = max(self.most, self.active)

        def finish_and_count():
            with self.lock:
                self.active -= 1
            return finish()

        session.finish = finish_and_count
        return session


def out_of_memory() -> torch.OutOfMemoryError:
    return torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    d = tmp_path_factory.mktemp("clips")
    load = [write_clip(d / f"load_{i}.mp4", n, w, h, seed=100 + i)
            for i, (n, w, h) in enumerate(LOAD_CLIPS)]  # fmt: skip
    return {
        "load": load,
        "slow": write_clip(d / "slow.mp4", 40, 64, 48, seed=7),
        "fast": write_clip(d / "fast.mp4", 10, 64, 48, seed=8),
        "oom": write_clip(d / "oom.mp4", 10, 64, 48, seed=9),
        "decode": decode_clip(d / "decode.mp4"),
    }


def decode_clip(path: Path) -> Path:
    """40 frames at 25 fps (one chunk = 25 frames), a keyframe every 4, index first: cut to a
    third, its decoding stops about frame 12, before any chunk is streamed."""
    return pattern_clip(path, "-c:v", "libx264", "-g", "4", "-pix_fmt", "yuv420p", "-movflags", "+faststart",
                        size="160x120", frames=40, rate=25, src="testsrc2")  # fmt: skip


@pytest.fixture(scope="module")
def segmenter(tiny_sam_model):
    return BoxPromptSegmenter(tiny_sam_model)


def serve(
    segmenter,
    work: Path,
    concurrency: int,
    tracker: MovingBoxTracker | None = None,
    calls: list[tuple[float, str]] | None = None,
):
    """The app with these pipelines; ``calls`` (if given) gets (when, preset) of each ``get_pipeline`` call: a job
    makes its first one in its own thread once it holds the worker (``App.gpu_slots``)."""
    pipes = {
        FAST: UVOSAM(tracker or MovingBoxTracker(num_objects=2), segmenter),
        SLOW: UVOSAM(MovingBoxTracker(num_objects=2, delay_s=0.2), segmenter),
        OOM: UVOSAM(MovingBoxTracker(num_objects=2, fail_at=3, error=out_of_memory), segmenter),
    }
    settings = AppSettings(work_root=work, concurrency_limit=concurrency, status_interval_s=0.1)

    def get_pipeline(preset: str, sam: str) -> UVOSAM:
        if calls is not None:
            calls.append((time.monotonic(), preset))
        return pipes[preset]

    return launched(get_pipeline, settings)


@pytest.fixture(scope="module")
def server(tmp_path_factory, segmenter):
    """The app with its default concurrency (1): one run at a time, the others queue; (url, work root, its
    ``get_pipeline`` calls)."""
    work, calls = tmp_path_factory.mktemp("work"), []
    with serve(segmenter, work, 1, calls=calls) as url:
        yield url, work, calls


def assert_own_result(result, clip: Path, frames: int, width: int, height: int) -> None:
    status, _, _, mp4, zip_path, table, _ = result
    assert status.startswith(f"done: {frames} frames, 2 tracks"), status
    info = probe(mp4)
    assert (info.num_frames, info.width, info.height) == (frames, width, height)
    names = zip_names(zip_path)
    assert {n.split("/")[1] for n in names if n.startswith("davis/")} == {clip.stem}
    assert davis_labels(zip_path, clip.stem) == (frames, {0, 1, 2})
    # last frame, frames seen and returns of both tracks are this clip's
    assert [row[4:] for row in table["data"]] == [[frames - 1, frames, 0]] * 2


@pytest.mark.slow
@pytest.mark.parametrize("concurrency", [1, 4])
def test_eight_sessions_at_once_each_get_their_own_result(tmp_path, segmenter, clips, concurrency):
    tracker = CountingTracker(num_objects=2, delay_s=0.03)
    results, errors = {}, []

    def run(i: int, url: str) -> None:
        try:
            client = Client(url, verbose=False)
            results[i] = client.predict(handle_file(str(clips["load"][i])), api_name="/segment")
        except Exception as err:  # noqa: BLE001 - reported below with the session's number
            errors.append((i, err))

    with serve(segmenter, tmp_path, concurrency, tracker) as url:
        started = time.monotonic()
        threads = [threading.Thread(target=run, args=(i, url)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        seconds = time.monotonic() - started
    print(f"\n8 sessions, concurrency {concurrency}: all done in {seconds:.1f} s, "
          f"at most {tracker.most} runs at once")  # fmt: skip
    assert not errors and sorted(results) == list(range(8)), errors
    for i, (frames, width, height) in enumerate(LOAD_CLIPS):
        assert_own_result(results[i], clips["load"][i], frames, width, height)
    assert tracker.most == 1 if concurrency == 1 else 2 <= tracker.most <= concurrency


def first_update_with(job, text: str) -> tuple[float, list]:
    """Wait for the first update whose status contains ``text``; (when, that update)."""
    for update in job:
        if isinstance(update[0], str) and text in update[0]:
            return time.monotonic(), update
    raise AssertionError(f"no update with {text!r}; ended with {job.status()}")


def test_stop_frees_the_worker_for_the_next_job_within_2_s(server, clips):
    """Issue #8: Stop in the middle frees the worker for the next job within 2 s. Bounded: Stop -> the next job has
    the worker (its thread holds the slot and asks for its pipeline). Its first frame also counts that job's own
    start (ffmpeg, the first frame's models) and is only printed: seconds on a CPU shared with other work."""
    url, work, calls = server
    slow_client, fast_client = Client(url, verbose=False), Client(url, verbose=False)
    slow = slow_client.submit(handle_file(str(clips["slow"])), SLOW, api_name="/segment")
    first_update_with(slow, "frame ")  # 40 frames x 0.2 s: it holds the only worker for 8 s
    run_dir = next((work / slow_client.session_hash).glob("run-*"))
    stopped = time.monotonic()
    assert slow.cancel()
    fast = fast_client.submit(handle_file(str(clips["fast"])), api_name="/segment")
    queued, _ = first_update_with(fast, "")
    running, _ = first_update_with(fast, "frame ")  # the worker is processing its frames
    assert fast.result()[0].startswith("done: 10 frames")
    # the first call since Stop is the next job's (the slow run made its own before its first frame)
    after = [(when, preset) for when, preset in calls if when > stopped]
    assert after and after[0][1] == FAST, after
    has_worker = after[0][0]
    print(f"\nStop -> next job's first update {queued - stopped:.2f} s, it has the worker "
          f"{has_worker - stopped:.2f} s, its first frame {running - stopped:.2f} s")  # fmt: skip
    assert has_worker - stopped < 2.0
    assert wait_for(lambda: not run_dir.exists())  # the stopped run's folder is gone
    assert processes_mentioning(str(run_dir)) == []


@pytest.mark.parametrize("endpoint", ["/segment", "/rerender"])
def test_stop_during_a_long_wait_for_the_job_ends_the_event_at_once(
    tmp_path, segmenter, clips, monkeypatch, endpoint
):
    """Gradio ends a cancelled event only once its handler's current step returns. A step of a handler waits for the
    job (up to a status interval, or until the job ends): Stop and the browser's next Run (ignored while the event
    is pending) waited as long; a Stop before the handler's first update did not even stop its job, which ran on,
    folder kept, to its end. Here a step waits ~20 s (a 30 s interval, no chunk mid-run); the cancel returns at once,
    and the job's folder goes with it."""
    import uvosam_app.rerender_handlers as app_rerender_handlers

    def slow_rerender(*args, **kwargs):
        for step in uvosam.job.rerender_iter(*args, **kwargs):
            time.sleep(2.0)  # 10 frames: ~20 s
            yield step

    monkeypatch.setattr(app_rerender_handlers, "rerender_iter", slow_rerender)
    pipes = {FAST: UVOSAM(MovingBoxTracker(num_objects=2), segmenter),
             SLOW: UVOSAM(MovingBoxTracker(num_objects=2, delay_s=0.5), segmenter)}  # fmt: skip
    settings = AppSettings(work_root=tmp_path, status_interval_s=30.0, chunk_seconds=60.0)
    with launched(lambda preset, sam: pipes[preset], settings) as url:
        client = Client(url, verbose=False)
        if endpoint == "/segment":  # 40 frames x 0.5 s: ~20 s
            job = client.submit(handle_file(str(clips["slow"])), SLOW, api_name=endpoint)
        else:
            client.predict(handle_file(str(clips["fast"])), api_name="/segment")
            job = client.submit([1, 2], api_name=endpoint)
        session, kind = (
            tmp_path / client.session_hash,
            endpoint.strip("/").replace("segment", "run"),
        )
        assert wait_for(lambda: any(session.glob(f"{kind}-*")))  # the job started
        folder = next(session.glob(f"{kind}-*"))
        time.sleep(1.0)  # well into the wait
        stopped = time.monotonic()
        assert job.cancel()  # returns once the server has ended the event (or times out after 5 s)
        took = time.monotonic() - stopped
        print(f"\n{endpoint}: the cancel returned after {took:.2f} s")
        assert took < 5.0
        assert wait_for(lambda: not folder.exists())


CLOSING_TAB = """
import sys
from gradio_client import Client, handle_file
client = Client(sys.argv[1], verbose=False)
print(client.session_hash, flush=True)
for update in client.submit(handle_file(sys.argv[2]), sys.argv[3], api_name="/segment"):
    print(update[0], flush=True)
"""


def test_a_closed_tab_mid_run_frees_the_worker_and_deletes_its_run(server, clips, caplog):
    """A user who closes the tab (its connection drops, no Stop) must not keep the only worker for the rest of the
    video: the closed tab's run stops before its video ends (its end line: "stopped", fewer than its 40 frames), the
    next job runs, and nothing of the closed run is left."""
    url, work, _ = server
    caplog.set_level(logging.INFO, logger="uvosam.app")
    tab = subprocess.Popen([sys.executable, "-c", CLOSING_TAB, url, str(clips["slow"]), SLOW],
                           stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        session_hash = tab.stdout.readline().strip()
        while "frame " not in (line := tab.stdout.readline()):
            assert line, "the slow run ended before processing a frame"
    finally:
        tab.kill()  # the tab closes: its connection drops without a cancel request
        tab.wait()
    closed = time.monotonic()
    fast = Client(url, verbose=False).submit(handle_file(str(clips["fast"])), api_name="/segment")
    running, _ = first_update_with(fast, "frame ")
    assert fast.result()[0].startswith("done: 10 frames")
    tag = server_log.session_tag(types.SimpleNamespace(session_hash=session_hash))
    where = re.escape(server_log.where("/segment", False, tag))

    def end_line() -> str | None:  # the closed run's end line (done, stopped, failed or refused)
        lines = [record.getMessage() for record in caplog.records]
        return next((line for line in lines if re.match(rf"(?!start )\w+ {where}: ", line)), None)

    assert wait_for(end_line)
    print(f"\ntab closed -> next job's first frame {running - closed:.2f} s; {end_line()}")
    # not "done ...: 40 frames": the run stopped before its video ended, however long that took here
    stopped = re.fullmatch(rf"stopped {where}: (\d+) frames?, .* s in all", end_line())
    assert stopped and int(stopped[1]) < 40, end_line()
    session = work / session_hash
    assert wait_for(lambda: not any(session.glob("run-*")))
    assert processes_mentioning(str(session)) == []


def assert_failed_cleanly(work: Path, client: Client) -> None:
    """The run's folder is gone, no ffmpeg is left and the server still serves."""
    session = work / client.session_hash
    assert wait_for(lambda: not any(session.glob("run-*")))
    assert wait_for(lambda: ffmpeg_children() == [])


def test_out_of_gpu_memory_mid_video_says_what_to_do(server, clips, monkeypatch):
    emptied = []
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: emptied.append(True))
    client = Client(server[0], verbose=False)
    advice = "Out of memory.*smaller SAM \\(vit_b\\), fewer frames.*lower resolution"
    with pytest.raises(Exception, match=advice):
        client.predict(handle_file(str(clips["oom"])), OOM, api_name="/segment")
    assert emptied == [True]  # the CUDA cache was freed
    assert_failed_cleanly(server[1], client)
    status = client.predict(handle_file(str(clips["fast"])), api_name="/segment")[0]
    assert status.startswith("done: 10 frames")


def test_file_truncated_after_probing_fails_clearly_mid_video(server, clips, monkeypatch):
    real = uvosam.job.iter_probed
    truncated = []

    def probe_then_truncate(info, **kw):  # run_job has probed the whole file; decoding starts next
        os.truncate(info.path, os.path.getsize(info.path) // 3)
        truncated.append(info.path)
        return real(info, **kw)

    monkeypatch.setattr(uvosam.job, "iter_probed", probe_then_truncate)
    client = Client(server[0], verbose=False)
    message = r"decoding decode\.mp4 stopped at frame \d+ \(output frame \d+\) of 40: the data is"
    with pytest.raises(Exception, match=message):
        client.predict(handle_file(str(clips["decode"])), api_name="/segment")
    assert truncated
    monkeypatch.undo()
    assert_failed_cleanly(server[1], client)
    status = client.predict(handle_file(str(clips["fast"])), api_name="/segment")[0]
    assert status.startswith("done: 10 frames")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def banner(url: str) -> str:
    with urllib.request.urlopen(f"{url.rstrip('/')}/config", timeout=30) as response:
        config = json.loads(response.read())
    return next(
        c["props"]["value"] for c in config["components"] if c["props"].get("elem_id") == "banner"
    )


def test_checkpoint_failing_its_sha256_is_refused_and_fetched_again(
    tmp_path, monkeypatch, clips, caplog
):
    """The real loader path (PipelineLoader -> hub.resolve) with a faked Hub download."""
    src = tmp_path / "src.pth"
    torch.save(tiny_sam().state_dict(), src)
    good = src.read_bytes()
    bad = good[:100] + bytes([good[100] ^ 0xFF]) + good[101:]
    spec = dataclasses.replace(
        weight_table.WEIGHTS["sam_vit_b"], sha256=sha256(good), size_bytes=len(good), url=None
    )
    monkeypatch.setitem(weight_table.WEIGHTS, "sam_vit_b", spec)
    monkeypatch.delitem(weight_table.WEIGHTS, FAST)  # the tracker is a double: no weight file
    monkeypatch.setattr(weight_checksums, "_HASHES", {})
    monkeypatch.setenv("UVOSAM_CHECKPOINTS", str(tmp_path / "no-checkpoints"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(hub.hf_constants, "HF_HUB_OFFLINE", False)
    cached, on_hub, downloads = tmp_path / "hf" / spec.basename, {"data": bad}, []
    cached.parent.mkdir()
    cached.write_bytes(bad)  # a corrupt copy in the cache

    def download(*, repo_id, filename, cache_dir, local_files_only, force_download):
        downloads.append(force_download)
        if force_download or not cached.exists():
            cached.write_bytes(on_hub["data"])
        return str(cached)

    monkeypatch.setattr(hub.huggingface_hub, "hf_hub_download", download)

    def load_segmenter(sam: str, device: str) -> BoxPromptSegmenter:
        model = tiny_sam()
        model.load_state_dict(weight_loading.load_checkpoint(loader.weight_files["sam_vit_b"]))
        return BoxPromptSegmenter(model)

    loader = PipelineLoader(
        device="cpu",
        load_tracker=lambda preset, device: MovingBoxTracker(num_objects=2),
        load_segmenter=load_segmenter,
    )
    with launched(loader, AppSettings(work_root=tmp_path / "work")) as url:
        refused = f"not a good copy of {spec.basename}.*sha256 {spec.sha256}"
        assert downloads == [False, True]  # at start: the bad cached copy was fetched again...
        assert "Models not loaded" in banner(url) and "are unusable (damaged or not" in banner(url)
        assert "not a good copy" in caplog.text  # the details: in the log, for the host
        client = Client(url, verbose=False)
        caplog.clear()
        # ... and the Hub's copy was bad too: the visitor is told so, the log names the file and its checksum
        with pytest.raises(
            Exception, match=r"SAM ViT-B cannot run here: its weights are not installed"
        ):
            client.predict(handle_file(str(clips["fast"])), api_name="/segment")
        assert re.search(refused, caplog.text)
        on_hub["data"] = good
        cached.write_bytes(bad)
        status = client.predict(handle_file(str(clips["fast"])), api_name="/segment")[0]
    assert status.startswith("done: 10 frames")
    assert downloads[-2:] == [False, True] and cached.read_bytes() == good


def test_job_pump_cleans_up_once_both_the_worker_and_the_ui_are_done():
    from uvosam.job_types import JobProgress
    from uvosam_app.work import JobPump

    aborted, release = [], threading.Event()

    def failing():
        yield JobProgress(1, 3, 0.1)
        release.wait(10)
        raise RuntimeError("model failed")

    pump = JobPump(failing, threading.Semaphore(1), on_abort=lambda: aborted.append(True)).start()
    assert wait_for(lambda: pump.poll(0.1), 5)  # the first step arrived; the worker is waiting
    pump.cancel()  # the UI is done first: the worker may still write, so nothing is deleted yet
    assert aborted == []
    release.set()
    assert wait_for(lambda: aborted == [True], 5)  # deleted once, when the worker stopped
    pump.cancel()
    assert aborted == [True]

    def failing_at_once():
        raise RuntimeError("model failed")
        yield

    early = JobPump(failing_at_once, threading.Semaphore(1), on_abort=lambda: aborted.append(1))
    early.start()
    items = []
    assert wait_for(lambda: any(item.done for item in items.extend(early.poll(0.1)) or items), 5)
    assert aborted == [True]  # the worker is done, but the UI may still be sending its chunks
    early.cancel()
    assert wait_for(lambda: aborted == [True, 1], 5)

    def finishing():
        yield JobProgress(1, 1, 0.1, result=object())  # a run that produced its result

    done = JobPump(finishing, threading.Semaphore(1), on_abort=lambda: aborted.append(True))
    done.start()
    assert wait_for(lambda: any(item.done for item in done.poll(0.1)), 5)
    done.cancel()
    assert aborted == [True, 1]  # a finished run's files are kept


def test_waiting_for_a_job_leaves_the_event_loop_free_and_wakes_on_its_step():
    """A handler's wait for its job runs on Gradio's event loop, which every session shares: while it waits, other
    tasks run; a step of the job ends the wait at once (not at its timeout); a cancel (Stop) ends it at once too."""
    import asyncio

    from uvosam.job_types import JobProgress
    from uvosam_app.work import JobPump

    go_on, end = threading.Event(), threading.Event()

    def job():
        go_on.wait(10)
        yield JobProgress(1, 1, 0.1)
        end.wait(30)

    async def main() -> tuple[float, float, list]:
        pump = JobPump(job, threading.Semaphore(1)).start()
        waiting = asyncio.create_task(pump.next_items(30.0))
        started = time.monotonic()
        await asyncio.sleep(0.2)  # another session's task: it runs while the job is waited for
        slept = time.monotonic() - started
        go_on.set()
        items = await waiting  # woken by the step
        woken = time.monotonic() - started
        stopped = asyncio.create_task(pump.next_items(30.0))
        await asyncio.sleep(0.1)
        stopped.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await stopped
        pump.cancel()
        end.set()
        return slept, woken, items

    slept, woken, items = asyncio.run(asyncio.wait_for(main(), 20))
    assert slept < 1.0 and woken < 5.0, (slept, woken)
    assert [item.step.frames_done for item in items] == [1]


def test_a_stop_that_comes_with_a_step_of_the_job_still_ends_the_wait():
    """Stop's cancel and the worker's wake-up in the same turn of the event loop: ``asyncio.wait_for`` (Python 3.11)
    returned the step and dropped the cancel, and the run went on to its end."""
    import asyncio

    from uvosam_app.work import JobPump

    end = threading.Event()

    def job():
        end.wait(30)
        yield

    async def main() -> None:
        pump = JobPump(job, threading.Semaphore(1)).start()
        waiting = asyncio.create_task(pump.next_items(30.0))
        await asyncio.sleep(0.05)  # it waits for the job
        pump._wake()  # a step arrives (the worker's wake-up) ...
        waiting.cancel()  # ... as Stop's cancel lands
        try:
            with pytest.raises(asyncio.CancelledError):
                await waiting
        finally:
            pump.cancel()
            end.set()

    asyncio.run(asyncio.wait_for(main(), 20))


def test_a_job_stopped_while_it_starts_is_closed_once_started():
    """Stop while a job's start (its folders, in a worker thread) is under way: the handler ends at once, and the
    job is closed (pump stopped, folders released) when the start returns, not left running."""
    import asyncio

    from uvosam_app.work import opened

    starting, go_on, closed = threading.Event(), threading.Event(), threading.Event()

    class Started:
        pump = types.SimpleNamespace(stop=lambda: None)
        close = closed.set

    def start() -> Started:
        starting.set()
        go_on.wait(10)
        return Started()

    async def handler() -> None:
        async with opened(start):
            await asyncio.sleep(30)

    async def main() -> float:
        task = asyncio.create_task(handler())
        while not starting.is_set():  # noqa: ASYNC110 - a threading.Event, set by another thread
            await asyncio.sleep(0.01)
        stopped = time.monotonic()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        took = time.monotonic() - stopped
        assert not closed.is_set()  # nothing to close yet
        go_on.set()
        await asyncio.to_thread(closed.wait, 5)  # the server's loop goes on
        return took

    took = asyncio.run(asyncio.wait_for(main(), 20))
    assert took < 1.0 and closed.is_set()


def test_a_stop_that_comes_as_the_job_wakes_its_wait_is_not_lost():
    """The worker's step wakes the handler's wait and, before the handler runs again, Stop cancels it: the wait
    ends cancelled (before Python 3.12 ``asyncio.wait_for`` returned the items instead, and the run went on)."""
    import asyncio

    from uvosam_app.work import JobPump, PumpItem

    async def main() -> None:
        pump = JobPump(
            lambda: iter(()), threading.Semaphore(1)
        )  # not started: the test is its worker
        waiting = asyncio.create_task(pump.next_items(30.0))
        await asyncio.sleep(0.05)
        pump._put(PumpItem())  # a step: wakes the wait (call_soon_threadsafe)
        await asyncio.sleep(0)  # the wake-up resolves the wait's future...
        waiting.cancel()  # ...and Stop lands before the handler resumes
        with pytest.raises(asyncio.CancelledError):
            await waiting

    asyncio.run(asyncio.wait_for(main(), 10))


def test_a_job_stopped_while_it_waits_for_its_slot_never_starts():
    """Stop while the job waits for a slot (another stopped run still ends its frame): once the slot is free the job
    does not start (no model load, no first frame, no ZeroGPU allocation), and its folder goes."""
    from uvosam.job_types import JobProgress
    from uvosam_app.work import JobPump

    calls = []

    def job():
        calls.append("started")
        yield JobProgress(1, 1, 0.1)

    slots = threading.Semaphore(1)
    slots.acquire()
    pump = JobPump(job, slots, on_abort=lambda: calls.append("aborted")).start()
    time.sleep(0.1)
    pump.cancel()
    slots.release()
    deadline = time.monotonic() + 5
    while "aborted" not in calls and time.monotonic() < deadline:
        time.sleep(0.02)
    assert calls == ["aborted"]


def test_a_job_starts_and_closes_while_the_default_executor_is_busy():
    """Anything may fill the event loop's default executor for a while (links given to the API download there):
    a job's start and close use threads of their own, so Run and Stop never wait for it."""
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    from uvosam_app.work import opened

    closed, busy_until = threading.Event(), threading.Event()

    class Started:
        pump = types.SimpleNamespace(stop=lambda: None)
        close = closed.set

    async def main() -> float:
        loop = asyncio.get_running_loop()
        loop.set_default_executor(ThreadPoolExecutor(max_workers=1))
        loop.run_in_executor(None, busy_until.wait, 10)  # the only default thread, busy
        began = time.monotonic()
        async with opened(Started):
            pass
        took = time.monotonic() - began
        busy_until.set()
        return took

    took = asyncio.run(asyncio.wait_for(main(), 20))
    assert took < 2.0 and closed.is_set()
