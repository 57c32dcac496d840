"""Where and how the app's jobs run: per-session work folders (``WorkRoot``), what a session keeps of its last run
(``SessionRun``), the worker thread that runs a job while the UI generator keeps answering (``JobPump``; the jobs
under way stopped when the server ends: ``stop_jobs``) and a job as the UI holds it (``OpenJob``, ``opened``:
started and closed off the event loop). Nothing here imports gradio.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import queue
import re
import shutil
import tempfile
import threading
import time
import uuid
import weakref
from collections import Counter
from collections.abc import AsyncIterator, Callable, Generator, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from uvosam.job_types import JobProgress
from uvosam.prefetch import RUN_THREADS

logger = logging.getLogger("uvosam.app")


# ---------------------------------------------------------------------------------- session folders
@dataclass(frozen=True)
class SessionRun:
    """What a session keeps of its last finished run (its mask cache feeds Re-render). ``source``: the input it
    ran on (the upload's, the zip's or the linked file's path; "" unknown), so that the upload's description can
    say when the results shown are of another input; ``tracks``: the run's (id, class name), the choices of *Tracks
    to keep* (``RerenderHandlers.keep_offered`` adds the parts of a split); ``created_utc``: when it started, as its
    run.json says (a re-render's run.json names its run so, ``rerender.run_created_utc``; None: not known). (The
    videos the session streamed go with ``SessionStreams``, set with the same update.)"""

    run_dir: Path
    cache_dir: Path
    source: str = ""
    tracks: tuple[tuple[int, str], ...] = ()
    created_utc: str | None = None


@dataclass(frozen=True)
class SessionStreams:
    """The session (its Gradio ``session_hash``) whose Runs streamed videos: set by every update of a Run, whether it
    ends with a result or not (a failed or stopped Run leaves the last run ``None``: nothing else would name the
    session when its states expire), so that ``App.forget`` drops the ended streams with it."""

    session: str


class WorkRoot:
    """``<root>/<session>/<kind>-<id>/`` folders; a session's folders are removed with it.

    A new folder replaces the session's earlier ones, except those in use: made by ``new_dir`` or
    taken by ``hold`` and not yet ``release``d as often. So one API client running two jobs at once
    does not lose the first, and a Run pressed while a Re-render or Score still reads the last run's
    masks does not delete them under it.
    """

    def __init__(self, root: Path | None) -> None:
        # a temp folder of its own, removed with it (or at exit): an App built without one left it
        if root is None:
            self.root = Path(tempfile.mkdtemp(prefix="uvosam-work-"))
            weakref.finalize(self, shutil.rmtree, self.root, True)
        else:
            self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._in_use: Counter[Path] = Counter()
        self._lock = threading.Lock()

    def session_dir(self, session: str | None) -> Path:
        safe = re.sub(r"[^A-Za-z0-9_-]", "_", session or "anonymous")[:64] or "anonymous"
        return self.root / safe

    def new_dir(self, session: str | None, kind: str, *, keep: Path | None = None) -> Path:
        """A fresh folder (in use until ``release``); the session's other idle folders but ``keep``
        are deleted first."""
        base = self.session_dir(session)
        path = base / f"{kind}-{uuid.uuid4().hex[:8]}"
        with self._lock:
            self._remove_idle(base, spare=keep)
            path.mkdir(parents=True)
            self._in_use[path] += 1
        return path

    def hold(self, path: Path | None) -> None:
        """Mark an existing folder in use (until as many ``release``s): no ``new_dir`` deletes it. None: no
        folder, nothing to do (so callers with an optional folder need no check)."""
        if path is None:
            return
        with self._lock:
            self._in_use[path] += 1

    @contextlib.contextmanager
    def held(self, path: Path | None) -> Iterator[Path | None]:
        """``hold`` for the ``with`` block, then ``release``."""
        self.hold(path)
        try:
            yield path
        finally:
            self.release(path)

    def release(self, *paths: Path | None) -> None:
        """Undo one ``hold`` of each of ``paths`` (None: nothing to do)."""
        with self._lock:
            for path in paths:
                if path is None:
                    continue
                self._in_use[path] -= 1
                if self._in_use[path] <= 0:
                    del self._in_use[path]

    def remove_idle(self, session_dir: Path, kinds: tuple[str, ...] | None = None) -> None:
        """Delete a session's folders that are not in use (only those of these ``kinds``, the ``kind`` of
        ``new_dir``, if given), and the session's folder once it is empty. Never raises: it runs as Gradio's State
        clean-up, whose loop stops for good at the first exception (a failure is logged)."""
        try:
            with self._lock:
                self._remove_idle(session_dir, kinds=kinds)
                if session_dir.is_dir() and not any(session_dir.iterdir()):
                    session_dir.rmdir()
        except OSError as err:  # e.g. a folder made meanwhile by an unlocked caller
            logger.warning("could not clean up %s: %s", session_dir, err)

    def _remove_idle(
        self, base: Path, spare: Path | None = None, kinds: tuple[str, ...] | None = None
    ) -> None:
        for old in list(base.iterdir()) if base.is_dir() else ():
            kind = old.name.rpartition("-")[0]
            if old not in self._in_use and old != spare and (kinds is None or kind in kinds):
                shutil.rmtree(old, ignore_errors=True)

    def discard(self, path: Path) -> None:
        """Delete a job's folder that lost its result (a cancelled or failed run), and its session's folder once
        that is empty (a tab closed while its run went on leaves nothing behind)."""
        shutil.rmtree(path, ignore_errors=True)
        self.remove_idle(path.parent, kinds=())  # no kind: only the session folder, if empty

    def remove_session(self, session: str | None) -> None:
        """The session is over (its tab closed): all its folders go but those a request still uses (they go when
        it ends, or with the State's expiry)."""
        self.remove_idle(self.session_dir(session))


# --------------------------------------------------------------------------------------------- pump
@dataclass(frozen=True)
class PumpItem:
    """One message from the worker: a step, the end (``done``) or the exception that ended it."""

    step: JobProgress | None = None
    error: BaseException | None = None
    done: bool = False


@dataclass
class JobPump:
    """Runs a job generator in a worker thread, so the UI generator can answer every ``interval`` s (``poll``;
    ``next_items`` on an event loop).

    ``cancel()`` (the UI is done with the job: finished, failed or stopped) returns at once; the worker closes the
    job generator after its current frame (ffmpeg is stopped, unfinished files are deleted). Whenever a job ends
    without its result (cancelled or failed), ``on_abort`` runs (e.g. to delete the run folder) once BOTH sides are
    done: the worker (no more writes) and the UI (no chunk of the run is still being sent); then, however it ended,
    ``on_end`` (e.g. to release the folders the job writes and reads: released as the UI let go, a Run pressed right
    after Stop deleted the stopped run's folder while its worker still wrote its frame there, a FileNotFoundError
    logged as a failure; a worker thread that never ends keeps them until the process ends). ``slots`` bounds how
    many jobs run at once, cancelled ones still finishing their frame included, up to 5 s: closing a run waits that
    long for its model thread (``uvosam.prefetch``), so a frame that takes longer (seconds on a CPU) ends while the
    next job starts, rather than a model call that never returns keeping the slot for good.
    """

    work: Callable[[], Generator[JobProgress, None, None]]
    slots: threading.Semaphore
    on_abort: Callable[[], None] = lambda: None
    on_end: Callable[[], None] = lambda: None
    _queue: queue.Queue = field(default_factory=lambda: queue.Queue(maxsize=64))
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _active: set = field(default_factory=lambda: {"worker", "ui"})
    _finished: bool = False
    _in_slot: threading.Event = field(default_factory=threading.Event)
    # set while ``next_items`` waits: the worker calls it after a put
    _wake: Callable[[], None] | None = None

    def start(self) -> JobPump:
        ctx = contextvars.copy_context()  # ZeroGPU reads the gradio request from a context variable
        thread = threading.Thread(target=ctx.run, args=(self._run,), daemon=True, name="uvosam-job")
        with _RUNNING_LOCK:
            _RUNNING[thread] = self
        thread.start()
        return self

    def _put(self, item: PumpItem) -> None:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.2)
            except queue.Full:
                continue
            with self._lock:
                wake = self._wake
            if wake is not None:
                wake()
            return

    @property
    def queued(self) -> bool:
        """Still waiting for one of the ``slots`` (other jobs hold them all)."""
        return not self._in_slot.is_set()

    def _run(self) -> None:
        finished = False
        with self.slots:
            self._in_slot.set()
            steps = None
            try:
                if self._stop.is_set():  # stopped while it waited for its slot: never started
                    return
                steps = self.work()
                for step in steps:
                    finished = step.result is not None
                    self._put(PumpItem(step=step))
                    if self._stop.is_set():
                        break
            except Exception as err:  # noqa: BLE001 - handed to the UI thread: shown or logged
                self._put(PumpItem(error=err))
            finally:
                # the rest runs whatever the job's clean-up raised: the run folder goes, the UI is told
                _close(steps)
                self._finished = finished
                self._put(PumpItem(done=True))
                with _RUNNING_LOCK:
                    _RUNNING.pop(threading.current_thread(), None)
                self._leave("worker")

    def _leave(self, side: str) -> None:
        with self._lock:
            if side not in self._active:
                return
            self._active.discard(side)
            last = not self._active
        if not last:
            return
        if not self._finished:
            _logged(self.on_abort, "deleting the folder of a job that ended without its result")
        _logged(self.on_end, "releasing a job's folders")

    def poll(self, timeout: float) -> list[PumpItem]:
        """Everything queued now, waiting up to ``timeout`` s for the first item ([] if none)."""
        try:
            items = [self._queue.get(timeout=timeout)]
        except queue.Empty:
            return []
        while True:
            try:
                items.append(self._queue.get_nowait())
            except queue.Empty:
                return items

    async def next_items(self, timeout: float) -> list[PumpItem]:
        """``poll`` for a coroutine: the wait holds no thread and blocks no other task on the event loop (the worker
        wakes it), and a cancel of the awaiting task (Stop) ends it at once, even one that comes with a wake-up.

        ``asyncio.wait``, not ``asyncio.wait_for``: on Python 3.11 ``wait_for`` swallows a cancel that lands while
        the future it waits for is done (CPython gh-86296), so a Stop that came with a step of the job was lost and
        the run went on to its end (now and then in the browser tests: the cancel request took 7 s, the run's time)."""
        loop = asyncio.get_running_loop()
        woken = loop.create_future()
        with self._lock:
            self._wake = partial(_wake_up, loop, woken)
        try:
            if self._queue.empty():  # an item put from now on wakes us
                # not wait_for: before Python 3.12 it can swallow a cancel that comes as the worker wakes us (a
                # Stop lost), and on 3.10 its timeout is not the builtin TimeoutError
                await asyncio.wait({woken}, timeout=timeout)
            return self.poll(0)
        finally:
            with self._lock:
                self._wake = None

    def stop(self) -> None:
        """Stop the worker after its current frame, at once (no clean-up: ``cancel`` does that)."""
        self._stop.set()

    def cancel(self) -> None:
        """The UI is done with this job (idempotent): stop the worker, clean up when it stops."""
        self.stop()
        self._leave("ui")


def _close(steps: Generator[JobProgress, None, None] | None) -> None:
    """Close a job generator (its clean-up runs); an error there is logged."""
    if steps is not None:
        _logged(steps.close, "closing the job")


def _logged(fn: Callable[[], Any], what: str) -> None:
    """``fn()``; an error is logged as "<what> failed" (the worker's or the UI's end goes on)."""
    try:
        fn()
    except Exception:
        logger.exception("%s failed", what)


# the workers of the jobs under way (``stop_jobs``)
_RUNNING: dict[threading.Thread, JobPump] = {}
_RUNNING_LOCK = threading.Lock()


def stop_jobs(timeout: float) -> list[str]:
    """The server is ending: stop every job under way after its current step (as Stop does: ffmpeg is stopped, the
    frames no longer read) and wait up to ``timeout`` s in all for their threads, the library's too
    (``uvosam.prefetch.RUN_THREADS``: the models' thread finishes the call under way); returns the names of those
    still running. A thread still inside torch when the interpreter exits aborts it ("terminate called without an
    active exception", exit status 134), after the clean-up at exit."""
    with _RUNNING_LOCK:
        pumps = list(_RUNNING.values())
    for pump in pumps:
        pump.stop()
    end = time.monotonic() + timeout
    while time.monotonic() < end and (threads := _job_threads()):
        threads[0].join(max(0.0, end - time.monotonic()))
    return [t.name for t in _job_threads()]


def _job_threads() -> list[threading.Thread]:
    """The jobs' threads still running: ``JobPump``'s workers and the library's (``RUN_THREADS``)."""
    with _RUNNING_LOCK:
        workers = list(_RUNNING)
    library = [t for t in threading.enumerate() if t.name in RUN_THREADS]
    return [t for t in dict.fromkeys([*workers, *library]) if t.is_alive()]


def _wake_up(loop: asyncio.AbstractEventLoop, woken: asyncio.Future) -> None:
    """From the worker thread: resolve ``woken`` on its loop (a no-op once it is done or the loop is closed)."""

    def resolve() -> None:
        if not woken.done():
            woken.set_result(None)

    try:
        loop.call_soon_threadsafe(resolve)
    except RuntimeError:
        pass  # the loop is closed (the server stopped): nothing waits for this job any more


# ------------------------------------------------------------------------------------- open jobs
@dataclass(frozen=True)
class OpenJob:
    """A job as a UI handler holds it: its ``pump`` and its own ``folder`` (made by ``work.new_dir``; the pump
    deletes it if the job ends without its result, and releases it, and the folders the job reads, once both its
    worker and the UI are done: ``JobPump.on_end``). ``close()``, once the UI is done with the job (finished, failed
    or stopped), cancels the pump."""

    pump: JobPump
    folder: Path

    def close(self) -> None:
        self.pump.cancel()


@contextlib.asynccontextmanager
async def opened(start: Callable[[], OpenJob]) -> AsyncIterator[OpenJob]:
    """The job of an async handler: ``start()`` (checks, folders made and old ones deleted, the pump started) and,
    at the end, ``close()`` run in threads of their own (``_OPEN_CLOSE``): file work (and ``WorkRoot``'s lock, which
    another session's deleting may hold) never holds up the event loop. A cancel (Stop) while the job starts raises
    at once; the job is closed as soon as its start returns. At the end the worker is told to stop at once, then
    the close always completes, even if the handler is cancelled again while it waits for it."""
    starting = asyncio.ensure_future(_off_loop(start))
    try:
        job = await asyncio.shield(starting)
    except asyncio.CancelledError:
        starting.add_done_callback(_close_started)
        raise
    try:
        yield job
    finally:
        job.pump.stop()  # at once, whatever the close waits for
        await asyncio.shield(_off_loop(job.close))


# Jobs' starts and closes: their own threads, not the event loop's default executor, which anything else in the
# server may fill for a while (e.g. downloads of links given to the API, ``file_links``)
_OPEN_CLOSE = ThreadPoolExecutor(max_workers=8, thread_name_prefix="uvosam-open-close")


def _off_loop(fn: Callable[[], Any]) -> asyncio.Future:
    """``fn()`` in an ``_OPEN_CLOSE`` thread, in the caller's context (the Gradio request: ZeroGPU reads it)."""
    context = contextvars.copy_context()
    return asyncio.get_running_loop().run_in_executor(_OPEN_CLOSE, context.run, fn)


def _close_started(starting: asyncio.Future) -> None:
    """Close the job of a start that went on after its handler was cancelled (a start that failed left nothing)."""
    if not starting.cancelled() and starting.exception() is None:
        job = starting.result()
        job.pump.stop()
        _off_loop(job.close)


def session_key(request: Any) -> str | None:
    """The session a Gradio request belongs to (its ``session_hash``; None without a request, e.g. a direct call)."""
    return getattr(request, "session_hash", None)
