"""What ``rerender`` takes as its track edits, checked and made plain, so that a wrong one is refused with what to
write instead: ``keep_ids`` a list of track ids, ``merge`` ``{source: target}`` and ``split`` ``{track_id: [frames]}``,
each a mapping (ids and frames as integers or their digits, as ``run.json`` writes them) or its text form
(``uvosam.track_edit.parse_merge`` / ``parse_split``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from uvosam.config import is_integer
from uvosam.errors import InputError
from uvosam.track_edit import MAX_SPLITS, parse_merge, parse_split


def _integral(value: object) -> bool:
    """An integer (numpy's too) or its digits as text (``run.json`` writes merge sources and split frames so)."""
    return is_integer(value) or (isinstance(value, str) and value.strip().isdecimal())


def _track_id(what: str, value: object) -> int:
    """A track id given as an integer (numpy's too) or its digits (``run.json`` writes merge sources as text)."""
    if _integral(value):
        return int(value)
    raise TypeError(f"rerender: {what} takes track ids (integers); got {value!r}")


def track_ids(keep_ids: object) -> list[int] | None:
    if keep_ids is None:
        return None
    if isinstance(keep_ids, str | bytes) or not isinstance(keep_ids, Iterable):
        one = f" (one track: [{keep_ids}])" if is_integer(keep_ids) else ""
        raise TypeError(
            f"rerender: keep_ids takes a list of track ids, e.g. [1, 3] (None: all); got {keep_ids!r}{one}"
        )
    return [_track_id("keep_ids", i) for i in keep_ids]


def merge_map(merge: object) -> dict[int, int] | None:
    """``merge`` as ``{source: target}``: a mapping, or its text form ``"3>1, 5>1"`` (``track_edit.parse_merge``)."""
    if merge is None:
        return None
    if isinstance(merge, str):
        return parse_merge(merge)
    if not isinstance(merge, Mapping):
        raise TypeError(
            "rerender: merge takes {source_id: target_id}, e.g. {3: 1, 5: 1}, or the same as text, '3>1, 5>1'; "
            f"got {type(merge).__name__}"
        )
    return {_track_id("merge", k): _track_id("merge", v) for k, v in merge.items()}


def split_map(split: object) -> dict[int, list[int]] | None:
    """``split`` as ``{track_id: [frames]}``: a mapping (a frame alone for one split; keys and frames may be digits,
    as ``run.json`` writes them), or its text form ``"3@120, 5@40"`` (``track_edit.parse_split``)."""
    if split is None:
        return None
    if isinstance(split, str):
        return parse_split(split)
    if not isinstance(split, Mapping):
        raise TypeError(
            "rerender: split takes {track_id: [frames]}, e.g. {3: [120], 5: [40]}, or the same as text, "
            f"'3@120, 5@40'; got {type(split).__name__}"
        )
    pairs: list[str] = []
    for track, frames in split.items():
        one = is_integer(frames) or isinstance(frames, str)
        if not one and not isinstance(frames, Iterable):
            raise TypeError(f"rerender: split takes frames (integers) per track; got {frames!r}")
        for frame in [frames] if one else frames:
            if not _integral(frame):
                raise TypeError(f"rerender: split takes frames (integers) per track; got {frame!r}")
            track_id = _track_id("split", track)
            if track_id < 0 or int(frame) < 0:
                raise InputError(
                    f"rerender: split takes track ids and frames >= 0 (frames counted from 0); got {track!r}: "
                    f"{frame!r}"
                )
            pairs.append(f"{track_id}@{int(frame)}")
            if len(pairs) > MAX_SPLITS:
                raise InputError(
                    f"rerender: split: more than {MAX_SPLITS:,} splits given; one re-render takes at most "
                    f"{MAX_SPLITS:,}."
                )
    return parse_split(", ".join(pairs))  # its checks and messages, as for the text
