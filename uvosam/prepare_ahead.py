"""The box segmenter's CPU work on each frame (``prepare``: SAM's resize to its encoder's input), run in a background
thread from when the models' thread reads a frame, while the tracker works on it and on the frames of its
look-ahead, so that it is usually done by the time the frame's boxes are decided.

Only the models' thread reads the frames: the background thread gets each frame handed to it, never the frame
iterator (a thread that iterated the run's frame generator could still be inside it when the run was closed, and
closing that generator from the models' thread then failed with "generator already executing").
"""

from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor
from types import TracebackType
from typing import TYPE_CHECKING, Any

import numpy as np

from uvosam.prefetch import PREPARE_THREAD

if TYPE_CHECKING:
    from typing_extensions import Self  # typing.Self from Python 3.11


def _name_worker() -> None:
    threading.current_thread().name = PREPARE_THREAD


class FramePreparer:
    """``with FramePreparer(segmenter) as preparer: preparer.submit(frame)`` -> a ``Future`` of
    ``segmenter.prepare(frame)`` made in one background thread (``PREPARE_THREAD``), in submission order; or None
    when the segmenter does not ask for it (``prepare_ahead`` false or absent), where nothing runs. Leaving the
    ``with`` cancels what has not started and waits for the one frame under way (milliseconds)."""

    def __init__(self, segmenter: Any) -> None:
        wanted = getattr(segmenter, "prepare_ahead", False)
        self._prepare = segmenter.prepare if wanted else None
        self._pool: ThreadPoolExecutor | None = None

    def __enter__(self) -> Self:
        if self._prepare is not None:
            self._pool = ThreadPoolExecutor(max_workers=1, initializer=_name_worker)
        return self

    def submit(self, frame: np.ndarray) -> Future | None:
        """Start preparing ``frame`` (a checked (H, W, 3) uint8 frame); None when not preparing ahead."""
        if self._pool is None:
            return None
        return self._pool.submit(self._prepare, frame)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._pool is not None:
            # an abandoned run in a reference cycle can be collected on its own worker thread, which cannot join itself
            own = threading.current_thread().name == PREPARE_THREAD
            self._pool.shutdown(wait=not own, cancel_futures=True)
            self._pool = None
