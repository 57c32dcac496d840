"""Tracks that come back: a track seen again after frames without a box, usually re-identified by the tracker.

IDOL keeps an absent track in its memory and gives it its old id when the object returns (after an occlusion, or
after leaving the frame). Whether that was right is what a user checking a result wants to look at, so the video
marks it: ``Reappearances`` follows the ids frame by frame and says which tracks came back recently, and after how
many frames away; ``uvosam.render`` appends that note to the track's tag. A track also goes without a box where
the pipeline left it out (its score under ``PipelineConfig.min_score``, or not among the ``max_objects`` best): it
is marked the same way when it is back.
"""

from __future__ import annotations

from collections.abc import Iterable

from uvosam.errors import InputError

__all__ = ["Reappearances"]


class Reappearances:
    """Per-video state: feed every frame's track ids in order, get ``{track_id: note}`` for the tracks to mark.

    A track is marked on the frame it comes back (seen before, then absent for at least one frame) and on the
    next ``hold_frames - 1`` frames it is present in that window, e.g. ``"back after 12"``: 12 frames without it.
    Frame counts are those of the frames fed (after any stride).
    """

    def __init__(self, hold_frames: int) -> None:
        if hold_frames < 1:
            raise InputError(f"Reappearances: hold_frames must be >= 1; got {hold_frames}")
        self.hold_frames = hold_frames
        self._last_seen: dict[int, int] = {}
        self._returned: dict[
            int, tuple[int, int]
        ] = {}  # track id -> (frame it came back, frames away)
        self._frame = -1

    def update(self, frame_index: int, track_ids: Iterable[int]) -> dict[int, str]:
        """The notes for frame ``frame_index`` (0, 1, 2, ... in order) holding ``track_ids``."""
        if frame_index != self._frame + 1:
            raise ValueError(
                f"Reappearances.update: expected frame {self._frame + 1}, got {frame_index}; feed every frame once, "
                "in order"
            )
        self._frame = frame_index
        notes = {}
        for track_id in (int(i) for i in track_ids):
            last = self._last_seen.get(track_id)
            if last is not None and frame_index > last + 1:
                self._returned[track_id] = (frame_index, frame_index - last - 1)
            self._last_seen[track_id] = frame_index
            back = self._returned.get(track_id)
            if back is not None and frame_index - back[0] < self.hold_frames:
                notes[track_id] = f"back after {back[1]}"
        return notes
