"""What ``segment`` and ``rerender`` print about possible id switches (``uvosam.merge_hints``)."""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from pathlib import Path

from uvosam.merge_hints import MergeHint, merge_text


def print_merge_hints(
    hints: Sequence[MergeHint],
    run: Path,
    *,
    merge: Mapping[int, int] | None = None,
    keep: Sequence[int] | None = None,
    min_score: float = 0.0,
    cached: bool = True,
    split: Sequence[str] = (),
) -> None:
    """Nothing without hints; else one line each and the command that joins them.

    ``merge``, ``keep``, ``min_score`` and ``split`` (as given: ``track@frame`` texts): those of the ``rerender``
    that made the hints' tracks. It starts from the run's masks, so the command repeats them (with the merge grown
    by the hints), or it would undo them.
    ``cached``: the run kept its masks (``segment --cache``); without them, say how to get them instead.
    """
    if not hints:
        return
    print("possible id switches (one object that may have got a new id):")
    for hint in hints:
        print(f"  {hint.source}>{hint.target}: {hint.describe()}")
    options = f" --keep {' '.join(map(str, keep))}" if keep else ""
    options += f" --min-score {min_score}" if min_score > 0 else ""
    options += f" --split {' '.join(map(shlex.quote, split))}" if split else ""
    command = (
        f'uvosam rerender {shlex.quote(str(run))}{options} --merge "{merge_text(hints, merge)}"'
    )
    if cached:
        print(f"to join them: {command}")
    else:
        print(f"to join them without the models, run segment again with --cache, then: {command}")
