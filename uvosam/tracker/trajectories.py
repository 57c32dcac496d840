"""IDOL's trajectory bookkeeping (``video_dict`` of ``IDOL.inference``), scores, results format.

Origin: ``IDOL.inference`` of the UVOSAM release (``prompt_networks/IDOL/idol/idol.py``).

* Every tracked detection (tracker id >= 0) appends its query's box (normalised cxcywh) and
  class-probability vector to the entry of its tracker id; a first-seen id opens an entry (earlier
  frames empty).
* Short-track pruning, at frame indices >= ``short_track_start_frame`` (IDOL: ``i_frame > 8``): an
  entry with no box in the current and the previous frame and fewer than ``short_track_min_valid``
  hits is removed. The tracker memory is not told: if the tracker later matches that id again, a
  NEW entry is opened, so the earlier boxes of that id are lost (kept: it is the original's
  decision). Each entry is one trajectory.
* Temporal score = mean (or max) over the frames with a box of the probability vectors; with
  ``multi_cls_on`` one result per (trajectory, class) whose score > ``apply_cls_thres``, in
  entry-creation order then class order.
* Boxes to pixels exactly as the original (float32): ``x1 = max(0, cx - w/2) * W``,
  ``y1 = max(0, cy - h/2) * H``, ``x2 = min(1, cx + w/2) * W``, ``y2 = min(1, cy + h/2) * H``.

Output ids (``Trajectory.track_id``, 1-based): entries that survive the short-track pruning,
numbered in order of creation. A pruned entry never gets an id; an entry re-opened under a re-used
tracker id is a new trajectory and gets its own id. The temporal-score filter does not renumber (a
filtered trajectory leaves a gap).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from uvosam.tracker.association_config import InferenceConfig


@dataclass
class TrajectoryEntry:
    """One ``video_dict`` entry: the hits of one tracker id between its (re)creation and its
    pruning.

    Attributes:
        tracker_id: the tracker's 0-based id.
        serial: creation order among all entries of the video (0-based, pruned ones included).
        hit_frames: frame indices with a box, increasing.
        boxes_cxcywh_norm: (4,) float32 query box per hit.
        probs: (K,) float32 class-probability vector per hit.
        pruned: removed by the short-track rule.
        output_id: 1-based output id once known (survivors only).
    """

    tracker_id: int
    serial: int
    hit_frames: list[int] = field(default_factory=list)
    boxes_cxcywh_norm: list[torch.Tensor] = field(default_factory=list)
    probs: list[torch.Tensor] = field(default_factory=list)
    pruned: bool = False
    output_id: int | None = None

    @property
    def valid(self) -> int:
        return len(self.hit_frames)

    def temporal_score(self, kind: str) -> torch.Tensor:
        """(K,) mean (or max) of the probability vectors over the hits."""
        stacked = torch.stack(self.probs)
        return stacked.mean(0) if kind == "mean" else stacked.max(0)[0]


@dataclass(frozen=True)
class Trajectory:
    """One result of IDOL's video output.

    Attributes:
        track_id: 1-based output id (see module docstring); equal for the per-class results of one
            trajectory.
        tracker_id: the tracker's internal 0-based id (can be re-used after pruning).
        label: 0-based contiguous class index.
        score: temporal score of that class.
        boxes_xyxy: one entry per frame: (4,) float32 pixel box in the original frame, or None.
        frame_scores: one entry per frame: the max class probability of the track's detection, or
            None.
        frame_probs: one entry per frame: the (K,) float32 class probabilities of the track's
            detection, or None (empty for a result built without them).
    """

    track_id: int
    tracker_id: int
    label: int
    score: float
    boxes_xyxy: tuple[np.ndarray | None, ...]
    frame_scores: tuple[float | None, ...]
    frame_probs: tuple[np.ndarray | None, ...] = ()


def boxes_to_pixels(
    boxes_cxcywh_norm: torch.Tensor, image_size_hw: tuple[int, int]
) -> torch.Tensor:
    """(N, 4) normalised ``cxcywh`` -> (N, 4) float32 pixel ``xyxy`` clamped to the frame, as
    IDOL.inference."""
    height, width = image_size_hw
    cx, cy, w, h = boxes_cxcywh_norm.to(torch.float32).unbind(-1)
    x1, y1, x2, y2 = cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2
    zero, one = torch.zeros(()), torch.ones(())
    return torch.stack(
        [
            torch.where(x1 > 0, x1, zero) * width,
            torch.where(y1 > 0, y1, zero) * height,
            torch.where(x2 < 1, x2, one) * width,
            torch.where(y2 < 1, y2, one) * height,
        ],
        dim=-1,
    )


class TrajectoryBook:
    """``video_dict``: per tracker id, the per-frame boxes and probabilities, with short-track
    pruning.

    Feed frames in order with ``add_frame``; ``close`` marks the end of the video; ``trajectories``
    gives the final results. Entries are kept in creation order; an entry is *decided* once it is
    pruned, has enough hits that it can never be pruned, or the video has ended.
    """

    def __init__(self, config: InferenceConfig = InferenceConfig()) -> None:
        self.config = config
        self.live: dict[int, TrajectoryEntry] = {}
        self.num_frames = 0
        self.closed = False
        self._num_entries = 0

    def add_frame(
        self, tracker_ids: list[int], boxes_cxcywh_norm: torch.Tensor, probs: torch.Tensor
    ) -> tuple[list[TrajectoryEntry], list[TrajectoryEntry]]:
        """Record the next frame's tracked detections ((n,) ids, (n, 4) boxes, (n, K)
        probabilities).

        Returns:
            (entries hit in this frame, in detection order; entries pruned at this frame).
        """
        if self.closed:
            raise RuntimeError(
                "TrajectoryBook.add_frame after close(): the video has already ended"
            )
        frame = self.num_frames
        hit = []
        for row, tracker_id in enumerate(tracker_ids):
            entry = self.live.get(tracker_id)
            if entry is None:
                entry = self.live[tracker_id] = TrajectoryEntry(tracker_id, self._num_entries)
                self._num_entries += 1
            entry.hit_frames.append(frame)
            entry.boxes_cxcywh_norm.append(boxes_cxcywh_norm[row])
            entry.probs.append(probs[row])
            hit.append(entry)
        self.num_frames += 1
        return hit, self._prune(frame)

    def _prune(self, frame: int) -> list[TrajectoryEntry]:
        if frame < self.config.short_track_start_frame:
            return []
        pruned = [
            e
            for e in self.live.values()
            if e.hit_frames[-1] <= frame - 2 and e.valid < self.config.short_track_min_valid
        ]
        for entry in pruned:
            entry.pruned = True
            del self.live[entry.tracker_id]
        return pruned

    def is_decided(self, entry: TrajectoryEntry) -> bool:
        """True once the entry's survival of the pruning can no longer change."""
        return self.closed or entry.pruned or entry.valid >= self.config.short_track_min_valid

    def close(self) -> None:
        """Mark the end of the video: every live entry survives."""
        self.closed = True

    def trajectories(self, image_size_hw: tuple[int, int]) -> list[Trajectory]:
        """The final results of the live entries (call after the last frame), as ``IDOL.inference``
        orders them."""
        results = []
        for output_id, entry in enumerate(self.live.values(), start=1):
            entry.output_id = output_id
            results.extend(self.entry_results(entry, image_size_hw))
        return results

    def entry_results(
        self, entry: TrajectoryEntry, image_size_hw: tuple[int, int]
    ) -> list[Trajectory]:
        """The (trajectory, class) results of one surviving entry."""
        scores = entry.temporal_score(self.config.temporal_score)
        if self.config.multi_cls_on:
            labels = torch.nonzero(scores > self.config.apply_cls_thres).squeeze(1).tolist()
        else:
            labels = [int(torch.max(scores, dim=-1)[1])]
        if not labels:
            return []
        pixels = boxes_to_pixels(torch.stack(entry.boxes_cxcywh_norm), image_size_hw).numpy()
        probs = torch.stack(entry.probs)
        maxima, probs_np = probs.max(dim=1)[0].tolist(), probs.numpy()
        boxes: list[np.ndarray | None] = [None] * self.num_frames
        frame_scores: list[float | None] = [None] * self.num_frames
        frame_probs: list[np.ndarray | None] = [None] * self.num_frames
        for k, frame in enumerate(entry.hit_frames):
            boxes[frame], frame_scores[frame], frame_probs[frame] = (
                pixels[k],
                maxima[k],
                probs_np[k],
            )
        assert entry.output_id is not None
        return [
            Trajectory(
                entry.output_id,
                entry.tracker_id,
                label,
                float(scores[label]),
                tuple(boxes),
                tuple(frame_scores),
                tuple(frame_probs),
            )
            for label in labels
        ]


def results_json(trajectories: list[Trajectory], video_id: Any) -> list[dict[str, Any]]:
    """The release's ``results.json`` objects for one video, in the given (original) order.

    Each: ``{"video_id", "score", "category_id" (= contiguous class index + 1), "boxes": per frame
    [x1, y1, x2, y2] pixel floats or None}``.
    """
    return [
        {
            "video_id": video_id,
            "score": float(t.score),
            "category_id": int(t.label) + 1,
            "boxes": [None if b is None else [float(v) for v in b] for b in t.boxes_xyxy],
        }
        for t in trajectories
    ]
