"""Tiny YouTube-VIS splits on disk for the ytvis-run tests (``moving_shapes`` clips, no dataset needed)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from PIL import Image

from uvosam.classes import dataset_class_names
from uvosam.testing import moving_shapes

YTVIS19 = dataset_class_names("ytvis2019")
YTVIS21 = dataset_class_names("ytvis2021")


def categories(names: Sequence[str], ids: Sequence[int] | None = None) -> list[dict]:
    """``categories`` entries of an annotation file: ``names`` with ``ids`` (default 1, 2, ...)."""
    ids = range(1, len(names) + 1) if ids is None else ids
    return [{"id": cid, "name": name, "supercategory": "object"} for cid, name in zip(ids, names)]


def ytvis_root(tmp_path: Path, cats: list[dict] | None = None, layout: str = "2019") -> Path:
    """Two videos (ids 7 and 9: 4 and 3 frames of 40x56) of a ``valid`` split in YouTube-VIS 2019's layout
    (``valid.json``) or 2021's (``valid/instances.json``), with ``cats`` (default: 2019's, ids 1..40)."""
    root = tmp_path / "ytvis"
    videos = []
    for vid, n in ((7, 4), (9, 3)):
        clip = moving_shapes(n, height=40, width=56, seed=vid)
        folder = root / "valid" / "JPEGImages" / f"vid{vid}"
        folder.mkdir(parents=True)
        names = []
        for i, frame in enumerate(clip.frames):
            Image.fromarray(frame).save(folder / f"{i * 5:05d}.jpg")
            names.append(f"vid{vid}/{i * 5:05d}.jpg")
        videos.append({"id": vid, "file_names": names, "height": 40, "width": 56, "length": n})
    data = {"videos": videos, "categories": categories(YTVIS19) if cats is None else cats}
    meta = root / "valid.json" if layout == "2019" else root / "valid" / "instances.json"
    meta.write_text(json.dumps(data))
    return root
