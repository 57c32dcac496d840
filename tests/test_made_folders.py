"""The folders a job (or the command line's --out) made, which a job that fails removes when it left them empty."""

import errno
import os

from uvosam.made_folders import MadeFolders


def test_the_folders_made_and_left_empty_go_up_to_the_first_that_is_not_empty(tmp_path):
    made = MadeFolders(tmp_path / "a" / "b" / "c")
    assert made.missing == [tmp_path / "a" / "b" / "c", tmp_path / "a" / "b", tmp_path / "a"]
    (tmp_path / "a" / "b" / "c").mkdir(parents=True)
    (tmp_path / "a" / "notes.txt").write_text("mine")
    made.remove_if_left_empty()
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["notes.txt"]


def test_a_folder_under_one_that_cannot_be_searched_is_not_taken_for_one_made(
    tmp_path, monkeypatch
):
    """The library's copy of this record (``uvosam.job``'s) raised the ``PermissionError`` of ``Path.exists`` under
    a folder without ``x`` before the run began; the command line's took such a folder as existing."""
    locked = tmp_path / "locked"
    locked.mkdir()
    stat = os.stat

    def refused(path, *args, **kwargs):
        if os.path.abspath(os.fspath(path)).startswith(f"{locked}{os.sep}"):
            raise PermissionError(errno.EACCES, "Permission denied", os.fspath(path))
        return stat(path, *args, **kwargs)

    monkeypatch.setattr(os, "stat", refused)
    made = MadeFolders(locked / "sub" / "out")
    assert made.missing == []
    made.remove_if_left_empty()
    assert locked.is_dir()
