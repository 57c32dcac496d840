"""What Gradio keeps serving of the app's outputs, and its clean-up: the files a handler shows (a run's mp4 and zip,
the preview frames) in Gradio's file cache (``ServedFiles``), and the live video's chunks, kept in memory per session
(``drop_ended_streams``).

Files. Gradio 6.31 copies an output file into its cache through the component that the session holds, and adds it
to that component's ``temp_files``; the hourly sweep (``delete_cache`` in ``app.build_demo``) and the clean-up at
shutdown delete the files of the page's components only (``Blocks.temp_file_sets``). A prop update returned for a
component (``gr.skip()`` is one: "no change") gives the session a new copy of it (``Blocks.postprocess_data``, built
with ``render=False``), in no such set: every file shown through the copy afterwards was never deleted (measured: the
zip and mp4 of every run, and the previews after a status line without a new frame, stayed after the sweep and after
the server stopped). Run and Re-render need "no change" (a status line between frames; the last results while a
re-render runs; a refusal, ``errors.failures_in_status``), so the copies come. ``ServedFiles`` puts the files into the
cache through the page's own components first, which registers them with the sweep; Gradio then finds them in its
cache and copies nothing (``Block.move_resource_to_block_cache``).

Streams. The chunks of ``gr.Video(streaming=True)`` stay in ``Blocks.pending_streams[session_hash][run]`` until the
session's heartbeat drops (``gradio/routes.py``, the only place that frees them): a client without one (a REST call,
a raw queue client) kept them for the process's life. ``App.forget`` drops them with the session's last run.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np


@dataclass(frozen=True)
class ServedFiles:
    """The page's components that show the app's files: the run's file boxes and *Latest frame*. Unset (an ``App``
    built without a page, as tests do), a file or frame goes to Gradio as it is."""

    mp4: gr.File | None = None
    zip_file: gr.File | None = None
    preview: gr.Image | None = None

    async def results(self, mp4: Path, zip_path: Path) -> tuple[str, str]:
        """The paths to show of a job's mp4 and zip: their copies in Gradio's cache, registered with the sweep (a
        copy takes a while for a big zip: in a worker thread)."""
        return await asyncio.to_thread(
            lambda: (_cached(self.mp4, mp4), _cached(self.zip_file, zip_path))
        )

    async def frame(self, preview: np.ndarray | None) -> Any:
        """A new preview frame as *Latest frame* shows it (``frame_now``, in a worker thread); no new frame: no change
        (``gr.skip()``)."""
        if preview is None:
            return gr.skip()
        return await asyncio.to_thread(self.frame_now, preview)

    def frame_now(self, preview: np.ndarray | None) -> str | np.ndarray | None:
        """A frame (HxWx3 uint8 RGB) as *Latest frame* shows it: the JPEG that Gradio would write, written through the
        page's component (registered with the sweep); its path. None: no frame."""
        if self.preview is None or preview is None:
            return preview
        saved = self.preview.postprocess(preview)
        return self.preview.move_resource_to_block_cache(saved.path)


def _cached(component: gr.components.Component | None, path: Path) -> str:
    if component is None:
        return str(path)
    return component.move_resource_to_block_cache(path)


def drop_ended_streams(pending: dict[str, dict[str, dict[int, Any]]], session: str | None) -> int:
    """Forget the session's streamed videos in Gradio's ``pending_streams`` (``{session_hash: {run: {output id:
    MediaStream}}}``) whose runs are over (every stream ended); a run still streaming keeps its chunks. The number of
    runs dropped. Called on the event loop, where Gradio reads and writes them."""
    runs = pending.get(session) if session else None
    if not runs:
        return 0
    ended = [run for run, streams in runs.items() if all(s.ended for s in streams.values())]
    for run in ended:
        del runs[run]
    if not runs:
        pending.pop(session, None)
    return len(ended)
