"""What the app shows of a finished run, read from the export zip that Run or Re-render made: the tracks table, the
track timeline, the likely id switches (merge hints); Score's J&F against uploaded ground truth is ``scoring``'s.
Nothing here imports gradio.
"""

from __future__ import annotations

import csv
import io
import json
import warnings
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from uvosam.errors import InputError
from uvosam.job_types import JobResult
from uvosam.merge_hints import merge_text, split_groups, suggest_merges
from uvosam.text import count
from uvosam.timeline import TimelineRow, draw_timeline, largest_size, shown_rows
from uvosam.track_edit import parse_merge


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


MAX_RECORD_BYTES = 4 << 20
"""Most bytes Score and Re-render read of an export zip's tracks.csv or run.json, as its listing declares them
(``zipfile`` reads no further): a run's are a few KiB (a row per track; the settings). A zip given to /score may
declare 1 GiB of spaces in 1 MB."""


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
    edited by hand). Score refuses such a zip instead (``scoring._record``)."""
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
    except InputError:
        return {}
    return {s: t for s, t in merge.items() if s not in shown and t in shown}
