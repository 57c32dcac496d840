"""DetectorConfig validation and the detectron2-style YAML reader."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from uvosam.tracker.config import DetectorConfig
from uvosam.tracker.yaml_config import load_tracker_yaml, parse_tracker_yaml

# The inference-relevant part of the release's prompt_networks/IDOL/configs/davis_r50.yaml (training
# keys trimmed).
DAVIS_R50_YAML = """
MODEL:
  META_ARCHITECTURE: "IDOL"
  WEIGHTS: "ckpt/davis.pth"
  PIXEL_MEAN: [123.675, 116.280, 103.530]
  PIXEL_STD: [58.395, 57.120, 57.375]
  MASK_ON: True
  RESNETS:
    DEPTH: 50
    STRIDE_IN_1X1: False
    OUT_FEATURES: ["res2", "res3", "res4", "res5"]
  IDOL:
    NUM_CLASSES: 1
    MULTI_CLS_ON: True
SOLVER:
  STEPS: (8500,)
INPUT:
  MIN_SIZE_TRAIN: (392, 416, 448, 480, 512, 544, 576, 608, 640)
  MIN_SIZE_TEST: 480
  FORMAT: "RGB"
"""


def test_davis_r50_yaml_equals_preset():
    parsed = parse_tracker_yaml(DAVIS_R50_YAML)
    assert parsed.detector == DetectorConfig.davis_r50()
    assert parsed.weights == "ckpt/davis.pth"
    assert parsed.idol["INFERENCE_SELECT_THRES"] == 0.1 and parsed.idol["MEMORY_LEN"] == 3
    assert parsed.idol["APPLY_CLS_THRES"] == 0.05 and parsed.idol["TEMPORAL_SCORE_TYPE"] == "mean"


def test_fixture_cfg_dump_reproduces_architecture(fixtures_dir):
    meta = json.loads((fixtures_dir / "idol_small_seed0" / "config.json").read_text())
    arch = meta["architecture"]
    cfg = parse_tracker_yaml(meta["detectron2_cfg_yaml"]).detector
    bb, tr = arch["backbone"], arch["transformer"]
    assert (cfg.depth, cfg.stem_out_channels, cfg.res2_out_channels) == (
        bb["depth"],
        bb["stem_out_channels"],
        bb["res2_out_channels"],
    )
    assert (cfg.width_per_group, cfg.num_groups, cfg.stride_in_1x1, cfg.res5_dilation) == (
        bb["width_per_group"],
        bb["num_groups"],
        bb["stride_in_1x1"],
        bb["res5_dilation"],
    )
    assert (cfg.hidden_dim, cfg.nheads, cfg.enc_layers, cfg.dec_layers) == (
        tr["hidden_dim"],
        tr["nheads"],
        tr["enc_layers"],
        tr["dec_layers"],
    )
    assert (cfg.dim_feedforward, cfg.num_feature_levels, cfg.enc_n_points, cfg.dec_n_points) == (
        tr["dim_feedforward"],
        tr["num_feature_levels"],
        tr["enc_n_points"],
        tr["dec_n_points"],
    )
    assert (
        cfg.num_queries == tr["num_object_queries"]
        and cfg.num_classes == arch["heads"]["num_classes"]
    )
    assert list(cfg.pixel_mean) == arch["pixel_mean"] and list(cfg.pixel_std) == arch["pixel_std"]
    assert (cfg.min_size_test, cfg.size_divisibility) == (100, tr["size_divisibility"])


def test_base_is_followed_relative_and_defaults_are_detectron2s(tmp_path):
    (tmp_path / "base.yaml").write_text(
        "MODEL:\n  META_ARCHITECTURE: IDOL\n  IDOL:\n    HIDDEN_DIM: 128\n    NUM_CLASSES: 40\n"
        "  PIXEL_MEAN: [1.0, 2.0, 3.0]\nINPUT:\n  FORMAT: RGB\n"
    )
    (tmp_path / "sub").mkdir()
    child = tmp_path / "sub" / "child.yaml"
    child.write_text(
        "_BASE_: ../base.yaml\nMODEL:\n  IDOL:\n    NUM_CLASSES: 25\n  UNKNOWN_KEY: 3\n"
    )
    parsed = load_tracker_yaml(child)
    cfg = parsed.detector
    assert (cfg.hidden_dim, cfg.num_classes, cfg.pixel_mean) == (128, 25, (1.0, 2.0, 3.0))
    # absent keys take detectron2 / add_idol_config defaults, not the davis preset
    assert (
        cfg.min_size_test == 800 and cfg.stride_in_1x1 is True and cfg.pixel_std == (1.0, 1.0, 1.0)
    )
    assert parsed.idol["INFERENCE_SELECT_THRES"] == 0.1 and parsed.weights == ""


def test_yaml_errors(tmp_path):
    with pytest.raises(ValueError, match="INPUT.FORMAT"):
        # detectron2 default format is BGR
        parse_tracker_yaml("MODEL:\n  META_ARCHITECTURE: IDOL\n")
    with pytest.raises(ValueError, match="META_ARCHITECTURE"):
        parse_tracker_yaml("INPUT:\n  FORMAT: RGB\n")
    with pytest.raises(ValueError, match="_BASE_"):
        parse_tracker_yaml("_BASE_: x.yaml\n")
    loop = tmp_path / "loop.yaml"
    loop.write_text("_BASE_: loop.yaml\n")
    with pytest.raises(ValueError, match="cycle"):
        load_tracker_yaml(loop)
    with pytest.raises(
        FileNotFoundError, match="missing.yaml; expected a detectron2-style IDOL YAML"
    ):
        load_tracker_yaml(tmp_path / "missing.yaml")
    # a missing _BASE_ said only "IDOL config not found: <base>": not who named it, nor what to do
    (tmp_path / "sub").mkdir()
    child = tmp_path / "sub" / "child.yaml"
    child.write_text("_BASE_: ../base_missing.yaml\n")
    with pytest.raises(FileNotFoundError) as err:
        load_tracker_yaml(child)
    assert str(err.value) == (
        f"{child} names _BASE_: ../base_missing.yaml, but there is no file at "
        f"{tmp_path / 'base_missing.yaml'}; put it there or fix the _BASE_ line"
    )
    # a binary file (a checkpoint given as the YAML) gave the bare UnicodeDecodeError text
    binary = tmp_path / "model.pth"
    binary.write_bytes(b"PK\x03\x04\x14\x00\x00\x08\xff\xfe" * 8)
    with pytest.raises(ValueError) as err:
        load_tracker_yaml(binary)
    assert not isinstance(err.value, UnicodeDecodeError)
    assert str(err.value) == (
        f"{binary} is not a text YAML file (byte 8 is not UTF-8 text); expected a detectron2-style IDOL YAML "
        "file (e.g. the release's configs/*.yaml)"
    )
    broken = tmp_path / "broken.yaml"
    broken.write_text(
        "MODEL:\n\tIDOL: 1\n"
    )  # a tab: yaml's ScannerError came out as a traceback in the CLI
    with pytest.raises(ValueError) as err:
        load_tracker_yaml(broken)
    assert str(err.value) == (
        f"{broken} is not valid YAML (found character '\\t' that cannot start any token at line 2, column 1)"
    )


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("depth", 34),
        ("hidden_dim", 48),
        ("input_proj_norm_groups", 0),
        ("input_proj_norm_groups", 24),  # 256 channels do not split into 24 groups
        ("nheads", 7),
        ("num_queries", 0),
        ("num_feature_levels", 2),
        ("res5_dilation", 3),
        ("pixel_std", (1.0, 1.0)),
        ("batch_infer_len", 2.5),
    ],
)
def test_detector_config_validation_names_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        dataclasses.replace(DetectorConfig(), **{field: value})


def test_min_size_test_0_means_no_resize_as_in_detectron2():
    """``INPUT.MIN_SIZE_TEST: 0`` is detectron2's "no resize" (``ResizeShortestEdge`` returns a no-op for 0); it was
    refused as not a positive int. Negative sizes still are, with what to set."""
    parsed = parse_tracker_yaml(DAVIS_R50_YAML.replace("MIN_SIZE_TEST: 480", "MIN_SIZE_TEST: 0"))
    assert parsed.detector.min_size_test == 0
    with pytest.raises(
        ValueError, match=r"min_size_test must be a positive int .* or 0 for no resize; got -1"
    ):
        dataclasses.replace(DetectorConfig(), min_size_test=-1)


def test_presets():
    assert DetectorConfig.davis_r50().num_queries == 300
    tiny = DetectorConfig.tiny()
    assert tiny.hidden_dim % 32 == 0 and tiny.dec_layers >= 2


@pytest.mark.parametrize(
    ("device", "expected"), [("cpu", 1), ("cuda", 10), ("cuda:1", 10), ("mps", 10)]
)
def test_detector_batches_on_gpus_and_not_on_the_cpu(device, expected):
    from uvosam.tracker.loading import default_batch_size

    assert default_batch_size(DetectorConfig.davis_r50(), torch.device(device)) == expected
    assert default_batch_size(DetectorConfig.davis_r50(), device) == expected
