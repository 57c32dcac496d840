"""Streaming IDOLTracker: identical to run_idol_offline with a bounded look-ahead (fixtures +
synthetic streams)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from doubles import SliceDetector

from uvosam.tracker.association_config import InferenceConfig
from uvosam.tracker.outputs import DetectorOutput
from uvosam.tracker.postprocess import IDOLVideoState, run_idol_offline
from uvosam.tracker.session import IDOLTracker, decision_lookahead, frames_from_trajectories
from uvosam.tracker.trajectories import TrajectoryBook

H, W = 48, 64


def stream(outputs: DetectorOutput, batch_size: int, **kwargs):
    """Push every frame; returns (tracker, session, [(push index or None for finish,
    FrameTracks)])."""
    detector = SliceDetector(outputs)
    tracker = IDOLTracker(detector, ("object",), batch_size=batch_size, **kwargs)
    session = tracker.new_video(height=H, width=W)
    emitted = []
    for p in range(len(outputs)):
        emitted += [(p, ft) for ft in session.push(np.zeros((H, W, 3), np.uint8))]
    emitted += [(None, ft) for ft in session.finish()]
    assert sum(detector.calls) == len(outputs) and max(detector.calls) <= batch_size
    return tracker, session, emitted


def assert_same_frames(got, want):
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g.frame_index == w.frame_index
        assert g.track_ids.tolist() == w.track_ids.tolist(), g.frame_index
        assert g.labels.tolist() == w.labels.tolist(), g.frame_index
        np.testing.assert_array_equal(g.boxes_xyxy, w.boxes_xyxy)
        np.testing.assert_array_equal(g.scores, w.scores)
        assert (g.class_probs is None) == (w.class_probs is None) == (len(g) == 0)
        if len(g):
            np.testing.assert_array_equal(g.class_probs, w.class_probs)
            np.testing.assert_array_equal(g.class_probs.max(1), g.scores)


def check_stream(outputs: DetectorOutput, batch_size: int):
    tracker, session, emitted = stream(outputs, batch_size)
    assert [ft.frame_index for _, ft in emitted] == list(range(len(outputs)))  # each once, in order
    delays = [p - ft.frame_index for p, ft in emitted if p is not None]
    assert max(delays, default=0) <= tracker.lookahead
    offline = run_idol_offline(outputs, (H, W))
    assert_same_frames([ft for _, ft in emitted], frames_from_trajectories(offline, len(outputs)))
    assert [_key(t) for t in session.trajectories()] == [_key(t) for t in offline]
    return delays, offline


def _key(t):
    boxes = tuple(None if b is None else tuple(b.tolist()) for b in t.boxes_xyxy)
    return t.track_id, t.tracker_id, t.label, t.score, boxes, t.frame_scores


# --- synthetic detector outputs -------------------------------------------------------------


def _logit(p: float) -> float:
    return float(np.log(p / (1 - p)))


def synthetic_outputs(
    seed: int = 0, num_frames: int = 72, queries: int = 12, dim: int = 16
) -> DetectorOutput:
    """Objects appearing/disappearing, short tracks born late, an id re-used after pruning, fallback
    frames.

    Object schedule (frame sets): A long-lived with gaps at 30-33 and 60-63; B leaves at 25; C only
    at frame 0 (pruned at 9); D at 12 and 14 (pruned at 16; with seed 0 a clutter detection
    continues its tracker id at
    24: a new trajectory, pruned at 26); E at 20/22/24 (survives with 3 hits); F at 40, 45, 46; G
    random from 50. Frames 30-33 and 60-63 have no object: top-1 fallback (at 60-63 with scores
    0.06-0.09); every 7th frame a clutter detection at 0.15 (selected, never starts a track).
    ``test_synthetic_stream_has_the_intended_events`` checks what actually happens.
    """
    g = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    schedule = {
        "A": set(range(num_frames)) - set(range(30, 34)) - set(range(60, 64)),
        "B": set(range(26)),
        "C": {0},
        "D": {12, 14},
        "E": {20, 22, 24},
        "F": {40, 45, 46},
        "G": {f for f in range(50, num_frames) if rng.random() < 0.7} - set(range(60, 64)),
    }
    prob = {"A": 0.8, "B": 0.6, "C": 0.45, "D": 0.4, "E": 0.5, "F": 0.55, "G": 0.7}
    embeds = torch.nn.functional.normalize(torch.randn(len(schedule), dim, generator=g), dim=1) * 5
    centers = torch.tensor([[0.1 + 0.12 * k, 0.2 + 0.1 * (k % 3)] for k in range(len(schedule))])
    logits = torch.randn(num_frames, queries, 1, generator=g) * 0.3 - 4.0
    boxes = torch.cat(
        [
            torch.rand(num_frames, queries, 2, generator=g),
            0.05 + 0.1 * torch.rand(num_frames, queries, 2, generator=g),
        ],
        dim=2,
    )
    emb = torch.randn(num_frames, queries, dim, generator=g) * 0.5
    for f in range(num_frames):
        slots = torch.randperm(queries, generator=g).tolist()
        for k, name in enumerate(schedule):
            if f in schedule[name]:
                q = slots.pop()
                logits[f, q, 0] = _logit(prob[name]) + 0.2 * float(torch.randn(1, generator=g))
                drift = 0.002 * f
                boxes[f, q] = torch.tensor(
                    [centers[k, 0] + drift, centers[k, 1] + drift, 0.08, 0.1]
                )
                emb[f, q] = embeds[k] + 0.2 * torch.randn(dim, generator=g)
        if 60 <= f < 64:
            logits[f, :, 0] = torch.linspace(_logit(0.02), _logit(0.06 + 0.01 * (f - 60)), queries)
        elif f % 7 == 3:  # clutter between 0.1 and 0.2: selected, never starts a track
            logits[f, slots[0], 0] = _logit(0.15)
    return DetectorOutput(logits, boxes, emb)


def test_synthetic_stream_has_the_intended_events():
    outputs = synthetic_outputs()
    state = IDOLVideoState()
    steps = list(state.iter_steps(outputs))
    pruned = [(s.frame_idx, e.tracker_id, e.hit_frames) for s in steps for e in s.pruned]
    assert any(f == 9 for f, _, _ in pruned)  # born at 0, pruned at the first pruning frame
    assert any(hits[0] >= 9 for _, _, hits in pruned)  # short tracks born late
    pruned_entries = [(s.frame_idx, e) for s in steps for e in s.pruned]
    assert any(  # a tracker id re-opened after pruning: a new trajectory
        e.tracker_id == old.tracker_id and e.serial != old.serial
        for f, old in pruned_entries
        for s in steps[f + 1 :]
        for e in s.hits
    )
    assert any(
        len(s.candidates.indices) == 1 and float(s.candidates.boxes_cxcywh_score[0, 4]) <= 0.1
        for s in steps
    )
    assert len(outputs) >= 60


@pytest.mark.parametrize("batch_size", [1, 3, 10])
def test_stream_equals_offline_on_synthetic_video(batch_size):
    delays, offline = check_stream(synthetic_outputs(), batch_size)
    assert len({t.track_id for t in offline}) >= 4
    if batch_size == 1:
        assert max(delays) > 2  # frames really wait for the pruning decision
    assert max(delays) <= decision_lookahead(InferenceConfig()) + batch_size - 1


@pytest.mark.parametrize("seed", [1, 2])
def test_stream_equals_offline_other_seeds(seed):
    check_stream(synthetic_outputs(seed=seed, num_frames=64), 4)


@pytest.mark.parametrize("batch_size", [1, 3, 10])
def test_stream_equals_offline_on_recorded_outputs(fixtures_dir, batch_size):
    arrays = np.load(fixtures_dir / "idol_small_seed0" / "outputs.npz")
    outputs = DetectorOutput(
        *(torch.from_numpy(arrays[k]) for k in ("pred_logits", "pred_boxes", "pred_inst_embed"))
    )
    check_stream(outputs, batch_size)
    arrays = np.load(fixtures_dir / "idol_association" / "postproc.npz")
    outputs = DetectorOutput(
        *(
            torch.from_numpy(arrays[f"k1__{k}"])
            for k in ("pred_logits", "pred_boxes", "pred_inst_embed")
        )
    )
    check_stream(outputs, batch_size)


def test_multiclass_stream_keeps_ids_boxes_and_scores(fixtures_dir):
    arrays = np.load(fixtures_dir / "idol_association" / "postproc.npz")
    outputs = DetectorOutput(
        *(
            torch.from_numpy(arrays[f"k3__{k}"])
            for k in ("pred_logits", "pred_boxes", "pred_inst_embed")
        )
    )
    _, _session, emitted = stream(outputs, 3)
    want = frames_from_trajectories(run_idol_offline(outputs, (H, W)), len(outputs))
    for (_, got), ref in zip(emitted, want, strict=True):  # every frame, once
        assert got.track_ids.tolist() == ref.track_ids.tolist()
        np.testing.assert_array_equal(got.boxes_xyxy, ref.boxes_xyxy)
        np.testing.assert_array_equal(got.scores, ref.scores)
        if len(got):  # each row's 3 class probabilities, the offline trajectory's in that frame
            np.testing.assert_array_equal(got.class_probs, ref.class_probs)
            assert got.class_probs.shape == (len(got), 3)
        # holds for this input; in general the streamed label of a K > 1 track may differ (docstring)
        assert got.labels.tolist() == ref.labels.tolist()
    labels = {}
    for _, ft in emitted:
        for tid, lab in zip(ft.track_ids.tolist(), ft.labels.tolist()):
            assert labels.setdefault(tid, lab) == lab  # one label per track


def test_nothing_born_streams_empty_frames():
    outputs = DetectorOutput(
        torch.full((15, 5, 1), -3.0), torch.full((15, 5, 4), 0.3), torch.randn(15, 5, 4)
    )
    _, session, emitted = stream(outputs, 4)
    assert [len(ft) for _, ft in emitted] == [0] * 15
    assert session.trajectories() == []


def test_documented_difference_low_fallback_scores_and_defer_mode():
    """A track fed by many near-zero fallback hits ends with mean <= 0.05: offline drops it, the
    stream cannot
    know in time and shows it; defer_until_finish gives the exact offline frames."""
    t, q = 40, 4
    logits = torch.full((t, q, 1), -12.0)
    logits[:2, 0, 0] = _logit(0.3)  # one object, 2 frames at 0.3 ...
    logits[
        2:, 0, 0
    ] = -9.0  # ... then only fallback hits at ~1e-4 (matched: one row is > 0.5 everywhere)
    boxes = torch.tensor([0.5, 0.5, 0.2, 0.2]).expand(t, q, 4).clone()
    boxes[:, 1:, :2] = torch.tensor([0.1, 0.9])
    embeds = torch.eye(q)[None].expand(t, q, q).clone()
    outputs = DetectorOutput(logits, boxes, embeds)
    assert run_idol_offline(outputs, (H, W)) == []
    _, _, emitted = stream(outputs, 5)
    assert [len(ft) for _, ft in emitted] == [1] * t  # streamed, although offline drops it
    _tracker, _session, deferred = stream(outputs, 5, defer_until_finish=True)
    assert all(p is None for p, _ in deferred) and [len(ft) for _, ft in deferred] == [0] * t


def _decision_frame(birth: int, pattern: tuple[bool, ...], config: InferenceConfig) -> int | None:
    """Frame at which a single entry born at ``birth`` (then hit per ``pattern``) is decided, or
    None."""
    book = TrajectoryBook(config)
    for f in range(birth + 1 + len(pattern)):
        hit = f == birth or (f > birth and pattern[f - birth - 1])
        hits, _ = book.add_frame(
            [0] if hit else [], torch.zeros(int(hit), 4), torch.ones(int(hit), 1)
        )
        if f == birth:
            entry = hits[0]
        if f >= birth and book.is_decided(entry):
            return f
    return None


@pytest.mark.parametrize("start,min_valid", [(9, 3), (4, 2), (6, 4)])
def test_decision_lookahead_is_the_exact_worst_case(start, min_valid):
    """Exhaustive over hit/miss patterns: the latest decision of an entry born at b is
    max(b + 1, S - 1) + 2V - 3, so ``decision_lookahead`` is tight."""
    config = InferenceConfig(short_track_start_frame=start, short_track_min_valid=min_valid)
    worst = {}
    for birth in range(start + 2):
        latest = 0
        frontier = [()]
        while frontier:
            pattern = frontier.pop()
            decided = _decision_frame(birth, pattern, config)
            if decided is None:
                frontier += [pattern + (False,), pattern + (True,)]
            else:
                latest = max(latest, decided)
        assert latest == max(birth + 1, start - 1) + 2 * min_valid - 3
        worst[birth] = latest - birth
    assert max(worst.values()) == decision_lookahead(config)


def test_session_errors_say_what_to_do():
    outputs = synthetic_outputs(num_frames=3)
    tracker = IDOLTracker(SliceDetector(outputs), ("object",), batch_size=2)
    assert tracker.lookahead == 11 + 1
    session = tracker.new_video(height=H, width=W)
    with pytest.raises(
        ValueError, match=r"frame 0: size .* differs from the size given to new_video"
    ):
        session.push(np.zeros((H, W + 1, 3), np.uint8))
    with pytest.raises(TypeError, match=r"frame 0: .*a float frame in \[0, 1\]"):
        session.push(np.zeros((H, W, 3), np.float32))
    with pytest.raises(RuntimeError, match="finish"):
        session.trajectories()
    session.finish()
    with pytest.raises(RuntimeError, match="new_video"):
        session.push(np.zeros((H, W, 3), np.uint8))
    with pytest.raises(ValueError, match="batch_size"):
        IDOLTracker(SliceDetector(outputs), ("object",), batch_size=0)


def test_track_cli_writes_the_offline_results(tmp_path, monkeypatch):
    """``uvosam track`` with the detector loader and video reader replaced by fakes (frames are not
    looked at)."""
    import argparse
    import sys
    import types

    from uvosam.tracker.trajectories import results_json
    from uvosam_cli import track

    outputs = synthetic_outputs(num_frames=30)
    n = len(outputs)
    fake_video = types.ModuleType("uvosam.video")
    fake_video.probe = lambda path, stride=1, max_frames=None, fit_side=None: types.SimpleNamespace(
        height=H, width=W, scaled_from=None, source_size=(W, H)
    )
    fake_video.iter_probed = lambda info, stride=1, max_frames=None: (
        np.zeros((H, W, 3), np.uint8) for _ in range(n)
    )
    fake_loading = types.ModuleType("uvosam.tracker.loading")
    fake_loading.load_tracker = lambda weights, config_yaml, device, batch_size=None: IDOLTracker(
        SliceDetector(outputs), ("object",), batch_size=batch_size or 10
    )
    monkeypatch.setitem(sys.modules, "uvosam.video", fake_video)
    monkeypatch.setitem(sys.modules, "uvosam.tracker.loading", fake_loading)
    parser = argparse.ArgumentParser()
    track.register(parser.add_subparsers(dest="command"))
    out = tmp_path / "res" / "results.json"
    args = parser.parse_args(
        [
            "track",
            str(tmp_path / "bear.mp4"),
            "--weights",
            "idol-ytvis19-r50",  # a weight name: checked, then loaded by the fake loader
            "--out",
            str(out),
            "--batch-size",
            "4",
        ]
    )
    assert args.func(args) == 0
    written = json.loads(out.read_text())
    assert written == json.loads(
        json.dumps(results_json(run_idol_offline(outputs, (H, W)), "bear"))
    )
    assert written and all(r["video_id"] == "bear" and len(r["boxes"]) == n for r in written)


def test_a_tracker_needs_one_class_name_per_detector_output():
    from uvosam.testing import tiny_idol_tracker

    detector = tiny_idol_tracker(class_names=("a", "b")).detector
    with pytest.raises(ValueError, match=r"detector has 2 class output\(s\) but 1 class names"):
        IDOLTracker(detector, ("object",))
    assert IDOLTracker(detector, ("a", "b")).class_names == ("a", "b")
