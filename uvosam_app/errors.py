"""What a user is told when a request fails (``to_gr_error``): the library's errors about the input keep their
message (worded for the app's inputs), running out of GPU memory says what to try, anything else is logged with an
id that the message names; and how the page shows it: in the toast as written (``text_toasts`` for a function,
``failures_in_status`` for an async generator), and in the status line of a job that failed, or in place of the
scores of a Score that did (``failures_in_status``). Each job these decorators wrap is two lines of the server log,
its start and its end (``uvosam_app.server_log``); each refusal met before a handler runs is one
(``uvosam_app.refusals``).
"""

from __future__ import annotations

import contextlib
import functools
import html
import inspect
import logging
import os
import re
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import gradio as gr

from uvosam.config import VideoLimits
from uvosam.errors import (
    InputError,
    MissingPackageError,
    MissingWeightsError,
    VideoLimitError,
    WeightsError,
    in_chain,
    out_of_memory,
    out_of_space,
    write_problem,
)
from uvosam.frame_folder import FRAME_EXTENSIONS
from uvosam.video import ACCEPTED_FILE, ACCEPTED_FOLDER, VIDEO_EXTENSIONS
from uvosam_app.checks import taken_inputs
from uvosam_app.models import ModelsNotLoadedError
from uvosam_app.server_log import JobKind, JobLog, current_job, one_line
from uvosam_app.text import failed_status, out_of_memory_text, pixels_size

logger = logging.getLogger("uvosam.app")

# uvosam's deliberate refusals (``InputError``: also a video that cannot be read or is over a limit, a link that
# cannot be fetched, a missing input file) and the app's own: their messages are the visitor's to act on. A plain
# ValueError, FileNotFoundError or RuntimeError met after the checks (numpy's "operands could not be broadcast", a
# cache file gone) is ours: to_gr_error logs it with its traceback and an error id
USER_ERRORS = (InputError, ModelsNotLoadedError)
# the models' files and packages: their messages name server paths and the host's advice (the handler that loads a
# pair words them for a visitor: ``uvosam_app.models.unavailable``; any other path gets the same words here)
MODEL_ERRORS = (MissingWeightsError, WeightsError, MissingPackageError)


# the library's "other formats ffmpeg reads also work" is true of Run, but Gradio's upload box takes video files only
# (its browser check: "Only video/x-m4v,video/* allowed"), so an animated GIF is refused there (the box of a zip of
# frames takes it: ``checks.FRAMES_BOX_VIDEOS``)
APP_ACCEPTED_FILE = (
    f"a video file ({' '.join(VIDEO_EXTENSIONS)} or another video format ffmpeg reads; an animated GIF, which "
    "the upload box refuses, in the box of a zip of frames or by a direct link; an animated WebP or APNG there too)"
)

# a still image (a still PNG or WebP in the box of a zip of frames): the app has no folder input, and its zips take
# JPEG/PNG frames only (``uvosam.video_probe``'s words, replaced)
STILL_IMAGE_ADVICE = "To segment images, put them in a folder as frames."
APP_STILL_IMAGE_ADVICE = (
    f"To segment images, zip them as {'/'.join(FRAME_EXTENSIONS)} frames and give the zip as a zip of "
    "frames."
)

# VideoLimits field -> (unit, what a user of the app can do, the host's variable); the app caps Max frames at
# its frame limit, so that one never trips. Plain text, no Markdown: the toast shows it as written, the
# description as Markdown (where "*Max frames*" was italic, the toast showed the asterisks).
_SCALE_DOWN = (
    "px",
    "scale it down (e.g. to 1920x1080: the app scales larger frames down itself) and upload it again",
    "UVOSAM_MAX_SIDE",
)
LIMIT_ADVICE = {
    "max_side": _SCALE_DOWN,
    "max_pixels": _SCALE_DOWN,
    "max_duration_s": (
        "s",
        "lower Max frames (under Settings; max_frames over the API) to cover less of it, or trim it",
        "UVOSAM_MAX_SECONDS",
    ),
}


# how the host moves a limit: the side and pixel limits are those of ``AppSettings.limits``, which the host's
# UVOSAM_MAX_SIDE (the size frames are scaled down to) raises only when set over them
_HOST = dict.fromkeys(
    ("max_side", "max_pixels"),
    f"The app's host can raise it by setting UVOSAM_MAX_SIDE over {VideoLimits.max_side}",
)


def limit_text(err: VideoLimitError) -> str:
    """A limit refusal in the app's words: its sliders, not the library's ``VideoLimits`` fields (whose names the
    library's own message gives, for Python users)."""
    if err.limit_name not in LIMIT_ADVICE:
        return str(err)
    unit, advice, variable = LIMIT_ADVICE[err.limit_name]
    # a pixel count as 9437184 (4096x2304), not 9.43718e+06
    limit = f"{err.limit:g}" if err.limit < 1e6 else str(err.limit)
    limit += f" {unit}"
    if err.limit_name == "max_pixels":
        limit += f" ({pixels_size(int(err.limit))})"
    host = _HOST.get(err.limit_name, f"The app's host sets this limit: {variable}")
    return f"{err.subject}, over this app's limit of {limit}. To use it, {advice}. ({host}.)"


def to_gr_error(err: BaseException, *, request: str = "") -> gr.Error:
    """Library errors about the input keep their message; anything else is logged with an id.

    A ``gr.Error`` is already meant for the user (ZeroGPU's quota/duration refusals, or an error
    this function mapped inside the GPU function) and is returned as it is. ``request``: how the log line of an
    unexpected error names the request (``server_log.where``: ``/score (API, 1f3a9c) failed (error id ...)``, or
    what failed, ``the description of clip.mp4``); else the job whose handler runs (``server_log.current_job``)."""
    if isinstance(err, gr.Error):
        return err
    if out_of_memory(err):  # the GPU's (CUDA, MPS) or the server's
        logger.warning("run stopped, out of memory: %s", (str(err).splitlines() or [""])[0])
        return gr.Error(out_of_memory_text(), print_exception=False)
    if isinstance(err, VideoLimitError):
        return gr.Error(limit_text(err), print_exception=False)
    full = _out_of_space(err)
    if full is not None:  # also a download that could not be saved (its RemoteVideoError's cause)
        logger.warning("request stopped: %s (%s)", _full_folders(full), one_line(str(full)))
        return gr.Error(DISK_FULL, print_exception=False)
    if isinstance(err, MODEL_ERRORS):
        logger.error("a model cannot run: %s", err)
        return gr.Error(MODEL_UNAVAILABLE, print_exception=False)
    # the app takes a zip of frames where the library takes a folder
    if isinstance(err, USER_ERRORS):
        message = str(err).replace(ACCEPTED_FILE, APP_ACCEPTED_FILE)
        message = message.replace(
            ACCEPTED_FOLDER, f"a zip of its {'/'.join(FRAME_EXTENSIONS)} frames"
        )
        message = message.replace(STILL_IMAGE_ADVICE, APP_STILL_IMAGE_ADVICE)
        return gr.Error(message, print_exception=False)
    error_id = uuid.uuid4().hex[:8]
    job = current_job()
    request = request or (job.where if job is not None else "a request")
    logger.error("%s failed (error id %s)", request, error_id, exc_info=err)
    return gr.Error(
        f"{INTERNAL_ERROR} (error id {error_id}). Try again; if it persists, report the id.",
        print_exception=False,
    )


# to_gr_error's message for a model's missing or damaged weights (or package) met outside the handler that loads
MODEL_UNAVAILABLE = (
    "A model cannot run here: its weights (or its package) are not installed on this server, or are damaged. "
    "Choose another model; the server log names the files."
)
# to_gr_error's message for a full disk (or a used-up quota) on the server: the host's to mend (its log line names
# the folder), nothing the visitor did
DISK_FULL = (
    "The server is out of disk space, so this request stopped. Nothing of yours is lost (your video and settings "
    "are as they were): try again later."
)


def _out_of_space(err: BaseException) -> OSError | None:
    """The full disk's ``OSError`` that ``err`` is or was raised from (its causes and contexts), if any."""
    return in_chain(err, out_of_space)  # type: ignore[return-value]


# the app's work folder (``set_work_folder``), for the host's log line
_work_folder: list[Path] = []


def set_work_folder(folder: Path) -> None:
    """The app's work folder (its ``WorkRoot``'s: ``App`` sets it), which a full disk's log line names when the
    error names no file."""
    _work_folder[:] = [Path(folder)]


def _full_folders(err: OSError) -> str:
    """Which folder is full, for the host (``uvosam.errors.write_problem``'s words): the error's file's, else the
    two the app writes in (its work folder, ``set_work_folder``; Gradio's temp folder, GRADIO_TEMP_DIR, where
    uploads go)."""
    if err.filename:
        return str(write_problem(err, Path(os.fsdecode(err.filename)).parent))
    temp = Path(tempfile.gettempdir())
    work = _work_folder[0] if _work_folder else os.environ.get("UVOSAM_WORK_DIR") or temp
    uploads = os.environ.get("GRADIO_TEMP_DIR") or temp / "gradio"
    folders = f"the work folder ({work}) or Gradio's temp folder ({uploads}, GRADIO_TEMP_DIR)"
    return f"{write_problem(err, folders)}; free some space there"


# the start of to_gr_error's message for an unexpected error (which it logged, with its traceback)
INTERNAL_ERROR = "Something went wrong on our side"


def _outcome(message: str) -> tuple[str, str]:
    """How a job's end line names what ended it with ``message`` (a ``to_gr_error`` message): ("failed", its error
    id, "out of GPU memory" or a model that cannot run), or ("refused", the message)."""
    if message.startswith(INTERNAL_ERROR):
        found = re.search(r"error id (\w+)", message)
        return "failed", f"error id {found.group(1) if found else '?'}"
    if message == out_of_memory_text():
        return "failed", "out of GPU memory"
    # the server's fault, not the visitor's (the ERROR line to_gr_error wrote names it)
    if message == MODEL_UNAVAILABLE:
        return "failed", "a model cannot run (weights or package missing or damaged)"
    if message == DISK_FULL:
        return "failed", "the server is out of disk space"
    return "refused", message


# set on the gr.Error that ended a job whose end line said it (``refusals.log_refusals`` leaves it out)
JOB_LOGGED = "uvosam_job_logged"


def _begin(kind: JobKind, signature: inspect.Signature, args: tuple, kwargs: dict) -> JobLog:
    """The start line of a decorated handler's job (``JobLog.begin``), from the arguments it was called with."""
    arguments = dict(signature.bind(*args, **kwargs).arguments)
    # a GIF in the box of a zip of frames is the video
    if "video" in arguments and "frames_zip" in arguments:
        arguments["video"], arguments["frames_zip"] = taken_inputs(
            arguments["video"], arguments["frames_zip"]
        )
    request = arguments.get("request")
    return JobLog.begin(kind, arguments, page=from_page(request), request=request)


def _ended_by(job: JobLog, shown: gr.Error, *raised: BaseException) -> None:
    """The end line of ``job``, which ended with ``shown`` (``to_gr_error``'s), marked on the errors ``raised``."""
    job.end(*_outcome(shown.message))
    for err in raised:
        setattr(err, JOB_LOGGED, True)


Handler = TypeVar("Handler", bound=Callable[..., Any])


def from_page(request: gr.Request | None) -> bool:
    """Whether a request came from the app's page: Gradio 6.31's page sends ``x-gradio-user: app`` with each
    event; its API clients send ``api`` (gradio_client, @gradio/client) or nothing (a plain HTTP call). ZeroGPU's
    ``spaces`` package tells them apart the same way."""
    headers = getattr(request, "headers", None) or {}
    return headers.get("x-gradio-user") == "app"


def for_page(err: gr.Error, request: gr.Request | None) -> gr.Error:
    """``err`` as the page's toast should get it: the toast renders the message as (sanitized) HTML, so a
    ``<...>`` in it (a file ``a<b>.mp4``, a repr ``<zipfile.ZipExtFile ...>``) vanished with all that followed,
    and ``&amp;`` showed as ``&``. A plain ``gr.Error`` to the page is escaped (line breaks kept); API clients get
    the text as it is, and a subclass (ZeroGPU's ``HTMLError``, whose message holds a link) is HTML already."""
    if type(err) is not gr.Error or not from_page(request):
        return err
    return gr.Error(
        html.escape(err.message, quote=False).replace("\n", "<br>"),
        duration=err.duration,
        visible=err.visible,
        title=err.title,
        print_exception=err.print_exception,
    )


def _request_signature(handler: Callable) -> inspect.Signature:
    """``handler``'s signature, which must have a ``request: gr.Request`` parameter (who asked: ``for_page``)."""
    signature = inspect.signature(handler)
    if "request" not in signature.parameters:
        raise TypeError(f"{handler.__qualname__} needs a `request: gr.Request` parameter")
    return signature


def _for_request(
    shown: gr.Error, signature: inspect.Signature, args: tuple, kwargs: dict
) -> gr.Error:
    """``shown`` as the request the handler got (``args``, ``kwargs``) should see it (``for_page``)."""
    return for_page(shown, signature.bind(*args, **kwargs).arguments.get("request"))


def text_toasts(job: JobKind) -> Callable[[Handler], Handler]:
    """Decorate an event handler function with a ``request: gr.Request`` parameter, a ``job`` of the server log
    (its start line, and its end line: done, refused with the message, or failed with the id ``to_gr_error`` logged
    the error with): the ``gr.Error`` it raises shows its message in the page's toast exactly as written
    (``for_page``); API clients see the plain text, and an unexpected error is mapped (``to_gr_error``). A
    generator handler goes through ``failures_in_status`` (Gradio ends a sync generator's cancelled event only once
    its current step returns: they are async generators, where Stop lands at once)."""

    def decorate(handler: Handler) -> Handler:
        signature = _request_signature(handler)
        if inspect.isgeneratorfunction(handler) or inspect.isasyncgenfunction(handler):
            raise TypeError(
                f"{handler.__qualname__}: a generator handler is an async one, under failures_in_status"
            )

        @functools.wraps(handler)
        def function(*args: Any, **kwargs: Any) -> Any:
            logged = _begin(job, signature, args, kwargs)
            try:
                result = handler(*args, **kwargs)
                logged.end("done")
                return result
            except Exception as err:
                shown = to_gr_error(err, request=logged.where)
                page_err = _for_request(shown, signature, args, kwargs)
                _ended_by(logged, shown, page_err)
                if page_err is err:
                    raise
                raise page_err from err
            finally:
                logged.end("stopped")  # no end yet: interrupted (the first end line stays)

        function.job = job  # type: ignore[attr-defined]
        return function  # type: ignore[return-value]

    return decorate


def failures_in_status(
    width: int, *, job: JobKind, line: Callable[[str], str] = failed_status
) -> Callable[[Handler], Handler]:
    """Decorate an async-generator handler (with a ``request: gr.Request`` parameter) whose updates are ``width``
    outputs, the status line first (one output: the update is its value, not a tuple): what it raises (a refusal
    before it starts, a failure of its job) is first written into the status line (``line(message)``: "failed:
    <message>"; its other outputs unchanged), then raised, as a ``gr.Error`` (``to_gr_error``: anything else is
    logged with an id) whose toast shows the message as written (as ``text_toasts``'). The toast goes after a few
    seconds; the status line keeps why. A Stop (Gradio cancels the handler's task) is no failure: nothing is
    written (``App.stopped`` writes its line).

    The handler is a ``job`` of the server log: its start line, then its end line, once: done (its result came),
    refused (with the message), failed (with the error id), or stopped (cancelled by Stop or an API client's
    cancel, or closed before its end), with the frames it did (``uvosam_app.progress.drive`` counts them while
    the handler's step runs: ``JobLog.current``).

    A cancel lands inside the handler, whose ``finally`` runs at once; Gradio never closes the generators of a
    finished or cancelled event itself (its wrapper's ``aclose`` leaves the inner one), asyncio's finaliser of unused
    async generators does that later."""

    def decorate(handler: Handler) -> Handler:
        signature = _request_signature(handler)
        if not inspect.isasyncgenfunction(handler):
            raise TypeError(f"{handler.__qualname__}: an async generator is expected")

        @functools.wraps(handler)
        async def stream(*args: Any, **kwargs: Any) -> Any:
            logged = _begin(job, signature, args, kwargs)
            try:
                async with contextlib.aclosing(handler(*args, **kwargs)) as updates:
                    while True:
                        with logged.current():
                            try:
                                update = await anext(updates)
                            except StopAsyncIteration:
                                break
                        yield update
                logged.end("done")
            except Exception as err:  # raised again, once the status line says it
                shown = to_gr_error(err, request=logged.where)
                page_err = _for_request(shown, signature, args, kwargs)
                _ended_by(logged, shown, page_err)
                status = line(shown.message)
                yield status if width == 1 else (status, *[gr.skip()] * (width - 1))
                if page_err is err:
                    raise
                raise page_err from err
            finally:
                # no end yet: cancelled, or closed before its end (a job whose result came is done)
                logged.end("done" if logged.finished else "stopped")

        stream.job = job  # type: ignore[attr-defined]
        return stream  # type: ignore[return-value]

    return decorate
