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
(with a frame stride of 2, frame 60 is the input's frame 120). New ids follow the run's largest, one per split, in
the order of the split frames, then of the track ids (``split_new_ids``), as the tracker's own ids rise with time and
however the splits are written: ``3@120, 5@40, 3@300`` in a run whose largest id is 7 make 5 from frame 40 on 8, 3
from 120 on 9 and 3 from 300 on 10. A re-render splits first: its keep ids and merge name the ids after the split, so
that split and merge repair an id switch in one go (``3@120`` and ``8>5`` in a run up to id 7: track 3 up to frame
119, track 5 with what was 3 from frame 120 on). ``resolve_edits`` checks a re-render's edits against the run's
tracks in one pass over them.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from itertools import pairwise

import numpy as np

from uvosam.errors import InputError
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
MAX_SPLITS = 1000
"""The most splits one re-render takes (more than any video needs): ``parse_split`` refuses more, and a longer text
than ``MAX_SPLIT_CHARS`` before reading it."""
MAX_SPLIT_CHARS = 40 * MAX_SPLITS  # "999999999999999999@999999999999999999, " is 39


def _pairs(
    text: str, pattern: re.Pattern[str], setting: str, syntax: str
) -> Iterator[tuple[int, int]]:
    """The number pairs of ``text`` (``pattern``'s two groups), one by one, commas, semicolons or spaces between
    them; ``ValueError`` "<setting>: expected <syntax>; could not read ..." at the first thing that is none."""
    pos = 0
    while pos < len(text):
        pos = _SEPARATORS.match(text, pos).end()
        if pos == len(text):
            return
        pair = pattern.match(text, pos)
        if pair is None:
            raise InputError(f"{setting}: expected {syntax}; could not read {text[pos:]!r}.")
        yield int(pair.group(1)), int(pair.group(2))
        pos = pair.end()


def parse_merge(text: str | None) -> dict[int, int]:
    """``"3>1, 5>1"`` (also ``->`` or ``→``; commas, semicolons or spaces between pairs) as ``{3: 1, 5: 1}``.

    Raises:
        ValueError: anything else in the text, or one source given two targets.
    """
    merge: dict[int, int] = {}
    for source, target in _pairs((text or "").strip(), _PAIR, "Merge tracks", MERGE_SYNTAX):
        if merge.get(source, target) != target:
            raise InputError(
                f"Merge tracks: track {source} is merged into both {merge[source]} and {target}; "
                "give each track one target."
            )
        merge[source] = target
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
                raise InputError(
                    f"Merge tracks: there is no track {track} in this run (its tracks: {listed})."
                )
        if source == target:
            raise InputError(f"Merge tracks: track {source} is merged into itself; leave it out.")
        if merge.get(target) == source:
            raise InputError(
                f"Merge tracks: {source}>{target} and {target}>{source} form a cycle; keep the one whose id "
                f"should stay (e.g. only {source}>{target})."
            )
        if target in merge:
            raise InputError(
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
    each track split at these frames, tracks in the order first named, each one's frames ascending.

    Raises:
        ValueError: anything else in the text, one split given twice, more than ``MAX_SPLITS`` splits or a text
            longer than ``MAX_SPLIT_CHARS``.
    """
    text = (text or "").strip()
    if len(text) > MAX_SPLIT_CHARS:
        raise InputError(
            f"Split tracks: the text is {len(text):,} characters long; it may be at most {MAX_SPLIT_CHARS:,} "
            f"({MAX_SPLITS:,} splits, the most one re-render takes)."
        )
    splits: dict[int, list[int]] = {}
    given: set[tuple[int, int]] = set()
    for track, frame in _pairs(text, _SPLIT, "Split tracks", SPLIT_SYNTAX):
        if (track, frame) in given:
            raise InputError(f"Split tracks: {track}@{frame} is given twice; give each split once.")
        given.add((track, frame))
        splits.setdefault(track, []).append(frame)
    if len(given) > MAX_SPLITS:
        raise InputError(
            f"Split tracks: {len(given):,} splits given; one re-render takes at most {MAX_SPLITS:,}."
        )
    return {track: sorted(frames) for track, frames in splits.items()}


def split_new_ids(
    splits: Mapping[int, Sequence[int]], track_ids: Iterable[int]
) -> dict[tuple[int, int], int]:
    """``{(track_id, frame): new_id}``: the ids after the largest of ``track_ids`` (the run's), one per split, in
    the order of the split frames, then of the track ids (however ``splits`` is ordered), e.g. ``{3: [120, 300],
    5: [40]}`` in a run whose largest id is 7: ``{(5, 40): 8, (3, 120): 9, (3, 300): 10}``."""
    start = max((int(i) for i in track_ids), default=0) + 1
    pairs = sorted((int(frame), int(track)) for track, frames in splits.items() for frame in frames)
    return {(track, frame): start + n for n, (frame, track) in enumerate(pairs)}


def split_id(
    track_id: int,
    frame: int,
    splits: Mapping[int, Sequence[int]],
    new_ids: Mapping[tuple[int, int], int],
) -> int:
    """The id of the run's track ``track_id`` in ``frame`` once split: the new id of its last split at or before
    ``frame``; ``track_id`` before its first split (and for a track not split). Each track's frames in ``splits``
    are ascending (as ``parse_split`` gives them and ``check_split`` checks)."""
    frames = splits.get(track_id, ())
    before = bisect_right(frames, frame)
    return new_ids[(track_id, frames[before - 1])] if before else track_id


def check_split(
    splits: Mapping[int, Sequence[int]], index: TrackIndex, *, stride: int = 1
) -> dict[tuple[int, int], int]:
    """Refuse a split of a track not in the run ``index``, at a frame outside the track's span (at its first frame or
    before, after its last) or one that leaves a part without any frame; else the new ids (``split_new_ids``).
    ``stride``: the run's frame stride, which a refusal of a frame explains (frames count the processed frames).

    Raises:
        ValueError: naming the split, and the run's tracks or the track's frames; a track's frames not ascending.
    """
    spans: dict[int, tuple[int, int]] = {}
    for frame, ids, _ in index:
        for i in ids:
            spans[int(i)] = (spans.get(int(i), (frame, frame))[0], frame)
    listed = ", ".join(map(str, sorted(spans))) or "none"
    for track, frames in splits.items():
        if track not in spans:
            raise InputError(
                f"Split tracks: there is no track {track} in this run (its tracks: {listed})."
            )
        if any(a >= b for a, b in pairwise(frames)):
            raise InputError(
                f"Split tracks: track {track}'s frames {list(frames)} are not ascending; give each frame once, "
                "in ascending order (parse_split does)."
            )
        first, last = spans[track]
        for frame in frames:
            if not first < frame <= last:
                raise InputError(
                    f"Split tracks: cannot split track {track} at frame {frame}: it is seen from frame {first} "
                    f"to {last}; {_split_range(first, last)}{_strided(stride)}."
                )
    new_ids = split_new_ids(splits, spans)
    seen = set(split_labels(index, splits, new_ids))
    for (track, frame), new in new_ids.items():
        if new not in seen:
            until = min((f for f in splits[track] if f > frame), default=None)
            raise InputError(
                f"Split tracks: track {track} is not seen from frame {frame} to its split at {until}, so "
                f"{track}@{frame} would make an empty track; leave it out{_strided(stride)}."
            )
    return new_ids


def _strided(stride: int) -> str:
    """With a frame stride over 1: how split frames count (a file's number is the input's frame)."""
    if stride <= 1:
        return ""
    return (
        f" (frames count the processed frames, as tracks.csv and the timeline do: with the run's frame stride "
        f"{stride}, frame k is the input's frame {stride}k)"
    )


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


@dataclass(frozen=True)
class TrackEdits:
    """A re-render's edits checked against its run's tracks (``resolve_edits``).

    Attributes:
        read: the run's tracks to read (None: all).
        keep_ids: the ids once split asked to keep (None: all; with ``keep_split_parts``, the parts of those named).
        keep: the ids once split to keep, before the merge: a kept merge target's sources too (None: all).
        labels: every id once split -> its class index in the first frame it appears in.
        new_ids: the split's new ids, ``{(track_id, frame): new_id}`` (``check_split``; empty without a split).
    """

    read: set[int] | None
    keep_ids: set[int] | None
    keep: set[int] | None
    labels: dict[int, int]
    new_ids: dict[tuple[int, int], int]


def resolve_edits(
    index: Iterable[tuple[int, Sequence[int], Sequence[int]]],
    *,
    keep_ids: Iterable[int] | None = None,
    merge: Mapping[int, int] | None = None,
    split: Mapping[int, Sequence[int]] | None = None,
    keep_split_parts: bool = False,
    stride: int = 1,
) -> TrackEdits:
    """Check a re-render's split, keep ids and merge against its run's track ``index`` (a ``TrackIndex``, read
    once), in that order.

    Args:
        keep_ids: the ids once split to keep (None: all); with ``keep_split_parts``, the run's ids, each kept with the
            parts the split gives new ids (``with_split_parts``: the app's *Tracks to keep* lists the run's ids).
        merge: ``{source_id: target_id}`` of ids once split (``check_merge``).
        split: ``{track_id: [frames]}`` (``parse_split``; ``check_split``, which ``stride`` is for).

    Raises:
        ValueError: ``check_split``'s, ``check_merge``'s, or a keep id the run has no track of ("keep_ids: ...").
    """
    index = list(index)
    new_ids = check_split(split, index, stride=stride) if split else {}
    labels = split_labels(index, split or {}, new_ids)
    keep = None if keep_ids is None else {int(i) for i in keep_ids}
    known = {int(i) for _, ids, _ in index for i in ids} if keep_split_parts else labels.keys()
    unknown = sorted(keep - known) if keep else []
    if unknown:  # e.g. [12] meant as [1, 2]: not a silently empty video
        once_split = " once split" if split and not keep_split_parts else ""
        raise InputError(
            f"keep_ids: there is no track {unknown[0]} in this run (its tracks{once_split}: "
            f"{', '.join(map(str, sorted(known))) or 'none'})"
        )
    if keep is not None and keep_split_parts:
        keep = with_split_parts(keep, new_ids)
    if merge:
        check_merge(merge, labels)
    kept = None if keep is None else kept_tracks(keep, merge or {}, labels)
    read = None if kept is None else unsplit_ids(kept, new_ids)
    return TrackEdits(read=read, keep_ids=keep, keep=kept, labels=labels, new_ids=new_ids)
