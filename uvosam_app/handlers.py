"""The app's event handlers (``App``): Run, Stop, the upload's description (``uvosam_app.describe``), the session's
clean-up; Load (a link) is ``App.links`` (``uvosam_app.link_handlers``), Re-render ``App.rerenders``
(``uvosam_app.rerender_handlers``), the views of a finished run (timeline, merge hints, Score) ``App.views``
(``uvosam_app.result_views``). Per-user data lives in ``gr.State`` (``SessionRun``) and in session folders
(``WorkRoot``); the models run in ``uvosam_app.gpu.gpu_job``, in a worker thread (``JobPump``).
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import gradio as gr

from uvosam.job_types import JobOptions, JobProgress
from uvosam.video import probe
from uvosam_app import gpu as app_gpu
from uvosam_app import server_log
from uvosam_app import uploads as app_uploads
from uvosam_app.checks import OutputChoices, run_request
from uvosam_app.describe import RunSpeed, describe_input, input_path, record_speed
from uvosam_app.errors import MODEL_ERRORS, failures_in_status, set_work_folder, to_gr_error
from uvosam_app.keep_parts import keep_choices, run_created_utc
from uvosam_app.link_handlers import LinkHandlers
from uvosam_app.models import GetPipeline, run_config, unavailable
from uvosam_app.probes import ProbeCache
from uvosam_app.progress import drive
from uvosam_app.rerender_handlers import RerenderHandlers
from uvosam_app.result_views import ResultViews
from uvosam_app.results import track_rows
from uvosam_app.served import ServedFiles, drop_ended_streams
from uvosam_app.settings import AppSettings
from uvosam_app.text import FINISHED, STOPPED
from uvosam_app.work import (
    JobPump,
    OpenJob,
    SessionRun,
    SessionStreams,
    WorkRoot,
    opened,
    session_key,
)

logger = logging.getLogger("uvosam.app")

FIRST_STEP = "starting (loading the models on their first use)"


class App:
    """The event handlers of one demo; per-user data lives in ``gr.State`` and session folders."""

    def __init__(
        self,
        get_pipeline: GetPipeline,
        settings: AppSettings,
        *,
        served: ServedFiles | None = None,
        streams: Callable[[], dict] | None = None,
    ) -> None:
        """``served``: the page's components that show files (none: the files go to Gradio as they are);
        ``streams``: Gradio's ``pending_streams`` (the live videos' chunks, which ``forget`` drops with a session's
        last run)."""
        self.get_pipeline = get_pipeline
        self.settings = settings
        self.served = served or ServedFiles()
        self.streams = streams
        self.work = WorkRoot(settings.work_root)
        set_work_folder(self.work.root)  # named by the log line of a full disk
        self.gpu_slots = threading.BoundedSemaphore(settings.concurrency_limit)
        self.source_key = app_gpu.register_source(get_pipeline, to_gr_error)
        self.speeds: dict[tuple[str, str], RunSpeed] = {}  # (tracker, sam) -> the last run's speed
        self.probes = ProbeCache()  # the input files' probes, kept: an upload is probed once
        # Load (a link) and its linked video
        self.links = LinkHandlers(settings, self.work, self.probes, self.served)
        # the views of a finished run: its timeline, merge hints and Score
        self.views = ResultViews(settings, self.work, self.served)
        # Re-render (its jobs start as a Run's, ``_start``) and what Tracks to keep offers after one
        self.rerenders = RerenderHandlers(settings, self.work, self.served, self._start)

    # ------------------------------------------------------------------------------------------ run
    @failures_in_status(9, job=server_log.RUN)
    async def segment(
        self,
        video: str | None,
        tracker: str,
        sam: str,
        min_score: float,
        max_objects: int,
        stride: int,
        max_frames: int,
        output_side: str | int,
        show_boxes: bool,
        show_labels: bool,
        style: str,
        frames_zip: str | None = None,  # defaults: optional in the API (gradio_client)
        alpha_webm: bool = False,
        request: gr.Request = None,  # type: ignore[assignment]  (set by Gradio)
        # the session's linked video (a State: not in the API); after the request, as Gradio fills that in
        linked: str | None = None,
    ) -> AsyncIterator[tuple]:
        """Track + segment a video (or a zip of its frames, or else the file of a linked Load): streams (status,
        preview, chunk); ends with mp4, zip, tracks; a refusal or a failure ends the status line ("failed: ...").
        An async generator: it waits for the job on the event loop, where Stop (Gradio cancels its task) lands at
        once; the folders and the job start in a worker thread. The status line is the progress (frame counter,
        speed, ETA): no Gradio progress bar, whose timer restarted at each update."""
        checked = run_request(
            self.settings, video, frames_zip=frames_zip, linked=linked, tracker=tracker, sam=sam,
            min_score=min_score, max_objects=max_objects, stride=stride, max_frames=max_frames,
            outputs=OutputChoices(output_side, style, show_boxes, show_labels, alpha_webm),
        )  # fmt: skip
        job = partial(
            self._job, tracker, sam, checked.changes, checked.source, options=checked.options
        )
        start = partial(self._start, session_key(request), "run", job, self.gpu_slots, checked.held)
        skip = gr.skip()
        cleared = gr.CheckboxGroup(choices=[], value=[])
        interval = self.settings.status_interval_s
        starting = "starting" if self._models_loaded(tracker, sam) else FIRST_STEP
        async with (
            opened(start) as running,
            contextlib.aclosing(
                drive(
                    running.pump,
                    "segmenting",
                    interval,
                    starting,
                    lend_in=running.folder,
                )
            ) as updates,
        ):
            # the old run is gone; the session's streams go with its states, whatever this run's end
            key = session_key(request)
            streams = SessionStreams(key) if key else None
            yield "starting…", None, None, None, None, [], cleared, streams, None
            async for up in updates:
                if up.result is None:
                    preview = await self.served.frame(up.preview)
                    # streams again: their state's clock starts again (a Run longer than its time to live)
                    yield up.status, preview, up.chunk, skip, skip, skip, skip, streams, skip
                    continue
                r = up.result
                tracks = tuple((t.track_id, t.class_name) for t in r.tracks)
                keep = gr.CheckboxGroup(
                    choices=keep_choices(tracks), value=[t.track_id for t in r.tracks]
                )
                origin = input_path(video, frames_zip, linked)
                state = SessionRun(running.folder, r.cache_dir, origin, tracks, run_created_utc(r))
                record_speed(self.speeds, (tracker, sam), r)
                rows = track_rows(r)
                files = await self.served.results(r.overlay_mp4, r.zip_path)
                preview = await self.served.frame(up.preview)
                # on ZeroGPU: says so when the run covered fewer frames than asked
                status = up.status + checked.cap_note(r.info)
                yield status, preview, up.chunk, *files, rows, keep, streams, state

    def _start(
        self,
        session: str | None,
        kind: str,
        job: Callable[[Path], Iterator[JobProgress]],
        slots: threading.Semaphore,
        held: Path | None = None,
        *,
        keep: Path | None = None,
    ) -> OpenJob:
        """A job's file work, in a worker thread (``opened``): ``held`` (a folder the job reads) is held, the job's
        folder is made (the session's idle folders but ``keep`` are deleted), and ``job(folder)``
        starts in its own thread, once one of ``slots`` is free."""
        self.work.hold(held)
        try:
            folder = self.work.new_dir(session, kind, keep=keep)
        except BaseException:
            self.work.release(held)
            raise
        pump = JobPump(
            partial(job, folder),
            slots,
            on_abort=partial(self.work.discard, folder),
            on_end=partial(self.work.release, folder, held),
        )
        return OpenJob(pump.start(), folder)

    def _job(
        self,
        tracker: str,
        sam: str,
        changes: dict,
        source: str | app_uploads.FramesZip,
        run_dir: Path,
        options: JobOptions,
    ) -> Iterator[JobProgress]:
        """The run, in the worker thread. A zip of frames is checked (as ``describe`` does), unpacked into
        ``run_dir/frames`` outside the GPU function, and deleted once the run is over (the mask cache feeds
        Re-render); after unpacking one step (0 frames done) lets a Stop pressed meanwhile end the run there."""
        if not isinstance(source, app_uploads.FramesZip):
            # refused before the models load and before a ZeroGPU allocation (run_job probes it again: ms)
            probe(
                source, limits=options.limits, stride=options.stride, max_frames=options.max_frames
            )
            yield from self._run_models(tracker, sam, changes, source, run_dir, options)
            return
        info = source.info(self.settings, stride=options.stride, max_frames=options.max_frames)
        frames = run_dir / "frames"
        try:
            folder = source.extract(frames, self.settings)
            total = info.num_output_frames(stride=options.stride, max_frames=options.max_frames)
            yield JobProgress(frames_done=0, frames_total=total, elapsed_s=0.0)
            for step in self._run_models(tracker, sam, changes, str(folder), run_dir, options):
                # gone before the user hears "done" (Re-render reads the mask cache)
                if step.result is not None:
                    shutil.rmtree(frames, ignore_errors=True)
                yield step
        # name frames as the user knows them, not by the server's run folder
        except gr.Error as err:
            message = err.message.replace(str(frames), Path(source.path).name)
            raise gr.Error(message, duration=err.duration, visible=err.visible, title=err.title,
                           print_exception=False) from None  # fmt: skip
        finally:
            shutil.rmtree(frames, ignore_errors=True)

    def _models_loaded(self, tracker: str, sam: str) -> bool:
        """Whether the pair is loaded already: a ``PipelineLoader`` knows; of any other source (a function) the
        first step says the models may be loading."""
        loaded = getattr(self.get_pipeline, "loaded", None)
        return bool(loaded and loaded(tracker, sam))

    def _run_models(
        self, tracker: str, sam: str, changes: dict, source: str, run_dir: Path, options: JobOptions
    ) -> Iterator[JobProgress]:
        try:  # loads on first use, outside the GPU function
            base = self.get_pipeline(tracker, sam)
        except MODEL_ERRORS as err:
            raise unavailable(tracker, sam, err) from None
        config = run_config(base, **changes)
        yield from app_gpu.gpu_job(
            self.source_key, tracker, sam, config, source, str(run_dir), options
        )

    def describe(
        self,
        video: str | None,
        tracker: str,
        sam: str,
        stride: int,
        max_frames: int,
        frames_zip: str | None = None,
        linked: str | None = None,
        state: SessionRun | None = None,
    ) -> str:
        """What the input is and what Run will cover, before Run (``uvosam_app.describe.describe_input``)."""
        return describe_input(
            self.settings, self.speeds, video=video, tracker=tracker, sam=sam, stride=stride,
            max_frames=max_frames, frames_zip=frames_zip, linked=linked, state=state, probes=self.probes,
        )  # fmt: skip

    def stop_pressed(self, status: str | None = None) -> Any:
        """Stop's status line, given the one shown: "stopped" over a job's line (starting, running, waiting for a
        worker); any other line stays, as nothing ran then: none yet (a fresh page: ""), a finished job's ("done:
        ...", "failed: ...", beside its results) or a stopped one's. A run still waiting in Gradio's queue (no line
        of its own yet) says "stopped" once the page has cancelled it: its failure listener writes it (``stopped``),
        unless the line still shows an earlier job's end ("done: ...", "failed: ..."), which then stays.
        """
        if not status or status.startswith((*FINISHED, STOPPED)):
            return gr.skip()
        return STOPPED

    def stopped(self, status: str | None = None) -> Any:
        """The status line once a Run or Re-render ended without its result (``app.py``: their failure listener,
        after the page's cancel is done), given the one shown: its "failed: ..." (``failures_in_status``) stays;
        else (Stop ended it: starting, running or waiting in the queue) "stopped"."""
        if (status or "").startswith(FINISHED):
            return gr.skip()
        return STOPPED

    def forget(self, state: SessionRun | SessionStreams | str | None) -> threading.Thread | None:
        """``gr.State`` delete callback (session over or expired) of the last run, of the linked video and of the
        session's streams. The last run's expiry removes the session's runs and re-renders, the streams' expiry (set
        with the same updates; also after a failed or stopped Run, which leaves no last run to expire) the videos they
        streamed (Gradio's ``pending_streams``: freed by Gradio when a page's heartbeat drops, never for an API client
        without one; those of a job still running stay), the linked video's its downloads (each State has its own clock:
        a Load made after the last run outlives it, and the other way round), then the session's folder once empty;
        never the folders a request still uses. Gradio calls this on its event loop and stops calling any State's
        callback after one raises, so the deleting is done in a thread (returned) and never raises."""
        if state is None:  # API clients close no tab (no unload): this is their only clean-up
            return None
        if isinstance(state, SessionStreams):
            if self.streams is not None:
                drop_ended_streams(self.streams(), state.session)
            return None
        if isinstance(state, SessionRun):
            folder, kinds = state.run_dir, ("run", "rerender")
        else:
            folder, kinds = Path(state).parent, ("link",)
        thread = threading.Thread(
            target=self.work.remove_idle,
            args=(folder.parent, kinds),
            daemon=True,
            name="uvosam-forget",
        )
        thread.start()
        return thread

    def unload(self, request: gr.Request) -> None:
        self.work.remove_session(session_key(request))
