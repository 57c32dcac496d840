"""On-disk cache of a video's results, to re-render and re-export a subset of tracks without re-running models.

Per frame: one compressed ``.npz`` (ids, boxes, scores, labels, bit-packed masks) and the frame as JPEG or PNG
(or nothing, when the caller can decode the video again), so memory stays flat in video length both when writing
and when replaying. A cache belongs to one video of one session; the app deletes its folder with the session.

Its writer marks it whole when done (``MaskCache.finish``: the number of frames, written last), so that a cache a run
left behind when it was killed mid-video is not taken for the whole video (``MaskCache.finished``).
"""

from __future__ import annotations

import io
import json
import shutil
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from uvosam import atomic_files
from uvosam.export import ExportWriter
from uvosam.export_root_files import ROOT_FILES
from uvosam.export_types import ExportResult
from uvosam.provenance import rerender_record
from uvosam.render import select_tracks
from uvosam.types import FrameResult

_META = "meta.json"
IMAGE_FORMATS = ("png", "jpeg", "none")


@dataclass(frozen=True)
class CacheInfo:
    """What ``meta.json`` records.

    Attributes:
        height, width: frame size of every cached frame (None before the first frame).
        image_format: "png" (lossless), "jpeg" (quality ``jpeg_quality``) or "none" (frames supplied on replay).
        meta: free JSON-able data from the caller (e.g. video name, class names, fps).
        num_frames: how many frames its writer stored, once it finished (``MaskCache.finish``); None until then.
    """

    height: int | None
    width: int | None
    image_format: str
    jpeg_quality: int
    meta: dict[str, Any]
    num_frames: int | None = None


class MaskCache:
    """Per-video folder of per-frame results.

    Args:
        root: the folder (created). An existing cache there is re-opened (its ``meta.json`` wins; see ``has_cache``
            to open only an existing one).
        image_format: how frames are kept: "png" (exact), "jpeg" (smaller, faster, lossy) or "none".
        jpeg_quality: JPEG quality 1-95.
        meta: extra JSON-able data stored alongside (read back as ``info.meta``).
    """

    def __init__(
        self,
        root: str | Path,
        *,
        image_format: str = "jpeg",
        jpeg_quality: int = 95,
        meta: dict[str, Any] | None = None,
    ) -> None:
        if image_format not in IMAGE_FORMATS:
            raise ValueError(
                f"MaskCache: image_format must be one of {IMAGE_FORMATS}, got {image_format!r}"
            )
        if not 1 <= jpeg_quality <= 95:
            raise ValueError(f"MaskCache: jpeg_quality must be in 1..95, got {jpeg_quality}")
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        meta_path = self.root / _META
        if meta_path.exists():
            data = json.loads(meta_path.read_text(encoding="utf-8"))
            # written before caches were marked finished: taken as finished, with the frames it holds
            data.setdefault("num_frames", len(self))
            self.info = CacheInfo(**data)
        else:
            self.info = CacheInfo(None, None, image_format, jpeg_quality, dict(meta or {}))
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
        suffix = ".png" if self.info.image_format == "png" else ".jpg"
        return self.root / f"frame_{frame_index:07d}{suffix}"

    def _write_image(self, frame_index: int, image: np.ndarray) -> None:
        """The encoded frame beside the .npz (written first: a frame counts once its .npz exists)."""
        if self.info.image_format == "none":
            return
        buffer = io.BytesIO()
        if self.info.image_format == "png":
            Image.fromarray(image).save(buffer, format="PNG", compress_level=1)
        else:
            Image.fromarray(image).save(
                buffer, format="JPEG", quality=self.info.jpeg_quality, subsampling=0
            )
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
        for frame_index in self.frame_indices():
            with np.load(self._path(frame_index)) as data:
                for track_id, label in zip(data["track_ids"].tolist(), data["labels"].tolist()):
                    labels.setdefault(int(track_id), int(label))
        return labels

    def load(self, frame_index: int, *, image: np.ndarray | None = None) -> FrameResult:
        """One cached frame. ``image`` (H, W, 3) uint8 replaces the stored frame (required for "none")."""
        with np.load(self._path(frame_index)) as data:
            n = len(data["track_ids"])
            shape = (n, self.info.height, self.info.width)
            masks = np.unpackbits(data["masks_packed"], count=int(np.prod(shape))).reshape(shape)
            if image is None:
                image = self._read_image(frame_index)
            return FrameResult(
                frame_index=int(data["frame_index"]),
                image=image,
                track_ids=data["track_ids"],
                boxes_xyxy=data["boxes_xyxy"],
                scores=data["scores"],
                labels=data["labels"],
                masks=masks.astype(bool),
                mask_scores=data["mask_scores"],
            )

    def _read_image(self, frame_index: int) -> np.ndarray:
        if self.info.image_format == "none":
            raise ValueError(
                f"MaskCache: frame {frame_index} was cached without its image (image_format='none'); "
                "pass the decoded frames to iter_results(frames=...) or load(image=...)."
            )
        with Image.open(self._image_path(frame_index)) as image:
            return np.asarray(image.convert("RGB")).copy()

    def iter_results(
        self,
        *,
        keep_ids: set[int] | None = None,
        frames: Iterable[np.ndarray] | None = None,
    ) -> Iterator[FrameResult]:
        """Replay the cached frames in order, one at a time.

        Args:
            keep_ids: yield only these track ids (None: all).
            frames: optional iterable of (H, W, 3) uint8 frames, one per cached frame in order, used instead of
                the stored images (required when the cache was made with image_format "none").
        """
        frame_iter = iter(frames) if frames is not None else None
        indices = self.frame_indices()
        for k, frame_index in enumerate(indices):
            image = None
            if frame_iter is not None:
                image = next(frame_iter, None)
                if image is None:
                    raise ValueError(
                        f"iter_results(frames=...) ran out after {k} frames, but the cache at {self.root} holds "
                        f"{len(indices)}: pass one frame per cached frame (the same video, stride and max_frames)."
                    )
            result = self.load(frame_index, image=image)
            yield result if keep_ids is None else select_tracks(result, keep_ids)

    def clear(self) -> None:
        """Delete the cache folder."""
        shutil.rmtree(self.root, ignore_errors=True)


def has_cache(root: str | Path) -> bool:
    """Whether ``root`` holds a mask cache (finished or not); creates nothing."""
    return (Path(root) / _META).is_file()


def filter_tracks(results: Iterable[FrameResult], keep_ids: set[int]) -> Iterator[FrameResult]:
    """The same stream restricted to the tracks in ``keep_ids`` (frames without any of them still come)."""
    keep = frozenset(int(i) for i in keep_ids)
    for result in results:
        yield select_tracks(result, keep)


def rebuild_exports(
    cache: MaskCache,
    out_dir: str | Path,
    *,
    keep_ids: set[int] | None = None,
    frames: Iterable[np.ndarray] | None = None,
    **writer_kwargs: Any,
) -> ExportResult:
    """Re-export a cached video with only some tracks (DAVIS labels are re-assigned among the kept tracks).

    This video's earlier export files in ``out_dir`` (its davis/cutouts/mattes folders, the JSON/CSV/README
    files and run.json) are deleted first, so no file of a dropped track survives; other files there are left alone.

    Args:
        cache: the video's cache. out_dir: export folder.
        keep_ids: tracks to keep (None: all). frames: as in ``MaskCache.iter_results``.
        writer_kwargs: ``ExportWriter`` arguments (video_name, class_names, frame_names, options, ...);
            height and width come from the cache. Without ``provenance``, a cache made by ``run_job`` gives its
            run's record (``uvosam.provenance.rerender_record``: the run's models, these ``keep_ids``).
    """
    if cache.info.height is None:
        raise ValueError(f"rebuild_exports: the cache at {cache.root} holds no frames yet")
    out_dir = Path(out_dir)
    for name in ROOT_FILES:
        (out_dir / name).unlink(missing_ok=True)
    run = cache.info.meta.get("provenance")
    if run is not None and "provenance" not in writer_kwargs:
        video = {
            **(run.get("video") or {}),
            "name": writer_kwargs.get("video_name"),
        }  # the name it exports under
        writer_kwargs["provenance"] = rerender_record(
            run, video=video, keep_ids=keep_ids, merge=None, min_score=0.0, output=None
        )
    writer = ExportWriter(
        out_dir,
        height=cache.info.height,
        width=cache.info.width,
        keep_ids=keep_ids,
        **writer_kwargs,
    )
    with writer:
        for result in cache.iter_results(frames=frames):
            writer.add(result)
    return writer.close()
