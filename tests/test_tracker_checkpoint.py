"""Loading detectron2-format IDOL checkpoints: key map coverage, skipped keys, shape/missing-key
errors, unsafe or broken files."""

from __future__ import annotations

import dataclasses
import json
import logging
import re
from pathlib import Path

import pytest
import torch

from uvosam.errors import MissingWeightsError, WeightsError
from uvosam.tracker.checkpoint import (
    infer_num_classes,
    load_idol_checkpoint,
    load_idol_detector,
    read_state_dict,
    remap_idol_state_dict,
)
from uvosam.tracker.config import DetectorConfig
from uvosam.tracker.detector import IDOLDetector
from uvosam.tracker.yaml_config import parse_tracker_yaml

KEYS_FILE = (
    Path(__file__).resolve().parents[1].parent / "shared" / "design" / "idol_state_dict_keys.txt"
)


def _keys_file_state_dict() -> dict[str, torch.Tensor]:
    """The 603 entries of the real davis_r50 model as meta tensors (no memory)."""
    if not KEYS_FILE.is_file():
        pytest.fail(f"expected the key list at {KEYS_FILE}")
    out = {}
    for line in KEYS_FILE.read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        key, shape = line.split("\t")[:2]
        out[key] = torch.empty(json.loads(shape), device="meta")
    return out


def test_every_released_key_maps_onto_davis_r50():
    sd = _keys_file_state_dict()
    assert len(sd) == 603
    with torch.device("meta"):
        model = IDOLDetector(DetectorConfig.davis_r50())
    expected = {k: v.shape for k, v in model.state_dict().items()}
    ours, report = remap_idol_state_dict(sd)
    assert {k: v.shape for k, v in ours.items()} == expected
    assert len(report.alias_skipped) == 36 and report.mapped == 567
    assert not report.ignored and not report.mask_head_skipped and not report.alias_mismatch
    load_idol_checkpoint(model, sd)  # no missing / extra / shape errors


@pytest.fixture(scope="module")
def small_cfg(fixtures_dir) -> DetectorConfig:
    text = json.loads((fixtures_dir / "idol_small_seed0" / "config.json").read_text())[
        "detectron2_cfg_yaml"
    ]
    return parse_tracker_yaml(text).detector


@pytest.fixture()
def small_sd(fixtures_dir) -> dict[str, torch.Tensor]:
    return dict(
        torch.load(fixtures_dir / "idol_small_seed0" / "weights.pth", weights_only=True)["model"]
    )


def test_mask_head_keys_skipped_with_one_summary(small_cfg, small_sd, caplog):
    small_sd["detr.controller.layers.0.weight"] = torch.zeros(64, 64)
    small_sd["detr.mask_head.lay1.weight"] = torch.zeros(8, 64, 3, 3)
    model = IDOLDetector(small_cfg)
    with caplog.at_level(logging.INFO, logger="uvosam.tracker.checkpoint"):
        report = load_idol_checkpoint(model, small_sd)
    assert sorted(report.mask_head_skipped) == [
        "detr.controller.layers.0.weight",
        "detr.mask_head.lay1.weight",
    ]
    records = [r for r in caplog.records if r.name == "uvosam.tracker.checkpoint"]
    assert len(records) == 1 and "2 mask-head keys skipped" in records[0].getMessage()
    torch.testing.assert_close(
        model.transformer.level_embed.detach(), small_sd["detr.detr.transformer.level_embed"]
    )


def test_wrong_shape_names_key_and_both_shapes(small_cfg, small_sd):
    small_sd["detr.detr.input_proj.0.0.weight"] = torch.zeros(64, 128, 3, 3)
    with pytest.raises(
        WeightsError, match=r"input_proj\.0\.0\.weight.*\(64, 128, 3, 3\).*\(64, 128, 1, 1\)"
    ):
        load_idol_checkpoint(IDOLDetector(small_cfg), small_sd)


def test_class_count_mismatch_points_to_infer_num_classes(small_cfg, small_sd, tmp_path):
    for i in range(small_cfg.dec_layers):
        small_sd[f"detr.detr.class_embed.{i}.weight"] = torch.randn(40, 64)
        small_sd[f"detr.detr.class_embed.{i}.bias"] = torch.randn(40)
    assert infer_num_classes(small_sd) == 40
    with pytest.raises(WeightsError) as err:
        load_idol_checkpoint(IDOLDetector(small_cfg), small_sd)
    # the library's hints (no command reaches this with --config-yaml: load_idol_detector counts the classes)
    assert re.search(
        r"class_embed\.0\.weight: the checkpoint has 40 classes, the model \d+ \(checkpoint shape \(40, 64\) "
        r"vs model \(\d+, 64\)\)\. Load it with load_idol_detector, which counts its classes, or build the model "
        r"with DetectorConfig\(num_classes=infer_num_classes\(state_dict\)\)\.$",
        str(err.value),
    ), str(err.value)
    fresh = IDOLDetector(small_cfg)
    before = fresh.class_embed[0].weight.detach().clone()
    load_idol_checkpoint(fresh, small_sd, on_class_mismatch="skip")
    torch.testing.assert_close(fresh.class_embed[0].weight.detach(), before)
    path = tmp_path / "ytvis_like.pth"
    torch.save({"model": small_sd}, path)
    model = load_idol_detector(path, small_cfg)
    assert model.cfg.num_classes == 40 and not model.training
    torch.testing.assert_close(
        model.class_embed[1].bias.detach(), small_sd["detr.detr.class_embed.1.bias"]
    )


def test_missing_and_extra_keys_are_errors(small_cfg, small_sd):
    missing = dict(small_sd)
    del missing["detr.detr.query_embed.weight"]
    with pytest.raises(WeightsError, match=r"lacks 1 model tensors: query_embed\.weight"):
        load_idol_checkpoint(IDOLDetector(small_cfg), missing)
    small_sd["detr.detr.transformer.encoder.layers.5.norm1.weight"] = torch.ones(64)
    with pytest.raises(WeightsError, match=r"encoder\.layers\.5\.norm1\.weight"):
        load_idol_checkpoint(IDOLDetector(small_cfg), small_sd)


def test_an_architecture_mismatch_names_the_file_and_says_to_pass_its_yaml(
    small_cfg, small_sd, tmp_path
):
    """A checkpoint of hidden_dim 64 into a model of 32 (a YAML not the checkpoint's own, or none):
    the error names the file and the flag / argument that fix it."""
    path = tmp_path / "my_tracker.pth"
    torch.save({"model": small_sd}, path)
    narrower = dataclasses.replace(small_cfg, hidden_dim=32)
    yaml_hint = (
        r"Give the checkpoint's own detectron2 YAML with --config-yaml \(Python: tracker_yaml= in "
        r"UVOSAM\.from_pretrained, config_yaml= in load_tracker\); without one the model is built as the "
        r"uvosam-davis-r50 preset's\."
    )
    with pytest.raises(WeightsError) as caught:
        load_idol_detector(path, narrower)
    message = str(caught.value)
    assert message.startswith(f"IDOL checkpoint {path}: ")
    assert re.search(r"checkpoint shape \(\d+, 64\) vs model \(\d+, 32\)", message)
    assert re.search(yaml_hint, message)
    # a state dict read elsewhere is named by source=; a path names itself
    with pytest.raises(
        WeightsError,
        match=rf"IDOL checkpoint {re.escape(str(path))} has \d+ tensors the model does not",
    ):
        load_idol_checkpoint(IDOLDetector(dataclasses.replace(small_cfg, dec_layers=1)), path)
    with pytest.raises(WeightsError, match=rf"IDOL checkpoint last\.pth lacks .*{yaml_hint}"):
        load_idol_checkpoint(
            IDOLDetector(dataclasses.replace(small_cfg, dec_layers=3)), small_sd, source="last.pth"
        )


def test_alias_fallback_module_prefix_and_native_names(small_cfg, small_sd, tmp_path):
    primary = "detr.detr.bbox_embed.1.layers.2.bias"
    value = small_sd[primary].clone()
    wrapped = {
        "module." + k: v for k, v in small_sd.items() if not k.startswith("detr.detr.bbox_embed.")
    }
    path = tmp_path / "ddp.pth"
    torch.save({"model": wrapped, "iteration": torch.tensor(5)}, path)
    model = IDOLDetector(small_cfg)
    report = load_idol_checkpoint(model, path)
    assert report.mapped == len(wrapped) and len(report.alias_skipped) == 12
    torch.testing.assert_close(model.bbox_embed[1].layers[2].bias.detach(), value)
    again = IDOLDetector(small_cfg)
    load_idol_checkpoint(again, model.state_dict())
    torch.testing.assert_close(
        again.bbox_embed[1].layers[2].bias, model.bbox_embed[1].layers[2].bias
    )


def test_alias_disagreement_uses_primary(small_cfg, small_sd):
    alias = "detr.detr.transformer.decoder.bbox_embed.0.layers.0.bias"
    small_sd[alias] = small_sd[alias] + 1.0  # break the aliasing
    _, report = remap_idol_state_dict(small_sd)
    assert report.alias_mismatch == [alias]
    model = IDOLDetector(small_cfg)
    load_idol_checkpoint(model, small_sd)
    torch.testing.assert_close(
        model.bbox_embed[0].layers[0].bias.detach(),
        small_sd["detr.detr.bbox_embed.0.layers.0.bias"],
    )


class _Payload:
    """Unpickling this would create ``marker`` (it must never run)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_unsafe_or_broken_files_raise_weights_error(fixtures_dir, tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pth"
    torch.save({"model": _Payload(marker)}, evil)
    with pytest.raises(WeightsError, match="evil.pth"):
        read_state_dict(evil)
    assert not marker.exists()
    data = (fixtures_dir / "idol_small_seed0" / "weights.pth").read_bytes()
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(WeightsError, match="truncated or corrupt"):  # not just its name
        read_state_dict(truncated)
    not_tensors = tmp_path / "list.pth"
    torch.save([1, 2], not_tensors)
    with pytest.raises(WeightsError, match="expected a dict"):
        read_state_dict(not_tensors)
    with pytest.raises(MissingWeightsError, match="nope.pth"):
        read_state_dict(tmp_path / "nope.pth")
