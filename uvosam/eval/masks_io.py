"""Reading and writing DAVIS-style indexed PNGs: one 2-D array of object ids per frame (0 = background).

DAVIS stores annotations and results as palette ('P') PNGs whose pixel values are object ids, coloured with the
PASCAL VOC colour map. Readers take ``np.asarray(PIL.Image.open(path))`` exactly as the official evaluator does, so
a grayscale ('L') PNG of ids is read the same way; anything that is not a 2-D array (RGB, RGBA, LA) is refused with
a message naming the file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from uvosam import colours
from uvosam.errors import InputError, MissingInputError

__all__ = ["WRITE_HINT", "davis_palette", "read_index_png", "write_index_png"]

WRITE_HINT = (
    "save the ids as an indexed PNG, e.g. with uvosam.eval.masks_io.write_index_png(path, ids)"
)
"""How ``read_index_png``'s refusals end: the fix for a Python user (an app may put its own words instead)."""


def davis_palette() -> np.ndarray:
    """The DAVIS / PASCAL VOC colour map.

    Returns:
        (256, 3) uint8 RGB; row i is the colour of object id i (row 0 black, row 1 (128, 0, 0), row 2 (0, 128, 0)...).
    """
    return np.array(colours.davis_palette(), np.uint8).reshape(256, 3)


def write_index_png(path: str | Path, ids: np.ndarray) -> Path:
    """Save a 2-D array of object ids as a DAVIS palette PNG (creating parent folders).

    Args:
        path: destination ``.png`` file.
        ids: (H, W) integer or bool array of object ids in 0..255 (0 = background, 255 = void in annotations).

    Returns:
        The path written.
    """
    ids = np.asarray(ids)
    if ids.ndim != 2:
        raise InputError(
            f"expected a 2-D (H, W) array of object ids for {path}, got shape {ids.shape}"
        )
    if ids.size and (ids.min() < 0 or ids.max() > colours.PALETTE_MAX_LABEL):
        raise InputError(
            f"object ids must lie in 0..{colours.PALETTE_MAX_LABEL} to fit a palette PNG, got "
            f"{ids.min()}..{ids.max()} for {path}; relabel the objects to 1..N"
        )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(ids.astype(np.uint8), mode="P")
    image.putpalette(list(colours.davis_palette()))
    image.save(path)
    return path


def read_index_png(path: str | Path) -> np.ndarray:
    """Read an indexed PNG of object ids the way the official DAVIS evaluator does.

    Args:
        path: a palette ('P'), grayscale ('L', 'I;16', 'I') or bilevel ('1') PNG.

    Returns:
        (H, W) array of the stored pixel values (palette indices for 'P'): uint8 for 8-bit and bilevel PNGs,
        int64 for 16/32-bit ones.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the file is not a readable image (damaged, cut short, another format), is not a 2-D array
            (e.g. an RGB PNG) or holds negative values.
    """
    path = Path(path)
    if not path.is_file():
        raise MissingInputError(f"mask PNG not found: {path}")
    try:
        with Image.open(path) as image:
            mode = image.mode
            ids = np.asarray(image)
    except (
        OSError,
        Image.DecompressionBombError,
    ) as err:  # not an image, cut short, damaged or huge
        raise InputError(f"{path}: not a readable PNG image ({err}); {WRITE_HINT}") from None
    if ids.ndim != 2:
        raise InputError(
            f"{path}: expected a 2-D indexed PNG of object ids (palette 'P' or grayscale 'L'), got mode "
            f"{mode!r} with array shape {ids.shape}; an RGB colour rendering cannot be scored: {WRITE_HINT}"
        )
    if ids.dtype in (np.uint8, np.bool_):
        return ids.astype(np.uint8, copy=False)
    ids = ids.astype(np.int64)
    if ids.size and ids.min() < 0:
        raise InputError(f"{path}: object ids must be >= 0, found {ids.min()}")
    return ids
