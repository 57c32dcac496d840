"""Exception types that the app and the CLI turn into user-facing messages.

Every message says what was expected, what came and what to do. The app maps exactly these (and
``FileNotFoundError``) to ``gr.Error``, the weight and package errors in its own words (no server path); anything
else is a bug and is logged with its traceback.
"""

from __future__ import annotations


class VideoReadError(ValueError):
    """A video (or frame folder) could not be read: empty, truncated, not a video, no frames, 0 fps..."""


class VideoLimitError(ValueError):
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


class RemoteVideoError(ValueError):
    """A link could not be fetched as a video file: not http(s), a web page (YouTube...), an address inside the
    server's network, too large, too slow, an HTTP or a network error. The message names the link's host (never
    the credentials a link may hold); a network error is chained as the cause."""


class WeightsError(RuntimeError):
    """A weight file exists but is unusable: wrong checksum, truncated, wrong format or wrong shapes."""


class MissingWeightsError(FileNotFoundError):
    """A weight file is nowhere to be found (the checkpoints folder, the Hugging Face cache/Hub, a path given); the
    message names every place looked and how to get it. A ``FileNotFoundError``, so ``except FileNotFoundError``
    still catches it; an app tells it apart from a missing input file."""


class MissingPackageError(ImportError):
    """An optional package that the chosen model needs is not installed (e.g. ``sam2`` for SAM 2.1); the message
    says how to install it. An ``ImportError``, so ``except ImportError`` still catches it."""
