"""Read detectron2-style IDOL YAML configs (UVOSAM ``davis_r50.yaml``, VNext
``projects/IDOL/configs``) without detectron2.

Keys absent from the YAML take the detectron2 / ``add_idol_config`` defaults (not the
``DetectorConfig`` defaults: e.g. detectron2's ``INPUT.MIN_SIZE_TEST`` default is 800 and
``RESNETS.STRIDE_IN_1X1`` defaults to True). ``_BASE_`` is followed relative to the including file;
the child overrides the base. Unknown keys are ignored.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from uvosam.errors import InputError, MissingInputError
from uvosam.tracker.config import DetectorConfig

D2_DEFAULTS: dict[str, Any] = {
    "MODEL.META_ARCHITECTURE": "GeneralizedRCNN",
    "MODEL.BACKBONE.NAME": "build_resnet_backbone",
    "MODEL.PIXEL_MEAN": [103.530, 116.280, 123.675],
    "MODEL.PIXEL_STD": [1.0, 1.0, 1.0],
    "MODEL.RESNETS.DEPTH": 50,
    "MODEL.RESNETS.STEM_OUT_CHANNELS": 64,
    "MODEL.RESNETS.RES2_OUT_CHANNELS": 256,
    "MODEL.RESNETS.WIDTH_PER_GROUP": 64,
    "MODEL.RESNETS.NUM_GROUPS": 1,
    "MODEL.RESNETS.STRIDE_IN_1X1": True,
    "MODEL.RESNETS.RES5_DILATION": 1,
    "MODEL.RESNETS.NORM": "FrozenBN",
    "MODEL.RESNETS.DEFORM_ON_PER_STAGE": [False, False, False, False],
    "INPUT.FORMAT": "BGR",
    "INPUT.MIN_SIZE_TEST": 800,
    "INPUT.MAX_SIZE_TEST": 1333,
}
"""detectron2 defaults of the keys the detector reads."""

IDOL_DEFAULTS: dict[str, Any] = {
    "NUM_CLASSES": 80,
    "NHEADS": 8,
    "DROPOUT": 0.1,
    "DIM_FEEDFORWARD": 1024,
    "ENC_LAYERS": 6,
    "DEC_LAYERS": 6,
    "HIDDEN_DIM": 256,
    "NUM_OBJECT_QUERIES": 300,
    "DEC_N_POINTS": 4,
    "ENC_N_POINTS": 4,
    "NUM_FEATURE_LEVELS": 4,
    "CLIP_STRIDE": 1,
    "MERGE_ON_CPU": True,
    "MULTI_CLS_ON": True,
    "APPLY_CLS_THRES": 0.05,
    "TEMPORAL_SCORE_TYPE": "mean",
    "INFERENCE_SELECT_THRES": 0.1,
    "INFERENCE_FW": True,
    "INFERENCE_TW": True,
    "MEMORY_LEN": 3,
    "BATCH_INFER_LEN": 10,
}
"""``MODEL.IDOL.*`` defaults of ``add_idol_config`` (inference/architecture keys; loss weights
omitted)."""

_RESNET_FIELDS = {
    "depth": "DEPTH",
    "stem_out_channels": "STEM_OUT_CHANNELS",
    "res2_out_channels": "RES2_OUT_CHANNELS",
    "width_per_group": "WIDTH_PER_GROUP",
    "num_groups": "NUM_GROUPS",
    "stride_in_1x1": "STRIDE_IN_1X1",
    "res5_dilation": "RES5_DILATION",
}
_IDOL_FIELDS = {
    "num_classes": "NUM_CLASSES",
    "hidden_dim": "HIDDEN_DIM",
    "nheads": "NHEADS",
    "dim_feedforward": "DIM_FEEDFORWARD",
    "enc_layers": "ENC_LAYERS",
    "dec_layers": "DEC_LAYERS",
    "enc_n_points": "ENC_N_POINTS",
    "dec_n_points": "DEC_N_POINTS",
    "num_feature_levels": "NUM_FEATURE_LEVELS",
    "num_queries": "NUM_OBJECT_QUERIES",
    "batch_infer_len": "BATCH_INFER_LEN",
}


@dataclass(frozen=True)
class YamlTrackerConfig:
    """A parsed IDOL YAML.

    Attributes:
        detector: architecture + test preprocessing.
        idol: every ``MODEL.IDOL.*`` key (defaults filled in), e.g. ``INFERENCE_SELECT_THRES``,
            ``APPLY_CLS_THRES``, ``MEMORY_LEN``, ``TEMPORAL_SCORE_TYPE``, for the association stage
            to map.
        weights: ``MODEL.WEIGHTS`` as written in the YAML ("" if absent).
    """

    detector: DetectorConfig
    idol: dict[str, Any] = field(default_factory=dict)
    weights: str = ""


def load_tracker_yaml(path: str | Path) -> YamlTrackerConfig:
    """Parse a detectron2-style IDOL YAML file (following ``_BASE_``) into a
    ``YamlTrackerConfig``."""
    return tracker_config_from_dict(load_yaml_with_base(path))


def load_yaml_with_base(path: str | Path) -> dict[str, Any]:
    """The nested dict of a detectron2-style YAML file with its ``_BASE_`` chain merged in (the
    child overrides the base)."""
    return _load_with_base(Path(path), seen=())


def parse_tracker_yaml(text: str) -> YamlTrackerConfig:
    """Parse YAML text (e.g. a full detectron2 cfg dump); ``_BASE_`` is not allowed here (no file to
    anchor it)."""
    data = yaml_mapping(text, "<text>")
    if "_BASE_" in data:
        raise InputError(
            "parse_tracker_yaml got a config with _BASE_; use load_tracker_yaml(path) for those"
        )
    return tracker_config_from_dict(data)


def tracker_config_from_dict(cfg: dict[str, Any]) -> YamlTrackerConfig:
    """Map a nested detectron2 cfg dict (upper-case keys) to ``YamlTrackerConfig``; see module
    docstring."""
    _check_supported(cfg)
    idol = dict(IDOL_DEFAULTS)
    idol.update({k: decode_yacs_value(v) for k, v in _lookup(cfg, "MODEL.IDOL", {}).items()})
    kwargs: dict[str, Any] = {
        name: _lookup(cfg, f"MODEL.RESNETS.{key}") for name, key in _RESNET_FIELDS.items()
    }
    kwargs.update({name: idol[key] for name, key in _IDOL_FIELDS.items()})
    kwargs["pixel_mean"] = tuple(_lookup(cfg, "MODEL.PIXEL_MEAN"))
    kwargs["pixel_std"] = tuple(_lookup(cfg, "MODEL.PIXEL_STD"))
    kwargs["min_size_test"] = _lookup(cfg, "INPUT.MIN_SIZE_TEST")
    kwargs["max_size_test"] = _lookup(cfg, "INPUT.MAX_SIZE_TEST")
    weights = _lookup(cfg, "MODEL.WEIGHTS", "")
    return YamlTrackerConfig(
        detector=DetectorConfig(**kwargs), idol=idol, weights=str(weights or "")
    )


def _check_supported(cfg: dict[str, Any]) -> None:
    expected = {
        "MODEL.META_ARCHITECTURE": ("IDOL",),
        "MODEL.BACKBONE.NAME": ("build_resnet_backbone",),
        "INPUT.FORMAT": ("RGB",),
        "MODEL.RESNETS.NORM": ("FrozenBN", "BN", "SyncBN"),
    }
    for key, allowed in expected.items():
        value = _lookup(cfg, key)
        if value not in allowed:
            raise InputError(
                f"{key} must be one of {allowed} for the plain-PyTorch IDOL detector; "
                f"got {value!r}. "
                "Only the ResNet (FrozenBN) IDOL configs with RGB input are supported."
            )
    if any(_lookup(cfg, "MODEL.RESNETS.DEFORM_ON_PER_STAGE")):
        raise InputError(
            "MODEL.RESNETS.DEFORM_ON_PER_STAGE must be all False; deformable convs are not "
            "supported"
        )


def _lookup(cfg: dict[str, Any], dotted: str, default: Any = None) -> Any:
    node: Any = cfg
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return D2_DEFAULTS.get(dotted, default)
        node = node[part]
    return decode_yacs_value(node)


def decode_yacs_value(value: Any) -> Any:
    """yacs-style literal decoding: ``"(8500,)"`` -> ``(8500,)``; other strings stay strings."""
    if isinstance(value, str):
        try:
            return ast.literal_eval(value)
        except (ValueError, SyntaxError):
            return value
    return value


def yaml_mapping(text: str, origin: str) -> dict[str, Any]:
    """The top-level mapping of YAML ``text`` (``{}`` when empty); ``origin`` names it in errors.

    Raises:
        ValueError: not valid YAML (with the line and column), or not a mapping at the top level.
    """
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = "" if mark is None else f" at line {mark.line + 1}, column {mark.column + 1}"
        problem = getattr(err, "problem", None) or " ".join(str(err).split())
        raise InputError(f"{origin} is not valid YAML ({problem}{where})") from err
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise InputError(
            f"{origin}: expected a YAML mapping at the top level; got {type(data).__name__}"
        )
    return data


# what an IDOL config file is expected to be (the end of the messages about one)
EXPECTED_YAML = "expected a detectron2-style IDOL YAML file (e.g. the release's configs/*.yaml)"


def _load_with_base(path: Path, seen: tuple[Path, ...]) -> dict[str, Any]:
    path = path.expanduser().resolve()
    if path in seen:
        raise InputError(f"_BASE_ cycle in YAML configs: {' -> '.join(map(str, (*seen, path)))}")
    if not path.is_file():
        raise MissingInputError(f"IDOL config not found: {path}; {EXPECTED_YAML}")
    data = yaml_mapping(_read_text(path), str(path))
    base = data.pop("_BASE_", None)
    if base is None:
        return data
    base_path = Path(str(base)).expanduser()
    if not base_path.is_absolute():
        base_path = path.parent / base_path
    if not base_path.is_file():
        raise MissingInputError(
            f"{path} names _BASE_: {base}, but there is no file at {base_path.resolve()}; put it there or fix "
            "the _BASE_ line"
        )
    return _merge(_load_with_base(base_path, (*seen, path)), data)


def _read_text(path: Path) -> str:
    """``path``'s text (UTF-8); ``ValueError`` naming it for a binary file (a checkpoint given as the YAML)."""
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise InputError(
            f"{path} is not a text YAML file (byte {err.start} is not UTF-8 text); {EXPECTED_YAML}"
        ) from None


def _merge(base: dict[str, Any], child: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in child.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out
