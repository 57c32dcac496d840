"""UVOSAM web demo (a Hugging Face Space): upload a video, watch it stream back masked, get masks.

UI only: ``build_demo`` lays out the page (``uvosam_app.layout``) and wires its events to the handlers of
``uvosam_app.handlers.App`` (Re-render's: ``App.rerenders``); the work is done by ``uvosam``
(``run_job``/``rerender_iter``). The app's other parts, one concept per module, are listed in
``uvosam_app/__init__.py``.
``python app.py`` serves on 0.0.0.0:7860 (or ``GRADIO_SERVER_PORT``).
"""

from __future__ import annotations

import os

# Before torch loads OpenMP: waiting threads sleep rather than spin (as in uvosam_cli; docs/performance.md)
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

# isort: split
from uvosam_app import gpu as _gpu  # noqa: F401 - first: imports `spaces` (ZeroGPU) before torch

# isort: split
import atexit
import dataclasses
import functools
import logging
import shutil
import signal
import tempfile
from pathlib import Path
from typing import Any

import gradio as gr
from gradio.events import Dependency
from gradio.route_utils import delete_files_created_by_app

from uvosam.cpu_quota import limit_threads
from uvosam_app import server_log
from uvosam_app.file_links import bound_file_links
from uvosam_app.footer import footer_markdown
from uvosam_app.handlers import App
from uvosam_app.layout import CSS, EXAMPLES_DIR, ROOT, Page, page
from uvosam_app.models import (
    GetPipeline,
    PipelineLoader,
    load_mask_model,
    load_tracker,
)
from uvosam_app.page_scripts import ANNOUNCE_JS, LIVE_REGION_JS
from uvosam_app.process_folders import process_dir
from uvosam_app.queue_turns import limit_waiting_runs
from uvosam_app.refusals import log_refusals
from uvosam_app.served import ServedFiles
from uvosam_app.settings import FILE_MAX_AGE_S, FILE_SWEEP_EVERY_S, AppSettings
from uvosam_app.start_models import load_default
from uvosam_app.text import API_DESCRIPTIONS
from uvosam_app.work import stop_jobs

logger = logging.getLogger("uvosam.app")

# how long the runs under way get to end when the server stops (a frame takes seconds on a CPU; a container is
# commonly killed 30 s after its SIGTERM)
STOP_JOBS_S = 20


def build_demo(get_pipeline: GetPipeline, *, settings: AppSettings) -> gr.Blocks:
    """The Blocks app. ``get_pipeline(preset, sam)`` returns a loaded, shared, read-only ``UVOSAM``.

    The default pair is loaded here, once; if it does not load the app still builds and shows a banner.
    """
    start = load_default(get_pipeline, settings)
    footer = footer_markdown(get_pipeline, start, settings)
    # Gradio's file cache (uploads, served outputs): files older than FILE_MAX_AGE_S go, checked every
    # FILE_SWEEP_EVERY_S (the texts say how long: FILES_KEPT); the uploads by Gradio's sweep, the files the app
    # shows (results, previews) by its own, last shown FILE_MAX_AGE_S ago: both run by ``ServedFiles``

    # the States' delete callback is a plain function, not the bound method: Gradio puts it in the page's config,
    # which it deep-copies for every GET /config, and a bound method's copy copied the App, its loader and every
    # loaded model (0.3-0.7 s a request, seconds for a few at once: clients timed out)
    def forget(state: Any) -> Any:
        return app.forget(state)

    with gr.Blocks(title="UVOSAM") as demo:  # no delete_cache: ServedFiles runs Gradio's sweep
        ui = page(settings, start, footer, forget=forget)
        o = ui.outputs
        # the App is made once the page is: it shows its frames as the page's *Latest frame* writes them;
        # ``main`` deletes its files at shutdown (``demo.served_files.close()``)
        demo.served_files = ServedFiles(
            demo.GRADIO_CACHE,
            preview=o.preview,
            max_age_s=FILE_MAX_AGE_S,
            sweep_every_s=FILE_SWEEP_EVERY_S,
            gradio_sweep=functools.partial(delete_files_created_by_app, demo),
        )
        app = App(
            get_pipeline,
            settings,
            served=demo.served_files,
            streams=lambda: demo.pending_streams,
        )
        _wire(app, settings, ui)
        demo.unload(app.unload)
    # a file that an API client gives as a link: fetched as Load fetches one, not by Gradio (unbounded)
    bound_file_links(demo, settings)
    demo.queue(default_concurrency_limit=settings.concurrency_limit, max_size=settings.max_queue)
    limit_waiting_runs(demo, "segment", settings.waiting_per_session)
    log_refusals(demo)
    return demo


# the page's own small events: not queued behind runs, no spinner, no API endpoint
_QUIET: dict[str, Any] = {"queue": False, "show_progress": "hidden", "api_visibility": "private"}


def _wire(app: App, settings: AppSettings, ui: Page) -> None:
    """The page's events, registered in this order (Gradio numbers them so): Run, Re-render (each with its failure
    listener), the upload's description, the views of the zip shown, Score (and its failure listener), the
    announcement of a job's start and end (in the browser), Stop, Load (a link)."""
    run_ev = _on_run(app, settings, ui)
    _on_job_failure(app, ui, run_ev)
    redo_ev = _on_rerender(app, ui)
    _on_job_failure(app, ui, redo_ev)
    # the page's Re-render only (API clients run no follow-up event): Tracks to keep offers the split's parts
    redo_ev.success(
        app.rerenders.keep_offered,
        [ui.state, ui.outputs.zip_file],
        [ui.editing.keep, ui.keep_offer],
        **_QUIET,
    )
    _on_upload_change(app, ui, run_ev)
    _on_zip_shown(app, ui)
    _on_score(app, ui)
    status = ui.outputs.status
    status.change(
        None, [status, ui.outputs.announce], ui.outputs.announce, js=ANNOUNCE_JS, **_QUIET
    )
    ui.inputs.stop.click(
        app.stop_pressed,
        ui.outputs.status,
        ui.outputs.status,
        cancels=[run_ev, redo_ev],
        **_QUIET,
    )
    if ui.inputs.url is not None:
        _on_link(app, ui)
    # a new run's tracks are not the last one's: the merge and split typed for those go (in the browser; registered
    # last, after the events the tests number)
    run_ev.success(None, None, [ui.editing.merge, ui.editing.split], js="() => ['', '']", **_QUIET)


def _on_run(app: App, settings: AppSettings, ui: Page) -> Dependency:
    i, o, e = ui.inputs, ui.outputs, ui.editing
    # in App.segment's parameter order (a State is no API parameter: /segment's stay as they were)
    run_inputs = [i.video, *i.controls.values(), e.style, i.frames_zip, e.alpha_webm, ui.linked]
    return i.run.click(
        app.segment,
        run_inputs,
        [o.status, o.preview, o.stream, o.mp4, o.zip_file, o.table, e.keep, ui.streams, ui.state],
        api_name="segment",
        api_description=API_DESCRIPTIONS["segment"],
        concurrency_limit=settings.concurrency_limit,
        concurrency_id="gpu",
        show_progress_on=[o.status],
    )


def _on_rerender(app: App, ui: Page) -> Dependency:
    c, o, e = ui.inputs.controls, ui.outputs, ui.editing
    return gr.on(  # Enter in the merge or split box re-renders too (as Enter in the link box loads)
        [e.redo.click, e.merge.submit, e.split.submit],
        app.rerenders.rerender,
        [  # RerenderHandlers.rerender's parameter order
            e.keep,
            c["show_boxes"],
            c["show_labels"],
            c["output_side"],
            e.style,
            e.merge,
            e.alpha_webm,
            c["min_score"],
            ui.state,
            ui.linked,
            e.split,  # the API's last value: a client that passes values by position still can
            ui.keep_offer,  # a State: no API parameter
        ],
        [o.status, o.preview, o.stream, o.mp4, o.zip_file, o.table],
        api_name="rerender",
        api_description=API_DESCRIPTIONS["rerender"],
        concurrency_limit=2,
        show_progress_on=[o.status],
    )


def _on_job_failure(app: App, ui: Page, job_ev: Dependency) -> None:
    """After a Run or Re-render that ended without its result, the status line shows what it says (no "Error" badge
    over it): "failed: ..." (the handler wrote why; the toast goes) or "stopped: ..." (``App.stopped``).

    Gradio 6.31's page covers the progress targets of an event that failed with an "Error" badge, and so it did after
    many Stops (2-4 of 6): the cancel request's empty answer fails the page's handling of the event's data (an error,
    no toast) while the cancel marks the event complete, whichever comes last. The page calls the failure listeners
    after either, so this one, which writes the status line last, removes the badge (its own progress is hidden).
    Stop's own line went out before the cancel was done, and a last update of the run could still replace it.
    "once": a call while one is under way is dropped (that one ends later anyway; run again, it could write "stopped"
    over a Run pressed right after Stop)."""
    status = ui.outputs.status
    job_ev.failure(app.stopped, status, status, trigger_mode="once", **_QUIET)


def _on_upload_change(app: App, ui: Page, run_ev: Dependency) -> None:
    """The upload's description, again whenever the upload (or a linked Load's file) or a setting it depends on
    changes, and after a run. An upload or a zip chosen replaces a linked file."""
    i, c = ui.inputs, ui.inputs.controls
    gr.on(
        [i.video.change, i.frames_zip.change],
        app.links.input_changed,
        [i.video, i.frames_zip, ui.linked],
        [ui.linked, ui.outputs.preview],
        **_QUIET,
    )
    ui.linked.change(app.links.linked_frame, ui.linked, ui.outputs.preview, **_QUIET)
    describe = dict(
        fn=app.describe,
        inputs=[
            i.video,
            c["tracker"],
            c["sam"],
            c["stride"],
            c["max_frames"],
            i.frames_zip,
            ui.linked,
            ui.state,
        ],
        outputs=i.about,
        **_QUIET,  # answers even while waiting runs fill the queue (a probe: ~0.2 s, no decoding)
    )
    # sliders by mouse, keyboard or box, and when the page puts a number typed out of range back in range (the box
    # lost focus) or ↺ resets it (.input missed those two); a drag's steps meanwhile collapse into one more call
    gr.on(
        [i.video.change, i.frames_zip.change, ui.linked.change, c["tracker"].change, c["sam"].change,
         c["stride"].change, c["max_frames"].change],
        trigger_mode="always_last",
        **describe,
    )  # fmt: skip
    # after a run: its speed gives the time estimate now; after a failed one too, which cleared the results (and the
    # session's last run) that the note of results of another input would name
    run_ev.then(**describe)


def _on_score(app: App, ui: Page) -> None:
    """Score: the scores, or why it failed in their place (``ResultViews.score_shown``), with no "Error" badge over
    it (the page covers the progress target of a failed event with one: the failure listener, called after, removes
    it)."""
    scores = ui.scoring.scores
    score_ev = ui.scoring.score.click(
        app.views.score_shown,
        [ui.scoring.gt_zip, ui.outputs.zip_file],
        scores,
        api_name="score",
        api_description=API_DESCRIPTIONS["score"],
        concurrency_limit=2,
        show_progress_on=[scores],
    )
    score_ev.failure(app.views.score_failed, None, scores, **_QUIET)


def _on_zip_shown(app: App, ui: Page) -> None:
    """What is read from the zip shown (timeline, merge hints) when a run or a re-render shows it (or clears it when
    it starts); the scores shown go then, and when the ground truth changes (they were of other masks or another
    ground truth).

    ONE listener of the zip's change: Gradio 6.31's page fires the change of a File that a generator (Run,
    Re-render) sets again and again while two or more listeners watch it (each run read its zip and drew its
    timeline dozens of times, over the cached image the browser was reading; with three the firing never stopped
    and the page stopped showing Score's answer)."""
    o = ui.outputs
    o.zip_file.change(
        app.views.zip_shown,
        [o.zip_file, ui.editing.merge],
        [o.timeline, o.timeline_narrow, o.hints, ui.scoring.scores],
        **_QUIET,
    )
    ui.scoring.gt_zip.change(app.views.scores_gone, None, ui.scoring.scores, **_QUIET)


def _on_link(app: App, ui: Page) -> None:
    """Load (a link): its progress (the download) shows on the link box, not over the video or zip loaded before,
    which a refused link leaves as they were (an "Error" badge covered them: the video looked gone); the toast says
    why, and the link box keeps the link, with no badge over it, to be corrected."""
    i = ui.inputs
    # downloads run on the server: bounded like an upload (max_upload_mb), 2 at a time
    load_ev = gr.on(
        [i.load.click, i.url.submit],
        app.links.load_url,
        [i.url, ui.state, ui.linked],
        [i.video, i.frames_zip, ui.linked],  # /load_url returns (video, zip): a State is no output
        api_name="load_url",
        api_description=API_DESCRIPTIONS["load_url"],
        concurrency_limit=2,
        concurrency_id="link",
        show_progress_on=[i.url],
    )
    load_ev.failure(app.links.refused, None, i.url, **_QUIET)


def launch_kwargs(settings: AppSettings) -> dict[str, Any]:
    """``launch()`` arguments that enforce the limits (upload size, served paths), and the page's CSS and script
    (the live region: ``LIVE_REGION_JS``).

    Gradio serves only its cache and the examples: what the app shows of the sessions' folders it copies into the
    cache (``ServedFiles``), where a file goes as an attachment unless its type is safe to show. A folder in
    ``allowed_paths`` goes inline with its real type: a Load's download named x.html there ran its script in the
    Space's origin."""
    return {
        "css": CSS,
        "js": LIVE_REGION_JS,
        "max_file_size": f"{settings.max_upload_mb}mb",
        "allowed_paths": [str(EXAMPLES_DIR)],
        "blocked_paths": [str(ROOT / "checkpoints")],
    }


def make_loader(settings: AppSettings) -> PipelineLoader:
    """The app's model loader: on this machine's device, SAM's encoder in ``settings.sam_precision`` (and replayed
    from a CUDA graph with ``settings.cuda_graph``), and room for
    every model loaded at start (the defaults and ``UVOSAM_PRELOAD``), so that none of them is unloaded for another:
    on ZeroGPU none could be loaded again."""
    return PipelineLoader(
        device=settings.run_device(),
        load_tracker=load_tracker,
        load_segmenter=functools.partial(
            load_mask_model, sam_precision=settings.sam_precision, cuda_graph=settings.cuda_graph
        ),
        max_loaded=max(3, len(settings.start_pairs())),
    )


def read_settings() -> AppSettings:
    """``AppSettings.from_env()``, or, for a value it refuses, exit saying why in one line on stderr, exit status 1
    (its traceback, 15 lines ending in the reason, hid the reason in a Space's log)."""
    try:
        return AppSettings.from_env()
    except ValueError as err:
        reason = " ".join(line.strip() for line in str(err).splitlines() if line.strip())
        raise SystemExit(f"The app did not start: {reason}") from None


def main() -> None:
    settings = read_settings()  # before any model loads
    server_log.set_up(settings.log_level)  # its level is a setting
    limit_threads()  # torch's threads within the container's CPU quota (a Space on CPU basic: 2 CPUs)
    # a fresh folder of this process in UVOSAM_WORK_DIR (or the temp folder), removed at exit; those that earlier
    # processes left there are removed first
    work_root = process_dir(settings.work_root or Path(tempfile.gettempdir()))
    atexit.register(shutil.rmtree, work_root, True)
    settings = dataclasses.replace(settings, work_root=work_root)
    # SIGTERM (a Space's restart, `docker stop`) ends the server as Ctrl-C does, so the clean-up above runs (it
    # killed the process, which left its folder with its sessions' runs for good). Gradio's SSR mode replaces this
    # handler with its own, which exits too.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    loader = make_loader(settings)
    demo = build_demo(loader, settings=settings)
    # ZeroGPU: its CUDA emulation works in this (the main) thread only
    if settings.start_models_only:
        logger.info(
            "ZeroGPU: only the models loaded at start run (list more in UVOSAM_PRELOAD; a restart loads them again)"
        )
        loader.stop_loading(
            "this Space runs only the models it loaded when it started; choose another model"
        )
    try:
        demo.launch(
            server_name=os.environ.get("GRADIO_SERVER_NAME", "0.0.0.0"),
            server_port=int(os.environ.get("GRADIO_SERVER_PORT", "7860")),
            **launch_kwargs(settings),
        )
    # Ctrl-C or SIGTERM before Gradio's own wait caught it (it says "closing server")
    except KeyboardInterrupt:
        logger.info("stopped")
    finally:
        # Gradio's wait closed the server on Ctrl-C or SIGTERM, but while a page was open (its heartbeat) the server
        # waited for it, 5 s, and the process exited before any clean-up: closing the Blocks ends the heartbeats.
        demo.close(verbose=False)
        # Gradio's cache: the results and previews shown, and Gradio's own files (uploads), as ServedFiles runs
        # Gradio's sweep (no delete_cache: Gradio's shutdown deletes nothing)
        demo.served_files.close()
        # the runs under way end after their step, before the interpreter exits (a thread inside torch then aborted
        # the process after the clean-up: exit status 134)
        left = stop_jobs(timeout=STOP_JOBS_S)
        if left:
            logger.warning("still running after %d s, exiting: %s", STOP_JOBS_S, ", ".join(left))


if __name__ == "__main__":
    main()
