"""Arguments of the Python API (docs/python.md) refused where they are given, with what was expected and what to do,
instead of being taken and failing deep inside a run (a bare TypeError/AttributeError) or silently meaning something
else (``fast="no"`` as true). Pure construction checks: no model runs here."""

from __future__ import annotations

import json

import numpy as np
import pytest

from uvosam.config import PipelineConfig, SegmenterConfig, VideoLimits


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
        (lambda: VideoLimits(max_duration_s="60"), r"max_duration_s must be a positive number or None; got '60'"),
        (lambda: VideoLimits(max_duration_s=float("nan")), r"max_duration_s must be a positive number"),
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
