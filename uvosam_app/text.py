"""What the app says, as text or Markdown: the page's texts (about, banner, help lines), the API page's, a run's
status line, what an upload is before Run, the scores. Nothing here imports gradio.
"""

from __future__ import annotations

import html
import math
import re
import time
from collections.abc import Mapping

from uvosam.eval.davis import DavisScores
from uvosam.job_types import SOURCE_GONE, SOURCE_REPLACED, JobProgress, JobResult
from uvosam.text import count
from uvosam.video import VideoInfo
from uvosam_app.gpu import GpuFrameCap
from uvosam_app.models import (
    SAM2_NOT_INSTALLED,
    WEIGHTS_BAD,
    WEIGHTS_MISSING,
    StartModels,
    mask_model_label,
    sam2_missing,
)
from uvosam_app.settings import AppSettings

LINK_EXAMPLE = "https://example.com/clip.mp4"
ABOUT = """# UVOSAM: segment the main objects of a video, no clicks
Upload a short video (or a zip of its frames, or pick an example) and press **Run**: a video tracker (IDOL) finds and
follows the salient objects, and their boxes prompt Segment Anything (SAM or SAM 2.1) frame by frame. The masked video
streams back while the models run; then download it and a zip of DAVIS PNGs, RGBA cut-outs and JSON, and see when each
track was present. **Re-render** redraws the last run without the models: fewer objects, tracks merged or split, a
higher score threshold, another style. Paper: [arXiv 2305.12659](https://arxiv.org/abs/2305.12659)."""


# the API page's descriptions of the public endpoints (Gradio shows a handler's docstring without one)
API_DESCRIPTIONS = {
    "segment": (
        "Track and segment the main objects of a video (or of a zip of its frames or an animated GIF/WebP/APNG, given "
        "as frames_zip, or, given neither, of this session's last /load_url download). Streams status and preview "
        "updates; ends with the masked mp4, the zip of masks (DAVIS PNGs, cut-outs, JSON, CSV) and the tracks table."
    ),
    "rerender": (
        "Redraw this session's last /segment run from its cached masks, without running the models: only the "
        "track ids in keep (e.g. [1, 3]: the ids of /segment's tracks table; [], the default: all the run's tracks), "
        "tracks merged (merge, "
        'e.g. "3>1"), tracks split (split, e.g. "3@120": track 3 from frame 120 on gets a new id, kept with '
        "track 3), another style or output size, or a higher min_score. Returns the same outputs as /segment."
    ),
    "score": (
        "Score a masks zip (from /segment or /rerender, of any session) against a ground-truth zip of indexed "
        "PNGs (0 background, 1..K objects, 255 void; one per frame, or of key frames named as those frames): DAVIS "
        "J&F per object, as Markdown."
    ),
    "load_url": (
        "Download a direct link to a video file or a zip of frames for this session. Returns (video, zip of "
        "frames): the one it is, or both None for a video browsers cannot play. /segment with no video and no "
        "zip then runs the download."
    ),
}


# what Score takes, in one wording: the page's help, the "no ground truth" refusal, a zip without PNGs
GROUND_TRUTH_FRAMES = (
    "one per frame of the video (or per processed frame), in name order; or of some frames only (key frames), "
    "named as the masks zip names those frames (00000.png, 00010.png...: the input's frame numbers, which the "
    "tracks table counts in processed frames when Frame stride is over 1): then those frames are scored"
)
GROUND_TRUTH_ZIP = (
    f"a .zip of indexed PNGs (0 background, 1..K objects, 255 void), {GROUND_TRUTH_FRAMES}"
)
GROUND_TRUTH_HELP = f"The ground truth: {GROUND_TRUTH_ZIP}."


def limits_line(settings: AppSettings) -> str:
    """The line under the upload box: the limits a visitor meets (``AppSettings``), before a refusal says one."""
    refused = settings.limits()
    return (
        f"Up to {settings.max_upload_mb} MiB; Run covers at most {count(settings.max_frames, 'frame')} and "
        f"{settings.max_seconds:g} s of a video. Frames over {settings.max_side} px a side are scaled down to it; "
        f"larger than {pixels_size(refused.max_pixels)} (or over {refused.max_side} px a side), refused."
    )


def pixels_size(pixels: int) -> str:
    """``AppSettings.limits``' pixel limit (9/16 of a square) as width x height: 9437184 -> ``4096x2304``."""
    side = math.isqrt(pixels * 16 // 9)
    return f"{side}x{pixels // side}"


def banner_markdown(start: StartModels, settings: AppSettings) -> str:
    """The banner over the page when the default models did not load at start ("": they did). For the visitors:
    what failed and what Run does meanwhile, true in this mode (on ZeroGPU models load at start only); the server
    paths and the commands that get the files are the host's, in the log (``start_models.load_default``)."""
    if start.default_failed is None:
        return ""
    models = f"{settings.default_preset} + {mask_model_label(settings.default_sam)}"
    if start.default_failed == WEIGHTS_MISSING:
        what = f"This app's host has not installed the weights of its models ({models}) yet"
        host = "the server log names the missing files and how to get them"
    elif start.default_failed == WEIGHTS_BAD:
        what = f"The weights of its models ({models}) on this server are unusable (damaged or not the expected files)"
        host = "the server log names the file and what is wrong with it"
    else:
        what = f"Its models ({models}) failed to load at start ({start.default_failed}, an unexpected error)"
        host = "the server log has the traceback"
    until = (
        "until the host fixes this and restarts the Space (on ZeroGPU models load only at start)"
        if settings.start_models_only
        else "until they load (it tries again each time)"
    )
    return (
        f"### ⚠️ Models not loaded\n{what}: Run answers with an error {until}. For the host: {host}."
    )


def mask_model_info(start_models_only: bool = False) -> str:
    """The mask model radio's help line: how the models compare, or why SAM 2.1 is not offered; and when a model
    loads (on ZeroGPU only at start: ``start_models_only``)."""
    missing = sam2_missing()
    if missing:
        return f"SAM 2.1 not offered here: {SAM2_NOT_INSTALLED}."
    loads = (
        "These were loaded at start (on ZeroGPU, models load only then)."
        if start_models_only
        else "A model loads on its first run."
    )
    return (
        "Larger models give finer masks, more slowly. Measured on a CPU, SAM 2.1 tiny and small encode a frame "
        f"4-5x faster than SAM ViT-B in float32 (3-4.3x in bf16), base+ about 2x, large about as fast. {loads}"
    )


def out_of_memory_text() -> str:
    """What to do after a run ran out of memory (the GPU's or the server's); names SAM 2.1's light models when they
    are offered."""
    lighter = "a lighter mask model (SAM 2.1 tiny or small) or " if sam2_missing() is None else ""
    return (
        "Out of memory on this video: the run was stopped (the app is still running). Try "
        f"{lighter}a smaller SAM (vit_b), fewer frames (lower Max frames or a larger Frame stride) or a lower "
        "resolution (shrink the video before uploading)."
    )


def status_text(
    step: JobProgress | None,
    verb: str,
    started: float,
    starting: str = "starting",
    queued: bool = False,
) -> str:
    """The status line of a run or a re-render (``verb``) started at ``started`` (``time.monotonic()``): waiting
    for its first step (``None``: ``starting``, or, while other jobs hold every worker, ``queued``), its progress,
    or what it made."""
    if step is None:
        waited = time.monotonic() - started
        what = (
            "waiting for a free worker (other jobs, or a stopped one ending its frame, come first)"
            if queued
            else starting
        )
        return f"{verb}: {what}… {waited:.0f} s"
    if step.result is not None:
        r = step.result
        speed = f"{r.seconds:.1f} s ({r.fps:.1f} fps)"
        return f"done: {count(r.num_frames, 'frame')}, {count(len(r.tracks), 'track')} in {speed}"
    eta = f"{step.eta_s:.0f} s" if step.eta_s is not None else "?"
    fps = step.frames_done / step.elapsed_s if step.elapsed_s > 0 else 0.0
    progress = f"{verb}: frame {step.frames_done}/{step.frames_total}"
    if step.frames_done:  # the live object count
        tracks = count(step.tracks_so_far, "track")
        progress += f" · {count(step.objects, 'object')} ({tracks} so far)"
    return f"{progress} · {fps:.1f} fps · ETA {eta}"


def failed_status(message: str) -> str:
    """The status line of a run or a re-render that failed with ``message`` (also shown as a toast, which goes)."""
    return f"failed: {message}"


def score_failed_markdown(message: str) -> str:
    """Markdown in place of the scores after a Score that failed with ``message`` (also shown as a toast, which
    goes)."""
    return f"**Score failed:** {markdown_text(message)}"


FINISHED = ("done:", "failed:")
"""How the status line of a job that is over starts (``status_text``'s last line, ``failed_status``)."""
# after a re-render's done line, why its video is silent though its run's had sound (``JobResult.silent_because``):
# the run's file went (Gradio's cache sweep, or a later Load that replaced a linked video) or is another file now
SOUND_GONE = (
    "silent: the run's video is no longer on the server, so its sound is not in this video; upload it again and "
    "Run for a video with sound"
)
SOUND_REPLACED = (
    "silent: the run's video on the server was replaced by another file since, so its sound is not in this video; "
    "upload it again and Run for a video with sound"
)
_SILENT = {SOURCE_GONE: SOUND_GONE, SOURCE_REPLACED: SOUND_REPLACED}


def done_line(status: str, result: JobResult) -> str:
    """A job's done line ``status``, followed by why its video is silent when its source had sound."""
    reason = result.silent_because
    return f"{status} · {_SILENT.get(reason, f'silent: {reason}')}" if reason else status


STOPPED = "stopped: press Run to start again"
"""The status line of a job that Stop ended."""


def _source_notes(info: VideoInfo) -> str:
    """What Run does to the source's frames that a user should know before: deinterlacing, HDR left as it is."""
    notes = " Interlaced: its frames are deinterlaced as they are read." if info.interlaced else ""
    if info.hdr:
        notes += " HDR: its colours are not tone-mapped, so the frames (and the result) look flat or dim."
    return notes


def describe_video(
    info: VideoInfo,
    name: str,
    *,
    stride: int,
    max_frames: int,
    models: str,
    fps: float | None,
    timed_size: tuple[int, int] | None = None,
    on_cpu: bool = False,
    zero_gpu_seconds: int | None = None,
    frame_cap: GpuFrameCap | None = None,
) -> str:
    """Markdown telling a user, before Run, what their upload is and what a run of it will cover.

    Args:
        info: ``probe``'s result for the upload, as Run reads it (``fit_info``: ``scaled_from`` says it is scaled
            down). name: its file name as the user knows it.
        stride, max_frames: the run's settings (``iter_frames`` semantics).
        models: "<tracker preset> + <mask model>", as the estimate names them.
        fps: frames per second of this app's last finished run of ``MIN_TIMED_FRAMES`` or more with these models,
            or None. timed_size: (width, height) of that run's frames: frames of another size take longer or shorter
            to decode, draw and encode (the models' cost per frame hardly changes: they resize every frame).
        on_cpu: the models run on the CPU: without a past run, say what a frame costs there.
        zero_gpu_seconds: on ZeroGPU, the GPU time a run asks for, as it counts against the user's daily quota
            (``uvosam_app.gpu.quota_seconds_for``: after ZeroGPU's duration factor).
        frame_cap: on ZeroGPU, the most frames a run covers (fewer than ``max_frames`` may ask for).
    """
    sound = ", with sound (Run's video keeps it)" if info.audio_codec else ""
    size = f"{info.width}x{info.height}"
    if info.scaled_from is not None:  # the app's max_side (``JobOptions.fit_side``)
        size = (f"{info.scaled_from[0]}x{info.scaled_from[1]}, will be processed at {size} (scaled down to this "
                "app's largest size; the masks and exports have it)")  # fmt: skip
    text = f"**{markdown_text(name)}**: {size}, {_frames_text(info)}{sound}.{_source_notes(info)}"
    capped = frame_cap is not None and frame_cap.cuts(info, stride=stride, max_frames=max_frames)
    covered = info.num_output_frames(
        stride=stride, max_frames=frame_cap.limit(max_frames) if frame_cap else max_frames
    )
    suffix = (
        "th" if stride % 100 in (11, 12, 13) else {1: "st", 2: "nd", 3: "rd"}.get(stride % 10, "th")
    )
    step = "every frame" if stride == 1 else f"every {stride}{suffix} frame"
    if covered < -(-info.num_frames // stride):
        why = frame_cap.text() if capped else f"Max frames is {max_frames}"
        if stride == 1 or covered == 1:
            first = "the first frame" if covered == 1 else f"the first {covered} frames"
            text += f" Run covers {first} ({step}; {why})."
        else:  # "the first 5 frames (every 3rd frame)" read as 5 of the first 5: they span 13
            span = (covered - 1) * stride + 1
            text += (
                f" Run covers {covered} frames, every {stride}{suffix} of the first {span} ({why})."
            )
    else:
        text += f" Run covers {count(covered, 'frame')} ({step})."
    if fps:
        text += _time_estimate(info, covered, models, fps, timed_size)
    else:
        text += f" No time estimate yet for {models} (it takes a run of {MIN_TIMED_FRAMES} frames or more here)."
        if on_cpu:
            text += f" {CPU_FRAME_COST}"
    if zero_gpu_seconds is not None:
        text += (
            f" On ZeroGPU, Run asks for {zero_gpu_seconds} s of GPU time, counted against your daily quota (a few"
            " minutes without a PRO account; a larger GPU counts more): a larger Frame stride or a smaller Max"
            " frames asks for less."
        )
    return text


def _time_estimate(
    info: VideoInfo, frames: int, models: str, fps: float, timed_size: tuple[int, int] | None
) -> str:
    """ " About 20 s with <models> (4.4 fps in the last run here)." (runs of ``MIN_TIMED_FRAMES`` or more only: the
    caller's); where that run's frames had under half or over twice these pixels, the time is a bound naming that
    run's size: a 2560x1440 clip after a 640x360 one was estimated at "About 2 s" and took 5.8 s (the app's tiny
    test models on a 2-core CPU, where decoding, drawing and encoding are most of a frame's time). Short: it is
    one line of the upload's description, which a laptop's first screen shows with Run. Under half a second is
    "Under a second" (it read "At most about 1 s"), and a lower bound that small is given to a tenth of a second."""
    seconds = frames / fps
    whole = round(seconds)  # 0: under half a second
    timed = f"{fps:.1f} fps in the last run here"
    ratio = info.width * info.height / (timed_size[0] * timed_size[1]) if timed_size else 1.0
    if 0.5 < ratio < 2:
        return f" {f'About {whole} s' if whole else 'Under a second'} with {models} ({timed})."
    at = f"{timed}, at {timed_size[0]}x{timed_size[1]}"
    if ratio >= 2:
        least = f"At least about {whole} s" if whole else f"At least {max(seconds, 0.1):.1f} s"
        return f" {least} with {models} ({at}; these frames have {ratio:.0f} times the pixels)."
    return f" {f'At most about {whole} s' if whole else 'Under a second'} with {models} ({at})."


def _frames_text(info: VideoInfo) -> str:
    """``"48 frames at 12 fps (4.0 s)"``; the header's rate and the average where they differ (``"50 frames at 25
    fps nominal, 24.51 on average (2.0 s)"``: an .avi with a skipped frame); no rate for folders and single frames
    (``"1 frame"``)."""
    if info.is_folder or info.num_frames == 1:
        return count(info.num_frames, "frame")
    rate = _fps_text(info.fps)
    if info.nominal_fps > 0 and _fps_text(info.nominal_fps) != rate:
        rate = f"{_fps_text(info.nominal_fps)} fps nominal, {rate} on average"
    else:
        rate += " fps"
    return f"{info.num_frames} frames at {rate} ({info.duration_s:.1f} s)"


def _fps_text(fps: float) -> str:
    """12, 29.97, 1000 (":.3g" wrote 1000 fps as "1e+03")."""
    return f"{round(fps, 2):g}"


MIN_TIMED_FRAMES = 10
"""Fewest frames of a run whose speed the time estimate takes: a shorter run's time is mostly its start (the probe,
the first frames through the models, the tracker's look-ahead, the zip). Measured with the app's tiny test models
on the 2-core CPU (2026-11-29, 25 fps clip): 1 and 5 frames ran at 2.8-3.3 fps, 10 at 4.7-4.9, 20 at 4.0, 88 at
4.2; after a 1-frame run an 88-frame clip was estimated at "About 30 s" and took 15."""

# Measured with benchmarks/e2e.py --real-size on this project's 2-core CPU (docs/performance.md), 2026-11-29/30
CPU_FRAME_COST = (
    "On a CPU a frame takes seconds (at 480p on 2 cores: 6.6-9 s with SAM ViT-B and an R50 tracker, 3.6-3.9 s with "
    "SAM 2.1 tiny): a larger Stride or a smaller Max frames keeps a first try short."
)


def score_markdown(
    scores: DavisScores,
    track_of_label: Mapping[int, int],
    frames: int,
    note: str | None = None,
    *,
    processed: int | None = None,
    missed: str | None = None,
) -> str:
    """The scores of one clip as Markdown: the global numbers, then one row per ground-truth object; ``missed``, why
    an object no mask covers scores over 0 (``uvosam_app.scoring.missed_objects_line``), and ``note``, a warning
    about the ground truth (``uvosam.eval.clip.id_gaps_note``), under them. ``frames`` scored of the run's
    ``processed`` (more: the ground truth annotates some frames only)."""
    scored = count(frames, "frame")
    if processed is not None and processed > frames:
        scored = f"{frames} of the {count(processed, 'frame')} (those the ground truth annotates)"
    rows = [
        f"| {o.gt_id} | {track_of_label.get(o.result_id, 'none')} | {o.j_mean:.3f} | {o.f_mean:.3f} | "
        f"{(o.j_mean + o.f_mean) / 2:.3f} |"
        for o in sorted(scores.objects, key=lambda o: o.gt_id)
    ]
    return "\n".join(
        [
            (
                f"**J&F {scores.jf_mean:.3f}** (J {scores.j_mean:.3f}, F {scores.f_mean:.3f}) over "
                f"{count(len(scores.objects), 'object')} and {scored}: the DAVIS-2017 unsupervised protocol "
                "(objects from the first ground-truth frame, tracks matched to them once for the whole clip)."
            ),
            "",
            "| object | track | J | F | J&F |",
            "|---|---|---|---|---|",
            *rows,
            *(["", missed] if missed else []),
            *(["", f"**Note:** {markdown_text(note)}"] if note else []),
        ]
    )


_MARKDOWN_MARKS = re.compile(
    r"[\\`*\[\]~|@]|_(?![^\W_])|(?<![^\W_])_|:(?=//)|(?<=\bwww)\.", re.IGNORECASE
)
"""What makes Markdown of plain text within a line (GitHub's, as the page renders it): emphasis, code, link and
strikethrough marks, table cells, and what starts a bare link (``https://``, ``www.``, an e-mail's ``@``); each is
escaped with a backslash, which the page does not show. The rest reads as written in the Markdown too: dots, colons,
and an ``_`` between two letters or digits (``max_frames``), which emphasises nothing."""


def markdown_text(text: str) -> str:
    """``text`` (a file name, a refusal's message) for a Markdown output, shown as written: the page renders Markdown
    as sanitized HTML, where a ``<...>`` in it (a zip member ``s/0<b>1.png``) was taken for a tag and ``&amp;`` showed
    as ``&``; and Markdown's own marks are escaped (``_MARKDOWN_MARKS``): a link's name ``x** [login](https://evil)
    **.avi`` showed a link."""
    return _MARKDOWN_MARKS.sub(r"\\\g<0>", html.escape(text, quote=False))


def results_of_another_input(name: str) -> str:
    """Markdown under an upload's description when the results shown (video, zip, tracks) are of the session's last
    run, made from another input (``name``: that input's file name): Re-render and Score act on them."""
    return (
        f"**The results below are of your last run, on an earlier input ({markdown_text(name)}):** Re-render "
        "and Score use them; Run replaces them with this input's."
    )
