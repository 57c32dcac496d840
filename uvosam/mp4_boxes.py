"""Why an MP4/MOV file that ffmpeg cannot open is broken: a walk over its top-level boxes.

ISO base media files (``.mp4 .mov .m4a .3gp``, ISO/IEC 14496-12) are a sequence of boxes, each
starting with a 32-bit big-endian size and a 4-character type (size 1: a 64-bit size follows;
size 0: the box runs to the end of the file). A file cut off while it was being written or
uploaded has a last box that claims more bytes than the file holds, or no ``moov`` box (the index)
at all. Only box headers are read (a few seeks), never the media data.
"""

from __future__ import annotations

import struct
from pathlib import Path

__all__ = ["truncation_reason"]

_FIRST_BOXES = (b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide", b"pnot", b"styp")
_MAX_BOXES = 10_000


def truncation_reason(path: Path) -> str | None:
    """Describe how an ISO base media file is cut off, or ``None`` (intact, or not such a file).

    Returns:
        e.g. ``"its 'moov' box (the index) needs 1,234 bytes but the file ends after 96"``, or
        ``"it has no 'moov' box (the index)"``.
    """
    size = path.stat().st_size
    boxes: list[bytes] = []
    with open(path, "rb") as f:
        pos = 0
        while pos + 8 <= size and len(boxes) < _MAX_BOXES:
            f.seek(pos)
            length, kind = struct.unpack(">I4s", f.read(8))
            if not boxes and kind not in _FIRST_BOXES:
                return None  # not an ISO base media file
            header = 8
            if length == 1:
                if pos + 16 > size:
                    return _cut(kind, 16, size - pos)
                (length,) = struct.unpack(">Q", f.read(8))
                header = 16
            elif length == 0:
                length = size - pos
            if length < header:
                return None  # not a box structure we understand: let ffmpeg's message stand
            boxes.append(kind)
            if pos + length > size:
                return _cut(kind, length, size - pos)
            pos += length
    if not boxes:
        return None
    if b"moov" not in boxes and b"moof" not in boxes:
        return "it has no 'moov' box (the index)"
    return None


def _cut(kind: bytes, needed: int, available: int) -> str:
    name = kind.decode("latin-1")
    what = " (the index)" if kind == b"moov" else " (the media data)" if kind == b"mdat" else ""
    return f"its '{name}' box{what} needs {needed:,} bytes but the file ends after {available:,}"
