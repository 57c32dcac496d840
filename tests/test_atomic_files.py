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


def test_a_failed_write_leaves_the_old_file_as_it_was_and_no_tmp(tmp_path):
    path = tmp_path / "tracks.csv"
    path.write_bytes(b"old, whole")
    with pytest.raises(DiskFull), atomic_files.replacing(path) as tmp:
        _fail_half_way(tmp)
    assert path.read_bytes() == b"old, whole"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tracks.csv"]


def test_a_failed_first_write_leaves_no_file_at_all(tmp_path):
    with pytest.raises(DiskFull), atomic_files.replacing(tmp_path / "clip_uvosam.zip") as tmp:
        _fail_half_way(tmp)
    assert list(tmp_path.iterdir()) == []


def test_a_failed_write_text_leaves_no_tmp(tmp_path):
    """run.json, meta.json, last_checkpoint: a write that fails half-way left ``<name>.tmp`` beside the file for
    good (a davis-run's results folder kept a ``run.json.tmp``)."""
    with pytest.raises(UnicodeEncodeError):  # raised by the write, once the file is open
        atomic_files.write_text(tmp_path / "run.json", "clip\udcff", encoding="utf-8")
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


@pytest.mark.parametrize("length", [252, 255])
def test_a_name_too_long_for_the_tmp_suffix_is_written_under_a_short_name(tmp_path, length):
    """A frame named with 252-255 bytes failed every run: ``<name>.tmp`` is longer than a file name can be
    ("File name too long")."""
    path = tmp_path / ("é" * ((length - 4) // 2) + "x" * ((length - 4) % 2) + ".png")
    assert len(path.name.encode()) == length
    atomic_files.write_bytes(path, b"whole")
    assert path.read_bytes() == b"whole"
    assert [p.name for p in tmp_path.iterdir()] == [path.name]
    tmp = atomic_files.tmp_path(path)
    assert tmp.parent == tmp_path and tmp.name.endswith(atomic_files.TMP_SUFFIX)
    assert len(tmp.name.encode()) <= atomic_files.NAME_MAX
    with pytest.raises(DiskFull), atomic_files.replacing(path) as tmp:
        _fail_half_way(tmp)
    assert path.read_bytes() == b"whole"  # the failed write's file went
    assert [p.name for p in tmp_path.iterdir()] == [path.name]


def test_a_tmp_that_cannot_be_deleted_does_not_hide_the_blocks_error(tmp_path, caplog):
    """The block's error is raised (it was replaced by the deletion's IsADirectoryError), the deletion's logged."""
    with (
        pytest.raises(KeyError, match="the block's"),
        atomic_files.replacing(tmp_path / "a.json") as tmp,
    ):
        tmp.mkdir()  # unlink() fails on it
        raise KeyError("the block's")
    assert "clean-up after writing a.json.tmp" in caplog.text and not (tmp_path / "a.json").exists()
    # the step by its name and file (a lambda was "<lambda> failed")
    assert f"clean-up after writing a.json.tmp: Path.unlink({tmp}) failed" in caplog.text
