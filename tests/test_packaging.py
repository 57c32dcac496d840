"""What an installed package (a wheel, no clone) gets: its description on the package index, and the files its
messages name."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest
import torch

from uvosam import weight_table
from uvosam.errors import WeightsError
from uvosam.tracker.checkpoint import read_checkpoint
from uvosam.train import TRAIN_README
from uvosam.train.datasets import check_data_spec, load_folder, parse_data_spec
from uvosam.weight_loading import load_checkpoint

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def test_the_package_description_has_no_front_matter_and_no_relative_links():
    """README.md opens with the Space's YAML front matter and links the repository's files: on the package index
    that is a rule, a paragraph of YAML and broken links. The package has its own description."""
    readme = PYPROJECT["project"]["readme"]
    text = (ROOT / readme).read_text(encoding="utf-8")
    assert not text.startswith("---"), readme
    targets = re.findall(r"\]\(([^)\s]*)", text)  # [text](target), ![alt](target)
    targets += re.findall(r"^\[[^\]]+\]:\s*(\S+)", text, re.MULTILINE)  # [label]: target
    targets += re.findall(r"""(?:href|src)=["']([^"']*)""", text)
    assert [t for t in targets if not re.match(r"(https?|mailto):", t)] == [], readme


@pytest.mark.parametrize(
    ("path", "package"),
    [(weight_table.TABLE_DOC, "uvosam"), (TRAIN_README, "uvosam.train")],
    ids=["weights table", "training README"],
)
def test_the_files_messages_name_are_package_data(path, package):
    package_dir = ROOT.joinpath(*package.split("."))
    assert path.is_file() and path.parent == package_dir
    assert path.name in PYPROJECT["tool"]["setuptools"]["package-data"][package]


def test_weight_messages_name_the_shipped_weights_table(tmp_path):
    with pytest.raises(FileNotFoundError) as missing:
        read_checkpoint(tmp_path / "idol.pth")
    assert f"(see {weight_table.TABLE_DOC} for downloads)" in str(missing.value)
    code = tmp_path / "code.pth"
    torch.save({"args": argparse.Namespace(lr=1.0)}, code)  # an object a weights-only load refuses
    with pytest.raises(WeightsError) as refused:
        load_checkpoint(code)
    assert f"(see {weight_table.TABLE_DOC})" in str(refused.value)


def test_training_data_messages_name_the_shipped_training_readme(tmp_path):
    with pytest.raises(FileNotFoundError) as missing:
        check_data_spec(parse_data_spec(f"folder:{tmp_path / 'nothing'}"))
    assert str(missing.value).endswith(f"layouts: {TRAIN_README}")
    with pytest.raises(FileNotFoundError) as empty:
        load_folder(tmp_path)
    assert f"See {TRAIN_README} for the layout." in str(empty.value)
