"""The DAVIS annotation PNGs of an export (``davis/<video>/<frame>.png``) and the id policy behind their labels.

DAVIS id policy (the official DAVIS-2017 unsupervised scorer refuses sequences with an id > 20, and matches ids once
per sequence, so ids must be stable and contiguous):

* Every track gets a fixed *slot* = its rank in order of first appearance (1, 2, 3, ...). A track keeps its DAVIS
  label on every frame, whoever else is absent (unlike the release, whose labels shift when a track is empty).
* While a frame is written, tracks with slot <= ``max_objects`` (20) are painted with label = slot.
* If more than ``max_objects`` tracks appeared, ``ExportWriter.close()`` keeps the ``max_objects`` tracks with the
  highest mean per-frame score (ties: earlier first appearance; ``final_labels``), numbers them 1..N in order of first
  appearance and rewrites the PNGs one frame at a time (``DavisPngs.relabel``) from a per-frame slot map kept on disk
  (written only once a 21st track has appeared).
  Frames whose masks overlap (``SegmenterConfig(overlap="none")``; later rows are painted on top) also keep their
  masks on disk, so a dropped track leaves no hole in a kept track under it.
  Dropped tracks are absent from the PNGs only; cut-outs, JSON and CSV keep every track.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from uvosam import export_formats as fmt

logger = logging.getLogger(__name__)


def final_labels(records: Iterable[fmt.TrackRecord], max_objects: int) -> dict[int, int]:
    """``{track_id: DAVIS label}``: the ``max_objects`` tracks of highest mean score (ties: earlier first appearance),
    labelled 1..N in order of first appearance (``TrackRecord.slot``)."""
    kept = sorted(records, key=lambda r: (-r.score, r.slot))[:max_objects]
    kept.sort(key=lambda r: r.slot)
    return {rec.track_id: label for label, rec in enumerate(kept, start=1)}


def paint(labels: np.ndarray, mask: np.ndarray, value: int) -> None:
    """``labels[mask] = value``, in place, without branches: (H, W) integer ``labels``, (H, W) **bool** ``mask``
    (a 0/255 mask would paint nothing).

    The same for a speckled mask as for a blob (random-weight SAM's masks made the scatter 35x slower).
    """
    # all bits set on the mask (unsigned: wraps to the largest value), else 0
    select = -mask.astype(labels.dtype)
    labels ^= (labels ^ labels.dtype.type(value)) & select


class DavisPngs:
    """One video's DAVIS PNGs: written frame by frame with provisional labels (``add``), relabelled once the video is
    done if more than ``max_objects`` tracks appeared (``relabel``), under the policy in the module docstring.

    Args:
        folder: ``davis/<video>`` (created with the first frame).
        work: a scratch folder for what ``relabel`` reads back (``slots_*.npz``, ``layers_*.npz``); the caller
            deletes it.
        height, width: the frame size.
        max_objects: most labels in a PNG.
        compress_level: zlib level 0-9 of the PNGs.
        submit: runs ``fn(*args, **kwargs)`` later on another thread (``BackgroundWrites.submit``).
    """

    def __init__(
        self,
        folder: Path,
        work: Path,
        *,
        height: int,
        width: int,
        max_objects: int,
        compress_level: int,
        submit: Callable[..., None],
    ) -> None:
        self.folder, self.work = folder, work
        self.height, self.width = height, width
        self.max_objects, self.compress_level = max_objects, compress_level
        self._submit = submit
        self._overflow_from: int | None = None  # the first frame with a track of slot > max_objects

    def add(self, frame_index: int, name: str, slots: Sequence[int], masks: np.ndarray) -> None:
        """Write frame ``frame_index``'s PNG ``<name>.png``: provisional labels = slot for slots <= max_objects; a slot
        map once a track overflowed.

        Args:
            slots: the slot of each row of ``masks``.
            masks: (N, H, W) bool, painted in row order (a later row on top).
        """
        if self._overflow_from is None and any(slot > self.max_objects for slot in slots):
            self._overflow_from = frame_index
        self.folder.mkdir(parents=True, exist_ok=True)
        labels = np.zeros((self.height, self.width), np.uint8)
        slot_map = (
            np.zeros((self.height, self.width), np.int32)
            if self._overflow_from is not None
            else None
        )
        for slot, mask in zip(slots, masks):
            if slot <= self.max_objects:
                paint(labels, mask, slot)
            if slot_map is not None:
                paint(slot_map, mask, slot)
        self._submit(
            fmt.write_palette_png,
            self.folder / f"{name}.png",
            labels,
            compress_level=self.compress_level,
        )
        if slot_map is not None:
            self.work.mkdir(parents=True, exist_ok=True)
            np.savez_compressed(self.work / f"slots_{frame_index:07d}.npz", slots=slot_map)
        # every track of the frame is painted in one of them
        painted = labels if slot_map is None else slot_map
        if len(slots) > 1 and np.count_nonzero(masks) > np.count_nonzero(painted):
            self._save_layers(frame_index, slots, masks)

    def _save_layers(self, frame_index: int, slots: Sequence[int], masks: np.ndarray) -> None:
        """Slots in row order and the (N, H, W) masks of a frame whose masks overlap (for ``relabel``)."""
        self.work.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(
            self.work / f"layers_{frame_index:07d}.npz",
            slots=np.array(slots, np.int64),
            masks=np.packbits(masks, axis=None),
        )

    def relabel(
        self,
        davis_labels: Mapping[int, int],
        records: Mapping[int, fmt.TrackRecord],
        *,
        num_frames: int,
        frame_name: Callable[[int], str],
    ) -> None:
        """Rewrite the PNGs frame by frame with the final labels (only if they differ from the slots).

        Args:
            davis_labels: ``{track_id: final label}`` (``final_labels``).
            records: every track of the video by id (their slots).
            num_frames: frames written by ``add``. frame_name: file stem of frame i, as given to ``add``.
        """
        lut = np.zeros(len(records) + 1, np.uint8)
        for track_id, label in davis_labels.items():
            lut[records[track_id].slot] = label
        if np.array_equal(lut[: self.max_objects + 1], np.arange(self.max_objects + 1)):
            return
        logger.info(
            "%s: %d tracks, rewriting DAVIS PNGs with the top %d",
            self.folder.name,  # the video's name
            len(records),
            self.max_objects,
        )
        for t in range(num_frames):
            png = self.folder / f"{frame_name(t)}.png"
            layers = self.work / f"layers_{t:07d}.npz"
            if layers.exists():
                labels = self._paint_layers(layers, lut)
                fmt.write_palette_png(png, labels, compress_level=self.compress_level)
                continue
            if self._overflow_from is not None and t >= self._overflow_from:
                with np.load(self.work / f"slots_{t:07d}.npz") as data:
                    slots = data["slots"]
            else:
                with Image.open(png) as image:
                    slots = np.asarray(image)  # before the overflow, labels == slots
            fmt.write_palette_png(png, lut[slots], compress_level=self.compress_level)

    def _paint_layers(self, path: Path, lut: np.ndarray) -> np.ndarray:
        """(H, W) uint8 final labels of an overlapping frame: kept tracks in row order, dropped ones left out."""
        with np.load(path) as data:
            slots = data["slots"]
            shape = (len(slots), self.height, self.width)
            masks = (
                np.unpackbits(data["masks"], count=int(np.prod(shape))).reshape(shape).astype(bool)
            )
        labels = np.zeros((self.height, self.width), np.uint8)
        for slot, mask in zip(slots.tolist(), masks):
            if lut[slot]:
                paint(labels, mask, lut[slot])
        return labels
