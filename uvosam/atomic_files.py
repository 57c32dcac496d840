"""Atomic file writes: a file is written beside its destination as ``<name>.tmp`` (a name too long for that: a short
``.<hash>.tmp``), then renamed over it
(``os.replace``), so a reader sees the old file or the new one, never half of one.

Used by the exports (``uvosam.export_formats`` and ``uvosam.export``'s parts), ``run.json`` (``uvosam.provenance``),
the mask cache (``uvosam.mask_cache``), the YouTube-VIS submission (``uvosam.eval.runner``) and the command line's
score and track files (``uvosam_cli.davis``, ``clip_score``, ``track``). It depends on nothing in uvosam but
``uvosam.cleanup`` (which depends on nothing), so any module may use it.

No ``fsync``: a write is atomic for readers and against a failure of the writing process, not against a power cut
(none of these files is worth the wait: a lost export is made again).
"""

from __future__ import annotations

import functools
import hashlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from uvosam.cleanup import best_effort

TMP_SUFFIX = ".tmp"
"""What ``tmp_path`` adds to a file's name; a name ending in it is a file still being written."""
NAME_MAX = 255
"""The longest file name, in bytes, of the usual file systems (ext4, XFS, APFS; NTFS: 255 characters)."""


def tmp_path(path: str | Path) -> Path:
    """Where ``path`` is written before it is renamed: ``<path>.tmp``, in the same folder (so on the same file
    system, where ``os.replace`` is atomic). A name that ``.tmp`` would make longer than ``NAME_MAX`` bytes (a
    frame named with 252 bytes) gets ``.<16 hex digits of its hash>.tmp`` instead."""
    path = Path(path)
    name = path.name + TMP_SUFFIX
    if len(os.fsencode(name)) > NAME_MAX:
        name = f".{hashlib.sha256(os.fsencode(path.name)).hexdigest()[:16]}{TMP_SUFFIX}"
    return path.with_name(name)


@contextmanager
def replacing(path: str | Path) -> Iterator[Path]:
    """Write ``path`` atomically: the block writes the yielded ``tmp_path(path)``, which replaces ``path`` when the
    block ends without an error (the block must have closed the file by then).

    If the block raises (also ``KeyboardInterrupt`` or a closed generator), the half-written ``<path>.tmp`` is
    deleted (a deletion that fails is logged: ``best_effort``), ``path`` is untouched (its old content, or no
    file) and the block's error is raised.

    Example::

        with replacing(out / "list.json") as tmp, open(tmp, "w", encoding="utf-8") as handle:
            handle.write("[]")

    Args:
        path: the destination (its folder must exist).
    """
    tmp = tmp_path(path)
    try:
        yield tmp
    except BaseException:
        best_effort(f"writing {tmp.name}", functools.partial(Path.unlink, tmp, missing_ok=True))
        raise
    os.replace(tmp, path)


def write_bytes(path: str | Path, data: bytes) -> None:
    """``data`` at ``path``, atomically (``replacing``)."""
    with replacing(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: str | Path, text: str, *, encoding: str, errors: str | None = None) -> None:
    """``text`` at ``path``, atomically (``replacing``), encoded as ``Path.write_text`` does with ``encoding`` and
    ``errors`` (None: strict)."""
    with replacing(path) as tmp:
        tmp.write_text(text, encoding=encoding, errors=errors)
