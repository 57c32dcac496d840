"""Run an iterator in a background thread with a bounded queue, so decoding overlaps the model work.

The queue bound keeps memory flat (at most ``depth`` items waiting). Exceptions raised by the producer are re-raised
in the consumer at the position they happened; closing the consumer (or leaving a ``for`` loop) stops the producer
and closes its iterator in its own thread.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")

_DONE = object()


class _Failure:
    def __init__(self, error: BaseException) -> None:
        self.error = error


# the default name of prefetch's thread: the frames of a run, read ahead
FRAMES_THREAD = "uvosam-prefetch"
MODELS_THREAD = "uvosam-models"  # run_job's models thread (``uvosam.job``)
RUN_THREADS = (FRAMES_THREAD, MODELS_THREAD)
"""The names of a run's threads, for a server that waits for them when it ends (``uvosam_app.work.stop_jobs``)."""


def prefetch(items: Iterable[T], *, depth: int = 4, name: str = FRAMES_THREAD) -> Iterator[T]:
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
            close = getattr(iterator, "close", None)
            if close is not None:
                close()

    thread = threading.Thread(target=produce, name=name, daemon=True)
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
        thread.join(timeout=5)
