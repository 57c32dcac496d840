"""Checks of the output paths the commands make before any model loads or any data is read.

A run can take hours (a YouTube-VIS split, DAVIS with SAM ViT-H on a CPU); an output path that cannot be written
must stop it at the start, not after the work. Each check raises ``ValueError``, which ``uvosam_cli.main`` prints as
one line with exit code 2.
"""

from __future__ import annotations

import os
from pathlib import Path


def check_output_file(
    path: Path, option: str, *, example_name: str, beside: tuple[Path, ...] = ()
) -> None:
    """Raise ``ValueError`` unless a file can be written at ``path``: not an existing folder, and under a folder
    that exists (writable) or can be created. An existing file is fine (it is replaced).

    ``option``: how the message names the path (``"--out"``); ``example_name``: a file name to suggest inside the
    folder when ``path`` is one (``"results.json"``); ``beside``: further files the command writes next to it (a
    zip, a record), which must not be existing folders either.
    """
    if path.is_dir():
        raise ValueError(
            f"{option} {path} is a folder; expected the path of the file to write: pass e.g. "
            f"{option} {path / example_name}"
        )
    for other in beside:
        if other.is_dir():
            raise ValueError(
                f"{option} {path}: {other.name} is written beside it, but {other} is a folder; move that folder "
                f"away, or pass another {option}"
            )
    _check_parent_folder(path, option)


def check_output_folder(path: Path, option: str) -> None:
    """Raise ``ValueError`` unless ``path`` is a writable folder or can be created as one."""
    if path.exists() and not path.is_dir():
        raise ValueError(
            f"{option} {path} is a file; expected an output folder (created if missing): pass another {option}, "
            f"or move the file away"
        )
    if path.is_dir():
        _check_writable(path, path, option)
        return
    _check_parent_folder(path, option)


def _check_parent_folder(path: Path, option: str) -> None:
    """The nearest existing folder above ``path`` must be a writable folder (the rest is created)."""
    parent = Path(os.path.abspath(path)).parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise ValueError(
            f"{option} {path} cannot be written: {parent} is a file, not a folder, so nothing can be created "
            f"under it; pass a {option} path outside it, or move {parent} away"
        )
    _check_writable(parent, path, option)


def _check_writable(folder: Path, path: Path, option: str) -> None:
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ValueError(
            f"{option} {path} cannot be written: no permission to write in {folder}; pass a {option} path in "
            "a folder you can write to"
        )
