"""Building the detector for training: Deformable-DETR initialisation, starting weights, frozen
stages, AdamW parameter groups and the step learning-rate schedule."""

from __future__ import annotations

import bisect
import logging
import math

import torch
from torch import nn

from uvosam.hub import resolve
from uvosam.tracker.checkpoint import load_idol_checkpoint
from uvosam.tracker.deform_attn import MSDeformAttn
from uvosam.tracker.detector import IDOLDetector
from uvosam.train.config import TrainConfig

logger = logging.getLogger(__name__)

PRIOR_PROB = 0.01
"""Focal-loss prior of the class bias (RetinaNet / Deformable DETR)."""


def reset_msda(attn: MSDeformAttn) -> None:
    """Deformable DETR's ``MSDeformAttn._reset_parameters``: zero offsets whose bias points each
    head in its own direction (scaled by point index), uniform attention, xavier projections."""
    nn.init.zeros_(attn.sampling_offsets.weight)
    thetas = torch.arange(attn.n_heads, dtype=torch.float32) * (2.0 * math.pi / attn.n_heads)
    grid = torch.stack([thetas.cos(), thetas.sin()], -1)
    grid = (grid / grid.abs().max(-1, keepdim=True)[0]).view(attn.n_heads, 1, 1, 2)
    grid = grid.repeat(1, attn.n_levels, attn.n_points, 1)
    grid *= torch.arange(1, attn.n_points + 1, dtype=torch.float32).view(1, 1, -1, 1)
    with torch.no_grad():
        attn.sampling_offsets.bias.copy_(grid.flatten())
    nn.init.zeros_(attn.attention_weights.weight)
    nn.init.zeros_(attn.attention_weights.bias)
    for proj in (attn.value_proj, attn.output_proj):
        nn.init.xavier_uniform_(proj.weight)
        nn.init.zeros_(proj.bias)


def init_detr_weights(model: IDOLDetector) -> None:
    """Deformable DETR (with box refinement) initialisation of everything but the backbone."""
    for p in model.transformer.parameters():
        if p.dim() > 1:
            nn.init.xavier_uniform_(p)
    for module in model.transformer.modules():
        if isinstance(module, MSDeformAttn):
            reset_msda(module)
    nn.init.xavier_uniform_(model.transformer.reference_points.weight)
    nn.init.zeros_(model.transformer.reference_points.bias)
    nn.init.normal_(model.transformer.level_embed)
    for proj in model.input_proj:
        nn.init.xavier_uniform_(proj[0].weight)
        nn.init.zeros_(proj[0].bias)
    reset_class_heads(model)
    for i, box in enumerate(model.bbox_embed):
        nn.init.zeros_(box.layers[-1].weight)
        nn.init.zeros_(box.layers[-1].bias)
        if i == 0:
            nn.init.constant_(box.layers[-1].bias[2:], -2.0)


def reset_class_heads(model: IDOLDetector) -> None:
    """Class biases to the focal prior ``-log((1 - 0.01) / 0.01)`` (a fresh 1-class head)."""
    bias = -math.log((1 - PRIOR_PROB) / PRIOR_PROB)
    for head in model.class_embed:
        nn.init.constant_(head.bias, bias)


def freeze_stages(model: IDOLDetector, freeze_at: int) -> None:
    """detectron2 ``FREEZE_AT``: 1 freezes the stem, 2 the stem and res2 (BN is always frozen)."""
    frozen = [model.backbone.stem, model.backbone.res2][:freeze_at]
    for module in frozen:
        for p in module.parameters():
            p.requires_grad_(False)


def build_train_model(cfg: TrainConfig, *, init: str | None = None) -> IDOLDetector:
    """A 1-class ``IDOLDetector`` initialised for training, on the CPU, in train mode.

    Args:
        init: starting weights (default ``cfg.init``): ``"none"`` (random, Deformable-DETR init), a
            ``uvosam.weight_table`` weight name or a checkpoint path. Checkpoints with another class count
            (e.g. IDOL's 80-class COCO pretraining) load everything but ``class_embed``, which
            keeps its fresh focal-prior initialisation.
    """
    model = IDOLDetector(cfg.detector)
    init_detr_weights(model)
    init = cfg.init if init is None else init
    if init.lower() != "none":
        path = resolve(init)
        logger.info("initialising from %s", path)
        load_idol_checkpoint(model, path, on_class_mismatch="skip")
    freeze_stages(model, cfg.freeze_at)
    return model.train()


def param_groups(model: nn.Module, cfg: TrainConfig) -> list[dict]:
    """Two AdamW groups: parameters whose name contains ``backbone`` (lr x multiplier) and the rest,
    both with ``cfg.weight_decay`` (the release decays every parameter)."""
    backbone, rest = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (backbone if "backbone" in name else rest).append(p)
    groups = [{"params": rest, "lr": cfg.base_lr, "base_lr": cfg.base_lr}]
    if backbone:
        lr = cfg.base_lr * cfg.backbone_lr_multiplier
        groups.append({"params": backbone, "lr": lr, "base_lr": lr})
    for group in groups:
        group["weight_decay"] = cfg.weight_decay
    return groups


def build_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.AdamW:
    """AdamW over ``param_groups`` (betas/eps at PyTorch defaults, as in the release)."""
    return torch.optim.AdamW(param_groups(model, cfg), lr=cfg.base_lr)


def lr_factor(iteration: int, cfg: TrainConfig) -> float:
    """detectron2 ``WarmupMultiStepLR`` factor at ``iteration`` (0-based): linear warm-up from
    ``warmup_factor`` over ``warmup_iters``, times ``lr_gamma`` per passed step."""
    factor = cfg.lr_gamma ** bisect.bisect_right(cfg.lr_steps, iteration)
    if iteration < cfg.warmup_iters:
        alpha = iteration / cfg.warmup_iters
        factor *= cfg.warmup_factor * (1 - alpha) + alpha
    return factor


def set_lr(optimizer: torch.optim.Optimizer, iteration: int, cfg: TrainConfig) -> float:
    """Set every group's lr for ``iteration``; returns the main group's lr."""
    factor = lr_factor(iteration, cfg)
    for group in optimizer.param_groups:
        group["lr"] = group["base_lr"] * factor
    return optimizer.param_groups[0]["lr"]
