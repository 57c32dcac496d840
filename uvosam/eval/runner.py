"""Benchmark runners: the pipeline over a whole DAVIS-2017 or YouTube-VIS split, written in the scorers' formats.

``run_davis`` is resumable: each sequence is written into ``<out>/.partial/<seq>`` and moved to ``<out>/<seq>`` only
when complete, so a finished sequence is a folder that exists (skipped on the next run; unless a PNG of it was
deleted since: ``sequence_finished``) and an interrupted one is redone from scratch. PNGs are DAVIS palette PNGs
with ids stable over the sequence and at most 20 ids.
Given ``settings`` (the CLI passes its model arguments), a run records them in ``<out>/.uvosam-run.json`` with the
code that runs (``uvosam.code_identity``), and a later run with other settings, or by other code into a folder that
holds finished sequences, is refused (``check_run_settings``): a resumed run never mixes two models' or two codes'
sequences.

``run_ytvis`` writes a YouTube-VIS submission: ``results.json`` (entries ``video_id``, ``category_id`` = the id that
the split's annotation file gives the class's name (``ytvis_split.ytvis_category_ids``: the 2019 and 2021 sets number
their classes differently; a tracker whose classes are not the file's is refused before any frame is read),
``score``, ``segmentations`` = COCO RLE or null per frame) and the zip the evaluation server expects
(``results.json`` at its root). Every video id and listed frame is checked before the first video is segmented
(``ytvis_split.read_ytvis_split``). Its entries are the original IDOL's (``IDOL.inference`` with
``MULTI_CLS_ON``, ``APPLY_CLS_THRES`` = 0.05): one per (track, class) whose mean class probability over the track's
frames is > 0.05, ``score`` = that mean, the track's masks under each such class; videos in the annotation file's
order, in a video tracks in the order IDOL opened them, then classes in index order
(``export_formats.ytvis_entries``). So a track whose class is uncertain is scored under each likely class, as in
the paper's YouTube-VIS AP. With the default pipeline (every tracked box is segmented) the mean runs over the same
frames as the original's. A tracker whose config turns ``MULTI_CLS_ON`` off gets one entry per track
(``ytvis_class_thres``): its streamed label, its mean per-frame score (the highest class probability of each frame,
averaged, which is >= the original's mean of any one class; equal with one class, or when the same class is the
most likely in every frame), which is not quite the original's then (its best class by mean probability, with
that mean): warned.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import warnings
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from uvosam.atomic_files import replacing
from uvosam.code_identity import CODE_KEY, code_identity
from uvosam.errors import InputError, MissingInputError
from uvosam.eval.layout import RESOLUTION, imageset_path, read_imageset
from uvosam.eval.ytvis_split import YtvisSplit, read_ytvis_split, ytvis_category_ids
from uvosam.export import ExportWriter
from uvosam.export_types import ExportOptions, ExportResult
from uvosam.frame_folder import list_frames
from uvosam.json_files import read_json
from uvosam.pipeline import UVOSAM
from uvosam.tracker.association_config import InferenceConfig
from uvosam.types import BoxTracker
from uvosam.video import iter_probed, probe

logger = logging.getLogger(__name__)

PAPER_DAVIS17_UNSUPERVISED_VAL = {"J&F-Mean": 0.809, "J-Mean": 0.775, "F-Mean": 0.842}
"""UVOSAM's reported DAVIS-2017 unsupervised val numbers (README of the release)."""


@dataclass(frozen=True)
class SequenceDone:
    """Progress of a benchmark run: one sequence or video finished (``skipped`` = found complete on disk)."""

    name: str
    index: int
    total: int
    frames: int
    skipped: bool


@dataclass(frozen=True)
class DavisSelection:
    """The sequences of a DAVIS set that a run segments, checked by ``select_davis_sequences``: each is in the set's
    list and has its 480p frame folder.

    Attributes:
        listed: every sequence of the set's list, in the list's order.
        names: the sequences to segment: ``listed``, or those asked for (in that order, duplicates dropped).
        frame_dirs: the 480p frame folder of each of ``names``, in the same order.
    """

    listed: tuple[str, ...]
    names: tuple[str, ...]
    frame_dirs: tuple[Path, ...]


def select_davis_sequences(
    davis_root: str | Path, subset: str, sequences: list[str] | None = None
) -> DavisSelection:
    """Read ``ImageSets/2017/<subset>.txt`` (2019 for the unsupervised test sets) once, pick ``sequences`` from it
    (all when None or empty), then check the frame folder of every picked one: all before any is segmented.

    Raises:
        FileNotFoundError: the list file is missing, or a picked sequence has no 480p frame folder.
        ValueError: ``sequences`` names one that the list does not hold (all such are named).
    """
    set_file = imageset_path(davis_root, subset=subset, task="unsupervised")
    listed = read_imageset(set_file)
    names = _picked(listed, sequences, set_file, subset)
    frame_dirs = tuple(_frames_dir(Path(davis_root), name) for name in names)
    return DavisSelection(tuple(listed), tuple(names), frame_dirs)


def _picked(
    listed: list[str], sequences: list[str] | None, set_file: Path, subset: str
) -> list[str]:
    """``listed``, or ``sequences`` (duplicates dropped) once each is found in ``listed``."""
    if not sequences:
        return listed
    unknown = [name for name in dict.fromkeys(sequences) if name not in set(listed)]
    if unknown:
        shown = ", ".join(listed[:10]) + (" ..." if len(listed) > 10 else "")
        raise InputError(
            f"unknown sequence(s) {', '.join(unknown)}: not in {set_file}, the list of the {subset!r} set "
            f"({len(listed)} sequences: {shown}); pass names from that list, or the set that lists them"
        )
    return list(dict.fromkeys(sequences))


def finished_sequences(out_dir: str | Path, names: list[str], davis_root: str | Path) -> list[str]:
    """Those of ``names`` that a ``run_davis`` into ``out_dir`` has finished, in order (``sequence_finished``)."""
    return [
        name
        for name in names
        if sequence_finished(Path(out_dir) / name, _frames_path(Path(davis_root), name))
    ]


def sequence_finished(results: Path, frames_dir: Path) -> bool:
    """``results`` (``<out>/<seq>``, moved there whole when the sequence was done) exists and still holds a PNG for
    every frame of ``frames_dir``: one from which a PNG was deleted since is segmented again, not scored as missing
    a frame. Without ``frames_dir`` (a set whose frames are not all here) the folder's existence decides."""
    if not results.is_dir():
        return False
    if not frames_dir.is_dir():
        return True
    done = {p.stem for p in results.glob("*.png")}
    return all(frame.stem in done for frame in list_frames(frames_dir))


def _frames_path(davis_root: Path, seq: str) -> Path:
    return davis_root / "JPEGImages" / RESOLUTION / seq


def _frames_dir(davis_root: Path, seq: str) -> Path:
    path = _frames_path(davis_root, seq)
    if not path.is_dir():
        raise MissingInputError(
            f"frames of sequence {seq!r} not found: {path} (expected DAVIS-2017 480p JPEGs)"
        )
    return path


def _segment_to(pipe: UVOSAM, frames_dir: Path, out_dir: Path, name: str, options: ExportOptions,
                ytvis_id: int | None = None) -> ExportResult:  # fmt: skip
    info = probe(frames_dir)
    writer = ExportWriter(
        out_dir, video_name=name, class_names=pipe.class_names, height=info.height, width=info.width,
        frame_names=info.frame_names, options=options, ytvis_video_id=ytvis_id,
    )  # fmt: skip
    with writer:
        for result in pipe(iter_probed(info)):
            writer.add(result)
    return writer.close()


RUN_SETTINGS_FILE = ".uvosam-run.json"


def check_run_settings(out_dir: str | Path, settings: dict) -> None:
    """Raise ``InputError`` if ``out_dir`` holds results written with other ``settings`` (JSON-able values).

    A ``*_sha256`` entry (a weight file's checksum) that the folder's record lacks is not compared: folders of
    runs that recorded no checksums still resume. A folder that holds sequences' PNGs but no record (a version
    before the record, or results from elsewhere) is refused too: its models cannot be compared (they were
    resumed with any models, and the new record credited these with every sequence). Which code made them:
    ``check_run_code``, for a run that segments a sequence into the folder.
    """
    _check_settings(out_dir, settings, _read_record(out_dir))


def check_run_code(out_dir: str | Path) -> None:
    """Raise ``InputError`` if ``out_dir`` holds PNGs whose record names other code than ``code_identity()``, or
    none (a version before the code was recorded), for a run that would segment more into it: the same models give
    masks that differ in a fraction of a percent of their pixels from one code to another. A run with nothing left
    to segment only scores the folder: no check."""
    _check_code(out_dir, _read_record(out_dir))


def _read_record(out_dir: str | Path) -> object:
    """The parsed ``RUN_SETTINGS_FILE`` of ``out_dir``, or None where there is none (read once for both checks)."""
    path = Path(out_dir) / RUN_SETTINGS_FILE
    if not path.is_file():
        return None
    return read_json(
        path,
        f"it records the settings of the results in {out_dir}: use another --out, or delete {out_dir} to "
        "start over",
    )


def _check_settings(out_dir: str | Path, settings: dict, record: object) -> None:
    """``check_run_settings`` on the folder's parsed record (None: no record)."""
    if record is None:
        if unrecorded := _result_folders(out_dir):
            path = Path(out_dir) / RUN_SETTINGS_FILE
            raise InputError(
                f"{out_dir} holds results ({unrecorded}) with no record of the models that made them ({path} is "
                f"missing: an earlier uvosam, or results from elsewhere); resuming could mix two models in one "
                f"score. Use another --out, or delete {out_dir} to start over."
            )
        return
    # the settings apart from the code that made the results (not in a record of an earlier version)
    before = (
        {k: v for k, v in record.items() if k != CODE_KEY} if isinstance(record, dict) else record
    )
    compared = {k: v for k, v in settings.items() if k in before or not k.endswith("_sha256")}
    if before != compared:
        differ = (
            _settings_differ(before, compared) if isinstance(before, dict) else f"{before!r} there"
        )
        raise InputError(
            f"{out_dir} holds results of a run with other settings ({differ}); resuming would mix the "
            f"two in one score. Use another --out, or delete {out_dir} to start over."
        )


def _settings_differ(there: dict, here: dict) -> str:
    """The settings that differ, each with the folder's value and this run's: ``sam: 'vit_b' there, 'vit_h'
    here`` (a SHA-256 by its first 12 digits; "none" where one side has no such key)."""

    def shown(key: str, side: dict) -> str:
        if key not in side:
            return "none"
        value = side[key]
        if key.endswith("_sha256") and isinstance(value, str):
            return value[:12]
        return repr(value)

    keys = [k for k in dict.fromkeys([*there, *here]) if there.get(k, ...) != here.get(k, ...)]
    return "; ".join(f"{k}: {shown(k, there)} there, {shown(k, here)} here" for k in keys)


def _check_code(out_dir: str | Path, record: object) -> None:
    """``check_run_code`` on the folder's parsed record (None: no record, which ``_check_settings`` refused for a
    folder with results)."""
    if record is None:
        return
    code = record.get(CODE_KEY) if isinstance(record, dict) else None
    if code != code_identity() and (results := _result_folders(out_dir)):
        made_by = f"uvosam {code}" if code else "an earlier uvosam, which did not record its code"
        raise InputError(
            f"{out_dir} holds results ({results}) made by {made_by}, and this is uvosam {code_identity()}: "
            f"other code makes slightly different masks with the same models, and resuming would mix the two in "
            f"one score. Use another --out, or delete {out_dir} to start over (`uvosam davis-score` scores the "
            "folder as it is)."
        )


def _result_folders(out_dir: str | Path) -> str:
    """The sequence folders of ``out_dir`` that hold PNGs, for a message (``"a, b, c and 2 more"``); "" if none."""
    found = sorted(
        folder.name
        for folder in Path(out_dir).glob("[!.]*/")
        if folder.is_dir() and next(folder.glob("*.png"), None) is not None
    )
    return ", ".join(found[:3]) + (f" and {len(found) - 3} more" if len(found) > 3 else "")


def run_davis(
    pipe: UVOSAM, davis_root: str | Path, out_dir: str | Path, *, subset: str = "val",
    sequences: list[str] | None = None, settings: dict | None = None,
) -> Iterator[SequenceDone]:  # fmt: skip
    """Segment every sequence of a DAVIS set (or ``sequences`` of it) into ``<out_dir>/<seq>/<frame>.png``
    (resumable, see module doc). Every name and frame folder is checked (``select_davis_sequences``) before any
    sequence is segmented.

    ``settings``: what made ``pipe`` (e.g. model names); a run into a folder written with other settings raises
    ``ValueError`` (see ``check_run_settings``). None: not checked or recorded.
    """
    selection = select_davis_sequences(davis_root, subset, sequences)
    yield from run_davis_selection(pipe, selection, out_dir, settings=settings)


def run_davis_selection(
    pipe: UVOSAM, selection: DavisSelection, out_dir: str | Path, *, settings: dict | None = None
) -> Iterator[SequenceDone]:
    """``run_davis`` of sequences already picked and checked by ``select_davis_sequences`` (a caller that needs
    the set's list before it loads ``pipe``, as ``uvosam davis-run`` does, reads and checks it only once)."""
    out_dir = Path(out_dir)
    names = selection.names
    finished = {seq for seq, frames_dir in zip(names, selection.frame_dirs, strict=True)
                if sequence_finished(out_dir / seq, frames_dir)}  # fmt: skip
    left = [seq for seq in names if seq not in finished]
    if settings is not None:
        record = _read_record(out_dir)
        _check_settings(out_dir, settings, record)
        if left:  # with nothing left, the record of what made the folder stays
            _check_code(out_dir, record)
            out_dir.mkdir(parents=True, exist_ok=True)
            (out_dir / RUN_SETTINGS_FILE).write_text(
                json.dumps({**settings, CODE_KEY: code_identity()}, sort_keys=True),
                encoding="utf-8",
            )
    partial = out_dir / ".partial"
    options = ExportOptions(davis=True, cutouts=False, mattes=False, results_json=False, ytvis=False,
                            tracks_csv=False, timeline=False)  # fmt: skip
    for index, (seq, frames_dir) in enumerate(zip(names, selection.frame_dirs, strict=True)):
        final = out_dir / seq
        if seq in finished:
            yield SequenceDone(seq, index, len(names), len(list(final.glob("*.png"))), True)
            continue
        if final.is_dir():
            logger.warning(
                "%s lacks a PNG of one of %s's frames: segmenting %s again", final, seq, seq
            )
            shutil.rmtree(final)
        shutil.rmtree(partial / seq, ignore_errors=True)
        frames = _segment_to(pipe, frames_dir, partial / seq, seq, options).num_frames
        (partial / seq / "davis" / seq).rename(final)
        shutil.rmtree(partial / seq)
        yield SequenceDone(seq, index, len(names), frames, False)
    shutil.rmtree(partial, ignore_errors=True)


YTVIS_CLASS_THRES = InferenceConfig().apply_cls_thres
"""IDOL's ``APPLY_CLS_THRES`` (0.05), for a tracker that does not say its own (``ytvis_class_thres``)."""


def ytvis_class_thres(tracker: BoxTracker) -> float | None:
    """The ``ExportOptions.ytvis_class_thres`` that gives ``tracker``'s own YouTube-VIS entries: its
    ``InferenceConfig.apply_cls_thres`` (an ``IDOLTracker``'s, from its YAML), ``YTVIS_CLASS_THRES`` for a tracker
    without one. The per-class scores are always means: a ``temporal_score="max"`` config is warned about. A config
    that turns ``multi_cls_on`` off gets ``None`` (one entry per track), warned about too: the original then takes
    each track's best class by mean probability, with that mean as score (see the module docstring)."""
    inference = getattr(tracker, "inference", None)
    if not isinstance(inference, InferenceConfig):
        return YTVIS_CLASS_THRES
    if not inference.multi_cls_on:
        warnings.warn(
            "the tracker's InferenceConfig.multi_cls_on is off: the YouTube-VIS results list each track once, "
            "under its streamed label with its mean per-frame score, not under the original's best class by mean "
            "probability with that mean",
            stacklevel=3,
        )
        return None
    if inference.temporal_score != "mean":
        warnings.warn(
            f"the tracker's InferenceConfig.temporal_score is {inference.temporal_score!r}; the YouTube-VIS "
            "results score each (track, class) by its MEAN class probability ('mean', the released configs)",
            stacklevel=3,
        )
    return inference.apply_cls_thres


def run_ytvis(
    pipe: UVOSAM, ytvis_root: str | Path, out_json: str | Path, *, split: str = "valid",
    progress: Callable[[SequenceDone], None] | None = None, class_agnostic: bool = False,
) -> Path:  # fmt: skip
    """Segment every video of a YouTube-VIS split; write ``out_json`` and ``<out_json stem>.zip``. Returns the zip.

    The split is read and checked whole first (``read_ytvis_split``: every video id and listed frame), then
    segmented by ``run_ytvis_split``.
    """
    data = read_ytvis_split(ytvis_root, split)
    return run_ytvis_split(pipe, data, out_json, progress=progress, class_agnostic=class_agnostic)


def run_ytvis_split(
    pipe: UVOSAM, data: YtvisSplit, out_json: str | Path, *,
    progress: Callable[[SequenceDone], None] | None = None, class_agnostic: bool = False,
) -> Path:  # fmt: skip
    """``run_ytvis`` of a split already read and checked by ``read_ytvis_split`` (``uvosam ytvis-run`` reads it
    before it loads ``pipe``).

    The entries are the original IDOL's, one per (track, class) above the threshold ``ytvis_class_thres`` gives for
    ``pipe.tracker`` (see the module docstring), each under the category id that the annotation file gives its
    class's name (``ytvis_category_ids``, checked before any frame is read: a tracker whose classes are not the
    dataset's raises ``ValueError``; ``class_agnostic``: a one-class tracker's results all go under the lowest
    category id). They are written one video at a time into ``<out_json>.tmp`` (flushed before ``progress`` hears
    of the video), which replaces ``out_json`` once the last video is in: memory holds one video's entries, and a
    run that fails or is interrupted leaves an earlier ``out_json`` and zip as they were. The file is
    ``json.dumps`` of the whole list, byte for byte.
    """
    category_ids = ytvis_category_ids(
        pipe.class_names, data.categories, class_agnostic=class_agnostic
    )
    out_json = Path(out_json)
    out_json.parent.mkdir(parents=True, exist_ok=True)
    options = ExportOptions(
        davis=False, cutouts=False, mattes=False, results_json=False, ytvis=True, tracks_csv=False,
        timeline=False, ytvis_class_thres=ytvis_class_thres(pipe.tracker),
    )  # fmt: skip
    videos = data.videos
    with (
        tempfile.TemporaryDirectory(dir=out_json.parent) as tmp,
        replacing(out_json) as partial,
        open(partial, "w", encoding="utf-8") as handle,
    ):
        handle.write("[")
        written = 0
        for index, video in enumerate(videos):
            frames_dir = _video_frames(data.images_root, video, Path(tmp) / "frames")
            name = f"v{video['id']}"
            export = _segment_to(pipe, frames_dir, Path(tmp) / name, name, options, video["id"])
            entries = json.loads(export.ytvis_json.read_text())
            for entry in entries:  # the writer numbers classes index + 1
                entry["category_id"] = category_ids[entry["category_id"] - 1]
            written = _append_entries(handle, entries, written)
            shutil.rmtree(Path(tmp) / name)
            if progress is not None:
                progress(
                    SequenceDone(str(video["id"]), index, len(videos), export.num_frames, False)
                )
        handle.write("]")
    zip_path = out_json.with_suffix(".zip")
    with (
        replacing(zip_path) as partial_zip,
        zipfile.ZipFile(partial_zip, "w", zipfile.ZIP_DEFLATED) as archive,
    ):
        archive.write(out_json, "results.json")
    return zip_path


def _append_entries(handle: TextIO, entries: list[dict], written: int) -> int:
    """Write ``entries`` into the JSON list being written to ``handle``, after the ``written`` already there, as
    ``json.dumps`` writes a list's items (``", "`` between them); flush; return how many are there now."""
    for entry in entries:
        handle.write((", " if written else "") + json.dumps(entry, allow_nan=False))
        written += 1
    handle.flush()
    return written


def _video_frames(images_root: Path, video: dict, link_dir: Path) -> Path:
    """A folder holding exactly the video's listed frames, in order (links, ``_linked``, when the folder has
    extras)."""
    files = [images_root / f for f in video["file_names"]]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:  # read_ytvis_split found them all: deleted since
        raise MissingInputError(
            f"YouTube-VIS video {video['id']}: {len(missing)} frame(s) missing, e.g. {missing[0]}"
        )
    folder = files[0].parent
    if sorted(folder.iterdir()) == sorted(files):
        return folder
    shutil.rmtree(link_dir, ignore_errors=True)
    link_dir.mkdir(parents=True)
    for i, f in enumerate(files):
        _linked(f.resolve(), link_dir / f"{i:05d}{f.suffix}")
    return link_dir


def _linked(target: Path, link: Path) -> None:
    """``link`` made a symlink to ``target``; where symlinks are not allowed (Windows without admin rights or
    Developer Mode) a hard link, and where that fails too (another drive) a copy."""
    try:
        link.symlink_to(target)
    except OSError:
        try:
            os.link(target, link)
        except OSError:
            shutil.copyfile(target, link)
