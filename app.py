"""UVOSAM web demo (a Hugging Face Space): upload a video, watch it stream back masked, get masks.

UI only: the page and the events that call the handlers of ``app_handlers.App``; the work is done by ``uvosam``
(``run_job``/``rerender_iter``) and the non-UI helpers ``app_gpu`` (ZeroGPU, the GPU function), ``app_models``,
``app_settings``, ``app_work`` (session folders, the job's thread), ``app_text``, ``app_results`` and
``app_uploads``.
``python app.py`` serves on 0.0.0.0:7860 (or ``GRADIO_SERVER_PORT``). Limits and defaults:
``AppSettings.from_env``.
"""

from __future__ import annotations

import app_gpu  # first: imports `spaces` (ZeroGPU) before torch

# isort: split
import atexit
import dataclasses
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import gradio as gr

from app_handlers import App
from app_models import PRESETS, GetPipeline, PipelineLoader, mask_model_choices
from app_settings import AppSettings
from app_text import ABOUT, LINK_EXAMPLE, banner_markdown, footer_markdown, mask_model_info
from uvosam.errors import WeightsError

logger = logging.getLogger("uvosam.app")

ROOT = Path(__file__).resolve().parent
EXAMPLES_DIR = ROOT / "examples"
EXAMPLES = (EXAMPLES_DIR / "bigbuckbunny_cut.mp4", EXAMPLES_DIR / "synthetic_shapes.mp4")
EXAMPLES_CREDIT = (  # CC-BY asks for the credit wherever the clip is shown
    "Examples: Big Buck Bunny (c) 2008 Blender Foundation, www.bigbuckbunny.org, CC-BY 3.0; synthetic shapes"
)
LOAD_ERRORS = (FileNotFoundError, WeightsError, NotImplementedError)
TRACK_HEADERS = ["id", "class", "score", "first frame", "last frame", "frames seen", "came back"]
OUTPUT_SIDES = [
    ("same as input", 0),
    ("1280 px", 1280),
    ("854 px", 854),
    ("640 px", 640),
    ("480 px", 480),
]
STYLE_CHOICES = [  # (label, value); the values are uvosam.render.STYLES
    ("Overlay: colour masks", "overlay"),
    ("Cut-out: objects on black", "cutout"),
    ("Blurred background", "blur"),
    ("Colour splash: grey background", "gray"),
    ("Matte: white objects on black (for editors)", "matte"),
]
# ----------------------------------------------------------------------------------------------- UI
def _load_default(get_pipeline: GetPipeline, settings: AppSettings) -> tuple[Any, str | None]:
    """Load the default models once at start; missing/bad weights give a banner, not a crash.

    So does any other failure (a network error of the Hub client, a broken CUDA driver): a Space that raises here
    restarts in a loop and shows its users nothing; with the banner it serves and says what failed (the log has
    the traceback), and Run tries loading again."""
    try:
        return get_pipeline(settings.default_preset, settings.default_sam), None
    except LOAD_ERRORS as err:
        logger.error("default models not loaded: %s", err)
        return None, str(err)
    except Exception as err:
        logger.exception("default models not loaded (unexpected error)")
        first = (str(err).splitlines() or [""])[0]
        return None, f"{type(err).__name__}: {first} (unexpected; the server log has the traceback)"


def _controls(settings: AppSettings) -> dict[str, gr.components.Component]:
    return {
        "tracker": gr.Dropdown(
            list(PRESETS), value=settings.default_preset, label="Tracker preset"
        ),
        "sam": gr.Radio(
            mask_model_choices(),
            value=settings.default_sam,
            label="Mask model",
            info=mask_model_info(),
            elem_id="mask-model",
        ),
        "min_score": gr.Slider(
            0.0, 1.0, value=0.0, step=0.05, label="Detection score threshold (Run; a higher one on Re-render too)"
        ),
        "max_objects": gr.Slider(1, 20, value=10, step=1, label="Max objects"),
        "stride": gr.Slider(
            1, 10, value=1, step=1, label="Frame stride (1 = every frame)", elem_id="stride"
        ),
        "max_frames": gr.Slider(
            1, settings.max_frames, value=settings.max_frames, step=1, label="Max frames"
        ),
        "output_side": gr.Dropdown(OUTPUT_SIDES, value=854, label="Output video: longest side"),
        "show_boxes": gr.Checkbox(True, label="Show boxes"),
        "show_labels": gr.Checkbox(True, label="Show labels"),
    }


def _link_input(settings: AppSettings) -> tuple[gr.Textbox | None, gr.Button | None]:
    """The "direct link" textbox and its Load button (Enter in the box loads too); (None, None) when the app takes
    no links (``AppSettings.url_input``)."""
    if not settings.url_input:
        return None, None
    with gr.Row(equal_height=True):
        url = gr.Textbox(
            label="…or a direct link to a video file",
            placeholder=f"{LINK_EXAMPLE} (the file itself; YouTube and other pages are not supported)",
            max_lines=1,
            scale=5,
            elem_id="url",
        )
        load = gr.Button("Load", size="sm", scale=1, min_width=80, elem_id="load-url")
    return url, load


def build_demo(get_pipeline: GetPipeline, *, settings: AppSettings) -> gr.Blocks:
    """The Blocks app. ``get_pipeline(preset, sam)`` returns a loaded, shared, read-only ``UVOSAM``.

    The default pair is loaded here, once; if its weights are missing the app still builds and
    shows a banner.
    """
    pipe, load_error = _load_default(get_pipeline, settings)
    app = App(get_pipeline, settings)
    # Gradio's file cache (uploads, served outputs): files older than an hour go, checked every 10 min
    with gr.Blocks(title="UVOSAM", delete_cache=(600, 3600)) as demo:
        gr.Markdown(ABOUT)
        gr.Markdown(
            banner_markdown(load_error) if load_error else "",
            visible=bool(load_error),
            elem_id="banner",
        )
        with gr.Row():
            with gr.Column(scale=1):
                video = gr.Video(sources=["upload"], label="Video", elem_id="inp")
                url, load = _link_input(settings)
                frames_zip = gr.File(  # e.g. a DAVIS JPEGImages/480p/<seq>: masks keep its names
                    label="…or a zip of its frames (.jpg/.png, one folder)",
                    file_types=[".zip"],
                    height=130,
                    elem_id="frames",
                )
                about_video = gr.Markdown(elem_id="video-info")
                gr.Examples(
                    [[str(p)] for p in EXAMPLES if p.is_file()],
                    inputs=[video],
                    cache_examples=False,
                    label=EXAMPLES_CREDIT,
                )
                with gr.Row():
                    run = gr.Button("Run", variant="primary", elem_id="run")
                    stop = gr.Button("Stop", variant="stop", elem_id="stop")
                with gr.Accordion("Settings", open=False):
                    c = _controls(settings)
            with gr.Column(scale=1):
                status = gr.Textbox(label="Status", interactive=False, elem_id="status")
                stream = gr.Video(
                    label="Masked video (live)",
                    streaming=True,
                    autoplay=True,
                    interactive=False,
                    elem_id="stream",
                )
                preview = gr.Image(
                    label="Latest frame", format="jpeg", interactive=False, elem_id="preview"
                )
        with gr.Row():
            mp4 = gr.File(label="Masked video (mp4)", interactive=False, elem_id="mp4")
            zip_file = gr.File(label="Masks (zip)", interactive=False, elem_id="zip")
        table = gr.Dataframe(
            headers=TRACK_HEADERS,
            label="Tracks (and below, a bar on every frame each one was seen in)",
            interactive=False,
            elem_id="tracks",
        )
        timeline = gr.Image(
            label="Track timeline",
            show_label=False,  # its badge would hide the frame numbers
            interactive=False,
            format="png",
            elem_id="timeline",
        )
        hints = gr.Markdown(elem_id="hints")
        with gr.Row():
            keep = gr.CheckboxGroup([], label="Tracks to keep", elem_id="keep")
            with gr.Column():
                style = gr.Radio(
                    STYLE_CHOICES, value="overlay", label="Video style (Run or Re-render)", elem_id="style"
                )
                alpha_webm = gr.Checkbox(
                    False,
                    label="Also a transparent WebM in the zip: the objects only (web pages, OBS, Canva)",
                    elem_id="alpha",
                )
            with gr.Column():
                merge = gr.Textbox(
                    "",
                    label="Merge tracks (one object split into two ids)",
                    placeholder="e.g. 3>1, 5>1: tracks 3 and 5 become part of track 1",
                    elem_id="merge",
                )
                redo = gr.Button("Re-render (no model run)", elem_id="rerender")
        with gr.Accordion("Score against your ground truth (DAVIS J&F)", open=False):
            with gr.Row():
                gt_zip = gr.File(
                    label="Ground truth: a .zip of indexed PNGs (0 background, 1..K objects, 255 "
                    "void), one per frame of the video (or per processed frame), in name order",
                    file_types=[".zip"],
                    elem_id="gt",
                )
                with gr.Column():
                    score = gr.Button("Score", elem_id="score")
                    scores = gr.Markdown(elem_id="scores")
        gr.Markdown(footer_markdown(get_pipeline, pipe, settings), elem_id="footer")
        state = gr.State(None, time_to_live=settings.session_ttl_s, delete_callback=app.forget)

        run_inputs = [video, *c.values(), style, frames_zip, alpha_webm]  # App.segment's parameter order
        run_ev = run.click(
            app.segment,
            run_inputs,
            [status, preview, stream, mp4, zip_file, table, keep, state],
            api_name="segment",
            concurrency_limit=settings.concurrency_limit,
            concurrency_id="gpu",
            show_progress_on=[status],
        )
        redo_ev = redo.click(
            app.rerender,
            [keep, c["show_boxes"], c["show_labels"], c["output_side"], style, merge, alpha_webm,
             c["min_score"], state],  # fmt: skip
            [status, preview, stream, mp4, zip_file, table],
            api_name="rerender",
            concurrency_limit=2,
            show_progress_on=[status],
        )
        describe = dict(
            fn=app.describe,
            inputs=[video, c["tracker"], c["sam"], c["stride"], c["max_frames"], frames_zip],
            outputs=about_video,
            queue=False,  # answers even while waiting runs fill the queue (a probe: ~0.2 s, no decoding)
            show_progress="hidden",
            api_visibility="private",
        )
        gr.on(  # sliders by mouse or keyboard; a drag's steps meanwhile collapse into one more call
            [video.change, frames_zip.change, c["tracker"].change, c["sam"].change,
             c["stride"].input, c["max_frames"].input],
            trigger_mode="always_last",
            **describe,
        )  # fmt: skip
        run_ev.success(**describe)  # after a run: its speed gives the time estimate now
        for show, inputs, output in ((app.timeline, zip_file, timeline), (app.merge_hints, [zip_file, merge], hints)):
            zip_file.change(  # a run or a re-render shows its zip (and clears it when it starts)
                show, inputs, output, queue=False, show_progress="hidden", api_visibility="private"
            )
        score.click(
            app.score,
            [gt_zip, zip_file, state],
            scores,
            api_name="score",
            concurrency_limit=2,
            show_progress_on=[scores],
        )
        stop.click(
            app.stopped,
            None,
            status,
            cancels=[run_ev, redo_ev],
            queue=False,
            api_visibility="private",
        )
        if url is not None:
            gr.on(  # downloads run on the server: bounded like an upload (max_upload_mb), 2 at a time
                [load.click, url.submit],
                app.load_url,
                [url, state],
                [video, frames_zip],
                api_name="load_url",
                concurrency_limit=2,
                concurrency_id="link",
            )
        demo.unload(app.unload)
    demo.queue(default_concurrency_limit=settings.concurrency_limit, max_size=settings.max_queue)
    return demo


def launch_kwargs(settings: AppSettings, work_root: Path) -> dict[str, Any]:
    """``launch()`` arguments that enforce the limits: upload size, served paths."""
    return {
        "max_file_size": f"{settings.max_upload_mb}mb",
        "allowed_paths": [str(work_root), str(EXAMPLES_DIR)],
        "blocked_paths": [str(ROOT / "checkpoints")],
    }


def main() -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    settings = AppSettings.from_env()
    if settings.work_root is None:  # a fresh temp folder for this process, removed at exit
        settings = dataclasses.replace(
            settings, work_root=Path(tempfile.mkdtemp(prefix="uvosam-app-"))
        )
        atexit.register(shutil.rmtree, settings.work_root, True)
    loader = PipelineLoader(device=app_gpu.default_device())
    demo = build_demo(loader, settings=settings)
    demo.launch(
        server_name=os.environ.get("GRADIO_SERVER_NAME", "0.0.0.0"),
        server_port=int(os.environ.get("GRADIO_SERVER_PORT", "7860")),
        **launch_kwargs(settings, settings.work_root),
    )


if __name__ == "__main__":
    main()
