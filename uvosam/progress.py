"""Progress on stderr for a terminal and for a log: a tqdm bar when stderr is a terminal or the code runs in a Jupyter
kernel (Jupyter, Colab: their stderr is no terminal, but they show the bar; ``tqdm.auto``'s widget where it can),
else a plain line at most every ``LOG_EVERY_S`` seconds and one at the end.

A tqdm bar redraws itself with ``\\r``. In a file (``nohup``, a CI log) those redraws were glued onto one physical
line, the next log record went on the end of it (``...tracks=86]INFO uvosam.export_davis: ...``) and the final bar
was there twice. ``progress_bar`` gives the commands (``segment``, ``rerender``, a download, ``train``) one rule.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, TextIO

from tqdm import tqdm

if TYPE_CHECKING:
    from typing_extensions import Self  # typing.Self from Python 3.11

LOG_EVERY_S = 30.0
"""Seconds between two progress lines in a log (stderr not a terminal)."""


def progress_bar(
    iterable: Iterable | None = None,
    *,
    desc: str,
    unit: str,
    total: float | None = None,
    initial: int = 0,
    disable: bool = False,
    file: TextIO | None = None,
    every_s: float = LOG_EVERY_S,
    **bar_options: Any,
) -> tqdm | LogProgress:
    """A progress display on ``file`` (default: stderr): tqdm's bar (``bar_options`` go to it) on a terminal or, for
    stderr, in a Jupyter kernel (``tqdm.auto``'s), else a ``LogProgress``. Both take ``update``, ``set_postfix``,
    ``close``, ``total``, ``n``, ``with`` and ``for``."""
    stream = sys.stderr if file is None else file
    notebook = file is None and "ipykernel" in sys.modules
    if disable or notebook or _is_terminal(stream):
        bar = tqdm
        if notebook:
            from tqdm.auto import tqdm as bar  # a widget in Jupyter where ipywidgets is installed
        return bar(
            iterable, desc=desc, unit=unit, total=total, initial=initial, disable=disable, file=stream,
            **bar_options,
        )  # fmt: skip
    return LogProgress(
        iterable, desc=desc, unit=unit, total=total, initial=initial, file=stream, every_s=every_s
    )


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or closed
        return False


class LogProgress:
    """Progress as plain lines for a log: ``<desc>: <unit> <n>/<total> (<rate>, <postfix>)``, e.g.
    ``clip.mp4: frame 120/300 (12.3 fps, objects=2, tracks=5)``; at most one every ``every_s`` seconds, and one when
    closed (if anything was done since the last). ``clock`` is ``time.monotonic`` (the tests pass their own)."""

    def __init__(
        self,
        iterable: Iterable | None = None,
        *,
        desc: str,
        unit: str,
        total: float | None = None,
        initial: int = 0,
        file: TextIO | None = None,
        every_s: float = LOG_EVERY_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.iterable, self.desc, self.unit, self.total = iterable, desc, unit, total
        self.n = self._start_n = initial
        self.file = file
        self.every_s = every_s
        self._clock = clock
        self._start = self._last = clock()
        self._said_n = initial  # nothing to say at the end of a run stopped before its first frame
        self._postfix: dict[str, object] = {}
        self._closed = False

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __iter__(self) -> Iterator:
        try:
            for item in self.iterable or ():
                yield item
                self.update(1)
        finally:
            self.close()

    def update(self, n: float = 1) -> None:
        """``n`` more done; a line if ``every_s`` has passed since the last."""
        self.n += n
        if self._clock() - self._last >= self.every_s:
            self._say()

    def set_postfix(self, refresh: bool = True, **values: object) -> None:
        """Values shown after the rate (``objects=2``); said with the next line."""
        del refresh
        self._postfix = values

    def close(self) -> None:
        """The last line, unless the last one said it all already."""
        if self._closed:
            return
        self._closed = True
        if self._said_n != self.n:
            self._say()

    def _say(self) -> None:
        now = self._clock()
        self._last, self._said_n = now, self.n
        details = [_rate((self.n - self._start_n) / max(now - self._start, 1e-9), self.unit)]
        details += [f"{key}={value}" for key, value in self._postfix.items()]
        stream = sys.stderr if self.file is None else self.file
        print(f"{self.desc}: {self._done()} ({', '.join(details)})", file=stream, flush=True)

    def _done(self) -> str:
        """``frame 120/300``, ``iteration 7``, ``12.0 MiB of 40.0 MiB``."""
        if self.unit == "B":
            of = f" of {self.total / 2**20:.1f} MiB" if self.total else ""
            return f"{self.n / 2**20:.1f} MiB{of}"
        of = f"/{_number(self.total)}" if self.total is not None else ""
        return f"{self.unit} {_number(self.n)}{of}"


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.1f}"


def _rate(per_s: float, unit: str) -> str:
    if unit == "B":
        return f"{per_s / 2**20:.1f} MiB/s"
    if unit == "frame":
        return f"{per_s:.2f} fps"
    return f"{per_s:.2f} {unit}s/s"
