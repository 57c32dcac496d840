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


MAX_NAME_CHARS = 80
"""The most characters of a ``safe_name`` (one more with the ``_`` after a device name of Windows)."""
_SAFE_PUNCTUATION = "-_."


def safe_name(name: str) -> str:
    """``name`` as a file name part: Unicode's NFC form (a name from macOS, NFD, keeps its accented letters: not
    ``bu_nny``), letters, digits, ``-_.`` (others become ``_``), no ``.`` or ``_`` at either end (Windows drops a
    trailing dot), at most 80 characters, then a ``_`` after a device name of Windows (``portable_name``:
    ``CON_``), ``"video"`` if nothing is left."""
    name = unicodedata.normalize("NFC", name)
    cleaned = "".join(c if c.isalnum() or c in _SAFE_PUNCTUATION else "_" for c in name)
    cut = cleaned.lstrip("._")[:MAX_NAME_CHARS].rstrip("._")
    return portable_name(cut) or "video"


def is_safe_name(name: object) -> bool:
    """Whether ``name`` is a name ``safe_name`` makes or made in an earlier release (one that added no ``_`` after
    a device name of Windows, ``con``, or cut a name after stripping it, ending it in ``.``): letters, digits and
    ``-_.``, not starting with ``.`` or ``_``, at most 81 characters; so a name of files in a folder, never a path
    out of it. A name a job recorded (in its mask cache, its run.json) that is one names its files as it is."""
    return (
        isinstance(name, str)
        and 0 < len(name) <= MAX_NAME_CHARS + 1
        and not name.startswith(("_", "."))
        and all(c.isalnum() or c in _SAFE_PUNCTUATION for c in name)
    )


def recorded_name(name: str) -> str:
    """The name of the files of a job that recorded ``name`` (a mask cache's, for its re-render): as it is when
    ``safe_name`` made it, in this release or an earlier one (``is_safe_name``: a re-render of a run ``con`` made
    before ``CON_`` replaces its ``con_*`` files, and does not leave them beside new ``con__*`` ones), else
    ``safe_name(name)``."""
    return name if is_safe_name(name) else safe_name(name)
