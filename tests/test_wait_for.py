"""``app_helpers.wait_for``, which many tests use to wait for a run to delete its files."""

import shutil
import threading

import pytest
from app_helpers import wait_for


def test_a_folder_deleted_while_the_condition_globs_it_counts_as_not_yet(tmp_path):
    """``Path.rglob`` raises FileNotFoundError when a folder it listed goes before it scans it (a failed run deleting
    its chunks while a test waits for them to go: CI failed on it once); ``wait_for`` asks again."""
    calls = []

    def condition() -> bool:
        calls.append(1)
        if len(calls) < 3:
            raise FileNotFoundError("scanned a folder that went meanwhile")
        return True

    assert wait_for(condition, timeout=5)
    assert len(calls) == 3


def test_it_waits_for_a_tree_another_thread_deletes(tmp_path):
    for n in range(30):
        (tmp_path / "run" / f"chunks{n}").mkdir(parents=True)
        (tmp_path / "run" / f"chunks{n}" / "chunk.mp4").write_bytes(b"x")
    remover = threading.Thread(target=shutil.rmtree, args=(tmp_path / "run",))
    remover.start()
    assert wait_for(lambda: not list(tmp_path.rglob("chunks*/*")), timeout=10)
    remover.join()


def test_a_condition_that_never_holds_is_false_after_the_timeout():
    assert not wait_for(lambda: False, timeout=0.2)


def test_a_condition_that_raises_every_time_fails_the_test_at_the_end():
    """A FileNotFoundError that is no race (a wrong path) is not hidden as a plain False."""

    def condition() -> bool:
        raise FileNotFoundError("no such folder, ever")

    with pytest.raises(FileNotFoundError, match="ever"):
        wait_for(condition, timeout=0.2)
