"""Training hyper-parameters of the IDOL tracker (box-only, UVOSAM release).

Defaults are the effective values of the release's ``prompt_networks/IDOL/configs/davis_r50.yaml``
(detectron2 defaults -> ``add_idol_config`` -> the YAML, spec §6); ``TrainConfig.tiny()`` is a toy
preset for CPU tests. ``load_train_config(path)`` reads a YAML file: either our own flat layout (the
field names below, plus an optional ``detector:`` mapping of ``DetectorConfig`` fields) or a
detectron2-style IDOL YAML (``MODEL:``/``SOLVER:``/``INPUT:`` keys).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from uvosam.errors import InputError
from uvosam.tracker.config import DetectorConfig
from uvosam.tracker.yaml_config import (
    decode_yacs_value,
    load_yaml_with_base,
    tracker_config_from_dict,
    yaml_mapping,
)

AMP_MODES = ("auto", "bf16", "fp16", "off")


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run needs besides the data and the output folder.

    Attributes:
        detector: architecture (``num_classes`` must be 1: class-agnostic UVOSAM).
        clips_per_batch: clips per iteration over ALL processes (``SOLVER.IMS_PER_BATCH``); each
            clip is a key + reference frame, so a batch holds twice as many images.
        max_iter: optimiser steps (``SOLVER.MAX_ITER``).
        base_lr: AdamW learning rate (``SOLVER.BASE_LR``).
        backbone_lr_multiplier: factor on the lr of parameters named ``backbone.*``.
        weight_decay: AdamW weight decay (every parameter, as in the release).
        lr_steps: iterations at which the lr is multiplied by ``lr_gamma``.
        lr_gamma: step factor.
        warmup_iters: linear warm-up length; ``warmup_factor`` 1.0 means no warm-up (the release).
        warmup_factor: lr factor at iteration 0 of the warm-up.
        clip_grad_norm: full-model gradient-norm clipping (L2) threshold; 0 disables it.
        freeze_at: 2 freezes the stem and res2 (detectron2 ``FREEZE_AT``); 1 only the stem; 0 none.
        checkpoint_period: write a resumable checkpoint every this many iterations.
        log_period: iterations between CSV / progress-bar loss rows.
        sampling_frame_range: the second frame is drawn from [r - range, r + range] minus r.
        min_size_train: shortest-edge sizes, one chosen per clip.
        max_size_train: cap for the longest edge after resizing.
        crop_prob: probability that a clip uses the per-frame random crop.
        crop_size: (min, max) side of the absolute-range crop (each side drawn independently).
        flip_prob: probability of a horizontal flip of the whole clip.
        class_weight: weight of the sigmoid focal classification loss.
        l1_weight: weight of the L1 box loss (normalised cxcywh).
        giou_weight: weight of the GIoU box loss.
        reid_weight: weight of the contrastive re-id loss.
        reid_aux_weight: weight of the auxiliary cosine re-id loss (1.5 x reid_weight).
        focal_alpha: focal-loss alpha.
        focal_gamma: focal-loss gamma.
        amp: ``auto`` (bf16 on a GPU that computes it natively, compute capability 8.0 on, else fp16; off on CPU),
            ``bf16``, ``fp16``, ``off``.
        num_workers: data-loading worker processes per training process.
        seed: seeds the clip stream, augmentations and re-id negative sampling.
        init: starting weights: a ``uvosam.weight_table`` weight name, a file path, or ``"none"``.
    """

    detector: DetectorConfig = field(default_factory=DetectorConfig.davis_r50)
    clips_per_batch: int = 8
    max_iter: int = 12000
    base_lr: float = 5e-5
    backbone_lr_multiplier: float = 0.1
    weight_decay: float = 1e-4
    lr_steps: tuple[int, ...] = (8500,)
    lr_gamma: float = 0.1
    warmup_iters: int = 10
    warmup_factor: float = 1.0
    clip_grad_norm: float = 0.01
    freeze_at: int = 2
    checkpoint_period: int = 1000
    log_period: int = 20
    sampling_frame_range: int = 10
    min_size_train: tuple[int, ...] = (392, 416, 448, 480, 512, 544, 576, 608, 640)
    max_size_train: int = 1024
    crop_prob: float = 0.5
    crop_size: tuple[int, int] = (384, 600)
    flip_prob: float = 0.5
    class_weight: float = 2.0
    l1_weight: float = 5.0
    giou_weight: float = 5.0
    reid_weight: float = 2.0
    reid_aux_weight: float = 3.0
    focal_alpha: float = 0.25
    focal_gamma: float = 2.0
    amp: str = "auto"
    num_workers: int = 4
    seed: int = 0
    init: str = "idol-coco-r50"

    def __post_init__(self) -> None:
        for name in ("lr_steps", "min_size_train", "crop_size"):
            object.__setattr__(self, name, tuple(int(v) for v in getattr(self, name)))
        for name in (
            "clips_per_batch",
            "max_iter",
            "checkpoint_period",
            "log_period",
            "sampling_frame_range",
            "max_size_train",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise InputError(f"TrainConfig.{name} must be a positive int; got {value!r}")
        for name in ("crop_prob", "flip_prob"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                value = getattr(self, name)
                raise InputError(f"TrainConfig.{name} must be in [0, 1]; got {value!r}")
        if self.detector.num_classes != 1:
            raise InputError(
                "TrainConfig.detector.num_classes must be 1 (UVOSAM's tracker is class-agnostic); "
                f"got {self.detector.num_classes}. Use dataclasses.replace(det_cfg, num_classes=1)."
            )
        workers = self.num_workers
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 0:
            raise InputError(
                f"TrainConfig.num_workers must be an int >= 0 (0: load in the training process); "
                f"got {workers!r}"
            )
        if self.amp not in AMP_MODES:
            raise InputError(f"TrainConfig.amp must be one of {AMP_MODES}; got {self.amp!r}")
        if len(self.crop_size) != 2 or not 0 < self.crop_size[0] <= self.crop_size[1]:
            raise InputError(
                f"TrainConfig.crop_size must be (min, max) with 0 < min <= max; "
                f"got {self.crop_size!r}"
            )
        if not self.min_size_train or self.freeze_at not in (0, 1, 2):
            raise InputError(
                "TrainConfig.min_size_train must be non-empty and freeze_at in 0..2; "
                f"got {self.min_size_train!r}, {self.freeze_at!r}"
            )

    @classmethod
    def davis_r50(cls) -> TrainConfig:
        """The release's ``davis_r50.yaml`` schedule (12k iterations, 8 clips, lr step at 8.5k)."""
        return cls()

    @classmethod
    def tiny(cls) -> TrainConfig:
        """Toy sizes for CPU tests and smoke runs: ``DetectorConfig.tiny()``, 64 px frames,
        random initialisation, a short fast schedule (loss terms and weights unchanged)."""
        return cls(
            detector=DetectorConfig.tiny(),
            clips_per_batch=4,
            max_iter=300,
            base_lr=2e-3,
            backbone_lr_multiplier=1.0,
            lr_steps=(240,),
            warmup_iters=20,
            warmup_factor=0.1,
            clip_grad_norm=1.0,
            freeze_at=0,
            checkpoint_period=100,
            log_period=10,
            sampling_frame_range=3,
            min_size_train=(64,),
            max_size_train=128,
            crop_prob=0.0,
            crop_size=(48, 64),
            amp="off",
            num_workers=0,
            init="none",
        )

    def replace(self, **changes: Any) -> TrainConfig:
        """``dataclasses.replace`` shortcut."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (lists for tuples): YAML/JSON/``torch.save(weights_only)`` friendly."""
        data = dataclasses.asdict(self)
        return _lists(data)


def _lists(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _lists(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_lists(v) for v in value]
    return value


def train_config_from_dict(data: dict[str, Any], base: TrainConfig | None = None) -> TrainConfig:
    """Our flat layout: ``TrainConfig`` field names, ``detector`` a mapping of ``DetectorConfig``
    fields. Unknown names raise ``ValueError`` listing the valid ones."""
    base = base or TrainConfig()
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise InputError(f"unknown TrainConfig fields {unknown}; valid: {sorted(names)}")
    data = dict(data)
    if isinstance(data.get("detector"), dict):
        det_names = {f.name for f in dataclasses.fields(DetectorConfig)}
        bad = sorted(set(data["detector"]) - det_names)
        if bad:
            raise InputError(f"unknown DetectorConfig fields {bad}; valid: {sorted(det_names)}")
        data["detector"] = dataclasses.replace(base.detector, **data["detector"])
    return dataclasses.replace(base, **data)


_D2_KEYS = {
    "SOLVER.IMS_PER_BATCH": "clips_per_batch",
    "SOLVER.MAX_ITER": "max_iter",
    "SOLVER.BASE_LR": "base_lr",
    "SOLVER.BACKBONE_MULTIPLIER": "backbone_lr_multiplier",
    "SOLVER.WEIGHT_DECAY": "weight_decay",
    "SOLVER.STEPS": "lr_steps",
    "SOLVER.GAMMA": "lr_gamma",
    "SOLVER.WARMUP_ITERS": "warmup_iters",
    "SOLVER.WARMUP_FACTOR": "warmup_factor",
    "SOLVER.CLIP_GRADIENTS.CLIP_VALUE": "clip_grad_norm",
    "SOLVER.CHECKPOINT_PERIOD": "checkpoint_period",
    "MODEL.BACKBONE.FREEZE_AT": "freeze_at",
    "INPUT.SAMPLING_FRAME_RANGE": "sampling_frame_range",
    "INPUT.MIN_SIZE_TRAIN": "min_size_train",
    "INPUT.MAX_SIZE_TRAIN": "max_size_train",
    "INPUT.CROP.SIZE": "crop_size",
    "MODEL.IDOL.CLASS_WEIGHT": "class_weight",
    "MODEL.IDOL.L1_WEIGHT": "l1_weight",
    "MODEL.IDOL.GIOU_WEIGHT": "giou_weight",
    "MODEL.IDOL.FOCAL_ALPHA": "focal_alpha",
}


def load_train_config(path: str | Path) -> TrainConfig:
    """Read a training YAML (module docstring). A detectron2 IDOL YAML (top-level ``MODEL`` or
    ``_BASE_``, which is followed) maps its ``SOLVER.*``/``INPUT.*``/loss keys; keys it leaves out
    keep the ``davis_r50`` values. ``ENABLED: False`` of ``SOLVER.CLIP_GRADIENTS`` /
    ``INPUT.CROP`` and ``INPUT.RANDOM_FLIP: none`` switch clipping / cropping / flipping off.

    Raises:
        ValueError: not valid YAML or not a mapping; gradient clipping enabled with a ``CLIP_TYPE`` other than
            ``full_model`` (the only kind implemented).
    """
    path = Path(path)
    data = yaml_mapping(path.read_text(encoding="utf-8"), str(path))
    if "MODEL" not in data and "_BASE_" not in data:
        return train_config_from_dict(data)
    data = load_yaml_with_base(path)
    detector = dataclasses.replace(tracker_config_from_dict(data).detector, num_classes=1)
    changes: dict[str, Any] = {"detector": detector}
    for dotted, name in _D2_KEYS.items():
        node = _d2_value(data, dotted)
        if node is not None:
            changes[name] = node
    if "MODEL.IDOL.REID_WEIGHT" in _flat_keys(data):
        reid = data["MODEL"]["IDOL"]["REID_WEIGHT"]
        changes.update(reid_weight=reid, reid_aux_weight=1.5 * reid)
    changes.update(_d2_switches(data, path))
    return dataclasses.replace(TrainConfig(), **changes)


def _d2_value(data: dict[str, Any], dotted: str) -> Any:
    node: Any = data
    for part in dotted.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return None if node is None else decode_yacs_value(node)


def _d2_switches(data: dict[str, Any], path: Path) -> dict[str, Any]:
    """Changes implied by the on/off keys of a detectron2 YAML (``load_train_config``)."""
    changes: dict[str, Any] = {}
    if _d2_value(data, "SOLVER.CLIP_GRADIENTS.ENABLED") is False:
        changes["clip_grad_norm"] = 0.0
    else:
        clip_type = _d2_value(data, "SOLVER.CLIP_GRADIENTS.CLIP_TYPE")
        if clip_type not in (None, "full_model"):
            raise InputError(
                f"{path}: SOLVER.CLIP_GRADIENTS.CLIP_TYPE {clip_type!r} is not supported; "
                "expected 'full_model' (whole-model gradient-norm clipping) or ENABLED: False"
            )
    if _d2_value(data, "INPUT.CROP.ENABLED") is False:
        changes["crop_prob"] = 0.0
    if _d2_value(data, "INPUT.RANDOM_FLIP") == "none":
        changes["flip_prob"] = 0.0
    return changes


def _flat_keys(data: dict[str, Any], prefix: str = "") -> set[str]:
    keys = set()
    for key, value in data.items():
        keys.add(prefix + key)
        if isinstance(value, dict):
            keys |= _flat_keys(value, prefix + key + ".")
    return keys
