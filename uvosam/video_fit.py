"""Frames decoded scaled down to fit a longest side (``fit_side``): a phone's 2560x1440 or 3840x2160 clip is read at
1920x1080, not refused or resized by hand first.

Little is lost by it: the tracker resizes every frame to its own input size (360-640 px on the short side) and SAM
encodes at 1024 px and upsamples 256x256 low-res masks, so masks at 1920 px are about as good as at 3840 px, while
decoding, rendering, mask upsampling and PNG exports at 4K cost about 4x the CPU time and memory. The masks, video and
exports then have the scaled size, not the source's (score them against ground truth of that size).

``fit_info`` gives the ``VideoInfo`` of such a read (``probe(fit_side=...)`` returns it): ``width`` x ``height`` is
the scaled size, which every frame, mask and export then has, and ``scaled_from`` the source's. ``uvosam.video``
decodes a video file scaled by ffmpeg (``scale`` filter, area averaging) and a frame folder's images with PIL (box
filter: area averaging too).
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from uvosam.config import is_integer
from uvosam.errors import InputError

if TYPE_CHECKING:
    from uvosam.video import VideoInfo

__all__ = ["check_fit_side", "even_size_within", "fit_info", "fit_size"]


def check_fit_side(fit_side: object, what: str = "fit_side") -> int | None:
    """``fit_side`` as an ``int`` (None stays None: the source size); ``ValueError`` if it is no integer >= 2."""
    if fit_side is None:
        return None
    if not is_integer(fit_side) or fit_side < 2:
        raise InputError(
            f"{what} must be None (the source size) or an integer >= 2, the longest side in pixels that frames are "
            f"scaled down to (e.g. 1920); got {fit_side!r}"
        )
    return int(fit_side)


def even_size_within(width: int, height: int, side: int) -> tuple[int, int]:
    """``width`` x ``height`` scaled, aspect kept, to even sides (the video encoders' need) none over ``side``: the
    longest is ``side`` rounded down to even, the other the even number closest to the aspect (at least 2)."""
    long_side = max(2, side - side % 2)
    short_side = max(2, 2 * round(min(width, height) * long_side / max(width, height) / 2))
    return (long_side, short_side) if width >= height else (short_side, long_side)


def fit_size(width: int, height: int, fit_side: int | None) -> tuple[int, int]:
    """The ``(width, height)`` that frames of ``width`` x ``height`` are decoded at with ``fit_side``: their own when
    no side is over it (or ``fit_side`` is None; never enlarged, odd sides kept), else ``even_size_within``.

    E.g. 2560x1440 at 1920 is 1920x1080, 1440x2560 is 1080x1920, 1001x777 at 500 is 500x388; 1280x720 stays.
    """
    fit_side = check_fit_side(fit_side)
    if fit_side is None or max(width, height) <= fit_side:
        return width, height
    return even_size_within(width, height, fit_side)


def fit_info(info: VideoInfo, fit_side: int | None) -> VideoInfo:
    """``info`` as a read with ``fit_side`` sees it: ``width`` x ``height`` the size frames are decoded at
    (``fit_size`` of the source's), ``scaled_from`` the source's size where that differs, else None (then ``info``
    itself, when it was not scaled either). The pixels' aspect (``sample_aspect``) is unchanged: both sides scale
    alike."""
    source = info.source_size
    size = fit_size(*source, fit_side)
    scaled_from = None if size == source else source
    if (info.width, info.height, info.scaled_from) == (*size, scaled_from):
        return info
    return replace(info, width=size[0], height=size[1], scaled_from=scaled_from)
