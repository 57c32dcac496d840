"""``e2e.py --objects N``: every frame holds N tracked boxes, as a trained tracker gives on a clip of N objects.

With random weights the tracker finds few or no objects, so SAM (the most expensive stage at real size) ran on a
handful of frames and the fps flattered us. ``FixedObjects`` keeps the real tracker running on every frame (its
detector, association and look-ahead cost stay in the timings) and replaces only its output: N boxes per frame,
laid out on a row across the frame and drifting a few pixels a frame, so SAM encodes every frame and decodes N boxes,
and rendering and the exports draw and write N masks. Both sides of the release comparison see the same boxes
(``trajectories``, which ``uvosam.tracker.session.track_video`` reads).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from uvosam.tracker.trajectories import Trajectory
from uvosam.types import BoxTracker, FrameTracks, TrackingSession


def object_boxes(count: int, frame_index: int, height: int, width: int) -> np.ndarray:
    """(count, 4) float32 pixel ``xyxy`` boxes of frame ``frame_index`` in a ``height`` x ``width`` frame: ``count``
    equal slots across the frame, each box half its slot's width and half the frame's height, moving right by
    2 px a frame and wrapping inside its slot."""
    slot = width / count
    box_w, box_h = slot / 2, height / 2
    shift = (2 * frame_index) % max(1, int(slot - box_w))
    x0 = np.arange(count, dtype=np.float32) * slot + shift
    y0 = np.full(count, height / 4, np.float32)
    return np.stack([x0, y0, x0 + box_w, y0 + box_h], axis=1).astype(np.float32)


class FixedObjects:
    """A ``BoxTracker`` that runs ``tracker`` on every frame and reports ``count`` boxes per frame instead of its
    output (track ids 0..count-1, score 0.9, label 0)."""

    def __init__(self, tracker: BoxTracker, count: int) -> None:
        if count < 1:
            raise ValueError(f"FixedObjects needs count >= 1; got {count}")
        self.tracker = tracker
        self.count = count
        self.class_names: Sequence[str] = tracker.class_names
        self.lookahead = tracker.lookahead
        # what e2e.py's stage timers wrap ("detect"), when the tracker has one
        self.detector = getattr(tracker, "detector", None)

    def describe(self) -> dict:
        inner = getattr(self.tracker, "describe", None)
        return {
            "fixed_objects": self.count,
            "tracker": inner() if inner else type(self.tracker).__name__,
        }

    def new_video(self, *, height: int, width: int) -> FixedObjectsSession:
        return FixedObjectsSession(
            self.tracker.new_video(height=height, width=width), self.count, height, width
        )


class FixedObjectsSession:
    """The wrapped session: its decided frames, each with the fixed boxes."""

    def __init__(self, inner: TrackingSession, count: int, height: int, width: int) -> None:
        self.inner = inner
        self.count = count
        self.height = height
        self.width = width
        self.frames = 0

    def push(self, frame_rgb: np.ndarray) -> list[FrameTracks]:
        self.frames += 1
        return [self._tracks(t.frame_index) for t in self.inner.push(frame_rgb)]

    def finish(self) -> list[FrameTracks]:
        return [self._tracks(t.frame_index) for t in self.inner.finish()]

    def _tracks(self, frame_index: int) -> FrameTracks:
        return FrameTracks(
            frame_index=frame_index,
            track_ids=np.arange(self.count, dtype=np.int64),
            boxes_xyxy=object_boxes(self.count, frame_index, self.height, self.width),
            scores=np.full(self.count, 0.9, np.float32),
            labels=np.zeros(self.count, np.int64),
        )

    def trajectories(self, boxes_hw: tuple[int, int] | None = None) -> list[Trajectory]:
        """One trajectory per object over every pushed frame (``boxes_hw`` must be the frames' size or None)."""
        if boxes_hw not in (None, (self.height, self.width)):
            raise ValueError(
                f"FixedObjects boxes are in the frames' pixels; got boxes_hw={boxes_hw}"
            )
        boxes = [object_boxes(self.count, t, self.height, self.width) for t in range(self.frames)]
        return [
            Trajectory(
                track_id=k + 1,
                tracker_id=k,
                label=0,
                score=0.9,
                boxes_xyxy=tuple(b[k] for b in boxes),
                frame_scores=(0.9,) * self.frames,
            )
            for k in range(self.count)
        ]
