"""A track timeline: one row per track, a bar in the track's colour on every frame it was seen in.

At a glance it shows what a table cannot: when each object is present, the gaps after which a track came back,
and a track that ends where another begins (often one object that got a new id: a candidate for a merge).
Frames map to columns left to right; with more frames than ``max_plot_width`` pixels, a column stands for several
frames and is filled if the track was seen in any of them. Rows are bounded too (``MAX_ROWS``): a run with thousands
of tracks (a tracker that gives each object a new id every few frames) drew a 211-megapixel image, which Pillow then
refused to read back as a decompression bomb; the longest tracks get rows, a last line counts the others. A mark
narrower than ``MIN_MARK`` pixels (a track seen in one frame of a long video was a 1 px sliver) is widened around
its frame, never closer than a pixel to the next mark; with more than ``AXIS_BELOW_ROWS`` rows the frame axis is
repeated under them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from uvosam.colours import colour_for_id
from uvosam.errors import InputError
from uvosam.render import label_font
from uvosam.text import count

__all__ = [
    "AXIS_BELOW_ROWS",
    "MAX_ROWS",
    "MIN_MARK",
    "TimelineRow",
    "draw_timeline",
    "largest_size",
    "shown_rows",
]

_ROW_H = 18
_GAP = 4
_LABEL_W = 150
_AXIS_H = 22
_MARGIN = 8
_BACKGROUND = (255, 255, 255)
_EMPTY = (236, 236, 236)
_INK = (40, 40, 40)
_TICK_SPACING = 40  # px of plot per frame number on the axis, at least ("1000" is 28 px wide)

MAX_ROWS = 100
"""Most tracks a timeline draws (2,282 px tall with the axis under them and the line that counts the rest): the
longest (seen in the most frames), in the given order."""

MIN_MARK = 3
"""Fewest pixels a mark (a run of frames a track was seen in) is wide, where the next mark leaves room."""

AXIS_BELOW_ROWS = 25
"""With more rows than this (over 550 px of them) the frame axis is drawn under the rows too."""


@dataclass(frozen=True)
class TimelineRow:
    """One track: its id, class name and the 0-based frame indices it was seen in."""

    track_id: int
    class_name: str
    frames: Sequence[int]


def shown_rows(rows: Sequence[TimelineRow]) -> list[TimelineRow]:
    """The rows a timeline draws: all, or the ``MAX_ROWS`` seen in the most frames (ties: the earlier), in the
    order of ``rows``."""
    if len(rows) <= MAX_ROWS:
        return list(rows)
    longest = sorted(range(len(rows)), key=lambda i: (-len(rows[i].frames), i))[:MAX_ROWS]
    return [rows[i] for i in sorted(longest)]


def largest_size(max_plot_width: int = 900) -> tuple[int, int]:
    """(height, width) in pixels that no timeline ``draw_timeline`` draws with ``max_plot_width`` exceeds."""
    return _height(MAX_ROWS, more=True), _LABEL_W + max_plot_width + 2 * _MARGIN


def _height(shown: int, *, more: bool) -> int:
    axes = 1 + (shown > AXIS_BELOW_ROWS)
    return 2 * _MARGIN + axes * _AXIS_H + (max(1, shown) + more) * (_ROW_H + _GAP)


def draw_timeline(
    rows: Sequence[TimelineRow],
    num_frames: int,
    *,
    max_plot_width: int = 900,
    listed_in: str | None = "tracks.csv",
) -> np.ndarray:
    """The timeline as an (H, W, 3) uint8 RGB image (rows in the given order; frame 0 on the left): a row for each
    track of ``shown_rows(rows)``, then with more tracks than those a line that says how many more.

    Args:
        rows: the tracks, e.g. in order of first appearance.
        num_frames: frames in the video (>= 1); every index in ``rows`` must be below it.
        max_plot_width: most pixels for the frame axis (>= 10); a video with fewer frames gets a few pixels each.
        listed_in: the file beside it that lists every track, which that line points to ("and 3 more tracks: see
            tracks.csv"); None where there is none (an export without tracks.csv).
    """
    if num_frames < 1 or max_plot_width < 10:
        raise InputError(f"draw_timeline: need num_frames >= 1 and max_plot_width >= 10; got {num_frames}, "
                         f"{max_plot_width}")  # fmt: skip
    plot_w = (
        num_frames * max(1, max_plot_width // num_frames)
        if num_frames <= max_plot_width
        else max_plot_width
    )
    more = max(0, len(rows) - MAX_ROWS)  # tracks left out
    rows = shown_rows(rows)
    height = _height(len(rows), more=more > 0)
    canvas = np.full((height, _LABEL_W + plot_w + 2 * _MARGIN, 3), _BACKGROUND, np.uint8)
    x0 = _MARGIN + _LABEL_W
    for i, row in enumerate(rows):
        y = _MARGIN + _AXIS_H + i * (_ROW_H + _GAP)
        canvas[y : y + _ROW_H, x0 : x0 + plot_w] = _EMPTY
        seen = _columns(row.frames, num_frames, plot_w, row.track_id)
        canvas[y : y + _ROW_H, x0 : x0 + plot_w][:, seen] = colour_for_id(row.track_id)
    image = Image.fromarray(canvas)
    _draw_text(ImageDraw.Draw(image), rows, num_frames, plot_w, more=more, listed_in=listed_in)
    return np.asarray(image).copy()


def _columns(frames: Sequence[int], num_frames: int, plot_w: int, track_id: int) -> np.ndarray:
    """(plot_w,) bool: the columns holding a frame the track was seen in."""
    index = np.asarray(frames, np.int64)
    if index.size and (index.min() < 0 or index.max() >= num_frames):
        raise InputError(f"draw_timeline: track {track_id} has frames outside 0..{num_frames - 1}")
    seen = np.zeros(plot_w, bool)
    first = index * plot_w // num_frames  # the columns frame t covers: [t * w / n, (t + 1) * w / n)
    last = np.maximum(first, (index + 1) * plot_w // num_frames - 1)
    for a, b in zip(first.tolist(), last.tolist()):
        seen[a : b + 1] = True
    return _widened(seen)


def _widened(seen: np.ndarray) -> np.ndarray:
    """``seen`` (plot_w,) bool with each run of True narrower than ``MIN_MARK`` grown by a column on both sides
    (inwards only at the plot's edge) until it is that wide, where the column beyond stays free on both (marks keep a
    gap between them; one squeezed by its neighbours stays as it is): a new array."""
    out = seen.copy()
    starts = np.flatnonzero(seen & ~np.r_[False, seen[:-1]])
    ends = np.flatnonzero(seen & ~np.r_[seen[1:], False])
    last = len(out) - 1
    for start, end in zip(starts.tolist(), ends.tolist()):
        a, b = start, end
        while b - a + 1 < MIN_MARK:
            left = a > 0 and _free(out, a - 1, a - 2)
            right = b < last and _free(out, b + 1, b + 2)
            if a == 0 or b == last:  # at an edge: inwards
                if not (left or right):
                    break
                a, b = (a - 1, b) if left else (a, b + 1)
            elif left and right:
                a, b = a - 1, b + 1
            else:
                break
        out[a : b + 1] = True
    return out


def _free(seen: np.ndarray, column: int, beyond: int) -> bool:
    """Whether a mark can grow into ``column`` (on the plot): it and ``beyond`` (if on the plot) are not seen."""
    return not seen[column] and not (0 <= beyond < len(seen) and seen[beyond])


def _draw_text(
    draw: ImageDraw.ImageDraw,
    rows: Sequence[TimelineRow],
    num_frames: int,
    plot_w: int,
    *,
    more: int,
    listed_in: str | None,
) -> None:
    font = label_font(12)
    x0 = _MARGIN + _LABEL_W
    for i, row in enumerate(rows):
        y = _MARGIN + _AXIS_H + i * (_ROW_H + _GAP)
        label = _fit(f"#{row.track_id} {row.class_name}", font, _LABEL_W - 6)
        draw.text((_MARGIN, y + 2), label, fill=_INK, font=font)
    if not rows:
        draw.text((x0 + 4, _MARGIN + _AXIS_H + 2), "no objects found", fill=_INK, font=font)
    if more:
        text = _fit(
            f"and {count(more, 'more track')}" + (f": see {listed_in}" if listed_in else ""),
            font,
            plot_w + _LABEL_W,
        )
        below = _rows_end(len(rows)) + _AXIS_H * (len(rows) > AXIS_BELOW_ROWS)
        draw.text((_MARGIN, below + 2), text, fill=_INK, font=font)
    _draw_axis(draw, font, num_frames, plot_w, top=_MARGIN, below=False)
    if len(rows) > AXIS_BELOW_ROWS:
        _draw_axis(draw, font, num_frames, plot_w, top=_rows_end(len(rows)), below=True)


def _rows_end(shown: int) -> int:
    """The pixel line just under the last of ``shown`` rows (and its gap)."""
    return _MARGIN + _AXIS_H + shown * (_ROW_H + _GAP)


def _draw_axis(
    draw: ImageDraw.ImageDraw,
    font: ImageFont.ImageFont | ImageFont.FreeTypeFont,
    num_frames: int,
    plot_w: int,
    *,
    top: int,
    below: bool,
) -> None:
    """The frame axis in the ``_AXIS_H`` px from ``top``: "frame" and the numbers over tick marks that touch the
    bars under it, or (``below``) under tick marks that touch the bars over it."""
    x0 = _MARGIN + _LABEL_W
    text_y, tick_y = (top + 8, top - _GAP) if below else (top, top + _AXIS_H - 6)
    draw.text((_MARGIN, text_y), "frame", fill=_INK, font=font)
    # a narrow plot (a phone's) has fewer: ten labels of up to 4 digits overlapped in 150 px
    for frame in _ticks(num_frames, min(10, max(2, plot_w // _TICK_SPACING))):
        x = x0 + frame * plot_w // num_frames
        draw.line((x, tick_y, x, tick_y + 5), fill=_INK)
        text_w = font.getbbox(str(frame))[2]
        # near the right edge: left of its tick
        left = x + 2 if x + 2 + text_w <= x0 + plot_w else x - 2 - text_w
        draw.text((left, text_y), str(frame), fill=_INK, font=font)


def _fit(text: str, font: ImageFont.ImageFont | ImageFont.FreeTypeFont, width: int) -> str:
    """``text``, cut and ended with "…" if wider than ``width`` pixels (so that it never reaches the bars); "..."
    in a bitmap font (Pillow < 10.1 or without FreeType), which has Latin-1 characters only."""
    if font.getbbox(text)[2] <= width:
        return text
    more = "…" if isinstance(font, ImageFont.FreeTypeFont) else "..."
    while text and font.getbbox(text + more)[2] > width:
        text = text[:-1]
    return text + more


def _ticks(num_frames: int, most: int = 10) -> list[int]:
    """At most ``most`` round frame numbers from 0: a step of 1, 2, 5, 10, 20, 50, 100, ..."""
    scale = 1
    while True:
        for step in (scale, 2 * scale, 5 * scale):
            if num_frames <= most * step:
                return list(range(0, num_frames, step))
        scale *= 10
