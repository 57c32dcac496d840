"""The folder lock (``uvosam.job_locks``): one job writes to a folder, re-renders read a run's folder side by side and
keep jobs out of it while they read, and a test of the lock never refuses a job."""

import errno
import logging
import os
import re
import threading
from pathlib import Path

import pytest

from uvosam import job_locks
from uvosam.job_locks import FOLDER_LOCK, FolderLock, check_free, is_held

pytestmark = pytest.mark.skipif(job_locks.fcntl is None, reason="no flock: nothing is locked")


def _refusals(take, probes, times: int) -> int:
    """How many of ``times`` calls of ``take`` raise ``ValueError`` while a thread calls each of ``probes`` over
    and over."""
    stop = threading.Event()

    def probing():
        while not stop.is_set():
            for probe in probes:
                try:
                    probe()
                except ValueError:
                    pass

    thread = threading.Thread(target=probing)
    thread.start()
    refused = 0
    try:
        for _ in range(times):
            try:
                take().release()
            except ValueError:
                refused += 1
    finally:
        stop.set()
        thread.join()
    return refused


def test_a_job_starting_while_the_cli_checks_the_folder_is_not_refused(tmp_path):
    """``check_free`` took the lock for an instant: a job starting then was refused as busy (about 2 in 3 here)."""
    (tmp_path / FOLDER_LOCK).touch()  # as between two jobs, or left by a killed one
    probes = [lambda: check_free(tmp_path), lambda: is_held(tmp_path / FOLDER_LOCK)]
    assert _refusals(lambda: FolderLock(tmp_path), probes, 400) == 0


def test_a_rerender_starting_while_the_folder_is_checked_is_not_refused(tmp_path):
    probes = [lambda: check_free(tmp_path), lambda: job_locks.check_not_written(tmp_path)]
    assert _refusals(lambda: FolderLock(tmp_path, shared=True), probes, 400) == 0
    # a re-render's end that meets a check may leave the lock file (free: the next job takes it)
    assert not is_held(tmp_path / FOLDER_LOCK)


def test_rerenders_share_a_runs_folder_and_keep_jobs_out_until_the_last_one_ends(tmp_path):
    reading = (
        f"a uvosam rerender is reading the mask cache in {re.escape(str(tmp_path))}; wait for it"
    )
    first, second = FolderLock(tmp_path, shared=True), FolderLock(tmp_path, shared=True)
    job_locks.check_not_written(tmp_path)  # another re-render may start
    with pytest.raises(ValueError, match=reading):
        FolderLock(tmp_path)
    with pytest.raises(ValueError, match=reading):
        check_free(tmp_path)
    # the first one's end leaves the lock file, which the second one holds: a job would have locked a new one
    first.release()
    assert (tmp_path / FOLDER_LOCK).is_file()
    with pytest.raises(ValueError, match=reading):
        FolderLock(tmp_path)
    second.release()
    assert list(tmp_path.iterdir()) == []  # the last one's end takes the lock file away
    job = FolderLock(tmp_path)
    writing = (
        f"another uvosam run is writing to {re.escape(str(tmp_path))}, whose mask cache this rerender would "
        "read as it changes; wait for it to finish"
    )
    with pytest.raises(ValueError, match=writing):
        FolderLock(tmp_path, shared=True)
    with pytest.raises(ValueError, match=writing):
        job_locks.check_not_written(tmp_path)
    with pytest.raises(ValueError, match="another uvosam run is writing to"):
        check_free(tmp_path)
    job.release()
    assert list(tmp_path.iterdir()) == []


def test_waited_lock_on_a_file_system_without_locks_holds_nothing_and_closes_once(
    tmp_path, monkeypatch
):
    def no_locks(fd, operation):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(job_locks.fcntl, "flock", no_locks)
    # the number a double close could hit
    kept = os.open(tmp_path / "other", os.O_RDONLY | os.O_CREAT)
    try:
        with job_locks.waited_lock(tmp_path / "f.lock") as held:
            assert held is False
            reused = os.open(tmp_path / "opened-inside", os.O_RDONLY | os.O_CREAT)
        os.fstat(reused)  # still open: the closed lock's number was not closed again
        os.close(reused)
    finally:
        os.close(kept)


def test_a_reader_lets_go_of_a_lock_file_it_cannot_delete(tmp_path, monkeypatch):
    """A re-render of a run folder on a read-only file system (with a lock file a killed job left) took the lock and
    then, letting go, raised EROFS from deleting it, after its result was written: the file stays, free."""
    (tmp_path / FOLDER_LOCK).touch()
    reader = FolderLock(tmp_path, shared=True)

    def read_only_unlink(self, missing_ok=False):
        raise OSError(errno.EROFS, "Read-only file system", str(self))

    monkeypatch.setattr(Path, "unlink", read_only_unlink)
    reader.release()
    monkeypatch.undo()
    assert (tmp_path / FOLDER_LOCK).exists()  # not deleted some other way
    FolderLock(tmp_path).release()  # free: a job takes it


def test_waited_lock_says_whose_turn_it_waits_for(tmp_path, caplog):
    """A second fetch of a file another uvosam is downloading waited without a word (minutes, for a 2.5 GB file)."""
    lock = tmp_path / "f.pth.lock"
    taken, let_go = threading.Event(), threading.Event()

    def first():
        with job_locks.waited_lock(lock):
            taken.set()
            let_go.wait(10)

    holder = threading.Thread(target=first)
    holder.start()
    taken.wait(10)
    caplog.set_level(logging.INFO, logger="uvosam.job_locks")

    class LetGoWhenSaid(logging.Handler):  # the holder lets go once the waiter has said it waits
        def emit(self, record):
            let_go.set()

    said = LetGoWhenSaid()
    logging.getLogger("uvosam.job_locks").addHandler(said)
    try:
        with job_locks.waited_lock(lock) as held:
            assert held
    finally:
        logging.getLogger("uvosam.job_locks").removeHandler(said)
    holder.join()
    assert [r.getMessage() for r in caplog.records] == [
        f"waiting for another uvosam (process or thread) holding {lock}"
    ]
    assert not lock.exists()
