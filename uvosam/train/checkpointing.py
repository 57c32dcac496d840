"""Training checkpoints in the detectron2 layout, loadable by ``uvosam.tracker.checkpoint``.

A file ``model_0000999.pth`` (iteration index of the last finished step, zero-padded like
detectron2) or ``model_final.pth`` holds ``{"model": state dict with the ORIGINAL IDOL key names
(``detr.detr.…``, ``detr.reid_embed_head.…``, plus the ``transformer.decoder.bbox_embed``
alias),
"optimizer": AdamW state, "scheduler": {...}, "iteration": int, "train_config": dict}`` plus
``"grad_scaler"`` (the loss scale) for fp16 runs; everything
is tensors and plain containers, so ``torch.load(weights_only=True)`` reads it (and
``load_idol_detector`` / ``uvosam track`` / the app use it as tracker weights). ``last_checkpoint``
in the same folder names the newest file (detectron2 convention).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from uvosam import atomic_files
from uvosam.errors import InputError
from uvosam.tracker.checkpoint import ALIAS_PREFIX

LAST_CHECKPOINT = "last_checkpoint"
FINAL_NAME = "model_final.pth"


def to_original_state_dict(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``IDOLDetector`` names -> released IDOL names (inverse of ``remap_idol_state_dict``); the
    box heads are also stored under their ``transformer.decoder.bbox_embed`` alias."""
    out: dict[str, torch.Tensor] = {}
    for key, tensor in state.items():
        value = tensor.detach().cpu()
        if key.startswith("backbone."):
            out["detr.detr.backbone.0.backbone." + key[len("backbone.") :]] = value
        elif key.startswith("reid_embed_head."):
            out["detr." + key] = value
        else:
            out["detr.detr." + key] = value
        if key.startswith("bbox_embed."):
            out[ALIAS_PREFIX + key[len("bbox_embed.") :]] = value
    return out


def checkpoint_name(iteration: int) -> str:
    """detectron2 naming: ``model_{iteration:07d}.pth`` with the 0-based index of the last step."""
    return f"model_{iteration:07d}.pth"


def save_checkpoint(
    out_dir: str | Path,
    name: str,
    *,
    model_state: Mapping[str, torch.Tensor],
    optimizer: torch.optim.Optimizer,
    scheduler: dict[str, Any],
    iteration: int,
    train_config: dict[str, Any],
    grad_scaler: dict[str, Any] | None = None,
) -> Path:
    """Write a checkpoint atomically (``.tmp`` then rename) and update ``last_checkpoint``.

    Args:
        iteration: number of finished optimiser steps (a resumed run starts at this iteration).
        grad_scaler: ``GradScaler.state_dict()`` of an fp16 run (stored as ``grad_scaler``).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / name
    payload = {
        "model": to_original_state_dict(model_state),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler,
        "iteration": int(iteration),
        "train_config": train_config,
    }
    if grad_scaler:
        payload["grad_scaler"] = grad_scaler
    with atomic_files.replacing(path) as tmp:
        torch.save(payload, tmp)
    atomic_files.write_text(out_dir / LAST_CHECKPOINT, name + "\n", encoding="utf-8")
    return path


def find_last_checkpoint(out_dir: str | Path) -> Path | None:
    """The file named in ``out_dir/last_checkpoint``, else the newest ``model_*.pth``, else None."""
    out_dir = Path(out_dir)
    marker = out_dir / LAST_CHECKPOINT
    if marker.is_file():
        path = out_dir / marker.read_text().strip()
        if path.is_file():
            return path
    found = sorted(out_dir.glob("model_*.pth"), key=lambda p: p.stat().st_mtime)
    return found[-1] if found else None


def checkpoint_iteration(path: str | Path) -> int | None:
    """The finished iterations a training checkpoint records, read from its index alone
    (``weight_loading.peek_checkpoint``: the tensors are not read); ``None`` when it has none or cannot be read."""
    from uvosam.weight_loading import peek_checkpoint

    data = peek_checkpoint(path)
    iteration = None if data is None else data.get("iteration")
    return iteration if isinstance(iteration, int) else None


def load_training_state(path: str | Path) -> dict[str, Any]:
    """Read a training checkpoint with ``weights_only=True`` (on the CPU).

    Raises:
        ValueError: the file lacks ``model``, ``optimizer`` or ``iteration`` (not written by
            ``uvosam train``; start a new run or pass it with ``--init`` instead).
    """
    data = torch.load(Path(path), map_location="cpu", weights_only=True)
    missing = [k for k in ("model", "optimizer", "iteration") if k not in data]
    if missing:
        raise InputError(
            f"{path} is not a resumable training checkpoint: it lacks {missing}. "
            "Use it as starting weights with --init instead of --resume."
        )
    return data
