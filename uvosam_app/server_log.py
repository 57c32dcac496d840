"""The app's server log: its set-up (``set_up``: the level, ``UVOSAM_LOG_LEVEL``, and the libraries' lines it quiets)
and the two lines of each job on logger ``uvosam.app`` (``JobLog``): one when a Run (/segment), Re-render
(/rerender), Score (/score) or Load (/load_url) starts, one when it ends (done, refused, stopped or failed), each
with the job's session tag (``session_tag``), so that a host can follow every job through a log that interleaves
many. The handlers' decorators (``uvosam_app.errors``) write them; ``uvosam_app.progress.drive`` counts a job's
frames (``count_step``). Nothing here imports gradio.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import os
import re
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from uvosam.errors import RemoteVideoError
from uvosam.job_types import JobProgress
from uvosam.remote_links import looks_like_link, parse_link
from uvosam.text import count
from uvosam_app.work import SessionRun

logger = logging.getLogger("uvosam.app")

# UVOSAM_LOG_LEVEL's values (``uvosam_app.settings.AppSettings.log_level``)
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Below DEBUG these loggers' INFO lines are left out: httpx/httpcore's request lines (Gradio's own checks of its
# server at start, the Hub client's requests), and the library's line of a finished video (``uvosam.job``), which a
# job's end line gives again with its session and outcome. Their warnings stay.
QUIETED = ("httpx", "httpcore", "uvosam.job")
# The session tag: the first characters of Gradio's session hash (a uuid4 from gradio_client, ~11 random base-36
# characters from the page), enough to tell the sessions of one log apart. Too short to act as the session: Gradio
# finds a session's state (its last run, which /rerender reads) by the whole hash, which a reader of the log must
# not get.
TAG_CHARS = 6
# the longest message a refusal's line gives (the toast gives all of it), and the longest value of a start line
LOGGED_CHARS = 300
VALUE_CHARS = 80


def set_up(level: str) -> None:
    """The process's log, as ``python app.py`` writes it: lines of ``level`` (one of ``LEVELS``) and above on
    stderr; the ``QUIETED`` loggers' INFO lines only at DEBUG."""
    logging.basicConfig(level=level, format=FORMAT)
    logging.getLogger().setLevel(
        level
    )  # basicConfig sets nothing when the root has a handler already
    quiet = max(logging.getLevelName(level), logging.WARNING)
    for name in QUIETED:
        logging.getLogger(name).setLevel(logging.NOTSET if level == "DEBUG" else quiet)


def session_tag(request: Any) -> str:
    """A request's session tag (``TAG_CHARS`` letters and digits of its session hash), or, for a request with no
    session (a direct call), those of a fresh id."""
    raw = re.sub(r"[^A-Za-z0-9]", "", getattr(request, "session_hash", None) or "")
    return (raw or uuid.uuid4().hex)[:TAG_CHARS]


def where(endpoint: str, page: bool, tag: str) -> str:
    """How a line names its request: ``/segment (API, 1f3a9c)``."""
    return f"{endpoint} ({'page' if page else 'API'}, {tag})"


def one_line(text: str, limit: int = LOGGED_CHARS) -> str:
    """``text`` on one line (what a visitor sent may hold line breaks: no line of the log is theirs), at most
    ``limit`` characters."""
    text = " ".join(
        "".join(" " if ch.isspace() or not ch.isprintable() else ch for ch in text).split()
    )
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass(frozen=True)
class JobKind:
    """What the log says of one kind of job: its endpoint, the handler's arguments its start line names (file
    paths by their name, a link as ``uvosam.remote_links`` shows it, None and "" left out) and whether it counts
    frames."""

    endpoint: str
    fields: tuple[str, ...]
    frames: bool = False


RUN = JobKind(
    "/segment",
    ("video", "frames_zip", "linked", "tracker", "sam", "stride", "max_frames", "min_score", "max_objects",
     "output_side", "style"),
    frames=True,
)  # fmt: skip
RERENDER = JobKind(
    "/rerender",
    ("state", "keep", "merge", "split", "min_score", "output_side", "style"),
    frames=True,
)
SCORE = JobKind("/score", ("gt_zip", "masks_zip"))
LOAD = JobKind("/load_url", ("url",))
# a start line's name of an argument whose own name says little: Re-render's last run, by the input it ran on
_LABELS = {"state": "input"}


def _shown(value: Any) -> str | None:
    """An argument as a start line gives it; None: left out."""
    if value is None or value == "" or value == []:
        return None
    if isinstance(value, SessionRun):  # Re-render's last run: the input it ran on
        return Path(value.source).name or "?"
    if isinstance(value, (list, tuple)):
        return one_line(",".join(map(str, value)), VALUE_CHARS)
    if isinstance(value, str) and looks_like_link(value):
        try:
            return parse_link(value).shown  # no credentials, no query
        except RemoteVideoError:
            return "(not a valid link)"
    if isinstance(value, str) and os.path.isabs(value):  # an upload, a download: no server path
        return one_line(Path(value).name, VALUE_CHARS)
    return one_line(str(value), VALUE_CHARS)


_CURRENT: contextvars.ContextVar[JobLog | None] = contextvars.ContextVar(
    "uvosam_job_log", default=None
)


def current_job() -> JobLog | None:
    """The job whose handler runs in this context (``JobLog.current``), if any."""
    return _CURRENT.get()


def count_step(step: JobProgress) -> None:
    """Count a step of the job whose handler runs in this context (``JobLog.current``; none: nothing to do)."""
    job = _CURRENT.get()
    if job is not None:
        job.count(step)


@dataclass
class JobLog:
    """One job's lines: ``begin`` writes its start line, ``end`` its end line (once: the first end counts)."""

    kind: JobKind
    page: bool
    tag: str
    started: float = field(default_factory=time.monotonic)
    frames: int = 0
    tracks: int = 0
    job_s: float | None = None  # the library's time for the frames (its steps' elapsed_s)
    finished: bool = False  # its result came
    ended: bool = False

    @classmethod
    def begin(
        cls, kind: JobKind, arguments: Mapping[str, Any], *, page: bool, request: Any
    ) -> JobLog:
        job = cls(kind, page, session_tag(request))
        shown = ((_LABELS.get(name, name), _shown(arguments.get(name))) for name in kind.fields)
        fields = " ".join(f"{label}={value}" for label, value in shown if value is not None)
        logger.info("start %s: %s", job.where, fields or "-")
        return job

    @property
    def where(self) -> str:
        """How its lines name its request (``where``)."""
        return where(self.kind.endpoint, self.page, self.tag)

    @contextlib.contextmanager
    def current(self) -> Iterator[JobLog]:
        """This job is the one ``count_step`` counts, inside the block (one step of its handler: the context is the
        task that steps it)."""
        token = _CURRENT.set(self)
        try:
            yield self
        finally:
            _CURRENT.reset(token)

    def count(self, step: JobProgress) -> None:
        result = step.result
        if result is not None:
            self.frames, self.tracks, self.job_s = (
                result.num_frames,
                len(result.tracks),
                result.seconds,
            )
            self.finished = True
        else:
            self.frames, self.tracks, self.job_s = (
                step.frames_done,
                step.tracks_so_far,
                step.elapsed_s,
            )

    def end(self, outcome: str, why: str = "") -> None:
        """The end line: ``outcome`` (done, refused, stopped, failed); the frames, tracks and their time (a job that
        counts frames: the library's time and speed, as the status line gives them); the time since the start;
        then ``why`` (a refusal's message, a failure's error id)."""
        if self.ended:
            return
        self.ended = True
        parts = []
        if self.kind.frames:
            parts.append(count(self.frames, "frame"))
            if self.job_s:  # a step came
                fps = self.frames / self.job_s
                parts[-1] += (
                    f", {count(self.tracks, 'track')} in {self.job_s:.1f} s ({fps:.2f} fps)"
                )
        parts.append(f"{time.monotonic() - self.started:.1f} s in all")
        text = ", ".join(parts) + (f": {one_line(why)}" if why else "")
        logger.info("%s %s: %s", outcome, where(self.kind.endpoint, self.page, self.tag), text)
