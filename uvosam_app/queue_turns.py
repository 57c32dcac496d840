"""One waiting run per session: a Space's queue is shared by strangers, and an API client that submits many runs
at once (``client.submit`` in a loop: one session) would fill it and make everyone else wait behind its videos.

``limit_waiting_runs`` refuses a run while the same session already has ``per_session`` runs waiting for the GPU,
before Gradio queues it, with a message that says what to do. A session's running run does not count: a Run pressed
just after Stop waits for the stopped one to let go of the GPU, as it did. The page's own Run button never meets
the limit (Gradio ignores its clicks while its run is pending); a client that opens a new session for each run is
not limited here (a host who needs that puts the Space behind sign-in or a proxy's rate limit).
"""

from __future__ import annotations

from typing import Any

import gradio as gr

# Gradio 6.31's queue answers a refused join with (accepted, detail, state); this state is a 422 whose detail
# gradio_client shows as a ``ValidationError`` with each message and the page paints under the input named
_REFUSED = "validator_error"


def waiting_runs_text(per_session: int) -> str:
    """What a session refused for having ``per_session`` runs waiting is told. (Not "cancel it": Gradio 6.31's
    cancel of a waiting run stops the session's running run of the same endpoint, and the waiting one then runs.)"""
    runs = "a run" if per_session == 1 else f"{per_session} runs"
    return (
        f"This session already has {runs} waiting for a worker, as many as this app lets a session have waiting, so "
        "that everyone gets a turn. Submit the next once it has started (a loop of predict calls does); for many "
        "videos, you can also run them on your own machine with the `uvosam segment` command."
    )


def limit_waiting_runs(blocks: gr.Blocks, api_name: str, per_session: int) -> None:
    """Refuse a call of ``blocks``' endpoint ``api_name`` while its session has ``per_session`` calls of it waiting
    in Gradio's queue (0: no limit). Wraps ``Queue.push`` of ``blocks`` (call it once ``blocks.queue()`` is set,
    before ``refusals.log_refusals``, which logs the refusal).

    The count and Gradio's queuing of the event are one step on the event loop: for an endpoint without a
    validator or a cache, ``Queue.push`` awaits nothing between its start and its append (its lock is free at
    once), so two joins of a session cannot both pass."""
    if per_session <= 0:
        return
    fn = next((f for f in blocks.fns.values() if f.api_name == api_name), None)
    if fn is None:
        raise ValueError(f"{blocks} has no endpoint /{api_name} to limit")
    queue = blocks._queue
    push = queue.push

    async def push_in_turn(*args: Any, **kwargs: Any) -> Any:
        body = kwargs["body"] if "body" in kwargs else args[0]
        if body.fn_index == fn._id and body.session_hash:
            waiting = queue.event_queue_per_concurrency_id.get(fn.concurrency_id)
            mine = sum(
                event.fn is fn and event.session_hash == body.session_hash
                for event in (waiting.queue if waiting else ())
            )
            if mine >= per_session:
                return False, _refusal(len(fn.inputs), waiting_runs_text(per_session)), _REFUSED
        return await push(*args, **kwargs)

    queue.push = push_in_turn  # type: ignore[method-assign]


def _refusal(inputs: int, message: str) -> list[dict[str, Any]]:
    """A refused join's detail as Gradio's validators give it, one entry per input: the first (the video box, where
    the page would show it) with ``message``, named "session" (gradio_client prints each failed one as "- <name>:
    <message>": the video's name read as if the video were at fault), the others valid."""
    refused = {**gr.validate(False, message), "parameter_name": "session"}
    valid = [
        {**gr.validate(True, ""), "parameter_name": f"parameter_{i}"} for i in range(1, inputs)
    ]
    return [refused, *valid]
