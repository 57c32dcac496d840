"""Arguments of the Python API (docs/python.md) refused where they are given, with what was expected and what to do,
instead of being taken and failing deep inside a run (a bare TypeError/AttributeError) or silently meaning something
else (``fast="no"`` as true). Pure construction checks: no model runs here."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from doubles import MovingBoxTracker
from PIL import Image

from uvosam.config import PipelineConfig, SegmenterConfig, VideoLimits
from uvosam.export_types import ExportOptions
from uvosam.job import rerender
from uvosam.job_types import JobOptions
from uvosam.pipeline import UVOSAM


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda: SegmenterConfig(fast="no"), r"SegmenterConfig.fast must be True, False or None .*got 'no' \(a str\)"),
        (lambda: SegmenterConfig(fast=1), r"SegmenterConfig.fast must be True, False or None"),
        (lambda: SegmenterConfig(compile="yes"), r"SegmenterConfig.compile must be True or False; got 'yes'"),
        (lambda: SegmenterConfig(mask_threshold="0"), r"mask_threshold must be a finite number .*got '0' \(a str\)"),
        (lambda: SegmenterConfig(mask_threshold=True), r"mask_threshold must be a finite number"),
        (lambda: SegmenterConfig(mask_threshold=float("nan")), r"mask_threshold must be a finite number"),
        (lambda: PipelineConfig(min_score="0.5"), r"min_score must be a number in \[0, 1\].*got '0.5' \(a str\)"),
        (lambda: PipelineConfig(min_score=None), r"PipelineConfig.min_score must be a number in \[0, 1\].*got None"),
        (lambda: VideoLimits(max_duration_s="60"),
         r"max_duration_s must be a positive finite number or None; got '60'"),
        (lambda: VideoLimits(max_duration_s=float("nan")), r"max_duration_s must be a positive finite number"),
        # infinity is no limit only in name: None is (the app's UVOSAM_MAX_SECONDS=inf passed unnoticed)
        (lambda: VideoLimits(max_duration_s=float("inf")), r"max_duration_s must be a positive finite number"),
        (lambda: JobOptions(chunk_seconds=float("inf")), r"chunk_seconds must be a positive finite number"),
    ],
)  # fmt: skip
def test_configs_refuse_flags_and_numbers_of_the_wrong_kind(build, message):
    with pytest.raises(ValueError, match=message):
        build()


def test_configs_take_numpy_values_and_keep_plain_python_ones():
    """A numpy scalar (a computed threshold) is fine; it is stored as a Python one, which run.json can write."""
    segmenter = SegmenterConfig(
        fast=np.bool_(False), mask_threshold=np.float32(0.5), encoder_batch=np.int64(2)
    )
    assert (segmenter.fast, segmenter.mask_threshold, segmenter.encoder_batch) == (False, 0.5, 2)
    assert type(segmenter.fast) is bool and type(segmenter.mask_threshold) is float
    pipeline = PipelineConfig(max_objects=np.int64(3), min_score=np.float64(0.25))
    json.dumps({"max_objects": pipeline.max_objects, "min_score": pipeline.min_score})
    assert type(pipeline.max_objects) is int and SegmenterConfig(fast=None).fast is None


@pytest.mark.parametrize(
    "fields, error, message",
    [
        ({"export": None}, TypeError,
         r"JobOptions.export takes an ExportOptions \(ExportOptions\(davis=True\)\); got None"),
        ({"export": {"davis": False}}, TypeError, r"got dict; from a dict: ExportOptions\(\*\*\{\.\.\.\}\)"),
        ({"limits": None}, TypeError, r"JobOptions.limits takes a VideoLimits"),
        ({"output_max_side": "480"}, ValueError, r"output_max_side must be at least 2 \(an integer.*got '480'"),
        ({"output_max_side": 480.5}, ValueError, r"output_max_side must be at least 2"),
        ({"cache": "yes"}, ValueError, r"JobOptions.cache must be True or False; got 'yes' \(a str\)"),
        ({"audio": 0}, ValueError, r"JobOptions.audio must be True or False; got 0"),
        ({"show_boxes": None}, ValueError, r"JobOptions.show_boxes must be True or False; got None"),
        ({"stride": -1}, ValueError, r"JobOptions.stride must be a positive integer; got -1"),
        ({"stride": None}, ValueError, r"JobOptions.stride must be a positive integer; got None"),
        ({"stride": 2.0}, ValueError, r"JobOptions.stride must be a positive integer; got 2.0 \(use 2\)"),
        ({"max_frames": 0}, ValueError, r"JobOptions.max_frames must be a positive integer or None; got 0"),
        ({"chunk_seconds": 0}, ValueError, r"JobOptions.chunk_seconds must be a positive finite number or None; got 0"),
        ({"video_name": 7}, TypeError, r"JobOptions.video_name must be a str or None"),
    ],
)  # fmt: skip
def test_job_options_are_checked_when_built(fields, error, message):
    with pytest.raises(error, match=message):
        JobOptions(**fields)


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"cutouts": "no"}, r"ExportOptions.cutouts must be True or False; got 'no' \(a str\)"),
        ({"alpha_webm": 1}, r"ExportOptions.alpha_webm must be True or False; got 1"),
        ({"max_objects": "5"}, r"ExportOptions.max_objects must be an integer in 1..255 .*; got '5'"),
        ({"max_objects": 0}, r"ExportOptions.max_objects must be an integer in 1..255"),
        ({"png_compress_level": 1.5}, r"ExportOptions.png_compress_level must be an integer in 0..9"),
        ({"ytvis_class_thres": "0.05"}, r"ExportOptions.ytvis_class_thres must be None .* got '0.05'"),
    ],
)  # fmt: skip
def test_export_options_are_checked_when_built(fields, message):
    """``ExportOptions(cutouts="no")`` was taken as true; ``max_objects="5"`` gave a bare TypeError ('<=' not
    supported) from inside the check."""
    with pytest.raises(ValueError, match=message):
        ExportOptions(**fields)
    kept = ExportOptions(
        max_objects=np.int64(5), png_compress_level=np.int32(3), write_threads=np.int64(2)
    )
    assert (kept.max_objects, kept.png_compress_level, kept.write_threads) == (5, 3, 2)
    assert type(kept.max_objects) is int


def test_job_options_take_numpy_integers():
    """A computed stride (np.int64) is common in notebooks: taken, and stored as an int (run.json writes it)."""
    options = JobOptions(stride=np.int64(2), max_frames=np.int32(5), output_max_side=np.int64(320))
    assert (options.stride, options.max_frames, options.output_max_side) == (2, 5, 320)
    assert all(
        type(v) is int for v in (options.stride, options.max_frames, options.output_max_side)
    )
    assert JobOptions(chunk_seconds=np.float32(0.5), cache=np.bool_(True)).cache is True


@pytest.fixture()
def pipe():
    return UVOSAM(MovingBoxTracker(num_objects=1), object())  # nothing is segmented here


@pytest.mark.parametrize(
    "frames, message",
    [
        ("clip.mp4", r"got the path 'clip.mp4': read a video .* uvosam.video.iter_frames\(path\)"),
        (Path("clip.mp4"), r"got the path PosixPath\('clip.mp4'\): read a video .*iter_frames"),
        (np.zeros((48, 64, 3), np.uint8), r"got one array of shape \(48, 64, 3\): pass a list of frames \(\[frame\]"),
        (Image.new("RGB", (8, 8)), r"got Image; convert a PIL image with np.asarray\(image.convert\('RGB'\)\)"),
        (3, r"expected an iterable of \(H, W, 3\) uint8 RGB arrays, one per frame; got int \(a list, or read"),
    ],
)  # fmt: skip
def test_what_is_no_frames_is_refused_when_the_pipeline_is_called(pipe, frames, message):
    for call in (pipe, pipe.track):
        with pytest.raises(TypeError, match=message):
            call(frames)  # not only at the first next()


@pytest.mark.parametrize(
    "frame, error, message",
    [
        (Image.new("RGB", (8, 8)), TypeError, r"frame 0: .*got Image .*np.asarray\(image.convert\('RGB'\)\)"),
        ("a.png", TypeError, r"frame 0: .*got str .*uvosam.video.iter_frames\(path\)"),
        (np.zeros((8, 8, 3), np.float32), TypeError, r"frame 0: .*\(frame \* 255\).round\(\).astype\(np.uint8\)"),
        (np.zeros((8, 8), np.uint8), ValueError, r"frame 0: .*np.repeat\(frame\[:, :, None\], 3, axis=2\)"),
        (np.zeros((8, 8, 4), np.uint8), ValueError, r"frame 0: .*drop the alpha channel: frame\[:, :, :3\]"),
        (np.zeros((0, 8, 3), np.uint8), ValueError, r"frame 0: an empty frame, of shape \(0, 8, 3\)"),
    ],
)  # fmt: skip
def test_a_frame_of_the_wrong_kind_says_how_to_convert_it(pipe, frame, error, message):
    """A wrong type or dtype is a TypeError, a wrong shape a ValueError; both say what to do."""
    with pytest.raises(error, match=message):
        list(pipe([frame]))


def test_a_frame_of_another_size_than_the_first_is_a_value_error(pipe):
    frames = [np.zeros((8, 8, 3), np.uint8), np.zeros((8, 9, 3), np.uint8)]
    with pytest.raises(
        ValueError, match=r"frame 1: size \(8, 9\) differs from the first frame's \(8, 8\)"
    ):
        list(pipe.track(frames))


def test_the_pipeline_refuses_models_and_configs_of_the_wrong_kind():
    tracker, segmenter = MovingBoxTracker(num_objects=1), object()
    with pytest.raises(
        TypeError,
        match=r"config takes a PipelineConfig \(PipelineConfig\(max_objects=3\)\); got dict",
    ):
        UVOSAM(tracker, segmenter, config={"max_objects": 3})
    with pytest.raises(
        TypeError, match=r"tracker takes a loaded model; got 'idol-ytvis19-r50'.*from_pretrained"
    ):
        UVOSAM("idol-ytvis19-r50", segmenter)
    with pytest.raises(
        TypeError, match=r"segmenter takes a loaded model; got PosixPath\('sam_vit_b.pth'\)"
    ):
        UVOSAM(tracker, Path("sam_vit_b.pth"))
    assert UVOSAM(tracker, segmenter).config == PipelineConfig()


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"config": {"max_objects": 3}}, TypeError, r"from_pretrained: config takes a PipelineConfig .*got dict"),
        ({"segmenter_config": {"fast": False}}, TypeError, r"segmenter_config takes a SegmenterConfig .*got dict"),
        ({"tracker": None}, TypeError, r"tracker takes a name or a file path .*got None; to use a tracker object"),
        ({"sam": 3}, TypeError, r"from_pretrained: sam takes a name or a file path .* or None; got 3"),
        ({"tracker_precision": "fp16"}, ValueError, r"tracker_precision must be one of \('fp32', 'tf32', 'bf16'\)"),
    ],
)  # fmt: skip
def test_from_pretrained_refuses_arguments_of_the_wrong_kind_before_looking_for_weights(
    kwargs, error, message, monkeypatch
):
    from uvosam import pipeline

    def looked(*args, **kwargs):
        raise AssertionError("weights looked for")

    monkeypatch.setattr(pipeline, "locate_weights", looked)
    with pytest.raises(error, match=message):
        UVOSAM.from_pretrained(**{"sam": "vit_b", "device": "cpu", **kwargs})


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"keep_ids": 1}, TypeError, r"keep_ids takes a list of track ids, e.g. \[1, 3\] .*got 1 \(one track: \[1\]\)"),
        ({"keep_ids": "1,2"}, TypeError, r"keep_ids takes a list of track ids"),
        ({"keep_ids": [1.5]}, TypeError, r"keep_ids takes track ids \(integers\); got 1.5"),
        ({"merge": [(3, 1)]}, TypeError, r"merge takes \{source_id: target_id\}.* '3>1, 5>1'; got list"),
        ({"merge": "3 to 1"}, ValueError, r"Merge tracks: expected pairs 'source>target'"),
        # "²".isdigit() is True, but int() refuses it: a raw ValueError came
        ({"merge": {"²": 1}}, TypeError, r"merge takes track ids \(integers\); got '²'"),
        ({"split": {3: ["²"]}}, TypeError, r"split takes frames \(integers\) per track; got '²'"),
        ({"split": [(3, 120)]}, TypeError, r"split takes \{track_id: \[frames\]\}.* '3@120, 5@40'; got list"),
        ({"split": {3: [1.5]}}, TypeError, r"split takes frames \(integers\) per track; got 1.5"),
        ({"split": {3: None}}, TypeError, r"split takes frames \(integers\) per track; got None"),
        ({"split": {3: [120, 120]}}, ValueError, r"Split tracks: 3@120 is given twice"),
        ({"split": "3 at 120"}, ValueError, r"Split tracks: expected 'track@frame'"),
        # a mapping's values, not a text the caller never wrote ("could not read '3@-1'")
        ({"split": {3: [-1]}}, ValueError,
         r"split takes track ids and frames >= 0 \(frames counted from 0\); got 3: -1"),
        ({"split": {3: list(range(1, 1002))}}, ValueError, r"split: more than 1,000 splits given"),
        ({"options": {"stride": 2}}, TypeError, r"options takes a JobOptions .*got dict"),
        ({"min_score": "0.5"}, ValueError, r"min_score must be in \[0, 1\] \(a tracker score\); got '0.5'"),
    ],
)  # fmt: skip
def test_rerender_refuses_arguments_of_the_wrong_kind(kwargs, error, message, tmp_path):
    with pytest.raises(error, match=message):
        rerender(tmp_path / "cache", tmp_path / "out", **kwargs)
    assert list(tmp_path.iterdir()) == []  # refused before anything is read or made


def test_the_mask_models_refuse_a_dict_for_their_config_before_loading_anything(tiny_sam_model):
    """``BoxPromptSegmenter(sam, config={...})`` / ``load_segmenter(..., config={...})`` took the dict and failed at
    its first use (``AttributeError: 'dict' object has no attribute 'model_type'``), after the weights loaded."""
    from uvosam.segmenter import BoxPromptSegmenter, load_segmenter

    refused = (
        r"config takes a SegmenterConfig \(SegmenterConfig\(fast=False\)\); got dict; from a dict: "
    )
    with pytest.raises(TypeError, match=refused):
        BoxPromptSegmenter(tiny_sam_model, config={"fast": False})
    with pytest.raises(TypeError, match=refused):
        load_segmenter("/nowhere/sam_vit_b_01ec64.pth", config={"fast": False})
    assert BoxPromptSegmenter(tiny_sam_model, config=None).config == SegmenterConfig()
