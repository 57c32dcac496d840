"""Box-track quality on videos with box ground truth: recall and identity switches (CLEAR-MOT
style: per frame a one-to-one IoU matching, a switch whenever a GT object is matched to a
different track id than at its previous match)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from torchvision.ops import box_iou


@dataclass(frozen=True)
class TrackMetrics:
    """Attributes:
    recall: matched GT boxes / GT boxes. id_switches: see module docstring.
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
