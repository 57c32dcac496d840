"""Who writes where: one job at a time in a folder, and renames that a stop must not cut in half.

``FolderLock`` is the exclusive ``flock`` a job (``uvosam.job``'s run or re-render, staged or not) holds on
``<work_dir>/.uvosam.lock`` for its whole run: a second job into the same folder is refused at once
(``ValueError``), where it would have written its video beside the first one's exports and cache.
``check_free`` says so without taking the lock (the CLI, before the models load). ``lock_file`` and ``is_held``
are the same lock on a staging folder's lock file (``uvosam.job_staging``'s sweep tells a live run's from a
killed one's). Without ``fcntl`` (Windows) nothing is locked: jobs run as they did before these locks.

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
from collections.abc import Iterator
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: no flock; jobs are not kept apart
    fcntl = None  # type: ignore[assignment]

logger = logging.getLogger(__name__)

FOLDER_LOCK = ".uvosam.lock"  # in a job's work_dir, while a job writes there
_BUSY = (errno.EWOULDBLOCK, errno.EAGAIN)


def busy_message(work_dir: Path) -> str:
    """Why a job into ``work_dir`` is refused while another one writes there."""
    return f"another uvosam run is writing to {work_dir}; wait for it or pass another folder"


def lock_file(path: Path) -> int | None:
    """An exclusive ``flock`` on ``path`` (created), taken at once: its file descriptor (close it to let go), or
    None without ``fcntl``. ``BlockingIOError`` when another open file holds it (this process's too)."""
    if fcntl is None:
        return None
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BaseException:
        os.close(fd)
        raise
    return fd


def is_held(path: Path) -> bool:
    """Whether a live job holds the lock file ``path`` (False: there is none, or nobody holds it; True when it
    cannot be told)."""
    return fcntl is None or _held(path) is not False


def _held(path: Path) -> bool | None:
    """Whether another open file holds the ``flock`` on ``path``: True; False when there is no such file or nobody
    holds it (taken and let go at once); None when it cannot be told (a file not ours to open, a lock refused for
    another reason)."""
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        return False
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as error:
        return True if error.errno in _BUSY else None
    finally:
        os.close(fd)  # also lets go of the lock taken just now
    return False


class FolderLock:
    """The lock a job holds on its ``work_dir`` (created if missing) from its start to its end.

    Raises:
        ValueError: another job (of this process or another) holds it.
    """

    def __init__(self, work_dir: Path) -> None:
        self.path = work_dir / FOLDER_LOCK
        self._fd: int | None = None
        if fcntl is None:
            return
        work_dir.mkdir(parents=True, exist_ok=True)
        while self._fd is None:
            try:
                fd = lock_file(self.path)
            except OSError as error:
                if error.errno in _BUSY:
                    raise ValueError(busy_message(work_dir)) from None
                if error.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.EINVAL):
                    raise
                logger.warning(
                    "%s: no file locks on this file system (%s)", work_dir, error.strerror
                )
                return
            # the job that held it may have deleted it (``release``) between its opening here and its lock
            if _same_file(fd, self.path):
                self._fd = fd
            else:
                os.close(fd)

    def release(self) -> None:
        """Let go of the folder (its lock file goes: a fresh folder is left as the job left it)."""
        if self._fd is None:
            return
        # while it is held: whoever opened it before retries on a new one
        self.path.unlink(missing_ok=True)
        os.close(self._fd)
        self._fd = None


def _same_file(fd: int, path: Path) -> bool:
    try:
        now = path.stat()
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (held.st_dev, held.st_ino) == (now.st_dev, now.st_ino)


def check_free(work_dir: Path) -> None:
    """Raise ``ValueError`` if a job is writing to ``work_dir`` now (``FolderLock``); creates nothing. A lock file
    that cannot be told about (not ours to open) is left to ``FolderLock``, which says why."""
    if fcntl is not None and _held(work_dir / FOLDER_LOCK):
        raise ValueError(busy_message(work_dir))


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
