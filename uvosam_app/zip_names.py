"""The names the files of an uploaded zip are written under (their base names, made portable), and why two of
them would be one file (on Windows or macOS, or as written). Non-UI helpers of ``app.py`` (no gradio here).
"""

from __future__ import annotations

import unicodedata
import zipfile
from collections.abc import Mapping
from pathlib import PurePosixPath

from uvosam.errors import InputError
from uvosam.portable_names import portable_characters, portable_name


def written_names(
    name: str, members: Mapping[PurePosixPath, zipfile.ZipInfo]
) -> dict[PurePosixPath, str]:
    """The name each member is written under: its base name, portable (``uvosam.portable_names``: ``12:00.png``
    becomes ``12_00.png``, ``con.png`` ``con_.png``).

    Raises:
        InputError: two members that would be one file, one overwriting the other: the same name once written
            (``a:b.png`` and ``a_b.png``), or names that differ only in case (Windows, macOS: ``A.png`` and
            ``a.png``; compared as NTFS does, a character at a time: ``straße.png`` and ``strasse.png`` are two)
            or in Unicode normalisation (macOS: ``é`` as one character or as ``e`` and an accent). The message
            names both as written and says why.
    """
    written = {path: portable_name(portable_characters(path.name)) for path in members}
    seen: dict[str, PurePosixPath] = {}
    for path, file_name in written.items():
        key = _simple_upper(unicodedata.normalize("NFC", file_name))
        if key in seen:
            first = seen[key]
            raise InputError(
                f"{name}: {_one_file(first, written[first], path, file_name)}; rename one so that their names "
                "differ in more than that, and zip the files again."
            )
        seen[key] = path
    return written


def _simple_upper(name: str) -> str:
    """``name`` in upper case a character at a time, each whose upper case is one character (``ß`` stays), as NTFS
    compares names (its table maps each character to one): ``straße`` and ``strasse`` are two names there
    (``str.casefold`` made them one)."""
    return "".join(upper if len(upper := c.upper()) == 1 else c for c in name)


def _one_file(
    first: PurePosixPath, first_written: str, second: PurePosixPath, second_written: str
) -> str:
    """Why two members would be one file, naming each as written: "NUL.jpg (written NUL_.jpg) and nul_.jpg would
    be one file on Windows and macOS, whose file names ignore case (the app adds _ to ...)"."""
    names = f"{as_written(first, first_written)} and {as_written(second, second_written)}"
    nfc = [unicodedata.normalize("NFC", n) for n in (first_written, second_written)]
    if first_written == second_written:
        where = "would be written as one file"
    elif nfc[0] == nfc[1]:
        where = f"would be one file on macOS, whose file names ignore {_NORMALISATION}"
    elif _simple_upper(first_written) == _simple_upper(second_written):
        where = "would be one file on Windows and macOS, whose file names ignore case"
    else:
        where = f"would be one file on macOS, whose file names ignore case and {_NORMALISATION}"
    renamed = dict.fromkeys(_renaming(first.name) + _renaming(second.name))  # each reason once
    because = f" ({'; '.join(renamed)})" if renamed else ""
    return f"{names} {where}{because}"


_NORMALISATION = (
    "Unicode normalisation (an accented letter as one character or as a letter and an accent)"
)


def as_written(path: PurePosixPath, written: str) -> str:
    """``path``'s name, with the name it is written under where that differs: ``NUL.jpg (written NUL_.jpg)``."""
    return path.name if written == path.name else f"{path.name} (written {written})"


def _renaming(name: str) -> list[str]:
    """What the app's renaming (``written_names``) did to ``name``, in words."""
    done = []
    portable = portable_characters(name)
    if portable != name:
        done.append(
            'the app writes each character Windows refuses in file names, <>:"|?* or a non-printing character, as _'
        )
    if portable_name(portable) != portable:
        done.append("the app adds _ to a name Windows keeps for a device, such as CON, NUL or COM1")
    return done
