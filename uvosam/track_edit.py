"""Editing a finished run at the track level: merging tracks whose identity broke into one.

A tracker sometimes splits one object into two ids (after an occlusion, a fast move, a scene cut). ``merge_tracks``
joins them frame by frame so that everything made from the results (video, DAVIS PNGs, cut-outs, JSON) shows one
track; ``rerender(merge=...)`` applies it to a cached run without running any model.

A merge is a mapping ``{source_id: target_id}``: every source track becomes part of its target, which keeps its id
and its class. Chains (``3 -> 2 -> 1``) are refused rather than guessed: map each source to the final id.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import replace

import numpy as np

from uvosam.types import FrameResult

_PAIR = re.compile(r"(\d{1,18})\s*(?:->|→|>)\s*(\d{1,18})(?!\d)")  # int64 ids; no 4300-digit int()
_SEPARATORS = re.compile(r"[\s,;]*")
MERGE_SYNTAX = (
    "pairs 'source>target' separated by commas, e.g. '3>1, 5>1' (tracks 3 and 5 become part of 1)"
)


def parse_merge(text: str | None) -> dict[int, int]:
    """``"3>1, 5>1"`` (also ``->`` or ``→``; commas, semicolons or spaces between pairs) as ``{3: 1, 5: 1}``.

    Raises:
        ValueError: anything else in the text, or one source given two targets.
    """
    merge: dict[int, int] = {}
    text = (text or "").strip()
    pos = 0
    while pos < len(text):
        pos = _SEPARATORS.match(text, pos).end()
        if pos == len(text):
            break
        pair = _PAIR.match(text, pos)
        if pair is None:
            raise ValueError(
                f"Merge tracks: expected {MERGE_SYNTAX}; could not read {text[pos:]!r}."
            )
        source, target = int(pair.group(1)), int(pair.group(2))
        if merge.get(source, target) != target:
            raise ValueError(
                f"Merge tracks: track {source} is merged into both {merge[source]} and {target}; "
                "give each track one target."
            )
        merge[source] = target
        pos = pair.end()
    return merge


def check_merge(merge: Mapping[int, int], track_ids: Iterable[int]) -> None:
    """Refuse a merge that names a track not in ``track_ids``, a track merged into itself or a chain.

    Raises:
        ValueError: saying which pair is wrong and what to write instead.
    """
    known = sorted({int(i) for i in track_ids})
    listed = ", ".join(map(str, known)) or "none"
    for source, target in merge.items():
        for track in (source, target):
            if track not in known:
                raise ValueError(
                    f"Merge tracks: there is no track {track} in this run (its tracks: {listed})."
                )
        if source == target:
            raise ValueError(f"Merge tracks: track {source} is merged into itself; leave it out.")
        if merge.get(target) == source:
            raise ValueError(
                f"Merge tracks: {source}>{target} and {target}>{source} form a cycle; keep the one whose id "
                f"should stay (e.g. only {source}>{target})."
            )
        if target in merge:
            raise ValueError(
                f"Merge tracks: {source}>{target} and {target}>{merge[target]} form a chain; merge every track "
                f"into the final one directly ({source}>{merge[target]}, {target}>{merge[target]})."
            )


def kept_tracks(
    keep_ids: Iterable[int], merge: Mapping[int, int], track_ids: Iterable[int]
) -> set[int]:
    """The run's tracks to read when ``keep_ids`` (the run's ids) are kept and ``merge`` is applied.

    A merged track is kept when its target is; its sources follow the target, kept or not (a source is part of
    the target once merged, so keeping the target alone still merges it, and dropping the target drops them all:
    no dropped id comes back carrying a source's masks).
    """
    keep = {int(i) for i in keep_ids}
    return {int(i) for i in track_ids if merge.get(int(i), int(i)) in keep}


def merge_tracks(
    result: FrameResult, merge: Mapping[int, int], labels: Mapping[int, int] | None = None
) -> FrameResult:
    """One frame with each ``merge`` source track folded into its target.

    The rows that end up with the same id become one: masks OR-ed, ``boxes_xyxy`` the smallest box holding all of
    theirs, ``scores`` and ``mask_scores`` their maximum, ``labels`` the target's class from ``labels`` (else the
    label of the highest-scoring row), ``class_probs`` (if any) the highest-scoring row's. Rows keep the order of
    their first occurrence.

    Args:
        result: the frame; masks (N, H, W) bool.
        merge: ``{source_id: target_id}``, checked with ``check_merge`` (no chains).
        labels: track id -> class index (e.g. ``MaskCache.track_labels()``); only targets' entries are used.

    Returns:
        A new ``FrameResult`` with unique track ids (the input is not modified); ``result`` itself when it holds
        no source and no target whose class differs from ``labels``.
    """
    if not merge or not any(int(i) in merge for i in result.track_ids.tolist()):
        # nothing to fold (the usual frame): no copy of its masks
        return _target_labels(result, merge, labels)
    ids = np.array([merge.get(int(i), int(i)) for i in result.track_ids.tolist()], np.int64)
    _, first = np.unique(ids, return_index=True)
    groups = [np.flatnonzero(ids == ids[i]) for i in np.sort(first)]
    boxes = result.boxes_xyxy
    best = [rows[np.argmax(result.scores[rows])] for rows in groups]
    out_ids = np.array([ids[rows[0]] for rows in groups], np.int64)
    label_of = {t: labels[t] for t in set(merge.values()) if t in labels} if labels else {}
    return replace(
        result,
        track_ids=out_ids.astype(result.track_ids.dtype, copy=False),
        boxes_xyxy=np.array(
            [[*boxes[rows, :2].min(0), *boxes[rows, 2:].max(0)] for rows in groups], boxes.dtype
        ).reshape(-1, 4),
        scores=np.array([result.scores[rows].max() for rows in groups], result.scores.dtype),
        labels=np.array(
            [label_of.get(int(tid), result.labels[b]) for tid, b in zip(out_ids, best)],
            result.labels.dtype,
        ),
        masks=np.stack([result.masks[rows].any(0) for rows in groups]),
        mask_scores=np.array(
            [result.mask_scores[rows].max() for rows in groups], result.mask_scores.dtype
        ),
        class_probs=None if result.class_probs is None else result.class_probs[best],
    )


def _target_labels(
    result: FrameResult, merge: Mapping[int, int], labels: Mapping[int, int] | None
) -> FrameResult:
    """A frame without any source: only its targets' classes change (to ``labels``), masks are not copied."""
    targets = set(merge.values())
    new = [
        labels[i] if i in targets and labels and i in labels else label
        for i, label in zip(result.track_ids.tolist(), result.labels.tolist())
    ]
    if new == result.labels.tolist():
        return result
    return replace(result, labels=np.array(new, result.labels.dtype))
