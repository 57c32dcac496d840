"""The models the app offers and how it loads them: tracker presets, mask models (with the names the UI shows),
the loader that keeps each loaded pair, and a run's config. Nothing here imports gradio.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from uvosam import hub, sam2_segmenter, weight_table
from uvosam.config import (
    SAM2_MODEL_TYPES,
    SAM_MODEL_TYPES,
    SAM_PRECISIONS,
    PipelineConfig,
    SegmenterConfig,
)
from uvosam.pipeline import UVOSAM
from uvosam.segmenter import weights_key
from uvosam_app.gpu import zero_gpu

logger = logging.getLogger("uvosam.app")

PRESETS = (
    "idol-ytvis19-r50",
    "idol-ytvis21-r50",
    "idol-ovis-r50",
    "idol-coco-r50",
    "uvosam-davis-r50",
)
MASK_MODEL_LABELS = {
    "vit_b": "SAM ViT-B",
    "vit_l": "SAM ViT-L",
    "vit_h": "SAM ViT-H",
    "sam2.1_tiny": "SAM 2.1 tiny",
    "sam2.1_small": "SAM 2.1 small",
    "sam2.1_base_plus": "SAM 2.1 base+",
    "sam2.1_large": "SAM 2.1 large",
}
"""Mask model (``SegmenterConfig.model_type``, the value the app and its API take) -> the name the UI shows."""
GetPipeline = Callable[[str, str], UVOSAM]


def sam2_missing() -> str | None:
    """Why this app offers no SAM 2.1 model (the sam2 package is not importable, and how to install it), or
    ``None`` when it offers them."""
    return sam2_segmenter.sam2_missing_message()


def mask_models() -> tuple[str, ...]:
    """The mask models (``SegmenterConfig.model_type``) this process offers: SAM ViT-B/L/H always, then the SAM 2.1
    types when the sam2 package is importable (looked up at each call)."""
    return SAM_MODEL_TYPES + (SAM2_MODEL_TYPES if sam2_missing() is None else ())


def mask_model_label(sam: str) -> str:
    """``"vit_b"`` -> ``"SAM ViT-B"``, ``"sam2.1_tiny"`` -> ``"SAM 2.1 tiny"`` (an unknown name as it is)."""
    return MASK_MODEL_LABELS.get(sam, sam)


def mask_model_choices() -> list[tuple[str, str]]:
    """(label, model type) of every offered mask model: the choices of the app's mask model radio."""
    return [(mask_model_label(sam), sam) for sam in mask_models()]


def needed_weights(preset: str, sam: str) -> tuple[str, ...]:
    """``uvosam.weight_table.WEIGHTS`` names a (tracker preset, mask model) pair loads."""
    return preset, weights_key(sam)


def from_pretrained(preset: str, sam: str, device: str, sam_precision: str = "auto") -> UVOSAM:
    """``UVOSAM.from_pretrained(tracker=preset, sam=sam, device=device)`` with the image encoder's precision
    ``sam_precision`` (``uvosam.config.SAM_PRECISIONS``), then on a GPU (not ZeroGPU, where none is attached while
    loading) one warm-up frame, so the first user's first chunk does not pay the one-time costs."""
    load = getattr(UVOSAM, "from_pretrained", None)
    if load is None:
        raise NotImplementedError(
            "This uvosam build has no UVOSAM.from_pretrained, so the app cannot load the released "
            "models; install a complete uvosam (pip install -e . from the repository)."
        )
    fast = SAM_PRECISIONS[sam_precision]
    pipe = load(tracker=preset, sam=sam, device=device, segmenter_config=SegmenterConfig(fast=fast))
    if device.startswith("cuda") and not zero_gpu():
        logger.info("warm-up of %s + %s on %s: %.1f s", preset, sam, device, pipe.warm_up())
    return pipe


class PipelineLoader:
    """``loader(preset, sam) -> UVOSAM``: loads each pair once per process and keeps it (read-only).

    Weight files are checked first (``hub.resolve``: ``checkpoints/``, then the Hugging Face
    cache/Hub), so a missing-weights error lists EVERY missing file at once. Loading one pair does
    not block users of pairs already loaded. At most ``max_loaded`` pairs are kept; the least
    recently used (never the first) goes.
    """

    def __init__(
        self,
        *,
        device: str,
        load: Callable[[str, str, str], UVOSAM] = from_pretrained,
        max_loaded: int = 3,
    ) -> None:
        self.device = device
        self.weight_files: dict[str, Path] = {}
        self._load = load
        self._max_loaded = max_loaded
        self._pipes: OrderedDict[tuple[str, str], UVOSAM] = OrderedDict()
        self._lock = threading.Lock()
        self._key_locks: dict[tuple[str, str], threading.Lock] = {}
        self._first: tuple[str, str] | None = (
            None  # the first pair loaded (startup's) is never evicted
        )

    def __call__(self, preset: str, sam: str) -> UVOSAM:
        key = (preset, sam)
        with self._lock:
            if key in self._pipes:
                self._pipes.move_to_end(key)
                return self._pipes[key]
            key_lock = self._key_locks.setdefault(key, threading.Lock())
        with key_lock:
            with self._lock:
                if key in self._pipes:
                    return self._pipes[key]
            self.check_weights(preset, sam)
            logger.info("loading tracker %s + mask model %s on %s", preset, sam, self.device)
            pipe = self._load(preset, sam, self.device)
            with self._lock:
                self._pipes[key] = pipe
                self._first = self._first or key
                while len(self._pipes) > self._max_loaded:
                    evicted = next(k for k in self._pipes if k != self._first)
                    logger.info("unloading %s + %s (least recently used)", *evicted)
                    del self._pipes[evicted]
            return pipe

    def check_weights(self, preset: str, sam: str) -> None:
        """Resolve the pair's weight files; raise ``FileNotFoundError`` naming every missing one."""
        missing = []
        for name in needed_weights(preset, sam):
            if name not in weight_table.WEIGHTS:
                continue
            try:
                self.weight_files[name] = hub.resolve(name)
            except FileNotFoundError as err:
                missing.append(str(err))
        if missing:
            raise FileNotFoundError("\n\n".join(missing))


def run_config(pipe: UVOSAM, **changes: Any) -> PipelineConfig:
    """The shared pipeline's config with this run's changes (the shared one is never mutated)."""
    return replace(pipe.config, **changes)
