"""The names a re-render's files are served under: the run's rule (``<video>_<style>.mp4``, ``<video>_uvosam.zip``)
with what the re-render did after the video's name, ``<video>_keep-1to3-5_merge-2into1_<style>.mp4``. Served under
the run's own names, a browser saved a re-render's zip as "name (1).zip" beside the run's, and nothing told them
apart. The job's own files keep the run's names (the zip's folders too: ``davis/<video>/`` is a DAVIS sequence's
name); the served ones are links to them, beside them. Nothing here imports gradio.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from uvosam.job_types import JobResult
from uvosam.text import id_ranges

MAX_EDITS_CHARS = 48
"""The most characters of the edits' part of a name; a longer one is cut and ends with a hash of the whole (two
different re-renders keep two names)."""


def edits_tag(
    kept: Iterable[int],
    *,
    merge: Mapping[int, int] | None = None,
    split: Mapping[int, Sequence[int]] | None = None,
    min_score: float = 0.0,
) -> str:
    """What a re-render did, as a part of a file name (letters, digits, ``-``, ``_`` and ``.``: portable, as
    ``uvosam.portable_names.safe_name`` makes them): the tracks it ``kept`` (its result's ids, runs of three or more
    as ``1to3``), then its ``split`` (``split-3at120``), ``merge`` (``merge-2into1``) and a ``min_score`` over 0
    (``min0.7``). ``keep-1to3-5_merge-2into1``."""
    parts = [f"keep-{id_ranges(sorted(set(kept)), to='to', sep='-') or 'none'}"]
    if split:
        parts.append(
            "split-" + "-".join(f"{t}at{f}" for t in sorted(split) for f in sorted(split[t]))
        )
    if merge:
        parts.append("merge-" + "-".join(f"{s}into{merge[s]}" for s in sorted(merge)))
    if min_score > 0:
        parts.append(f"min{min_score:g}")
    tag = "_".join(parts)
    if len(tag) <= MAX_EDITS_CHARS:
        return tag
    digest = hashlib.sha1(tag.encode()).hexdigest()[:8]
    return f"{tag[: MAX_EDITS_CHARS - 9].rstrip('-_.')}-{digest}"


def renamed(path: Path, video_name: str, tag: str) -> Path:
    """A job's file ``path`` (named ``<video_name>_...``, as a job names its files) under ``<video_name>_<tag>_...``,
    beside it: a hard link (a copy where the file system has none), replaced if there. The job's folder holds it
    and goes with it.

    Raises:
        ValueError: ``path``'s name does not start with ``video_name`` + ``_`` (not a file of that job).
    """
    if not path.name.startswith(f"{video_name}_"):
        raise ValueError(
            f"renamed: expected a file named {video_name}_... (the job's video name); got {path.name}"
        )
    target = path.with_name(f"{video_name}_{tag}{path.name[len(video_name) :]}")
    target.unlink(missing_ok=True)
    try:
        os.link(path, target)
    except OSError:
        shutil.copyfile(path, target)
    return target


def renamed_results(result: JobResult, tag: str) -> tuple[Path, Path]:
    """A re-render's mp4 and zip under names with its edits' ``tag`` (``edits_tag``): ``renamed``, each by the same
    rule."""
    return (
        renamed(result.overlay_mp4, result.video_name, tag),
        renamed(result.zip_path, result.video_name, tag),
    )
