"""The folders a job creates for its output, so that a job that fails leaves none of them behind empty.

A run or re-render into ``work_dir`` creates ``work_dir`` and the folders above it that are missing. One that fails
(or is stopped) removes those it left empty (``MadeFolders``), and a full disk's (or a read-only one's...)
``OSError`` that names no file is raised naming ``work_dir`` (``made_for``: ``uvosam.job``'s). The command line keeps
the same record for its ``--out`` (``uvosam_cli.interrupts.OutputFolder``), made before the command checks anything.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from uvosam.errors import write_problem


def exists(path: Path) -> bool:
    """``path.exists()``; True where that cannot be told (a folder above it cannot be searched: a write there fails
    with its own message), so that nothing there is taken for a folder a job made."""
    try:
        return path.exists()
    except OSError:
        return True


class MadeFolders:
    """The folders a write into ``folder`` may create, as they were before it: ``folder`` and those above it that
    are missing (none when ``folder`` exists)."""

    def __init__(self, folder: Path) -> None:
        self.missing: list[Path] = []
        path = folder.absolute()
        while not exists(path) and path != path.parent:
            self.missing.append(path)
            path = path.parent

    def remove_if_left_empty(self) -> None:
        """Remove those the write created and left empty: ``folder``, then those above it, up to the first that is
        not empty (or gone)."""
        for path in self.missing:
            try:
                path.rmdir()
            except OSError:
                return


@contextlib.contextmanager
def made_for(work_dir: Path) -> Iterator[None]:
    """A job into ``work_dir`` that fails (or is stopped) removes the folders it created and left empty
    (``MadeFolders``); a full disk's (or a read-only one's...) ``OSError`` that names no file names ``work_dir``."""
    made = MadeFolders(work_dir)
    try:
        yield
    except BaseException as err:
        made.remove_if_left_empty()
        if isinstance(err, OSError) and err.filename is None and write_problem(err, work_dir):
            raise OSError(err.errno, err.strerror, str(work_dir)) from err
        raise
