"""Counts and ids in messages, summaries and names: ``count(1, "frame")`` is "1 frame", never "1 frames";
``id_ranges([1, 2, 3, 7])`` is "1-3, 7"; ``and_list(["a", "b", "c"])`` is "a, b and c"."""

from __future__ import annotations


def count(number: int, noun: str, plural: str | None = None) -> str:
    """``number`` and ``noun``, in the plural (``plural``, else ``noun + "s"``) unless ``number`` is 1."""
    return f"{number} {noun if number == 1 else plural or noun + 's'}"


def and_list(items: list[str]) -> str:
    """``["1"]`` -> ``"1"``, ``["1", "2"]`` -> ``"1 and 2"``, ``["1", "2", "3"]`` -> ``"1, 2 and 3"``."""
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"


def id_ranges(ids: list[int], *, to: str = "-", sep: str = ", ") -> str:
    """Sorted ``ids`` with each run of three or more consecutive ones written ``first<to>last``, joined by ``sep``:
    ``[1, 2, 3, 7]`` -> ``"1-3, 7"``; with ``to="to", sep="-"``: ``"1to3-7"``; ``[]`` -> ``""``."""
    runs: list[list[int]] = []
    for i in ids:
        if runs and i == runs[-1][-1] + 1:
            runs[-1].append(i)
        else:
            runs.append([i])
    return sep.join(f"{r[0]}{to}{r[-1]}" if len(r) > 2 else sep.join(map(str, r)) for r in runs)
