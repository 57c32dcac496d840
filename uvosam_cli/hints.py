"""What ``segment`` and ``rerender`` print about possible id switches (``uvosam.merge_hints``)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from uvosam.merge_hints import MergeHint, merge_text


def print_merge_hints(hints: Sequence[MergeHint], run: Path) -> None:
    """Nothing without hints; else one line each and the command that joins them."""
    if not hints:
        return
    print("possible id switches (one object that may have got a new id):")
    for hint in hints:
        print(f"  {hint.source}>{hint.target}: {hint.describe()}")
    print(f"to join them (with a --cache run): uvosam rerender {run} --merge \"{merge_text(hints)}\"")
