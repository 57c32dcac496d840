"""File names that every operating system can write, made so on every system (a result made on Linux is copied to
Windows as it is): Windows refuses the characters ``<>:"|?*`` and control characters in a name
(``portable_characters``), and the names of its devices (``CON``, ``NUL``, ``COM1`` ...) in any case and with any
extension (``con.mp4``; ``portable_name``). ``safe_name`` makes the name of a job's files (``<video>``) from an
input's name; ``remote_files.safe_file_name`` and the app's unpacked zips use the two parts.
"""

from __future__ import annotations

import unicodedata

_SUPERSCRIPTS = (
    "\u00b9\u00b2\u00b3"  # COM1 written with a superscript one (Windows reserves them too)
)
RESERVED_NAMES = frozenset(
    {"CON", "PRN", "AUX", "NUL"}
    | {f"{port}{n}" for port in ("COM", "LPT") for n in [*"0123456789", *_SUPERSCRIPTS]}
)
"""Windows' device names ("Naming Files, Paths, and Namespaces"), upper case."""


def portable_name(name: str) -> str:
    """``name`` with ``_`` after its part before the first dot when that part is a device name of Windows
    (``RESERVED_NAMES``, any case, trailing spaces ignored as Windows ignores them): ``CON`` -> ``CON_``,
    ``nul.png`` -> ``nul_.png``; any other name as it is."""
    base, dot, rest = name.partition(".")
    if base.rstrip(" ").upper() not in RESERVED_NAMES:
        return name
    return f"{base}_{dot}{rest}"


def portable_characters(name: str) -> str:
    """``name`` with ``_`` for each character Windows refuses in a file name: ``<>:"|?*`` (``12:00.png`` would be
    an NTFS stream of a file ``12``) and control characters (Unicode's category C)."""
    return "".join("_" if unicodedata.category(c)[0] == "C" or c in '<>:"|?*' else c for c in name)


def safe_name(name: str) -> str:
    """``name`` as a file name part: letters, digits, ``-_.`` (others become ``_``), at most 80 characters, a
    ``_`` after a device name of Windows (``portable_name``: ``CON_``), ``"video"`` if nothing is left."""
    cleaned = "".join(c if c.isalnum() or c in "-_." else "_" for c in name).strip("._")
    return portable_name(cleaned)[:80] or "video"
