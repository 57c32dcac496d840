"""Run an iterator in a background thread with a bounded queue, so decoding overlaps the model work.

The queue bound keeps memory flat (at most ``depth`` items waiting). Exceptions raised by the producer are re-raised
in the consumer at the position they happened; closing the consumer (or leaving a ``for`` loop) stops the producer
and closes its iterator in its own thread.

At the interpreter's exit, every producer still running is asked to stop and waited for (``_stop_at_exit``): a
program stopped by Ctrl-C while the models' thread was inside a long torch call (SAM ViT-H: ~17 s a frame on a CPU)
got past the consumer's 5 s wait, and the interpreter's end then killed that thread inside torch, which aborts the
process ("terminate called without an active exception", SIGABRT).
"""

from __future__ import annotations

import atexit
import logging
import queue
import threading
import time
from collections.abc import Callable, Generator, Iterable
from typing import TypeVar

T = TypeVar("T")

_DONE = object()


class _Failure:
    def __init__(self, error: BaseException) -> None:
        self.error = error


# the default name of prefetch's thread: the frames of a run, read ahead
FRAMES_THREAD = "uvosam-prefetch"
MODELS_THREAD = "uvosam-models"  # run_job's models thread (``uvosam.job``)
# the pipeline's thread that prepares frames for SAM's encoder as they are read (``SegmenterConfig.prepare_ahead``)
PREPARE_THREAD = "uvosam-prepare"
RUN_THREADS = (FRAMES_THREAD, MODELS_THREAD, PREPARE_THREAD)
"""The names of a run's threads, for a server that waits for them when it ends (``uvosam_app.work.stop_jobs``)."""
# the producers running now, each with its stop flag (``_stop_at_exit``) and the thread it works for (``producers``)
_LIVE: dict[threading.Thread, tuple[threading.Event, threading.Thread]] = {}
_LIVE_LOCK = threading.Lock()
_EXIT_WAIT = threading.Event()  # set once _stop_at_exit is registered
logger = logging.getLogger(__name__)
# the longest wait at exit for the producers to finish the item under way (a frame of the largest model on a CPU)
EXIT_WAIT_S = 300.0
# how long closing the consumer waits for its producer (the item under way may take longer: ``_stop_at_exit``)
CLOSE_WAIT_S = 5.0


def prefetch(
    items: Iterable[T], *, depth: int = 4, name: str = FRAMES_THREAD
) -> Generator[T, None, None]:
    """Yield ``items`` in order while a daemon thread produces up to ``depth`` items ahead.

    Args:
        items: any iterable (e.g. ``uvosam.video.iter_frames(...)``); iterated only in the background thread.
        depth: most items produced but not yet consumed (>= 1).
    """
    if depth < 1:
        raise ValueError(f"prefetch depth must be >= 1; got {depth}")
    buffer: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                buffer.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        iterator = iter(items)
        try:
            for item in iterator:
                if not put(item):
                    break
            else:
                put(_DONE)
        except BaseException as error:  # noqa: BLE001 - re-raised in the consumer, never swallowed
            put(_Failure(error))
        finally:
            try:
                close = getattr(iterator, "close", None)
                if close is not None:
                    close()
            finally:
                with _LIVE_LOCK:
                    _LIVE.pop(threading.current_thread(), None)

    thread = threading.Thread(target=produce, name=name, daemon=True)
    starter = threading.current_thread()
    with _LIVE_LOCK:
        # a producer started by a producer (a run's frames, read by its models' thread) works for that one's owner
        _LIVE[thread] = (stop, _LIVE[starter][1] if starter in _LIVE else starter)
        # at the first producer, not at import: no import-time side effect
        if not _EXIT_WAIT.is_set():
            atexit.register(_stop_at_exit)
            _EXIT_WAIT.set()
    thread.start()
    try:
        while True:
            item = buffer.get()
            if item is _DONE:
                return
            if isinstance(item, _Failure):
                raise item.error
            yield item
    finally:
        stop.set()
        thread.join(timeout=CLOSE_WAIT_S)


def producers(owner: threading.Thread | None = None) -> list[threading.Thread]:
    """The producers still running that ``owner`` (default: the calling thread) started, directly or through a
    producer it started (``run_job``'s models' thread reads the frames through one of its own)."""
    owner = owner or threading.current_thread()
    with _LIVE_LOCK:
        return [thread for thread, (_, by) in _LIVE.items() if by is owner]


def _stop_at_exit() -> None:
    """Ask every producer still running to stop (one whose consumer was never closed too) and wait, up to
    ``EXIT_WAIT_S`` in all, until each has finished the item under way and closed its iterator (module docstring);
    a WARNING says so when that takes over a second. Registered with ``atexit`` when the first producer starts."""
    with _LIVE_LOCK:
        live = list(_LIVE.items())
    for _, (stop, _) in live:
        stop.set()

    def say(waiting: list[threading.Thread], left_s: float) -> None:
        logger.warning(
            "waiting up to %.0f s for %s to finish the item under way (a frame of a model) before exiting",
            left_s,
            ", ".join(thread.name for thread in waiting),
        )

    join_threads([thread for thread, _ in live], within_s=EXIT_WAIT_S, say_after_s=1.0, say=say)


def join_threads(
    threads: list[threading.Thread],
    *,
    within_s: float,
    say_after_s: float,
    say: Callable[[list[threading.Thread], float], None],
) -> None:
    """Wait for ``threads`` to end, at most ``within_s`` seconds in all; once ``say_after_s`` have passed with some
    still running, ``say(those, seconds left)`` first (a wait the user should hear of: ``_stop_at_exit``, the
    CLI's ``RunThreads``)."""
    start = time.monotonic()
    for thread in threads:
        thread.join(max(0.0, start + say_after_s - time.monotonic()))
    running = [thread for thread in threads if thread.is_alive()]
    if not running:
        return
    say(running, max(0.0, start + within_s - time.monotonic()))
    for thread in running:
        thread.join(max(0.0, start + within_s - time.monotonic()))
