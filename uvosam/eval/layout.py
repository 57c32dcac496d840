"""The DAVIS-2017 folder layout: which sequences a set holds, their frames and annotation files, and result files.

``<root>/JPEGImages/480p/<seq>/*.jpg`` (the frame count), ``<root>/Annotations_unsupervised/480p/<seq>/*.png``
(unsupervised) or ``<root>/Annotations/480p/<seq>/*.png`` (semi-supervised), one annotation per jpg, and
``<root>/ImageSets/2017/<subset>.txt`` with one sequence name per line (``ImageSets/2019`` for the unsupervised
test-dev and test-challenge sets). Results are ``<results>/<seq>/<frame>.png`` with the annotation file stems
(``<seq>`` as uvosam names a video, ``car_1`` for ``car 1``, where no folder has the sequence's very name).
Every check here fails with a message that names the offending path; masks of another size than the ground truth's
from a run that scaled its frames down (``JobOptions.fit_side``, said by the ``run.json`` of the export they are in:
``scaled_run_note``) are refused saying so.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from uvosam.config import is_integer
from uvosam.errors import InputError, MissingInputError
from uvosam.eval.masks_io import read_index_png
from uvosam.portable_names import safe_name
from uvosam.provenance import RUN_JSON, read_record

__all__ = [
    "SUBSETS",
    "TASKS",
    "SequenceFiles",
    "export_scaled_note",
    "find_sequences",
    "imageset_path",
    "read_result",
    "result_folder",
    "scaled_run_note",
]

TASKS = ("unsupervised", "semi-supervised")
SUBSETS = ("train", "val", "test-dev", "test-challenge")
RESOLUTION = "480p"
DOWNLOAD_HINT = "download DAVIS-2017 from https://davischallenge.org/davis2017/code.html"


@dataclass(frozen=True)
class SequenceFiles:
    """One sequence's ground truth on disk.

    Attributes:
        name: sequence name (its folder name).
        frame_ids: annotation file stems in sorted order ("00000", "00001", ...); result files use the same stems.
        annotations: sorted annotation PNG paths, one per frame (one per jpg).
    """

    name: str
    frame_ids: tuple[str, ...]
    annotations: tuple[Path, ...]


def annotation_folder(task: str) -> str:
    """``Annotations_unsupervised`` for the unsupervised task, ``Annotations`` for semi-supervised."""
    return "Annotations" if task == "semi-supervised" else "Annotations_unsupervised"


def imageset_path(root: str | Path, *, subset: str, task: str) -> Path:
    """``<root>/ImageSets/<year>/<subset>.txt``; year 2019 for unsupervised test-dev/test-challenge, else 2017."""
    year = "2019" if task == "unsupervised" and subset in ("test-dev", "test-challenge") else "2017"
    return Path(root) / "ImageSets" / year / f"{subset}.txt"


def read_imageset(path: Path) -> list[str]:
    """Sequence names of an ImageSets file (one per line), or FileNotFoundError with a download hint."""
    if not path.is_file():
        raise MissingInputError(
            f"sequence list not found: {path} (one sequence name per line); {DOWNLOAD_HINT}"
        )
    names = [line.strip() for line in path.read_text().splitlines()]
    return [n for n in names if n]


def _sequence_files(root: Path, name: str, task: str) -> SequenceFiles:
    jpg_dir = root / "JPEGImages" / RESOLUTION / name
    jpgs = sorted(jpg_dir.glob("*.jpg"))
    if not jpgs:
        raise MissingInputError(f"no frames for sequence {name!r}: {jpg_dir}/*.jpg matched nothing")
    ann_dir = root / annotation_folder(task) / RESOLUTION / name
    pngs = sorted(ann_dir.glob("*.png"))
    if len(pngs) != len(jpgs):
        raise InputError(
            f"sequence {name!r}: {len(pngs)} annotation PNGs in {ann_dir} but {len(jpgs)} jpgs in {jpg_dir}; "
            "the evaluator needs exactly one annotation per frame (re-extract the dataset)"
        )
    return SequenceFiles(name=name, frame_ids=tuple(p.stem for p in pngs), annotations=tuple(pngs))


def semi_supervised_annotations_only(root: str | Path) -> bool:
    """Whether ``root`` has the semi-supervised task's annotations (``Annotations/480p``, in the usual trainval
    download) but not the unsupervised task's (``Annotations_unsupervised/480p``, a download of their own)."""
    root = Path(root)
    return (root / annotation_folder("semi-supervised") / RESOLUTION).is_dir() and not (
        root / annotation_folder("unsupervised") / RESOLUTION
    ).is_dir()


def _annotations_hint(root: Path, task: str) -> str:
    """What to download for ``task``'s missing annotation folder under ``root``."""
    if task == "unsupervised" and semi_supervised_annotations_only(root):
        return (
            f"{root} has {annotation_folder('semi-supervised')}/{RESOLUTION}, the semi-supervised task's (the "
            "DAVIS-2017 trainval download's): the unsupervised task's annotations are a download of their own, "
            "DAVIS-2017 Unsupervised TrainVal 480p on https://davischallenge.org/davis2017/code.html: put its "
            f"{annotation_folder('unsupervised')}/{RESOLUTION} in {root}"
        )
    return DOWNLOAD_HINT


def find_sequences(
    root: str | Path, *, subset: str, task: str, sequences: list[str] | None = None
) -> list[SequenceFiles]:
    """Sequences of a set with their annotation files, in the set file's order (or the order of ``sequences``).

    Raises:
        FileNotFoundError: the root, the annotation folder, the ImageSets file or a sequence's jpgs are missing.
        ValueError: a requested sequence is not in the set, or annotation and jpg counts differ.
    """
    root = Path(root)
    if not root.is_dir():
        raise MissingInputError(
            f"DAVIS root not found: {root} (expected the folder holding JPEGImages/, "
            f"{annotation_folder(task)}/ and ImageSets/); {DOWNLOAD_HINT}"
        )
    ann_root = root / annotation_folder(task) / RESOLUTION
    if not ann_root.is_dir():
        raise MissingInputError(
            f"annotation folder for the {task} task not found: {ann_root}; {_annotations_hint(root, task)}"
        )
    set_file = imageset_path(root, subset=subset, task=task)
    listed = read_imageset(set_file)
    if sequences is None:
        names = listed
    else:
        names = list(sequences)
        unknown = [n for n in names if n not in set(listed)]
        if unknown:
            shown = ", ".join(listed[:10]) + (" ..." if len(listed) > 10 else "")
            raise InputError(
                f"unknown sequence(s) {unknown} for set {subset!r}: not listed in {set_file} ({shown})"
            )
    if not names:
        raise InputError(f"{set_file} lists no sequences")
    return [_sequence_files(root, name, task) for name in names]


def result_folder(results_dir: Path, name: str) -> Path:
    """The results of sequence ``name``: ``<results_dir>/<name>``, else the folder named as uvosam names a video
    ``name`` (``uvosam.portable_names.safe_name``: ``car 1`` -> ``car_1``) where only that one exists.

    Raises:
        FileNotFoundError: neither folder exists, naming both.
    """
    folder, cleaned = results_dir / name, safe_name(name)
    if folder.is_dir():
        return folder
    if cleaned != name and (results_dir / cleaned).is_dir():
        return results_dir / cleaned
    also = f" (or {cleaned}, as uvosam names it)" if cleaned != name else ""
    raise MissingInputError(f"no results for sequence {name!r}: folder {folder}{also} is missing")


def read_result(path: Path, shape: tuple[int, int], annotation: Path) -> np.ndarray:
    """(H, W) result ids of one frame, checked to exist, be 2-D and match the annotation size ``shape``."""
    if not path.is_file():
        raise MissingInputError(
            f"result frame missing: {path} (the annotation {annotation.name} needs a result PNG with the same name "
            f"in {path.parent})"
        )
    ids = read_index_png(path)
    if ids.shape != tuple(shape):
        scaled = export_scaled_note(path, ids.shape)
        raise InputError(
            f"{path} is {ids.shape[1]}x{ids.shape[0]} (WxH) but the annotation {annotation} is "
            f"{shape[1]}x{shape[0]}; results must have the annotation size (480p)"
            + (f": {scaled}" if scaled else "")
        )
    return ids


def export_scaled_note(mask_png: Path, shape: tuple[int, ...]) -> str | None:
    """``scaled_run_note`` for the mask PNG ``mask_png`` (``<export>/davis/<video>/<frame>.png``) of size ``shape``
    (H, W), from ``<export>/run.json``, which describes the folder's last run only: None unless that run is of this
    video (its name is the PNG's folder name) and its frames, scaled, have the mask's size."""
    record = read_record(mask_png.parent.parent.parent / RUN_JSON)
    video = record.get("video") if isinstance(record, dict) else None
    if not isinstance(video, dict) or video.get("name") != mask_png.parent.name:
        return None
    if (video.get("height"), video.get("width")) != tuple(shape):
        return None
    return scaled_run_note(record)


RUN_AT_SOURCE = "`uvosam segment` without --fit-side"


def scaled_run_note(record: object, rerun: str = RUN_AT_SOURCE) -> str | None:
    """Why masks do not have the ground truth's size when ``record`` (the ``run.json`` of the export they are in,
    ``uvosam.provenance.read_record``) says its run scaled the frames down (``JobOptions.fit_side``), and what to
    do (``rerun``: how to run at the source size; ``{side}`` there is its longest side); None for a run at the
    source size, or no record.
    """
    video = record.get("video") if isinstance(record, dict) else None
    video = video if isinstance(video, dict) else {}
    size = video.get("width"), video.get("height")
    source = video.get("source_width"), video.get("source_height")
    if not all(is_integer(v) for v in (*size, *source)) or size == source:
        return None
    settings = record.get("settings")
    fit_side = settings.get("fit_side") if isinstance(settings, dict) else None
    return (
        f"these masks are from a run that scaled {video.get('source') or 'the video'} down from its {source[0]}x"
        f"{source[1]} to {size[0]}x{size[1]} (WxH; run.json's fit_side {fit_side}), the size its masks have. "
        f"Run it again at its source size ({rerun.format(side=max(source))}) to score against ground truth of "
        f"that size, or give the ground truth at {size[0]}x{size[1]} (resized with nearest-neighbour sampling)"
    )
