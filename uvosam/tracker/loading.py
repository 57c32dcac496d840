"""Build a ready ``IDOLTracker`` from an IDOL checkpoint and (optionally) its detectron2 YAML
config."""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from uvosam import hub, weight_table
from uvosam.classes import PRESET_DATASETS, class_names_for, dataset_class_names
from uvosam.devices import slow_precision_note
from uvosam.tracker.association_config import AssociationConfig, InferenceConfig
from uvosam.tracker.checkpoint import infer_num_classes, load_idol_detector, read_state_dict
from uvosam.tracker.config import DetectorConfig
from uvosam.tracker.session import IDOLTracker
from uvosam.tracker.yaml_config import load_tracker_yaml

logger = logging.getLogger(__name__)


def default_batch_size(cfg: DetectorConfig, device: str | torch.device) -> int:
    """Frames per detector call: ``cfg.batch_infer_len`` (IDOL's ``BATCH_INFER_LEN``), except 1 on the CPU."""
    return 1 if torch.device(device).type == "cpu" else cfg.batch_infer_len


def load_tracker(
    weights: str | Path,
    config_yaml: str | Path | None = None,
    device: str | torch.device = "cpu",
    *,
    batch_size: int | None = None,
    precision: str = "fp32",
) -> IDOLTracker:
    """Load the detector and wrap it in an ``IDOLTracker`` with the association settings of the
    config.

    Args:
        weights: a preset name of ``uvosam.weight_table.WEIGHTS`` or a checkpoint path (original detectron2
            keys or ``IDOLDetector`` keys).
        config_yaml: detectron2-style IDOL YAML (e.g. the release's ``davis_r50.yaml``); ``None`` =
            its values, with the architecture a ``uvosam train`` checkpoint records (else
            ``davis_r50``).
        device: where the detector runs; association always runs on the CPU.
        batch_size: frames per detector call; ``None`` = the config's ``BATCH_INFER_LEN`` on a GPU, 1 on the CPU
            (there 10-frame batches ran the R50 detector 1.4x slower per frame than single frames, 2.13 vs 1.51 s at
            480x854, and each batch held back its first frame's result for nine more frames).
        precision: detector compute precision, ``fp32`` / ``tf32`` / ``bf16`` (``DetectorConfig.precision``).
    """
    detector_cfg: DetectorConfig | None = None
    idol: dict = {}
    if config_yaml is not None:
        parsed = load_tracker_yaml(config_yaml)
        detector_cfg, idol = parsed.detector, parsed.idol
    detector = load_idol_detector(
        hub.resolve(weights, role="tracker"), detector_cfg, device=device, precision=precision
    )
    note = slow_precision_note("the tracker", detector.cfg.precision, detector.device)
    if note:
        logger.warning(note)
    num_classes = detector.cfg.num_classes
    logger.info("IDOL tracker: %d class(es), device %s", num_classes, device)
    return IDOLTracker(
        detector,
        class_names_for(str(weights), num_classes),
        association=AssociationConfig.from_yaml_dict(idol),
        inference=InferenceConfig.from_yaml_dict(idol),
        batch_size=default_batch_size(detector.cfg, device) if batch_size is None else batch_size,
        weights_name=weight_table.weights_label(weights),
        config_name=None if config_yaml is None else Path(config_yaml).name,
    )


def tracker_class_names(weights: str | Path) -> tuple[str, ...]:
    """The class names ``load_tracker(weights)`` gives its tracker, found without building the model: a preset's are
    its dataset's (``uvosam.classes.PRESET_DATASETS``, the count its released file has; no file is read), a
    checkpoint file's follow its class count (``class_names_for``: the file is read, ~1 s for an R50).

    Raises:
        FileNotFoundError, WeightsError: as ``hub.resolve`` and ``read_checkpoint`` for a file.
    """
    if str(weights) in PRESET_DATASETS:
        return dataset_class_names(PRESET_DATASETS[str(weights)])
    num_classes = infer_num_classes(read_state_dict(hub.resolve(weights, role="tracker")))
    return class_names_for(str(weights), num_classes)
