"""On-disk cache of a video's results, to re-render and re-export a subset of tracks without re-running models.

Per frame: one compressed ``.npz`` (ids, boxes, scores, labels, bit-packed masks) and the frame as a JPEG (quality
95), so memory stays flat in video length both when writing and when replaying. A cache belongs to one video of one
session; the app deletes its folder with the session.

Its writer marks it whole when done (``MaskCache.finish``: the number of frames, written last), so that a cache a run
left behind when it was killed mid-video is not taken for the whole video (``MaskCache.finished``). Its ``meta.json``
says which layout it has (``CACHE_FORMAT``): a cache of another one is refused, not half read.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import shutil
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
from PIL import Image

from uvosam import atomic_files
from uvosam.errors import InputError
from uvosam.json_files import read_json
from uvosam.types import FrameResult, select_tracks

_META = "meta.json"
# the arrays of a frame's .npz (``MaskCache.append``)
_ARRAYS = (
    "frame_index",
    "track_ids",
    "boxes_xyxy",
    "scores",
    "labels",
    "mask_scores",
    "masks_packed",
)
_JPEG_QUALITY = 95

# what to do about a cache that cannot be read (the end of the messages that refuse one)
CACHE_ON = "`uvosam segment ... --cache`; Python: JobOptions(cache=True)"
REMAKE_CACHE = f"make the run again with its cache on ({CACHE_ON})"

CACHE_FORMAT = 1
"""The layout of a cache's files and ``meta.json``, the run's part (``job_plan.cache_meta``) too. A cache of another
number (or none: a development build's) is refused when opened; raise it with any change that a reader of the last
one would misread."""


@dataclass(frozen=True)
class CacheInfo:
    """What ``meta.json`` records.

    Attributes:
        height, width: frame size of every cached frame (None before the first frame).
        meta: free JSON-able data from the caller (e.g. video name, class names, fps).
        num_frames: how many frames its writer stored, once it finished (``MaskCache.finish``); None until then.
        cache_format: the cache's layout, ``CACHE_FORMAT``.
    """

    height: int | None
    width: int | None
    meta: dict[str, Any]
    num_frames: int | None = None
    cache_format: int = CACHE_FORMAT


class MaskCache:
    """Per-video folder of per-frame results.

    Args:
        root: the folder (created). An existing cache there is re-opened (its ``meta.json`` wins; see ``has_cache``
            to open only an existing one).
        meta: extra JSON-able data stored alongside (read back as ``info.meta``).

    Raises:
        ValueError: the cache at ``root`` has another layout than ``CACHE_FORMAT`` (another version of uvosam wrote
            it); the message says to make the run again.
    """

    def __init__(self, root: str | Path, *, meta: dict[str, Any] | None = None) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        meta_path = self.root / _META
        if meta_path.exists():
            data = read_json(meta_path, f"the mask cache is damaged; {REMAKE_CACHE}")
            _check_format(self.root, data)
            self.info = CacheInfo(**data)
        else:
            self.info = CacheInfo(height=None, width=None, meta=dict(meta or {}))
            self._write_info()

    def _write_info(self) -> None:
        atomic_files.write_text(self.root / _META, json.dumps(asdict(self.info)), encoding="utf-8")

    def _path(self, frame_index: int) -> Path:
        return self.root / f"frame_{frame_index:07d}.npz"

    def append(self, result: FrameResult) -> None:
        """Store one frame (replacing an earlier copy of the same ``frame_index``)."""
        height, width = result.image.shape[:2]
        if self.info.height is None:
            self.info = replace(self.info, height=height, width=width)
            self._write_info()
        elif (height, width) != (self.info.height, self.info.width):
            raise ValueError(
                f"MaskCache.append: frame {result.frame_index} is {height}x{width}, the cache holds "
                f"{self.info.height}x{self.info.width} frames; use one cache per video."
            )
        self._write_image(result.frame_index, result.image)
        arrays = {
            "frame_index": np.int64(result.frame_index),
            "track_ids": np.asarray(result.track_ids, np.int64),
            "boxes_xyxy": np.asarray(result.boxes_xyxy, np.float32),
            "scores": np.asarray(result.scores, np.float32),
            "labels": np.asarray(result.labels, np.int64),
            "mask_scores": np.asarray(result.mask_scores, np.float32),
            "masks_packed": np.packbits(result.masks.astype(bool, copy=False), axis=None),
        }
        buffer = io.BytesIO()
        np.savez_compressed(buffer, **arrays)
        atomic_files.write_bytes(self._path(result.frame_index), buffer.getvalue())

    def _image_path(self, frame_index: int) -> Path:
        return self.root / f"frame_{frame_index:07d}.jpg"

    def _write_image(self, frame_index: int, image: np.ndarray) -> None:
        """The frame as a JPEG beside the .npz (written first: a frame counts once its .npz exists)."""
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, format="JPEG", quality=_JPEG_QUALITY, subsampling=0)
        atomic_files.write_bytes(self._image_path(frame_index), buffer.getvalue())

    def frame_indices(self) -> list[int]:
        """Cached frame indices, ascending."""
        return sorted(int(p.stem.split("_")[1]) for p in self.root.glob("frame_*.npz"))

    def __len__(self) -> int:
        return len(self.frame_indices())

    def finish(self, num_frames: int) -> None:
        """Mark the cache whole: its writer stored ``num_frames`` frames and is done (call it last)."""
        self.info = replace(self.info, num_frames=int(num_frames))
        self._write_info()

    @property
    def finished(self) -> bool:
        """Whether its writer marked it whole (``finish``) and all those frames are here: False for a cache whose
        run was stopped, failed or killed mid-video."""
        return self.info.num_frames is not None and len(self) == self.info.num_frames

    def track_labels(self) -> dict[int, int]:
        """Every cached track id -> its class index in the first frame it appears in (reads ids and labels only)."""
        labels: dict[int, int] = {}
        for _, track_ids, frame_labels in self.iter_track_ids():
            for track_id, label in zip(track_ids, frame_labels):
                labels.setdefault(track_id, label)
        return labels

    def iter_track_ids(self) -> Iterator[tuple[int, list[int], list[int]]]:
        """Per cached frame in order: ``(frame_index, track_ids, labels)`` (reads ids and labels only)."""
        for frame_index in self.frame_indices():
            path = self._path(frame_index)
            with self._reading(path), np.load(path) as data:
                track_ids, labels = data["track_ids"].tolist(), data["labels"].tolist()
            yield frame_index, track_ids, labels

    def load(self, frame_index: int) -> FrameResult:
        """One cached frame.

        Raises:
            ValueError: its files are damaged (cut short, empty, not what the cache writes): ``damaged``.
        """
        path = self._path(frame_index)
        with self._reading(path), np.load(path) as data:
            arrays = {name: data[name] for name in _ARRAYS}
            shape = (len(arrays["track_ids"]), self.info.height, self.info.width)
            packed = arrays.pop("masks_packed")
            masks = np.unpackbits(packed, count=int(np.prod(shape))).reshape(shape)
        return FrameResult(
            frame_index=int(arrays.pop("frame_index")),
            image=self._read_image(frame_index),
            masks=masks.astype(bool),
            **arrays,
        )

    def _read_image(self, frame_index: int) -> np.ndarray:
        path = self._image_path(frame_index)
        with self._reading(path), Image.open(path) as image:
            return np.asarray(image.convert("RGB")).copy()

    @contextlib.contextmanager
    def _reading(self, path: Path) -> Iterator[None]:
        """Raise what a damaged file of the cache raises while it is read (a truncated or empty .npz or JPEG, an
        array missing) as ``damaged``'s ``ValueError``, which names the file; a missing permission is raised as
        it is."""
        try:
            yield
        except PermissionError:
            raise
        # BadZipFile, EOFError: a cut or empty .npz; OSError: PIL's "image file is truncated", a file gone
        except (zipfile.BadZipFile, EOFError, KeyError, ValueError, zlib.error, OSError) as err:
            # numpy reads a file that is no .npz as a pickle, and refuses it advising allow_pickle=True
            said = "it is not an .npz of arrays" if "allow_pickle" in str(err) else str(err)
            damaged(self.root, f"{path.name} cannot be read: {said}")

    def iter_results(self, *, keep_ids: set[int] | None = None) -> Iterator[FrameResult]:
        """Replay the cached frames in order, one at a time; ``keep_ids``: yield only these track ids (None: all)."""
        for frame_index in self.frame_indices():
            result = self.load(frame_index)
            yield result if keep_ids is None else select_tracks(result, keep_ids)

    def clear(self) -> None:
        """Delete the cache folder."""
        shutil.rmtree(self.root, ignore_errors=True)


def _check_format(root: Path, data: object) -> None:
    """Refuse the ``meta.json`` ``data`` of a cache of another layout than ``CACHE_FORMAT``, or one that is not a
    whole ``CacheInfo`` (a key missing or unknown: damaged)."""
    if not isinstance(data, dict):
        damaged(root, f"meta.json holds a JSON {type(data).__name__}, not an object")
    found = data.get("cache_format")
    if type(found) is not int or found != CACHE_FORMAT:
        what = (
            "no format number (a development build wrote it)"
            if found is None
            else f"format {found!r}"
        )
        raise InputError(
            f"the mask cache at {root} has {what}; this version of uvosam reads format {CACHE_FORMAT}. Make the "
            f"run again with this version, with its cache on ({CACHE_ON})."
        )
    fields = [f.name for f in dataclasses.fields(CacheInfo)]
    required = [f.name for f in dataclasses.fields(CacheInfo) if f.default is dataclasses.MISSING]
    lacks = [key for key in required if key not in data]
    if lacks:
        damaged(root, f"meta.json lacks {', '.join(lacks)}")
    unknown = sorted(key for key in data if key not in fields)
    if unknown:
        damaged(root, f"meta.json has keys a mask cache does not have: {', '.join(unknown)}")
    if not isinstance(data["meta"], dict):
        damaged(root, f"meta.json's meta is a JSON {type(data['meta']).__name__}, not an object")


def damaged(root: Path, why: str) -> NoReturn:
    """Raise the ``ValueError`` of a mask cache at ``root`` that cannot be read whole: "... (``why``); make the
    run again ..."."""
    raise InputError(f"the mask cache at {root} is incomplete or damaged ({why}); {REMAKE_CACHE}")


def has_cache(root: str | Path) -> bool:
    """Whether ``root`` holds a mask cache (finished or not); creates nothing."""
    return (Path(root) / _META).is_file()
