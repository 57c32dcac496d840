"""A YouTube-VIS split as ``uvosam ytvis-run`` needs it, read and checked whole before any model loads, and the
dataset category ids of a tracker's classes.

``<root>/<split>.json`` (YouTube-VIS 2019's layout) or ``<root>/<split>/instances.json`` (2021's) holds ``videos``
(each an integer ``id`` and its ``file_names``, relative to ``<root>/<split>/JPEGImages``) and ``categories``
(``{"id", "name"}``). The two releases number their 40 classes differently (2019: 1 = person; 2021: 1 = airplane)
and a tracker's classes are contiguous indices, so results are written under the category ids the annotation file
gives the tracker's class names (``ytvis_category_ids``), never under ``index + 1``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from uvosam.classes import PRESET_DATASETS, dataset_class_names
from uvosam.config import is_integer
from uvosam.errors import InputError, MissingInputError
from uvosam.json_files import read_json
from uvosam.text import count

_EXPECTED = (
    'expected a YouTube-VIS annotation file: a JSON object with a "videos" list, each video with an integer "id" '
    'and "file_names", and a "categories" list of {"id", "name"}; pass the split\'s official JSON'
)


@dataclass(frozen=True)
class YtvisSplit:
    """A YouTube-VIS split read by ``read_ytvis_split``: every video has an integer id (no two alike) and every
    frame it lists exists.

    Attributes:
        annotation_file: the split's JSON.
        images_root: ``<root>/<split>/JPEGImages``, which ``file_names`` are relative to.
        videos: the file's ``videos``, in its order.
        categories: ``(id, name)`` of each of the file's ``categories``, in its order.
    """

    annotation_file: Path
    images_root: Path
    videos: tuple[dict, ...]
    categories: tuple[tuple[int, str], ...]


def read_ytvis_split(ytvis_root: str | Path, split: str) -> YtvisSplit:
    """Read the split's annotation file and check it whole: videos, categories, and a stat of every listed frame
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
    categories = _checked_categories(meta, data)
    _check_frames(meta, images_root, videos)
    return YtvisSplit(meta, images_root, videos, categories)


def _annotation_file(ytvis_root: Path, split: str) -> Path:
    candidates = [ytvis_root / f"{split}.json", ytvis_root / split / "instances.json"]
    meta = next((p for p in candidates if p.is_file()), None)
    if meta is None:
        raise MissingInputError(
            f"no YouTube-VIS {split!r} annotation file in {ytvis_root}: looked for {candidates[0]} (the 2019 "
            f"layout) and {candidates[1]} (the 2021 layout). Expected the YouTube-VIS folder that holds the "
            f"split's JSON there and its frames in {ytvis_root / split / 'JPEGImages'}; pass that folder (command "
            "line: --ytvis-root), or the split it holds (--split)"
        )
    return meta


def _read_json(meta: Path) -> dict:
    data = read_json(meta, _EXPECTED)
    problem = _list_problem(data, "videos")
    if problem is not None:
        raise InputError(f"{meta} {problem}; {_EXPECTED}")
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
            raise InputError(f'{meta}: video {index} of "videos" has {problem}; {_EXPECTED}')
        seen[video["id"]] = index
    return tuple(data["videos"])


def _video_problem(video: object) -> str | None:
    if not isinstance(video, dict):
        return f"no id or file_names (a JSON {type(video).__name__}, not an object)"
    missing = [key for key in ("id", "file_names") if key not in video]
    if missing:
        return f"no {' or '.join(missing)}"
    if not is_integer(video["id"]):
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


def _checked_categories(meta: Path, data: dict) -> tuple[tuple[int, str], ...]:
    problem = _list_problem(data, "categories")
    if problem is None and not data["categories"]:
        problem = 'has an empty "categories" list'
    if problem is not None:
        raise InputError(
            f"{meta} {problem}: the results are written under the dataset's category ids, read from it; "
            f"{_EXPECTED}"
        )
    categories = []
    for index, cat in enumerate(data["categories"]):
        valid = isinstance(cat, dict) and isinstance(cat.get("name"), str)
        if not valid or not is_integer(cat.get("id")):
            raise InputError(
                f'{meta}: category {index} of "categories" is {json.dumps(cat)[:80]}, not an integer "id" '
                f'and a "name"; {_EXPECTED}'
            )
        categories.append((cat["id"], cat["name"]))
    for field, values in (
        ("id", [c[0] for c in categories]),
        ("name", [_key(c[1]) for c in categories]),
    ):
        twice = sorted({str(v) for v in values if values.count(v) > 1})
        if twice:
            raise InputError(f"{meta}: two categories have the {field} {twice[0]}; {_EXPECTED}")
    return tuple(categories)


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
        raise MissingInputError(
            f"{lost} of the {total} frames that {meta} lists are missing, in {count(len(missing), 'video')} "
            f"(ids {', '.join(map(str, list(missing)[:10]))}{' ...' if len(missing) > 10 else ''}); e.g. "
            f"{images_root / first[0]} of video {first_id}. Expected the split's frames under {images_root}: "
            "check --ytvis-root and --split, or unpack the split's JPEGImages there again"
        )


def _key(name: str) -> str:
    """Class names are matched ignoring case only (``Giant_Panda`` is ``giant_panda``; ``giant panda`` is not)."""
    return name.casefold()


def ytvis_category_ids(
    class_names: Sequence[str],
    categories: Sequence[tuple[int, str]],
    *,
    class_agnostic: bool = False,
    tracker: str = "the tracker",
) -> tuple[int, ...]:
    """The dataset category id of each of a tracker's classes (by class index), matched by name ignoring case.

    Args:
        class_names: the tracker's class names, in class-index order (``UVOSAM.class_names``).
        categories: the dataset's ``(id, name)`` (``YtvisSplit.categories``).
        class_agnostic: for a one-class tracker: its class is given the dataset's lowest category id, whatever
            the names (results for a class-agnostic evaluation; the server's per-class AP means nothing then).
        tracker: how the tracker is named in the messages (``"--tracker idol-ytvis19-r50"``).

    Raises:
        ValueError: a class name that no category has (the names, and the preset that fits the dataset, if any;
            for a one-class tracker, what ``class_agnostic`` does), or ``class_agnostic`` with several classes.
    """
    if class_agnostic:
        if len(class_names) != 1:
            raise InputError(
                f"class-agnostic results are for a one-class tracker, but {tracker} has {len(class_names)} "
                "classes: drop the class-agnostic option to write its classes under the dataset's categories"
            )
        return (min(cid for cid, _ in categories),)
    by_name = {_key(name): cid for cid, name in categories}
    unknown = [name for name in class_names if _key(name) not in by_name]
    if unknown:
        raise InputError(_mismatch_message(class_names, unknown, categories, tracker))
    return tuple(by_name[_key(name)] for name in class_names)


def ytvis_classes_not_tracked(
    class_names: Sequence[str], categories: Sequence[tuple[int, str]]
) -> list[str]:
    """The dataset's category names that none of the tracker's classes has (they get no results: AP 0)."""
    tracked = {_key(name) for name in class_names}
    return [name for _, name in categories if _key(name) not in tracked]


_DATASET_NAMES = {"ytvis2019": "YouTube-VIS 2019's", "ytvis2021": "YouTube-VIS 2021's"}


def _mismatch_message(
    class_names: Sequence[str],
    unknown: list[str],
    categories: Sequence[tuple[int, str]],
    tracker: str,
) -> str:
    preset = fitting_preset(categories)
    if preset is not None:
        dataset = PRESET_DATASETS[preset]
        fix = f"pass --tracker {preset}, whose classes these are ({_DATASET_NAMES.get(dataset, dataset)})"
    else:
        fix = "pass a tracker trained on these categories (no released tracker has exactly them)"
    if len(class_names) == 1:
        lowest = min(categories)
        return (
            f"{tracker} has one class ({class_names[0]!r}), which is none of the dataset's "
            f"{len(categories)} categories: YouTube-VIS scores each category apart (AP per class). To be scored, "
            f"{fix}; or pass --class-agnostic to write every result under category {lowest[0]} ({lowest[1]!r}) "
            "anyway, for an evaluation that merges every class into one (the server's AP means nothing then)"
        )
    untracked = ytvis_classes_not_tracked(class_names, categories)
    return (
        f"{tracker}'s classes are not the dataset's: {len(unknown)} of its {len(class_names)} class names are "
        f"none of the {len(categories)} categories ({shown_names(unknown)})"
        + (
            f", and {len(untracked)} categories none of its classes ({shown_names(untracked)})"
            if untracked
            else ""
        )
        + f"; its results would be scored under wrong or no classes: {fix}"
    )


def shown_names(names: list[str]) -> str:
    """Up to 8 of ``names`` for a message, "..." after them if there are more."""
    return ", ".join(names[:8]) + (" ..." if len(names) > 8 else "")


def fitting_preset(categories: Sequence[tuple[int, str]]) -> str | None:
    """The tracker preset whose classes are exactly these categories' names (ignoring case and order), else None."""
    names = {_key(name) for _, name in categories}
    for preset, dataset in PRESET_DATASETS.items():
        if {_key(name) for name in dataset_class_names(dataset)} == names:
            return preset
    return None
