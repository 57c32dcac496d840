"""Training videos with per-frame object boxes, from three on-disk layouts (only boxes are read).

Every loader returns ``VideoRecord``s: frame files (or in-memory frames) and, per frame, a dict
``track_id -> (x1, y1, x2, y2)`` in pixels of the ORIGINAL frame (objects absent from a frame are
simply missing from its dict). All objects are one class ("object"), as in UVOSAM.

* **YouTube-VIS / OVIS JSON** (``ytvis:JSON:IMAGE_ROOT``): ``videos[i]`` has ``id`` and
  ``file_names`` (relative to IMAGE_ROOT); ``annotations[j]`` has ``video_id``, ``id`` (track id)
  and ``bboxes``: one ``[x, y, w, h]`` or ``null`` per frame. ``segmentations`` are ignored, and
  ``iscrowd: 1`` annotations are skipped (as the release does).
* **DAVIS-2017** (``davis:ROOT``): ``ROOT/JPEGImages/480p/<seq>/*.jpg`` and the palette PNGs
  ``ROOT/Annotations/480p/<seq>/*.png``; each object id (pixel value 1..254) gives its mask's
  bounding box ``[min x, min y, max x + 1, max y + 1]`` (detectron2's box of a bit mask).
  Sequences: ``ROOT/ImageSets/2017/train.txt`` if present, else every annotated sequence.
* **Folder** (``folder:DIR``) for your own videos: ``DIR`` is one video or a folder of videos.
  A video folder holds its frames in ``frames/`` (``.jpg``/``.jpeg``/``.png``, natural name order)
  and a ``boxes.json``, either a list with one entry per frame (in frame order) or a dict keyed by
  frame file name; each entry is a list of ``[track_id, x1, y1, x2, y2]`` (pixels, x to the right,
  y down; frames without objects: ``[]`` or missing from the dict)::

      {"00000.jpg": [[1, 10, 20, 110, 220], [2, 300, 40, 380, 200]],
       "00001.jpg": [[1, 12, 20, 112, 221]]}
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from uvosam.config import is_number
from uvosam.errors import InputError, MissingInputError
from uvosam.frame_folder import list_frames, to_rgb8
from uvosam.json_files import read_json
from uvosam.text import count
from uvosam.train import TRAIN_README

logger = logging.getLogger(__name__)

BoxesByTrack = dict[int, tuple[float, float, float, float]]


@dataclass(frozen=True)
class VideoRecord:
    """One training video.

    Attributes:
        name: for messages.
        frames: per frame a file path or an (H, W, 3) uint8 RGB array.
        boxes: per frame ``{track_id: (x1, y1, x2, y2)}`` in pixels of that frame.
    """

    name: str
    frames: tuple[Path | np.ndarray, ...]
    boxes: tuple[BoxesByTrack, ...]

    def __post_init__(self) -> None:
        if len(self.frames) != len(self.boxes) or not self.frames:
            raise InputError(
                f"video {self.name!r}: expected one box dict per frame and at least one frame; "
                f"got {len(self.frames)} frames and {len(self.boxes)} box entries"
            )

    def __len__(self) -> int:
        return len(self.frames)


def read_frame(frame: Path | np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 RGB: PIL decode + EXIF orientation (detectron2 ``read_image``; 16-bit grayscale
    scaled to 8 bits, ``uvosam.frame_folder.to_rgb8``), or the array itself."""
    if isinstance(frame, np.ndarray):
        return frame
    with Image.open(frame) as im:
        return to_rgb8(ImageOps.exif_transpose(im))


_YTVIS_FORMAT = (
    "the YouTube-VIS / OVIS train format: videos[] with id and file_names, annotations[] with "
    "video_id, id and bboxes (one [x, y, w, h] or null per frame)"
)


def load_ytvis(json_path: str | Path, image_root: str | Path) -> list[VideoRecord]:
    """YouTube-VIS / OVIS style JSON (module docstring); videos without annotations are kept
    (they only teach "no object" and are skipped by nothing).

    Raises:
        ValueError: a key of the format is missing (a ``valid``/``test`` JSON has no
            ``annotations``; an annotation no ``bboxes``), an annotation's ``video_id`` is not a
            video's ``id``, its ``bboxes`` do not have one entry per ``file_names`` entry, or a
            box is not 4 numbers. The message names the entry.
    """
    json_path, image_root = Path(json_path), Path(image_root)
    data = read_json(json_path, f"fix or re-export the annotations (see {TRAIN_README})")
    for key in ("videos", "annotations"):
        if key not in data:
            raise InputError(
                f"{json_path}: expected a YouTube-VIS JSON with {key!r}; got keys {sorted(data)}"
            )
    per_video: dict[object, list[BoxesByTrack]] = {}
    for i, video in enumerate(data["videos"]):
        _require_keys(video, ("id", "file_names"), f"{json_path}: videos[{i}]")
        per_video[video["id"]] = [{} for _ in video["file_names"]]
    for j, ann in enumerate(data["annotations"]):
        if not ann.get("iscrowd", 0):
            _add_track(ann, per_video, f"{json_path}: annotations[{j}]")
    return [
        VideoRecord(
            name=str(v.get("name", v["id"])),
            frames=tuple(image_root / f for f in v["file_names"]),
            boxes=tuple(per_video[v["id"]]),
        )
        for v in data["videos"]
    ]


def _require_keys(entry: dict, keys: Sequence[str], where: str) -> None:
    """Raise ``ValueError`` naming ``where`` and the missing keys unless ``entry`` has ``keys``."""
    missing = [k for k in keys if k not in entry]
    if missing:
        raise InputError(
            f"{where} has no {' or '.join(map(repr, missing))}; expected {_YTVIS_FORMAT}; "
            f"got keys {sorted(entry)}"
        )


def _add_track(ann: dict, per_video: dict[object, list[BoxesByTrack]], where: str) -> None:
    """Write the boxes of one YouTube-VIS annotation into its video's per-frame dicts."""
    _require_keys(ann, ("video_id", "id", "bboxes"), where)
    where = f"{where} (id {ann['id']!r})"
    frames = per_video.get(ann["video_id"])
    if frames is None:
        raise InputError(
            f"{where}: video_id {ann['video_id']!r} is not the id of any of the "
            f"{count(len(per_video), 'video')}"
        )
    bboxes = ann["bboxes"]
    if not isinstance(bboxes, list) or len(bboxes) != len(frames):
        got = f"{len(bboxes)} entries" if isinstance(bboxes, list) else f"a {type(bboxes).__name__}"
        raise InputError(
            f"{where}: bboxes has {got} for the {len(frames)} file_names of video "
            f"{ann['video_id']!r}; expected one [x, y, w, h] or null per frame"
        )
    for t, box in enumerate(bboxes):
        if box is None:
            continue
        if not _is_xywh(box):
            raise InputError(f"{where}: bboxes[{t}] is {box!r}; expected [x, y, w, h] or null")
        x, y, w, h = (float(v) for v in box)
        frames[t][int(ann["id"])] = (x, y, x + w, y + h)


def _is_xywh(box: object) -> bool:
    """Whether ``box`` is a list of 4 numbers."""
    return isinstance(box, list) and len(box) == 4 and all(is_number(v) for v in box)


def mask_boxes(label_map: np.ndarray) -> BoxesByTrack:
    """(H, W) integer label map -> bounding box of every id 1..254 (0 = background, 255 = void)."""
    out: BoxesByTrack = {}
    for obj in np.unique(label_map):
        if obj == 0 or obj == 255:
            continue
        ys, xs = np.nonzero(label_map == obj)
        out[int(obj)] = (float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1))
    return out


def _davis_folders(root: Path, resolution: str = "480p") -> tuple[Path, Path]:
    """``ROOT/Annotations/<resolution>`` and ``ROOT/JPEGImages/<resolution>``, checked to be folders.

    Raises:
        FileNotFoundError: either is missing (the message names which).
    """
    ann_root, img_root = root / "Annotations" / resolution, root / "JPEGImages" / resolution
    missing = [str(p) for p in (ann_root, img_root) if not p.is_dir()]
    if missing:
        raise MissingInputError(
            f"DAVIS root {root}: {' and '.join(missing)} not found; expected the DAVIS-2017 "
            f"trainval layout (frames in JPEGImages/{resolution}/<seq>/, palette PNGs in "
            f"Annotations/{resolution}/<seq>/): pass the folder that holds JPEGImages/ and Annotations/"
        )
    return ann_root, img_root


def load_davis(
    root: str | Path, *, split: str = "train", resolution: str = "480p"
) -> list[VideoRecord]:
    """DAVIS-2017 (module docstring); boxes come from the palette annotation PNGs."""
    root = Path(root)
    ann_root, img_root = _davis_folders(root, resolution)
    split_file = root / "ImageSets" / "2017" / f"{split}.txt"
    if split_file.is_file():
        names = split_file.read_text().split()
    else:
        names = sorted(p.name for p in ann_root.iterdir() if p.is_dir())
    videos = []
    for name in names:
        frames = list_frames(img_root / name)
        boxes = []
        for frame in frames:
            png = ann_root / name / (frame.stem + ".png")
            boxes.append(mask_boxes(np.array(Image.open(png))) if png.is_file() else {})
        videos.append(VideoRecord(name=name, frames=tuple(frames), boxes=tuple(boxes)))
    return videos


def load_folder(directory: str | Path) -> list[VideoRecord]:
    """Your own videos (module docstring): ``DIR`` with ``frames/`` + ``boxes.json``, or a folder
    of such folders."""
    directory = Path(directory)
    if (directory / "boxes.json").is_file():
        return [_folder_video(directory)]
    videos = [_folder_video(d) for d in sorted(directory.iterdir()) if (d / "boxes.json").is_file()]
    if not videos:
        raise MissingInputError(
            f"{directory}: expected a video folder (frames/ + boxes.json) or a folder of them; "
            f"found no boxes.json. See {TRAIN_README} for the layout."
        )
    return videos


def _folder_video(directory: Path) -> VideoRecord:
    frames = list_frames(directory / "frames")
    data = read_json(directory / "boxes.json", f"fix or re-export the boxes (see {TRAIN_README})")
    if isinstance(data, dict):
        rows = [data.get(f.name, []) for f in frames]
    elif isinstance(data, list) and len(data) == len(frames):
        rows = data
    else:
        raise InputError(
            f"{directory / 'boxes.json'}: expected a dict keyed by frame file name or a list with "
            f"one entry per frame ({len(frames)}); got {type(data).__name__} of length {len(data)}"
        )
    boxes = tuple(_parse_rows(rows_t, directory, t) for t, rows_t in enumerate(rows))
    return VideoRecord(name=directory.name, frames=tuple(frames), boxes=boxes)


def _parse_rows(rows: Sequence, directory: Path, t: int) -> BoxesByTrack:
    out: BoxesByTrack = {}
    for row in rows:
        if len(row) != 5:
            raise InputError(
                f"{directory / 'boxes.json'} frame {t}: expected "
                f"[track_id, x1, y1, x2, y2]; got {row!r}"
            )
        out[int(row[0])] = tuple(float(v) for v in row[1:])  # type: ignore[assignment]
    return out


@dataclass(frozen=True)
class DataSpec:
    """A parsed ``--data`` argument: ``kind`` (ytvis/davis/folder), its paths and mixing ratio."""

    kind: str
    paths: tuple[str, ...]
    ratio: float = 1.0


_ARITY = {"ytvis": 2, "davis": 1, "folder": 1}


def parse_data_spec(spec: str) -> DataSpec:
    """``ytvis:JSON:IMAGE_ROOT[:ratio]``, ``davis:ROOT[:ratio]`` or ``folder:DIR[:ratio]``."""
    kind, _, rest = spec.partition(":")
    if kind not in _ARITY or not rest:
        raise InputError(
            f"--data {spec!r}: expected ytvis:JSON:IMAGE_ROOT[:ratio], "
            "davis:ROOT[:ratio] or folder:DIR[:ratio]"
        )
    parts = rest.split(":")
    ratio = 1.0
    if len(parts) == _ARITY[kind] + 1:
        try:
            ratio = float(parts.pop())
        except ValueError:
            raise InputError(
                f"--data {spec!r}: the ratio must be a number; got {parts[-1]!r}"
            ) from None
    if len(parts) != _ARITY[kind] or ratio <= 0:
        raise InputError(
            f"--data {spec!r}: {kind} takes {_ARITY[kind]} path(s) and an optional positive ratio"
        )
    return DataSpec(kind=kind, paths=tuple(parts), ratio=ratio)


_SPEC_PATHS = {
    "ytvis": (
        ("file", "the YouTube-VIS / OVIS annotation JSON file"),
        ("folder", "the image root folder (the JSON's file_names are relative to it)"),
    ),
    "folder": (("folder", "a video folder (frames/ + boxes.json) or a folder of them"),),
}


def check_data_spec(spec: DataSpec) -> None:
    """Check, without reading any data, that the paths of ``spec`` are there and of the right kind:
    the YouTube-VIS JSON a file and its image root a folder, the DAVIS root holding
    ``Annotations/480p`` and ``JPEGImages/480p``, the ``folder:`` DIR a folder.

    Raises:
        FileNotFoundError: a path is missing (a DAVIS root: one of its two folders).
        ValueError: a path is of the wrong kind (a folder where the JSON goes, a file where a
            folder goes).
    """
    if spec.kind == "davis":
        _davis_folders(Path(spec.paths[0]))
        return
    text = f"--data {spec.kind}:{':'.join(spec.paths)}"
    for path, (kind, what) in zip(spec.paths, _SPEC_PATHS[spec.kind], strict=True):
        _check_path_kind(Path(path), kind, what, text)


def _check_path_kind(path: Path, kind: str, what: str, text: str) -> None:
    """Raise unless ``path`` is an existing ``kind`` (``"file"`` or ``"folder"``)."""
    where = f"; layouts: {TRAIN_README}"
    if not path.exists():
        raise MissingInputError(f"{text}: nothing at {path}; expected {what}{where}")
    if (kind == "file") != path.is_file():
        found = "a folder" if path.is_dir() else "a file"
        raise InputError(f"{text}: {path} is {found}; expected {what}{where}")


_BOX_SOURCES = {
    "ytvis": "each annotation's 'bboxes' (one [x, y, w, h] or null per frame; iscrowd ones skipped)",
    "davis": "the object ids 1..254 of the palette PNGs in Annotations/480p/<seq>/",
    "folder": "each video's boxes.json ([track_id, x1, y1, x2, y2] rows per frame)",
}


def load_specs(specs: Sequence[DataSpec]) -> list[list[VideoRecord]]:
    """The videos of each ``DataSpec``, loaded (``load_spec``) and checked together: if no frame of any of them
    holds a box, training would fit nothing (every loss 0) and they are refused now; a dataset without a box
    among others is taken (its videos teach "no object") with a warning.

    Raises:
        ValueError: the data is malformed, or no frame of any dataset holds a box.
        FileNotFoundError: frame files are missing.
    """
    sources = [load_spec(spec) for spec in specs]
    empty = [
        (spec, videos) for spec, videos in zip(specs, sources, strict=True) if not _any_box(videos)
    ]
    if len(empty) == len(specs):
        raise InputError(
            "; ".join(
                f"{_spec_text(spec)}: no frame of its {count(len(videos), 'video')} "
                f"({count(sum(len(v) for v in videos), 'frame')}) "
                f"holds a box with a width and a height (boxes are read from {_BOX_SOURCES[spec.kind]})"
                for spec, videos in empty
            )
            + ", so there is nothing to train on"
        )
    for spec, _ in empty:
        logger.warning("%s holds no box: its videos only teach 'no object'", _spec_text(spec))
    return sources


def load_spec(spec: DataSpec) -> list[VideoRecord]:
    """Load the videos a ``DataSpec`` names, their frame files checked (``check_frame_files``: a missing one is
    found now, not when a clip first reads it, possibly hours in) and a warning for boxes without a size
    (``check_boxes``). Whether any box is there at all is ``load_specs``' check, over every dataset.

    Raises:
        ValueError: the data is malformed.
        FileNotFoundError: frame files are missing.
    """
    if spec.kind == "ytvis":
        videos = load_ytvis(*spec.paths)
    elif spec.kind == "davis":
        videos = load_davis(spec.paths[0])
    else:
        videos = load_folder(spec.paths[0])
    text = _spec_text(spec)
    check_boxes(videos, text)
    check_frame_files(videos, text)
    return videos


def _spec_text(spec: DataSpec) -> str:
    return f"--data {spec.kind}:{':'.join(spec.paths)}"


def _any_box(videos: Sequence[VideoRecord]) -> bool:
    return any(w > 0 and h > 0 for *_, w, h in _box_sizes(videos))


def check_boxes(videos: Sequence[VideoRecord], text: str) -> None:
    """Log one warning counting the boxes without a positive width and height, which training takes as absent
    (``clips.make_clip``); ``text`` starts it."""
    sizes = list(_box_sizes(videos))
    empty = [s for s in sizes if not (s[3] > 0 and s[4] > 0)]
    if empty:
        video, t, i, w, h = empty[0]
        logger.warning(
            "%s: boxes without a positive width and height, taken as absent: %d of %d "
            "(e.g. video %r frame %d object %d: width %g, height %g)",
            text,
            len(empty),
            len(sizes),
            video.name,
            t,
            i,
            w,
            h,
        )


def _box_sizes(
    videos: Sequence[VideoRecord],
) -> Iterator[tuple[VideoRecord, int, int, float, float]]:
    """(video, frame index, track id, width, height) of every box of ``videos``."""
    for video in videos:
        for t, boxes in enumerate(video.boxes):
            for i, (x1, y1, x2, y2) in boxes.items():
                yield video, t, i, x2 - x1, y2 - y1


def check_frame_files(videos: Sequence[VideoRecord], text: str) -> None:
    """Refuse ``videos`` if any frame file is missing: one ``stat`` per frame path (about 0.5 s for
    100 000 files on a local disk), so that a missing frame is not found when a clip first reads it.

    Raises:
        FileNotFoundError: with the count and the first missing frame.
    """
    paths = [(v, t, f) for v in videos for t, f in enumerate(v.frames) if isinstance(f, Path)]
    missing = [(v, t, f) for v, t, f in paths if not f.is_file()]
    if missing:
        video, t, frame = missing[0]
        raise MissingInputError(
            f"{text}: {len(missing)} of its {len(paths)} frame files missing, e.g. {frame} "
            f"(video {video.name!r} frame {t})"
        )
