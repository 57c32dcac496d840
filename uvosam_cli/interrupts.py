"""How a command ends when it is stopped: Ctrl-C, ``kill`` (SIGTERM), a closed terminal (SIGHUP) or a reader of its
output that went (``| head -1``).

``signals_as_interrupts`` makes SIGTERM and SIGHUP raise ``KeyboardInterrupt`` as Ctrl-C does, so that a stopped
``segment`` or ``rerender`` deletes its unfinished files the same way whatever stopped it (``uvosam.job_staging``: an
earlier result in ``--out`` stays as it was). None of them cuts in half the renames that replace that result, or
that put it back: a stop then is raised once they are done (``uvosam.job_locks.uninterrupted``). ``OutputFolder``
remembers whether the command's output folder existed before it ran: one it made and left empty goes, and the
one-line message says what is left.

A signal that comes while the command stops (a second Ctrl-C) only says so: raised into the clean-up, it cut the
deletion of the unfinished files short, and it left the models' thread running in torch when the interpreter
exited, which aborted it ("terminate called without an active exception", exit status 134). The command waits for
that thread (``RunThreads``: up to 5 minutes, saying so after a second) before it ends, as the app's
server does.

A reader that goes (``uvosam info | head -1``) ends the command as it ends a Unix tool, SIGPIPE's way: no message,
exit status 141 (128 + SIGPIPE), the files written so far kept (``reader_gone``, ``end_for_gone_reader``).
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

from uvosam.errors import out_of_space, write_problem
from uvosam.job_locks import defer_interrupt
from uvosam.job_staging import result_in_place
from uvosam.made_folders import MadeFolders
from uvosam.prefetch import EXIT_WAIT_S, join_threads, producers

SAY_WAIT_AFTER_S = 1.0
"""How long a stopped command waits for its run's threads before it says so (``RunThreads.wait``)."""
SIGPIPE_EXIT = 128 + 13
"""The exit status of a command whose reader went, as a shell shows a tool SIGPIPE ended (``yes | head -1``)."""


class Interrupted(KeyboardInterrupt):
    """A stop by a signal other than Ctrl-C's (``signum``)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def exit_code(interrupt: KeyboardInterrupt) -> int:
    """128 + the signal's number, as a shell reports a command a signal ended: 130 for Ctrl-C."""
    return 128 + getattr(interrupt, "signum", signal.SIGINT)


def kill_command(pid: int) -> str:
    """The command that ends process ``pid`` at once, with no clean-up, as this system writes it."""
    return f"taskkill /F /PID {pid}" if sys.platform == "win32" else f"kill -KILL {pid}"


class _Stops:
    """The handler of the signals that stop a command: the first raises (or defers, ``defer_interrupt``) its
    ``KeyboardInterrupt``; those that come after it, while the command stops, only say so on stderr."""

    def __init__(self, command: str) -> None:
        self.command = command
        self.stopping = False

    def __call__(self, signum: int, frame: object) -> None:
        if self.stopping:
            # os.write: a print here could land inside another write to sys.stderr ("reentrant call")
            os.write(
                2,
                f"uvosam {self.command}: still stopping (it cleans up first; {kill_command(os.getpid())} ends it "
                "at once, leaving any unfinished files)\n".encode(),
            )
            return
        self.stopping = True
        stop = KeyboardInterrupt() if signum == signal.SIGINT else Interrupted(signum)
        if not defer_interrupt(stop):
            raise stop


@contextlib.contextmanager
def signals_as_interrupts(command: str) -> Iterator[None]:
    """Within the block, SIGTERM and SIGHUP raise ``Interrupted`` (a ``KeyboardInterrupt``) in the main thread,
    and Ctrl-C its ``KeyboardInterrupt`` as before, each after the block ``uvosam.job_locks.uninterrupted`` marks
    if one is running; a signal ignored when the command started (``nohup`` ignores SIGHUP) stays ignored. Only the
    first stops the command: any later one prints a line saying it is still stopping (``uvosam <command>: ...``).
    Nothing is changed outside the main thread (where Python cannot set handlers)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    handler = _Stops(command)
    before = {}
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        before[signal.SIGINT] = signal.signal(signal.SIGINT, handler)
    for name in ("SIGTERM", "SIGHUP"):
        signum = getattr(signal, name, None)  # no SIGHUP on Windows
        if signum is not None and signal.getsignal(signum) is signal.SIG_DFL:
            before[signum] = signal.signal(signum, handler)
    try:
        yield
    finally:
        for signum, handler in before.items():
            signal.signal(signum, handler)


class RunThreads:
    """The threads a command's run starts (``uvosam.prefetch.producers``: its models' thread and the frames' one),
    made as the command begins; ``wait`` waits for them once.

    A stopped run asks its models' thread to stop and waits 5 s for it, but the frame under way can take longer
    (SAM ViT-H: 17 s on a CPU), and a thread still inside torch when the interpreter exits aborts it. The threads of
    another caller in this process (the app's jobs), and those running before the command began, are not waited for.
    """

    def __init__(self, command: str) -> None:
        self.command = command
        self.earlier = set(producers())
        self.waited = False

    def wait(self) -> None:
        """Wait for them, up to ``uvosam.prefetch.EXIT_WAIT_S``, saying so on stderr once it takes over
        ``SAY_WAIT_AFTER_S``; instant when none is running, or once waited for."""
        if self.waited:
            return
        self.waited = True

        def say(running: list[threading.Thread], left_s: float) -> None:
            print(
                f"uvosam {self.command}: stopping: waiting for the frame under way to finish (at most "
                f"{EXIT_WAIT_S:g} s; {kill_command(os.getpid())} ends it at once)",
                file=sys.stderr,
                flush=True,
            )

        running = [thread for thread in producers() if thread not in self.earlier]
        join_threads(running, within_s=EXIT_WAIT_S, say_after_s=SAY_WAIT_AFTER_S, say=say)


def reader_gone(error: BaseException) -> bool:
    """Whether ``error`` is the ``BrokenPipeError`` of a write to stdout or stderr whose reader went (``| head``);
    not one of another pipe (ffmpeg's), whose reader is not the user's."""
    return isinstance(error, BrokenPipeError) and bool(_gone_streams())


def end_for_gone_reader() -> int:
    """Point stdout (and stderr) at ``os.devnull`` where their reader went, as Python's docs on SIGPIPE advise, so
    that nothing is written to them again, nor at exit ("Exception ignored ... BrokenPipeError"); returns the exit
    status, ``SIGPIPE_EXIT``."""
    gone = _gone_streams()
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        for fd in gone:
            os.dup2(devnull, fd)
    finally:
        os.close(devnull)
    return SIGPIPE_EXIT


def _gone_streams() -> list[int]:
    """The file descriptors of stdout and stderr that are pipes whose reader went."""
    gone = []
    for stream in (sys.stdout, sys.stderr):
        try:
            fd = stream.fileno()
        # replaced by a buffer in memory (the tests), or closed
        except (AttributeError, OSError, ValueError):
            continue
        if _pipe_gone(fd):
            gone.append(fd)
    return gone


def _pipe_gone(fd: int) -> bool:
    """Whether ``fd`` is a pipe (or socket) with no reader left: ``poll`` says POLLERR (Linux) or POLLHUP."""
    if not hasattr(select, "poll"):  # Windows
        return False
    poll = select.poll()
    poll.register(fd, select.POLLOUT)
    return any(events & (select.POLLERR | select.POLLHUP) for _, events in poll.poll(0))


class OutputFolder:
    """A command's output folder (None: the command has none it writes whole), as it was before the command."""

    def __init__(self, folder: Path | None) -> None:
        self.folder = folder
        # the folders the command may create: the output folder and those above it that are missing
        self._made = MadeFolders(folder) if folder is not None else None
        self.existed = self._made is None or not self._made.missing

    def remove_if_left_empty(self) -> None:
        """Remove the folders the command created that it left empty (the output folder, then those above)."""
        if self._made is not None:
            self._made.remove_if_left_empty()

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
        what is left of the run; a failed write (a full disk or quota, a read-only file system, no permission) is
        worded by ``uvosam.errors.write_problem``, with what to do."""
        if not isinstance(error, OSError) or not str(error).startswith("[Errno"):
            return f"error: {error}"
        if self.folder is None:
            where = error.filename
            return f"error: {error.strerror}" + (f" ({where})" if where is not None else "")
        problem = self._write_problem(error, self.folder)
        if problem is None:
            text = f"error: {error.strerror} ({error.filename or self.folder})"
        else:
            advice = (
                "free some space, or pass another --out"
                if out_of_space(error)
                else "pass another --out"
            )
            text = f"error: {problem} ({advice})"
        return f"{text}; {self._left()}"

    def _write_problem(self, error: OSError, folder: Path) -> str | None:
        """``write_problem``'s words for ``error`` as a write into ``folder``, the output folder (a file in it: one
        in the run's staging folder, which is gone), or the folder of a file elsewhere that ``error`` names; None
        for another error, and for a missing permission on a file elsewhere (an input or a model's file, read)."""
        if not isinstance(error.filename, (str, bytes, os.PathLike)):  # none (or a file descriptor)
            return write_problem(error, folder)
        file = Path(os.fsdecode(error.filename)).absolute()
        if file.is_relative_to(folder.absolute()):
            return write_problem(error, folder)
        return None if isinstance(error, PermissionError) else write_problem(error, file.parent)
