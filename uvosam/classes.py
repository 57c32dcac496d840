"""Class names of the datasets behind the released tracker checkpoints (shipped in ``uvosam/data``)."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

from uvosam.errors import InputError
from uvosam.weight_table import lookup

_DATA = Path(__file__).with_name("data") / "class_names.json"

PRESET_DATASETS = {
    "idol-ytvis19-r50": "ytvis2019",
    "idol-ytvis21-r50": "ytvis2021",
    "idol-ovis-r50": "ovis",
    "idol-coco-r50": "coco",
    "uvosam-davis-r50": "uvosam",
}


@cache
def dataset_class_names(dataset: str) -> tuple[str, ...]:
    """Names in contiguous-index order (``category_id = index + 1``) of ``ytvis2019``, ``ytvis2021``, ``ovis``,
    ``coco`` or ``uvosam`` (the release's single class, ``"object"``)."""
    table = json.loads(_DATA.read_text(encoding="utf-8"))
    if dataset not in table or dataset.startswith("_"):
        known = sorted(k for k in table if not k.startswith("_"))
        raise InputError(f"unknown dataset {dataset!r} for class names; known: {known}")
    return tuple(table[dataset])


def class_names_for(weights: str, num_classes: int) -> tuple[str, ...]:
    """Class names for a tracker checkpoint: the preset's dataset when the count fits (a preset's name, or a path to
    a file named as its released file: ``/data/YTVIS19_R50_502AP.pth`` is idol-ytvis19-r50's), else a dataset with
    that many classes when unambiguous (25 -> OVIS, 80 -> COCO, 1 -> "object"), else ``class_1..class_K``."""
    spec, _ = lookup(weights)
    dataset = None if spec is None else PRESET_DATASETS.get(spec.name)
    if dataset is not None and len(dataset_class_names(dataset)) == num_classes:
        return dataset_class_names(dataset)
    by_count = {1: "uvosam", 25: "ovis", 80: "coco"}
    if num_classes in by_count:
        return dataset_class_names(by_count[num_classes])
    return tuple(f"class_{i + 1}" for i in range(num_classes))
