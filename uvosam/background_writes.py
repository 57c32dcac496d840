"""Files encoded and written on a few background threads, with a bound on the writes in flight, so that the thread
that renders and streams a run is not held up by its exports (``uvosam.export.ExportWriter``).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor


class BackgroundWrites:
    """Image files encoded and written by a few threads (PNG encoding releases the GIL), so a run's exports do not
    hold up the thread that renders and streams. At most ``4 * workers`` writes are in flight: memory stays flat.
    A failed write is raised by the next ``submit`` or ``wait``."""

    def __init__(self, workers: int) -> None:
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="uvosam-export")
        self._pending: deque[Future] = deque()
        self._limit = 4 * workers

    def submit(self, fn: Callable[..., None], *args, **kwargs) -> None:
        self._pending.append(self._pool.submit(fn, *args, **kwargs))
        while self._pending and (len(self._pending) > self._limit or self._pending[0].done()):
            self._pending.popleft().result()

    def wait(self) -> None:
        """Every submitted write is on disk (or its error raised); the threads are let go."""
        while self._pending:
            self._pending.popleft().result()
        self._pool.shutdown()

    def cancel(self) -> None:
        """Writes not started are dropped, running ones finish; the threads are let go."""
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._pending.clear()
