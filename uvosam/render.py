"""Drawing results on frames: mask overlays and effects (numpy + PIL only).

Each id takes its colour from ``uvosam.colours`` (the same in every frame, run and process). ``overlay`` tints each
mask with its id colour, draws a thin contour and, optionally, the box and an ``"<id> <class> <score>"`` tag.
``render`` draws a frame in one of ``STYLES``: the overlay, or an effect on the union of the objects' masks (cut-out
on black, blurred or grey background, a white-on-black matte).
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from uvosam.colours import colour_for_id, ink_for
from uvosam.errors import InputError
from uvosam.types import FrameResult, select_tracks

STYLES = ("overlay", "cutout", "blur", "gray", "matte")
"""Output video styles (``render``): ``overlay`` colour-tinted masks; ``cutout`` the objects on black; ``blur``
the objects sharp on a blurred background; ``gray`` the objects in colour on a greyscale background; ``matte``
white objects on black (a track matte for video editors)."""


def mask_contour(mask: np.ndarray, *, thickness: int = 1) -> np.ndarray:
    """Inner boundary of a mask: mask pixels within ``thickness`` px (4-neighbourhood) of a non-mask pixel.

    Args:
        mask: (H, W) bool. Pixels outside the image count as background.

    Returns:
        (H, W) bool, a subset of ``mask``.
    """
    eroded = mask.copy()
    for _ in range(thickness):
        # a pixel stays if its 4 neighbours are in: each shifted copy ANDed in place
        kept = eroded.copy()
        kept[1:] &= eroded[:-1]
        kept[:-1] &= eroded[1:]
        kept[:, 1:] &= eroded[:, :-1]
        kept[:, :-1] &= eroded[:, 1:]
        # outside the image is background
        kept[:1] = kept[-1:] = False
        kept[:, :1] = kept[:, -1:] = False
        eroded = kept
    return mask & ~eroded


def overlay(
    result: FrameResult,
    *,
    class_names: list[str] | tuple[str, ...],
    alpha: float = 0.5,
    show_boxes: bool = True,
    show_labels: bool = True,
    keep_ids: set[int] | None = None,
    out_size: tuple[int, int] | None = None,
    tag_notes: Mapping[int, str] | None = None,
) -> np.ndarray:
    """Draw a frame's masks, boxes and id tags.

    Args:
        result: the frame; ``result.image`` (H, W, 3) uint8 RGB, masks (N, H, W) bool, boxes_xyxy in its pixels.
        class_names: names for ``result.labels`` (a label past the end is shown as its number).
        alpha: mask tint opacity in [0, 1].
        show_boxes, show_labels: draw the box / the ``"<id> <class> <score>"`` tag of each track (the id only
            on frames under ``FULL_TAG_SIDE`` px; tags placed so as not to cover each other, ``tag_style``).
        keep_ids: draw only these track ids (None: all).
        out_size: ``(width, height)`` of the output (PIL order); the frame is resized first, so lines and text
            keep their pixel size. None keeps the frame size.
        tag_notes: ``{track_id: text}`` appended to those tracks' tags (e.g. ``uvosam.reappearance``'s
            ``"back after 12"``).

    Returns:
        (H', W', 3) uint8 RGB, a new array.
    """
    if not 0.0 <= alpha <= 1.0:
        raise InputError(f"overlay: alpha must be in [0, 1], got {alpha}")
    if keep_ids is not None:
        result = select_tracks(result, keep_ids)
    image, masks, boxes = _resized(result, out_size)
    canvas, thickness = Image.fromarray(image), _thickness(image.shape)
    for track_id, mask in zip(result.track_ids, masks):
        _tint(canvas, mask, colour_for_id(int(track_id)), alpha, thickness)
    return _with_boxes_and_tags(
        canvas, result, boxes, class_names, show_boxes, show_labels, tag_notes
    )


def _thickness(sides: tuple[int, ...]) -> int:
    """Line width of contours and boxes on a frame of ``sides`` (its shape or PIL size): 2 px from 360p up, else 1."""
    return 2 if min(sides[:2]) >= 360 else 1


def _with_boxes_and_tags(
    canvas: Image.Image,
    result: FrameResult,
    boxes: np.ndarray,
    class_names: list[str] | tuple[str, ...],
    show_boxes: bool,
    show_labels: bool,
    tag_notes: Mapping[int, str] | None,
) -> np.ndarray:
    """``canvas`` (RGB) with the boxes and tags asked for drawn on (in place), as a new (H, W, 3) uint8 array."""
    if len(result) and (show_boxes or show_labels):
        show = (show_boxes, show_labels)
        notes = tag_notes or {}
        _draw_boxes_and_tags(
            canvas, result, boxes, class_names, show, notes, _thickness(canvas.size)
        )
    return np.array(canvas)


def _tint(
    canvas: Image.Image,
    mask: np.ndarray,
    colour: tuple[int, int, int],
    alpha: float,
    thickness: int,
) -> None:
    """Blend ``colour`` into ``canvas`` (RGB, H x W) under ``mask`` (H, W) bool and paint its contour, in place.

    Works on the mask's bounding box (plus a 1 px margin) only, so cost follows object size, not frame size; in
    PIL's C code (a lookup table per channel, ``_tint_table``, then a paste through the mask), which releases the
    GIL and skips numpy's gather/scatter of the mask's pixels.
    """
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if len(rows) == 0:
        return
    y0, y1 = max(0, rows[0] - 1), min(mask.shape[0], rows[-1] + 2)
    x0, x1 = max(0, cols[0] - 1), min(mask.shape[1], cols[-1] + 2)
    sub_mask, box = mask[y0:y1, x0:x1], (int(x0), int(y0), int(x1), int(y1))
    tinted = canvas.crop(box).point(_tint_table(tuple(colour), alpha))
    tinted.paste(tuple(colour), mask=Image.fromarray(mask_contour(sub_mask, thickness=thickness)))
    canvas.paste(tinted, box, mask=Image.fromarray(sub_mask))


@lru_cache(maxsize=256, typed=True)
def _tint_table(colour: tuple[int, int, int], alpha: float) -> list[int]:
    """``Image.point``'s table (768 ints, R then G then B) of the tint: value v of channel c becomes
    ``round((1 - alpha) * v + alpha * colour[c])``, computed in float32 for every v at once exactly as it would be
    pixel by pixel (same operations, same dtypes: the same roundings)."""
    values = np.arange(256, dtype=np.float32)[:, None]
    blended = (1.0 - alpha) * values + alpha * np.asarray(colour, np.float32)
    return np.clip(np.rint(blended), 0, 255).astype(np.uint8).T.ravel().tolist()


def _resized(
    result: FrameResult, out_size: tuple[int, int] | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Image (H', W', 3), masks (N, H', W') and boxes_xyxy (N, 4) at the output size."""
    height, width = result.image.shape[:2]
    if out_size is None or tuple(out_size) == (width, height):
        return result.image, result.masks.astype(bool, copy=False), result.boxes_xyxy
    out_w, out_h = (int(v) for v in out_size)
    if out_w < 1 or out_h < 1:
        raise InputError(f"overlay: out_size must be (width, height) >= 1, got {out_size}")
    image = np.asarray(Image.fromarray(result.image).resize((out_w, out_h), Image.BILINEAR))
    masks = np.zeros((len(result), out_h, out_w), bool)
    for i, mask in enumerate(result.masks):
        small = Image.fromarray(mask.astype(np.uint8) * 255).resize((out_w, out_h), Image.NEAREST)
        masks[i] = np.asarray(small) > 127
    scale = np.array([out_w / width, out_h / height] * 2, np.float32)
    return image, masks, result.boxes_xyxy * scale


@lru_cache(maxsize=16)
def label_font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    """PIL's default font at ``size`` px (the bitmap default where FreeType is missing)."""
    try:
        return ImageFont.load_default(size=size)
    except (ImportError, TypeError):  # Pillow < 10.1 or no FreeType: fixed-size bitmap font
        return ImageFont.load_default()


def _draw_boxes_and_tags(
    image: Image.Image,
    result: FrameResult,
    boxes: np.ndarray,
    class_names: list[str] | tuple[str, ...],
    show: tuple[bool, bool],
    notes: Mapping[int, str],
    thickness: int,
) -> None:
    """Draw boxes, then ``"<id> <class> <score>[ <note>]"`` tags (on top of every box), onto ``image`` in place,
    the most confident track's last (on top). ``show``: (draw the boxes, draw the tags)."""
    show_boxes, show_labels = show
    draw = ImageDraw.Draw(image)
    scores, ids = result.scores.tolist(), result.track_ids.tolist()
    best_last = sorted(range(len(ids)), key=lambda i: (scores[i], -ids[i]))
    for i in best_last if show_boxes else []:
        x1, y1, x2, y2 = boxes[i].tolist()
        if x2 > x1 and y2 > y1:
            box = (x1, y1, max(x1, x2 - 1), max(y1, y2 - 1))
            draw.rectangle(box, outline=colour_for_id(ids[i]), width=thickness)
    if not show_labels:
        return
    font, full = tag_style(image.width, image.height)
    texts = [str(track_id) for track_id in ids]
    if full:
        labels = result.labels.tolist()
        for i, (track_id, label) in enumerate(zip(ids, labels)):
            name = class_names[label] if 0 <= label < len(class_names) else str(label)
            note = f" {notes[track_id]}" if track_id in notes else ""
            texts[i] = f"{track_id} {name} {scores[i]:.2f}{note}"
    best_first = best_last[::-1]  # the most confident first: it gets its best place
    placed = np.zeros((len(ids), 4))  # x1, y1, x2, y2 of the tags of best_first
    for k, i in enumerate(best_first):
        left, top, right, bottom = draw.textbbox((0, 0), texts[i], font=font)
        size = (
            right - left + 4,
            bottom - top + 2,
        )  # 2 px of padding left and right, 1 above and below
        placed[k] = _place_tag(size, boxes[i].tolist(), image.size, placed[:k])
    for k in reversed(range(len(best_first))):  # ... and is drawn last, on top
        i = best_first[k]
        _draw_tag(draw, font, texts[i], tuple(placed[k].tolist()), colour_for_id(ids[i]))


FULL_TAG_SIDE = 240
"""Frames whose shorter side is below this many pixels get tags with the track id only: at 8 px (the smallest
tag font) ``"2 rabbit 0.86"`` is 60 px wide, a third of a 180 px frame."""


def tag_style(width: int, height: int) -> tuple[ImageFont.ImageFont | ImageFont.FreeTypeFont, bool]:
    """The tag font for a ``width`` x ``height`` frame, 1/30 of its shorter side in [8, 24] px (a portrait frame
    gets the size its landscape twin gets), and whether tags hold more than the id (``FULL_TAG_SIDE``)."""
    short = min(width, height)
    return label_font(max(8, min(24, short // 30))), short >= FULL_TAG_SIDE


def _place_tag(
    size: tuple[int, int],
    box_xyxy: list[float],
    frame_size: tuple[int, int],
    placed: np.ndarray,
) -> tuple[float, float, float, float]:
    """Where a tag of ``size`` (w, h) goes, as (x1, y1, x2, y2), inside the frame (``frame_size`` (W, H)): the
    first of above the box, below it (so that an object at the top edge is not covered), each at the box's left
    then right edge, then inside its top or bottom, that overlaps none of the ``placed`` tags ((K, 4) x1, y1, x2,
    y2); else the one that overlaps them least."""
    (w, h), (frame_w, frame_h) = size, frame_size
    x1, y1, x2, y2 = box_xyxy
    outside = [y for y in (y1 - h, y2) if 0 <= y <= frame_h - h]
    corners = [(x, y) for y in outside for x in (x1, x2 - w)] + [(x1, y1), (x1, y2 - h)]
    overlaps = []
    for x, y in [(_clamp(x, frame_w - w), _clamp(y, frame_h - h)) for x, y in corners]:
        overlap = _overlap((x, y, x + w, y + h), placed)
        if overlap == 0:
            return x, y, x + w, y + h
        overlaps.append((overlap, x, y))
    _, x, y = min(overlaps)
    return x, y, x + w, y + h


def _clamp(value: float, most: float) -> float:
    """``value`` within [0, ``most``] (0 where ``most`` < 0: a tag wider than the frame starts at its edge)."""
    return min(max(0.0, value), max(0.0, most))


def _overlap(rect: tuple[float, float, float, float], others: np.ndarray) -> float:
    """Area ``rect`` (x1, y1, x2, y2) shares with the (K, 4) rectangles ``others``, summed."""
    w = np.minimum(rect[2], others[:, 2]) - np.maximum(rect[0], others[:, 0])
    h = np.minimum(rect[3], others[:, 3]) - np.maximum(rect[1], others[:, 1])
    return float((np.maximum(w, 0) * np.maximum(h, 0)).sum())


def _draw_tag(
    draw: ImageDraw.ImageDraw,
    font: ImageFont.ImageFont | ImageFont.FreeTypeFont,
    text: str,
    rect: tuple[float, float, float, float],
    colour: tuple[int, int, int],
) -> None:
    """A tag: ``rect`` (x1, y1, x2, y2) filled with ``colour``, ``text`` on it in ``ink_for(colour)``."""
    left, top, _, _ = draw.textbbox((0, 0), text, font=font)
    x, y, right, bottom = rect
    draw.rectangle((x, y, right - 1, bottom - 1), fill=colour)
    draw.text((x + 2 - left, y + 1 - top), text, fill=ink_for(colour), font=font)


def render(
    result: FrameResult,
    *,
    style: str = "overlay",
    class_names: list[str] | tuple[str, ...],
    show_boxes: bool = True,
    show_labels: bool = True,
    out_size: tuple[int, int] | None = None,
    tag_notes: Mapping[int, str] | None = None,
) -> np.ndarray:
    """Draw a frame in one of ``STYLES``.

    Args:
        result: the frame; ``result.image`` (H, W, 3) uint8 RGB, masks (N, H, W) bool.
        style: ``"overlay"`` (``overlay``) or an effect on the union of all N masks: ``"cutout"`` (object pixels
            kept, the rest black), ``"blur"`` (the rest Gaussian-blurred, radius 1/80 of the longer side,
            computed at a quarter size), ``"gray"`` (the rest in greyscale, ITU-R 601 luma) or ``"matte"`` (255
            on objects, 0 elsewhere, all three channels).
        class_names, show_boxes, show_labels, tag_notes: boxes and tags as in ``overlay``; drawn in every style
            but ``"matte"``, which holds the mask only.
        out_size: ``(width, height)`` of the output (PIL order); None keeps the frame size.

    Returns:
        (H', W', 3) uint8 RGB, a new array.
    """
    if style not in STYLES:
        raise InputError(f"render: style must be one of {STYLES}, got {style!r}")
    if style == "overlay":
        return overlay(
            result,
            class_names=class_names,
            show_boxes=show_boxes,
            show_labels=show_labels,
            out_size=out_size,
            tag_notes=tag_notes,
        )
    image, masks, boxes = _resized(result, out_size)
    inside = masks.any(axis=0) if len(masks) else np.zeros(image.shape[:2], bool)
    if style == "matte":
        return np.repeat((inside * np.uint8(255))[:, :, None], 3, axis=2)
    frame = Image.fromarray(image)
    canvas = _background(frame, style)
    canvas.paste(frame, mask=Image.fromarray(inside))
    return _with_boxes_and_tags(
        canvas, result, boxes, class_names, show_boxes, show_labels, tag_notes
    )


def _background(frame: Image.Image, style: str) -> Image.Image:
    """The frame (RGB) with a style's background effect applied everywhere, a new image."""
    if style == "cutout":
        return Image.new("RGB", frame.size)
    if style == "gray":
        return frame.convert("L").convert("RGB")  # the luma in all three channels
    # "blur": radius 1/80 of the longer side (10.7 px at 854x480), done at a quarter of the size (4x
    # smaller radius) and scaled back: the same look for a quarter of the cost
    width, height = frame.size
    small_size = (max(1, width // 4), max(1, height // 4))
    small = frame.resize(small_size, Image.BILINEAR)
    blurred = small.filter(ImageFilter.GaussianBlur(max(width, height) / 320))
    return blurred.resize((width, height), Image.BILINEAR)
