"""YouTube-VIS results as the original IDOL emits them (``MULTI_CLS_ON``, ``APPLY_CLS_THRES`` = 0.05): one entry per
(track, class) whose mean class probability is > 0.05, in trajectory order then class order
(``ExportOptions.ytvis_class_thres``, ``export_formats.ytvis_entries``)."""

import json

import numpy as np
import pytest
import torch
from doubles import SliceDetector

from uvosam.eval.runner import ytvis_class_thres
from uvosam.export import ExportWriter
from uvosam.export_formats import TrackRecord, ytvis_entries
from uvosam.export_types import ExportOptions
from uvosam.tracker.association_config import InferenceConfig
from uvosam.tracker.outputs import DetectorOutput
from uvosam.tracker.postprocess import run_idol_offline
from uvosam.tracker.session import IDOLTracker
from uvosam.types import FrameResult

PER_CLASS = ExportOptions(
    davis=False, cutouts=False, results_json=False, tracks_csv=False, timeline=False,
    ytvis_class_thres=0.05,
)  # fmt: skip
PER_TRACK = ExportOptions(
    davis=False, cutouts=False, results_json=False, tracks_csv=False, timeline=False
)


def _record(track_id, label, prob_sum, frames, score):
    return TrackRecord(
        track_id, slot=1, label=label, first_frame=0, num_frames=frames, score_sum=score * frames,
        prob_sum=np.array(prob_sum, np.float64), prob_frames=frames,
    )  # fmt: skip


def test_a_track_is_listed_under_each_class_above_the_threshold_in_idols_order():
    # means 0.6, 0.3, 0.05 (not > 0.05: left out, as the original), 0.01; first in record order, later id
    late_id = _record(5, 0, [1.2, 0.6, 0.1, 0.02], frames=2, score=0.62)
    early_id = _record(2, 1, [0.02, 0.9, 0.0, 0.0], frames=1, score=0.9)
    entries = list(ytvis_entries([late_id, early_id], video_id=7, num_frames=3, class_thres=0.05))
    # trajectories in id (= IDOL's video_dict) order, then classes in index order
    assert [(e["category_id"], e["score"]) for e in entries] == [
        (2, pytest.approx(0.9)),
        (1, pytest.approx(0.6)),
        (2, pytest.approx(0.3)),
    ]
    assert all(e["video_id"] == 7 and e["segmentations"] == [None] * 3 for e in entries)
    # one entry per track: its label and mean per-frame score, in record order
    entries = list(ytvis_entries([late_id, early_id], video_id=7, num_frames=3))
    assert [(e["category_id"], e["score"]) for e in entries] == [
        (1, pytest.approx(0.62)),
        (2, pytest.approx(0.9)),
    ]


def _frame(t, rows, num_classes):
    """``rows``: ``(track_id, label, class probabilities or None)``; each track paints one column."""
    ids = np.array([r[0] for r in rows], np.int64)
    probs = [r[2] for r in rows]
    masks = np.zeros((len(rows), 6, 8), bool)
    for k, track_id in enumerate(ids):
        masks[k, :, track_id] = True
    return FrameResult(
        frame_index=t, image=np.zeros((6, 8, 3), np.uint8), track_ids=ids,
        boxes_xyxy=np.zeros((len(rows), 4), np.float32),
        scores=np.array([0.5 if p is None else max(p) for p in probs], np.float32),
        labels=np.array([r[1] for r in rows], np.int64), masks=masks,
        mask_scores=np.ones(len(rows), np.float32),
        class_probs=None if None in probs else np.array(probs, np.float32).reshape(len(rows), num_classes),
    )  # fmt: skip


def _ytvis(tmp_path, results, options, class_names, keep_ids=None):
    with ExportWriter(
        tmp_path / "out", video_name="v", class_names=class_names, height=6, width=8,
        options=options, ytvis_video_id=3, keep_ids=keep_ids,
    ) as writer:  # fmt: skip
        for res in results:
            writer.add(res)
    export = writer.close()
    return json.loads(export.ytvis_json.read_text()), export.readme.read_text()


def test_the_writer_averages_each_tracks_class_probabilities_over_its_frames(tmp_path):
    results = [
        _frame(0, [(1, 0, [0.5, 0.2, 0.01]), (2, 2, [0.0, 0.1, 0.8])], 3),
        _frame(1, [(2, 2, [0.04, 0.0, 0.6])], 3),  # track 1 absent
        _frame(2, [(1, 0, [0.3, 0.0, 0.03]), (2, 2, [0.0, 0.02, 0.7])], 3),
    ]
    entries, readme = _ytvis(tmp_path, results, PER_CLASS, ("a", "b", "c"))
    # track 1: means 0.4, 0.1, 0.02; track 2: 0.0133, 0.04, 0.7 (b at 0.04: left out)
    assert [(e["category_id"], e["score"]) for e in entries] == [
        (1, pytest.approx(0.4)),
        (2, pytest.approx(0.1)),
        (3, pytest.approx(0.7)),
    ]
    assert entries[0]["segmentations"] == entries[1]["segmentations"]  # the same masks per class
    assert [s is None for s in entries[0]["segmentations"]] == [False, True, False]
    assert "one entry per (track, class) whose mean class probability" in readme
    kept, _ = _ytvis(tmp_path, results, PER_CLASS, ("a", "b", "c"), keep_ids={2})
    assert kept == entries[2:]  # the kept rows keep their own probabilities
    # the default (the app's zip): one entry per track, its label and mean per-frame score, as before
    entries, readme = _ytvis(tmp_path, results, PER_TRACK, ("a", "b", "c"))
    assert [(e["category_id"], e["score"]) for e in entries] == [
        (1, pytest.approx(0.4)),
        (3, pytest.approx(0.7)),
    ]
    assert "one entry per track (its class" in readme


def test_single_class_results_are_one_entry_per_track_as_before(tmp_path):
    """With one class the probability is the score: same entries, except a track whose mean is <= 0.05 (which the
    original drops too)."""
    results = [
        _frame(t, [(1, 0, [0.9 - 0.1 * t]), (2, 0, [0.3]), (3, 0, [0.04])], 1) for t in range(3)
    ]
    per_class, _ = _ytvis(tmp_path, results, PER_CLASS, ("object",))
    per_track, _ = _ytvis(tmp_path, results, PER_TRACK, ("object",))
    assert per_class == per_track[:2] and len(per_track) == 3


def test_results_without_class_probabilities_warn_once_and_list_each_track_once(tmp_path):
    results = [_frame(t, [(1, 1, None), (2, 0, None)], 2) for t in range(3)]
    with pytest.warns(UserWarning, match="no class_probs") as caught:
        entries, _ = _ytvis(tmp_path, results, PER_CLASS, ("a", "b"))
    assert len(caught) == 1
    assert [(e["category_id"], e["score"]) for e in entries] == [
        (2, pytest.approx(0.5)),
        (1, pytest.approx(0.5)),
    ]


def test_streamed_tracks_give_the_offline_per_class_results(tmp_path, fixtures_dir):
    """A 3-class recording through the streaming tracker and the writer: the entries are ``IDOL.inference``'s
    (trajectory, class) results, in its order, with its scores and the frames of each trajectory."""
    arrays = np.load(fixtures_dir / "idol_association" / "postproc.npz")
    names = ("pred_logits", "pred_boxes", "pred_inst_embed")
    outputs = DetectorOutput(*(torch.from_numpy(arrays[f"k3__{k}"]) for k in names))
    height, width = 6, 8
    offline = run_idol_offline(outputs, (height, width))
    assert len(offline) > len({t.track_id for t in offline})  # some track has two classes > 0.05
    session = IDOLTracker(SliceDetector(outputs), ("a", "b", "c"), batch_size=4).new_video(
        height=height, width=width
    )
    tracks = [ft for _ in range(len(outputs)) for ft in session.push(np.zeros((6, 8, 3), np.uint8))]
    tracks += session.finish()
    results = []
    for ft in tracks:
        probs = ft.class_probs.tolist() if len(ft) else []
        results.append(_frame(ft.frame_index, list(zip(ft.track_ids, ft.labels, probs)), 3))
    entries, _ = _ytvis(tmp_path, results, PER_CLASS, ("a", "b", "c"))
    assert [(e["category_id"], e["score"]) for e in entries] == [
        (t.label + 1, pytest.approx(t.score, abs=1e-6)) for t in offline
    ]
    for entry, traj in zip(entries, offline):
        assert [s is None for s in entry["segmentations"]] == [b is None for b in traj.boxes_xyxy]


def test_ytvis_run_takes_the_threshold_from_the_trackers_config():
    def tracker(**inference):
        return IDOLTracker(SliceDetector(None), ("a", "b"), inference=InferenceConfig(**inference))

    assert ytvis_class_thres(tracker()) == 0.05 == ytvis_class_thres(object())
    assert ytvis_class_thres(tracker(apply_cls_thres=0.2)) == 0.2
    with pytest.warns(UserWarning, match="multi_cls_on is off: .* once, under its streamed label"):
        assert ytvis_class_thres(tracker(multi_cls_on=False)) is None  # one entry per track
    with pytest.warns(UserWarning, match="MEAN class probability"):
        ytvis_class_thres(tracker(temporal_score="max"))


def test_a_checkpoint_named_as_a_released_file_gets_that_releases_class_names(tmp_path):
    """A path to a released file (``/data/YTVIS21_R50.pth``) got ``class_1..class_40``: ``segment`` labelled its
    tracks "class_1", and ``ytvis-run`` refused it as a tracker of other classes than the dataset's."""
    from uvosam.classes import class_names_for, dataset_class_names
    from uvosam.weight_table import WEIGHTS

    for preset, dataset in (("idol-ytvis19-r50", "ytvis2019"), ("idol-ytvis21-r50", "ytvis2021")):
        path = str(tmp_path / WEIGHTS[preset].basename)
        assert class_names_for(path, 40) == dataset_class_names(dataset)
    assert class_names_for(str(tmp_path / "my_run.pth"), 40)[:2] == ("class_1", "class_2")
    # a released name with another class count (a fine-tuned file kept its name): by the count, as before
    assert class_names_for(str(tmp_path / WEIGHTS["idol-ytvis19-r50"].basename), 1) == ("object",)
