"""Tiny YouTube-VIS splits on disk for the ytvis-run tests (``moving_shapes`` clips, no dataset needed)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from uvosam.classes import dataset_class_names
from uvosam.testing import moving_shapes
from uvosam.tracker.session import IDOLTracker, track_video
from uvosam.tracker.trajectories import Trajectory

YTVIS19 = dataset_class_names("ytvis2019")
YTVIS21 = dataset_class_names("ytvis2021")
VIDEOS = ((7, 4), (9, 3))  # (video id, number of frames) of the split ytvis_root writes


def categories(names: Sequence[str], ids: Sequence[int] | None = None) -> list[dict]:
    """``categories`` entries of an annotation file: ``names`` with ``ids`` (default 1, 2, ...)."""
    ids = range(1, len(names) + 1) if ids is None else ids
    return [{"id": cid, "name": name, "supercategory": "object"} for cid, name in zip(ids, names)]


def ytvis_root(tmp_path: Path, cats: list[dict] | None = None, layout: str = "2019") -> Path:
    """Two videos (ids 7 and 9: 4 and 3 frames of 40x56) of a ``valid`` split in YouTube-VIS 2019's layout
    (``valid.json``) or 2021's (``valid/instances.json``), with ``cats`` (default: 2019's, ids 1..40)."""
    root = tmp_path / "ytvis"
    videos = []
    for vid, n in VIDEOS:
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


def tracked_videos(tracker: IDOLTracker, root: Path) -> list[tuple[int, Trajectory]]:
    """(video id, trajectory) of each video of ``ytvis_root``'s split, in order, as ``tracker`` tracks its JPEGs
    (``track_video``): what a run of that split must report."""
    out = []
    for vid, n in VIDEOS:
        folder = root / "valid" / "JPEGImages" / f"vid{vid}"
        frames = [np.array(Image.open(folder / f"{i * 5:05d}.jpg")) for i in range(n)]
        out += [(vid, t) for t in track_video(tracker, frames, height=40, width=56)]
    return out
