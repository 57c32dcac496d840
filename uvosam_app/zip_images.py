"""An uploaded zip of images, read safely: its images of ONE folder taken, bounded before anything is written, and
unpacked flat. Non-UI helpers of ``app.py`` (no gradio here); the zip of frames (``uploads``) and Score's zips
(``scoring``) are read with them.

The entry count is read from the zip's end record before ``zipfile`` parses its listing (``MAX_ZIP_ENTRIES``), the
images' count and declared sizes are capped, and so is their ratio to the zip's size (``MAX_UNPACK_RATIO``); members
that ``zipfile`` cannot read (a password, Deflate64 compression) are refused by name (``check_unpackable``); files are
written under their base names only (``zip_names``).
"""

from __future__ import annotations

import os
import re
import shutil
import struct
import zipfile
import zlib
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from uvosam.errors import InputError
from uvosam.portable_names import portable_name
from uvosam.text import and_list, count
from uvosam_app.zip_names import written_names

MAX_ZIP_ENTRIES = 100_000
"""Most entries an uploaded zip may list: ``zipfile`` parses them all when it opens one (a 200 MiB zip of empty
entries lists millions: seconds of CPU and gigabytes of memory per request)."""


def _zip_entry_count(zip_path: str | Path) -> int | None:
    """The entry count from a zip's end records (its last 64 KiB), without parsing the listing; None if not found."""
    with open(zip_path, "rb") as file:
        size = file.seek(0, os.SEEK_END)
        file.seek(max(0, size - (1 << 16) - 22))
        tail = file.read()
        end = tail.rfind(b"PK\x05\x06")
        if end < 0 or len(tail) < end + 22:
            return None
        count = struct.unpack_from("<H", tail, end + 10)[0]
        locator = end - 20
        if count == 0xFFFF and locator >= 0 and tail[locator : locator + 4] == b"PK\x06\x07":
            file.seek(struct.unpack_from("<Q", tail, locator + 8)[0])  # the zip64 end record
            record = file.read(56)
            if record[:4] == b"PK\x06\x06" and len(record) == 56:
                count = struct.unpack_from("<Q", record, 32)[0]
        return count


def open_zip(zip_path: str | Path, kind: str) -> zipfile.ZipFile:
    try:
        count = _zip_entry_count(zip_path)
    except OSError as err:
        raise InputError(f"{Path(zip_path).name} could not be read ({err})") from None
    if count is not None and count > MAX_ZIP_ENTRIES:
        raise InputError(
            f"{Path(zip_path).name} lists {count} entries; at most {MAX_ZIP_ENTRIES} are accepted here: zip the one "
            f"folder of {kind} files."
        )
    try:
        return zipfile.ZipFile(zip_path)
    except (zipfile.BadZipFile, OSError) as err:
        # a 0-byte upload ("File is not a zip file" said nothing of it)
        if Path(zip_path).is_file() and Path(zip_path).stat().st_size == 0:
            raise InputError(
                f"{Path(zip_path).name} is empty (0 bytes); upload a .zip of {kind} files."
            ) from None
        raise InputError(
            f"{Path(zip_path).name} is not a readable zip file ({err}); upload a .zip of {kind} files."
        ) from None


# what a zip of images in several folders is told to hold: its one folder of ...
ONE_FOLDER = "the one folder of this clip's frames"


def image_members(
    archive: zipfile.ZipFile,
    name: str,
    suffixes: tuple[str, ...],
    prefix: str,
    expected: str = "",
    one_folder: str = ONE_FOLDER,
) -> dict[PurePosixPath, zipfile.ZipInfo]:
    """The ``suffixes`` files under ``prefix`` (``\\`` read as ``/``; no ``__MACOSX`` copies, no hidden files: as
    ``uvosam.frame_folder.list_frames`` skips them), all in one folder (else refused, saying to zip ``one_folder``).

    Raises:
        InputError: none (saying what the zip holds, then ``expected``: what it should), or files in several
            folders.
    """
    kind = "/".join(suffixes)
    members = {
        PurePosixPath(m.filename.replace("\\", "/")): m for m in archive.infolist()
        if not m.is_dir() and m.filename.lower().endswith(suffixes)
    }  # fmt: skip
    members = {
        path: m for path, m in members.items()
        if str(path).startswith(prefix) and path.parts[0] != "__MACOSX" and not path.name.startswith(".")
    }  # fmt: skip
    folders = sorted({str(path.parent) for path in members})
    if not members:
        where = f" in its {prefix.rstrip('/')} folder" if prefix else ""
        raise InputError(
            f"{name} holds no {kind} file{where}: it holds {_holdings(archive)}. {expected}".rstrip()
        )
    if len(folders) > 1:
        raise InputError(
            f"{name} has {kind} files in {len(folders)} folders ({_listed(folders, 3)}); "
            f"zip {one_folder}."
        )
    return members


def _listed(names: list[str], most: int) -> str:
    """The first ``most`` of ``names`` joined, with ", ..." only when some are left out."""
    return ", ".join(names[:most]) + (", ..." if len(names) > most else "")


def _holdings(archive: zipfile.ZipFile) -> str:
    """What a zip holds, for a refusal: "12 .jpg files", "3 .jpg files and 1 .txt file", "no file"."""
    suffixes = Counter(
        PurePosixPath(m.filename).suffix.lower() or "extension-less"
        for m in archive.infolist()
        if not m.is_dir()
    )
    if not suffixes:
        return "no file"
    kinds = [count(n, f"{suffix} file") for suffix, n in suffixes.most_common(3)]
    more = ", ..." if len(suffixes) > 3 else ""
    return and_list(kinds) + more


def check_bounds(
    zip_path: str | Path,
    members: Mapping[PurePosixPath, zipfile.ZipInfo],
    kind: str,
    max_files: int,
    max_bytes: int,
) -> None:
    """Raise ``InputError`` when ``members`` are over ``max_files`` or ``max_bytes`` unpacked, or would unpack to
    more than ``MAX_UNPACK_RATIO`` times the zip's size."""
    name = Path(zip_path).name
    total = sum(m.file_size for m in members.values())
    if len(members) > max_files or total > max_bytes:
        raise InputError(
            f"{name} holds {len(members)} {kind} files, {total / 2**20:.0f} MiB unpacked; at most "
            f"{max_files} files and {max_bytes / 2**20:.0f} MiB are accepted here"
        )
    packed = Path(zip_path).stat().st_size
    if total > MAX_UNPACK_RATIO * packed + (1 << 20):
        raise InputError(
            f"{name} would unpack to {total / 2**20:.0f} MiB from {packed / 2**20:.1f} MiB, more than "
            f"{MAX_UNPACK_RATIO}x: not image files (PNG and JPEG hardly compress); zip the frames themselves"
        )


_ENCRYPTED = 0x1
"""Bit 0 of a zip member's general purpose flags: the member has a password."""
_UNPACKABLE = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA)
"""The compression methods Python's ``zipfile`` unpacks."""
_METHOD_NAMES = {9: "Deflate64", 93: "Zstandard", 95: "XZ", 98: "PPMd"}


def check_unpackable(name: str, members: Mapping[PurePosixPath, zipfile.ZipInfo]) -> None:
    """Raise ``InputError`` naming the first of ``members`` (of the zip ``name``) that ``zipfile`` cannot read:
    one with a password, or one compressed with a method other than ``_UNPACKABLE`` (Deflate64, PPMd, ...: 7-Zip
    and some Windows tools write them)."""
    for path, member in members.items():
        if member.flag_bits & _ENCRYPTED:
            raise InputError(
                f"{name}: {path} is password-protected (encrypted), which this app cannot open; save the zip "
                "without a password and upload it again"
            )
        if member.compress_type not in _UNPACKABLE:
            method = _METHOD_NAMES.get(
                member.compress_type, f"compression method {member.compress_type}"
            )
            raise InputError(
                f"{name}: {path} is compressed with {method}, which this app cannot unpack; re-zip the files "
                "with standard Deflate compression (e.g. zip -r, or 7-Zip's Deflate method)"
            )


MAX_UNPACK_RATIO = 20
"""Most an uploaded zip of images may grow when unpacked: PNG and JPEG are compressed already (about 1x)."""


@dataclass(frozen=True)
class UnpackedImages:
    """The images ``extract_images`` took from a zip: ``folder``, where it wrote them; ``inside``, their folder in
    the zip (``.`` for its root), which names a file as the user knows it (``<inside>/<file name>``)."""

    folder: Path
    inside: PurePosixPath


def extract_images(
    zip_path: str | Path,
    parent: Path,
    *,
    suffixes: tuple[str, ...] = (".png",),
    prefix: str | Callable[[list[str]], str] = "",
    max_files: int,
    max_bytes: int,
    expected: str = "",
    one_folder: str = ONE_FOLDER,
) -> UnpackedImages:
    """The images (``suffixes``) of ONE folder of a zip (under ``prefix``, or the prefix that ``prefix`` gives for
    the zip's member names), extracted flat; the zip is listed once.

    Safe for uploads: only those members are read, each is written under its base name made portable
    (``written_names``; no path from the zip is used; ``\\`` counts as a folder separator, as Windows tools write
    it), the count, the declared sizes and their ratio to the zip's size (``MAX_UNPACK_RATIO``) are checked before
    anything is written (``zipfile`` never reads past a member's declared size), and macOS ``__MACOSX`` copies are
    ignored.

    Returns:
        ``folder``: ``parent/<name>``, holding the files: ``name`` is the folder's name in the zip, or the zip's stem
        for files at its root (letters and digits of any script, ``-_.`` kept; the rest becomes ``_``; ``CON``
        becomes ``CON_``: ``uvosam.portable_names``); and the folder's path in the zip.

    Raises:
        InputError: not a zip, no such file (then ``expected`` follows what it holds), files in several folders,
            two that would be one file on Windows or macOS (``A.png``, ``a.png``), over ``max_files`` or
            ``max_bytes``, a zip that unpacks to more than ``MAX_UNPACK_RATIO`` times its size, a member with a
            password or compressed with a method ``zipfile`` lacks (``check_unpackable``), a damaged member.
    """
    name, kind = Path(zip_path).name, "/".join(suffixes)
    with open_zip(zip_path, kind) as archive:
        if callable(prefix):
            prefix = prefix(archive.namelist())
        members = image_members(archive, name, suffixes, prefix, expected, one_folder)
        inside = next(iter(members)).parent  # they are in one folder
        check_bounds(zip_path, members, kind, max_files, max_bytes)
        check_unpackable(name, members)
        written = written_names(name, members)
        folder = inside.name if inside != PurePosixPath(".") else Path(zip_path).stem
        dest = parent / (portable_name(re.sub(r"[^\w.-]", "_", folder).strip(".")) or "frames")
        dest.mkdir(parents=True, exist_ok=True)
        for path, member in members.items():
            try:
                with archive.open(member) as src, open(dest / written[path], "wb") as out:
                    shutil.copyfileobj(src, out)
            except (  # a bad CRC, cut or garbled data; odd flags in a member's own header
                zipfile.BadZipFile,
                zlib.error,
                EOFError,
                NotImplementedError,
            ) as err:
                raise InputError(
                    f"{name}: {member.filename} is damaged ({err}); zip the files again"
                ) from None
    return UnpackedImages(dest, inside)
