"""Possible id switches: a track that starts right where and when another one ended.

When the tracker loses an object (an occlusion, a fast move, a blur) and picks it up again as a new track, the old
track ends and the new one begins a few frames later, close to where the old one was last seen. ``suggest_merges``
finds such pairs from the tracks' boxes and proposes merges in the syntax of ``uvosam.track_edit`` (``"3>1"``), to
check in the video or the timeline and apply with a re-render. It proposes; it never merges by itself, and never
proposes to join the parts of a track a re-render split (``split_groups``): the part split off starts the frame after
its track ends, where it was, but the split said they are two objects.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from uvosam.text import count

__all__ = ["MergeHint", "merge_text", "split_groups", "suggest_merges"]

MAX_GAP_FRAMES = 30
"""IDOL keeps a lost track in memory for 10 processed frames (``memo_tracklet_frames``), so an object that comes back
later always gets a new id: the gaps of real switches start at 10. 30 frames (about a second) leaves room for that;
the distance limit keeps far-away tracks out."""
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
        when = "the frame after" if gap == 0 else f"{count(gap, 'frame')} after"
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
    apart: Iterable[Iterable[int]] = (),
) -> list[MergeHint]:
    """Merges to consider, one per track at most, each to the FIRST id of its chain (as ``check_merge`` wants).

    Args:
        boxes: ``{track_id: {frame index: [x1, y1, x2, y2]}}`` (pixels; the frames each track was seen in), e.g.
            ``TrackRecord.boxes`` of an export.
        max_gap: most frames without either track between the end of one and the start of the other.
        max_distance: most distance between the last box of one and the first box of the other, in diagonals of
            the larger of the two.
        apart: groups of track ids never proposed to join one another (``split_groups``: a split track's parts).

    Returns:
        Hints in order of the source's first frame. Each track continues at most one earlier track and is
        continued by at most one later track: pairs are taken best first, by the sum of their gap and distance
        as fractions of the limits (ties: lower ids), so a near pair is not taken by a sooner but farther one.
    """
    spans = {int(t): _span(frames) for t, frames in boxes.items() if frames}
    groups: dict[int, set[int]] = {}  # track -> the groups it is in
    for n, group in enumerate(apart):
        for track in group:
            groups.setdefault(int(track), set()).add(n)

    def together(a: int, b: int) -> bool:
        return bool(groups.get(a, set()) & groups.get(b, set()))

    candidates = [c for c in _candidates(spans, max_gap, max_distance) if not together(c[2], c[3])]
    continues: dict[int, tuple[int, int, float]] = {}  # late -> (early, gap, distance)
    continued: set[int] = set()

    def cost(c: tuple[int, float, int, int]) -> tuple[float, int, int]:
        return c[0] / (max_gap + 1) + c[1] / max_distance if max_distance > 0 else c[0], c[2], c[3]

    for gap, distance, late, early in sorted(candidates, key=cost):
        if late not in continues and early not in continued:
            continues[late] = (early, gap, distance)
            continued.add(early)
    hints = []
    for late in sorted(continues, key=lambda t: spans[t][0]):
        after, gap, distance = continues[late]
        first = after
        while first in continues:  # a chain 3 -> 2 -> 1: merge 3 into 1 directly
            first = continues[first][0]
        if not together(late, first):
            hints.append(MergeHint(late, first, gap, distance, after))
    return hints


def split_groups(rerender: Mapping[str, Any] | None) -> list[set[int]]:
    """The ids of each track a re-render split, as its export has them: the track's and its parts' (their ids after
    its merge), from the ``rerender`` entry of its ``run.json`` (``split_ids`` ``{"track@frame": new id}``,
    ``merge`` ``{"source": target}``; None: a run's, no split). For ``suggest_merges(apart=...)``."""
    merge = {int(s): int(t) for s, t in ((rerender or {}).get("merge") or {}).items()}
    groups: dict[int, set[int]] = {}
    for (track, _), new in recorded_split_ids(rerender).items():
        groups.setdefault(track, {merge.get(track, track)}).add(merge.get(new, new))
    return list(groups.values())


def recorded_split_ids(rerender: Mapping[str, Any] | None) -> dict[tuple[int, int], int]:
    """The ``split_ids`` of the ``rerender`` entry of a ``run.json`` (``{"track@frame": new id}``) as
    ``{(track_id, frame): new_id}``, in its order; {} for None (a run's) or no split."""
    ids = {}
    for split, new in ((rerender or {}).get("split_ids") or {}).items():
        track, frame = str(split).split("@")
        ids[int(track), int(frame)] = int(new)
    return ids


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


def _candidates(
    spans: Mapping[int, tuple[int, np.ndarray, int, np.ndarray]], max_gap: int, max_distance: float
) -> list[tuple[int, float, int, int]]:
    """Every (gap, distance, late track, early track) within the limits. The tracks are sorted by their last frame, so
    each track's possible predecessors (those that ended 1..max_gap + 1 frames before it started) are one slice,
    and their distances one numpy expression: thousands of tracks take well under a second."""
    ids = np.array(list(spans), np.int64)
    first = np.array([s[0] for s in spans.values()], np.int64)
    last = np.array([s[2] for s in spans.values()], np.int64)
    first_box = np.array([s[1] for s in spans.values()], float).reshape(-1, 4)
    last_box = np.array([s[3] for s in spans.values()], float).reshape(-1, 4)
    order = np.argsort(last, kind="stable")
    ends = last[order]
    out = []
    for i in range(len(ids)):
        lo = np.searchsorted(ends, first[i] - max_gap - 1, side="left")
        hi = np.searchsorted(ends, first[i] - 1, side="right")
        if lo == hi:
            continue
        early = order[lo:hi]
        distance = _distances(last_box[early], first_box[i])
        near = distance <= max_distance
        gaps = first[i] - last[early[near]] - 1
        out += zip(
            gaps.tolist(),
            distance[near].tolist(),
            [int(ids[i])] * int(near.sum()),
            ids[early[near]].tolist(),
        )
    return out


def _distances(boxes: np.ndarray, box: np.ndarray) -> np.ndarray:
    """Centre distance of each (N, 4) xyxy box to ``box``, over the larger of the two diagonals (inf for degenerate
    or NaN boxes)."""
    diagonal = np.maximum(
        np.hypot(*(boxes[:, 2:] - boxes[:, :2]).T), np.hypot(*(box[2:] - box[:2]))
    )
    centre = (boxes[:, :2] + boxes[:, 2:]) / 2 - (box[:2] + box[2:]) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        distance = np.hypot(*centre.T) / diagonal
    return np.where((diagonal > 0) & np.isfinite(distance), distance, np.inf)


def _span(frames: Mapping[int, Sequence[float]]) -> tuple[int, np.ndarray, int, np.ndarray]:
    first, last = min(frames), max(frames)
    return first, np.asarray(frames[first], float), last, np.asarray(frames[last], float)
