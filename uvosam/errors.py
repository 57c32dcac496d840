"""Exception types that the app and the CLI turn into user-facing messages.

Every message says what was expected, what came and what to do. uvosam's deliberate refusals are ``InputError``
(a ``ValueError``) or one of its subclasses; a missing input file is ``MissingInputError`` (also a
``FileNotFoundError``). The app maps exactly these to ``gr.Error`` as they are, the weight and package errors in its
own words (no server path); anything else (a plain ``ValueError`` from numpy, torch or a bug of ours among them) is
logged with its traceback and an error id. ``out_of_space`` and ``write_problem`` word a local write that failed
(a full disk, no permission, a read-only file system) for the messages of the library, the CLI and the app.
"""

from __future__ import annotations

import errno
import os
import sys
from collections.abc import Callable

# a full disk, and a user's disk quota used up (no EDQUOT on Windows)
_NO_SPACE = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}


class InputError(ValueError):
    """A value uvosam refuses: an argument, a setting, a file's contents. The message says what was expected,
    what came and what to do. A ``ValueError``, so ``except ValueError`` still catches it; unlike a plain one (numpy's
    "operands could not be broadcast...", a bug), it is the input's to mend, not uvosam's."""


class MissingInputError(InputError, FileNotFoundError):
    """An input file or folder that is not there (a video, a YAML config, a dataset's annotations); the message
    names the path and what was expected there. Both an ``InputError`` and a ``FileNotFoundError``, so ``except
    FileNotFoundError`` still catches it."""


class VideoReadError(InputError):
    """A video (or frame folder) could not be read: empty, truncated, not a video, no frames, 0 fps..."""


class VideoLimitError(InputError):
    """A readable video exceeds a configured limit (frames, duration, resolution), checked before decoding.

    Besides the message (written for Python users: it names the ``VideoLimits`` field), ``limit_name`` (that
    field), ``subject`` (e.g. "clip.mp4 lasts 130.0 s") and ``limit`` let an app word its own advice."""

    def __init__(
        self, message: str, *, limit_name: str = "", subject: str = "", limit: float | None = None
    ) -> None:
        super().__init__(message)
        self.limit_name = limit_name
        self.subject = subject
        self.limit = limit


class RemoteVideoError(InputError):
    """A link could not be fetched as a video file: not http(s), a web page (YouTube...), an address inside the
    server's network, too large, too slow, an HTTP or a network error. The message names the link's host (never
    the credentials a link may hold); a network error is chained as the cause."""


class WeightsError(RuntimeError):
    """A weight file exists but is unusable: wrong checksum, truncated, wrong format or wrong shapes."""


class MissingWeightsError(FileNotFoundError):
    """A weight file is nowhere to be found (the checkpoints folder, the Hugging Face cache/Hub, a path given); the
    message names every place looked and how to get it. A ``FileNotFoundError``, so ``except FileNotFoundError``
    still catches it; an app tells it apart from a missing input file."""


class SetupError(RuntimeError):
    """This machine's set-up cannot do what was asked, and the message says what to change: an ffmpeg too old, a
    kernel asked for that cannot run here (``UVOSAM_MSDA=triton``), a ``torch.compile`` whose toolchain fails. A
    ``RuntimeError``, so ``except RuntimeError`` still catches it; the command line tells it as a refusal (exit 2),
    not as a possible bug."""


class MissingPackageError(ImportError):
    """An optional package that the chosen model needs is not installed (e.g. ``sam2`` for SAM 2.1); the message
    says how to install it. An ``ImportError``, so ``except ImportError`` still catches it."""


# how torch words an allocation that failed where it raises a plain RuntimeError: the CPU's allocator ("can't
# allocate memory: you tried to allocate ..."), Apple's GPU ("MPS backend out of memory")
_OUT_OF_MEMORY_WORDS = ("can't allocate memory", "out of memory")


def out_of_memory(err: BaseException) -> bool:
    """Whether ``err`` (or an error it was raised from or during) is an allocation that failed: Python's and numpy's
    ``MemoryError``, torch's ``OutOfMemoryError`` (CUDA), or a ``RuntimeError`` in torch's words for the CPU and
    MPS. torch is not imported for it (if no model ran, no torch error can have come)."""
    torch = sys.modules.get("torch")
    kinds = (
        MemoryError,
        *((torch.OutOfMemoryError,) if hasattr(torch, "OutOfMemoryError") else ()),
    )

    def failed_allocation(error: BaseException) -> bool:
        worded = isinstance(error, RuntimeError) and any(
            w in str(error) for w in _OUT_OF_MEMORY_WORDS
        )
        return isinstance(error, kinds) or worded

    return in_chain(err, failed_allocation) is not None


def out_of_space(err: BaseException) -> bool:
    """Whether ``err`` is the ``OSError`` of a write to a full disk (``ENOSPC``) or a used-up quota (``EDQUOT``)."""
    return isinstance(err, OSError) and err.errno in _NO_SPACE


def write_problem(err: BaseException, folder: str | os.PathLike[str]) -> str | None:
    """Why a write into ``folder`` failed with ``err``, in a message's words ("<folder> is out of disk space"), or
    None when ``err`` is not one of a full disk, a used-up quota, a read-only file system or a missing permission
    (a network error, say)."""
    if not isinstance(err, OSError):
        return None
    if err.errno == errno.ENOSPC:
        return f"{folder} is out of disk space"
    if out_of_space(err):
        return f"the disk quota of {folder} is used up"
    if err.errno == errno.EROFS:
        return f"{folder} is on a read-only file system"
    if isinstance(err, PermissionError):
        return f"no permission to write in {folder}"
    return None


def in_chain(err: BaseException, test: Callable[[BaseException], bool]) -> BaseException | None:
    """The first error of ``err``'s chain (``err``, then what it was raised from or during: ``__cause__``, else
    ``__context__``) that passes ``test``, or None."""
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        if test(current):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None
