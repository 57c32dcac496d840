"""DAVIS-2017 scorer: hand-computed numbers from the definitions (design/DAVIS_METRIC.md), layouts and the CLI."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from doubles import interrupt_text_writes
from PIL import Image

from uvosam.eval.davis import evaluate
from uvosam.eval.masks_io import davis_palette, read_index_png, write_index_png
from uvosam.eval.measures import (
    boundary_map,
    boundary_radius,
    decay_bins,
    disk,
    f_measure,
    frame_scores,
    jaccard,
    object_statistics,
)
from uvosam.eval.synthetic import (
    make_synthetic_davis,
    read_annotations,
    write_davis_layout,
    write_results,
)

# ---------------------------------------------------------------- helpers


def _score_argv(root, res) -> list[str]:
    """``uvosam davis-score`` of the results ``res`` against the DAVIS folder ``root``, with one worker."""
    return ["davis-score", "--davis-root", str(root), "--results", str(res), "--workers", "1"]


def square(h: int, w: int, y0: int, x0: int, size: int, value: int = 1) -> np.ndarray:
    out = np.zeros((h, w), np.uint8)
    out[y0 : y0 + size, x0 : x0 + size] = value
    return out


def scored(tmp_path, gt: dict, res: dict, **kwargs):
    """Write the ground truth and results as DAVIS folders and score them."""
    root = tmp_path / "DAVIS"
    write_davis_layout(root, gt)
    write_results(tmp_path / "res", res)
    return evaluate(root, tmp_path / "res", **kwargs)


def one_square_video(frames: int = 5, shift: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """8x8 frames, GT = 4x4 square at rows/cols 2..5; result = same square moved right by ``shift``."""
    gt = np.stack([square(8, 8, 2, 2, 4)] * frames)
    return gt, np.roll(gt, shift, axis=2)


# ---------------------------------------------------------------- boundaries, radius, disk


def test_seg2bmap_square_is_offset_toward_origin():
    mask = square(4, 4, 1, 1, 2)
    expected = np.array([[1, 1, 1, 0], [1, 0, 1, 0], [1, 1, 1, 0], [0, 0, 0, 0]], bool)
    np.testing.assert_array_equal(boundary_map(mask), expected)


def test_seg2bmap_edge_rules():
    # Full mask: nothing is ever compared with the outside of the image.
    assert not boundary_map(np.ones((3, 3))).any()
    # Bottom-right pixel: last row compares east only, last column south only, the corner itself is never boundary.
    corner = np.zeros((3, 3))
    corner[2, 2] = 1
    np.testing.assert_array_equal(boundary_map(corner), [[0, 0, 0], [0, 1, 1], [0, 1, 0]])
    # Object on the right border: its boundary lies on the background column left of it.
    column = np.zeros((3, 3))
    column[:, 2] = 1
    np.testing.assert_array_equal(boundary_map(column), [[0, 1, 0], [0, 1, 0], [0, 1, 0]])


def test_boundary_radius_and_disk():
    assert [boundary_radius(*s) for s in [(480, 854), (240, 432), (720, 1280), (1080, 1920), (8, 8)]] == [
        8, 4, 12, 18, 1,
    ]  # fmt: skip
    d = disk(8)
    assert d.shape == (17, 17) and d.sum() == 197  # Gauss circle count N(8)
    assert d[8, 0] and d[0, 8] and not d[1, 1]  # (7, 7): 98 > 64
    np.testing.assert_array_equal(disk(1), [[0, 1, 0], [1, 1, 1], [0, 1, 0]])


# ---------------------------------------------------------------- J and F on single frames


def test_f_edge_cases_and_single_pixel_shift():
    empty, blob = np.zeros((6, 6)), square(6, 6, 2, 2, 1)
    assert f_measure(empty, empty, radius=1) == 1.0  # no boundary on either side: P = R = 1
    assert f_measure(blob, empty, radius=1) == 0.0  # empty result: P = 1, R = 0
    assert f_measure(empty, blob, radius=1) == 0.0  # empty GT: P = 0, R = 1
    assert jaccard(empty, empty) == 1.0 and jaccard(blob, empty) == 0.0
    # A pixel's boundary is itself and its N, W, NW neighbours. Moved 2 px right, 2 of the 4 result boundary
    # pixels are within distance 1 of the GT boundary (and vice versa): P = R = F = 0.5. With radius 2 all are.
    moved = np.roll(blob, 2, axis=1)
    assert f_measure(blob, moved, radius=1) == 0.5
    assert f_measure(blob, moved, radius=2) == 1.0
    far = np.roll(blob, 3, axis=1)
    assert f_measure(blob, far, radius=1) == 0.0  # P + R = 0


def test_void_is_ignored_by_j_and_f():
    gt = square(8, 8, 2, 2, 4)
    res = square(8, 8, 1, 1, 6)
    void = (res > 0) & (gt == 0)
    assert jaccard(gt, res, void) == 1.0 and f_measure(gt, res, void, radius=1) == 1.0
    assert jaccard(gt, res) == 16 / 36


def test_fast_path_equals_reference_path():
    rng = np.random.default_rng(1)
    for _ in range(25):
        h, w = rng.integers(5, 40, size=2)
        res = rng.integers(0, 4, size=(h, w)) * (rng.random((h, w)) < 0.6)
        gt = np.where(rng.random((h, w)) < 0.5, 0, rng.integers(1, 3, size=(h, w)))
        void = rng.random((h, w)) < 0.1 if rng.random() < 0.5 else None
        radius = int(rng.integers(1, 4))
        j, f = frame_scores(res, gt, 4, 2, radius=radius, void=void)
        for p in range(4):
            for k in range(2):
                assert j[p, k] == jaccard(gt == k + 1, res == p + 1, void)
                assert f[p, k] == f_measure(gt == k + 1, res == p + 1, void, radius=radius)


# ---------------------------------------------------------------- statistics


def test_statistics_mean_recall_decay():
    mean, recall, decay = object_statistics(np.array([1.0, 0.0, 1.0, 0.5, 0.6]))
    assert mean == pytest.approx(0.62)
    assert recall == pytest.approx(0.6)  # 0.5 is not > 0.5
    assert decay == pytest.approx(0.5 - 0.55)  # bins [0:2] and [3:5]


def test_decay_bins_short_and_long_sequences():
    assert decay_bins(5) == [slice(0, 2), slice(1, 3), slice(2, 4), slice(3, 5)]
    assert decay_bins(3) == [slice(0, 2), slice(1, 2), slice(1, 3), slice(2, 3)]
    assert decay_bins(2) == [slice(0, 1), slice(0, 2), slice(1, 2), slice(1, 2)]
    assert decay_bins(1) == [slice(0, 1)] * 4
    assert object_statistics(np.array([0.2, 0.9, 0.5]))[2] == pytest.approx(0.55 - 0.5)
    assert object_statistics(np.array([0.7]))[2] == 0.0
    # 256 frames: the last index is 255 and its + 1 is 256 (NumPy 1.x's int64, not NumPy 2's uint8 wrap to 0, which
    # emptied the last bin: Decay NaN), so Decay is valid up to 256 frames as DAVIS_METRIC.md says
    assert decay_bins(256) == [slice(0, 65), slice(64, 129), slice(128, 192), slice(191, 256)]
    values = np.linspace(0, 1, 256)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning at 256
        decay = object_statistics(values)[2]
    assert decay == pytest.approx(values[0:65].mean() - values[191:256].mean())
    with pytest.warns(UserWarning, match="uint8"):
        object_statistics(np.linspace(0, 1, 257))
    # 400 frames: indices [0, 100, 200, 299, 399] wrap to [0, 100, 200, 43, 143].
    values = np.random.default_rng(0).random(400)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        decay = object_statistics(values)[2]
    assert decay == pytest.approx(values[0:101].mean() - values[43:144].mean())


# ---------------------------------------------------------------- protocols on tiny datasets


def test_perfect_and_empty(tmp_path):
    gt, _ = one_square_video()
    perfect = scored(tmp_path / "a", {"s": gt}, {"s": gt}).global_dict()
    assert perfect == {"J&F-Mean": 1, "J-Mean": 1, "J-Recall": 1, "J-Decay": 0, "F-Mean": 1, "F-Recall": 1,
                       "F-Decay": 0}  # fmt: skip
    empty = scored(tmp_path / "b", {"s": gt}, {"s": np.zeros_like(gt)}).global_dict()
    assert all(v == 0 for v in empty.values())


def test_shifted_by_one_and_two_pixels(tmp_path):
    # Shift 1: intersection 4x3 = 12, union 20 -> J = 0.6; boundaries move 1 px = radius (8x8 -> 1) -> F = 1.
    gt, res = one_square_video(shift=1)
    s = scored(tmp_path / "a", {"s": gt}, {"s": res})
    assert (s.j_mean, s.j_recall, s.j_decay, s.f_mean) == pytest.approx((0.6, 1.0, 0.0, 1.0))
    assert s.jf_mean == pytest.approx(0.8)
    # Shift 2: J = 8 / 24. The GT boundary is the 16-px outline of the box [1..5]x[1..5]. The result (cols 4..7)
    # touches the right border, where the last-column rule compares only southward, so its boundary is the outline
    # of [1..5]x[3..7] without (2..4, 7): 13 px. Within 1 px of the other side: result rows 1 and 5 at cols 3..6
    # plus (2, 3), (4, 3) -> P = 10/13; GT rows 1 and 5 at cols 2..5 plus (2, 5), (4, 5) -> R = 10/16.
    gt, res = one_square_video(shift=2)
    s = scored(tmp_path / "b", {"s": gt}, {"s": res})
    p, r = 10 / 13, 10 / 16
    assert (s.j_mean, s.j_recall, s.f_mean, s.f_recall) == pytest.approx(
        (1 / 3, 0.0, 2 * p * r / (p + r), 1.0)
    )


def test_eroded_result(tmp_path):
    # Result = inner 2x2 of the 4x4 square: J = 4 / 16. Its 8 boundary pixels all lie within 1 px of the GT
    # outline (P = 1); 12 of the 16 GT outline pixels (all but the 4 corners) lie within 1 px of it (R = 3/4).
    gt, _ = one_square_video()
    res = np.stack([square(8, 8, 3, 3, 2)] * len(gt))
    s = scored(tmp_path, {"s": gt}, {"s": res})
    assert s.j_mean == pytest.approx(0.25)
    assert s.f_mean == pytest.approx(2 * 0.75 / 1.75)


def two_objects(frames: int = 5) -> np.ndarray:
    """8x16 frames: object 1 = 3x3 at cols 1..3, object 2 = 3x3 at cols 10..12 (far apart for radius 1)."""
    frame = square(8, 16, 2, 1, 3, 1) + square(8, 16, 2, 10, 3, 2)
    return np.stack([frame] * frames)


def test_swapped_ids_are_fixed_by_matching(tmp_path):
    gt = two_objects()
    swapped = np.choose(gt, [0, 2, 1]).astype(np.uint8)
    s = scored(tmp_path / "u", {"s": gt}, {"s": swapped})
    assert s.jf_mean == 1.0
    # Rows list the matched pairs in ascending result-id order, named <seq>_<i>.
    assert [(o.name, o.result_id, o.gt_id) for o in s.objects] == [("s_1", 1, 2), ("s_2", 2, 1)]
    semi = scored(tmp_path / "v", {"s": gt}, {"s": swapped}, task="semi-supervised")
    assert semi.jf_mean == 0.0


def test_matching_maximises_j_and_f_not_j_alone(tmp_path):
    # Proposal 1 (frame 0) = object 1 + six stray pixels: higher J, poorer boundary. Proposal 2 (frame 1) =
    # object 1 shrunk by one pixel: lower J, boundary within the 1 px tolerance. Object 2 is never covered.
    # DAVIS_METRIC: one Hungarian assignment on (mean J + mean F) / 2, which gives object 1 proposal 2.
    gt = np.stack([square(16, 24, 2, 2, 6, 1) + square(16, 24, 11, 18, 3, 2)] * 2)
    res = np.zeros_like(gt)
    res[0] = square(16, 24, 2, 2, 6, 1)
    res[0, np.repeat([2, 5], 3), np.tile([12, 15, 18], 2)] = 1
    res[1] = square(16, 24, 2, 2, 5, 2)
    assert boundary_radius(16, 24) == 1
    obj1 = gt == 1
    j = [np.mean([jaccard(obj1[t], res[t] == p) for t in range(2)]) for p in (1, 2)]
    f = [np.mean([f_measure(obj1[t], res[t] == p, radius=1) for t in range(2)]) for p in (1, 2)]
    assert j == pytest.approx([(6 / 7) / 2, (25 / 36) / 2])  # each proposal is absent in one frame
    assert f[0] == pytest.approx((2 / 3) / 2)  # 24 of its 48 boundary pixels match; recall 1
    assert j[0] > j[1] and j[0] + f[0] < j[1] + f[1]  # J alone would pick proposal 1
    s = scored(tmp_path, {"s": gt}, {"s": res})
    assert sorted((o.gt_id, o.result_id) for o in s.objects) == [(1, 2), (2, 1)]
    obj = next(o for o in s.objects if o.gt_id == 1)
    assert (obj.j_mean, obj.f_mean) == pytest.approx((j[1], f[1]))


def test_id_switch_mid_sequence_is_penalised(tmp_path):
    # Ids swap from frame 3 of 5: keeping ids scores 3/5 per object (J = F = 1 then 0), swapping 2/5.
    gt = two_objects()
    res = gt.copy()
    res[3:] = np.choose(gt[3:], [0, 2, 1])
    s = scored(tmp_path, {"s": gt}, {"s": res})
    assert [(o.result_id, o.gt_id) for o in s.objects] == [(1, 1), (2, 2)]
    assert (s.j_mean, s.j_recall, s.f_mean) == pytest.approx((0.6, 0.6, 0.6))
    assert s.j_decay == pytest.approx(1.0)  # bins [0:2] -> 1, [3:5] -> 0


def test_a_sequence_is_scored_from_the_folder_uvosam_names_it(tmp_path):
    """Ground truth ``car 1`` is scored from results ``car_1``, the name ``uvosam segment`` gives a video
    ``car 1.mp4`` (``portable_names.safe_name``), under its own name; a folder of the very name comes first. It
    was reported missing."""
    gt = two_objects()
    root = tmp_path / "DAVIS"
    write_davis_layout(root, {"car 1": gt, "dog": gt})
    res = write_results(tmp_path / "res", {"car_1": gt, "dog": gt})
    s = evaluate(root, res, num_workers=1)
    assert s.jf_mean == 1.0 and [o.name for o in s.objects] == [
        "car 1_1",
        "car 1_2",
        "dog_1",
        "dog_2",
    ]
    write_results(res, {"car 1": np.zeros_like(gt)})
    assert evaluate(root, res, num_workers=1).jf_mean < 1.0  # the folder of its own name
    write_davis_layout(root, {"car 2": gt})  # outside the raises: only evaluate may raise it
    with pytest.raises(
        FileNotFoundError, match=r"folder .*car 2 \(or car_2, as uvosam names it\) is missing"
    ):
        evaluate(root, res, num_workers=1)


def test_extra_objects_cost_nothing_unless_they_overwrite(tmp_path):
    gt, _ = one_square_video()
    extra = gt.copy()
    extra[:, 7, 0:3] = 5  # a false object elsewhere
    assert scored(tmp_path / "a", {"s": gt}, {"s": extra}).jf_mean == 1.0
    over = gt.copy()
    over[:, 2:4, 2:4] = 2  # overwrites 4 of the 16 object pixels
    s = scored(tmp_path / "b", {"s": gt}, {"s": over})
    assert s.j_mean == pytest.approx(12 / 16) and s.f_mean < 1


def test_missing_object_scores_zero_where_visible(tmp_path):
    gt = two_objects(4)
    gt[2:][gt[2:] == 2] = 0  # object 2 leaves after frame 1
    res = np.where(gt == 1, 1, 0).astype(np.uint8)
    s = scored(tmp_path, {"s": gt}, {"s": res})
    missing = next(o for o in s.objects if o.gt_id == 2)
    np.testing.assert_array_equal(missing.j_frames, [0, 0, 1, 1])
    np.testing.assert_array_equal(missing.f_frames, [0, 0, 1, 1])
    assert s.j_mean == pytest.approx((1 + 0.5) / 2) and s.f_mean == pytest.approx(0.75)


def test_object_count_comes_from_first_frame(tmp_path):
    gt = two_objects(4)
    gt[:2][gt[:2] == 2] = 0  # object 2 enters at frame 2: not evaluated
    s = scored(tmp_path, {"s": gt}, {"s": np.where(gt == 1, 1, 0)})
    assert [o.gt_id for o in s.objects] == [1] and s.jf_mean == 1.0


def test_a_sequence_with_no_object_in_its_first_frame_is_left_out_with_a_warning(tmp_path, caplog):
    gt, _ = one_square_video(frames=2)
    empty = np.zeros_like(gt)
    s = scored(tmp_path, {"a": gt, "b": empty}, {"a": gt, "b": gt})
    assert [o.sequence for o in s.objects] == ["a"]
    assert [r.getMessage() for r in caplog.records if r.levelname == "WARNING"] == [
        "sequence b has no object in its first annotation frame; it adds no rows"
    ]


def test_at_most_twenty_ids(tmp_path):
    gt, _ = one_square_video(frames=2)
    res = np.zeros((2, 8, 8), np.uint8)
    res[0].flat[:20] = np.arange(1, 21)
    res[1] = gt[1]
    assert len(scored(tmp_path / "a", {"s": gt}, {"s": res}).objects) == 1
    res[0, 7, 7] = 21
    with pytest.raises(
        ValueError, match=r"00000\.png: result id 21 exceeds the maximum of 20 proposals"
    ):
        scored(tmp_path / "b", {"s": gt}, {"s": res})


def test_void_and_frame_selection_per_task(tmp_path):
    gt = np.stack([square(8, 8, 1, 1, 6, 255)] * 5)
    gt[:, 2:6, 2:6] = 1  # 16-px object inside a 20-px void ring
    res = np.where(gt > 0, 1, 0).astype(np.uint8)  # covers object and void
    res[0] = res[-1] = 0  # wrong first and last frames
    unsup = scored(tmp_path / "u", {"s": gt}, {"s": res})
    # void ignored, all frames
    np.testing.assert_array_equal(unsup.objects[0].j_frames, [0, 1, 1, 1, 0])
    semi = scored(tmp_path / "s", {"s": gt}, {"s": res}, task="semi-supervised")
    # 255 is background, frames 1..3 only
    np.testing.assert_allclose(semi.objects[0].j_frames, [16 / 36] * 3)
    res[1, 0, 0] = 2
    with pytest.raises(
        ValueError, match="result id 2 exceeds the 1 ground-truth objects of the first frame"
    ):
        scored(tmp_path / "t", {"s": gt}, {"s": res}, task="semi-supervised")
    with pytest.raises(
        ValueError, match="has 2 frames; the semi-supervised protocol .* needs at least 3"
    ):
        scored(tmp_path / "w", {"s": gt[:2]}, {"s": res[:2]}, task="semi-supervised")


def test_global_means_pool_objects_not_sequences(tmp_path):
    gt1, gt2 = one_square_video(frames=3)[0], two_objects(3)
    res2 = np.where(gt2 == 1, 1, 0).astype(np.uint8)  # second sequence: one of two objects found
    s = scored(tmp_path, {"a": gt1, "b": gt2}, {"a": gt1, "b": res2})
    assert [o.name for o in s.objects] == ["a_1", "b_1", "b_2"]
    assert s.j_mean == pytest.approx(2 / 3)  # (1 + 1 + 0) / 3 objects, not (1 + 0.5) / 2 sequences


# ---------------------------------------------------------------- layouts and errors


@pytest.fixture()
def synthetic(tmp_path):
    root = tmp_path / "DAVIS"
    names = make_synthetic_davis(root, sequences=2, frames=4, height=24, width=32)
    res = write_results(tmp_path / "res", {n: np.where(read_annotations(root, n) == 255, 0,
                                                       read_annotations(root, n)) for n in names})  # fmt: skip
    return root, res, names


def test_synthetic_dataset(synthetic):
    root, res, names = synthetic
    assert names == ["synth-000", "synth-001"]
    assert (root / "ImageSets/2017/val.txt").read_text().split() == names
    gt = read_annotations(root, names[0])
    assert gt.shape == (4, 24, 32) and (gt == 255).any()
    # late object from frame 2
    assert set(np.unique(gt[0])) == {0, 1, 2, 255} and (gt[2:] == 3).any()
    assert len(list((root / "JPEGImages/480p" / names[0]).glob("*.jpg"))) == 4
    with Image.open(root / "Annotations/480p" / names[0] / "00000.png") as im:
        assert im.mode == "P" and im.getpalette()[3:9] == [128, 0, 0, 0, 128, 0]
    assert davis_palette()[255].tolist() == [224, 224, 192]
    scores = evaluate(root, res)
    assert scores.jf_mean == 1.0 and len(scores.objects) == 4  # the late object is not evaluated


def test_bad_layouts_name_the_file(synthetic, tmp_path):
    root, res, names = synthetic
    with pytest.raises(ValueError, match="unknown sequence"):
        evaluate(root, res, sequences=["nope"])
    with pytest.raises(FileNotFoundError, match=r"ImageSets/2017/train\.txt"):
        evaluate(root, res, subset="train")
    with pytest.raises(FileNotFoundError, match=r"ImageSets/2019/test-dev\.txt"):
        evaluate(root, res, subset="test-dev")
    (res / names[1] / "00003.png").unlink()
    with pytest.raises(FileNotFoundError, match=r"result frame missing: .*synth-001/00003\.png"):
        evaluate(root, res)
    Image.new("RGB", (32, 24)).save(res / names[1] / "00003.png")
    with pytest.raises(ValueError, match=r"00003\.png: expected a 2-D indexed PNG.*'RGB'"):
        evaluate(root, res)
    write_index_png(res / names[1] / "00003.png", np.zeros((24, 30)))
    with pytest.raises(
        ValueError, match=r"00003\.png is 30x24 \(WxH\) but the annotation .* is 32x24;"
    ):
        evaluate(root, res)
    (root / "Annotations_unsupervised/480p" / names[0] / "00002.png").unlink()
    with pytest.raises(ValueError, match="3 annotation PNGs .* but 4 jpgs"):
        evaluate(root, res)
    with pytest.raises(FileNotFoundError, match="no results for sequence"):
        evaluate(root, tmp_path, sequences=[names[1]])
    with pytest.raises(FileNotFoundError, match="DAVIS root not found"):
        evaluate(tmp_path / "missing", res)
    with pytest.raises(ValueError, match="task must be one of"):
        evaluate(root, res, task="supervised")


def test_index_png_round_trip(tmp_path):
    ids = np.arange(12, dtype=np.uint8).reshape(3, 4)
    np.testing.assert_array_equal(read_index_png(write_index_png(tmp_path / "a.png", ids)), ids)
    Image.fromarray(ids, "L").save(tmp_path / "b.png")
    np.testing.assert_array_equal(read_index_png(tmp_path / "b.png"), ids)


def test_workers_give_identical_scores(synthetic):
    root, res, names = synthetic
    labels = {n: np.roll(np.where(read_annotations(root, n) == 255, 0, read_annotations(root, n)), 2, axis=2)
              for n in names}  # fmt: skip
    write_results(res, labels)
    one, two = evaluate(root, res), evaluate(root, res, num_workers=2)
    assert one.to_dict() == two.to_dict() and one.jf_mean < 1


def test_workers_in_a_script_without_a_main_guard_fail_once_with_the_advice(synthetic, tmp_path):
    """The spawn workers import the script again and die there; a pool that restarted them would hang."""
    root, res, _ = synthetic
    script = tmp_path / "noguard.py"
    script.write_text(
        "from uvosam.eval.davis import evaluate\n"
        f"print(evaluate({str(root)!r}, {str(res)!r}, num_workers=2).jf_mean)\n"
    )
    # this checkout's uvosam, whichever one the interpreter has installed
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    done = subprocess.run(
        [sys.executable, str(script)],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("RuntimeError: evaluate(num_workers=2): a scoring process died")
    assert 'if __name__ == "__main__":' in last and "num_workers=1" in last


# ---------------------------------------------------------------- CLI


def test_cli_prints_tables_and_writes_json(synthetic, tmp_path, capsys):
    from uvosam_cli import davis as cli

    root, res, _ = synthetic
    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers(dest="command"))
    out = tmp_path / "scores.json"
    args = parser.parse_args(["davis-score", "--davis-root", str(root), "--results", str(res), "--json", str(out),
                              "--workers", "1"])  # fmt: skip
    assert args.func(args) == 0
    printed = capsys.readouterr().out
    assert "J&F-Mean" in printed and "F-Decay" in printed and "synth-001_2" in printed
    data = json.loads(out.read_text())
    keys = ["J&F-Mean", "J-Mean", "J-Recall", "J-Decay", "F-Mean", "F-Recall", "F-Decay"]
    assert list(data)[:7] == keys and [data[k] for k in keys] == [1, 1, 1, 0, 1, 1, 0]
    assert [row["Sequence"] for row in data["sequences"]] == ["synth-000_1", "synth-000_2", "synth-001_1",
                                                              "synth-001_2"]  # fmt: skip


def test_cli_writes_the_official_csv_files(synthetic, tmp_path, capsys):
    """--csv writes evaluation_method.py's two files as it does (pandas to_csv, 3 decimals); checked byte for byte
    against the official tool on a synthetic set with errors, here on perfect results."""
    from uvosam_cli import main

    root, res, _ = synthetic
    argv = _score_argv(root, res)
    assert main([*argv, "--csv", str(tmp_path / "csv")]) == 0
    assert (tmp_path / "csv" / "global_results-val.csv").read_text() == (
        "J&F-Mean,J-Mean,J-Recall,J-Decay,F-Mean,F-Recall,F-Decay\n"
        "1.000,1.000,1.000,0.000,1.000,1.000,0.000\n"
    )
    assert (tmp_path / "csv" / "per-sequence_results-val.csv").read_text() == (
        "Sequence,J-Mean,F-Mean\nsynth-000_1,1.000,1.000\nsynth-000_2,1.000,1.000\n"
        "synth-001_1,1.000,1.000\nsynth-001_2,1.000,1.000\n"
    )
    assert "per-sequence_results-val.csv" in capsys.readouterr().out


@pytest.mark.parametrize("option", ["--json", "--csv"])
def test_cli_interrupted_while_writing_leaves_the_earlier_files_whole(
    synthetic, tmp_path, monkeypatch, option
):
    """A write cut off half way (Ctrl-C, a full disk) must not leave a truncated table to be read as the scores:
    the earlier file stays as it was, and no .tmp is left."""
    from uvosam_cli import main

    root, res, _ = synthetic
    out = tmp_path / "out"
    out.mkdir()
    earlier = {
        "scores.json": "{}\n",
        "global_results-val.csv": "earlier\n",
        "per-sequence_results-val.csv": "earlier\n",
    }
    for name, text in earlier.items():
        (out / name).write_text(text)
    interrupt_text_writes(monkeypatch)
    target = out / "scores.json" if option == "--json" else out
    argv = [*_score_argv(root, res), option, str(target)]
    assert main(argv) == 130  # Ctrl-C: one line, exit code 130
    monkeypatch.undo()
    assert {p.name: p.read_text() for p in out.iterdir()} == earlier


def test_davis_score_benchmark_permutes_ids_and_keeps_every_object():
    """benchmarks/davis_score.py's 'ids permuted' sequences: same object pixels, ids shuffled one to one (not
    mapped into 1..255 and mostly dropped, which made those sequences nearly free to score)."""
    from script_helpers import load_benchmark

    bench = load_benchmark("davis_score")
    # ids 0..4, (2, 3, 10)
    labels = np.stack([np.repeat(np.arange(5, dtype=np.uint8), 2)[None].repeat(3, 0)] * 2)
    labels[0, 0, 0] = 255  # void
    for seed in range(4):
        out = bench.perturb(labels, 2, np.random.default_rng(seed))
        objects = (labels > 0) & (labels != 255)
        assert np.array_equal(out > 0, objects)
        pairs = set(zip(labels[objects].tolist(), out[objects].tolist()))
        assert len(pairs) == 4 and {g for g, _ in pairs} == {r for _, r in pairs} == {1, 2, 3, 4}


def test_cli_writes_its_files_before_stdout_whose_reader_went(synthetic, tmp_path):
    """`davis-score ... --json s.json | true` wrote no JSON: the tables were printed first, and the broken pipe ended
    the command with "error: Broken pipe" (exit 2)."""
    from proc import run_with_gone_reader

    root, res, _ = synthetic
    argv = ["-m", "uvosam_cli", *_score_argv(root, res)]
    done = run_with_gone_reader(
        [*argv, "--json", str(tmp_path / "s.json"), "--csv", str(tmp_path / "csv")],
        env={"PYTHONUNBUFFERED": "1"},
    )
    assert (done.returncode, done.stderr) == (141, "")
    assert json.loads((tmp_path / "s.json").read_text())["J&F-Mean"] == 1
    assert (tmp_path / "csv" / "per-sequence_results-val.csv").is_file()


def test_davis_score_on_the_trainval_download_names_the_unsupervised_download_and_the_task_there(
    synthetic, capsys
):
    """The usual trainval download has Annotations/480p only: the error named the missing Annotations_unsupervised
    folder and the DAVIS page, not that those annotations are a download of their own, nor the semi-supervised task
    that the annotations there serve."""
    import shutil

    import uvosam_cli

    root, res, _ = synthetic
    shutil.rmtree(root / "Annotations_unsupervised")
    with pytest.raises(FileNotFoundError) as err:
        evaluate(root, res)
    assert str(err.value) == (
        f"annotation folder for the unsupervised task not found: {root}/Annotations_unsupervised/480p; {root} has "
        "Annotations/480p, the semi-supervised task's (the DAVIS-2017 trainval download's): the unsupervised task's "
        "annotations are a download of their own, DAVIS-2017 Unsupervised TrainVal 480p on "
        f"https://davischallenge.org/davis2017/code.html: put its Annotations_unsupervised/480p in {root}"
    )
    assert uvosam_cli.main(_score_argv(root, res)) == 2
    said = capsys.readouterr().err
    assert said.strip().endswith(
        "; or score the semi-supervised task on the annotations that are there: --task semi-supervised"
    )
    assert "DAVIS-2017 Unsupervised TrainVal 480p" in said
    # that task reads the annotations there (these results, with more ids than the first frame, it then refuses)
    uvosam_cli.main([*_score_argv(root, res), "--task", "semi-supervised"])
    assert "exceeds the 2 ground-truth objects of the first frame" in capsys.readouterr().err
