import numpy as np
import pytest
from export_helpers import results_from_video

from uvosam.colours import colour_for_id, davis_palette, ink_for
from uvosam.errors import InputError
from uvosam.render import STYLES, mask_contour, overlay, render
from uvosam.testing import moving_shapes
from uvosam.types import FrameResult, select_tracks

CLASSES = ["object", "thing"]


def _frame(height=48, width=64, num_objects=2, seed=0):
    return results_from_video(
        moving_shapes(2, height=height, width=width, num_objects=num_objects, seed=seed)
    )[0]


def test_davis_palette_is_the_voc_palette():
    pal = davis_palette()
    assert len(pal) == 768
    colours = [tuple(pal[3 * i : 3 * i + 3]) for i in range(256)]
    assert colours[:9] == [
        (0, 0, 0),
        (128, 0, 0),
        (0, 128, 0),
        (128, 128, 0),
        (0, 0, 128),
        (128, 0, 128),
        (0, 128, 128),
        (128, 128, 128),
        (64, 0, 0),
    ]
    assert colours[255] == (224, 224, 192)
    assert len(set(colours)) == 256


def test_colour_for_id_distinct_and_stable():
    colours = [colour_for_id(i) for i in range(1, 65)]
    assert len(set(colours)) == 64
    assert all(isinstance(c, int) and 0 <= c <= 255 for rgb in colours for c in rgb)
    # pinned: a colour must not change between runs or processes
    assert colour_for_id(1) == (60, 15, 255) and colour_for_id(21) == (204, 31, 53)
    assert colour_for_id(22) == (75, 75, 240) and colour_for_id(80) == (225, 225, 120)
    assert colour_for_id(np.int64(7)) == colour_for_id(7)
    # from id 21 on a cycle of 60 colours, none of ids 1-20's
    later = [colour_for_id(i) for i in range(21, 81)]
    assert len(set(later)) == 60 and not set(later) & set(colours[:20])
    assert [colour_for_id(i + 60 * k) for k in (1, 7) for i in (21, 50)] == [
        later[0],
        later[29],
    ] * 2
    assert colour_for_id(0) == colour_for_id(60) and colour_for_id(-39) == colour_for_id(21)


def test_overlay_shape_dtype_and_tint_per_id():
    res = _frame()
    out = overlay(res, class_names=CLASSES, alpha=0.5, show_boxes=False, show_labels=False)
    assert out.shape == res.image.shape and out.dtype == np.uint8
    assert out is not res.image and not np.shares_memory(out, res.image)
    inner_colours = []
    for track_id, mask in zip(res.track_ids, res.masks):
        inner = mask & ~mask_contour(mask)
        expected = np.rint(0.5 * res.image[inner] + 0.5 * np.array(colour_for_id(int(track_id))))
        assert np.abs(out[inner].astype(int) - expected).max() <= 1
        assert (out[mask_contour(mask)] == colour_for_id(int(track_id))).all()
        inner_colours.append(colour_for_id(int(track_id)))
    assert inner_colours[0] != inner_colours[1]
    background = ~res.masks.any(0)
    assert (out[background] == res.image[background]).all()


def test_overlay_keep_ids_and_boxes_and_resize():
    res = _frame()
    kept = int(res.track_ids[0])
    dropped_mask = res.masks[1]
    out = overlay(res, class_names=CLASSES, keep_ids={kept}, show_boxes=False, show_labels=False)
    assert (out[dropped_mask] == res.image[dropped_mask]).all()
    with_boxes = overlay(res, class_names=CLASSES, show_labels=False)
    x1, y1 = res.boxes_xyxy[0, :2].astype(int)
    assert (with_boxes[y1, x1] == colour_for_id(kept)).all()
    big = overlay(res, class_names=CLASSES, out_size=(128, 96))
    assert big.shape == (96, 128, 3) and big.dtype == np.uint8


def test_resized_output_scales_frame_masks_and_boxes_per_axis():
    # a 60x40 frame drawn at 90x20: x scaled by 1.5, y by 0.5; the frame is resized bilinearly (PIL), each
    # mask by nearest neighbour, and the boxes by the per-axis scales, before anything is drawn
    from PIL import Image

    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, (40, 60, 3), dtype=np.uint8)
    mask = np.zeros((1, 40, 60), bool)
    mask[0, 12:28, 36:54] = True  # apart from the box, so the contour is not mistaken for the box
    res = FrameResult(
        frame_index=0,
        image=image,
        track_ids=np.array([5], np.int64),
        boxes_xyxy=np.array([[6, 4, 30, 36]], np.float32),  # drawn at (9, 2, 45, 18)
        scores=np.array([0.9], np.float32),
        labels=np.array([0], np.int64),
        masks=mask,
        mask_scores=np.array([0.9], np.float32),
    )
    size = (90, 20)
    want_mask = np.zeros((20, 90), bool)
    want_mask[6:14, 54:81] = True
    matte = render(res, style="matte", class_names=CLASSES, out_size=size)
    assert np.array_equal(matte[..., 0] == 255, want_mask)
    out = render(res, style="overlay", class_names=CLASSES, show_labels=False, out_size=size)
    assert out.shape == (20, 90, 3)
    colour = colour_for_id(5)
    box_lines = np.zeros((20, 90), bool)
    box_lines[[2, 17], 9:45] = True
    box_lines[2:18, [9, 44]] = True
    assert (out[box_lines] == colour).all()  # corners (9, 2) and (44, 17) included
    assert (out[2:18, 8] != colour).any() and (out[18, 9:45] != colour).any()  # no wider
    resized = np.asarray(Image.fromarray(image).resize(size, Image.BILINEAR)).astype(int)
    background = ~want_mask & ~box_lines
    assert np.abs(out[background].astype(int) - resized[background]).max() <= 1
    inner = want_mask & ~mask_contour(want_mask)
    expected = np.rint(0.5 * resized[inner] + 0.5 * np.array(colour))
    assert np.abs(out[inner] - expected).max() <= 1


def test_labels_drawn_and_tiny_frame_does_not_crash():
    res = _frame()
    plain = overlay(res, class_names=CLASSES, show_labels=False)
    tagged = overlay(res, class_names=CLASSES, show_labels=True)
    assert (plain != tagged).any()
    tiny = FrameResult(
        frame_index=0,
        image=np.zeros((16, 16, 3), np.uint8),
        track_ids=np.array([123456], np.int64),
        boxes_xyxy=np.array([[10, 12, 30, 40]], np.float32),  # partly outside the frame
        scores=np.array([0.5], np.float32),
        labels=np.array([7], np.int64),  # no such class: shown as a number
        masks=np.ones((1, 16, 16), bool),
        mask_scores=np.array([0.5], np.float32),
    )
    out = overlay(tiny, class_names=CLASSES)
    assert out.shape == (16, 16, 3)
    assert overlay(tiny, class_names=CLASSES, out_size=(3, 2)).shape == (2, 3, 3)


def test_overlay_empty_frame_and_bad_alpha():
    res = select_tracks(_frame(), set())
    assert len(res) == 0
    assert (overlay(res, class_names=CLASSES) == res.image).all()
    with pytest.raises(ValueError, match="alpha"):
        overlay(res, class_names=CLASSES, alpha=1.5)


def test_mask_contour_thickness():
    mask = np.zeros((10, 10), bool)
    mask[2:8, 2:8] = True
    assert mask_contour(mask, thickness=1).sum() == 36 - 16
    assert mask_contour(mask, thickness=2).sum() == 36 - 4
    full = np.ones((4, 4), bool)
    assert mask_contour(full).sum() == 12  # image border counts as background


def _textured(res):
    """The frame with a noise image (so a blur visibly changes it)."""
    from dataclasses import replace

    rng = np.random.default_rng(1)
    return replace(res, image=rng.integers(0, 256, res.image.shape, dtype=np.uint8))


def test_render_styles_keep_the_objects_and_change_only_the_background():
    res = _textured(_frame(height=96, width=128))
    inside = res.masks.any(0)
    plain = {"class_names": CLASSES, "show_boxes": False, "show_labels": False}
    outs = {style: render(res, style=style, **plain) for style in STYLES}
    assert all(o.shape == res.image.shape and o.dtype == np.uint8 for o in outs.values())
    assert np.array_equal(outs["overlay"], overlay(res, **plain))
    for style in ("cutout", "blur", "gray"):
        assert np.array_equal(outs[style][inside], res.image[inside]), style
    assert (outs["cutout"][~inside] == 0).all()
    gray = outs["gray"][~inside].astype(int)
    assert (gray[:, 0] == gray[:, 1]).all() and (gray[:, 1] == gray[:, 2]).all()
    luma = res.image[~inside] @ np.array([0.299, 0.587, 0.114])
    assert np.abs(gray[:, 0] - luma).max() <= 1
    blurred = outs["blur"][~inside].astype(float)  # smoothed: much less spread than the noise
    assert blurred.std() < 0.5 * res.image[~inside].std()
    assert abs(blurred.mean() - res.image[~inside].mean()) < 10
    matte = outs["matte"]
    assert (matte[inside] == 255).all() and (matte[~inside] == 0).all()


@pytest.mark.parametrize("alpha", [None, 0.25, 1.0])
def test_overlay_tint_is_alpha_colour_over_one_minus_alpha_image(alpha):
    # mask tint opacity alpha: out = (1 - alpha) * image + alpha * colour, rounded to the nearest integer;
    # render(style="overlay") uses overlay's default opacity, 0.5
    res = _textured(_frame(num_objects=1))
    plain = {"class_names": CLASSES, "show_boxes": False, "show_labels": False}
    if alpha is None:
        out, alpha = render(res, style="overlay", **plain), 0.5
    else:
        out = overlay(res, alpha=alpha, **plain)
    mask = res.masks[0]
    inner = mask & ~mask_contour(mask)
    colour = np.array(colour_for_id(int(res.track_ids[0])), float)
    expected = (1 - alpha) * res.image[inner] + alpha * colour
    assert inner.sum() > 20 and np.abs(out[inner] - expected).max() <= 0.5
    assert (out[~mask] == res.image[~mask]).all()


def test_render_boxes_on_effects_but_never_on_the_matte():
    res = _frame(height=96, width=128)
    inside = res.masks.any(0)
    with_boxes = render(res, style="cutout", class_names=CLASSES)
    assert (with_boxes[~inside] != 0).any()  # box lines and tags outside the objects
    matte = render(res, style="matte", class_names=CLASSES)  # boxes and labels on by default
    assert set(np.unique(matte).tolist()) == {0, 255}
    assert (matte[..., 0][inside] == 255).all() and (matte[..., 0][~inside] == 0).all()


def test_render_resizes_empty_frames_and_refuses_unknown_styles():
    res = _frame()
    empty = select_tracks(res, set())
    for style in STYLES:
        out = render(empty, style=style, class_names=CLASSES, out_size=(32, 24))
        assert out.shape == (24, 32, 3)
    assert (render(empty, style="matte", class_names=CLASSES) == 0).all()
    assert (render(empty, style="cutout", class_names=CLASSES) == 0).all()
    small = render(res, style="matte", class_names=CLASSES, out_size=(32, 24))
    assert small.shape == (24, 32, 3) and small.any()
    # a refusal of the caller's value (uvosam.InputError: the app and the CLI tell it as such, not as a bug)
    with pytest.raises(
        InputError, match=r"style must be one of \('overlay', 'cutout'.*got 'no-such-style'"
    ):
        render(res, style="no-such-style", class_names=CLASSES)
    with pytest.raises(InputError, match=r"alpha must be in \[0, 1\], got 1.5"):
        overlay(res, class_names=CLASSES, alpha=1.5)


# Machado, Oliveira and Fernandes (2009), severity 1, on linear RGB
_DICHROMACY = {
    "normal": np.eye(3),
    "deuteranopia": np.array(
        [
            [0.367322, 0.860646, -0.227968],
            [0.280085, 0.672501, 0.047413],
            [-0.011820, 0.042940, 0.968881],
        ]
    ),
    "protanopia": np.array(
        [
            [0.152286, 1.052583, -0.204868],
            [0.114503, 0.786281, 0.099216],
            [-0.003882, -0.048116, 1.051998],
        ]
    ),
}


def _linear(rgb):
    srgb = np.asarray(rgb, float) / 255
    return np.where(srgb <= 0.04045, srgb / 12.92, ((srgb + 0.055) / 1.055) ** 2.4)


def _lab(rgb, vision):
    """CIELAB (D65) of sRGB colours (N, 3) as seen with ``vision``."""
    xyz_rows = np.array(
        [[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]]
    )
    linear = np.clip(_linear(rgb) @ _DICHROMACY[vision].T, 0, 1)
    t = linear @ xyz_rows.T / xyz_rows.sum(axis=1)
    f = np.where(t > (6 / 29) ** 3, np.cbrt(t), t / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.stack(
        [116 * f[:, 1] - 16, 500 * (f[:, 0] - f[:, 1]), 200 * (f[:, 1] - f[:, 2])], axis=1
    )


@pytest.mark.parametrize(
    ("vision", "least"), [("normal", 19), ("deuteranopia", 13), ("protanopia", 13)]
)
def test_the_first_twenty_id_colours_stay_apart_for_the_colour_blind_too(vision, least):
    """CIE76 distances in CIELAB, dichromacy simulated: ids 6 and 14 were 9 apart in normal vision; ids 1 and 19
    4.7 in deuteranopia (2, 7, 10, 15, 18 and 20 all yellow), ids 2 and 20 2.5 in protanopia."""
    lab = _lab([colour_for_id(i) for i in range(1, 21)], vision)
    distance = np.linalg.norm(lab[:, None] - lab[None], axis=2)
    assert distance[np.triu_indices(20, 1)].min() >= least
    assert np.diagonal(distance, 1).min() >= 30  # consecutive ids, often on screen together


@pytest.mark.parametrize(
    ("vision", "near", "from_first"),
    [("normal", 14, 9), ("deuteranopia", 7.5, 6), ("protanopia", 7.5, 6)],
)
def test_every_id_stands_apart_from_its_neighbours_and_later_ids_from_the_first_twenty(
    vision, near, from_first
):
    """CIE76 distances in CIELAB over ids 1-200 (every window of the 60-colour cycle, across its wraps). The
    golden-ratio walk ids past 20 took: ids 13 and 26 were 4.6 apart, id 116 within 1.4 of id 1 (normal vision),
    ids 98 and 6 within 0.4 in deuteranopia."""
    ids = np.arange(1, 201)
    lab = _lab([colour_for_id(i) for i in ids], vision)
    distance = np.linalg.norm(lab[:, None] - lab[None], axis=2)
    gap = np.abs(ids[:, None] - ids[None])
    assert distance[(gap > 0) & (gap < 20)].min() >= near  # neighbours: ids fewer than 20 apart
    assert np.diagonal(distance, 1).min() >= 30  # consecutive ids
    assert (
        distance[20:, :20].min() >= from_first
    )  # a later id vs ids 1-20, often on screen all along
    assert distance[20:80, 20:80][np.triu_indices(60, 1)].min() >= from_first  # ids 21-80


def _contrast(a, b):
    """WCAG 2 contrast ratio of two sRGB colours."""
    la, lb = (float(_linear(c) @ [0.2126, 0.7152, 0.0722]) for c in (a, b))
    return (max(la, lb) + 0.05) / (min(la, lb) + 0.05)


def test_tag_ink_contrasts_with_every_id_colour():
    for track_id in range(1, 101):
        colour = colour_for_id(track_id)
        assert _contrast(ink_for(colour), colour) >= 4.5, track_id


def _tags_only(boxes_xyxy, scores, size=(854, 480), track_ids=None):
    """The tags alone (no boxes, empty masks, a black frame): (H, W, 3) uint8, and the track ids."""
    width, height = size
    track_ids = track_ids or list(range(1, len(boxes_xyxy) + 1))
    res = FrameResult(
        frame_index=0,
        image=np.zeros((height, width, 3), np.uint8),
        track_ids=np.array(track_ids, np.int64),
        boxes_xyxy=np.array(boxes_xyxy, np.float32),
        scores=np.array(scores, np.float32),
        labels=np.zeros(len(track_ids), np.int64),
        masks=np.zeros((len(track_ids), height, width), bool),
        mask_scores=np.ones(len(track_ids), np.float32),
    )
    return overlay(res, class_names=["rabbit"], show_boxes=False), track_ids


def _tag_pixels(image, track_id):
    """(H, W) bool: the pixels of ``track_id``'s tag fill."""
    return (image == colour_for_id(track_id)).all(axis=2)


def _tag_rect(image, track_id):
    """(x1, y1, x2, y2) around ``track_id``'s tag fill, inclusive."""
    ys, xs = np.nonzero(_tag_pixels(image, track_id))
    return xs.min(), ys.min(), xs.max(), ys.max()


def test_the_most_confident_track_gets_its_tag_place_and_is_drawn_on_top():
    """Two tracks on one box (rows best first, as the pipeline gives them): the later row's tag was drawn over the
    first's, so the most confident one was hidden."""
    image, _ = _tags_only([[300, 200, 500, 400]] * 2, [0.9, 0.6])
    x1, _, _, y2 = _tag_rect(image, 1)
    assert (x1, y2) == (300, 199)  # above the box's top-left corner
    assert _tag_pixels(image, 2).any()  # the other one elsewhere
    # no room for both on a 16x10 frame: they overlap, the most confident on top
    tiny, _ = _tags_only([[0, 0, 16, 10]] * 2, [0.9, 0.6], size=(16, 10))
    alone, _ = _tags_only([[0, 0, 16, 10]], [0.9], size=(16, 10))
    assert np.array_equal(_tag_pixels(tiny, 1), _tag_pixels(alone, 1))
    assert _tag_pixels(tiny, 2).any()


def test_tags_do_not_cover_each_other_where_there_is_room():
    """Tags of touching and overlapping boxes, and of a box at the right edge beside another, ran into each other;
    each tag shows as many fill pixels with the others drawn as alone."""
    boxes = [[256, 192, 384, 288], [384, 192, 512, 288], [324, 240, 444, 360], [700, 100, 854, 200],
             [640, 100, 700, 200], [700, 0, 760, 40], [760, 0, 854, 40]]  # fmt: skip
    scores = [0.9, 0.85, 0.8, 0.75, 0.7, 0.65, 0.6]
    together, ids = _tags_only(boxes, scores)
    for i, track_id in enumerate(ids):
        alone, _ = _tags_only([boxes[i]], [scores[i]], track_ids=[track_id])
        assert _tag_pixels(together, track_id).sum() == _tag_pixels(alone, track_id).sum(), track_id


def test_tag_size_follows_the_shorter_side_and_tiny_frames_show_the_id_only():
    """A portrait 480x854 frame got 24 px tags (its height / 30), wider than its objects; at 160x90 "1 rabbit
    0.90" was a third of the frame's width."""
    box = [[100, 300, 200, 400]]
    portrait, landscape = (
        _tags_only(box, [0.9], (480, 854))[0],
        _tags_only(box, [0.9], (854, 480))[0],
    )
    assert _tag_rect(portrait, 1) == _tag_rect(landscape, 1)
    tiny, _ = _tags_only([[40, 40, 80, 60]], [0.9], (160, 90))
    x1, _, x2, _ = _tag_rect(tiny, 1)
    assert x2 - x1 + 1 <= 12  # "1" only


def test_a_tag_goes_below_an_object_at_the_top_edge():
    """It was drawn inside the box, over the top of a small object at the frame's top."""
    image, _ = _tags_only([[400, 0, 460, 30]], [0.9])
    assert _tag_rect(image, 1)[:2] == (400, 30)
