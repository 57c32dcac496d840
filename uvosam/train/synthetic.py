"""Synthetic training videos: moving rectangles with box tracks (``uvosam.testing.moving_shapes``).

Used by the CPU training test and for smoke-testing a training setup without any dataset.
"""

from __future__ import annotations

import numpy as np

from uvosam.testing import moving_shapes
from uvosam.train.datasets import BoxesByTrack, VideoRecord


def synthetic_videos(
    num_videos: int,
    *,
    num_frames: int = 12,
    height: int = 64,
    width: int = 64,
    num_objects: int = 2,
    seed: int = 0,
) -> list[VideoRecord]:
    """``num_videos`` in-memory ``VideoRecord``s; object k has track id k + 1 (video i uses seed
    ``seed + i``)."""
    videos = []
    for i in range(num_videos):
        clip = moving_shapes(num_frames, height=height, width=width, num_objects=num_objects,
                             seed=seed + i)
        boxes: list[BoxesByTrack] = []
        for t in range(num_frames):
            boxes.append({
                k + 1: tuple(float(v) for v in clip.boxes_xyxy[t, k])  # type: ignore[misc]
                for k in range(num_objects)
                if not np.isnan(clip.boxes_xyxy[t, k]).any()
            })
        videos.append(VideoRecord(name=f"synthetic-{seed + i}", frames=tuple(clip.frames),
                                  boxes=tuple(boxes)))
    return videos
