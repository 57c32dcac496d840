"""The refusals met before a handler runs, each one INFO line of the server log (``log_refusals``): a request that
Gradio refuses itself (a full queue, a session's second waiting run, a file value that was not uploaded, a call with
too few values) or that fails outside the app's decorated handlers, told as ``uvosam_app.errors`` tells a failed
request (``to_gr_error``; escaped for the page's toast, ``for_page``). A job of a decorated handler
(``errors.text_toasts``, ``errors.failures_in_status``) logs its own refusal in its end line (``JOB_LOGGED``).
"""

from __future__ import annotations

import html
import json
import logging
import re
from typing import Any

import gradio as gr
import pydantic
from gradio import utils
from gradio.exceptions import InvalidPathError

from uvosam_app.errors import (
    DISK_FULL,
    INTERNAL_ERROR,
    JOB_LOGGED,
    for_page,
    from_page,
    to_gr_error,
)
from uvosam_app.server_log import one_line, session_tag, where
from uvosam_app.text import out_of_memory_text

logger = logging.getLogger("uvosam.app")


def log_refusals(blocks: gr.Blocks) -> None:
    """One INFO line in the server log for each request of ``blocks`` refused with a message for the visitor (a
    ``gr.Error``: a non-video, a truncated mp4, a setting out of range, ZeroGPU's quota, Gradio's "Queue is full",
    a session's second waiting run (``queue_turns``)):
    the endpoint, page or API, the session tag and the message (``server_log.one_line``); no
    traceback, no file contents. Gradio logs none of them (a ``gr.Error`` that says ``print_exception=False``
    prints nothing); an unexpected error (its id) and running out of GPU memory were logged by ``to_gr_error``
    already, and a job's refusal by its end line (``JOB_LOGGED``). Call it once ``blocks.queue()`` is set.

    Wraps, on the instance, the two methods of Gradio 6.31 that every refusal passes: ``Blocks.process_api`` (a
    component's ``preprocess``, a handler, a file link: whatever raises in an event) and ``Queue.push`` (a full
    queue answers "Queue is full" before any handler is called, and ``queue_turns`` its refusals). A call with
    fewer values than the endpoint takes (a client of an older API: /rerender took 8) is refused here too, with how
    many it takes (``_too_few_values``), where Gradio's ValueError answered ``{"error": null}`` and logged a
    traceback; so is a file value Gradio refuses (not uploaded, no ``meta``: ``_bad_file_value``), which was
    "Something went wrong on our side" with a traceback."""
    process_api = blocks.process_api
    push = blocks._queue.push

    async def logged_process_api(*args: Any, **kwargs: Any) -> Any:
        block_fn = kwargs["block_fn"] if "block_fn" in kwargs else args[0]
        try:
            return await process_api(*args, **kwargs)
        except gr.Error as err:
            if not getattr(err, JOB_LOGGED, False):
                _log_refusal(_endpoint(blocks, block_fn), err.message, kwargs.get("request"))
            raise
        except Exception as err:  # unmapped: a file link's download, an unwrapped handler
            inputs = kwargs["inputs"] if "inputs" in kwargs else args[1]
            if isinstance(err, ValueError) and _TOO_FEW_VALUES in str(err):
                told = _too_few_values(blocks, block_fn, len(inputs))
            else:
                told = _bad_file_value(_endpoint(blocks, block_fn), err, inputs)
            if told is None:
                raise _mapped(blocks, block_fn, err, kwargs.get("request")) from err
            # escaped for the page's toast (for_page): "<that path>" would vanish there
            refusal = for_page(gr.Error(told, print_exception=False), kwargs.get("request"))
            _log_refusal(_endpoint(blocks, block_fn), refusal.message, kwargs.get("request"))
            raise refusal from None

    async def logged_push(*args: Any, **kwargs: Any) -> Any:
        accepted, detail, state = await push(*args, **kwargs)
        if not accepted:
            body = kwargs["body"] if "body" in kwargs else args[0]
            # the session hash is the body's (Gradio's request object has none)
            _log_refusal(
                _endpoint(blocks, body.fn_index),
                _join_refusal(detail),
                body.request,
                session_tag(body),
            )
        return accepted, detail, state

    blocks.process_api = logged_process_api  # type: ignore[method-assign]
    blocks._queue.push = logged_push  # type: ignore[method-assign]


def _join_refusal(detail: Any) -> str:
    """The message of a refused queue join: Gradio's text ("Queue is full ..."), or a validator's entries' (one
    for each input; those that failed have a message)."""
    if isinstance(detail, list):
        return " ".join(d.get("message", "") for d in detail if d.get("is_valid") is False)
    return str(detail)


def _mapped(blocks: gr.Blocks, block_fn: Any, err: Exception, request: Any) -> gr.Error:
    """``err``, which reached ``log_refusals``' wrapper unmapped, as the request should get it: ``to_gr_error``'s
    message (an unexpected error logged with its traceback and an error id, the request named with its session
    tag) where Gradio answered "The upstream Gradio app has raised an exception" and logged a bare traceback; a
    refusal's line in the log (``_log_refusal``)."""
    endpoint = _endpoint(blocks, block_fn)
    shown = to_gr_error(err, request=where(endpoint, from_page(request), session_tag(request)))
    page_err = for_page(shown, request)
    _log_refusal(endpoint, page_err.message, request)
    return page_err


# Gradio 6.31's ValueError for a call with fewer values than the event's inputs (``Blocks.validate_inputs``): it
# answered the client {"error": null} and logged the traceback
_TOO_FEW_VALUES = "didn't receive enough input values"


def _too_few_values(blocks: gr.Blocks, block_fn: Any, sent: int) -> str:
    """What a client that sent ``sent`` values, fewer than the event takes, is told: how many its API page lists
    (its inputs but the States, which Gradio fills in)."""
    if isinstance(block_fn, int):
        block_fn = blocks.fns.get(block_fn)
    listed = sum(not getattr(block, "skip_api", False) for block in getattr(block_fn, "inputs", ()))
    return (
        f"{_endpoint(blocks, block_fn)} takes {listed} values, those its API page lists, in order (GET "
        f"/gradio_api/info); this call sent {sent}. Send them all (gradio_client fills in the defaults)."
    )


# how an API client sends a file (docs/app.md, "Other clients")
_SEND_FILES = (
    'upload it first (POST it to /gradio_api/upload) and send the path that returns, as {"path": <that path>, '
    '"meta": {"_type": "gradio.FileData"}}; gradio_client\'s handle_file("clip.mp4") does both'
)


def _bad_file_value(endpoint: str, err: Exception, inputs: list[Any]) -> str | None:
    """What an API client that sent a file value Gradio 6.31 refuses before any handler is told (None: ``err`` is
    no such refusal): a path that was not uploaded (``InvalidPathError``: /etc/passwd, a relative path, a path of
    the client's machine) or a value that is no ``FileData`` (no ``meta``, a bare string: pydantic's
    ``ValidationError``). Both answered "Something went wrong on our side" with a traceback in the log. The
    message names the value as sent (the client's own text), never the server path Gradio resolved it to."""
    if isinstance(err, InvalidPathError):
        resolved = re.match(r"Cannot move (.+?) to the gradio cache dir", str(err))
        paths = [
            v.get("path") for v in inputs if isinstance(v, dict) and isinstance(v.get("path"), str)
        ]
        sent = [
            p for p in paths if resolved and str(utils.abspath(p)) == resolved.group(1)
        ] or paths
        named = f" {json.dumps(sent[0])[:200]}" if sent else ""
        return f"{endpoint}: the file{named} was not uploaded to this server: {_SEND_FILES}."
    if isinstance(err, pydantic.ValidationError) and err.title == "FileData":
        got = err.errors()[0].get("input") if err.errors() else None
        return f"{endpoint} got {json.dumps(got, default=str)[:200]} where it takes a file: {_SEND_FILES}."
    return None


def _endpoint(blocks: gr.Blocks, block_fn: Any) -> str:
    """An event's name in the log: ``/segment`` for an API endpoint, else its handler's name."""
    if isinstance(block_fn, int):
        block_fn = blocks.fns.get(block_fn)
    api_name = getattr(block_fn, "api_name", None)
    return f"/{api_name}" if api_name else str(getattr(block_fn, "name", block_fn))


def _log_refusal(endpoint: str, message: str, request: Any, tag: str | None = None) -> None:
    """A refusal's line; ``tag``: the session's (default: the request's, ``session_tag``)."""
    page = from_page(request)
    if page:  # as the request got it, escaped for the toast (for_page): the log gives the text
        message = html.unescape(message.replace("<br>", "\n"))
    if message.startswith(INTERNAL_ERROR) or message in (out_of_memory_text(), DISK_FULL):
        return  # logged where it was mapped (to_gr_error)
    tag = tag or session_tag(request)
    logger.info("refused %s: %s", where(endpoint, page, tag), one_line(message))
