"""A running job's progress as updates for the UI: ``drive`` waits on a ``JobPump`` and turns its steps into the
status line, the latest preview frame, the video chunks to stream and, at the end, the job's result.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import numpy as np

from uvosam.job_types import JobResult
from uvosam_app.errors import to_gr_error
from uvosam_app.server_log import count_step
from uvosam_app.text import status_text
from uvosam_app.work import JobPump


@dataclass(frozen=True)
class Update:
    """One update of a job: the status line, a new preview frame (HxWx3 uint8 RGB; None when the last one sent is
    still the latest, or none came yet), the path of a new video chunk to stream (else None) and, once the job is
    done, its result (else None)."""

    status: str
    preview: np.ndarray | None
    chunk: str | None  # a str: gradio 6.0-6.26's streaming video called .endswith on a Path
    result: JobResult | None


async def drive(
    pump: JobPump, verb: str, interval: float, starting: str = "starting"
) -> AsyncIterator[Update]:
    """The job's updates, at least one per ``interval`` s (the status line's clock, with the frame counter, speed
    and ETA); before the first step the status says ``starting``, or that the job waits for a worker. What the job
    raised is raised as ``to_gr_error`` maps it. The waits for the job (``JobPump.next_items``) block no other task,
    and a cancel of the handler's task (Stop) lands in them at once. Each step is counted for the job's end line in
    the server log (``server_log.count_step``).

    No Gradio progress bar: its timer counted from the last update (0.0-0.4 s all through a 13 s run), and its text
    covered the status line with the same frame counter.

    A preview frame is sent once: sent again with each status line (every ``interval`` s while a frame takes long),
    Gradio wrote the same JPEG over its cached file each time, while the browser could be reading it (a broken
    image, a server error: "Too much data for declared Content-Length")."""
    started, step, preview, sent = time.monotonic(), None, None, None
    last_sent = started

    def new_preview() -> np.ndarray | None:
        nonlocal sent
        fresh, sent = (preview if preview is not sent else None), preview
        return fresh

    while True:
        items = await pump.next_items(max(0.0, last_sent + interval - time.monotonic()))
        failed = next((item.error for item in items if item.error is not None), None)
        if failed is not None:  # first: the worker may already be deleting the run's files
            raise to_gr_error(failed)
        for item in items:
            if item.done:
                return
            step = item.step
            count_step(step)  # the frames the job's end line gives
            preview = step.preview if step.preview is not None else preview
            if step.chunk is not None or step.result is not None:
                chunk = None if step.chunk is None else str(step.chunk)
                yield Update(status_text(step, verb, started), new_preview(), chunk, step.result)
                last_sent = time.monotonic()
        if time.monotonic() - last_sent >= interval:
            status = status_text(step, verb, started, starting, queued=pump.queued)
            yield Update(status, new_preview(), None, None)
            last_sent = time.monotonic()
