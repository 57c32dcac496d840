"""Build FrameResults straight from ``moving_shapes`` ground truth (no models) for render/export tests."""

from __future__ import annotations

import numpy as np

from uvosam.testing import SyntheticVideo
from uvosam.types import FrameResult


def results_from_video(
    video: SyntheticVideo,
    *,
    track_ids: list[int] | None = None,
    base_scores: list[float] | None = None,
    labels: list[int] | None = None,
) -> list[FrameResult]:
    """One FrameResult per frame; object k (present where its GT box is not NaN) becomes track ``track_ids[k]``.

    Per-frame scores wobble around ``base_scores[k]`` (mean over frames is not exactly the base).
    """
    num_frames, num_objects = video.boxes_xyxy.shape[:2]
    track_ids = track_ids or [10 + 3 * k for k in range(num_objects)]
    base_scores = base_scores or [0.9 - 0.01 * k for k in range(num_objects)]
    labels = labels or [k % 2 for k in range(num_objects)]
    out = []
    for t in range(num_frames):
        rows = [k for k in range(num_objects) if not np.isnan(video.boxes_xyxy[t, k, 0])]
        wobble = 0.02 * np.sin(np.arange(num_objects) + t)
        out.append(
            FrameResult(
                frame_index=t,
                image=video.frames[t],
                track_ids=np.array([track_ids[k] for k in rows], np.int64),
                boxes_xyxy=video.boxes_xyxy[t, rows].astype(np.float32).reshape(-1, 4),
                scores=np.array([base_scores[k] + wobble[k] for k in rows], np.float32),
                labels=np.array([labels[k] for k in rows], np.int64),
                masks=video.masks[t, rows].reshape(len(rows), *video.frames.shape[1:3]),
                mask_scores=np.full(len(rows), 0.75, np.float32),
            )
        )
    return out


def mean_scores(results: list[FrameResult]) -> dict[int, float]:
    """Mean per-frame score of each track, computed the slow obvious way."""
    sums: dict[int, list[float]] = {}
    for res in results:
        for track_id, score in zip(res.track_ids.tolist(), res.scores.tolist()):
            sums.setdefault(track_id, []).append(score)
    return {k: float(np.mean(v)) for k, v in sums.items()}
