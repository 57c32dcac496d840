"""Counts in messages and summaries: ``count(1, "frame")`` is "1 frame", never "1 frames"."""

from __future__ import annotations


def count(number: int, noun: str, plural: str | None = None) -> str:
    """``number`` and ``noun``, in the plural (``plural``, else ``noun + "s"``) unless ``number`` is 1."""
    return f"{number} {noun if number == 1 else plural or noun + 's'}"
