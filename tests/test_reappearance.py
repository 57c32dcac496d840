"""Tracks that come back after frames without a box: marked in the video, counted in the summaries."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from export_helpers import results_from_video

from uvosam.export import ExportWriter
from uvosam.export_types import ExportOptions
from uvosam.reappearance import Reappearances
from uvosam.render import render
from uvosam.testing import moving_shapes


def test_a_track_is_marked_when_it_comes_back_and_for_the_hold_after():
    marks = Reappearances(hold_frames=3)
    frames = [[1, 2], [1, 2], [2], [2], [2], [1, 2], [1, 2], [1], [1, 2], [1, 2], [1, 2], [1, 2]]
    notes = [marks.update(t, ids) for t, ids in enumerate(frames)]
    assert notes[:5] == [{}] * 5  # a track seen on consecutive frames is never marked
    assert notes[5:8] == [
        {1: "back after 3"},
        {1: "back after 3"},
        {1: "back after 3"},
    ]  # 3 frames of hold
    assert notes[8] == {2: "back after 1"}  # track 1's hold is over; track 2 was away on frame 7
    assert notes[9:] == [{2: "back after 1"}, {2: "back after 1"}, {}]


def test_the_hold_counts_frames_not_appearances_and_order_is_enforced():
    marks = Reappearances(hold_frames=2)
    assert [marks.update(t, ids) for t, ids in enumerate([[5], [], [5], [], [5]])] == [
        {}, {}, {5: "back after 1"}, {}, {5: "back after 1"}  # came back again: a new mark
    ]  # fmt: skip
    with pytest.raises(ValueError, match="expected frame 5, got 7"):
        marks.update(7, [5])
    with pytest.raises(ValueError, match="hold_frames must be >= 1; got 0"):
        Reappearances(hold_frames=0)


def test_the_note_is_drawn_in_the_tag_of_its_track_only():
    # a tag holds the note from 240 px up
    video = moving_shapes(1, height=240, width=320, num_objects=2, seed=2)
    (result,) = results_from_video(video, track_ids=[1, 2])
    for style in ("overlay", "blur"):
        plain = render(result, style=style, class_names=["object"])
        for row, track_id in enumerate((1, 2)):
            marked = render(
                result, style=style, class_names=["object"], tag_notes={track_id: "back after 12"}
            )
            changed_rows = np.flatnonzero((plain != marked).any(axis=(1, 2)))
            # the tag sits just above the box (a tag is ~10 px high here)
            top = result.boxes_xyxy[row, 1]
            assert (
                len(changed_rows) > 3
                and top - 14 <= changed_rows.min() <= changed_rows.max() <= top
            ), style
    assert (render(result, style="matte", class_names=["o"], tag_notes={2: "x"})
            == render(result, style="matte", class_names=["o"])).all()  # fmt: skip


def test_tracks_csv_counts_how_often_each_track_came_back(tmp_path):
    video = moving_shapes(
        9, height=40, width=56, num_objects=3, seed=3, absent={0: [2, 3, 6], 2: range(3)}
    )
    results = results_from_video(video, track_ids=[10, 13, 16])
    with ExportWriter(tmp_path, video_name="v", class_names=["o"], height=40, width=56,
                      options=ExportOptions(davis=False, cutouts=False, ytvis=False)) as writer:  # fmt: skip
        for result in results:
            writer.add(result)
    export = writer.close()
    with open(export.tracks_csv) as handle:
        rows = {int(r["track_id"]): int(r["returns"]) for r in csv.DictReader(handle)}
    assert rows == {10: 2, 13: 0, 16: 0}  # 10: away on 2-3 and on 6; 16 appears late: not a return
    assert {t.track_id: t.returns for t in export.tracks} == rows
