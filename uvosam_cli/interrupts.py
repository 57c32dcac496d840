"""How a command ends when it is stopped: Ctrl-C, ``kill`` (SIGTERM) or a closed terminal (SIGHUP).

``signals_as_interrupts`` makes SIGTERM and SIGHUP raise ``KeyboardInterrupt`` as Ctrl-C does, so that a stopped
``segment`` or ``rerender`` deletes its unfinished files the same way whatever stopped it (``uvosam.job_staging``: an
earlier result in ``--out`` stays as it was). None of them cuts in half the renames that replace that result, or
that put it back: a stop then is raised once they are done (``uvosam.job_locks.uninterrupted``). ``OutputFolder``
remembers whether the command's output folder existed before it ran: one it made and left empty goes, and the
one-line message says what is left.
"""

from __future__ import annotations

import contextlib
import errno
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

from uvosam.job_locks import defer_interrupt
from uvosam.job_staging import result_in_place


class Interrupted(KeyboardInterrupt):
    """A stop by a signal other than Ctrl-C's (``signum``)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def exit_code(interrupt: KeyboardInterrupt) -> int:
    """128 + the signal's number, as a shell reports a command a signal ended: 130 for Ctrl-C."""
    return 128 + getattr(interrupt, "signum", signal.SIGINT)


def _raise(signum: int, frame: object) -> None:
    stop = KeyboardInterrupt() if signum == signal.SIGINT else Interrupted(signum)
    if not defer_interrupt(stop):
        raise stop


@contextlib.contextmanager
def signals_as_interrupts() -> Iterator[None]:
    """Within the block, SIGTERM and SIGHUP raise ``Interrupted`` (a ``KeyboardInterrupt``) in the main thread,
    and Ctrl-C its ``KeyboardInterrupt`` as before, each after the block ``uvosam.job_locks.uninterrupted`` marks
    if one is running; a signal ignored when the command started (``nohup`` ignores SIGHUP) stays ignored. Nothing is
    changed outside the main thread (where Python cannot set handlers)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    before = {}
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        before[signal.SIGINT] = signal.signal(signal.SIGINT, _raise)
    for name in ("SIGTERM", "SIGHUP"):
        signum = getattr(signal, name, None)  # no SIGHUP on Windows
        if signum is not None and signal.getsignal(signum) is signal.SIG_DFL:
            before[signum] = signal.signal(signum, _raise)
    try:
        yield
    finally:
        for signum, handler in before.items():
            signal.signal(signum, handler)


class OutputFolder:
    """A command's output folder (None: the command has none it writes whole), as it was before the command."""

    def __init__(self, folder: Path | None) -> None:
        self.folder = folder
        self.existed = folder is None or folder.exists()
        # the folders the command may create: the output folder and those above it that are missing
        self._missing: list[Path] = []
        if folder is not None:
            path = folder.absolute()
            while not path.exists() and path != path.parent:
                self._missing.append(path)
                path = path.parent

    def remove_if_left_empty(self) -> None:
        """Remove the folders the command created that it left empty (the output folder, then those above)."""
        for path in self._missing:
            try:
                path.rmdir()
            except OSError:
                return

    def interrupted_line(self, stop: BaseException) -> str:
        """What is left after the interrupt ``stop``, for the command's one-line message."""
        if self.folder is None:
            return "interrupted"
        # it came while the finished result was moved in, and waited for it
        if result_in_place(stop):
            return f"interrupted once it had finished: its result is in {self.folder}"
        return f"interrupted; {self._left()}"

    def _left(self) -> str:
        if not self.existed:
            return "nothing was written"
        return f"nothing was written: {self.folder} is as it was (an earlier result there is kept)"

    def error_line(self, error: BaseException) -> str:
        """The command's one-line message for ``error``. An ``OSError`` that says no more than its errno's text
        (``[Errno 28] No space left on device``, from deep in a library) gets its file, or the output folder, and
        what is left of the run."""
        if not isinstance(error, OSError) or not str(error).startswith("[Errno"):
            return f"error: {error}"
        where = error.filename or self.folder
        text = f"error: {error.strerror}" + (f" ({where})" if where is not None else "")
        if self.folder is None:
            return text
        if error.errno == errno.ENOSPC:
            text += " (free some space, or pass another --out)"
        return f"{text}; {self._left()}"
