"""Possible id switches: a track that starts right where and when another one ended.

When the tracker loses an object (an occlusion, a fast move, a blur) and picks it up again as a new track, the old
track ends and the new one begins a few frames later, close to where the old one was last seen. ``suggest_merges``
finds such pairs from the tracks' boxes and proposes merges in the syntax of ``uvosam.track_edit`` (``"3>1"``), to
check in the video or the timeline and apply with a re-render. It proposes; it never merges by itself.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["MergeHint", "merge_text", "suggest_merges"]

MAX_GAP_FRAMES = 10
MAX_DISTANCE = 0.75


@dataclass(frozen=True)
class MergeHint:
    """Track ``source`` probably continues track ``target`` (whose id it should take).

    Attributes:
        after: the track ``source`` directly continues: ``target``, or in a chain (3 -> 2 -> 1, proposed as
            ``3>1``) the one before it (2), itself proposed as part of ``target``.
        gap_frames: frames between the last box of ``after`` and the source's first (0: the very next frame).
        distance: between the centres of those two boxes, in units of the larger box's diagonal.
    """

    source: int
    target: int
    gap_frames: int
    distance: float
    after: int

    def describe(self) -> str:
        gap = self.gap_frames
        when = "the frame after" if gap == 0 else f"{gap} frame{'' if gap == 1 else 's'} after"
        chain = "" if self.after == self.target else f" (itself part of track {self.target})"
        return (
            f"track {self.source} starts {when} track {self.after} ends{chain}, "
            f"{self.distance:.2f} box diagonals from where it was last seen"
        )


def suggest_merges(
    boxes: Mapping[int, Mapping[int, Sequence[float]]],
    *,
    max_gap: int = MAX_GAP_FRAMES,
    max_distance: float = MAX_DISTANCE,
) -> list[MergeHint]:
    """Merges to consider, one per track at most, each to the FIRST id of its chain (as ``check_merge`` wants).

    Args:
        boxes: ``{track_id: {frame index: [x1, y1, x2, y2]}}`` (pixels; the frames each track was seen in), e.g.
            ``TrackRecord.boxes`` of an export.
        max_gap: most frames without either track between the end of one and the start of the other.
        max_distance: most distance between the last box of one and the first box of the other, in diagonals of
            the larger of the two.

    Returns:
        Hints in order of the source's first frame. Each track continues at most one earlier track and is
        continued by at most one later track (the closest in time, then in space).
    """
    spans = {int(t): _span(frames) for t, frames in boxes.items() if frames}
    ending: dict[int, list[int]] = {}  # last frame -> tracks ending there
    for track, (_, _, last, _) in spans.items():
        ending.setdefault(last, []).append(track)
    candidates = []
    for late, (l_first, l_first_box, _, _) in spans.items():
        for gap in range(max_gap + 1):  # only the tracks that ended just before: linear in the number of tracks
            for early in ending.get(l_first - gap - 1, ()):
                distance = _distance(spans[early][3], l_first_box)
                if distance <= max_distance:
                    candidates.append((gap, distance, late, early))
    continues: dict[int, tuple[int, int, float]] = {}  # late -> (early, gap, distance)
    continued: set[int] = set()
    for gap, distance, late, early in sorted(candidates):
        if late not in continues and early not in continued:
            continues[late] = (early, gap, distance)
            continued.add(early)
    hints = []
    for late in sorted(continues, key=lambda t: spans[t][0]):
        after, gap, distance = continues[late]
        first = after
        while first in continues:  # a chain 3 -> 2 -> 1: merge 3 into 1 directly
            first = continues[first][0]
        hints.append(MergeHint(late, first, gap, distance, after))
    return hints


def merge_text(hints: Sequence[MergeHint], applied: Mapping[int, int] | None = None) -> str:
    """The hints in the syntax of ``uvosam.track_edit.parse_merge``, e.g. ``"3>1, 5>1"``.

    Args:
        hints: from ``suggest_merges``.
        applied: the merge (``{source: target}``) the hints' tracks were made with, e.g. a re-render's. A re-render
            starts from the run's tracks, so the text is then the whole merge: ``applied`` first (a target that a
            hint merges on sent to the hint's target, no chain), then the hints; ``"2>1, 3>1"`` after ``{2: 1}``.
    """
    hinted = {h.source: h.target for h in hints}
    whole = {int(s): hinted.get(int(t), int(t)) for s, t in (applied or {}).items()}
    whole.update(hinted)
    return ", ".join(f"{s}>{t}" for s, t in whole.items())


def _span(frames: Mapping[int, Sequence[float]]) -> tuple[int, np.ndarray, int, np.ndarray]:
    first, last = min(frames), max(frames)
    return first, np.asarray(frames[first], float), last, np.asarray(frames[last], float)


def _distance(a: np.ndarray, b: np.ndarray) -> float:
    """Centre distance of two xyxy boxes over the larger diagonal (inf for degenerate boxes)."""
    diagonal = max(np.hypot(*(a[2:] - a[:2])), np.hypot(*(b[2:] - b[:2])))
    if diagonal <= 0:
        return float("inf")
    return float(np.hypot(*((a[:2] + a[2:]) / 2 - (b[:2] + b[2:]) / 2)) / diagonal)
