"""Who writes where: one job at a time in a folder, and renames that a stop must not cut in half.

``FolderLock`` is the exclusive ``flock`` a job (``uvosam.job``'s run or re-render, staged or not) holds on
``<work_dir>/.uvosam.lock`` for its whole run: a second job into the same folder is refused at once
(``ValueError``), where it would have written its video beside the first one's exports and cache. A re-render
holds the same lock shared (``FolderLock(..., shared=True)``) on the folder whose mask cache it reads, frame by
frame, for its whole run: re-renders of one run go on side by side, but a job into that folder (which would replace
the cache under them) is refused, and a re-render of a folder a job is writing to is refused too. A lock held for an
instant (a test of it, a job letting go) is waited for (``_GRACE_S``): only a job's or a re-render's refuses.
``check_free`` and ``check_not_written`` say so without holding the lock (the CLI, before the models load).
``lock_file`` and ``is_held`` are the same exclusive lock on a staging folder's lock file (``uvosam.job_staging``'s
sweep tells a live run's from a killed one's). ``waited_lock`` is one that waits its turn instead of refusing
(``uvosam.hub``'s fetches of one weight file). Without ``fcntl`` (Windows) nothing is locked: jobs run as they did
before these locks.

``uninterrupted`` marks a few renames (``Staging.promote``'s, and putting the earlier result back) that a stop must
not cut in half. The library installs no signal handler: a handler that honours it (the CLI's:
``uvosam_cli.interrupts``) calls ``defer_interrupt``, and the stop is raised once the renames are done.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from uvosam.errors import InputError

try:
    import fcntl
except ImportError:  # Windows: no flock; jobs are not kept apart
    fcntl = None  # type: ignore[assignment]

logger = logging.getLogger(__name__)

# in a job's work_dir while it writes there; in a run's folder while a re-render reads its cache
FOLDER_LOCK = ".uvosam.lock"
_BUSY = (errno.EWOULDBLOCK, errno.EAGAIN)
_NO_LOCKS = (errno.ENOLCK, errno.EOPNOTSUPP, errno.EINVAL)  # a file system without flock


def busy_message(work_dir: Path) -> str:
    """Why a job into ``work_dir`` is refused while another one writes there."""
    return f"another uvosam run is writing to {work_dir}; wait for it or pass another folder"


def reading_message(work_dir: Path) -> str:
    """Why a job into ``work_dir`` is refused while a re-render reads its mask cache."""
    return f"a uvosam rerender is reading the mask cache in {work_dir}; wait for it or pass another folder"


def writing_message(work_dir: Path) -> str:
    """Why a re-render of the run in ``work_dir`` is refused while a job writes there."""
    return (
        f"another uvosam run is writing to {work_dir}, whose mask cache this rerender would read as it changes; "
        "wait for it to finish"
    )


# a lock held this long at most (a test of it, a job letting go of it) does not refuse a job (seconds)
_GRACE_S = 0.25
_RETRY_S = 0.005


def lock_file(path: Path) -> int | None:
    """An exclusive ``flock`` on ``path`` (created), taken at once: its file descriptor (close it to let go), or
    None without ``fcntl``. ``BlockingIOError`` when another open file holds it (this process's too)."""
    if fcntl is None:
        return None
    return _locked(path, os.O_RDWR | os.O_CREAT, fcntl.LOCK_EX)


def _locked(path: Path, flags: int, operation: int) -> int:
    """``path`` opened with ``flags`` and ``flock``-ed with ``operation``, at once (``BlockingIOError`` if held)."""
    fd = os.open(path, flags, 0o600)
    try:
        fcntl.flock(fd, operation | fcntl.LOCK_NB)
    except BaseException:
        os.close(fd)
        raise
    return fd


def is_held(path: Path) -> bool:
    """Whether a live job holds the lock file ``path`` (False: there is none, or nobody holds it; True when it
    cannot be told)."""
    return fcntl is None or _held(path) is not False


def _held(path: Path, *, by_readers: bool = False) -> bool | None:
    """Whether another open file holds the exclusive ``flock`` on ``path`` (with ``by_readers``, a shared one too):
    True; False when there is no such file or nobody holds it; None when it cannot be told (a file not ours to
    open, a lock refused for another reason). Tested with a shared lock taken and let go at once (made exclusive
    only for ``by_readers``), which another test does not conflict with."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        if by_readers:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as error:
        return True if error.errno in _BUSY else None
    finally:
        os.close(fd)  # also lets go of the lock taken just now
    return False


class FolderLock:
    """The lock a job holds on its ``work_dir`` (created if missing) from its start to its end; ``shared``: the
    lock a re-render holds on the folder whose mask cache it reads (the folder exists), which other readers share.

    Raises:
        ValueError: a job (of this process or another) holds it, or (not ``shared``) a re-render reads there.
    """

    def __init__(self, work_dir: Path, *, shared: bool = False) -> None:
        self.path = work_dir / FOLDER_LOCK
        self.shared = shared
        self._fd: int | None = None
        if fcntl is None:
            return
        if not shared:
            work_dir.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + _GRACE_S
        while self._fd is None:
            try:
                fd = self._take()
            except OSError as error:
                if error.errno in _BUSY and time.monotonic() < deadline:
                    time.sleep(_RETRY_S)  # held for an instant only, perhaps
                    continue
                if error.errno in _BUSY:
                    raise InputError(self._refusal(work_dir)) from None
                if not self._unlocked(work_dir, error):
                    raise
                return
            # the job that held it may have deleted it (``release``) between its opening here and its lock
            if _same_file(fd, self.path):
                self._fd = fd
            else:
                os.close(fd)

    def _take(self) -> int:
        if self.shared:  # a reader: the file need not be writable
            return _locked(self.path, os.O_RDONLY | os.O_CREAT, fcntl.LOCK_SH)
        return _locked(self.path, os.O_RDWR | os.O_CREAT, fcntl.LOCK_EX)

    def _refusal(self, work_dir: Path) -> str:
        if self.shared:
            return writing_message(work_dir)
        # only readers hold it when a shared lock can be had; a lock that cannot be told about: a job's
        return reading_message(work_dir) if _held(self.path) is False else busy_message(work_dir)

    def _unlocked(self, work_dir: Path, error: OSError) -> bool:
        """Whether the job goes on without the lock, which ``error`` refused (logged): no locks on this file system;
        for a reader, a folder not its own too (its lock file cannot be made or opened)."""
        if error.errno in _NO_LOCKS:
            logger.warning("%s: no file locks on this file system (%s)", work_dir, error.strerror)
            return True
        if self.shared and error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            logger.warning("%s: read without its lock (%s)", work_dir, error.strerror)
            return True
        return False

    def release(self) -> None:
        """Let go of the folder (its lock file goes, unless other readers hold it, or a check at that instant: a
        fresh folder is left as the job left it; a lock file left is free, and the next job takes it)."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            # deleted only while held exclusive: whoever opened it before retries on a new one (``_same_file``),
            # and no reader holds the deleted one while a job locks a new one
            if self.shared and not _exclusive(fd):
                return
            self.path.unlink(missing_ok=True)
        # a folder not ours to change (a reader's; read-only): the file stays, free
        except OSError as error:
            logger.debug("%s stays: %s", self.path, error.strerror)
        finally:
            os.close(fd)


def _exclusive(fd: int) -> bool:
    """Whether a shared lock on ``fd`` could be made exclusive (nobody else holds it); if not, it is let go."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as error:
        if error.errno in _BUSY:
            return False
        raise
    return True


@contextlib.contextmanager
def waited_lock(path: Path) -> Iterator[bool]:
    """An exclusive ``flock`` on ``path`` (created; deleted when let go), waited for rather than refused: one holder
    at a time among this process's threads and other processes (``uvosam.hub``'s fetches of one weight file).
    Yields whether it is held: not without ``fcntl`` (Windows), on a file system without locks, or in a folder where
    the lock file cannot be made (read-only; logged)."""
    fd = None
    while fcntl is not None and fd is None:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CREAT, 0o666)  # others may take it too
        except OSError as error:
            if error.errno not in (errno.EROFS, errno.EACCES, errno.EPERM):
                raise
            logger.warning(
                "%s: cannot make the lock file (%s); going on without it", path, error.strerror
            )
            break
        try:
            _take_waiting(fd, path)
        except BaseException as error:
            os.close(fd)
            if not isinstance(error, OSError) or error.errno not in _NO_LOCKS:
                raise
            logger.warning("%s: no file locks on this file system (%s)", path, error.strerror)
            fd = None
            break
        # the holder before deleted it when done (after this open): take the new one
        if not _same_file(fd, path):
            os.close(fd)
            fd = None
    try:
        yield fd is not None
    finally:
        if fd is not None:
            # while held: whoever opened it meanwhile retries on a new one
            path.unlink(missing_ok=True)
            os.close(fd)


def _take_waiting(fd: int, path: Path) -> None:
    """An exclusive ``flock`` on ``fd``: at once if free, else after saying (INFO) whose turn it waits for."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as error:
        if error.errno not in _BUSY:
            raise
        logger.info("waiting for another uvosam (process or thread) holding %s", path)
        fcntl.flock(fd, fcntl.LOCK_EX)


def _same_file(fd: int, path: Path) -> bool:
    try:
        now = path.stat()
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (held.st_dev, held.st_ino) == (now.st_dev, now.st_ino)


def check_free(work_dir: Path) -> None:
    """Raise ``ValueError`` if a job is writing to ``work_dir`` now, or a re-render reading its cache
    (``FolderLock``); creates nothing. A lock file that cannot be told about (not ours to open) is left to
    ``FolderLock``, which says why."""
    if fcntl is not None and _held(work_dir / FOLDER_LOCK, by_readers=True):
        readers_only = _held(work_dir / FOLDER_LOCK) is False
        raise InputError(reading_message(work_dir) if readers_only else busy_message(work_dir))


def check_not_written(work_dir: Path) -> None:
    """Raise ``ValueError`` if a job is writing to ``work_dir`` now, whose mask cache a re-render would read."""
    if fcntl is not None and _held(work_dir / FOLDER_LOCK):
        raise InputError(writing_message(work_dir))


# depth: the ``uninterrupted`` blocks a thread is in; pending: the stop to raise when they end
_section = threading.local()


@contextlib.contextmanager
def uninterrupted() -> Iterator[None]:
    """A block that a signal handler honouring it (``defer_interrupt``) does not stop half-way: the stop is raised
    when it ends."""
    _section.depth = getattr(_section, "depth", 0) + 1
    try:
        yield
    finally:
        _section.depth -= 1
        if _section.depth == 0:
            pending, _section.pending = getattr(_section, "pending", None), None
            if pending is not None:
                raise pending


def defer_interrupt(interrupt: BaseException) -> bool:
    """For a signal handler: within an ``uninterrupted`` block of this thread, keep ``interrupt`` to be raised when
    the block ends and return True; elsewhere False (the handler raises it)."""
    if getattr(_section, "depth", 0) == 0:
        return False
    if getattr(_section, "pending", None) is None:
        _section.pending = interrupt
    return True
