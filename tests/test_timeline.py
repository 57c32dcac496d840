"""The track timeline: a bar in the track's colour exactly on the frames it was seen in."""

from __future__ import annotations

import numpy as np
import pytest
from export_helpers import results_from_video
from PIL import Image, ImageFont

from uvosam import timeline
from uvosam.colours import colour_for_id
from uvosam.errors import InputError
from uvosam.export import ExportWriter, make_zip
from uvosam.export_types import ExportOptions
from uvosam.testing import moving_shapes
from uvosam.timeline import TimelineRow, draw_timeline


def _frames_seen(image: np.ndarray, track_id: int, num_frames: int) -> list[int]:
    """The frames the row of ``track_id`` shows as seen, read back from the image: in the row's middle pixel
    line, the plot is where the pixels are the track's colour or the empty grey."""
    coloured = (image == colour_for_id(track_id)).all(axis=2)
    line = np.bincount(np.nonzero(coloured)[0]).argmax()  # a pixel line through the bar
    seen = coloured[line]
    plot = np.flatnonzero(seen | (image[line] == (236, 236, 236)).all(axis=1))
    columns = seen[plot[0] : plot[-1] + 1]
    return [t for t in range(num_frames) if columns[t * len(columns) // num_frames]]


def test_a_bar_on_exactly_the_frames_each_track_was_seen_in():
    rows = [TimelineRow(3, "person", [0, 1, 2, 7, 8]), TimelineRow(9, "dog", [4, 9])]
    image = draw_timeline(rows, 10, max_plot_width=100)
    assert _frames_seen(image, 3, 10) == [0, 1, 2, 7, 8]
    assert _frames_seen(image, 9, 10) == [4, 9]
    assert (image == colour_for_id(3)).all(
        axis=2
    ).sum() == 5 * 10 * 18  # 10 px per frame, 18 px high


def test_a_long_video_still_shows_a_single_frame_and_stays_narrow():
    image = draw_timeline(
        [TimelineRow(1, "x", [1234]), TimelineRow(2, "y", range(3000))], 3000, max_plot_width=300
    )
    assert image.shape[1] < 300 + 200  # 10 frames a column
    # one frame: its column 123, not zero columns, and one either side (a 1 px sliver was hard to see)
    columns = np.flatnonzero((image == colour_for_id(1)).all(axis=2).any(axis=0)) - (8 + 150)
    assert columns.tolist() == [122, 123, 124]
    assert (image == colour_for_id(2)).all(axis=2).any(axis=0).sum() == 300


def test_no_track_and_bad_frames():
    assert draw_timeline([], 5).shape[0] > 20  # "no objects found", not an error
    # a caller's values refused (uvosam.InputError: a ValueError)
    with pytest.raises(InputError, match=r"track 4 has frames outside 0..4"):
        draw_timeline([TimelineRow(4, "x", [5])], 5)
    with pytest.raises(InputError, match="num_frames >= 1"):
        draw_timeline([], 0)


def test_the_export_draws_the_timeline_of_the_exported_tracks_into_the_zip(tmp_path):
    video = moving_shapes(12, height=40, width=56, num_objects=2, seed=3, absent={0: range(3, 6)})
    with ExportWriter(tmp_path, video_name="v", class_names=["o"], height=40, width=56,
                      options=ExportOptions(davis=False, cutouts=False, ytvis=False),
                      keep_ids={7}) as writer:  # fmt: skip
        for result in results_from_video(video, track_ids=[7, 8]):
            writer.add(result)
    export = writer.close()
    image = np.asarray(Image.open(export.timeline_png).convert("RGB"))
    assert _frames_seen(image, 7, 12) == [0, 1, 2, 6, 7, 8, 9, 10, 11]
    assert not (image == colour_for_id(8)).all(axis=2).any()  # a dropped track has no row
    import zipfile

    assert "timeline.png" in zipfile.ZipFile(make_zip(export)).namelist()
    with ExportWriter(tmp_path, video_name="v", class_names=["o"], height=40, width=56,
                      options=ExportOptions(timeline=False)) as again:  # fmt: skip
        again.add(results_from_video(video)[0])
    # the old one went
    assert again.close().timeline_png is None and not (tmp_path / "timeline.png").exists()


@pytest.mark.parametrize("num_frames", [101, 10001, 12345])
def test_the_last_frame_number_is_not_cut_off_at_the_right_edge(num_frames):
    """E.g. 101 frames: the tick of frame 100 near the right edge read "10" (its last digit was off the image)."""
    image = draw_timeline([TimelineRow(1, "x", [0])], num_frames)
    # the frame numbers (above the tick marks): dark ink on white
    numbers = (image[:22] < 128).all(axis=2)
    assert not numbers[:, -8:].any()  # nothing cut at the image's edge
    assert numbers[:, -60:-8].any()  # the last number is still there, left of its tick


def _bitmap_font(size: int) -> ImageFont.ImageFont:
    """Pillow's bitmap default font (what ``label_font`` gets on Pillow < 10.1 or without FreeType)."""
    return getattr(ImageFont, "load_default_imagefont", ImageFont.load_default)()


@pytest.mark.parametrize("bitmap", [False, True], ids=["default font", "bitmap font"])
def test_a_long_label_stays_out_of_the_bars(monkeypatch, bitmap):
    """Labels are cut to the label column's width (not to 22 characters, which can be wider than it). In a bitmap
    font (Latin-1 only) the cut ends with "...": "…" raised UnicodeEncodeError."""
    if bitmap:
        monkeypatch.setattr(timeline, "label_font", _bitmap_font)
    rows = [TimelineRow(12, "MOTORCYCLE WITH SIDECAR", [3]), TimelineRow(4, "W" * 40, [])]
    image = draw_timeline(rows, 10)
    for i, row in enumerate(rows):
        bars = image[8 + 22 + i * 22 : 8 + 22 + i * 22 + 18, 8 + 150 :][:, :-8]  # the row's plot
        allowed = (bars == (236, 236, 236)).all(axis=2) | (bars == colour_for_id(row.track_id)).all(
            axis=2
        )
        assert allowed.all(), row
        label = image[8 + 22 + i * 22 : 8 + 22 + i * 22 + 18, 8 : 8 + 150]
        assert (label < 128).all(axis=2).any(), row  # the label is there


def _tick_marks(image: np.ndarray) -> int:
    """The tick marks on the frame axis: runs of dark pixels in the pixel line just over the bars (under the
    numbers)."""
    line = (image[8 + 22 - 3] < 100).all(axis=1)  # _MARGIN + _AXIS_H - 3
    return int((line[1:] & ~line[:-1]).sum() + line[0])


def test_a_narrow_timeline_has_fewer_frame_numbers_that_do_not_overlap():
    """Drawn for a phone (150 px of plot), ten numbers of three or four digits ran into each other."""
    rows = [TimelineRow(1, "person", range(900))]
    assert _tick_marks(draw_timeline(rows, 900)) == 9  # 0, 100, ..., 800
    assert _tick_marks(draw_timeline(rows, 900, max_plot_width=150)) == 2  # 0, 500
    short = [TimelineRow(1, "person", range(48))]
    assert _tick_marks(draw_timeline(short, 48, max_plot_width=150)) == 3  # 0, 20, 40


def test_thousands_of_tracks_draw_the_longest_and_a_line_for_the_rest():
    """9,000 tracks (a tracker giving 10 new ids a frame over 900 frames) drew a 211-megapixel timeline.png, which
    the app could not read back (Pillow's DecompressionBombError). The rows are bounded: the longest tracks, in
    their order, then a line counting the others."""
    rows = [TimelineRow(i, "x", [i % 900]) for i in range(1, 9001)]
    rows[4321] = TimelineRow(4322, "long", range(0, 900, 2))
    image = draw_timeline(rows, 900)
    assert image.shape[:2] == timeline.largest_size() == (2282, 1066)
    shown = timeline.shown_rows(rows)
    # by length, then in order: tracks 1..99, then the long one
    assert len(shown) == timeline.MAX_ROWS and shown[-1].track_id == 4322
    assert _frames_seen(image, 4322, 900) == list(range(0, 900, 2))
    last_line = image[
        8 + 22 + 100 * 22 + 22 : 8 + 22 + 101 * 22 + 22
    ]  # under the axis below the rows
    assert (last_line < 128).all(axis=2).any()  # "and 8900 more tracks: see tracks.csv"
    assert draw_timeline(rows[:100], 900).shape[0] == 2282 - 22  # no such line for 100 tracks


def test_the_rows_shown_are_the_longest_in_the_given_order(monkeypatch):
    monkeypatch.setattr(timeline, "MAX_ROWS", 2)
    rows = [TimelineRow(5, "a", [0]), TimelineRow(3, "b", [0, 1, 2]), TimelineRow(9, "c", [1, 2]),
            TimelineRow(1, "d", [3, 4])]  # fmt: skip
    assert [r.track_id for r in timeline.shown_rows(rows)] == [3, 9]  # a tie goes to the earlier
    image = draw_timeline(rows, 5, max_plot_width=100)
    assert _frames_seen(image, 3, 5) == [0, 1, 2] and _frames_seen(image, 9, 5) == [1, 2]
    assert not (image == colour_for_id(1)).all(axis=2).any()
    assert image.shape[0] == 8 + 22 + 3 * 22 + 8


def test_the_line_for_the_rest_points_to_tracks_csv_only_where_it_is_written(tmp_path, monkeypatch):
    """It said "see tracks.csv" in an export made with ``ExportOptions(tracks_csv=False)``."""
    monkeypatch.setattr(timeline, "MAX_ROWS", 2)
    said = []
    fit = timeline._fit
    monkeypatch.setattr(timeline, "_fit", lambda text, *args: said.append(text) or fit(text, *args))
    video = moving_shapes(4, height=40, width=56, num_objects=3, seed=3)
    for tracks_csv in (True, False):
        said.clear()
        options = ExportOptions(davis=False, cutouts=False, ytvis=False, tracks_csv=tracks_csv)
        with ExportWriter(tmp_path / str(tracks_csv), video_name="v", class_names=["o"], height=40,
                          width=56, options=options) as writer:  # fmt: skip
            for result in results_from_video(video):
                writer.add(result)
        export = writer.close()
        assert (export.tracks_csv is not None) is tracks_csv
        rest = [text for text in said if text.startswith("and ")]
        assert rest == (
            ["and 1 more track: see tracks.csv"] if tracks_csv else ["and 1 more track"]
        )


def test_a_frame_alone_is_a_mark_a_few_pixels_wide_that_keeps_its_gaps():
    """A track seen in one frame of a 900-frame video was a 1 px sliver on its grey row. Marks narrower than
    ``MIN_MARK`` grow around their frame, but not into a neighbour's gap (every other frame stays striped)."""
    rows = [TimelineRow(1, "x", [0, 450, 899]), TimelineRow(2, "y", [10, 12, 15])]
    image = draw_timeline(rows, 900)  # a pixel a frame
    for track_id, marks in (
        (1, [[0, 1, 2], [449, 450, 451], [897, 898, 899]]),  # inwards at the edges (they were 2 px)
        (2, [[10], [12], [14, 15, 16]]),
    ):
        line = (image == colour_for_id(track_id)).all(axis=2).any(axis=0)[8 + 150 : -8]
        runs = np.split(np.flatnonzero(line), np.flatnonzero(np.diff(np.flatnonzero(line)) > 1) + 1)
        assert [r.tolist() for r in runs] == marks
    assert _frames_seen(
        draw_timeline([TimelineRow(3, "z", range(0, 900, 2))], 900), 3, 900
    ) == list(range(0, 900, 2))


def test_a_tall_timeline_repeats_the_frame_axis_under_its_rows():
    """100 rows are 2,200 px: the frame numbers were only at the top."""
    rows = [TimelineRow(i, "x", [i]) for i in range(1, 31)]
    image = draw_timeline(rows, 900)
    under = 8 + 22 + 30 * 22  # the first pixel line under the last row's gap
    assert _tick_marks(image) == 9
    ticks_below = (image[under - 4 + 2] < 100).all(axis=1)  # under the last bar
    assert int((ticks_below[1:] & ~ticks_below[:-1]).sum()) == 9
    assert (image[under + 6 : under + 22] < 128).all(axis=2).any()  # the numbers
    assert image.shape[0] == under + 22 + 8
    few = draw_timeline(rows[: timeline.AXIS_BELOW_ROWS], 900)
    assert few.shape[0] == 8 + 22 + timeline.AXIS_BELOW_ROWS * 22 + 8  # none under 25 rows
