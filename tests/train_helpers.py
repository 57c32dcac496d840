"""Toy data for the training tests, and how well boxes are tracked on it.

``synthetic_clip`` / ``synthetic_videos``: coloured rectangles moving over a noisy background, with box tracks.
Objects have distinct saturated colours (so re-id can tell them apart) and bounce off the borders; object k moves
inside the k-th horizontal band of the frame, so objects never occlude each other (boxes are exactly the visible
rectangles).

``track_metrics``: box-track quality against box ground truth, recall and identity switches (CLEAR-MOT style: per
frame a one-to-one IoU matching, a switch whenever a GT object is matched to a different track id than at its previous
match).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from torchvision.ops import box_iou

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


@dataclass(frozen=True)
class TrackMetrics:
    """Attributes:
    recall: matched GT boxes / GT boxes. id_switches: see ``track_metrics``.
    false_positives: predicted boxes matched to no GT. num_gt: GT boxes counted."""

    recall: float
    id_switches: int
    false_positives: int
    num_gt: int


def track_metrics(
    gt_boxes_xyxy: np.ndarray,
    pred: Sequence[tuple[Sequence[int], np.ndarray]],
    *,
    iou_threshold: float = 0.5,
) -> TrackMetrics:
    """Score predicted tracks against GT boxes.

    Args:
        gt_boxes_xyxy: (T, K, 4) float pixel boxes of K objects; NaN rows where absent.
        pred: per frame (track ids, (n, 4) pixel ``xyxy`` boxes).
        iou_threshold: a match needs IoU >= this.
    """
    matched = total = switches = false_pos = 0
    last_id: dict[int, int] = {}
    for t, (ids, boxes) in enumerate(pred):
        present = ~np.isnan(gt_boxes_xyxy[t]).any(1)
        gt_idx = np.nonzero(present)[0]
        total += len(gt_idx)
        pairs = _match(
            gt_boxes_xyxy[t, gt_idx], np.asarray(boxes, np.float32).reshape(-1, 4), iou_threshold
        )
        false_pos += len(ids) - len(pairs)
        for g, p in pairs:
            obj, track = int(gt_idx[g]), int(ids[p])
            matched += 1
            if obj in last_id and last_id[obj] != track:
                switches += 1
            last_id[obj] = track
    return TrackMetrics(matched / max(total, 1), switches, false_pos, total)


def _match(gt: np.ndarray, pred: np.ndarray, iou_threshold: float) -> list[tuple[int, int]]:
    if len(gt) == 0 or len(pred) == 0:
        return []
    iou = box_iou(torch.from_numpy(gt), torch.from_numpy(pred)).numpy()
    rows, cols = linear_sum_assignment(-iou)
    return [(int(r), int(c)) for r, c in zip(rows, cols, strict=True) if iou[r, c] >= iou_threshold]
