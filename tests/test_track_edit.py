"""Merging tracks whose identity broke, splitting a track that went on with another object: parsing, checks,
per-frame edits, and a cached run re-rendered merged, split, and repaired of an id switch."""

import json
import re
import zipfile
from dataclasses import replace

import numpy as np
import pytest
from clip_helpers import write_clip, write_video
from doubles import MovingBoxTracker, ReplayTracker
from PIL import Image

from uvosam.job import rerender, run_job
from uvosam.job_types import JobOptions
from uvosam.mask_cache import MaskCache
from uvosam.pipeline import UVOSAM
from uvosam.segmenter import BoxPromptSegmenter
from uvosam.testing import moving_shapes
from uvosam.track_edit import (
    MAX_SPLITS,
    check_merge,
    check_split,
    merge_tracks,
    parse_merge,
    parse_split,
    split_new_ids,
    split_tracks,
)
from uvosam.types import FrameResult


def test_parse_merge_reads_pairs_and_refuses_anything_else():
    assert parse_merge("3>1, 5>1") == {3: 1, 5: 1}
    assert parse_merge(" 3 -> 1;5→1  7>2 ") == {3: 1, 5: 1, 7: 2}
    assert parse_merge("") == {} and parse_merge(None) == {} and parse_merge(" , ") == {}
    assert parse_merge("3>1, 3>1") == {3: 1}
    with pytest.raises(ValueError, match=r"expected pairs 'source>target'.*could not read 'x>1'"):
        parse_merge("3>1, x>1")
    with pytest.raises(ValueError, match=r"could not read '3'"):
        parse_merge("3")
    with pytest.raises(ValueError, match="track 3 is merged into both 1 and 2"):
        parse_merge("3>1 3>2")


def test_check_merge_names_the_wrong_pair():
    check_merge({3: 1, 5: 1}, [1, 2, 3, 5])
    with pytest.raises(ValueError, match=r"no track 9 in this run \(its tracks: 1, 2, 3\)"):
        check_merge({9: 1}, [3, 1, 2])
    with pytest.raises(ValueError, match="track 2 is merged into itself"):
        check_merge({2: 2}, [1, 2])
    with pytest.raises(ValueError, match=r"3>2 and 2>1 form a chain.*\(3>1, 2>1\)"):
        check_merge({3: 2, 2: 1}, [1, 2, 3])


def _frame(ids, boxes, scores, labels, masks) -> FrameResult:
    n = len(ids)
    return FrameResult(0, np.zeros((8, 8, 3), np.uint8), np.array(ids, np.int64),
                       np.array(boxes, np.float32).reshape(n, 4), np.array(scores, np.float32),
                       np.array(labels, np.int64), np.array(masks, bool).reshape(n, 8, 8),
                       np.array(scores, np.float32) / 2)  # fmt: skip


def test_merge_tracks_joins_rows_and_keeps_the_target_id_and_class():
    masks = np.zeros((3, 8, 8), bool)
    masks[0, :2, :2] = masks[1, 5:, 5:] = masks[2, 3, 3] = True
    frame = _frame([3, 2, 1], [[0, 0, 2, 2], [5, 5, 8, 8], [3, 3, 4, 4]], [0.9, 0.5, 0.4], [2, 1, 0],
                   masks)  # fmt: skip
    out = merge_tracks(frame, {3: 1}, labels={1: 0, 2: 1, 3: 2})
    assert out.track_ids.tolist() == [1, 2]  # order of first occurrence; unique ids
    assert out.boxes_xyxy.tolist() == [[0, 0, 4, 4], [5, 5, 8, 8]]
    assert out.scores.tolist() == pytest.approx([0.9, 0.5]) and out.labels.tolist() == [0, 1]
    assert out.mask_scores.tolist() == pytest.approx([0.45, 0.25])
    assert np.array_equal(out.masks[0], masks[0] | masks[2]) and np.array_equal(
        out.masks[1], masks[1]
    )
    alone = merge_tracks(_frame([3], [[0, 0, 2, 2]], [0.9], [2], masks[:1]), {3: 1}, {1: 0, 3: 2})
    assert alone.track_ids.tolist() == [1] and alone.labels.tolist() == [0]  # the target's class
    assert np.array_equal(frame.track_ids, [3, 2, 1])  # the input is unchanged
    assert merge_tracks(frame, {}) is frame
    probs = np.array(
        [[0.9, 0.1], [0.5, 0.2], [0.4, 0.3]], np.float32
    )  # per row, if any: the best row's
    merged = merge_tracks(replace(frame, class_probs=probs), {3: 1}, labels={1: 0, 2: 1, 3: 2})
    assert np.array_equal(merged.class_probs, probs[:2]) and out.class_probs is None
    empty = _frame([], [], [], [], np.zeros((0, 8, 8)))
    assert len(merge_tracks(empty, {3: 1})) == 0


@pytest.fixture(scope="module")
def cached_run(tmp_path_factory, tiny_sam_model):
    d = tmp_path_factory.mktemp("merge")
    clip = write_clip(d / "three.mp4", 8, 64, 48, fps=8, num_objects=3, seed=5)
    pipe = UVOSAM(MovingBoxTracker(num_objects=3), BoxPromptSegmenter(tiny_sam_model))
    return list(run_job(pipe, clip, d / "run", JobOptions(cache=True)))[-1].result


def test_rerender_merged_shows_one_track_everywhere(cached_run, tmp_path):
    cache = MaskCache(cached_run.cache_dir)
    assert cache.track_labels() == {1: 0, 2: 1, 3: 2}
    out = rerender(cached_run.cache_dir, tmp_path, merge={3: 1})
    assert [(t.track_id, t.class_name, t.num_frames) for t in out.tracks] == [
        (1, "person", 8),
        (2, "dog", 8),
    ]
    with zipfile.ZipFile(out.zip_path) as zf:
        names = zf.namelist()
        results = json.loads(zf.read("results.json"))
    assert not any(n.startswith("cutouts/three/3/") for n in names)
    assert sorted(r["category_id"] for r in results) == [1, 2]
    from PIL import Image

    for original in cache.iter_results():  # track 1 covers what 1 and 3 covered, in the DAVIS PNGs
        union = original.masks[np.isin(original.track_ids, [1, 3])].any(0)
        png = out.export.davis_dir / f"{original.frame_index:05d}.png"
        assert np.array_equal(np.asarray(Image.open(png)) == out.export.davis_labels[1], union)


def test_rerender_refuses_a_bad_merge_before_writing(cached_run, tmp_path):
    with pytest.raises(ValueError, match=r"no track 7 in this run \(its tracks: 1, 2, 3\)"):
        rerender(cached_run.cache_dir, tmp_path / "out", merge={7: 1})
    assert not (tmp_path / "out").exists()


def test_a_cycle_is_refused_without_advising_a_self_merge():
    with pytest.raises(ValueError, match=r"3>1 and 1>3 form a cycle") as err:
        check_merge({3: 1, 1: 3}, [1, 2, 3])
    assert "3>3" not in str(err.value) and "1>1" not in str(err.value)


def test_parse_merge_reads_a_huge_number_as_a_syntax_error_not_a_python_limit():
    with pytest.raises(ValueError, match=r"Merge tracks: expected pairs"):
        parse_merge("1" * 5000 + ">1")


@pytest.mark.parametrize(
    "keep, tracks",
    [
        ([1, 2], [(1, 8), (2, 8)]),  # the source unticked: still merged into its (kept) target
        (
            [2, 3],
            [(2, 8)],
        ),  # the target dropped: its sources go with it (no track 1 made of 3 alone)
        ([3], []),
    ],
)
def test_keep_ids_follow_the_merge_target(cached_run, tmp_path, keep, tracks):
    out = rerender(cached_run.cache_dir, tmp_path, keep_ids=keep, merge={3: 1})
    assert [(t.track_id, t.num_frames) for t in out.tracks] == tracks
    cache = MaskCache(cached_run.cache_dir)
    if 1 in dict(tracks):  # track 1 covers what 1 and 3 covered, in the DAVIS PNGs too (label 1)
        from PIL import Image

        for original in cache.iter_results():
            union = original.masks[np.isin(original.track_ids, [1, 3])].any(0)
            png = out.export.davis_dir / f"{original.frame_index:05d}.png"
            assert np.array_equal(np.asarray(Image.open(png)) == out.export.davis_labels[1], union)


def test_a_frame_without_a_source_track_is_not_copied():
    """Most frames hold no source: no (N, H, W) copy of their masks (27 ms a 4K frame of 8 tracks)."""
    masks = np.zeros((2, 8, 8), bool)
    masks[0, :2] = masks[1, 4:] = True
    frame = _frame([2, 1], [[0, 0, 8, 2], [0, 4, 8, 8]], [0.9, 0.5], [1, 0], masks)
    assert merge_tracks(frame, {3: 1}, labels={1: 0, 2: 1, 3: 2}) is frame
    # the target's class, as when merged
    relabelled = merge_tracks(frame, {3: 1}, labels={1: 2, 2: 1, 3: 2})
    assert relabelled.labels.tolist() == [1, 2] and relabelled.masks is frame.masks


def test_parse_split_reads_track_at_frame_and_refuses_anything_else():
    assert parse_split("3@120, 5@40") == {3: [120], 5: [40]}
    # each track's frames ascending, however given; any separator merge takes
    assert parse_split(" 3 @ 300;5@40  3@120 ") == {3: [120, 300], 5: [40]}
    assert parse_split("") == {} and parse_split(None) == {} and parse_split(" , ") == {}
    syntax = r"Split tracks: expected 'track@frame' separated by commas, e\.g\. '3@120, 5@40'"
    for text, unread in (("3@120, x@4", "x@4"), ("3", "3"), ("3@", "3@"), ("3>1", "3>1"), ("3@1.5", ".5"),
                         ("3@-4", "3@-4"), ("1" * 5000 + "@1", "1" * 5000 + "@1")):  # fmt: skip
        with pytest.raises(
            ValueError, match=syntax + rf".*could not read '{re.escape(unread)}'\.$"
        ):
            parse_split(text)
    with pytest.raises(
        ValueError, match=r"^Split tracks: 3@120 is given twice; give each split once\.$"
    ):
        parse_split("3@120, 5@40, 3@120")


def test_parse_split_takes_at_most_a_thousand_splits():
    """40,000 splits of one track (309 KB) took 4.6 s on the app's event loop (a list scanned for each one): the
    splits and the text are capped, and refused with how many there were."""
    assert MAX_SPLITS == 1000
    most = ", ".join(f"3@{f}" for f in range(1, MAX_SPLITS + 1))
    assert len(parse_split(most)[3]) == MAX_SPLITS
    with pytest.raises(
        ValueError, match=r"^Split tracks: 1,001 splits given; one re-render takes at most 1,000\.$"
    ):
        parse_split(most + ", 3@99999")
    long = ", ".join(f"3@{f}" for f in range(1, 40_001))
    with pytest.raises(
        ValueError,
        match=rf"^Split tracks: the text is {len(long):,} characters long; it may be at most 40,000 "
        r"\(1,000 splits, the most one re-render takes\)\.$",
    ):
        parse_split(long)


def test_new_ids_follow_the_runs_largest_by_split_frame_then_track():
    """Ids rise with time, as the tracker's own, however the splits are written: the order given ("track by
    track, in the order first named") gave 3@300 the id a user reading "3@120, 5@40, 3@300" expects 5@40 to get."""
    assert split_new_ids({3: [120], 5: [40]}, [1, 3, 5, 7]) == {(5, 40): 8, (3, 120): 9}
    expected = {(5, 40): 8, (3, 120): 9, (3, 300): 10}
    for text in ("3@120, 5@40, 3@300", "3@300, 3@120, 5@40", "5@40, 3@120, 3@300"):
        new_ids = split_new_ids(parse_split(text), [7, 3, 5])
        assert new_ids == expected and list(new_ids) == list(expected)
    assert split_new_ids({5: [40], 3: [40]}, [5]) == {
        (3, 40): 6,
        (5, 40): 7,
    }  # one frame: by track id


def _index(spans):
    """A run's ``(frame, ids, labels)`` of tracks seen in the frames ``spans[id]`` (label = id)."""
    frames = sorted({f for seen in spans.values() for f in seen})
    return [
        (f, [i for i in spans if f in spans[i]], [i for i in spans if f in spans[i]])
        for f in frames
    ]


def test_check_split_refuses_what_would_split_nothing_naming_the_tracks_frames():
    index = _index({1: range(10), 2: range(3, 8), 4: [5], 6: [*range(2, 4), *range(8, 10)]})
    assert check_split({2: [4, 7], 1: [9]}, index) == {(2, 4): 7, (2, 7): 8, (1, 9): 9}
    with pytest.raises(
        ValueError,
        match=r"^Split tracks: there is no track 3 in this run \(its tracks: 1, 2, 4, 6\)",
    ):
        check_split({3: [4]}, index)
    span = r"it is seen from frame 3 to 7; split it at a frame from 4 to 7 \(the part from there on gets a new id\)\.$"
    for frame in (0, 3, 8, 120):  # before it, at its first frame (nothing stays 2), after its last
        with pytest.raises(
            ValueError, match=rf"^Split tracks: cannot split track 2 at frame {frame}: {span}"
        ):
            check_split({2: [frame]}, index)
    with pytest.raises(ValueError, match=r"cannot split track 4 at frame 6: it is seen from frame 5 to 5; one frame "
                                         r"has nothing to split\.$"):  # fmt: skip
        check_split({4: [6]}, index)
    # a part without any frame: 6 is not seen in 4..7
    with pytest.raises(ValueError, match=r"track 6 is not seen from frame 4 to its split at 8, so 6@4 would make an "
                                         r"empty track; leave it out\.$"):  # fmt: skip
        check_split({6: [4, 8]}, index)
    assert check_split({6: [8]}, index) == {
        (6, 8): 7
    }  # in a gap: the new id from its next frame on
    with pytest.raises(ValueError, match=r"track 2's frames \[7, 4\] are not ascending"):
        check_split({2: [7, 4]}, index)  # (parse_split sorts them)


def test_with_a_stride_a_refused_split_says_frames_are_processed_frames():
    """A file's number is the input's frame, the split's the processed frame (as tracks.csv): a user typing a PNG's
    number splits at the wrong place; the refusal says how they count."""
    index = _index({1: range(5)})
    stride = r" \(frames count the processed frames, as tracks\.csv and the timeline do: with the run's frame stride "
    stride += r"2, frame k is the input's frame 2k\)\.$"
    with pytest.raises(ValueError, match=r"split it at a frame from 1 to 4 \(the part from there on gets a new id\)"
                                         + stride):  # fmt: skip
        check_split({1: [8]}, index, stride=2)
    with pytest.raises(ValueError, match=r"new id\)\.$"):  # no stride: as it was
        check_split({1: [8]}, index)


def test_split_tracks_gives_the_rows_from_the_split_on_to_the_new_ids():
    masks = np.zeros((2, 8, 8), bool)
    masks[0, :2] = masks[1, 4:] = True
    splits = {1: [3, 5]}
    new_ids = split_new_ids(splits, [1, 2])
    assert new_ids == {(1, 3): 3, (1, 5): 4}
    ids = []
    for t in range(7):
        frame = replace(
            _frame([2, 1], [[0, 4, 8, 8], [0, 0, 8, 2]], [0.5, 0.9], [1, 0], masks[::-1]),
            frame_index=t,
        )
        out = split_tracks(frame, splits, new_ids)
        ids.append(out.track_ids.tolist())
        if t < 3:
            assert out is frame  # before the split: unchanged, not copied
        # the row stays whole under its new id: mask, box, scores, label
        for name in ("boxes_xyxy", "scores", "labels", "masks", "mask_scores"):
            assert getattr(out, name) is getattr(frame, name)
    assert ids == [[2, 1]] * 3 + [[2, 3]] * 2 + [[2, 4]] * 2
    assert frame.track_ids.tolist() == [2, 1]  # the input is unchanged


@pytest.fixture(scope="module")
def id_switch(tmp_path_factory, tiny_sam_model):
    """Two objects whose ids the tracker swaps at frame 4 (a crossing, a cut), and the same objects tracked without
    the swap: the cached run to repair and what it should become."""
    d = tmp_path_factory.mktemp("switch")
    video = moving_shapes(8, height=48, width=64, num_objects=2, seed=2)
    clip = write_video(d / "switch.mp4", video.frames, 8)
    swapped = video.boxes_xyxy.copy()
    swapped[4:] = video.boxes_xyxy[4:, ::-1]
    runs = []
    for name, boxes in (("switched", swapped), ("clean", video.boxes_xyxy)):
        tracker = ReplayTracker(boxes, scores=np.array([0.8, 0.8]))
        pipe = UVOSAM(tracker, BoxPromptSegmenter(tiny_sam_model))
        runs.append(list(run_job(pipe, clip, d / name, JobOptions(cache=True)))[-1].result)
    return runs


def _files(folder):
    return {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in folder.iterdir()}


def _pngs(result):
    return [np.asarray(Image.open(p)) for p in sorted(result.export.davis_dir.glob("*.png"))]


def test_split_and_merge_repair_an_id_switch_in_every_export(id_switch, tmp_path):
    switched, clean = id_switch
    cached = _files(switched.cache_dir)
    boxes = json.loads(clean.export.results_json.read_text())
    assert json.loads(switched.export.results_json.read_text()) != boxes  # the switch shows
    # 1@4 -> 3 (object 1 from frame 4), 2@4 -> 4 (object 0): each part back to its object's first id
    out = rerender(
        switched.cache_dir, tmp_path / "text", split="1@4, 2@4", merge="3>2, 4>1", keep_ids=[1, 2]
    )
    assert [(t.track_id, t.first_frame, t.last_frame, t.num_frames) for t in out.tracks] == [
        (1, 0, 7, 8), (2, 0, 7, 8),
    ]  # fmt: skip
    # as if the tracker had not switched: tracks.csv and every box of results.json
    assert out.export.tracks_csv.read_text() == clean.export.tracks_csv.read_text()
    assert json.loads(out.export.results_json.read_text()) == boxes
    cache = MaskCache(switched.cache_dir)
    for t, png in enumerate(
        _pngs(out)
    ):  # the DAVIS label of track 1 is object 0 in every frame, 2 object 1
        run = cache.load(t)
        objects = run.masks[::-1] if t >= 4 else run.masks  # the run's rows by object
        for track, mask in ((1, objects[0]), (2, objects[1])):
            assert np.array_equal(png == out.export.davis_labels[track], mask)
    record = json.loads(out.export.run_json.read_text())["rerender"]
    assert (record["split"], record["split_ids"]) == ({"1": [4], "2": [4]}, {"1@4": 3, "2@4": 4})
    readme = " ".join(out.export.readme.read_text().split())
    assert "split 1@4 (new id 3), 2@4 (new id 4); keep tracks 1, 2; merge 3>2, 4>1;" in readme
    # the same as a mapping (frames as run.json writes them back), and the split alone: 4 tracks, the new ids'
    as_map = rerender(
        switched.cache_dir, tmp_path / "map", split=record["split"], merge={3: 2, 4: 1}
    )
    assert _pngs(as_map) and all(
        np.array_equal(a, b) for a, b in zip(_pngs(as_map), _pngs(out), strict=True)
    )
    alone = rerender(switched.cache_dir, tmp_path / "alone", split={1: 4, 2: [4]})
    assert [(t.track_id, t.first_frame, t.last_frame) for t in alone.tracks] == [
        (1, 0, 3), (2, 0, 3), (3, 4, 7), (4, 4, 7),
    ]  # fmt: skip
    cache = MaskCache(switched.cache_dir)
    for t, png in enumerate(
        _pngs(alone)
    ):  # the new ids carry the run's masks of their frames, unchanged
        run = cache.load(t)
        for track, mask in zip(run.track_ids.tolist(), run.masks):
            now = track + 2 if t >= 4 else track
            assert np.array_equal(png == alone.export.davis_labels[now], mask)
    assert _files(cache.root) == cached  # the mask cache is only read


def test_keep_names_the_ids_once_split_and_a_bad_split_writes_nothing(id_switch, tmp_path):
    switched, _ = id_switch
    only_new = rerender(switched.cache_dir, tmp_path / "a", split="1@4", keep_ids=[3])
    assert [(t.track_id, t.first_frame, t.num_frames) for t in only_new.tracks] == [(3, 4, 4)]
    first_part = rerender(switched.cache_dir, tmp_path / "b", split="1@4", keep_ids=[1])
    assert [(t.track_id, t.last_frame) for t in first_part.tracks] == [(1, 3)]
    with pytest.raises(
        ValueError,
        match=r"keep_ids: there is no track 4 in this run \(its tracks once split: 1, 2, 3\)",
    ):
        rerender(switched.cache_dir, tmp_path / "c", split="1@4", keep_ids=[4])
    with pytest.raises(
        ValueError,
        match=r"^Split tracks: cannot split track 1 at frame 9: it is seen from frame 0 to 7",
    ):
        rerender(switched.cache_dir, tmp_path / "d", split="1@9")
    with pytest.raises(ValueError, match=r"Merge tracks: there is no track 3 in this run"):
        rerender(switched.cache_dir, tmp_path / "e", merge="3>1")  # the new id needs its split
    assert not any((tmp_path / name).exists() for name in "cde")


def test_a_split_is_never_proposed_to_be_merged_back(id_switch, tmp_path):
    """A split-off part starts the frame after its track ends, where it was: exactly what the merge hints look for.
    They proposed to undo the split ("3>1") in the result, the README and (from the zip) the app."""
    from uvosam_app.results import merge_hints_markdown

    _, clean = id_switch
    out = rerender(clean.cache_dir, tmp_path / "a", split="1@4")
    assert [(t.track_id, t.first_frame) for t in out.tracks] == [(1, 0), (2, 0), (3, 4)]
    assert out.export.merge_hints == ()
    assert "Possible id switches" not in out.export.readme.read_text()
    assert merge_hints_markdown(str(out.zip_path), "") == ""


def test_the_readme_hint_after_a_split_names_the_split(id_switch, tmp_path):
    """The parts of two split tracks continue each other's track: those hints stay (they are the repair), and the
    README's re-render repeats the split, without which its merge names ids the run does not have."""
    from uvosam_app.results import merge_hints_markdown

    switched, clean = id_switch
    out = rerender(switched.cache_dir, tmp_path / "a", split="1@4, 2@4")
    assert {(h.source, h.target) for h in out.export.merge_hints} == {(3, 2), (4, 1)}
    readme = out.export.readme.read_text()
    assert 're-render with split "1@4, 2@4" and merge "4>1, 3>2"' in readme, readme
    assert '`uvosam rerender <run> --split "1@4, 2@4" --merge ...`' in readme
    assert "put `4>1, 3>2` in *Merge tracks*" in merge_hints_markdown(str(out.zip_path), "")
    fixed = rerender(switched.cache_dir, tmp_path / "b", split="1@4, 2@4", merge="4>1, 3>2")
    assert fixed.export.tracks_csv.read_text() == clean.export.tracks_csv.read_text()


def test_new_ids_go_by_split_frame_whatever_the_order_written(id_switch, tmp_path):
    switched, _ = id_switch
    out = rerender(switched.cache_dir, tmp_path / "a", split="2@5, 1@4")
    assert [(t.track_id, t.first_frame) for t in out.tracks] == [(1, 0), (2, 0), (3, 4), (4, 5)]
    record = json.loads(out.export.run_json.read_text())["rerender"]
    assert record["split_ids"] == {"1@4": 3, "2@5": 4}


@pytest.fixture(scope="module")
def strided(tmp_path_factory, tiny_sam_model):
    """A cached run of every second frame of a 12-frame clip (6 processed frames, 2 objects)."""
    d = tmp_path_factory.mktemp("strided")
    video = moving_shapes(12, height=48, width=64, num_objects=2, seed=2)
    clip = write_video(d / "strided.mp4", video.frames, 8)
    tracker = ReplayTracker(video.boxes_xyxy[::2], scores=np.array([0.8, 0.8]))
    pipe = UVOSAM(tracker, BoxPromptSegmenter(tiny_sam_model))
    return list(run_job(pipe, clip, d / "run", JobOptions(cache=True, stride=2)))[-1].result


def test_with_a_stride_the_split_names_the_input_frame_too(strided, tmp_path):
    """Split frames are processed frames (tracks.csv's), the PNGs are named after the input's frames: the README
    says both, and a refused frame says how they count."""
    out = rerender(strided.cache_dir, tmp_path / "a", split="1@3")
    assert [(t.track_id, t.first_frame) for t in out.tracks] == [(1, 0), (2, 0), (3, 3)]
    readme = " ".join(out.export.readme.read_text().split())
    assert "split 1@3 (input frame 6, new id 3);" in readme
    with pytest.raises(
        ValueError,
        match=r"seen from frame 0 to 5; .* with the run's frame stride 2, frame k is the input's frame 2k\)\.$",
    ):
        rerender(strided.cache_dir, tmp_path / "b", split="1@8")
