"""What Gradio keeps serving of the app's outputs, and its clean-up: the files a handler shows (a run's mp4 and zip,
the preview frames) in Gradio's file cache (``ServedFiles``), and the live video's chunks, kept in memory per session
(``drop_ended_streams``).

Files. ``ServedFiles`` copies them into Gradio's cache itself and keeps its own list of them, ``{path: time last
shown}``, under a lock; its sweep (a daemon thread) deletes every ``sweep_every_s`` those last shown more than
``max_age_s`` ago, with their emptied folder, and ``close()`` (at shutdown, ``app.main``) deletes them all. Gradio,
given a path already in its cache, copies nothing (``Block.async_move_resource_to_block_cache``). ``shows`` says
whether a file a client gives back is one of them (``ResultViews.zip_shown`` reads no other zip). Every show touches
the file too: Gradio 6.27-6.30 gave a copy shown again its first copy's age.

The same thread runs Gradio's own sweep of its cache (the uploads; ``gradio_sweep``:
``route_utils.delete_files_created_by_app``, at shutdown too), which the app therefore does not schedule with
``gr.Blocks(delete_cache=...)``. Gradio's schedule could not be kept: its sweep iterates each component's
``temp_files`` set in a worker thread while the event loop adds to it (an upload, a file an output shows: the
app's files too, the first time a session shows them, and the previews came about twice a second a running
session), so an add during its loop raises "Set changed size during iteration", and Gradio's scheduled task
(``delete_files_on_schedule``, no ``try``) ended for the process's life: no upload was deleted again. Here such a
sweep is logged and the next one runs. Gradio's sweep deletes a file, not the ``<sha>/`` folder it came in (nor a
``link-*`` one, ``file_links``): the thread then removes the cache's empty folders (``drop_empty_folders``), those
unchanged ``max_age_s``, and at ``close()`` those its last sweeps emptied too (never one changed just now: the cache
may be shared, ``/tmp/gradio``, and another server's upload may be about to move into it). And the files shown through
a session's copy of a component (Gradio makes one for a prop update, and ``gr.skip()``, "no change", is one) are in no
set Gradio's sweep reads: every run's zip and mp4 stayed; ``ServedFiles``' own list covers them.

Streams. The chunks of ``gr.Video(streaming=True)`` stay in ``Blocks.pending_streams[session_hash][run]`` until the
session's heartbeat drops (``gradio/routes.py``, the only place that frees them): a client without one (a REST call,
a raw queue client) kept them for the process's life. ``App.forget`` drops the ended ones when the session's states
expire (its last run, or ``SessionStreams``, set by every Run as it starts: a failed Run leaves no last run).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import threading
import time
from collections.abc import Callable, Collection, Iterator
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np
from gradio.processing_utils import save_file_to_cache

from uvosam_app.settings import FILE_MAX_AGE_S, FILE_SWEEP_EVERY_S

logger = logging.getLogger("uvosam.app")


class ServedFiles:
    """The app's files in Gradio's cache ``cache_dir`` (the demo's ``GRADIO_CACHE``): a run's mp4 and zip, and the
    preview frames as *Latest frame* (``preview``) shows them. Each file shown is kept ``max_age_s`` after it was
    last shown, checked every ``sweep_every_s``; ``close()`` deletes them all. ``gradio_sweep(age)``: Gradio's
    sweep of its own files (those over ``age`` seconds old; None: all), run with each sweep and at ``close()``;
    given, the sweeps start at once, else with the first file shown. Unset (an ``App`` built without a page, as
    tests do), a file or frame goes to Gradio as it is."""

    # seconds a folder of the cache is kept after it last changed, even empty (``drop_empty_folders``)
    fresh_s = 10.0
    # empty folders Gradio makes in its cache at every start (6.31's routes.py: its vibe editor's): removed at close
    # as the close's sweeps' own
    gradio_start_folders = ("vibe_edit_history",)

    def __init__(
        self,
        cache_dir: str | Path | None = None,
        *,
        preview: gr.Image | None = None,
        max_age_s: float = FILE_MAX_AGE_S,
        sweep_every_s: float = FILE_SWEEP_EVERY_S,
        gradio_sweep: Callable[[float | None], None] | None = None,
    ) -> None:
        self.cache_dir = Path(cache_dir).resolve() if cache_dir is not None else None
        self.preview = preview
        self.max_age_s = max_age_s
        self.sweep_every_s = sweep_every_s
        # path in the cache -> time.monotonic() it was last shown
        self._shown: dict[str, float] = {}
        self._lock = threading.Lock()
        self._gradio_sweep = gradio_sweep
        self._closed = threading.Event()
        self._sweeper: threading.Thread | None = None
        if gradio_sweep is not None:
            self._start_sweeps()

    async def results(self, mp4: Path, zip_path: Path) -> tuple[str, str]:
        """The paths to show of a job's mp4 and zip: their copies in Gradio's cache (a copy takes a while for a big
        zip: in a worker thread)."""
        return await asyncio.to_thread(lambda: (self._copied(mp4), self._copied(zip_path)))

    async def frame(self, preview: np.ndarray | None) -> Any:
        """A new preview frame as *Latest frame* shows it (``frame_now``, in a worker thread); no new frame: no change
        (``gr.skip()``)."""
        if preview is None:
            return gr.skip()
        return await asyncio.to_thread(self.frame_now, preview)

    def frame_now(self, preview: np.ndarray | None) -> str | np.ndarray | None:
        """A frame (HxWx3 uint8 RGB) as *Latest frame* shows it: the JPEG that Gradio would write, written into its
        cache by the component; its path. None: no frame. Any thread."""
        if self.preview is None or self.cache_dir is None or preview is None:
            return preview
        component = self.preview
        return self._shown_now(lambda: component.postprocess(preview).path)

    def file_now(self, path: str | None) -> str | None:
        """A file to show as it is (a Load's download): its copy in Gradio's cache, its path there; None: none. Any
        thread. Gradio would copy it itself, but only from a folder it serves whole (``launch(allowed_paths)``, which
        the sessions' folders are not: ``app.launch_kwargs``) or from the temp folder or the working directory."""
        return None if path is None else self._copied(Path(path))

    def shows(self, path: str | Path | None) -> bool:
        """Whether ``path`` is a file this list holds: one the app showed (a run's mp4 or zip, a preview frame) and
        has not deleted yet. What a page's output gives back to a handler is one of those; a client of the API can
        name any upload instead. Any thread."""
        if not path:
            return False
        with self._lock:
            return str(Path(path).resolve()) in self._shown

    def sweep(self, max_age_s: float | None) -> int:
        """Delete the files last shown more than ``max_age_s`` ago (None: all of them), and their folder if that is
        left empty; the number deleted. Any thread."""
        now = time.monotonic()
        with self._lock:
            stale = [p for p, t in self._shown.items() if max_age_s is None or now - t > max_age_s]
            for path in stale:
                del self._shown[path]
                self._delete(Path(path))
        return len(stale)

    def drop_empty_folders(self, max_age_s: float | None, *, emptied: Collection[str] = ()) -> int:
        """Remove the empty folders directly in the cache last changed more than ``max_age_s`` ago (None: any age),
        and those named in ``emptied`` (what this process's own sweeps emptied at close); the number removed. Any
        thread. Gradio's sweep deletes an upload (a ``link-*`` download too) but not the ``<sha>/`` folder it came
        in: one more per file for the process's life. The age spares a folder just made for a new file (``mkdir``,
        then the file moved in: this server's, or another's sharing the cache), however short ``max_age_s``, at
        close too: none changed in the last ``fresh_s`` goes unless ``emptied``; one emptied by a sweep changed then,
        and goes with a later sweep. A folder is removed only while empty (``rmdir``); links are not followed."""
        if self.cache_dir is None:
            return 0
        removed, now = 0, time.time()
        for entry in self._folders():
            with contextlib.suppress(OSError):  # not empty, gone meanwhile
                age = now - entry.stat(follow_symlinks=False).st_mtime
                if entry.name in emptied or age > max(max_age_s or 0.0, self.fresh_s):
                    os.rmdir(entry.path)
                    removed += 1
        return removed

    def _holding(self) -> set[str]:
        """The folders directly in the cache that hold something (links not followed)."""
        held = set()
        for entry in self._folders():
            with contextlib.suppress(OSError):  # gone meanwhile
                if any(os.scandir(entry.path)):
                    held.add(entry.name)
        return held

    def _folders(self) -> Iterator[os.DirEntry]:
        """The folders directly in the cache (links not followed; none without a cache or once it is gone)."""
        if self.cache_dir is None:
            return
        with contextlib.suppress(FileNotFoundError), os.scandir(self.cache_dir) as entries:
            for entry in entries:
                try:
                    folder = entry.is_dir(follow_symlinks=False)
                except OSError:  # gone meanwhile
                    continue
                if folder:
                    yield entry

    def close(self) -> None:
        """Stop the sweeps and delete every file shown, and Gradio's, and the folders that left empty, and those
        empty in the cache unchanged ``fresh_s`` (the server stopped). A file shown later (a copy that was under way)
        is deleted as it is noted. What stays: the copies of the examples (Gradio's ``keep_in_cache``: the next start
        finds them where they are), and an empty folder changed just now (another server's sharing the cache: its
        upload's, about to move in)."""
        self._closed.set()
        if self._sweeper is not None:
            self._sweeper.join(timeout=10)
        self._sweep_all(None, emptied=self._holding() | set(self.gradio_start_folders))

    def _copied(self, path: Path) -> str:
        if self.cache_dir is None:
            return str(path)
        cache_dir = str(self.cache_dir)
        return self._shown_now(lambda: save_file_to_cache(path, cache_dir=cache_dir))

    def _shown_now(self, save: Callable[[], str]) -> str:
        """``save()`` the file into the cache (its path there) and note it shown now. The sweep may delete a stale
        copy of the same bytes, or the folder it emptied, in between: saved once more then."""
        self._start_sweeps()
        try:
            return self._noted(save())
        except FileNotFoundError:
            return self._noted(save())

    def _noted(self, path: str) -> str:
        with self._lock:  # the sweep deletes under the lock: the file stays once noted
            os.utime(path)  # FileNotFoundError: deleted in between
            if self._closed.is_set():  # after close(): nobody would delete it
                self._delete(Path(path))
            else:
                self._shown[str(Path(path).resolve())] = time.monotonic()
        return path

    def _delete(self, path: Path) -> None:
        """The file, and its hash folder in the cache if that is left empty (one holding other files stays)."""
        try:
            path.unlink(missing_ok=True)
        except OSError as err:
            logger.warning("could not delete the served file %s: %s", path, err)
            return
        if path.parent.parent.resolve() == self.cache_dir:
            with contextlib.suppress(OSError):
                path.parent.rmdir()

    def _start_sweeps(self) -> None:
        with self._lock:
            if self._sweeper is None and not self._closed.is_set():
                self._sweeper = threading.Thread(
                    target=self._sweeps, name="uvosam-served-sweep", daemon=True
                )
                self._sweeper.start()

    def _sweeps(self) -> None:
        """Every ``sweep_every_s`` until ``close()``."""
        while not self._closed.wait(self.sweep_every_s):
            self._sweep_all(self.max_age_s)

    def _sweep_all(self, max_age_s: float | None, emptied: Collection[str] = ()) -> None:
        """This list's sweep, Gradio's, then the emptied folders' (``emptied``: those that held something before:
        gone if these sweeps emptied them); a failed one is logged (the next one runs)."""
        sweeps = [("the served files", self.sweep)]
        if self._gradio_sweep is not None:
            sweeps.append(("Gradio's cache", self._gradio_sweep))
        sweeps.append(
            ("the emptied folders", functools.partial(self.drop_empty_folders, emptied=emptied))
        )
        for what, sweep in sweeps:
            try:
                sweep(max_age_s)
            except Exception:
                logger.exception(
                    "the sweep of %s failed; the next one is in %s s", what, self.sweep_every_s
                )


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
