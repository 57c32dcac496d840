"""Load the released detectron2-format IDOL checkpoints (UVOSAM ``davis.pth``, VNext IDOL R50 files)
into ``IDOLDetector`` without detectron2 (spec §2.1).

Key map (original -> ours), applied in order:

* ``detr.detr.backbone.0.backbone.<rest>`` -> ``backbone.<rest>``
* ``detr.detr.transformer.decoder.bbox_embed.*`` -> skipped: alias of ``detr.detr.bbox_embed.*``
  (same tensors; used only when the primary is absent)
* ``detr.detr.<rest>`` -> ``<rest>`` (input_proj, query_embed, transformer, class/bbox_embed)
* ``detr.reid_embed_head.<rest>`` -> ``reid_embed_head.<rest>``
* ``detr.controller.*``, ``detr.mask_head.*`` -> skipped: VNext CondInst mask branch (no boxes)
* anything else -> ignored (reported)
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch

from uvosam import weight_table
from uvosam.errors import InputError, MissingWeightsError, WeightsError
from uvosam.tracker.config import DetectorConfig
from uvosam.tracker.detector import IDOLDetector
from uvosam.weight_loading import load_checkpoint

logger = logging.getLogger(__name__)

StateDict = dict[str, torch.Tensor]

_PREFIX_MAP = (
    ("detr.detr.backbone.0.backbone.", "backbone."),
    ("detr.detr.", ""),
    ("detr.reid_embed_head.", "reid_embed_head."),
)
ALIAS_PREFIX = "detr.detr.transformer.decoder.bbox_embed."
PRIMARY_BOX_PREFIX = "detr.detr.bbox_embed."
MASK_HEAD_PREFIXES = ("detr.controller.", "detr.mask_head.")


@dataclass
class RemapReport:
    """What ``remap_idol_state_dict`` did with each original key.

    Attributes:
        mapped: number of keys renamed into the model's namespace.
        alias_skipped: ``transformer.decoder.bbox_embed`` alias keys (or primaries replaced by the
            alias).
        alias_mismatch: alias keys whose values differ from the primary (the primary is used).
        mask_head_skipped: VNext mask-branch keys.
        ignored: keys with an unknown prefix.
    """

    mapped: int = 0
    alias_skipped: list[str] = field(default_factory=list)
    alias_mismatch: list[str] = field(default_factory=list)
    mask_head_skipped: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """One line for the log."""
        text = (
            f"IDOL checkpoint: {self.mapped} tensors mapped, "
            f"{len(self.alias_skipped)} bbox_embed alias keys "
            f"skipped, {len(self.mask_head_skipped)} mask-head keys skipped (unused for boxes)"
        )
        if self.alias_mismatch:
            text += (
                f"; {len(self.alias_mismatch)} alias keys differ from detr.detr.bbox_embed "
                "(primary used)"
            )
        if self.ignored:
            text += f"; {len(self.ignored)} unknown keys ignored: {_preview(self.ignored)}"
        return text


def remap_idol_state_dict(state_dict: Mapping[str, torch.Tensor]) -> tuple[StateDict, RemapReport]:
    """Rename original detectron2 IDOL keys to ``IDOLDetector`` keys (table in the module
    docstring).

    Args:
        state_dict: the checkpoint's model state dict (``ckpt["model"]``, ``module.`` already
            stripped).

    Returns:
        (state dict in ``IDOLDetector`` naming, report). Tensors are not copied.
    """
    report = RemapReport()
    out: StateDict = {}
    for key, value in state_dict.items():
        if key.startswith(ALIAS_PREFIX):
            primary = PRIMARY_BOX_PREFIX + key[len(ALIAS_PREFIX) :]
            report.alias_skipped.append(key)
            if primary not in state_dict:
                out["bbox_embed." + key[len(ALIAS_PREFIX) :]] = value
                report.mapped += 1
            elif not _same(state_dict[primary], value):
                report.alias_mismatch.append(key)
        elif key.startswith(MASK_HEAD_PREFIXES):
            report.mask_head_skipped.append(key)
        elif key.endswith(".num_batches_tracked"):
            report.ignored.append(key)
        else:
            new_key = _rename(key)
            if new_key is None:
                report.ignored.append(key)
            else:
                out[new_key] = value
                report.mapped += 1
    return out, report


def infer_num_classes(state_dict: Mapping[str, torch.Tensor]) -> int:
    """Class count of a checkpoint from its last ``class_embed`` layer (UVOSAM 1, VNext YTVIS 40,
    OVIS 25, COCO 80).

    Accepts original (``detr.detr.class_embed.*``), ``module.``-prefixed or ``IDOLDetector`` names,
    or a ``{"model": ...}`` wrapper.
    """
    state_dict = unwrap_state_dict(state_dict)
    shapes = {}
    for key, value in state_dict.items():
        parts = key.split(".")
        if (
            len(parts) >= 3
            and parts[-3] == "class_embed"
            and parts[-1] == "weight"
            and parts[-2].isdecimal()
        ):
            shapes[int(parts[-2])] = value.shape[0]
    if not shapes:
        raise WeightsError(
            "no class_embed.<i>.weight in the checkpoint: expected an IDOL / Deformable-DETR "
            "state dict; "
            f"got keys like {_preview(list(state_dict))}"
        )
    return int(shapes[max(shapes)])


def unwrap_state_dict(obj: Mapping) -> StateDict:
    """detectron2/fvcore semantics: use ``obj["model"]`` if present, then strip a leading
    ``module.``."""
    if "model" in obj and isinstance(obj["model"], Mapping):
        obj = obj["model"]
    out = {}
    for key, value in obj.items():
        if not isinstance(value, torch.Tensor):
            raise WeightsError(
                f"checkpoint entry {key!r} is a {type(value).__name__}, expected a tensor"
            )
        out[key.removeprefix("module.")] = value
    return out


def read_checkpoint(path: str | Path) -> dict:
    """Read a checkpoint file safely (``torch.load(weights_only=True)`` on CPU), as stored.

    Raises:
        FileNotFoundError: no such file.
        WeightsError: truncated / not a torch file / contains pickled code / not a dict.
    """
    path = Path(path)
    if not path.is_file():
        raise MissingWeightsError(
            f"IDOL checkpoint not found: {path} (see {weight_table.TABLE_DOC} for downloads)"
        )
    # weights-only; unreadable or code-carrying files raise WeightsError
    return load_checkpoint(path)


def read_state_dict(path: str | Path) -> StateDict:
    """Read a checkpoint safely (``read_checkpoint``) and unwrap it (``unwrap_state_dict``).

    Raises:
        FileNotFoundError: no such file.
        WeightsError: truncated / not a torch file / contains pickled code or non-tensor entries.
    """
    return unwrap_state_dict(read_checkpoint(path))


def recorded_detector_config(checkpoint: Mapping) -> DetectorConfig | None:
    """The architecture a ``uvosam train`` checkpoint records (``train_config["detector"]``), else None.

    Released checkpoints record none (their architecture comes from a YAML, or is ``davis_r50``).

    Raises:
        WeightsError: the recorded ``detector`` is not a valid ``DetectorConfig``.
    """
    train_config = checkpoint.get("train_config")
    recorded = train_config.get("detector") if isinstance(train_config, Mapping) else None
    if not isinstance(recorded, Mapping):
        return None
    known = {f.name for f in dataclasses.fields(DetectorConfig)} - {"precision"}
    try:
        return DetectorConfig(**{k: v for k, v in recorded.items() if k in known})
    except (TypeError, ValueError) as err:
        raise WeightsError(
            f"the checkpoint's train_config['detector'] is not a valid detector config ({err}); pass "
            "its YAML to choose the architecture"
        ) from None


def load_idol_checkpoint(
    model: IDOLDetector,
    path_or_state: str | Path | Mapping[str, torch.Tensor],
    *,
    on_class_mismatch: str = "error",
    source: str | Path | None = None,
) -> RemapReport:
    """Load original (or already ``IDOLDetector``-named) weights into ``model`` in place.

    Skipped keys (alias, mask head, unknown) are logged in one summary. Shapes must match; a
    ``class_embed`` class-count mismatch is reported with the fix (build with
    ``num_classes=infer_num_classes(sd)``, as ``load_idol_detector`` does) or, with
    ``on_class_mismatch="skip"``, the classifier keeps its fresh initialisation (detectron2
    behaviour; only useful as a fine-tuning start).

    ``source``: the file a state dict was read from, named in the errors (a path given as
    ``path_or_state`` names itself).

    Raises:
        WeightsError: shape mismatch (names the file, the key and both shapes), missing keys, or keys
            the model lacks; an architecture mismatch says to pass the checkpoint's own YAML.
    """
    if on_class_mismatch not in ("error", "skip"):
        raise InputError(f"on_class_mismatch must be 'error' or 'skip'; got {on_class_mismatch!r}")
    if isinstance(path_or_state, (str, Path)):
        source = path_or_state if source is None else source
        raw = read_state_dict(path_or_state)
    else:
        raw = path_or_state
    named = "IDOL state dict" if source is None else f"IDOL checkpoint {source}"
    raw = unwrap_state_dict(raw)
    if any(k.startswith("detr.") for k in raw):
        state, report = remap_idol_state_dict(raw)
    else:
        state, report = dict(raw), RemapReport(mapped=len(raw))
    logger.log(
        logging.WARNING if report.ignored or report.alias_mismatch else logging.INFO,
        report.summary(),
    )
    expected = model.state_dict()
    skipped = _check_shapes(state, expected, model.cfg.num_classes, on_class_mismatch, named)
    state = {k: v for k, v in state.items() if k not in skipped}
    _check_keys(state, expected, skipped, named)
    model.load_state_dict(state, strict=False)
    return report


def load_idol_detector(
    path: str | Path,
    cfg: DetectorConfig | None = None,
    *,
    device: torch.device | str = "cpu",
    precision: str | None = None,
) -> IDOLDetector:
    """Build an ``IDOLDetector``, load the checkpoint, move it to ``device`` and set eval mode.

    Args:
        cfg: the architecture; ``None`` = the one a ``uvosam train`` checkpoint records
            (``recorded_detector_config``), else ``DetectorConfig.davis_r50()``. The class count is
            always taken from the file.
        precision: if given, replaces the config's ``precision`` (how frames are computed, not the
            architecture).
    """
    raw = read_checkpoint(path)
    state = unwrap_state_dict(raw)
    cfg = cfg or recorded_detector_config(raw) or DetectorConfig.davis_r50()
    cfg = dataclasses.replace(
        cfg,
        num_classes=infer_num_classes(state),
        precision=cfg.precision if precision is None else precision,
    )
    model = IDOLDetector(cfg)
    load_idol_checkpoint(model, state, source=path)
    return model.to(device).eval()


_YAML_HINT = (
    "Give the checkpoint's own detectron2 YAML with --config-yaml (Python: tracker_yaml= in "
    "UVOSAM.from_pretrained, config_yaml= in load_tracker); without one the model is built as the "
    "uvosam-davis-r50 preset's."
)


def _check_shapes(
    state: StateDict, expected: StateDict, num_classes: int, on_class_mismatch: str, named: str
) -> set[str]:
    """The ``class_embed`` keys to skip (``on_class_mismatch="skip"``); ``WeightsError`` for
    another shape mismatch. ``named``: the checkpoint as the errors name it."""
    skipped: set[str] = set()
    for key, value in state.items():
        if key not in expected or expected[key].shape == value.shape:
            continue
        if key.startswith("class_embed."):
            if on_class_mismatch == "skip":
                skipped.add(key)
                continue
            raise WeightsError(
                f"{named}: {key}: the checkpoint has {value.shape[0]} classes, the model "
                f"{num_classes} (checkpoint shape {tuple(value.shape)} vs model "
                f"{tuple(expected[key].shape)}). Load it with load_idol_detector, which counts its classes, or "
                "build the model with DetectorConfig(num_classes=infer_num_classes(state_dict))."
            )
        raise WeightsError(
            f"{named}: {key}: checkpoint shape {tuple(value.shape)} vs model "
            f"{tuple(expected[key].shape)}: the model's config does not match this checkpoint's "
            "architecture (depth, widths, hidden_dim, num_queries, num_feature_levels). "
            + _YAML_HINT
        )
    return skipped


def _check_keys(state: StateDict, expected: StateDict, skipped: set[str], named: str) -> None:
    missing = sorted(set(expected) - set(state) - skipped)
    extra = sorted(set(state) - set(expected))
    if missing:
        raise WeightsError(
            f"{named} lacks {len(missing)} model tensors: {_preview(missing, 12)}. Expected a full "
            "IDOL detector checkpoint whose architecture matches the model's config. " + _YAML_HINT
        )
    if extra:
        raise WeightsError(
            f"{named} has {len(extra)} tensors the model does not: {_preview(extra, 12)}. The "
            "model's config is smaller than the checkpoint (e.g. depth, enc_layers/dec_layers, "
            f"num_feature_levels). {_YAML_HINT}"
        )


def _rename(key: str) -> str | None:
    for old, new in _PREFIX_MAP:
        if key.startswith(old):
            return new + key[len(old) :]
    return None


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    if a is b or a.is_meta or b.is_meta:
        return a.shape == b.shape
    return a.shape == b.shape and bool(torch.equal(a, b))


def _preview(keys: list[str], n: int = 5) -> str:
    return ", ".join(keys[:n]) + (f", ... (+{len(keys) - n})" if len(keys) > n else "")
