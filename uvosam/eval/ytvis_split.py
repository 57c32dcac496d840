"""A YouTube-VIS split as ``uvosam ytvis-run`` needs it, read and checked whole before any model loads.

``<root>/<split>.json`` (YouTube-VIS 2019's layout) or ``<root>/<split>/instances.json`` (2021's) holds ``videos``
(each an integer ``id`` and its ``file_names``, relative to ``<root>/<split>/JPEGImages``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from uvosam.text import count

_EXPECTED = (
    'expected a YouTube-VIS annotation file: a JSON object with a "videos" list, each video with an integer "id" '
    'and "file_names"; pass the split\'s official JSON'
)


@dataclass(frozen=True)
class YtvisSplit:
    """A YouTube-VIS split read by ``read_ytvis_split``: every video has an integer id (no two alike) and every
    frame it lists exists.

    Attributes:
        annotation_file: the split's JSON.
        images_root: ``<root>/<split>/JPEGImages``, which ``file_names`` are relative to.
        videos: the file's ``videos``, in its order.
    """

    annotation_file: Path
    images_root: Path
    videos: tuple[dict, ...]


def read_ytvis_split(ytvis_root: str | Path, split: str) -> YtvisSplit:
    """Read the split's annotation file and check it whole: videos, and a stat of every listed frame
    (about 20k for the valid set: well under a second on a local disk), so that no problem turns up after hours.

    Raises:
        FileNotFoundError: no annotation file (both layouts' paths named), or listed frames are missing (how many,
            in which videos, an example path).
        ValueError: the file is not a YouTube-VIS annotation file (what is wrong, with the video's index).
    """
    ytvis_root = Path(ytvis_root)
    meta = _annotation_file(ytvis_root, split)
    data = _read_json(meta)
    images_root = ytvis_root / split / "JPEGImages"
    videos = _checked_videos(meta, data)
    _check_frames(meta, images_root, videos)
    return YtvisSplit(meta, images_root, videos)


def _annotation_file(ytvis_root: Path, split: str) -> Path:
    candidates = [ytvis_root / f"{split}.json", ytvis_root / split / "instances.json"]
    meta = next((p for p in candidates if p.is_file()), None)
    if meta is None:
        raise FileNotFoundError(
            f"no YouTube-VIS {split!r} annotation file in {ytvis_root}: looked for {candidates[0]} (the 2019 "
            f"layout) and {candidates[1]} (the 2021 layout). Expected the YouTube-VIS folder that holds the "
            f"split's JSON there and its frames in {ytvis_root / split / 'JPEGImages'}; pass that folder (command "
            "line: --ytvis-root), or the split it holds (--split)"
        )
    return meta


def _read_json(meta: Path) -> dict:
    try:
        data = json.loads(meta.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{meta} is not valid JSON ({err}); {_EXPECTED}") from None
    problem = _list_problem(data, "videos")
    if problem is not None:
        raise ValueError(f"{meta} {problem}; {_EXPECTED}")
    return data


def _list_problem(data: object, key: str) -> str | None:
    """What a YouTube-VIS annotation file holds instead of a ``key`` list (for the message), else ``None``."""
    if not isinstance(data, dict):
        return f"holds a JSON {type(data).__name__}, not an object"
    if key not in data:
        return f'has no "{key}" key (its keys: {", ".join(sorted(data)[:10]) or "none"})'
    if not isinstance(data[key], list):
        return f'has "{key}" as a {type(data[key]).__name__}, not a list'
    return None


def _checked_videos(meta: Path, data: dict) -> tuple[dict, ...]:
    seen: dict[int, int] = {}
    for index, video in enumerate(data["videos"]):
        problem = _video_problem(video)
        if problem is None and video["id"] in seen:
            problem = f"the id {video['id']} of video {seen[video['id']]} too"
        if problem is not None:
            raise ValueError(f'{meta}: video {index} of "videos" has {problem}; {_EXPECTED}')
        seen[video["id"]] = index
    return tuple(data["videos"])


def _video_problem(video: object) -> str | None:
    if not isinstance(video, dict):
        return f"no id or file_names (a JSON {type(video).__name__}, not an object)"
    missing = [key for key in ("id", "file_names") if key not in video]
    if missing:
        return f"no {' or '.join(missing)}"
    if not isinstance(video["id"], int) or isinstance(video["id"], bool):
        return f"the id {video['id']!r}, not an integer (the results name videos by it)"
    names = video["file_names"]
    if not isinstance(names, list) or not names:
        return (
            "no file_names"
            if names in ([], "", None)
            else f"file_names as a {type(names).__name__}"
        )
    if not all(isinstance(name, str) and name for name in names):
        return "a file name that is not a path (in file_names)"
    return None


def _check_frames(meta: Path, images_root: Path, videos: tuple[dict, ...]) -> None:
    """One stat per listed frame; every missing one is counted, and the message gives the first."""
    missing: dict[int, list[str]] = {}
    total = 0
    for video in videos:
        total += len(video["file_names"])
        gone = [name for name in video["file_names"] if not (images_root / name).is_file()]
        if gone:
            missing[video["id"]] = gone
    if missing:
        first_id, first = next(iter(missing.items()))
        lost = sum(len(names) for names in missing.values())
        raise FileNotFoundError(
            f"{lost} of the {total} frames that {meta} lists are missing, in {count(len(missing), 'video')} "
            f"(ids {', '.join(map(str, list(missing)[:10]))}{' ...' if len(missing) > 10 else ''}); e.g. "
            f"{images_root / first[0]} of video {first_id}. Expected the split's frames under {images_root}: "
            "check --ytvis-root and --split, or unpack the split's JPEGImages there again"
        )
