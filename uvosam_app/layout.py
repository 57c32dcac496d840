"""The page's components, laid out (``page``): the input column (the upload and its description), the live column
(Run and Stop over the status line), the other inputs (link, zip of frames, examples) and Settings, in that order as
Tab goes and as a phone shows them (on a wide screen the other inputs and Settings go under the upload: ``CSS``), a
run's results, the editing row (Re-render) and the Score panel. No events here: ``app.py`` wires them to the handlers of
``uvosam_app.handlers.App``. Each component's ``elem_id`` is what the browser tests find it by.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr

from uvosam_app.checked_inputs import (
    UncheckedDropdown,
    UncheckedRadio,
    keep_list,
    output_side,
    slider,
)
from uvosam_app.checks import FRAMES_BOX_VIDEOS, slider_ranges
from uvosam_app.file_input import FileInput
from uvosam_app.models import StartModels, mask_model_choices, noted
from uvosam_app.settings import AppSettings
from uvosam_app.text import (
    ABOUT,
    GROUND_TRUTH_HELP,
    LINK_EXAMPLE,
    banner_markdown,
    limits_line,
    mask_model_info,
)

ROOT = Path(__file__).resolve().parents[1]  # the repository (app.py, examples/, checkpoints/)
EXAMPLES_DIR = ROOT / "examples"
EXAMPLES = (EXAMPLES_DIR / "bigbuckbunny_cut.mp4", EXAMPLES_DIR / "synthetic_shapes.mp4")
EXAMPLE_NAMES = {
    "bigbuckbunny_cut.mp4": "Big Buck Bunny",
    "synthetic_shapes.mp4": "Synthetic shapes",
}
EXAMPLES_CREDIT = (  # CC-BY asks for the credit wherever the clip is shown
    "Examples: Big Buck Bunny (c) 2008 Blender Foundation, www.bigbuckbunny.org, CC-BY 3.0; synthetic shapes"
)
TRACK_HEADERS = ["id", "class", "score", "first frame", "last frame", "frames seen", "came back"]
# The page's CSS, each rule with what it fixed (measured in Chromium at 1366x800 and 390x844, Gradio 6.31).
CSS = """
/* a portrait clip made the input and live players 600x1065 on a 1366x800 laptop: at most 55% of the window (60%
   left a first visitor's four-line description, no time estimate yet, 4 px below the first screen) */
#inp video, #stream video, #preview img { max-height: 55vh; object-fit: contain; }
/* the scores table broke words and numbers on a phone ("obje|ct", "1.00|0") */
#scores td, #scores th { overflow-wrap: normal; word-break: normal; padding: 6px 10px; }
/* the tracks table's cells wrap (wrap=True, in a phone's width), between words only: Gradio's cells (the virtual
   rows' .body-cell, the .header-cell) broke any word ("refrig|erator", "tennis|_racket" at 390 px); the class
   column is wide enough for the released checkpoints' longest class name (tennis_racket: 94 px at 12 px) */
#tracks .body-cell span, #tracks .header-cell span { word-break: normal; overflow-wrap: normal; }
/* the track timeline drawn for a phone (below) */
#timeline-narrow { display: none; }
/* Settings come after the live column in the page (on a phone the open panel pushed the status line and the live
   video a screen down; reordered by CSS only, Tab went from the examples to Settings, then back up to Run): a wide
   window's grid puts them under the inputs, as the input column's last part */
@media (min-width: 768px) {
  #io-row { display: grid; grid-template-columns: minmax(0, 1fr) minmax(0, 1fr); grid-template-rows: auto auto 1fr;
            align-items: start; }
  #input-column { grid-column: 1; grid-row: 1; }
  #more-inputs { grid-column: 1; grid-row: 2; }
  #live-column { grid-column: 2; grid-row: 1 / span 3; }
  #settings { grid-column: 1; grid-row: 3; }
}
/* Gradio stacks the input column over the live one below a 768 px wide window */
@media (max-width: 767px) {
  /* Run was 1214 px down a 390x844 phone's page (the link, zip and examples came before it: now after the live
     column); the title took 3 lines, the text 1.625 line heights: Run is at 686 px (872 after an upload's
     description) */
  #about h1 { font-size: 20px; }
  #about p, #limits p { line-height: 1.5; }
  #io-row { flex-direction: column; flex-wrap: nowrap; align-items: stretch; }
  /* Gradio's columns wrap: sized by the row, a portrait clip's live video pushed Latest frame into a second
     column, off the screen to the right */
  #live-column { flex-wrap: nowrap; }
  #live-column > * { flex-shrink: 0; }
  /* the timeline (up to 1066 px) scaled to the screen had 4 px tall labels, at its size it scrolled sideways: the
     one drawn for a phone's width takes its place */
  #timeline { display: none; }
  #timeline-narrow { display: block; }
  /* the tracks table hid columns unless scrolled sideways inside it */
  #tracks th, #tracks td, #tracks .cell-wrap, #tracks .header { font-size: 12px; }
  /* and the class column fits the longest class name (above): the other headers at 12 px were clipped by 1-3 px
     ("frame", "score") */
  #tracks .cell-wrap { padding: 3px 2px; }
  #tracks .header-cell span { font-size: 11px; }
}
/* what a screen reader announces of a run's start and end (``page``): out of sight */
#announce { position: absolute; width: 1px; height: 1px; min-height: 0; margin: -1px; padding: 0; border: 0;
            overflow: hidden; clip-path: inset(50%); white-space: nowrap; }
/* Run's and Stop's white text on Gradio's orange (#f97316, #ea580c dark) and red (#ef4444) was 2.8-3.8:1: AA
   asks 4.5 (here 5.2 and 6.5, hovered darker still) */
#run { --button-primary-background-fill: #c2410c; --button-primary-background-fill-hover: #9a3412;
       --button-primary-border-color: #c2410c; --button-primary-border-color-hover: #9a3412;
       --button-primary-text-color: #ffffff; --button-primary-text-color-hover: #ffffff; }
#stop { --button-cancel-background-fill: #b91c1c; --button-cancel-background-fill-hover: #991b1b;
        --button-cancel-border-color: #b91c1c; --button-cancel-border-color-hover: #991b1b;
        --button-cancel-text-color: #ffffff; --button-cancel-text-color-hover: #ffffff; }
/* the settings' info lines (the mask model's, Merge tracks' syntax) were 1.91:1 on white: 4.8 (dark: 7.8) */
.gradio-container { --block-info-text-color: #71717a; }
.dark .gradio-container, .gradio-container.dark { --block-info-text-color: #a1a1aa; }
/* a focus ring on every control: Run and Stop had a grey 2 px outline (about 1:1 on orange), radios and
   checkboxes only a border colour */
.gradio-container :is(button, input, textarea, select, a, [tabindex]):focus-visible {
  outline: 3px solid #1d4ed8; outline-offset: 2px; }
.dark .gradio-container :is(button, input, textarea, select, a, [tabindex]):focus-visible,
.gradio-container.dark :is(button, input, textarea, select, a, [tabindex]):focus-visible { outline-color: #93c5fd; }
"""
PREVIEW_ALT = "Latest frame: of the run (its number is in Status), or the first frame of a video with no player"
STYLE_CHOICES = [  # (label, value); the values are uvosam.render.STYLES
    ("Overlay: colour masks", "overlay"),
    ("Cut-out: objects on black", "cutout"),
    ("Blurred background", "blur"),
    ("Colour splash: grey background", "gray"),
    ("Matte: white objects on black (for editors)", "matte"),
]


@dataclass(frozen=True)
class Inputs:
    """What a run takes and starts it: the upload (a video; a link and its Load button, both None when the app
    takes no links; a zip of frames), its description, Run and Stop (at the top of the live column), and the
    settings (``controls``, in ``App.segment``'s parameter order)."""

    video: gr.Video
    url: gr.Textbox | None
    load: gr.Button | None
    frames_zip: gr.File
    about: gr.Markdown
    run: gr.Button
    stop: gr.Button
    controls: dict[str, gr.components.Component]


@dataclass(frozen=True)
class Outputs:
    """What Run and Re-render show: the status line (and the live region that announces a job's start and end),
    the live video and latest frame, the files, the tracks table, and what is read from the zip shown (its track
    timeline, and the one drawn for a phone, which a screen under 768 px wide shows instead: ``CSS``; the merge
    hints)."""

    status: gr.Textbox
    announce: gr.Markdown
    stream: gr.Video
    preview: gr.Image
    mp4: gr.File
    zip_file: gr.File
    table: gr.Dataframe
    timeline: gr.Image
    timeline_narrow: gr.Image
    hints: gr.Markdown


@dataclass(frozen=True)
class Editing:
    """The row under the results: the tracks to keep, the video style (Run or Re-render), the transparent WebM
    option, the merge and split boxes and Re-render."""

    keep: gr.CheckboxGroup
    style: gr.Radio
    alpha_webm: gr.Checkbox
    merge: gr.Textbox
    redo: gr.Button
    split: gr.Textbox


@dataclass(frozen=True)
class Scoring:
    """The Score panel: the ground-truth zip, the Score button and the scores."""

    gt_zip: gr.File
    score: gr.Button
    scores: gr.Markdown


@dataclass(frozen=True)
class Page:
    """Every component that an event reads or writes; ``state`` is the session's last run (``SessionRun``),
    ``linked`` the path of a file loaded from a link that the player does not show (``uvosam_app.links``),
    ``streams`` the session whose Runs streamed videos (``SessionStreams``, set as a Run starts), ``keep_offer``
    which split the choices of *Tracks to keep* belong to (``KeepOffer``, set by the page's Re-render only)."""

    inputs: Inputs
    outputs: Outputs
    editing: Editing
    scoring: Scoring
    state: gr.State
    linked: gr.State
    streams: gr.State
    keep_offer: gr.State


def page(
    settings: AppSettings, start: StartModels, footer: str, forget: Callable[[Any], None]
) -> Page:
    """The page's components, in their order, inside the ``gr.Blocks`` being built. ``start``: what loading the
    models at start gave (a banner if the default pair did not load; a note on the choice of an extra model that did
    not). ``forget``: the session states' delete callback."""
    gr.Markdown(ABOUT, elem_id="about")
    banner = banner_markdown(start, settings)
    gr.Markdown(banner, visible=bool(banner), elem_id="banner")
    # on a phone, in this order: the upload, Run, the other inputs, Settings; on a wide screen the other inputs and
    # Settings go under the upload, beside the live column: CSS
    with gr.Row(elem_id="io-row"):
        video, about = _input_column(settings)
        run, stop, *live = _live_column()
        url, load, frames_zip = _more_inputs(settings, video)
        with gr.Accordion("Settings", open=False, elem_id="settings"):
            controls = _controls(settings, start.notes())
    inputs = Inputs(video, url, load, frames_zip, about, run, stop, controls)
    outputs = _results(*live)
    editing = _editing_row()
    scoring = _scoring()
    gr.Markdown(footer, elem_id="footer")
    state = gr.State(None, time_to_live=settings.session_ttl_s, delete_callback=forget)
    linked = gr.State(None, time_to_live=settings.session_ttl_s, delete_callback=forget)
    streams = gr.State(None, time_to_live=settings.session_ttl_s, delete_callback=forget)
    keep_offer = gr.State(None, time_to_live=settings.session_ttl_s)
    return Page(inputs, outputs, editing, scoring, state, linked, streams, keep_offer)


def _input_column(settings: AppSettings) -> tuple[gr.Video, gr.Markdown]:
    """The upload, its limits and its description (what Run will cover), which Run follows on a phone."""
    with gr.Column(scale=1, elem_id="input-column"):
        # an image dropped here gets Gradio's "Only video/x-m4v,video/* allowed.": the label says where it goes
        video = gr.Video(
            sources=["upload"], label="Video (animated GIFs, zipped images: below)", elem_id="inp"
        )
        gr.Markdown(limits_line(settings), elem_id="limits")
        about = gr.Markdown(elem_id="video-info")  # under the player: in the first screen with it
    return video, about


def _more_inputs(
    settings: AppSettings, video: gr.Video
) -> tuple[gr.Textbox | None, gr.Button | None, gr.File]:
    """The other inputs: the link and its Load button, the zip of frames, the examples (of ``video``). After the
    live column in the page: on a phone Run came after them, 1214 px down; on a wide screen under the upload
    (``CSS``)."""
    with gr.Column(scale=1, elem_id="more-inputs"):
        url, load = _link_input(settings)
        frames_zip = FileInput(  # e.g. a DAVIS JPEGImages/480p/<seq>: masks keep its names
            label="…or a zip of its frames, or a GIF/WebP/APNG",
            file_types=[".zip", *FRAMES_BOX_VIDEOS],
            height=130,
            elem_id="frames",
        )
        shown = [p for p in EXAMPLES if p.is_file()]
        gr.Examples(
            [[str(p)] for p in shown],
            inputs=[video],
            cache_examples=False,
            label=EXAMPLES_CREDIT,
            example_labels=[EXAMPLE_NAMES[p.name] for p in shown],
            elem_id="examples",
        )
    return url, load, frames_zip


def _link_input(settings: AppSettings) -> tuple[gr.Textbox | None, gr.Button | None]:
    """The "direct link" textbox and its Load button (Enter in the box loads too); (None, None) when the app takes
    no links (``AppSettings.url_input``)."""
    if not settings.url_input:
        return None, None
    with gr.Row(equal_height=True):
        url = gr.Textbox(  # the placeholder fits a phone's box (a longer one was cut before its "not supported")
            label="…or a direct link to a video file (not a YouTube or other page)",
            placeholder=LINK_EXAMPLE,
            max_lines=1,
            scale=5,
            elem_id="url",
        )
        load = gr.Button("Load", size="sm", scale=1, min_width=80, elem_id="load-url")
    return url, load


def _controls(settings: AppSettings, notes: dict[str, str]) -> dict[str, gr.components.Component]:
    """The settings; ``notes``: what the choice of a model that did not load at start says after its name."""
    ranges = slider_ranges(settings)
    return {
        "tracker": UncheckedDropdown(
            [(noted(p, p, notes), p) for p in settings.presets()],
            value=settings.default_preset,
            label="Tracker preset",
        ),
        "sam": UncheckedRadio(
            mask_model_choices(settings.mask_models(), notes),
            value=settings.default_sam,
            label="Mask model",
            info=mask_model_info(settings.start_models_only),
            elem_id="mask-model",
        ),
        "min_score": slider(
            ranges["min_score"],
            value=0.0,
            step=0.05,
            label="Detection score threshold (Run; a higher one on Re-render too)",
        ),
        # "Run only": Re-render keeps the run's frames and tracks (as the style's label says "Run or Re-render")
        "max_objects": slider(
            ranges["max_objects"], value=10, step=1, label="Max objects (Run only)"
        ),
        "stride": slider(
            ranges["stride"],
            value=1,
            step=1,
            label="Frame stride (Run only; 1 = every frame)",
            elem_id="stride",
        ),
        "max_frames": slider(
            ranges["max_frames"],
            value=settings.max_frames,
            step=1,
            label="Max frames (Run only)",
            elem_id="max-frames",
        ),
        "output_side": output_side(),
        "show_boxes": gr.Checkbox(True, label="Show boxes"),
        "show_labels": gr.Checkbox(True, label="Show labels"),
    }


def _live_column() -> tuple[gr.Button, gr.Button, gr.Textbox, gr.Markdown, gr.Video, gr.Image]:
    """Run and Stop (at the top: in a 1366x800 window's first screen however tall the inputs are; on a phone after
    the upload and its description, before the other inputs), the status line and what a screen reader announces
    of it, the masked video as it streams and the latest frame."""
    with gr.Column(scale=1, elem_id="live-column"):
        with gr.Row():
            run = gr.Button("Run", variant="primary", elem_id="run")
            stop = gr.Button("Stop", variant="stop", elem_id="stop")
        status = gr.Textbox(label="Status", interactive=False, elem_id="status")
        # a live region (``page_scripts``), out of sight (``CSS``): a job's start and end
        announce = gr.Markdown("", elem_id="announce")
        stream = gr.Video(
            label="Masked video (live)",
            streaming=True,
            autoplay=True,
            interactive=False,
            elem_id="stream",
        )
        # the alt text names the image and its button; set once: an update with it would change the API's outputs
        preview = gr.Image(
            label="Latest frame",
            format="jpeg",
            interactive=False,
            alt_text=PREVIEW_ALT,
            elem_id="preview",
        )
    return run, stop, status, announce, stream, preview


def _results(
    status: gr.Textbox, announce: gr.Markdown, stream: gr.Video, preview: gr.Image
) -> Outputs:
    with gr.Row():
        mp4 = FileInput(label="Masked video (mp4)", interactive=False, elem_id="mp4")
        zip_file = FileInput(label="Masks (zip)", interactive=False, elem_id="zip")
    table = gr.Dataframe(
        headers=TRACK_HEADERS,
        label="Tracks",  # the API names the output after it (the timeline under it shows itself)
        interactive=False,
        wrap=True,  # in a phone's width: the headers wrap, every column in sight
        # the class column fits "tennis_racket" unbroken in a 390 px phone's 324 px table (CSS: its padding)
        column_widths=["6%", "31%", "12%", "12%", "12%", "15%", "12%"],
        elem_id="tracks",
    )
    timeline, timeline_narrow = (
        gr.Image(
            label="Track timeline",
            show_label=False,  # its badge would hide the frame numbers
            interactive=False,
            format="png",
            # fullscreen only: on a phone, download and share covered a quarter of the bars (the zip holds the PNG);
            # none on the phone's, where it covered the last frame number
            buttons=buttons,
            elem_id=elem_id,
        )
        for elem_id, buttons in (("timeline", ["fullscreen"]), ("timeline-narrow", []))
    )
    hints = gr.Markdown(elem_id="hints")
    return Outputs(
        status, announce, stream, preview, mp4, zip_file, table, timeline, timeline_narrow, hints
    )


def _editing_row() -> Editing:
    with gr.Row():
        keep = keep_list()
        with gr.Column():
            style = UncheckedRadio(
                STYLE_CHOICES,
                value="overlay",
                label="Video style (Run or Re-render)",
                elem_id="style",
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
                # info, not a placeholder: that was pale (1.91:1) and went once typing started
                info="e.g. 3>1, 5>1: tracks 3 and 5 become part of track 1",
                elem_id="merge",
            )
            split = gr.Textbox(
                "",
                label="Split tracks (one id given to two objects in turn)",
                # short: a screen reader reads the info with the label at each focus (docs/app.md has the rest)
                info="e.g. 3@120: track 3 goes on under a new id from frame 120 (as the tracks table counts "
                "frames); Merge tracks can name it.",
                elem_id="split",
            )
            redo = gr.Button("Re-render (no model run)", elem_id="rerender")
    return Editing(keep, style, alpha_webm, merge, redo, split)


def _scoring() -> Scoring:
    """The ground truth's format is a line of its own: as the file box's label it ran under the box's X button."""
    with gr.Accordion("Score against your ground truth (DAVIS J&F)", open=False):
        gr.Markdown(GROUND_TRUTH_HELP, elem_id="gt-help")
        with gr.Row():
            gt_zip = FileInput(label="Ground truth (.zip)", file_types=[".zip"], elem_id="gt")
            with gr.Column():
                score = gr.Button("Score", elem_id="score")
                # the label names /score's output in the API (it was "value_56"); not shown on the page
                scores = gr.Markdown(label="Scores", show_label=False, elem_id="scores")
    return Scoring(gt_zip, score, scores)
