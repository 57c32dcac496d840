"""The fast drawing paths (``uvosam.render``'s lookup-table tint and PIL pastes, ``export_davis.paint``) against
plain numpy references written pixel by pixel, on random masks: speckled ones (random-weight SAM's) and blobs
(trained SAM's). Bit-identical, not close: a re-render must give the same video as the first run."""

import numpy as np
import pytest

from uvosam.colours import colour_for_id
from uvosam.export_davis import paint
from uvosam.render import STYLES, mask_contour, overlay, render
from uvosam.types import FrameResult


def _contour_reference(mask, thickness):
    eroded = mask.copy()
    for _ in range(thickness):
        padded = np.pad(eroded, 1, constant_values=False)
        eroded = (
            eroded & padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
        )
    return mask & ~eroded


def _tint_reference(image, masks, ids, alpha, thickness):
    """Each mask in turn: its pixels blended in float32, rounded half to even; then its contour painted."""
    canvas = image.copy()
    for track_id, mask in zip(ids, masks):
        colour = np.asarray(colour_for_id(int(track_id)), np.float32)
        blended = (1.0 - alpha) * canvas[mask].astype(np.float32) + alpha * colour
        canvas[mask] = np.clip(np.rint(blended), 0, 255).astype(np.uint8)
        canvas[_contour_reference(mask, thickness)] = colour.astype(np.uint8)
    return canvas


def _random_result(rng, height, width, num, speckled):
    image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    masks = rng.random((num, height, width)) < rng.uniform(0.05, 0.6, (num, 1, 1))
    if not speckled:  # a rectangle and a disc per object, overlapping one another
        yy, xx = np.mgrid[:height, :width]
        for k in range(num):
            y0, x0 = rng.integers(0, height), rng.integers(0, width)
            r = rng.integers(1, max(2, min(height, width) // 2))
            masks[k] = (yy - y0) ** 2 + (xx - x0) ** 2 < r**2
            masks[k, y0 : y0 + 2 * r, x0 : x0 + r] = True
    boxes = np.tile(np.array([[1, 1, width - 1, height - 1]], np.float32), (num, 1))
    scores = rng.uniform(0.1, 1, num).astype(np.float32)
    ids = rng.choice(np.arange(1, 40), num, replace=False)
    labels = np.zeros(num, np.int64)
    return FrameResult(0, image, ids, boxes, scores, labels, masks, scores)


@pytest.mark.parametrize("speckled", [True, False])
@pytest.mark.parametrize("size", [(1, 1), (7, 5), (33, 90), (365, 120)])
def test_overlay_tint_is_bit_identical_to_the_per_pixel_float32_blend(speckled, size):
    rng = np.random.default_rng(sum(size) + speckled)
    res = _random_result(rng, *size, num=4, speckled=speckled)
    thickness = 2 if min(size) >= 360 else 1
    plain = {"class_names": ["o"], "show_boxes": False, "show_labels": False}
    # alphas whose float32 blend rounds otherwise than float64 for some values; numpy scalars keep their dtype
    for alpha in (0.0, 0.3, np.float64(0.3), 0.5, 0.61, np.float32(0.61), 1.0):
        expected = _tint_reference(res.image, res.masks, res.track_ids, alpha, thickness)
        out = overlay(res, alpha=alpha, **plain)
        assert out.flags.writeable and np.array_equal(out, expected), alpha
    assert np.array_equal(render(res, **plain), overlay(res, **plain))


@pytest.mark.parametrize("thickness", [1, 2, 3])
def test_mask_contour_is_the_padded_erosion(thickness):
    rng = np.random.default_rng(thickness)
    for shape in [(0, 4), (4, 0), (1, 1), (1, 9), (9, 1), (2, 2), (40, 31)]:
        for density in (0.2, 0.7, 1.0):
            mask = rng.random(shape) < density
            assert np.array_equal(
                mask_contour(mask, thickness=thickness), _contour_reference(mask, thickness)
            )


@pytest.mark.parametrize("speckled", [True, False])
def test_effect_styles_paste_the_frame_exactly_under_the_masks(speckled):
    rng = np.random.default_rng(7)
    res = _random_result(rng, 50, 70, num=3, speckled=speckled)
    inside = res.masks.any(axis=0)
    plain = {"class_names": ["o"], "show_boxes": False, "show_labels": False}
    luma = res.image @ np.array([299, 587, 114]) / 1000  # ITU-R 601, as PIL's convert("L")
    for style in set(STYLES) - {"overlay", "matte"}:
        out = render(res, style=style, **plain)
        assert out.flags.writeable and np.array_equal(out[inside], res.image[inside]), style
        if style == "cutout":
            assert not out[~inside].any()
        if style == "gray":
            assert (np.abs(out[~inside] - luma[~inside, None]) <= 1).all()


@pytest.mark.parametrize("dtype", [np.uint8, np.int32])
def test_paint_is_the_masked_assignment(dtype):
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 200, (30, 41)).astype(dtype)
    expected = labels.copy()
    for value in (0, 1, 17, 255):
        mask = rng.random(labels.shape) < 0.4
        expected[mask] = value
        paint(labels, mask, value)
        assert np.array_equal(labels, expected)
