"""Editing a finished run at the track level: merging tracks whose identity broke into one, splitting a track that
went from one object to another.

A tracker sometimes splits one object into two ids (after an occlusion, a fast move, a scene cut). ``merge_tracks``
joins them frame by frame so that everything made from the results (video, DAVIS PNGs, cut-outs, JSON) shows one
track; ``rerender(merge=...)`` applies it to a cached run without running any model.

A merge is a mapping ``{source_id: target_id}``: every source track becomes part of its target, which keeps its id
and its class. Chains (``3 -> 2 -> 1``) are refused rather than guessed: map each source to the final id.

A tracker also gives one id to two objects in turn (after a scene cut, two similar objects crossing). ``split_tracks``
gives a track's rows from a frame on to a new id: ``{track_id: [frames]}`` (``parse_split("3@120, 5@40")``).
Frames are numbered as tracks.csv, the timeline and the app's track table number them: the processed frames from 0
(with a frame stride of 2, frame 60 is the input's frame 120). New ids follow the run's largest id, one per split in
the order given, track by track (``split_new_ids``: ``3@120, 3@300, 5@40`` in a run whose largest id is 7 make 8, 9
and 10; ``3@120, 5@40, 3@300`` too: both are ``{3: [120, 300], 5: [40]}``). A re-render splits first: its keep ids
and merge name the ids after the split, so that split and merge repair an id switch in one go (``3@120`` and
``8>5``: track 3 up to frame 119, track 5 with what was 3 from frame 120 on).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace

import numpy as np

from uvosam.types import FrameResult

_PAIR = re.compile(r"(\d{1,18})\s*(?:->|→|>)\s*(\d{1,18})(?!\d)")  # int64 ids; no 4300-digit int()
_SEPARATORS = re.compile(r"[\s,;]*")
MERGE_SYNTAX = (
    "pairs 'source>target' separated by commas, e.g. '3>1, 5>1' (tracks 3 and 5 become part of 1)"
)
_SPLIT = re.compile(r"(\d{1,18})\s*@\s*(\d{1,18})(?!\d)")
SPLIT_SYNTAX = (
    "'track@frame' separated by commas, e.g. '3@120, 5@40' (track 3 from frame 120 on and track 5 from frame 40 "
    "on get new ids; frames as the timeline and tracks.csv number them)"
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


TrackIndex = Sequence[tuple[int, Sequence[int], Sequence[int]]]
"""A run's track ids without its masks: per frame in order, ``(frame_index, track_ids, labels)``
(``MaskCache.iter_track_ids``)."""


def parse_split(text: str | None) -> dict[int, list[int]]:
    """``"3@120, 5@40, 3@300"`` (commas, semicolons or spaces between splits) as ``{3: [120, 300], 5: [40]}``:
    each track split at these frames, tracks in the order first named, each one's frames in the order given.

    Raises:
        ValueError: anything else in the text, or one split given twice.
    """
    splits: dict[int, list[int]] = {}
    text = (text or "").strip()
    pos = 0
    while pos < len(text):
        pos = _SEPARATORS.match(text, pos).end()
        if pos == len(text):
            break
        split = _SPLIT.match(text, pos)
        if split is None:
            raise ValueError(
                f"Split tracks: expected {SPLIT_SYNTAX}; could not read {text[pos:]!r}."
            )
        track, frame = int(split.group(1)), int(split.group(2))
        if frame in splits.get(track, ()):
            raise ValueError(f"Split tracks: {track}@{frame} is given twice; give each split once.")
        splits.setdefault(track, []).append(frame)
        pos = split.end()
    return splits


def split_new_ids(
    splits: Mapping[int, Sequence[int]], track_ids: Iterable[int]
) -> dict[tuple[int, int], int]:
    """``{(track_id, frame): new_id}``: the ids after the largest of ``track_ids`` (the run's), one per split in
    the order of ``splits`` (track by track, each one's frames in their order), e.g. ``{3: [120, 300], 5: [40]}``
    in a run whose largest id is 7: ``{(3, 120): 8, (3, 300): 9, (5, 40): 10}``."""
    start = max((int(i) for i in track_ids), default=0) + 1
    pairs = [(int(track), int(frame)) for track, frames in splits.items() for frame in frames]
    return {pair: start + n for n, pair in enumerate(pairs)}


def split_id(
    track_id: int,
    frame: int,
    splits: Mapping[int, Sequence[int]],
    new_ids: Mapping[tuple[int, int], int],
) -> int:
    """The id of the run's track ``track_id`` in ``frame`` once split: the new id of its last split at or before
    ``frame``; ``track_id`` before its first split (and for a track not split)."""
    before = [f for f in splits.get(track_id, ()) if f <= frame]
    return new_ids[(track_id, max(before))] if before else track_id


def check_split(
    splits: Mapping[int, Sequence[int]], index: TrackIndex
) -> dict[tuple[int, int], int]:
    """Refuse a split of a track not in the run ``index``, at a frame outside the track's span (at its first frame or
    before, after its last) or one that leaves a part without any frame; else the new ids (``split_new_ids``).

    Raises:
        ValueError: naming the split, and the run's tracks or the track's frames.
    """
    spans: dict[int, tuple[int, int]] = {}
    for frame, ids, _ in index:
        for i in ids:
            spans[int(i)] = (spans.get(int(i), (frame, frame))[0], frame)
    listed = ", ".join(map(str, sorted(spans))) or "none"
    for track, frames in splits.items():
        if track not in spans:
            raise ValueError(
                f"Split tracks: there is no track {track} in this run (its tracks: {listed})."
            )
        first, last = spans[track]
        for frame in frames:
            if not first < frame <= last:
                raise ValueError(
                    f"Split tracks: cannot split track {track} at frame {frame}: it is seen from frame {first} "
                    f"to {last}; {_split_range(first, last)}."
                )
    new_ids = split_new_ids(splits, spans)
    seen = set(split_labels(index, splits, new_ids))
    for (track, frame), new in new_ids.items():
        if new not in seen:
            until = min((f for f in splits[track] if f > frame), default=None)
            raise ValueError(
                f"Split tracks: track {track} is not seen from frame {frame} to its split at {until}, so "
                f"{track}@{frame} would make an empty track; leave it out."
            )
    return new_ids


def _split_range(first: int, last: int) -> str:
    """Where a track seen from ``first`` to ``last`` can be split."""
    if first == last:
        return "one frame has nothing to split"
    return f"split it at a frame from {first + 1} to {last} (the part from there on gets a new id)"


def split_labels(
    index: TrackIndex, splits: Mapping[int, Sequence[int]], new_ids: Mapping[tuple[int, int], int]
) -> dict[int, int]:
    """Every track id once split -> its class index in the first frame it appears in (as
    ``MaskCache.track_labels`` for the run's ids)."""
    labels: dict[int, int] = {}
    for frame, ids, classes in index:
        for i, label in zip(ids, classes):
            labels.setdefault(split_id(int(i), frame, splits, new_ids), int(label))
    return labels


def split_tracks(
    result: FrameResult, splits: Mapping[int, Sequence[int]], new_ids: Mapping[tuple[int, int], int]
) -> FrameResult:
    """One frame with each split track's row under its id there (``split_id``): from a split frame on, the row
    (mask, box, scores, label) is the new id's.

    Args:
        result: the frame; its ``frame_index`` is the frame the splits count.
        splits: ``{track_id: [frames]}`` (``parse_split``), checked with ``check_split``.
        new_ids: ``{(track_id, frame): new_id}`` (``check_split`` / ``split_new_ids``).

    Returns:
        A new ``FrameResult`` sharing ``result``'s arrays but its ids; ``result`` itself when no id changes.
    """
    ids = [split_id(int(i), result.frame_index, splits, new_ids) for i in result.track_ids.tolist()]
    if ids == result.track_ids.tolist():
        return result
    return replace(result, track_ids=np.array(ids, result.track_ids.dtype))


def unsplit_ids(track_ids: Iterable[int], new_ids: Mapping[tuple[int, int], int]) -> set[int]:
    """The run's tracks whose rows make the tracks ``track_ids`` (ids once split): what to read of a run to keep
    them."""
    origin = {new: track for (track, _), new in new_ids.items()}
    return {origin.get(int(i), int(i)) for i in track_ids}


def with_split_parts(track_ids: Iterable[int], new_ids: Mapping[tuple[int, int], int]) -> set[int]:
    """The run's tracks ``track_ids`` and the parts split off them (their new ids): to keep a run's tracks whole
    where only the run's ids can be named (the app's *Tracks to keep*)."""
    ids = {int(i) for i in track_ids}
    return ids | {new for (track, _), new in new_ids.items() if track in ids}
