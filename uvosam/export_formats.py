"""File formats written by ``uvosam.export``: palette/RGBA/matte PNGs, COCO RLE, the JSON and CSV files, the zip.

Everything here is a small stateless function; the per-video bookkeeping lives in ``uvosam.export`` (and its parts:
``uvosam.export_davis`` for the DAVIS PNGs, ``uvosam.export_cutouts`` for the cut-outs, mattes and WebM,
``uvosam.export_root_files`` for the tables). The export's files are written atomically (``uvosam.atomic_files``);
the RLE spool, a scratch file, is appended to.
"""

from __future__ import annotations

import csv
import io
import json
import os
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils

from uvosam import atomic_files
from uvosam.colours import PALETTE_MAX_LABEL, davis_palette
from uvosam.errors import InputError
from uvosam.types import TrackSummary


@dataclass
class TrackRecord:
    """Per-track bookkeeping kept in RAM while a video is exported (no pixels; boxes, and RLE masks on disk).

    Attributes:
        track_id: the stable id. slot: 1-based order of first appearance in the video.
        label: class index (the first one seen). first_frame, last_frame, num_frames, returns: frame statistics
            (``TrackSummary``).
        score_sum: sum of per-frame scores (mean = score_sum / num_frames).
        boxes: ``{frame index: [x1, y1, x2, y2]}`` original-frame pixels.
        rle_spool: JSON-lines file of ``{"t": frame index, "size", "counts"}`` COCO RLEs, appended frame by frame
            (only when the YTVIS JSON is written), so RAM does not grow with the video's length.
        prob_sum, prob_frames: (K,) float64 sum of the per-frame class probabilities over the ``prob_frames``
            frames that had them (``FrameResult.class_probs``); kept only for ``ExportOptions.ytvis_class_thres``
            (None / 0 otherwise). O(classes) per track, whatever the video's length.
    """

    track_id: int
    slot: int
    label: int
    first_frame: int
    last_frame: int = -1
    num_frames: int = 0
    returns: int = 0
    score_sum: float = 0.0
    boxes: dict[int, list[float]] = field(default_factory=dict)
    rle_spool: Path | None = None
    prob_sum: np.ndarray | None = None
    prob_frames: int = 0

    def add_probs(self, probs: np.ndarray) -> None:
        """Add one frame's (K,) class probabilities to ``prob_sum``."""
        if self.prob_sum is None:
            self.prob_sum = np.zeros(len(probs), np.float64)
        self.prob_sum += probs
        self.prob_frames += 1

    def mean_class_probs(self) -> dict[int, float]:
        """``{class index: mean probability}`` over the frames with class probabilities, every class in order
        (IDOL's 'mean' temporal score per class); without any: ``{label: score}``, the track taken as sure of its
        label (exact for a one-class tracker, whose probability is its score)."""
        if self.prob_sum is None:
            return {self.label: self.score}
        return {c: float(p) for c, p in enumerate(self.prob_sum / self.prob_frames)}

    def add_rle(self, t: int, rle: dict) -> None:
        """Append frame ``t``'s RLE (``encode_rle``) to ``rle_spool``."""
        with open(self.rle_spool, "a", encoding="ascii") as handle:
            handle.write(json.dumps({"t": t, **rle}) + "\n")

    def segmentations(self, num_frames: int) -> list[dict | None]:
        """Per frame of the video, the track's RLE or None (read back from ``rle_spool``)."""
        out: list[dict | None] = [None] * num_frames
        if self.rle_spool is not None and self.rle_spool.exists():
            with open(self.rle_spool, encoding="ascii") as handle:
                for line in handle:
                    entry = json.loads(line)
                    out[entry.pop("t")] = entry
        return out

    @property
    def score(self) -> float:
        """Mean per-frame score over the frames the track was seen in."""
        return self.score_sum / max(1, self.num_frames)

    def summary(self, class_names: list[str] | tuple[str, ...]) -> TrackSummary:
        name = class_names[self.label] if 0 <= self.label < len(class_names) else str(self.label)
        return TrackSummary(
            track_id=self.track_id,
            label=self.label,
            class_name=name,
            score=self.score,
            first_frame=self.first_frame,
            last_frame=self.last_frame,
            num_frames=self.num_frames,
            returns=self.returns,
        )


def encode_rle(mask: np.ndarray) -> dict:
    """COCO RLE of one mask, JSON-ready.

    Args:
        mask: (H, W) bool.

    Returns:
        ``{"size": [H, W], "counts": str}`` (pycocotools' compressed counts, decoded to ASCII).
    """
    rle = mask_utils.encode(np.asfortranarray(mask, dtype=np.uint8))
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}


def _save_png(image: Image.Image, path: Path, compress_level: int) -> None:
    """Save atomically (a reader never sees half a PNG; ``atomic_files.replacing``)."""
    with atomic_files.replacing(path) as tmp:
        image.save(tmp, format="PNG", compress_level=compress_level)


def write_palette_png(path: Path, label_map: np.ndarray, *, compress_level: int = 1) -> None:
    """A DAVIS annotation PNG: mode "P" with the DAVIS palette, pixel value = object label (0 background).

    Args:
        label_map: (H, W) integer labels in 0..``PALETTE_MAX_LABEL`` (an 8-bit palette PNG holds no more; a label
            outside is refused, never wrapped onto another object's).
    """
    label_map = np.asarray(label_map)
    if label_map.dtype != np.uint8 and label_map.size:
        low, high = int(label_map.min()), int(label_map.max())
        if low < 0 or high > PALETTE_MAX_LABEL:
            raise InputError(
                f"write_palette_png: {path.name}: labels {low}..{high} do not fit a palette PNG, whose 8-bit pixels "
                f"hold 0..{PALETTE_MAX_LABEL} (0: background); number at most {PALETTE_MAX_LABEL} objects 1..N "
                f"(ExportWriter keeps the ExportOptions.max_objects tracks of highest mean score) and keep every "
                f"track in the other formats (cut-outs, results.json, tracks.csv)"
            )
    label_map = np.ascontiguousarray(label_map, np.uint8)
    height, width = label_map.shape
    image = Image.frombytes("P", (width, height), label_map.tobytes())
    image.putpalette(davis_palette())
    _save_png(image, path, compress_level)


def write_cutout_png(
    path: Path,
    image: np.ndarray,
    mask: np.ndarray,
    *,
    keep_frame_rgb: bool = False,
    compress_level: int = 1,
) -> None:
    """An RGBA cut-out (straight alpha): alpha = 255 on the mask, else 0; RGB = the frame on the mask.

    Args:
        image: (H, W, 3) uint8 RGB. mask: (H, W) bool.
        keep_frame_rgb: keep the frame's RGB under the transparent pixels too (lets an editor grow or feather
            the matte without a black fringe; files are several times larger). False: RGB = 0 there.
    """
    _save_png(
        Image.fromarray(cutout_rgba(image, mask, keep_frame_rgb=keep_frame_rgb)),
        path,
        compress_level,
    )


def cutout_rgba(image: np.ndarray, mask: np.ndarray, *, keep_frame_rgb: bool = False) -> np.ndarray:
    """(H, W, 4) uint8 straight-alpha RGBA: alpha = 255 on ``mask`` ((H, W) bool), else 0; RGB = ``image`` ((H, W,
    3) uint8) on the mask, and elsewhere too with ``keep_frame_rgb`` (else 0)."""
    # calloc'd: the work below scales with the mask, not the frame
    rgba = np.zeros((*mask.shape, 4), np.uint8)
    if keep_frame_rgb:
        rgba[..., :3] = image
    else:
        rgba[mask, :3] = image[mask]
    rgba[mask, 3] = 255
    return rgba


def write_rgb_png(path: Path, image: np.ndarray, *, compress_level: int = 6) -> None:
    """An RGB PNG of an (H, W, 3) uint8 image (a chart, not a frame: compressed harder)."""
    _save_png(Image.fromarray(image), path, compress_level)


def write_matte_png(path: Path, mask: np.ndarray, *, compress_level: int = 1) -> None:
    """A black/white alpha matte: mode "L", 255 on the mask, 0 elsewhere. mask: (H, W) bool."""
    _save_png(Image.fromarray(mask.astype(np.uint8) * 255), path, compress_level)


def blank_png_bytes(mode: str, height: int, width: int) -> bytes:
    """Encoded all-zero PNG of a mode ("RGBA": fully transparent, "L": black), written for absent frames."""
    buffer = io.BytesIO()
    Image.new(mode, (width, height)).save(buffer, format="PNG", compress_level=9)
    return buffer.getvalue()


def _write_json_list(path: Path, entries: Iterable[dict]) -> None:
    """A JSON array written one entry at a time (no whole-file string in memory), atomically; a value that is not
    finite raises ValueError (the file as it was) instead of writing ``NaN`` or ``Infinity``, which is no JSON."""
    with atomic_files.replacing(path) as tmp, open(tmp, "w", encoding="utf-8") as handle:
        handle.write("[")
        for i, entry in enumerate(entries):
            handle.write(",\n" if i else "\n")
            json.dump(entry, handle, allow_nan=False)  # NaN / Infinity are not JSON: refused
        handle.write("\n]\n")


def write_results_json(
    path: Path, records: list[TrackRecord], *, video_id: str | int, num_frames: int
) -> None:
    """The release's tracks JSON (IDOL ``YTVISEvaluator`` format), one entry per track in record order:
    ``{"video_id", "score": mean per-frame score, "category_id": label + 1,
    "boxes": [per frame [x1, y1, x2, y2] | null]}``.
    """
    _write_json_list(
        path,
        (
            {
                "video_id": video_id,
                "score": float(rec.score),
                "category_id": int(rec.label) + 1,
                "boxes": [rec.boxes.get(t) for t in range(num_frames)],
            }
            for rec in records
        ),
    )


def classes_above(mean_probs: dict[int, float], threshold: float) -> list[tuple[int, float]]:
    """IDOL's ``MULTI_CLS_ON`` rule for one trajectory: every ``(class index, mean probability)`` of
    ``mean_probs`` whose mean probability is > ``threshold`` (``APPLY_CLS_THRES``), in class order."""
    return [(c, p) for c, p in sorted(mean_probs.items()) if p > threshold]


def ytvis_entries(
    records: list[TrackRecord],
    *,
    video_id: str | int,
    num_frames: int,
    class_thres: float | None = None,
) -> Iterator[dict]:
    """YouTube-VIS result entries ``{"video_id", "category_id", "score", "segmentations": [RLE | null]}``.

    ``class_thres`` None: one per track in record order, ``category_id`` = label + 1, ``score`` = mean per-frame
    score. A number: as ``IDOL.inference`` with ``MULTI_CLS_ON`` (``classes_above``): one per (track, class) whose
    mean class probability (``TrackRecord.mean_class_probs``) is > ``class_thres``, ``score`` = that mean, the
    same segmentations under each class; tracks in id order (the order in which IDOL's ``video_dict`` opened the
    trajectories: ``IDOLTracker`` numbers them so), each track's classes in class order.
    """
    if class_thres is None:
        picked = ((rec, [(rec.label, rec.score)]) for rec in records)
    else:
        ordered = sorted(records, key=lambda rec: rec.track_id)
        picked = ((rec, classes_above(rec.mean_class_probs(), class_thres)) for rec in ordered)
    for rec, classes in picked:
        segmentations = rec.segmentations(num_frames) if classes else []
        for label, score in classes:
            yield {
                "video_id": video_id,
                "category_id": int(label) + 1,
                "score": float(score),
                "segmentations": segmentations,
            }


def write_ytvis_json(
    path: Path,
    records: list[TrackRecord],
    *,
    video_id: str | int,
    num_frames: int,
    class_thres: float | None = None,
) -> None:
    """YouTube-VIS results, the entries of ``ytvis_entries``, written one at a time (one track's RLEs in RAM)."""
    _write_json_list(
        path,
        ytvis_entries(records, video_id=video_id, num_frames=num_frames, class_thres=class_thres),
    )


TRACKS_CSV_COLUMNS = (
    "track_id",
    "davis_label",
    "category_id",
    "class_name",
    "score",
    "first_frame",
    "last_frame",
    "num_frames",
    "returns",
)


def write_tracks_csv(
    path: Path, summaries: list[TrackSummary], davis_labels: dict[int, int]
) -> None:
    """One row per track (order of first appearance); ``davis_label`` is empty for a track left out of the PNGs.
    Written atomically (``atomic_files.write_bytes``)."""
    text = io.StringIO(newline="")
    writer = csv.writer(text)
    writer.writerow(TRACKS_CSV_COLUMNS)
    for s in summaries:
        writer.writerow(
            [
                s.track_id,
                davis_labels.get(s.track_id, ""),
                s.label + 1,
                s.class_name,
                f"{s.score:.6f}",
                s.first_frame,
                s.last_frame,
                s.num_frames,
                s.returns,
            ]
        )
    atomic_files.write_bytes(path, text.getvalue().encode("utf-8"))


def write_zip(zip_path: Path, root: Path, entries: Iterable[Path]) -> Path:
    """Zip files and folders under ``root`` (names relative to it), streaming from disk.

    PNGs are stored (already compressed); everything else is deflated. Folders are walked in sorted order.
    Written as ``<zip_path>.tmp``, renamed when complete; removed if writing fails.
    """
    zip_path = Path(zip_path)
    with (
        atomic_files.replacing(zip_path) as tmp,
        zipfile.ZipFile(tmp, "w", allowZip64=True) as archive,
    ):
        for entry in entries:
            for file in _files_under(entry):
                kind = zipfile.ZIP_STORED if file.suffix.lower() == ".png" else zipfile.ZIP_DEFLATED
                archive.write(file, file.relative_to(root).as_posix(), compress_type=kind)
    return zip_path


def _files_under(entry: Path) -> Iterable[Path]:
    if entry.is_file():
        yield entry
        return
    for folder, dirs, files in os.walk(entry):
        dirs.sort()
        for name in sorted(files):
            if not name.endswith(atomic_files.TMP_SUFFIX):  # still being written
                yield Path(folder) / name
