"""A folder of frames as a video: DAVIS ``JPEGImages/480p/<sequence>/00000.jpg`` and the like.

Frames are the ``.jpg/.jpeg/.png`` files of the folder (other files and hidden files are ignored),
sorted by name in natural order (``2.png`` before ``10.png``; zero-padded names sort as usual).
Images are read with PIL, EXIF orientation applied, converted to RGB uint8 (16-bit grayscale scaled to 8 bits,
``to_rgb8``). ``uvosam.video`` builds
``probe``/``iter_frames`` on these helpers.
"""

from __future__ import annotations

import os
import re
import struct
from collections.abc import Iterator
from pathlib import Path, PurePath
from typing import BinaryIO

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
    "natural_key",
    "to_rgb8",
]

FRAME_EXTENSIONS = (".jpg", ".jpeg", ".png")
_EXIF_ORIENTATION = 0x0112
_EXIF_SWAPS_AXES = (5, 6, 7, 8)


def natural_key(path: PurePath) -> list[int | str]:
    """Sort key of a file name in natural order: ``2.png`` before ``10.png``, case ignored.

    Numbers are unsigned: a ``-`` before digits is text, as in ``clip-2.png``, ``clip-10.png`` or dates (read as
    minus signs they would sort backwards), so ``frame_-2 ... frame_1`` sort ``frame_0, frame_1, frame_-1,
    frame_-2``; name such frames with an offset (``frame_000`` for -2) or zero-padded."""
    # isdecimal: isdigit also takes "²", which int() refuses
    return [int(t) if t.isdecimal() else t.lower() for t in re.split(r"(\d+)", path.name)]


def list_frames(folder: Path, accepted: str = "") -> list[Path]:
    """The frame files of ``folder`` in natural name order; one file per stem.

    Args:
        accepted: appended to error messages (what inputs are accepted).

    Raises:
        VideoReadError: no frame files, two files with one stem (``00000.jpg``, ``00000.png``), or a frame
            that is a symbolic link to nothing.
    """
    exts = "/".join(FRAME_EXTENSIONS)
    named = [
        p
        for p in folder.iterdir()
        if p.suffix.lower() in FRAME_EXTENSIONS and not p.name.startswith(".")
    ]
    for p in named:
        if p.is_symlink() and not p.exists():
            raise VideoReadError(
                f"Frame {p} is a symbolic link to {os.readlink(p)!r}, which does not exist (or the links "
                "form a loop). Point it at the frame or remove it."
            )
    files = [p for p in named if p.is_file()]
    if not files:
        other = sorted(p.name for p in folder.iterdir())
        found = f"it holds {len(other)} other entries (e.g. {', '.join(other[:3])})"
        raise VideoReadError(
            f"The frame folder {folder} has no {exts} frames: {found if other else 'it is empty'}. "
            f"Expected e.g. DAVIS JPEGImages/480p/<sequence>/00000.jpg. {accepted}".strip()
        )
    files.sort(key=natural_key)
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
    except (
        UnidentifiedImageError,
        OSError,
        SyntaxError,
        struct.error,
    ) as err:  # PIL: SyntaxError = bad EXIF
        raise VideoReadError(
            f"Frame {file} is not a readable image ({_unreadable(file, err)}). Replace or remove it."
        ) from err


def _unreadable(file: Path, err: BaseException) -> str:
    """Why PIL could not read ``file``, without the repr of its file object that PIL's message holds."""
    try:
        if file.stat().st_size == 0:
            return "it is empty: 0 bytes"
    except OSError:
        pass
    if isinstance(err, UnidentifiedImageError):
        return "PIL does not recognise its content as an image"
    return str(err)


def image_display_size(image: Image.Image, handle: BinaryIO) -> tuple[int, int]:
    """(width, height) of an opened ``image`` after its EXIF orientation, without decoding pixels.

    The orientation is the one ``PIL.ImageOps.exif_transpose`` applies when the frame is decoded (``eXIf``, else
    ImageMagick's ``Raw profile type exif`` text, else an XMP ``tiff:Orientation``). ``handle`` is the seekable file
    it was opened from: for a PNG, PIL's ``getexif`` decodes the whole image (16 ms a 1080p frame) to read the
    chunks after its pixel data, so their headers are walked instead; only a text chunk after the pixels that can
    hold the orientation (rare) makes it decode.

    Raises:
        OSError: an ``eXIf`` chunk is cut short. SyntaxError: the EXIF data is not TIFF data (PIL's error).
    """
    width, height = image.size
    if image.format == "PNG" and "exif" not in image.info:
        exif_data, late_text = _png_late_metadata(
            handle, animated=getattr(image, "is_animated", False)
        )
        if late_text:
            exif = image.getexif()  # decodes, then reads the text as PIL would
        else:
            if exif_data is not None:
                image.info["exif"] = b"Exif\x00\x00" + exif_data  # what PIL's load() would add
            exif = Image.Image.getexif(image)  # from image.info: no decoding
    else:
        exif = image.getexif()
    orientation = exif.get(_EXIF_ORIENTATION, 1)
    return (height, width) if orientation in _EXIF_SWAPS_AXES else (width, height)


_PNG_TEXT_CHUNKS = (b"tEXt", b"zTXt", b"iTXt")
_PNG_ORIENTATION_KEYS = (
    b"Raw profile type exif",
    b"XML:com.adobe.xmp",
)  # PIL's getexif reads these too


def _png_late_metadata(handle: BinaryIO, *, animated: bool) -> tuple[bytes | None, bool]:
    """What PIL reads for EXIF once a PNG's first frame is decoded, found by walking the chunk headers.

    Returns:
        The data of the ``eXIf`` chunk (None if there is none), and whether a text chunk after the pixel data can
        hold the orientation (ImageMagick's EXIF, XMP: chunks before the pixels are already in ``image.info``).
        Like PIL, an animated PNG's chunks after its first frame (``fcTL`` after ``IDAT``) are not read.

    Raises:
        OSError: the ``eXIf`` chunk is cut short.
    """
    handle.seek(0)
    if handle.read(8) != b"\x89PNG\r\n\x1a\n":
        return None, False
    exif, after_pixels = None, False
    while len(head := handle.read(8)) == 8:
        length, kind = struct.unpack(">I4s", head)
        if kind == b"IEND" or (kind == b"fcTL" and animated and after_pixels):
            break
        after_pixels = after_pixels or kind == b"IDAT"
        if kind == b"eXIf":
            exif = handle.read(length)
            if len(exif) != length:
                raise OSError(f"the eXIf chunk is cut short ({len(exif)} of {length} bytes)")
            handle.seek(4, os.SEEK_CUR)
            continue
        if kind in _PNG_TEXT_CHUNKS and after_pixels:
            keyword = handle.read(min(length, 80)).split(b"\x00", 1)[0]  # keywords are 1-79 bytes
            if keyword in _PNG_ORIENTATION_KEYS:
                return exif, True
            handle.seek(length - min(length, 80), os.SEEK_CUR)
        else:
            handle.seek(length, os.SEEK_CUR)
        handle.seek(4, os.SEEK_CUR)  # the CRC
    return exif, False


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


def iter_images(
    files: list[Path], size: tuple[int, int], scale_to: tuple[int, int] | None = None
) -> Iterator[np.ndarray]:
    """Decode ``files`` one at a time as ``(H, W, 3)`` uint8 RGB; each must be ``size`` = (W, H). ``scale_to``: (W, H)
    that each is then resized to (PIL's box filter: area averaging, as ``uvosam.video_fit`` scales), if not ``size``.
    """
    for index, file in enumerate(files):
        try:
            with Image.open(file) as im:
                frame = to_rgb8(ImageOps.exif_transpose(im))
        except (UnidentifiedImageError, OSError, SyntaxError) as err:  # PIL: SyntaxError = bad EXIF
            raise VideoReadError(
                f"Frame {index} ({file}) could not be decoded: {_unreadable(file, err)}. Replace it."
            ) from err
        if frame.shape[1::-1] != size:
            raise VideoReadError(
                f"Frame {file.name} is {frame.shape[1]}x{frame.shape[0]}, expected "
                f"{size[0]}x{size[1]} like the first frame. Resize it."
            )
        if scale_to is not None and scale_to != size:
            frame = np.array(Image.fromarray(frame).resize(scale_to, Image.Resampling.BOX))
        yield frame


def to_rgb8(image: Image.Image) -> np.ndarray:
    """A decoded PIL image as a writable ``(H, W, 3)`` uint8 RGB array.

    16-bit grayscale (PIL modes ``I;16``, ``I;16B``...; ``I`` read from a PNG, which is how some Pillow versions
    open a 16-bit one, whatever its values, so that dark frames of a sequence are scaled as its bright ones are; and
    any other ``I`` holding values above 255) is scaled to 8 bits,
    ``round(v * 255 / 65535)`` (values outside 0..65535 clipped), as a viewer shows it: PIL's ``convert("RGB")``
    clips such values at 255, so a 16-bit PNG came out white. Every other mode goes through ``convert("RGB")``
    (alpha dropped, palettes and CMYK converted; 48-bit RGB PNGs PIL already reads as 8-bit RGB).
    """
    wide = image.mode.startswith("I;16") or (
        image.mode == "I" and (image.format == "PNG" or image.getextrema()[1] > 255)
    )
    if not wide:
        return np.array(image.convert("RGB"))
    values = np.clip(np.asarray(image).astype(np.int64), 0, 65535)
    gray = ((values * 255 + 32767) // 65535).astype(np.uint8)
    return np.repeat(gray[..., None], 3, axis=2)
