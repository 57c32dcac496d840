"""Synthetic training videos: coloured rectangles moving over a noisy background, with box tracks.

Used by the CPU training test and to smoke-test a training setup without any dataset. Objects have
distinct saturated colours (so re-id can tell them apart) and bounce off the borders; object k
moves inside the k-th horizontal band of the frame, so objects never occlude each other (boxes are
exactly the visible rectangles).
"""

from __future__ import annotations

import numpy as np

from uvosam.train.datasets import BoxesByTrack, VideoRecord

PALETTE = np.array(
    [[230, 40, 40], [40, 200, 60], [50, 90, 240], [240, 220, 40], [220, 60, 220], [40, 220, 230]],
    np.uint8,
)


def synthetic_clip(
    num_frames: int,
    *,
    height: int = 64,
    width: int = 64,
    num_objects: int = 2,
    size_range: tuple[float, float] = (0.22, 0.4),
    max_speed: float = 2.5,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Frames (T, H, W, 3) uint8 RGB and boxes (T, K, 4) float32 pixel ``xyxy`` of K objects.

    Args:
        size_range: object side as a fraction of ``min(height, width)``.
        max_speed: largest per-axis speed in pixels per frame.
    """
    rng = np.random.default_rng(seed)
    base = rng.integers(30, 110, size=(height, width, 3), dtype=np.uint8)
    band = height / num_objects
    sizes = rng.uniform(*size_range, size=(num_objects, 2)) * min(height, width)
    sizes[:, 1] = np.minimum(sizes[:, 1], band)
    low = np.stack([np.zeros(num_objects), np.arange(num_objects) * band], 1)
    high = low + np.stack([np.full(num_objects, width), np.full(num_objects, band)], 1) - sizes
    pos = low + rng.uniform(0, 1, size=(num_objects, 2)) * (high - low)
    vel = rng.uniform(-max_speed, max_speed, size=(num_objects, 2))
    colours = PALETTE[rng.permutation(len(PALETTE))[:num_objects]]
    frames = np.empty((num_frames, height, width, 3), np.uint8)
    boxes = np.empty((num_frames, num_objects, 4), np.float32)
    for t in range(num_frames):
        img = base.copy()
        for k in range(num_objects):
            x0, y0 = np.round(pos[k]).astype(int)
            x1, y1 = np.round(pos[k] + sizes[k]).astype(int)
            img[y0:y1, x0:x1] = colours[k]
            boxes[t, k] = (x0, y0, x1, y1)
            pos[k] += vel[k]
            bounced = (pos[k] < low[k]) | (pos[k] > high[k])
            vel[k] = np.where(bounced, -vel[k], vel[k])
            pos[k] = np.clip(pos[k], low[k], high[k])
        frames[t] = img
    return frames, boxes


def _box(row: np.ndarray) -> tuple[float, float, float, float]:
    return (float(row[0]), float(row[1]), float(row[2]), float(row[3]))


def synthetic_videos(
    num_videos: int,
    *,
    num_frames: int = 12,
    height: int = 64,
    width: int = 64,
    num_objects: int = 2,
    seed: int = 0,
) -> list[VideoRecord]:
    """``num_videos`` in-memory ``VideoRecord``s from ``synthetic_clip`` (video i uses seed
    ``seed + i``); object k has track id k + 1."""
    videos = []
    for i in range(num_videos):
        frames, boxes = synthetic_clip(
            num_frames, height=height, width=width, num_objects=num_objects, seed=seed + i
        )
        per_frame: list[BoxesByTrack] = [
            {k + 1: _box(boxes[t, k]) for k in range(num_objects)} for t in range(num_frames)
        ]
        videos.append(
            VideoRecord(name=f"synthetic-{seed + i}", frames=tuple(frames), boxes=tuple(per_frame))
        )
    return videos
