"""What the app shows of a finished run, read from the export zip that Run or Re-render made: the track timeline,
the likely id switches (merge hints), the J&F score against uploaded ground truth. Nothing here imports gradio.
"""

from __future__ import annotations

import csv
import io
import json
import tempfile
import warnings
import zipfile
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from uvosam.config import is_integer
from uvosam.eval.clip import (
    ground_truth_files,
    id_gaps_note,
    late_objects_note,
    pair_ground_truth,
    score_clip,
)
from uvosam.eval.layout import scaled_run_note
from uvosam.eval.masks_io import WRITE_HINT
from uvosam.job_types import JobResult
from uvosam.merge_hints import merge_text, split_groups, suggest_merges
from uvosam.text import count
from uvosam.timeline import TimelineRow, draw_timeline, largest_size, shown_rows
from uvosam.track_edit import parse_merge
from uvosam_app.text import GROUND_TRUTH_FRAMES, score_markdown
from uvosam_app.zip_images import check_unpackable, extract_images


def track_rows(result: JobResult) -> list[list[Any]]:
    """The rows of the page's track table: id, class, score, first and last frame, frames, returns."""
    return [
        [
            t.track_id,
            t.class_name,
            round(t.score, 3),
            t.first_frame,
            t.last_frame,
            t.num_frames,
            t.returns,
        ]
        for t in result.tracks
    ]


NARROW_PLOT_WIDTH = 150
"""Pixels of frame axis in the timeline drawn for a phone: 316 px in all with the labels, in a 390 px wide phone's
326 px column (Chromium, 2026-11-30) at its size: the zip's (up to 1066 px) scrolled sideways there, and scaled
down to fit, its labels were 4 px tall."""


def timeline_views(masks_zip: str | None) -> tuple[np.ndarray | None, np.ndarray | None, str]:
    """The track timeline of an export zip (of a run or a re-render) as the zip has it (``timeline.png``), and
    drawn again for a phone's width (``NARROW_PLOT_WIDTH``) from its tracks.csv, results.json and run.json, each
    HxWx3 uint8 RGB or None (no image) without them; and the images' alt text (``timeline_alt``; "" without an
    image)."""
    if not masks_zip or not Path(masks_zip).is_file():
        return None, None, ""
    with zipfile.ZipFile(masks_zip) as archive:
        names = set(archive.namelist())
        if "timeline.png" not in names:
            return None, None, ""
        wide = _zip_timeline(archive)
        frames = (zip_run_record(archive).get("export") or {}).get("frames")
        if not ({"tracks.csv", "results.json", "run.json"} <= names and frames):
            # a zip without its tables or its export's record: the wide one only
            return wide, None, "" if wide is None else timeline_alt(None, 0)
        rows = _timeline_rows(archive)
    if wide is None:
        wide = draw_timeline(rows, int(frames))  # as the export draws it now
    narrow = draw_timeline(rows, int(frames), max_plot_width=NARROW_PLOT_WIDTH)
    return wide, narrow, timeline_alt(rows, int(frames))


def _zip_timeline(archive: zipfile.ZipFile) -> np.ndarray | None:
    """The zip's timeline.png, or None when it is larger than any timeline drawn now (``timeline.largest_size``):
    a zip of an earlier version has a row for every track, and with thousands of tracks it was hundreds of
    megapixels, which Pillow refuses to open (``DecompressionBombError``; the merge hints of the same event were
    lost with it) or decodes in gigabytes. Only its header is read before that check."""
    most_h, most_w = largest_size()
    with warnings.catch_warnings():  # DecompressionBombWarning: the size is checked below
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(archive.read("timeline.png")))
        except Image.DecompressionBombError:
            return None
    with image:
        if image.height > most_h or image.width > most_w:
            return None
        return np.asarray(image.convert("RGB"))


TIMELINE_ALT_TRACKS = 10
"""Most tracks the timeline's alt text names (the rest: "and N more"): a screen reader reads it in one go."""


def timeline_alt(rows: Sequence[TimelineRow] | None, frames: int) -> str:
    """The timeline image's alt text: what its bars show, in short (``"Track timeline of 50 frames: #1 person
    frames 0-49; #2 dog frames 3-20 (seen in 12)"``); for a zip without its tracks (``rows`` None), where the
    tracks table says it."""
    if rows is None:
        return "Track timeline: the frames each track was seen in (the tracks table gives its first and last)"
    if not rows:
        return f"Track timeline of {count(frames, 'frame')}: no track"
    parts = []
    for row in shown_rows(rows)[:TIMELINE_ALT_TRACKS]:  # of those the image shows
        seen = sorted(row.frames)
        span = f"{seen[0]}-{seen[-1]}" if seen else "none"
        gaps = f" (seen in {len(seen)})" if seen and len(seen) < seen[-1] - seen[0] + 1 else ""
        parts.append(f"#{row.track_id} {row.class_name} frames {span}{gaps}")
    more = len(rows) - TIMELINE_ALT_TRACKS
    tail = f"; and {count(more, 'more track')}" if more > 0 else ""
    return f"Track timeline of {count(frames, 'frame')}: " + "; ".join(parts) + tail


def _timeline_rows(archive: zipfile.ZipFile) -> list[TimelineRow]:
    """The rows of the export zip's timeline, as the export drew them (tracks.csv's order and classes, the frames
    with a box in results.json)."""
    classes = csv.DictReader(io.StringIO(archive.read("tracks.csv").decode("utf-8")))
    names = {int(row["track_id"]): row["class_name"] for row in classes}
    return [
        TimelineRow(track_id, names[track_id], sorted(boxes))
        for track_id, boxes in _zip_track_boxes(archive).items()
    ]


MAX_HINTS_SHOWN = 20
"""Most possible id switches the page lists (the rest: "and N more"; the zip's README.txt and the CLI give them all):
a run with thousands of tracks had thousands, a megabyte of Markdown."""


def merge_hints_markdown(masks_zip: str | None, merge: str | None = None) -> str:
    """Markdown: the possible id switches among the tracks of the zip shown ("" if none or no zip).

    ``merge``: the *Merge tracks* box. Re-render starts from the run's tracks, so the merge to put there is
    the one the zip was made with (its pairs whose source is gone from the zip and whose target is in it)
    grown by the hints; putting the hints alone would undo it. (After a Run, a pair left in the box from an
    earlier video that names a track this run does not have is kept too; Re-render then names that track.)
    """
    if not masks_zip or not Path(masks_zip).is_file():
        return ""
    with zipfile.ZipFile(masks_zip) as archive:
        boxes = _zip_track_boxes(archive)
        rerender = zip_run_record(archive).get("rerender")
    hints = suggest_merges(boxes, apart=split_groups(rerender))  # never undoing its split
    if not hints:
        return ""
    shown = hints[:MAX_HINTS_SHOWN]
    lines = "".join(f"\n- `{h.source}>{h.target}`: {h.describe()}" for h in shown)
    them = "them"
    if len(hints) > len(shown):
        lines += f"\n- and {len(hints) - len(shown)} more: the zip's README.txt lists them all"
        them = f"the {len(shown)} above"
    return (
        f"**Possible id switches** (one object that may have got a new id):{lines}\n\n"
        f"To join {them}, put `{merge_text(shown, _applied_merge(merge, boxes))}` in *Merge tracks* and press "
        "Re-render."
    )


def score_masks_zip(gt_zip: str, masks_zip: str, *, max_files: int, work_dir: Path) -> str:
    """J&F of the masks of an export zip (its DAVIS PNGs) against a zip of ground-truth PNGs, as Markdown
    (``score_markdown``).

    Args:
        gt_zip: indexed PNGs (0 background, 1..K objects, 255 void), one per frame of the video or per processed
            frame, in name order, or of key frames only, named as those frames. masks_zip: the zip Run or
            Re-render made: its run.json says which video frames its masks are (``_MasksRecord``), whichever
            session made it.
        max_files: the most PNGs taken from either zip. work_dir: where both are unpacked (a temporary folder
            inside it, deleted after).

    Raises:
        ValueError, FileNotFoundError: a zip that is not one of those, ground truth that does not match the
            frames (``pair_ground_truth``) or that cannot be scored (``_check_ground_truth``). Files are named
            as they are in their zip, never by the temporary folder.
    """
    with tempfile.TemporaryDirectory(prefix="score-", dir=work_dir) as tmp:
        gt = _Unpacked.of(gt_zip, Path(tmp, "gt"), "", max_files)
        res = _Unpacked.of(masks_zip, Path(tmp, "res"), "davis/", max_files)
        processed = [p.stem for p in ground_truth_files(res.folder)]
        record = _MasksRecord.of(masks_zip)
        indices, num_frames = record.frame_indices(len(processed))
        names, truth = pair_ground_truth(
            ground_truth_files(gt.folder), processed, indices, num_frames
        )
        size = _mask_size(res.folder / f"{names[0]}.png", res)
        _check_ground_truth(truth, size, gt, scaled=record.scaled)
        try:
            scores = score_clip(res.folder, truth, names)
        except (ValueError, FileNotFoundError) as err:  # damaged pixel data, ids over 20...
            message = res.in_zip_terms(gt.in_zip_terms(str(err)))
            raise ValueError(message.replace(WRITE_HINT, _WRITE_HINT_FOR_UPLOADS)) from None
        notes = (
            id_gaps_note(truth[0], shown_as=gt.where(truth[0])),
            late_objects_note(truth, shown_as=gt.where),
        )
        note = " ".join(n for n in notes if n) or None
    return score_markdown(scores, record.tracks, len(names), note, processed=len(processed))


GROUND_TRUTH_FORMAT = (
    "8-bit palette (indexed) or grayscale PNGs whose pixel values are the object ids (0 background, 1..K "
    "objects, 255 void), as DAVIS Annotations are"
)
_WRITE_HINT_FOR_UPLOADS = "save it as an 8-bit palette (indexed) or grayscale PNG of object ids"
_MODE_NAMES = {
    "RGB": "an RGB",
    "RGBA": "an RGBA",
    "LA": "a grayscale + alpha",
    "PA": "a palette + alpha",
}


@dataclass(frozen=True)
class _Unpacked:
    """The PNGs of one folder of an uploaded zip, unpacked into ``folder``; named as in the zip for the user."""

    zip_name: str
    inside: PurePosixPath  # their folder in the zip ("." for its root)
    folder: Path

    @classmethod
    def of(cls, zip_path: str, parent: Path, prefix: str, max_files: int) -> _Unpacked:
        expected = (
            "Score takes the masks zip that Run or Re-render made." if prefix
            else f"The ground truth must be {GROUND_TRUTH_FORMAT}, in a .zip: {GROUND_TRUTH_FRAMES}."
        )  # fmt: skip
        images = extract_images(
            zip_path,
            parent,
            prefix=prefix,
            max_files=max_files,
            max_bytes=1 << 30,
            expected=expected,
        )
        return cls(Path(zip_path).name, images.inside, images.folder)

    def where(self, file: Path) -> str:
        """``file`` (unpacked) as the user knows it: ``gt.zip: annot/00000.png``."""
        return f"{self.zip_name}: {self.inside / file.name}"

    def in_zip_terms(self, message: str) -> str:
        """``message`` with the unpacked folder named by the zip: ``gt.zip/annot/00000.png``."""
        return message.replace(str(self.folder), str(PurePosixPath(self.zip_name, self.inside)))

    def unreadable(self, err: Exception) -> str:
        """Why PIL could not open an unpacked file, in the zip's terms: "no image inside" for an
        ``UnidentifiedImageError`` (whose message names the file by the server's path), else ``err``'s message."""
        return (
            "no image inside"
            if isinstance(err, UnidentifiedImageError)
            else self.in_zip_terms(str(err))
        )


def _mask_size(file: Path, masks: _Unpacked) -> tuple[int, int]:
    """(width, height) of a mask PNG of the export zip, from its header: the video's size."""
    try:
        with Image.open(file) as image:
            return image.size
    except (OSError, Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise ValueError(
            f"{masks.where(file)} is not a readable mask PNG ({masks.unreadable(err)}); score the zip that Run or "
            "Re-render made"
        ) from None


def _check_ground_truth(
    files: Sequence[Path], size: tuple[int, int], gt: _Unpacked, *, scaled: str | None = None
) -> None:
    """Refuse, from their headers (no pixel is decoded), ground-truth PNGs that cannot be scored against masks
    of ``size`` (w, h): not an image, not one id per pixel (a colour rendering), another size (a huge one too;
    ``scaled``: why the masks have another size than the video's, ``_MasksRecord.scaled``).

    Raises:
        ValueError: naming the file as it is in the zip, and saying what to upload instead.
    """
    at_size = scaled or (
        f"the masks are {size[0]}x{size[1]} (the video's size): give the ground truth at that size (resized "
        "with nearest-neighbour sampling, so that ids stay ids)"
    )
    for file in files:
        try:
            with Image.open(file) as image:
                mode, got = image.mode, image.size
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise ValueError(
                f"{gt.where(file)} has too many pixels to open, but {at_size}"
            ) from None
        except OSError as err:
            raise ValueError(
                f"{gt.where(file)} is not a readable PNG image ({gt.unreadable(err)}); save the annotations as "
                f"{GROUND_TRUTH_FORMAT}"
            ) from None
        if Image.getmodebands(mode) != 1:
            raise ValueError(
                f"{gt.where(file)} is {_MODE_NAMES.get(mode, f'a {mode}')} PNG; expected one object id per "
                "pixel (a colour rendering of the masks cannot be scored): save the annotations as "
                f"{GROUND_TRUTH_FORMAT}"
            )
        if got != size:
            raise ValueError(f"{gt.where(file)} is {got[0]}x{got[1]} but {at_size}")


@dataclass(frozen=True)
class _MasksRecord:
    """What an export zip says of its masks besides the PNGs: ``tracks`` (DAVIS label -> track id, tracks.csv)
    and its run's frame selection (run.json's ``settings.stride`` and ``video.source_frames``; a re-render keeps
    its run's), None where the zip does not say (the masks are then one per frame of the video, which the PNGs'
    names, those of the frames, overrule where they match); ``scaled``: what to do when its run scaled the frames
    down (``scaled_run_note``), else None."""

    tracks: dict[int, int]
    stride: int | None
    source_frames: int | None
    scaled: str | None = None

    @classmethod
    def of(cls, masks_zip: str) -> _MasksRecord:
        """Read from the zip, opened once (its listing is parsed on opening).

        Raises:
            ValueError: the zip has no tracks.csv with those columns, or one over ``MAX_RECORD_BYTES`` (not a zip
                that Run or Re-render made).
        """
        name = Path(masks_zip).name
        with zipfile.ZipFile(masks_zip) as zf:
            listed = set(zf.namelist())
            if "tracks.csv" not in listed:
                raise ValueError(
                    f"{name} has no tracks.csv: score the zip that Run or Re-render made"
                )
            table = _record(zf, name, "tracks.csv")
            try:
                rows = csv.DictReader(io.StringIO(table.decode("utf-8")))
                tracks = {
                    int(r["davis_label"]): int(r["track_id"]) for r in rows if r["davis_label"]
                }
            except _UNREADABLE as err:
                raise ValueError(
                    f"{name}: its tracks.csv has no readable davis_label and track_id "
                    f"columns ({err!r}); score the zip that Run or Re-render made"
                ) from None
            # refused like tracks.csv if its bytes cannot be read whole (too big, damaged); text that is no JSON
            # (a zip edited by hand) counts as none: its masks are then taken as one per frame
            raw = _record(zf, name, "run.json") if "run.json" in listed else None
            try:
                record = None if raw is None else json.loads(raw)
            except ValueError:
                record = None
        return cls(
            tracks,
            _count_at(record, "settings", "stride"),
            _count_at(record, "video", "source_frames"),
            scaled_run_note(record, _RUN_AT_SOURCE),
        )

    def frame_indices(self, processed: int) -> tuple[list[int], int]:
        """The video frame of each of the ``processed`` masks, and the video's frame count."""
        stride = self.stride or 1
        indices = [i * stride for i in range(processed)]
        return indices, max(self.source_frames or 0, indices[-1] + 1 if indices else 0)


_RUN_AT_SOURCE = (
    "with `uvosam segment`, or in an app whose host set UVOSAM_MAX_SIDE to {side} or more"
)
_UNREADABLE = (KeyError, TypeError, ValueError, zipfile.BadZipFile, zlib.error, EOFError, csv.Error)

MAX_RECORD_BYTES = 4 << 20
"""Most bytes Score reads of an export zip's tracks.csv or run.json, as its listing declares them (``zipfile`` reads
no further): a run's are a few KiB (a row per track; the settings). A zip given to /score may declare 1 GiB of
spaces in 1 MB."""


def _record(archive: zipfile.ZipFile, name: str, member: str) -> bytes:
    """The bytes of the export zip's ``member`` (the zip ``name``), read whole once its listing shows it small.

    Raises:
        ValueError: over ``MAX_RECORD_BYTES``, a member ``zipfile`` cannot unpack (``check_unpackable``), damaged
            data.
    """
    info = archive.getinfo(member)
    check_unpackable(name, {PurePosixPath(member): info})
    if info.file_size > MAX_RECORD_BYTES:
        raise ValueError(
            f"{name}: its {member} is {info.file_size} bytes, over the {MAX_RECORD_BYTES} an export's can be; "
            "score the zip that Run or Re-render made"
        )
    try:
        return archive.read(info)
    except (zipfile.BadZipFile, zlib.error, EOFError) as err:  # a bad CRC, cut or garbled data
        raise ValueError(f"{name}: its {member} is damaged ({err}); zip the files again") from None


def _count_at(record: object, section: str, key: str) -> int | None:
    """``record[section][key]`` when it is a count (a positive integer), else None (a run.json edited by hand)."""
    part = record.get(section) if isinstance(record, dict) else None
    value = part.get(key) if isinstance(part, dict) else None
    return int(value) if is_integer(value) and value >= 1 else None


def _zip_track_boxes(archive: zipfile.ZipFile) -> dict[int, dict[int, list[float]]]:
    """``{track_id: {frame: box_xyxy}}`` from an export zip's tracks.csv (ids) and results.json (boxes, same order);
    {} without them."""
    if not {"tracks.csv", "results.json"} <= set(archive.namelist()):
        return {}
    rows = csv.DictReader(io.StringIO(archive.read("tracks.csv").decode("utf-8")))
    entries = json.loads(archive.read("results.json"))
    return {
        int(row["track_id"]): {t: box for t, box in enumerate(entry["boxes"]) if box is not None}
        for row, entry in zip(rows, entries)
    }


def zip_run_record(archive: zipfile.ZipFile) -> dict[str, Any]:
    """An export zip's run.json, as the page's views read it (the timeline, the merge hints, the parts *Tracks to
    keep* offers: ``keep_parts.rerender_record``): {} without one, with one over ``MAX_RECORD_BYTES`` as its
    listing declares it (no export's is: ``zipfile`` reads no further), or with one that is no JSON object (a zip
    edited by hand). Score refuses such a zip instead (``_record``)."""
    try:
        info = archive.getinfo("run.json")
    except KeyError:
        return {}
    if info.file_size > MAX_RECORD_BYTES:
        return {}
    try:
        record = json.loads(archive.read(info))
    except ValueError:
        return {}
    return record if isinstance(record, dict) else {}


def _applied_merge(text: str | None, shown: Mapping[int, Any]) -> dict[int, int]:
    """The pairs of the *Merge tracks* text that the zip with tracks ``shown`` was re-rendered with: source gone,
    target there. Text that does not parse made no zip (Re-render refuses it): nothing applied."""
    try:
        merge = parse_merge(text)
    except ValueError:
        return {}
    return {s: t for s, t in merge.items() if s not in shown and t in shown}
