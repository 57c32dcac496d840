"""Clean-up after a failure (``best_effort``): every step is tried, one that fails is logged as a warning with its
traceback, and the error that made the clean-up needed is the one raised, not the clean-up's.

Without it, a clean-up step that failed inside ``except BaseException: <clean up>; raise`` replaced the error being
handled (a tracker's ``TypeError`` was told as "no permission to write in <out>"; the real error was only the
chained traceback's "During handling of the above exception") and skipped the steps after it (partial outputs
left). It depends on nothing in uvosam, so any module may use it.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable

logger = logging.getLogger(__name__)


def best_effort(what: str, *steps: Callable[[], object]) -> None:
    """Run each of ``steps`` (a clean-up after ``what`` failed, e.g. "a run that did not finish"); one that raises
    an ``Exception`` is logged as a warning with its traceback and the next is tried. A ``KeyboardInterrupt``
    during the clean-up is raised (the user asked to stop)."""
    for step in steps:
        try:
            step()
        except Exception:
            name = _step_name(step)
            logger.warning("clean-up after %s: %s failed", what, name, exc_info=True)


def _step_name(step: Callable[[], object]) -> str:
    """A step as a warning names it: ``VideoWriter.discard``, ``Path.unlink('/out/x.tmp')`` for a partial."""
    if isinstance(step, functools.partial):
        args = ", ".join(str(a) for a in step.args)
        return f"{_step_name(step.func)}({args})"
    return getattr(step, "__qualname__", repr(step))
