"""Merging tracks whose identity broke: parsing, checks, per-frame merge, and a cached run re-rendered merged."""

import json
import zipfile
from dataclasses import replace

import numpy as np
import pytest
from clip_helpers import write_clip
from doubles import MovingBoxTracker

from uvosam.job import rerender, run_job
from uvosam.job_types import JobOptions
from uvosam.mask_cache import MaskCache
from uvosam.pipeline import UVOSAM
from uvosam.segmenter import BoxPromptSegmenter
from uvosam.track_edit import check_merge, merge_tracks, parse_merge
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
