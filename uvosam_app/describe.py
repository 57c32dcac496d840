"""The description of an input before Run (``describe_input``): what the upload, zip of frames or linked Load's
file is, what Run will cover and about how long that takes, or why Run would refuse it.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from pathlib import Path
from typing import NamedTuple

from uvosam.job_types import JobResult
from uvosam.video import fit_info
from uvosam_app import gpu as app_gpu
from uvosam_app import links as app_links
from uvosam_app import uploads as app_uploads
from uvosam_app.checks import (
    boxed_video,
    over_upload_limit,
    page_values,
    taken_inputs,
    two_inputs,
    upload_gone,
)
from uvosam_app.errors import USER_ERRORS, to_gr_error
from uvosam_app.models import mask_model_label
from uvosam_app.probes import ProbeCache
from uvosam_app.settings import AppSettings
from uvosam_app.text import (
    MIN_TIMED_FRAMES,
    describe_video,
    markdown_text,
    results_of_another_input,
)
from uvosam_app.work import SessionRun


class RunSpeed(NamedTuple):
    """The speed of a finished run: ``fps`` on frames of ``width`` x ``height`` (as processed)."""

    fps: float
    width: int
    height: int


def record_speed(
    speeds: MutableMapping[tuple[str, str], RunSpeed], models: tuple[str, str], result: JobResult
) -> None:
    """Keep the speed of a finished run (``result``) with ``models`` (tracker preset, mask model) for the time
    estimate of ``describe_input``; a run shorter than ``MIN_TIMED_FRAMES`` leaves the last one's (its time is mostly
    its start)."""
    if result.num_frames >= MIN_TIMED_FRAMES:
        speeds[models] = RunSpeed(result.fps, result.info.width, result.info.height)


def input_path(video: str | None, frames_zip: str | None, linked: str | None) -> str:
    """The path of the input a Run takes: the zip of frames, else the upload, else the linked Load's file."""
    return str(frames_zip or video or linked or "")


def describe_input(
    settings: AppSettings,
    speeds: Mapping[tuple[str, str], RunSpeed],
    *,
    video: str | None,
    tracker: str,
    sam: str,
    stride: int,
    max_frames: int,
    frames_zip: str | None = None,
    linked: str | None = None,
    state: SessionRun | None = None,
    probes: ProbeCache,
) -> str:
    """Markdown: what an upload (or a linked Load's file) is and what Run will cover (or why Run would refuse it),
    before Run; and, when the session's last run (``state``) was of another input, that the results shown are its.
    A linked Load's file, and an upload that browsers cannot play, have no preview: a note first says so.

    ``speeds``: the speed of the app's last run with each (tracker, mask model), for the time estimate
    (``record_speed``). ``probes``: the app's probes of its input files (a change of a setting probes no file again).
    """
    if not video and not frames_zip and not linked:
        return ""
    if video and frames_zip:
        return f"**{two_inputs(frames_zip)}:** clear one of them (its ✕), then Run."
    if not video and not frames_zip and not Path(linked).is_file():
        return f"**{app_links.GONE}**"
    path = input_path(video, frames_zip, linked)
    gone = upload_gone(video) or upload_gone(frames_zip)
    if gone:
        return f"**Run would refuse this input:** {markdown_text(gone)}"
    too_big = over_upload_limit(video or frames_zip, settings.max_upload_mb)
    if too_big:
        return f"**Run would refuse this input:** {markdown_text(too_big)}"
    boxed = boxed_video(frames_zip)
    video, frames_zip = taken_inputs(video, frames_zip)
    # as the page's boxes take them once they lose focus (Run gets no other value from the page)
    taken, note = page_values(settings, stride=stride, max_frames=max_frames)
    stride, max_frames = int(taken["stride"]), int(taken["max_frames"])
    # on ZeroGPU: the most frames a run covers
    frame_cap = app_gpu.GpuFrameCap.of(sam, mask_model=mask_model_label(sam))
    run_max = frame_cap.limit(max_frames) if frame_cap else max_frames
    try:
        if frames_zip:  # the checks of Run, before unpacking
            info = app_uploads.FramesZip(path).info(settings, stride=stride, max_frames=run_max)
        else:
            info = probes.info(path, limits=settings.limits(), stride=stride, max_frames=run_max)
            info = fit_info(info, settings.max_side)  # Run's frames: scaled down to the app's side
    except USER_ERRORS as err:
        return f"{note}**Run would refuse this input:** {markdown_text(to_gr_error(err).message)}"
    # not the input's doing: logged with its traceback and an id (to_gr_error); Run would fail, not refuse
    except Exception as err:  # noqa: BLE001
        return (
            f"{note}**This input could not be checked:** "
            f"{markdown_text(to_gr_error(err, request=f'the description of {Path(path).name}').message)}"
        )
    speed = speeds.get((tracker, sam))
    models = f"{tracker} + {mask_model_label(sam)}"
    on_cpu = settings.run_device() == "cpu"
    frames = info.num_output_frames(stride=stride, max_frames=run_max)
    seconds = app_gpu.quota_seconds_for(frames, sam) if frame_cap else None
    text = note + describe_video(
        info, Path(path).name, stride=stride, max_frames=max_frames, models=models,
        fps=speed and speed.fps, timed_size=speed and (speed.width, speed.height), on_cpu=on_cpu,
        zero_gpu_seconds=seconds, frame_cap=frame_cap,
    )  # fmt: skip
    if state is not None and state.source and state.source != path:
        text += f"\n\n{results_of_another_input(Path(state.source).name)}"
    if not video and not frames_zip:
        return f"{app_links.linked_note(info)}\n\n{text}"
    if boxed:
        return f"{app_links.boxed_note(info, Path(path).name)}\n\n{text}"
    if video and not frames_zip and not app_links.browser_plays(info):
        return f"{app_links.unplayable_note(info, Path(path).name)}\n\n{text}"
    return text
