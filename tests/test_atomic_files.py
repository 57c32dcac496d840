"""uvosam.atomic_files: a write replaces its file whole or not at all; what a failed one leaves behind."""

from __future__ import annotations

import json

import pytest

from uvosam import atomic_files


class DiskFull(OSError):
    pass


def _fail_half_way(tmp):
    tmp.write_bytes(b"new, half wri")
    raise DiskFull(28, "No space left on device (simulated)")


@pytest.mark.parametrize("remove_tmp_on_error", [False, True])
def test_a_failed_write_leaves_the_old_file_as_it_was(tmp_path, remove_tmp_on_error):
    path = tmp_path / "tracks.csv"
    path.write_bytes(b"old, whole")
    with (
        pytest.raises(DiskFull),
        atomic_files.replacing(path, remove_tmp_on_error=remove_tmp_on_error) as tmp,
    ):
        _fail_half_way(tmp)
    assert path.read_bytes() == b"old, whole"
    # the tmp is the caller's to remove unless asked (ExportWriter does, for the files at its root)
    assert atomic_files.tmp_path(path).exists() is not remove_tmp_on_error


def test_a_failed_first_write_with_remove_tmp_on_error_leaves_no_file_at_all(tmp_path):
    with (
        pytest.raises(DiskFull),
        atomic_files.replacing(tmp_path / "clip_uvosam.zip", remove_tmp_on_error=True) as tmp,
    ):
        _fail_half_way(tmp)
    assert list(tmp_path.iterdir()) == []


def test_the_new_content_appears_only_when_the_write_ends(tmp_path):
    path = tmp_path / "meta.json"
    path.write_text("old")
    with atomic_files.replacing(path) as tmp:
        assert tmp == tmp_path / "meta.json.tmp"  # beside it: os.replace stays on one file system
        tmp.write_text("new")
        assert path.read_text() == "old"  # a reader meanwhile sees the old file, whole
    assert path.read_text() == "new" and sorted(p.name for p in tmp_path.iterdir()) == ["meta.json"]


def test_write_text_encodes_as_asked(tmp_path):
    path = tmp_path / "run.json"
    atomic_files.write_text(path, json.dumps({"name": "clip\udcff"}, ensure_ascii=False),
                            encoding="utf-8", errors="backslashreplace")  # fmt: skip
    assert json.loads(path.read_text(encoding="utf-8")) == {"name": "clip\udcff"}
    with pytest.raises(UnicodeEncodeError):  # strict by default: nothing written over the file
        atomic_files.write_text(path, "clip\udcff", encoding="utf-8")
    assert json.loads(path.read_text(encoding="utf-8")) == {"name": "clip\udcff"}


def test_write_bytes_replaces_the_file(tmp_path):
    path = tmp_path / "frame_0000000.npz"
    atomic_files.write_bytes(path, b"first")
    atomic_files.write_bytes(path, b"second")
    assert path.read_bytes() == b"second" and [p.name for p in tmp_path.iterdir()] == [path.name]
