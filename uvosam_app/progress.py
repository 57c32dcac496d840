"""A running job's progress as updates for the UI: ``drive`` waits on a ``JobPump`` and turns its steps into the
status line, the latest preview frame, the video chunks to stream and, at the end, the job's result.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from pathlib import Path

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


# in a job's own folder (deleted with it): where ``drive`` lends the job's chunks to Gradio (``LentChunk``)
LENT_CHUNKS = ".lent-chunks"


class LentChunk:
    """The video chunk last handed to Gradio, as a file of the UI's own (a hard link in ``folder``; a copy where the
    file system has none) until Gradio has read it: the job fails or is stopped in its own thread, and deletes the
    chunks it wrote at once (``uvosam.job_outputs.discard_outputs``), while Gradio muxes the chunk of the update
    just yielded (``gr.Video``'s ``stream_output``, after the yield, before it asks for the next update). Read from
    a deleted file, that chunk failed the event with Gradio's own error: the run's "failed: ..." line never went
    out, and the page's failure listener wrote "stopped" over "segmenting: ..." (1 run in 2 on a busy CPU).
    ``folder`` None: the job's own file goes to Gradio."""

    def __init__(self, folder: Path | None) -> None:
        self.folder = folder
        self.lent: Path | None = None

    def lend(self, chunk: Path) -> str | None:
        """The path to give Gradio for ``chunk`` (a str: gradio 6.0-6.26's streaming video called ``.endswith`` on
        it): the UI's file, until ``give_back``; None if the job has deleted it already (it failed or was stopped:
        its end comes next)."""
        if self.folder is None:
            return str(chunk)
        self.give_back()
        self.folder.mkdir(parents=True, exist_ok=True)
        lent = self.folder / chunk.name
        try:
            _link_or_copy(Path(chunk), lent)
        except FileNotFoundError:  # the job deleted it already
            return None
        self.lent = lent
        return str(lent)

    def give_back(self) -> None:
        """Gradio has read the chunk lent (it asked for the next update, or the job's updates are over)."""
        if self.lent is not None:
            self.lent.unlink(missing_ok=True)
            self.lent = None

    def close(self) -> None:
        self.give_back()
        if self.folder is not None:
            try:
                self.folder.rmdir()
            except OSError:  # never made, or already gone with the job's folder
                pass


def _link_or_copy(source: Path, target: Path) -> None:
    """``target``: a hard link of ``source``, or a copy where the file system has none (a chunk is ~1 s of video)."""
    try:
        os.link(source, target)
    except FileNotFoundError:
        raise  # gone: nothing to copy either
    except OSError:
        shutil.copyfile(source, target)


async def drive(
    pump: JobPump,
    verb: str,
    interval: float,
    starting: str = "starting",
    *,
    lend_in: Path | None = None,
) -> AsyncGenerator[Update, None]:
    """The job's updates, at least one per ``interval`` s (the status line's clock, with the frame counter, speed
    and ETA); before the first step the status says ``starting``, or that the job waits for a worker. What the job
    raised is raised as ``to_gr_error`` maps it. The waits for the job (``JobPump.next_items``) block no other task,
    and a cancel of the handler's task (Stop) lands in them at once. Each step is counted for the job's end line in
    the server log (``server_log.count_step``).

    No Gradio progress bar: its timer counted from the last update (0.0-0.4 s all through a 13 s run), and its text
    covered the status line with the same frame counter.

    A preview frame is sent once: sent again with each status line (every ``interval`` s while a frame takes long),
    Gradio wrote the same JPEG over its cached file each time, while the browser could be reading it (a broken
    image, a server error: "Too much data for declared Content-Length").

    ``lend_in`` (the job's folder, deleted with it): each chunk goes to Gradio as a file in its ``LENT_CHUNKS``
    until Gradio has read it (``LentChunk``); None: the job's own file."""
    lent = LentChunk(None if lend_in is None else lend_in / LENT_CHUNKS)
    try:
        async with contextlib.aclosing(_updates(pump, verb, interval, starting, lent)) as updates:
            async for update in updates:
                yield update
                lent.give_back()  # Gradio asks for the next update: it has read this one's chunk
    finally:
        lent.close()


async def _updates(
    pump: JobPump, verb: str, interval: float, starting: str, lent: LentChunk
) -> AsyncGenerator[Update, None]:
    """``drive``'s updates, each chunk ``lent``."""
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
                chunk = None if step.chunk is None else lent.lend(step.chunk)
                yield Update(status_text(step, verb, started), new_preview(), chunk, step.result)
                last_sent = time.monotonic()
        if time.monotonic() - last_sent >= interval:
            status = status_text(step, verb, started, starting, queued=pump.queued)
            yield Update(status, new_preview(), None, None)
            last_sent = time.monotonic()
