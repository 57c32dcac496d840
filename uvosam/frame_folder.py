"""A folder of frames as a video: DAVIS ``JPEGImages/480p/<sequence>/00000.jpg`` and the like.

Frames are the ``.jpg/.jpeg/.png`` files of the folder (other files and hidden files are ignored),
sorted by name in natural order (``2.png`` before ``10.png``; zero-padded names sort as usual).
Images are read with PIL, EXIF orientation applied, converted to RGB. ``uvosam.video`` builds
``probe``/``iter_frames`` on these helpers.
"""

from __future__ import annotations

import os
import re
import struct
from collections.abc import Iterator
from typing import BinaryIO
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from uvosam.errors import VideoReadError

__all__ = [
    "FRAME_EXTENSIONS",
    "check_same_size",
    "display_size",
    "image_display_size",
    "iter_images",
    "list_frames",
]

FRAME_EXTENSIONS = (".jpg", ".jpeg", ".png")
_EXIF_ORIENTATION = 0x0112
_EXIF_SWAPS_AXES = (5, 6, 7, 8)


def _natural_key(path: Path) -> list[int | str]:
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", path.name)]


def list_frames(folder: Path, accepted: str = "") -> list[Path]:
    """The frame files of ``folder`` in natural name order; one file per stem.

    Args:
        accepted: appended to error messages (what inputs are accepted).

    Raises:
        VideoReadError: no frame files, or two files with one stem (``00000.jpg``, ``00000.png``).
    """
    exts = "/".join(FRAME_EXTENSIONS)
    files = [
        p
        for p in folder.iterdir()
        if p.is_file() and p.suffix.lower() in FRAME_EXTENSIONS and not p.name.startswith(".")
    ]
    if not files:
        other = sorted(p.name for p in folder.iterdir())
        found = f"it holds {len(other)} other entries (e.g. {', '.join(other[:3])})"
        raise VideoReadError(
            f"The frame folder {folder} has no {exts} frames: {found if other else 'it is empty'}. "
            f"Expected e.g. DAVIS JPEGImages/480p/<sequence>/00000.jpg. {accepted}".strip()
        )
    files.sort(key=_natural_key)
    stems = [p.stem for p in files]
    if len(set(stems)) != len(stems):
        dup = next(s for s in stems if stems.count(s) > 1)
        raise VideoReadError(
            f"The frame folder {folder} has two frames named {dup!r} (different extensions); "
            "keep one file per frame."
        )
    return files


def display_size(file: Path) -> tuple[int, int]:
    """(width, height) after EXIF orientation, read from the image header (no pixel decoding)."""
    try:
        with open(file, "rb") as handle, Image.open(handle) as image:
            return image_display_size(image, handle)
    except (UnidentifiedImageError, OSError, struct.error) as err:
        raise VideoReadError(
            f"Frame {file} is not a readable image ({err}). Replace or remove it."
        ) from err


def image_display_size(image: Image.Image, handle: BinaryIO) -> tuple[int, int]:
    """(width, height) of an opened ``image`` after its EXIF orientation, without decoding pixels.

    ``handle`` is the seekable file it was opened from: for a PNG whose EXIF (``eXIf`` chunk) is not before its
    pixel data, PIL's ``getexif`` would decode the whole image to reach it (16 ms a 1080p frame), so the chunk
    headers are walked instead.
    """
    width, height = image.size
    if image.format == "PNG" and "exif" not in image.info:
        exif = Image.Exif()
        data = _png_exif(handle)
        if data:
            exif.load(b"Exif\x00\x00" + data)
    else:
        exif = image.getexif()
    orientation = exif.get(_EXIF_ORIENTATION, 1)
    return (height, width) if orientation in _EXIF_SWAPS_AXES else (width, height)


def _png_exif(handle: BinaryIO) -> bytes | None:
    """The data of a PNG's ``eXIf`` chunk, found by walking the chunk headers (pixel data skipped), or None."""
    handle.seek(0)
    if handle.read(8) != b"\x89PNG\r\n\x1a\n":
        return None
    while len(head := handle.read(8)) == 8:
        length, kind = struct.unpack(">I4s", head)
        if kind == b"eXIf":
            return handle.read(length)
        if kind == b"IEND":
            return None
        handle.seek(length + 4, os.SEEK_CUR)  # the data and its CRC
    return None


def check_same_size(files: list[Path], size: tuple[int, int]) -> None:
    """Raise ``VideoReadError`` naming the first file whose display size is not ``size`` (w, h)."""
    for file in files:
        got = display_size(file)
        if got != size:
            raise VideoReadError(
                f"Frames in {file.parent} differ in size: {files[0].name} is {size[0]}x{size[1]} "
                f"but {file.name} is {got[0]}x{got[1]}. All frames of a sequence must have the "
                "same size; resize them."
            )


def iter_images(files: list[Path], size: tuple[int, int]) -> Iterator[np.ndarray]:
    """Decode ``files`` one at a time as ``(H, W, 3)`` uint8 RGB; each must be ``size`` = (W, H)."""
    for index, file in enumerate(files):
        try:
            with Image.open(file) as im:
                frame = np.array(ImageOps.exif_transpose(im).convert("RGB"))
        except (UnidentifiedImageError, OSError) as err:
            raise VideoReadError(
                f"Frame {index} ({file}) could not be decoded: {err}. Replace it."
            ) from err
        if frame.shape[1::-1] != size:
            raise VideoReadError(
                f"Frame {file.name} is {frame.shape[1]}x{frame.shape[0]}, expected "
                f"{size[0]}x{size[1]} like the first frame. Resize it."
            )
        yield frame
