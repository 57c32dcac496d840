"""Helpers shared by the app tests (tests/test_app_*.py, tests/test_load_faults.py,
tests/test_bad_inputs.py): launching the Gradio app on a free port (``tiny_app_server``: the one that conftest.py's
``server`` fixture starts once for every test file), writing clips and zips, a slowed run to stop (``slow_run``),
reading results, watching processes. Not product code."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import io
import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
import zipfile
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from clip_helpers import write_clip
from gradio_client import Client, handle_file
from http_helpers import free_port
from PIL import Image
from proc import ffmpeg_children  # noqa: F401  (re-exported for the app tests)

import app as app_module
from uvosam.config import SegmenterConfig
from uvosam.errors import MissingWeightsError
from uvosam.pipeline import UVOSAM
from uvosam.segmenter import BoxPromptSegmenter
from uvosam.testing import moving_shapes
from uvosam_app.models import GetPipeline
from uvosam_app.settings import AppSettings

ROOT = Path(app_module.__file__).resolve().parent

# SAM 2.1 models are offered (and may be listed in UVOSAM_PRELOAD) only where the sam2 package is installed
needs_sam2 = pytest.mark.skipif(
    importlib.util.find_spec("sam2") is None, reason="the sam2 package is not installed"
)


def app_process_env(tmp_path: Path, port: int, work_dir: Path) -> dict[str, str]:
    """The environment of a ``python app.py`` the tests start: offline, no weights (an empty checkpoints folder and
    HF cache), on ``port`` of 127.0.0.1, its work in ``work_dir``, not on ZeroGPU."""
    empty = tmp_path / "checkpoints"
    empty.mkdir(exist_ok=True)
    env = dict(
        os.environ,
        HF_HUB_OFFLINE="1",
        UVOSAM_CHECKPOINTS=str(empty),
        HF_HOME=str(tmp_path / "hf"),
        GRADIO_SERVER_PORT=str(port),
        GRADIO_SERVER_NAME="127.0.0.1",
        UVOSAM_WORK_DIR=str(work_dir),
        PYTHONPATH=str(ROOT),
        GRADIO_ANALYTICS_ENABLED="False",
    )
    env.pop("SPACES_ZERO_GPU", None)
    return env


@contextlib.contextmanager
def app_process(env: dict[str, str], log_path: Path) -> Iterator[subprocess.Popen]:
    """``python app.py`` of this checkout with ``env`` (``app_process_env``), its output in ``log_path``; killed on
    exit if it still runs (a test stops it as a host would: SIGTERM, and waits)."""
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "app.py"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
        )
        try:
            yield proc
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def wait_for_config(url: str, proc: subprocess.Popen, log: Path, timeout: float = 90.0) -> dict:
    """The page config of a ``python app.py`` the test started, once it serves ``url``; the test fails with the
    app's log if it exits or does not serve within ``timeout`` s."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            pytest.fail(f"app.py exited with {proc.returncode}:\n{log.read_text(errors='replace')}")
        try:
            with urllib.request.urlopen(f"{url}/config", timeout=5) as response:
                return json.loads(response.read())
        except OSError:
            time.sleep(0.25)
    pytest.fail(f"app.py did not serve {url} within {timeout} s")


@contextlib.contextmanager
def launched(get_pipeline: GetPipeline, settings: AppSettings) -> Iterator[str]:
    """``build_demo`` served on 127.0.0.1:<free port>, as ``app.main`` launches it (no ``show_error``: an error that
    Gradio raises itself reaches the client without its message, as docs/app.md says); yields its URL."""
    demo = app_module.build_demo(get_pipeline, settings=settings)
    url = launch_local(demo, settings)
    try:
        yield url
    finally:
        demo.close()
        demo.served_files.close()  # as ``app.main`` does


def launch_local(demo: object, settings: AppSettings, tries: int = 3) -> str:
    """``demo`` launched on 127.0.0.1:<free port> as ``app.main`` launches it; its URL. Gradio checks that its own
    server answers with ONE 3 s request and, when that times out (a CPU busy with other tests), raises "When
    localhost is not accessible, a shareable link must be created": the server is closed and launched again, on
    another port, up to ``tries`` times."""
    for attempt in range(tries):
        try:
            _, url, _ = demo.launch(
                server_name="127.0.0.1",
                server_port=free_port(),
                prevent_thread_lock=True,
                quiet=True,
                **app_module.launch_kwargs(settings),
            )
            return url
        except ValueError as err:
            if "localhost is not accessible" not in str(err) or attempt == tries - 1:
                raise
            demo.close()
    raise AssertionError("unreachable")


def write_clips(folder: Path) -> dict[str, Path]:
    """The clips of the app tests (``clips`` fixture): two short ones, one over ``tiny_app_server``'s
    ``max_side=150`` (processed scaled down), one over the app's sanity limit of 4096 px a side (refused), an empty
    file and a text file named .mp4."""
    empty, text = folder / "empty.mp4", folder / "notes.mp4"
    empty.write_bytes(b"")
    text.write_bytes(b"this is a text file, not a video\n" * 20)
    return {
        "a": write_clip(folder / "clip_a.mp4", 16, 96, 64),
        "b": write_clip(folder / "clip_b.mp4", 24, 128, 80),
        "wide": write_clip(folder / "wide.mp4", 8, 160, 48),
        "huge": write_clip(folder / "huge.mp4", 2, 4112, 16),
        "empty": empty,
        "text": text,
    }


@contextlib.contextmanager
def tiny_app_server(work: Path, tiny_sam: object, tracker: object) -> Iterator[tuple[str, Path]]:
    """The app on a tiny pipeline (``tracker`` + SAM ``tiny_sam``), its work in ``work``; yields (URL, work).
    Presets idol-ovis-r50 / idol-coco-r50 fail (no weights / a bug); at most 1 MB uploads, 150 px sides."""
    # SAM's frames prepared in a background thread, as on CUDA (the default there; off on a CPU): the app's load,
    # Stop and fault tests run the path a GPU Space runs
    pipe = UVOSAM(tracker, BoxPromptSegmenter(tiny_sam, SegmenterConfig(prepare_ahead=True)))

    def get_pipeline(preset: str, sam: str) -> UVOSAM:
        if preset == "idol-ovis-r50":
            raise MissingWeightsError(
                "Weight file 'OVIS_R50_294AP.pth' was not found in /srv/ckpt. Put it in checkpoints/."
            )
        if preset == "idol-coco-r50":
            raise RuntimeError("a bug inside the app")
        return pipe

    settings = AppSettings(work_root=work, concurrency_limit=2, max_upload_mb=1, max_side=150)
    with launched(get_pipeline, settings) as url:
        yield url, work


def client(server: tuple[str, Path]) -> Client:
    """A new API client (its own session) of ``server`` (the ``server`` fixture)."""
    return Client(server[0], verbose=False)


def zip_of(path: Path, files: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return path


def zip_of_frames(path: Path, folder: str, count: int, size=(96, 64)) -> Path:
    """``count`` moving-shapes frames as JPEGs named ``<i>.jpg`` (natural order) in ``folder``."""
    files = {}
    for i, frame in enumerate(moving_shapes(count, height=size[1], width=size[0], seed=4).frames):
        buffer = io.BytesIO()
        Image.fromarray(frame).save(buffer, format="JPEG", quality=95)
        files[f"{folder}/{i}.jpg"] = buffer.getvalue()
    return zip_of(path, files)


def finished_run(app: object, request: object, folder: Path) -> object:
    """``app.segment`` of a 6-frame zip (written in ``folder``, a test's tmp_path) to its end (session of
    ``request``); returns its SessionRun."""
    (folder / "input").mkdir(exist_ok=True)
    frames = zip_of_frames(folder / "input" / "seq.zip", "seq", 6)
    steps = stepped(app.segment(None, "idol-ytvis19-r50", "vit_b", 0.0, 10, 1, 900, 0, True, True, "overlay",
                                str(frames), False, request))  # fmt: skip
    return list(steps)[-1][-1]


def stepped(updates: AsyncIterator) -> Iterator:
    """An async generator (an app handler's, or ``drive``'s) stepped from a test's plain code, on an event loop of
    its own: ``next()`` it, ``list()`` it, or ``close()`` it as Gradio closes a handler's (its ``finally`` runs)."""
    loop = asyncio.new_event_loop()
    try:
        while True:
            try:
                yield loop.run_until_complete(anext(updates))
            except StopAsyncIteration:
                return
    finally:
        loop.run_until_complete(updates.aclose())
        loop.run_until_complete(loop.shutdown_default_executor())
        loop.close()


def zip_names(path: str) -> list[str]:
    with zipfile.ZipFile(path) as zf:
        return zf.namelist()


def run_json(path: str) -> dict:
    """The zip's run.json (what made the export: ``uvosam.provenance``)."""
    with zipfile.ZipFile(path) as zf:
        return json.loads(zf.read("run.json"))


def davis_labels(path: str, video: str) -> tuple[int, set[int]]:
    """(number of DAVIS PNGs of ``video`` in the zip, the set of labels found in them)."""
    with zipfile.ZipFile(path) as zf:
        pngs = [n for n in zf.namelist() if n.startswith(f"davis/{video}/") and n.endswith(".png")]
        labels = set()
        for name in pngs:
            with zf.open(name) as f:
                labels |= set(np.unique(np.asarray(Image.open(f))).tolist())
    return len(pngs), labels


def processes_mentioning(text: str) -> list[int]:
    """PIDs whose command line contains ``text`` (e.g. a run folder an ffmpeg writes into)."""
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and text.encode() in (entry / "cmdline").read_bytes():
                pids.append(int(entry.name))
        except OSError:
            continue
    return pids


def wait_for(condition: Callable[[], object], timeout: float = 10.0) -> bool:
    """Whether ``condition()`` holds within ``timeout`` s. A condition that looks at files a run is deleting can
    raise FileNotFoundError (``Path.glob``/``rglob`` list a folder, then scan one that went meanwhile): that counts as
    "not yet" and is asked again, but for the last time."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            if condition():
                return True
        except FileNotFoundError:
            pass
        time.sleep(0.05)
    return bool(condition())  # the last time, an error is the test's (one every time is no race)


@contextlib.contextmanager
def slow_run(c: Client, work: Path, video: Path, tracker: object) -> Iterator[tuple[object, Path]]:
    """A /segment of ``video`` by client ``c`` with the ``server``'s ``tracker`` slowed to 0.4 s a frame (clip b's
    24 frames: about 10 s if not stopped); yields (the ``gradio_client`` job, its run-* folder in ``work``) once its
    overlay mp4 is being written (frames stream), for the test to stop it. The tracker's delay is put back after."""
    tracker.delay_s = 0.4
    try:
        job = c.submit(handle_file(str(video)), api_name="/segment")
        session = work / c.session_hash
        assert wait_for(lambda: any(session.glob("run-*")), 30)
        run_dir = next(session.glob("run-*"))
        assert wait_for(lambda: any(run_dir.glob("*_overlay.mp4")), 30)  # encoding has started
        yield job, run_dir
    finally:
        tracker.delay_s = 0.0


def held_pipeline(sam_model) -> tuple[GetPipeline, threading.Event, threading.Event]:
    """``(get_pipeline, started, release)``: ``get_pipeline`` gives one ``UVOSAM`` (a one-box tracker, ``sam_model``);
    the runs' calls (not the first, the start's load of the default pair) set ``started`` and wait for ``release``,
    so that a test holds a run while it queues others."""
    from doubles import MovingBoxTracker

    pipe = UVOSAM(MovingBoxTracker(num_objects=1), BoxPromptSegmenter(sam_model))
    started, release, calls = threading.Event(), threading.Event(), []

    def get_pipeline(preset: str, sam: str) -> UVOSAM:
        calls.append(preset)
        if len(calls) > 1:
            started.set()
            assert release.wait(60)
        return pipe

    return get_pipeline, started, release


def queued(job) -> bool:
    """Whether a ``gradio_client`` job waits in the server's queue."""
    from gradio_client.utils import Status

    return job.status().code == Status.IN_QUEUE
