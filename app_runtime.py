"""What the Gradio app needs besides UI: settings, session folders, the job pump, texts.

Kept apart from ``app.py`` so the UI file stays readable and this part is testable without a
browser. Nothing here imports gradio. The GPU side (ZeroGPU, the GPU function) is ``app_gpu``, the models
``app_models``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import torch

from app_gpu import zero_gpu
from uvosam import weight_checksums, weight_table
from uvosam.eval.davis import DavisScores
from uvosam.environment import package_versions
from uvosam.video import VideoInfo


def weights_table(names: tuple[str, ...], files: Mapping[str, Path]) -> list[str]:
    """One line per weight name: file, Hub repo and SHA-256 (of the loaded file when known)."""
    lines = []
    for name in names:
        spec = weight_table.WEIGHTS.get(name)
        if spec is None:
            lines.append(f"{name}: not in the weight table")
            continue
        path = files.get(name)
        digest = weight_checksums.file_sha256(path) if path is not None else spec.sha256
        where = spec.repo_id or spec.url or "local"
        shown = digest[:16] + "…" if digest else "unpublished"
        lines.append(f"{name}: {spec.basename} ({where}) sha256 {shown}")
    return lines


def versions() -> dict[str, str]:
    """Installed versions of the packages the footer shows (those of ``uvosam info``, shortened)."""
    every = package_versions()
    return {dist: every[dist] for dist in ("uvosam", "torch", "gradio", "segment-anything", "sam2")}


def device_text(device: str) -> str:
    if device.startswith("cuda") and torch.cuda.is_available():
        return f"{device} ({torch.cuda.get_device_name(0)})"
    return device + (" (ZeroGPU)" if zero_gpu() else "")


def backend_text() -> str:
    """``uvosam.tracker.msda.backend_status()``, or why it is unavailable."""
    from uvosam.tracker import msda

    status = getattr(msda, "backend_status", None)
    return (
        status()
        if status is not None
        else "msda: pytorch reference (this build reports no backend status)"
    )


def describe_video(
    info: VideoInfo, name: str, stride: int, max_frames: int, models: str, fps: float | None
) -> str:
    """Markdown telling a user, before Run, what their upload is and what a run of it will cover.

    Args:
        info: ``probe``'s result for the upload. name: its file name as the user knows it.
        stride, max_frames: the run's settings (``iter_frames`` semantics).
        models: "<tracker preset> + <mask model>", as the estimate names them.
        fps: frames per second of this app's last finished run with these models, or None.
    """
    rate = f"{round(info.fps, 2):g}"  # 12, 29.97, 1000 (":.3g" wrote 1000 fps as "1e+03")
    source = "frames" if info.is_folder else f"frames at {rate} fps ({info.duration_s:.1f} s)"
    text = f"**{name}**: {info.width}x{info.height}, {info.num_frames} {source}."
    covered = info.num_output_frames(stride=stride, max_frames=max_frames)
    suffix = "th" if stride % 100 in (11, 12, 13) else {1: "st", 2: "nd", 3: "rd"}.get(stride % 10, "th")
    step = "every frame" if stride == 1 else f"every {stride}{suffix} frame"
    if covered < -(-info.num_frames // stride):
        text += f" Run covers the first {covered} frames ({step}; Max frames is {max_frames})."
    else:
        text += f" Run covers {covered} frames ({step})."
    if fps:
        text += f" About {max(1, round(covered / fps))} s with {models} ({fps:.1f} fps in the last run here)."
    else:
        text += f" No run with {models} here yet to estimate the time from."
    return text


def score_markdown(scores: DavisScores, track_of_label: Mapping[int, int], frames: int) -> str:
    """The scores of one clip as Markdown: the global numbers, then one row per ground-truth object."""
    rows = [
        f"| {o.gt_id} | {track_of_label.get(o.result_id, 'none')} | {o.j_mean:.3f} | {o.f_mean:.3f} | "
        f"{(o.j_mean + o.f_mean) / 2:.3f} |"
        for o in sorted(scores.objects, key=lambda o: o.gt_id)
    ]
    return "\n".join(
        [
            f"**J&F {scores.jf_mean:.3f}** (J {scores.j_mean:.3f}, F {scores.f_mean:.3f}) over "
            f"{len(scores.objects)} objects and {frames} frames: the DAVIS-2017 unsupervised protocol (objects "
            "from the first ground-truth frame, tracks matched to them once for the whole clip).",
            "",
            "| object | track | J | F | J&F |",
            "|---|---|---|---|---|",
            *rows,
        ]
    )
