"""uvosam: mask-free unsupervised video object segmentation (UVOSAM, arXiv 2305.12659).

An IDOL video salient-object tracker finds the main objects and gives each a box trajectory; the boxes prompt the
Segment Anything Model (SAM, or SAM 2.1's image path) frame by frame.
"""

__version__ = "0.1.0"

from uvosam.config import PipelineConfig, SegmenterConfig, VideoLimits
from uvosam.errors import (
    InputError,
    MissingInputError,
    MissingPackageError,
    MissingWeightsError,
    RemoteVideoError,
    SetupError,
    VideoLimitError,
    VideoReadError,
    WeightsError,
)
from uvosam.pipeline import UVOSAM
from uvosam.types import FrameResult, FrameTracks, TrackSummary

__all__ = [
    "UVOSAM",
    "FrameResult",
    "FrameTracks",
    "InputError",
    "MissingInputError",
    "MissingPackageError",
    "MissingWeightsError",
    "PipelineConfig",
    "RemoteVideoError",
    "SegmenterConfig",
    "SetupError",
    "TrackSummary",
    "VideoLimitError",
    "VideoLimits",
    "VideoReadError",
    "WeightsError",
]
