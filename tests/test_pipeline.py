"""UVOSAM pipeline: ordering, look-ahead buffering, one encoder call per frame, no prompts for absent objects."""

import dataclasses
import re
from dataclasses import dataclass, field
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from doubles import ReplayTracker

from uvosam.config import PipelineConfig, SegmenterConfig, VideoLimits
from uvosam.errors import MissingWeightsError, WeightsError
from uvosam.pipeline import UVOSAM, tracks_to_segment
from uvosam.segmenter import BoxPromptSegmenter
from uvosam.testing import moving_shapes
from uvosam.types import FrameTracks


@pytest.fixture()
def video():
    return moving_shapes(10, height=48, width=64, num_objects=3, seed=1, absent={1: range(3, 6)})


def _counting(segmenter):
    calls = []
    encoder = segmenter.model.image_encoder
    original = encoder.forward

    def counted(x):
        calls.append(x.shape[0])
        return original(x)

    encoder.forward = counted
    return calls


def test_one_result_per_frame_in_order_with_ids_boxes_and_disjoint_masks(tiny_sam_model, video):
    pipe = UVOSAM(ReplayTracker(video.boxes_xyxy, lookahead=3), BoxPromptSegmenter(tiny_sam_model))
    results = list(pipe(iter(video.frames)))
    assert [r.frame_index for r in results] == list(range(10))
    for r, frame, boxes in zip(results, video.frames, video.boxes_xyxy):
        present = np.flatnonzero(~np.isnan(boxes).any(axis=1))
        np.testing.assert_array_equal(r.image, frame)
        assert r.track_ids.tolist() == (present + 1).tolist()
        np.testing.assert_array_equal(r.boxes_xyxy, boxes[present])
        assert r.masks.shape == (len(present), 48, 64) and r.masks.dtype == bool
        assert r.mask_scores.shape == (len(present),)
        assert (r.masks.sum(axis=0) <= 1).all()
    assert 2 not in results[4].track_ids  # object 1 (id 2) absent in frames 3-5


def test_image_encoder_runs_once_per_frame_and_never_for_empty_frames(tiny_sam_model, video):
    boxes = video.boxes_xyxy.copy()
    boxes[7] = np.nan  # nobody in frame 7
    segmenter = BoxPromptSegmenter(tiny_sam_model)
    calls = _counting(segmenter)
    try:
        results = list(UVOSAM(ReplayTracker(boxes, lookahead=1), segmenter)(video.frames))
    finally:
        del segmenter.model.image_encoder.forward
    assert len(calls) == 9 and all(n == 1 for n in calls)
    assert len(results[7]) == 0 and results[7].masks.shape == (0, 48, 64)


def test_encoder_batches_decided_frames(tiny_sam_model, video):
    segmenter = BoxPromptSegmenter(tiny_sam_model, SegmenterConfig(encoder_batch=4))
    calls = _counting(segmenter)
    try:
        batched = list(
            UVOSAM(ReplayTracker(video.boxes_xyxy, lookahead=6), segmenter)(video.frames)
        )
    finally:
        del segmenter.model.image_encoder.forward
    plain = list(
        UVOSAM(ReplayTracker(video.boxes_xyxy, lookahead=0), BoxPromptSegmenter(tiny_sam_model))(
            video.frames
        )
    )
    # lookahead 6: pushes 7-10 decide one frame each, finish() the last 6 at once (batches of 4, 2);
    # results identical either way
    assert calls == [1, 1, 1, 1, 4, 2]
    assert [r.frame_index for r in batched] == list(range(10))
    for a, b in zip(batched, plain):
        np.testing.assert_array_equal(a.masks, b.masks)


def test_pending_frames_are_bounded_by_the_lookahead(tiny_sam_model, video):
    tracker = ReplayTracker(video.boxes_xyxy, lookahead=3)
    pipe = UVOSAM(tracker, BoxPromptSegmenter(tiny_sam_model))
    read = []

    def frames():
        for f in video.frames:
            read.append(1)
            yield f

    for r in pipe(frames()):
        assert len(read) - r.frame_index - 1 <= 3
    assert len(read) == 10


def test_two_interleaved_videos_on_one_pipeline_equal_sequential_runs(tiny_sam_model):
    a = moving_shapes(6, seed=3)
    b = moving_shapes(6, height=40, width=56, seed=4)
    segmenter = BoxPromptSegmenter(tiny_sam_model)
    pipe_a = UVOSAM(ReplayTracker(a.boxes_xyxy), segmenter)
    pipe_b = UVOSAM(ReplayTracker(b.boxes_xyxy), segmenter)
    seq_a, seq_b = list(pipe_a(a.frames)), list(pipe_b(b.frames))
    inter_a, inter_b = [], []
    for ra, rb in zip(pipe_a(a.frames), pipe_b(b.frames), strict=True):
        inter_a.append(ra)
        inter_b.append(rb)
    assert len(seq_a) == len(seq_b) == 6
    for x, y in zip(seq_a + seq_b, inter_a + inter_b, strict=True):
        np.testing.assert_array_equal(x.masks, y.masks)
        np.testing.assert_array_equal(x.track_ids, y.track_ids)


def test_tracks_to_segment_keeps_best_scores_then_sorts_by_id():
    tracks = FrameTracks(
        frame_index=0,
        track_ids=np.array([5, 2, 9, 1], np.int64),
        boxes_xyxy=np.arange(16, dtype=np.float32).reshape(4, 4),
        scores=np.array([0.9, 0.2, 0.5, 0.5], np.float32),
        labels=np.zeros(4, np.int64),
        class_probs=np.array([[0.9, 0.4], [0.2, 0.1], [0.5, 0.3], [0.5, 0.2]], np.float32),
    )
    kept = tracks_to_segment(tracks, PipelineConfig(max_objects=2))
    assert kept.track_ids.tolist() == [1, 5]  # 0.9 first, then the 0.5 tie goes to the lower id
    kept = tracks_to_segment(tracks, PipelineConfig(min_score=0.3))
    assert kept.track_ids.tolist() == [1, 5, 9]
    np.testing.assert_array_equal(kept.boxes_xyxy[0], tracks.boxes_xyxy[3])
    np.testing.assert_array_equal(kept.class_probs, tracks.class_probs[[3, 0, 2]])


@pytest.mark.parametrize(
    "build, message",
    [
        (
            lambda: PipelineConfig(max_objects=2.5),
            r"PipelineConfig.max_objects must be a positive integer or None; got 2.5",
        ),
        (lambda: PipelineConfig(max_objects=3.0), r"got 3.0 \(use 3\)"),
        (lambda: PipelineConfig(max_objects=True), r"max_objects must be a positive integer"),
        (lambda: PipelineConfig(max_objects=0), r"max_objects must be a positive integer"),
        (
            lambda: SegmenterConfig(encoder_batch=2.5),
            r"encoder_batch must be a positive integer; got 2.5",
        ),
        (
            lambda: VideoLimits(max_frames=10.5),
            r"VideoLimits.max_frames must be a positive integer",
        ),
        (lambda: VideoLimits(max_duration_s=0), r"max_duration_s must be a positive finite number"),
    ],
)
def test_counts_in_configs_must_be_positive_integers(build, message):
    # a float count used to pass and fail much later as a bare TypeError (a float slice or range step)
    with pytest.raises(ValueError, match=message):
        build()
    assert PipelineConfig(max_objects=np.int64(3)).max_objects == 3  # numpy integers are fine
    assert VideoLimits(max_duration_s=1.5).max_duration_s == 1.5


def test_bad_frames_get_clear_errors(tiny_sam_model, video):
    pipe = UVOSAM(ReplayTracker(video.boxes_xyxy), BoxPromptSegmenter(tiny_sam_model))
    with pytest.raises(TypeError, match=r"frame 0: expected an \(H, W, 3\) uint8"):
        list(pipe([video.frames[0].astype(np.float32)]))
    with pytest.raises(ValueError, match="frame 1: size"):
        list(pipe([video.frames[0], video.frames[1][:40]]))
    assert list(pipe([])) == []


def test_real_tiny_idol_tracker_and_tiny_sam_end_to_end(tiny_sam_model):
    from uvosam.testing import tiny_idol_tracker

    video = moving_shapes(14, height=48, width=64, seed=2)
    tracker = tiny_idol_tracker()
    pipe = UVOSAM(tracker, BoxPromptSegmenter(tiny_sam_model))
    results = list(pipe(video.frames))
    assert [r.frame_index for r in results] == list(range(14))
    ids = set()
    for r in results:
        assert r.masks.shape[1:] == (48, 64) and len(r.masks) == len(r.track_ids)
        assert (r.boxes_xyxy[:, :2] >= 0).all() and (r.boxes_xyxy[:, 2] <= 64).all()
        assert (r.boxes_xyxy[:, 3] <= 48).all() and (r.scores >= 0).all() and (r.scores <= 1).all()
        ids |= set(r.track_ids.tolist())
    assert ids and min(ids) >= 1
    streamed = [(r.track_ids.tolist(), r.boxes_xyxy.tolist()) for r in results]
    offline = [(t.track_ids.tolist(), t.boxes_xyxy.tolist()) for t in pipe.track(video.frames)]
    assert streamed == offline


def test_warm_up_runs_each_model_once_and_keeps_nothing(tiny_sam_model):
    from uvosam.testing import tiny_idol_tracker

    video = moving_shapes(8, height=48, width=64, seed=2)
    tracker = tiny_idol_tracker()
    pipe = UVOSAM(tracker, BoxPromptSegmenter(tiny_sam_model))
    before = [(r.track_ids.tolist(), r.boxes_xyxy.tolist()) for r in pipe(video.frames)]
    detected = []
    detect = tracker.detector.detect_frames
    tracker.detector.detect_frames = lambda frames: detected.append(len(frames)) or detect(frames)
    encoded = _counting(pipe.segmenter)
    seconds = pipe.warm_up(height=40, width=56)
    assert seconds > 0 and detected == [1] and encoded == [1]
    after = [(r.track_ids.tolist(), r.boxes_xyxy.tolist()) for r in pipe(video.frames)]
    assert after == before


def test_warm_up_on_cuda_waits_for_its_own_stream_only(tiny_sam_model, monkeypatch):
    """A device-wide torch.cuda.synchronize would invalidate a CUDA-graph capture underway on another thread (another
    app session loading its models): warm_up waits for its thread's current stream."""
    from uvosam.testing import tiny_idol_tracker

    pipe = UVOSAM(tiny_idol_tracker(), BoxPromptSegmenter(tiny_sam_model))
    segmented = []
    monkeypatch.setattr(pipe.segmenter, "segment", lambda *args: segmented.append(args))
    monkeypatch.setattr(pipe.segmenter, "device", torch.device("cuda", 1))
    waited = []

    class Stream:
        def synchronize(self):
            waited.append("stream")

    def device_wide(*args):
        raise AssertionError("torch.cuda.synchronize: a device-wide wait")

    monkeypatch.setattr(torch.cuda, "synchronize", device_wide)
    monkeypatch.setattr(
        torch.cuda, "current_stream", lambda device=None: waited.append(device) or Stream()
    )
    pipe.warm_up(height=40, width=56)
    assert len(segmented) == 1 and waited == [torch.device("cuda", 1), "stream"]


@pytest.fixture()
def offline_no_weights(monkeypatch, tmp_path) -> list[str]:
    """Offline as ``HF_HUB_OFFLINE=1`` set before start makes it (huggingface_hub's own flag too), an empty checkpoints
    folder and an empty Hugging Face cache (never the developer's, where a cached SAM would be hashed: 0.4-2.5 GB).
    Returns the host names looked up meanwhile (each lookup fails as without DNS; some callers swallow that)."""
    import socket

    from huggingface_hub import constants as hf_constants

    asked = []

    def no_network(host, *args, **kwargs):
        asked.append(host)
        raise socket.gaierror(f"the tests ask no host ({host})")

    (tmp_path / "checkpoints").mkdir()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("UVOSAM_CHECKPOINTS", str(tmp_path / "checkpoints"))
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    return asked


def test_from_pretrained_reports_a_wrong_tracker_before_loading_sam(
    monkeypatch, tmp_path, offline_no_weights
):
    from uvosam import hub, segmenter

    looked = []
    resolve = hub.resolve
    monkeypatch.setattr(
        hub, "resolve", lambda name, **k: looked.append(str(name)) or resolve(name, **k)
    )
    monkeypatch.setattr(
        segmenter,
        "load_segmenter",
        lambda *a, **k: pytest.fail("SAM was loaded before the tracker's error"),
    )
    # a missing tracker file: both files are looked for (the tracker first), neither model loads, and the
    # message reports the tracker first, then SAM (offline: only the empty checkpoints folder and cache)
    with pytest.raises(FileNotFoundError) as missing:
        UVOSAM.from_pretrained(tmp_path / "no_such_tracker.pth", "vit_h", device="cpu")
    assert looked == [str(tmp_path / "no_such_tracker.pth"), "sam_vit_h"]
    message = str(missing.value)
    assert message.index("no_such_tracker.pth") < message.index("sam_vit_h_4b8939.pth")
    assert "HF_HUB_OFFLINE is set" in message
    # a tracker file that is found but is no checkpoint: its load fails before SAM's file (found) is loaded
    bad_tracker, sam_file = tmp_path / "tracker.pth", tmp_path / "my_sam.pth"
    bad_tracker.write_bytes(b"not a checkpoint")
    sam_file.write_bytes(b"never read")
    with pytest.raises(WeightsError, match="tracker.pth"):
        UVOSAM.from_pretrained(bad_tracker, sam_file, device="cpu")
    assert offline_no_weights == []


def test_from_pretrained_reads_the_tracker_yaml_before_looking_for_any_weight(
    monkeypatch, tmp_path
):
    """A bad tracker_yaml was found only after locate_weights, which may download SAM's 0.4-2.5 GB first."""
    from uvosam import pipeline

    monkeypatch.setattr(
        pipeline, "locate_weights", lambda *a, **k: pytest.fail("weights looked for")
    )
    broken = tmp_path / "broken.yaml"
    broken.write_text("MODEL: [unclosed\n")
    with pytest.raises(ValueError, match="broken.yaml is not valid YAML"):
        UVOSAM.from_pretrained("idol-ytvis19-r50", "vit_b", device="cpu", tracker_yaml=broken)
    with pytest.raises(FileNotFoundError, match="IDOL config not found"):
        UVOSAM.from_pretrained(
            "idol-ytvis19-r50", "vit_b", device="cpu", tracker_yaml=tmp_path / "x.yaml"
        )


def test_from_pretrained_checks_the_device_before_reading_any_weights(monkeypatch):
    """device="cuda" without CUDA read the tracker checkpoint, then raised torch's "Found no NVIDIA driver"."""
    import torch

    from uvosam import hub

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(hub, "resolve", lambda *a, **k: pytest.fail("weights were looked up"))
    with pytest.raises(ValueError, match="device='cuda': torch finds no CUDA GPU") as err:
        UVOSAM.from_pretrained("idol-ytvis19-r50", "vit_b", device="cuda")
    assert "expected one of auto, cpu" in str(err.value)


def test_from_pretrained_finds_both_weight_files_before_loading_either(tmp_path, monkeypatch):
    """A missing SAM file was found only after the tracker had been read, hashed and built (davis-run, segment)."""
    from model_helpers import use_tiny_tracker

    from uvosam.tracker import loading

    use_tiny_tracker(tmp_path, monkeypatch)  # the tracker's file is there, SAM ViT-B's is not
    monkeypatch.setattr(
        loading, "load_tracker", lambda *a, **k: pytest.fail("the tracker was loaded")
    )
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(FileNotFoundError, match="Weight file 'sam_vit_b_01ec64.pth'"):
        UVOSAM.from_pretrained("idol-ytvis19-r50", "vit_b", device="cpu")
    with pytest.raises(MissingWeightsError) as err:  # both missing: both reports at once
        UVOSAM.from_pretrained("idol-coco-r50", "vit_b", device="cpu")
    assert "'cocopretrain_R50.pth'" in str(err.value) and "'sam_vit_b_01ec64.pth'" in str(err.value)


def test_from_pretrained_refuses_a_sam_file_of_no_size_before_loading_the_tracker(
    tmp_path, monkeypatch
):
    """A SAM file whose image encoder is none of the released widths: said before the tracker is read and built (the
    command line's check, ``check_segmenter_file``, made by the library too)."""
    import torch
    from model_helpers import use_tiny_tracker

    from uvosam.testing import tiny_sam
    from uvosam.tracker import loading

    use_tiny_tracker(tmp_path, monkeypatch)
    monkeypatch.setattr(
        loading, "load_tracker", lambda *a, **k: pytest.fail("the tracker was loaded")
    )
    tiny = tmp_path / "tiny_sam.pth"
    torch.save(tiny_sam().state_dict(), tiny)
    with pytest.raises(WeightsError, match="holds a SAM image encoder 32 wide"):
        UVOSAM.from_pretrained("idol-ytvis19-r50", tiny, device="cpu")


class _BoxFilling:
    """A toy ``BoxSegmenter``: each box's pixels are its mask; ``wrong`` bends the output the way a plug-in might."""

    config = SegmenterConfig(encoder_batch=2)
    device = torch.device("cpu")

    def __init__(self, wrong: str | None = None) -> None:
        self.wrong = wrong

    def segment(self, image, boxes_xyxy):
        return self.segment_batch([image], [boxes_xyxy], scores=None, track_ids=None)[0]

    def segment_batch(self, images, boxes_list, *, scores, track_ids):
        outputs = [self._fill(image, boxes) for image, boxes in zip(images, boxes_list)]
        return outputs[:-1] if self.wrong == "one output short" else outputs

    def _fill(self, image, boxes):
        h, w = image.shape[:2]
        masks = np.zeros((len(boxes), h, w), bool)
        for mask, (x1, y1, x2, y2) in zip(masks, boxes.round().astype(int)):
            mask[y1:y2, x1:x2] = True
        if self.wrong == "transposed":
            masks = masks.transpose(0, 2, 1)
        elif self.wrong == "uint8":
            masks = masks.astype(np.uint8)
        elif self.wrong == "one mask":
            masks = masks.any(axis=0, keepdims=True)
        return SimpleNamespace(masks=masks, mask_scores=np.ones(len(boxes), np.float32))


def test_a_plug_in_segmenter_runs_and_its_wrong_masks_are_refused_where_they_arrive(video):
    results = list(UVOSAM(ReplayTracker(video.boxes_xyxy), _BoxFilling())(video.frames))
    assert [r.frame_index for r in results] == list(range(10))
    for r in results:
        for mask, (x1, y1, x2, y2) in zip(r.masks, r.boxes_xyxy.round().astype(int)):
            assert mask.sum() == (x2 - x1) * (y2 - y1) and mask[y1:y2, x1:x2].all()
    for wrong, got in [
        ("transposed", r"got \.masks \(3, 64, 48\) bool"),
        ("uint8", r"got \.masks \(3, 48, 64\) uint8"),
        ("one mask", r"got \.masks \(1, 48, 64\) bool"),
        ("one output short", r"returned 0 output\(s\) for 1 frame\(s\)"),
    ]:
        pipe = UVOSAM(ReplayTracker(video.boxes_xyxy), _BoxFilling(wrong))
        with pytest.raises(ValueError, match=r"_BoxFilling\.segment_batch") as err:
            list(pipe(video.frames))
        assert re.search(got, str(err.value)), str(err.value)
        if wrong != "one output short":
            assert r"expected .masks an (3, 48, 64) bool numpy array" in str(err.value)


@dataclass
class _Wrong(ReplayTracker):
    """Replays the boxes, with one thing wrong in frame 2's tracks (``wrong``: the FrameTracks fields to replace)."""

    wrong: dict = field(default_factory=dict)

    def frame_tracks(self, t: int) -> FrameTracks:
        tracks = super().frame_tracks(t)
        if t != 2:
            return tracks
        fields = {k: v(tracks) if callable(v) else v for k, v in self.wrong.items()}
        return dataclasses.replace(tracks, **fields)


def _nan_row0(a: np.ndarray, value: float) -> np.ndarray:
    a = a.copy()
    a[0] = value
    return a


@pytest.mark.parametrize(
    "wrong, said",
    [
        ({"boxes_xyxy": lambda t: _nan_row0(t.boxes_xyxy, np.nan)}, "a box that is not finite"),
        ({"boxes_xyxy": lambda t: _nan_row0(t.boxes_xyxy, np.inf)}, "a box that is not finite"),
        ({"scores": lambda t: _nan_row0(t.scores, np.nan)}, "a score that is not finite"),
        ({"scores": lambda t: _nan_row0(t.scores, -np.inf)}, "a score that is not finite"),
        ({"scores": lambda t: _nan_row0(t.scores, 1.5)}, r"a score outside \[0, 1\]"),
        ({"track_ids": lambda t: _nan_row0(t.track_ids, -3)}, "a negative track id"),
        (
            {"class_probs": lambda t: np.full((len(t), 2), np.inf, np.float32)},
            "class probabilities that are not finite",
        ),
    ],
)
def test_tracks_a_tracker_gives_against_the_rules_are_refused_naming_it_and_the_frame(
    video, wrong, said
):
    """A NaN score silently dropped its track (``score >= min_score``), an infinite box or score wrote
    ``Infinity`` into results.json, a negative id could not be named by a re-render's merge or split: each is now
    refused when the tracker gives it, for the whole run and for the tracker alone."""
    for call in ("__call__", "track"):
        pipe = UVOSAM(_Wrong(video.boxes_xyxy, wrong=wrong), _BoxFilling())
        with pytest.raises(ValueError, match=rf"^_Wrong: frame 2's tracks have {said} \(track "):
            list(getattr(pipe, call)(video.frames))
    assert len(list(UVOSAM(_Wrong(video.boxes_xyxy), _BoxFilling())(video.frames))) == 10


def _thread_names() -> set[str]:
    import threading

    return {t.name for t in threading.enumerate()}


def test_prepare_ahead_resizes_in_its_thread_and_changes_no_mask(
    tiny_sam_model, video, monkeypatch
):
    """On CUDA the models' thread resized each frame for SAM while the GPU waited: with ``prepare_ahead`` a
    background thread does it as frames are read; the masks are the same, each frame is prepared once."""
    import threading

    from uvosam.prefetch import PREPARE_THREAD

    plain = BoxPromptSegmenter(tiny_sam_model)
    ahead = BoxPromptSegmenter(tiny_sam_model, SegmenterConfig(prepare_ahead=True))
    assert (plain.prepare_ahead, ahead.prepare_ahead) == (False, True)  # CPU: off unless asked
    where: list[str] = []
    original = ahead.prepare

    def spy(image):
        where.append(threading.current_thread().name)
        return original(image)

    monkeypatch.setattr(ahead, "prepare", spy)
    expected = list(UVOSAM(ReplayTracker(video.boxes_xyxy, lookahead=3), plain)(video.frames))
    results = list(UVOSAM(ReplayTracker(video.boxes_xyxy, lookahead=3), ahead)(video.frames))
    assert where == [PREPARE_THREAD] * len(video.frames)
    for got, want in zip(results, expected, strict=True):
        np.testing.assert_array_equal(got.masks, want.masks)
        np.testing.assert_array_equal(got.mask_scores, want.mask_scores)


def test_prepare_ahead_keeps_the_frame_checks_and_stops_with_the_run(tiny_sam_model, video):
    """A bad frame is still refused by check_frame, in order; a run closed midway leaves no preparing thread."""
    from uvosam.prefetch import PREPARE_THREAD

    ahead = BoxPromptSegmenter(tiny_sam_model, SegmenterConfig(prepare_ahead=True))
    frames = list(video.frames[:3]) + [video.frames[3].astype(np.float32)]
    with pytest.raises(TypeError, match="frame 3"):
        list(UVOSAM(ReplayTracker(video.boxes_xyxy, lookahead=1), ahead)(frames))
    run = UVOSAM(ReplayTracker(video.boxes_xyxy, lookahead=1), ahead)(video.frames)
    next(run)
    assert PREPARE_THREAD in _thread_names()
    run.close()
    assert PREPARE_THREAD not in _thread_names()


def test_a_prepared_frame_of_the_wrong_size_is_refused(tiny_sam_model, video):
    seg = BoxPromptSegmenter(tiny_sam_model)
    frame, boxes = video.frames[0], video.boxes_xyxy[0][:1]
    good = seg.segment_batch([frame], [boxes], prepared=[seg.prepare(frame)])
    np.testing.assert_array_equal(good[0].masks, seg.segment(frame, boxes).masks)
    with pytest.raises(ValueError, match="prepared frame"):
        seg.segment_batch([frame], [boxes], prepared=[seg.prepare(video.frames[1][:20])])


def test_a_run_closed_during_a_stalled_read_can_close_its_frame_source(
    tiny_sam_model, video, monkeypatch
):
    """The prepare thread used to iterate the run's frame generator itself: a run closed while that thread waited
    inside it (a read that stalled past prefetch's close wait) left the generator busy, and run_job's closing of its
    source failed with "generator already executing". Only the models' thread reads frames now."""
    import time

    import uvosam.prefetch as prefetch_module

    monkeypatch.setattr(prefetch_module, "CLOSE_WAIT_S", 0.2)

    def stalling():
        for i, frame in enumerate(video.frames):
            if i == 4:
                time.sleep(1.0)
            yield frame

    ahead = BoxPromptSegmenter(tiny_sam_model, SegmenterConfig(prepare_ahead=True))
    frames = prefetch_module.prefetch(stalling(), depth=1)
    run = UVOSAM(ReplayTracker(video.boxes_xyxy, lookahead=1), ahead)(frames)
    next(run)
    run.close()
    frames.close()  # raised "generator already executing"
    assert frames.gi_frame is None  # the source is closed, by the thread that reads it


def test_a_frame_without_boxes_needs_no_prepared_input(tiny_sam_model, video, monkeypatch):
    """As without preparing ahead, a frame with no box is not encoded: a failure to prepare it does not fail the run
    (its result is never asked for); one of a frame with boxes does, with its own error."""
    boxes = video.boxes_xyxy.copy()
    boxes[7] = np.nan
    ahead = BoxPromptSegmenter(tiny_sam_model, SegmenterConfig(prepare_ahead=True))
    original, calls = ahead.prepare, []

    def failing_on(index):
        def prepare(image):
            calls.append(image)
            if len(calls) - 1 == index:
                raise RuntimeError(f"prepare failed on frame {index}")
            return original(image)

        return prepare

    monkeypatch.setattr(ahead, "prepare", failing_on(7))
    results = list(UVOSAM(ReplayTracker(boxes, lookahead=2), ahead)(video.frames))
    assert len(results) == 10 and len(results[7]) == 0
    calls.clear()
    monkeypatch.setattr(ahead, "prepare", failing_on(6))
    with pytest.raises(RuntimeError, match="prepare failed on frame 6"):
        list(UVOSAM(ReplayTracker(boxes, lookahead=2), ahead)(video.frames))


def test_a_plug_in_that_asks_to_prepare_ahead_is_checked_when_the_pipeline_is_made(
    tiny_sam_model, video
):
    """It failed at its first frame with boxes, after the tracker had worked, with Python's bare TypeError."""
    real = BoxPromptSegmenter(tiny_sam_model)

    class NoPrepare:
        config, device, prepare_ahead = real.config, real.device, True

        def segment(self, image, boxes_xyxy):
            return real.segment(image, boxes_xyxy)

        def segment_batch(self, images, boxes_list, *, scores=None, track_ids=None, prepared=None):
            return real.segment_batch(images, boxes_list, scores=scores, track_ids=track_ids)

    class NoPreparedArgument(NoPrepare):
        def prepare(self, image):
            return real.prepare(image)

        def segment_batch(self, images, boxes_list, *, scores=None, track_ids=None):
            return real.segment_batch(images, boxes_list, scores=scores, track_ids=track_ids)

    tracker = ReplayTracker(video.boxes_xyxy, lookahead=1)
    with pytest.raises(TypeError, match="NoPrepare has a true prepare_ahead but no prepare"):
        UVOSAM(tracker, NoPrepare())
    with pytest.raises(TypeError, match="NoPreparedArgument.segment_batch takes no prepared="):
        UVOSAM(tracker, NoPreparedArgument())


def test_each_frame_is_handed_to_prepare_before_the_tracker_gets_it(
    tiny_sam_model, video, monkeypatch
):
    """The resize overlaps the tracker's work on the frame itself, not only on the frames after it."""
    from uvosam.prepare_ahead import FramePreparer

    events: list[str] = []
    submit = FramePreparer.submit

    def spied_submit(self, frame):
        events.append("prepare")
        return submit(self, frame)

    monkeypatch.setattr(FramePreparer, "submit", spied_submit)
    tracker = ReplayTracker(video.boxes_xyxy, lookahead=0)
    new_video = tracker.new_video

    def spied_new_video(**size):
        session = new_video(**size)
        push = session.push

        def spied_push(frame):
            events.append("push")
            return push(frame)

        session.push = spied_push
        return session

    tracker.new_video = spied_new_video
    ahead = BoxPromptSegmenter(tiny_sam_model, SegmenterConfig(prepare_ahead=True, encoder_batch=3))
    plain = BoxPromptSegmenter(tiny_sam_model, SegmenterConfig(encoder_batch=3))
    results = list(UVOSAM(tracker, ahead)(video.frames))
    assert events == ["prepare", "push"] * len(video.frames)
    expected = list(UVOSAM(ReplayTracker(video.boxes_xyxy, lookahead=0), plain)(video.frames))
    for got, want in zip(results, expected, strict=True):
        np.testing.assert_array_equal(got.masks, want.masks)


def test_a_run_collected_on_its_own_prepare_thread_shuts_down_without_joining_itself(
    tiny_sam_model,
):
    """Cyclic garbage collection can close an abandoned run on any thread, its prepare thread included: that thread
    cannot join itself ("cannot join current thread")."""
    from uvosam.prepare_ahead import FramePreparer

    ahead = BoxPromptSegmenter(tiny_sam_model, SegmenterConfig(prepare_ahead=True))
    with FramePreparer(ahead) as preparer:
        preparer.submit(np.zeros((8, 8, 3), np.uint8)).result()
        inside = preparer._pool.submit(preparer.__exit__, None, None, None)
        assert inside.result() is None
