"""The page's footer: the device the models run on, the MSDA backend, the models, their weight files (file, Hub
repo, SHA-256) and the packages' versions. Nothing here imports gradio.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch

from uvosam import box_segmenter, weight_checksums, weight_table
from uvosam.devices import cuda_has_bf16
from uvosam.environment import package_versions
from uvosam_app.gpu import zero_gpu
from uvosam_app.models import (
    SAM2_NOT_INSTALLED,
    GetPipeline,
    StartModels,
    mask_model_label,
    needed_weights,
    sam2_missing,
)
from uvosam_app.settings import AppSettings


def footer_markdown(get_pipeline: GetPipeline, start: StartModels, settings: AppSettings) -> str:
    device = getattr(getattr(start.pipe, "segmenter", None), "device", None) or getattr(
        get_pipeline, "device", None
    )
    names = needed_weights(settings.default_preset, settings.default_sam)
    weights = weights_table(names, getattr(get_pipeline, "weight_files", {}))
    packages = " · ".join(f"{k} {v}" for k, v in versions().items())
    missing = sam2_missing()
    return "\n".join(
        [
            (
                f"<small>Device: **{device_text(str(device or settings.run_device()))}** · "
                f"{backend_text()} · models: **{settings.default_preset}** + "
                f"**{mask_model_label(settings.default_sam)}** ({_others(settings, start)})<br>"
            ),
            "Weights: " + "; ".join(weights) + "<br>",
            *([f"SAM 2.1 not offered: {SAM2_NOT_INSTALLED}<br>"] if missing else []),
            f"{packages}</small>",
        ]
    )


def _others(settings: AppSettings, start: StartModels) -> str:
    """What the footer says of the models besides the defaults: when they load, or (ZeroGPU) which were loaded."""
    if not settings.start_models_only:
        return "others load on first use"
    others = [
        n
        for n in settings.preload
        if n not in (settings.default_preset, settings.default_sam, *start.extras_failed)
    ]
    loaded = ", ".join(mask_model_label(n) for n in others)
    return (
        f"also loaded at start: {loaded}"
        if others
        else "the only ones: on ZeroGPU models load at start only, UVOSAM_PRELOAD lists more"
    )


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
    """The footer's device: ``cuda (NVIDIA L4)``, ``cuda (ZeroGPU: NVIDIA H200)``, ``cpu (native bf16)``..."""
    cuda = device.startswith("cuda") and torch.cuda.is_available()
    if zero_gpu():  # first: there `spaces` makes torch.cuda.is_available() True and names its GPU
        return f"{device} (ZeroGPU{': ' + _gpu_text(device) if cuda else ''})"
    if cuda:
        return f"{device} ({_gpu_text(device)})"
    if device == "cpu" and box_segmenter.cpu_has_bf16():
        return "cpu (native bf16)"
    return device


def _gpu_text(device: str) -> str:
    """The CUDA ``device``'s name, and whether it lacks native bf16."""
    index = torch.device(device).index or 0
    bf16 = "" if cuda_has_bf16(index) else ", no native bf16"
    return f"{torch.cuda.get_device_name(index)}{bf16}"


def backend_text() -> str:
    """``uvosam.tracker.msda.backend_status()``, or why it is unavailable."""
    from uvosam.tracker import msda

    status = getattr(msda, "backend_status", None)
    return (
        status()
        if status is not None
        else "msda: pytorch reference (this build reports no backend status)"
    )
