"""The models the app offers and how it loads them: tracker presets, mask models (with the names the UI shows),
the loader that keeps each loaded tracker and mask model (shared by the pairs that use it), and a run's config.
Nothing here imports gradio.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from uvosam import sam2_segmenter, weight_table
from uvosam.box_segmenter import BoxSegmenterBase, resolve_device
from uvosam.config import (
    SAM2_MODEL_TYPES,
    SAM_MODEL_TYPES,
    SAM_PRECISIONS,
    PipelineConfig,
    SegmenterConfig,
)
from uvosam.errors import MissingPackageError
from uvosam.pipeline import UVOSAM, locate_weights
from uvosam.segmenter import load_segmenter, weights_key
from uvosam.tracker import loading as tracker_loading
from uvosam.types import BoxTracker
from uvosam_app.gpu import zero_gpu

logger = logging.getLogger("uvosam.app")

PRESETS = weight_table.TRACKERS
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


def mask_model_choices(
    offered: tuple[str, ...], notes: Mapping[str, str] | None = None
) -> list[tuple[str, str]]:
    """(label, model type) of the ``offered`` mask models: the choices of the app's mask model radio; a model with
    a note (``StartModels.notes``) has it after its name."""
    return [(noted(mask_model_label(sam), sam, notes), sam) for sam in offered]


def noted(label: str, name: str, notes: Mapping[str, str] | None) -> str:
    """A choice's label with its note, if any: "SAM ViT-L (not installed)"."""
    note = (notes or {}).get(name)
    return f"{label} ({note})" if note else label


# why a model did not load at start (``StartModels``): its weight files are missing, or unusable (``WeightsError``:
# damaged, not the expected file)
WEIGHTS_MISSING = "weights missing"
WEIGHTS_BAD = "weights unusable"


@dataclass(frozen=True)
class StartModels:
    """What loading the models at start gave (``start_models.load_default``).

    Attributes:
        pipe: the default pair's pipeline (None: it did not load).
        default_failed: why the default pair did not load: ``WEIGHTS_MISSING``, ``WEIGHTS_BAD`` or the exception's
            type name (None: it loaded). The page shows a banner; the log has the details.
        extras_failed: the models of ``UVOSAM_PRELOAD`` (tracker presets, mask models) that did not load while the
            default pair did, each with why (as ``default_failed``): the app serves, the log has the details, and
            their choices say so (``notes``).
    """

    pipe: Any = None
    default_failed: str | None = None
    extras_failed: Mapping[str, str] = field(default_factory=dict)

    def notes(self) -> dict[str, str]:
        """The note each failed extra model's choice shows after its name."""
        says = {WEIGHTS_MISSING: "not installed", WEIGHTS_BAD: "weights unusable"}
        return {name: says.get(why, "failed to load") for name, why in self.extras_failed.items()}


def needed_weights(preset: str, sam: str) -> tuple[str, ...]:
    """``uvosam.weight_table.WEIGHTS`` names a (tracker preset, mask model) pair loads."""
    return preset, weights_key(sam)


def load_tracker(preset: str, device: str) -> BoxTracker:
    """The tracker of a preset (``uvosam.weight_table.WEIGHTS``), as ``UVOSAM.from_pretrained`` loads it."""
    return tracker_loading.load_tracker(preset, device=resolve_device(device))


def load_mask_model(
    sam: str, device: str, sam_precision: str = "auto", cuda_graph: bool = False
) -> BoxSegmenterBase:
    """A mask model (``SegmenterConfig.model_type``) with its image encoder in ``sam_precision``
    (``uvosam.config.SAM_PRECISIONS``) and ``cuda_graph`` (``SegmenterConfig.cuda_graph``), as
    ``UVOSAM.from_pretrained`` loads it."""
    config = SegmenterConfig(fast=SAM_PRECISIONS[sam_precision], cuda_graph=cuda_graph)
    return load_segmenter(sam, device=resolve_device(device), config=config)


class ModelsNotLoadedError(RuntimeError):
    """A model pair this app cannot run: a model it no longer loads (on ZeroGPU only those loaded at start run), or
    whose weights are missing or damaged, or whose package is not installed (``unavailable``). The message is for
    a visitor: no server path, no instruction only the host can follow."""


# what a visitor is told of SAM 2.1 when the sam2 package is missing (the host's pip advice goes to the log)
SAM2_NOT_INSTALLED = "the host has not installed SAM 2.1's package (sam2)"
# (preset, sam, error type) logged already: bounded by the pairs (a text can differ per try: a request id)
_logged_unavailable: set[tuple[str, str, str]] = set()
_logged_lock = threading.Lock()


def unavailable(preset: str, sam: str, err: Exception) -> ModelsNotLoadedError:
    """The visitor's refusal of a pair that failed to load for want of its weights (``MissingWeightsError``,
    ``WeightsError``) or of a package (``MissingPackageError``); the full text (server paths, the host's advice)
    goes to the server log once per pair and kind of error, as ``start_models._load_pair`` logs a failure at start."""
    key = (preset, sam, type(err).__name__)
    with _logged_lock:
        new = key not in _logged_unavailable
        _logged_unavailable.add(key)
    if new:
        logger.error("%s + %s cannot run: %s", preset, sam, err)
    pair = f"{preset} + {mask_model_label(sam)}"
    if isinstance(err, MissingPackageError):
        return ModelsNotLoadedError(
            f"{pair} cannot run here: {SAM2_NOT_INSTALLED}. Choose a SAM model (ViT-B, ViT-L or ViT-H)."
        )
    return ModelsNotLoadedError(
        f"{pair} cannot run here: its weights are not installed on this server (or are damaged). Choose "
        "another model; the server log names the files."
    )


class _Models:
    """Models of one kind (trackers or mask models) by name, each loaded once (concurrent first uses wait for one
    load; loading one does not block users of the others). At most ``max_loaded`` are kept; the least recently used
    goes, never the first one loaded (the app's default)."""

    def __init__(self, load: Callable[[str], Any], max_loaded: int) -> None:
        self._load = load
        self._max_loaded = max_loaded
        self._models: OrderedDict[str, Any] = OrderedDict()
        self._lock = threading.Lock()
        self._name_locks: dict[str, threading.Lock] = {}
        self._first: str | None = None

    def __contains__(self, name: str) -> bool:
        with self._lock:
            return name in self._models

    def get(self, name: str) -> tuple[Any, bool]:
        """(the model, whether this call loaded it)."""
        with self._lock:
            if name in self._models:
                self._models.move_to_end(name)
                return self._models[name], False
            name_lock = self._name_locks.setdefault(name, threading.Lock())
        with name_lock:
            with self._lock:
                if name in self._models:
                    return self._models[name], False
            model = self._load(name)
            with self._lock:
                self._models[name] = model
                self._first = self._first or name
                while len(self._models) > self._max_loaded:
                    evicted = next(k for k in self._models if k != self._first)
                    logger.info("unloading %s (least recently used)", evicted)
                    del self._models[evicted]
            return model, True


class PipelineLoader:
    """``loader(preset, sam) -> UVOSAM``: each tracker preset and each mask model is loaded once per process and
    shared (read-only) by every pair that uses it, so offering several pairs costs no copy of a model.

    Weight files are checked first (``uvosam.pipeline.locate_weights``: ``checkpoints/``, then the Hugging Face
    cache/Hub), so a missing-weights error lists EVERY missing file at once. At most ``max_loaded`` trackers and as
    many mask models are kept (``_Models``). A pair with a model new to it is warmed up once on a GPU (not ZeroGPU,
    where none is attached while loading), so the first user's first chunk does not pay the one-time costs. After
    ``stop_loading`` (ZeroGPU: models must load in the main thread at start, where its CUDA emulation runs), a pair
    with a model not loaded raises ``ModelsNotLoadedError``. Concurrent first uses of a pair check (and download) its
    files once (and ``uvosam.hub`` lets fetches of one file take turns).
    """

    def __init__(
        self,
        *,
        device: str,
        load_tracker: Callable[[str, str], BoxTracker] = load_tracker,
        load_segmenter: Callable[[str, str], BoxSegmenterBase] = load_mask_model,
        max_loaded: int = 3,
    ) -> None:
        self.device = device
        self.weight_files: dict[str, Path] = {}
        self._trackers = _Models(lambda preset: load_tracker(preset, device), max_loaded)
        self._segmenters = _Models(lambda sam: load_segmenter(sam, device), max_loaded)
        self._stopped: str | None = None
        self._lock = threading.Lock()
        self._pair_locks: dict[tuple[str, str], threading.Lock] = {}

    def __call__(self, preset: str, sam: str) -> UVOSAM:
        if self.loaded(preset, sam):
            return self._pipeline(preset, sam)
        if self._stopped is not None:
            raise ModelsNotLoadedError(
                f"{preset} + {mask_model_label(sam)} is not available on this app right now: {self._stopped}"
            )
        with self._lock:
            pair_lock = self._pair_locks.setdefault((preset, sam), threading.Lock())
        with pair_lock:  # sessions choosing one new pair at once: one finds (or downloads) its files, others wait
            if not self.loaded(preset, sam):
                self.check_weights(preset, sam)
                logger.info("loading tracker %s + mask model %s on %s", preset, sam, self.device)
            return self._pipeline(preset, sam)

    def _pipeline(self, preset: str, sam: str) -> UVOSAM:
        tracker, new_tracker = self._trackers.get(preset)
        segmenter, new_segmenter = self._segmenters.get(sam)
        pipe = UVOSAM(tracker, segmenter)
        if (new_tracker or new_segmenter) and self.device.startswith("cuda") and not zero_gpu():
            logger.info(
                "warm-up of %s + %s on %s: %.1f s", preset, sam, self.device, pipe.warm_up()
            )
        return pipe

    def loaded(self, preset: str, sam: str) -> bool:
        """Whether both models of the pair are loaded (a call would load none)."""
        return preset in self._trackers and sam in self._segmenters

    def stop_loading(self, reason: str) -> None:
        """Load nothing more: a pair with a model not loaded yet raises ``ModelsNotLoadedError`` saying ``reason``."""
        self._stopped = reason

    def check_weights(self, preset: str, sam: str) -> None:
        """Find the pair's weight files with the library's locator (``uvosam.pipeline.locate_weights``: local first,
        then the Hub) and keep their paths in ``weight_files``; raise ``MissingWeightsError`` naming every missing
        one. A preset outside the weight table (a test's double tracker) has no file and is not looked for."""
        tracker_name, sam_name = needed_weights(preset, sam)
        known = tracker_name in weight_table.WEIGHTS
        tracker_file, sam_file = locate_weights(preset if known else None, sam)
        if tracker_file is not None:
            self.weight_files[tracker_name] = tracker_file
        self.weight_files[sam_name] = sam_file


def run_config(pipe: UVOSAM, **changes: Any) -> PipelineConfig:
    """The shared pipeline's config with this run's changes (the shared one is never mutated)."""
    return replace(pipe.config, **changes)
