"""What a video frame must be, checked in one place for every way frames come in: ``UVOSAM`` (each frame it is
given), the tracker's session (``IDOLSession.push``) and the detector (``IDOLDetector.detect_frames``).

A wrong frame is refused with what to do instead: ``TypeError`` for what is no uint8 numpy array (a PIL image, a path,
a float frame), ``ValueError`` for an array of the wrong shape (grey, RGBA, empty) or of another size than the video's.
"""

from __future__ import annotations

import os

import numpy as np

from uvosam.errors import InputError

PATH_TYPES = (str, bytes, os.PathLike)
"""What a path can be given as (a path where frames go is refused with ``READ_VIDEO``)."""

READ_VIDEO = "read a video file or frame folder with uvosam.video.iter_frames(path), e.g. pipe(iter_frames(path))"


def type_hint(frame: object) -> str:
    """How to make ``frame``, of the wrong type or dtype, an (H, W, 3) uint8 array, where that is clear ("" where
    not): a PIL image, a path, a float array."""
    if type(frame).__module__.startswith("PIL."):
        return "; convert a PIL image with np.asarray(image.convert('RGB'))"
    if isinstance(frame, PATH_TYPES):
        return f"; {READ_VIDEO}"
    if isinstance(frame, np.ndarray) and frame.dtype.kind == "f":
        return "; a float frame in [0, 1]: (frame * 255).round().astype(np.uint8)"
    return ""


def _shape_hint(frame: np.ndarray) -> str:
    """How to make a uint8 array of the wrong shape (H, W, 3), where that is clear: a grey or an RGBA frame."""
    if frame.ndim == 2:
        return "; a grey frame: np.repeat(frame[:, :, None], 3, axis=2)"
    if frame.ndim == 3 and frame.shape[2] == 4:
        return "; drop the alpha channel: frame[:, :, :3]"
    return ""


def check_frame(
    frame: object,
    index: int,
    size_hw: tuple[int, int] | None = None,
    *,
    size_of: str = "the first frame's",
) -> np.ndarray:
    """Refuse frame ``index`` of a video unless it is an (H, W, 3) uint8 RGB numpy array, H and W > 0, of size
    ``size_hw``.

    Args:
        frame: the frame.
        index: its index in the video (the messages name it).
        size_hw: (H, W) that every frame of the video has; None: any.
        size_of: what ``size_hw`` is, for the message (``"the size given to new_video"``).

    Returns:
        ``frame``, unchanged.

    Raises:
        TypeError: no numpy array, or not uint8 (saying how to convert a PIL image, a float frame; a path: how to
            read it).
        ValueError: not (H, W, 3) (saying how to convert a grey or RGBA frame), empty, or not of size ``size_hw``.
    """
    expected = f"frame {index}: expected an (H, W, 3) uint8 RGB numpy array"
    if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8:
        got = f"{type(frame).__name__} {getattr(frame, 'shape', '')} {getattr(frame, 'dtype', '')}"
        raise TypeError(f"{expected}; got {got}{type_hint(frame)}")
    if frame.ndim != 3 or frame.shape[2] != 3:
        raise InputError(f"{expected}; got one of shape {frame.shape}{_shape_hint(frame)}")
    if 0 in frame.shape[:2]:
        raise InputError(f"frame {index}: an empty frame, of shape {frame.shape}")
    if size_hw is not None and frame.shape[:2] != tuple(size_hw):
        raise InputError(
            f"frame {index}: size {frame.shape[:2]} differs from {size_of} {tuple(size_hw)}; "
            "all frames of a video must have one size"
        )
    return frame
