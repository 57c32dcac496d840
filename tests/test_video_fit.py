"""``fit_side``: frames over a longest side decoded scaled down to it (``uvosam.video_fit``), a video file through
ffmpeg and a frame folder through PIL; never enlarged, even sides, aspect kept; limits still apply to the source's
size. The phone-sized clip is cut from Big Buck Bunny (CC-BY 3.0, Blender Foundation) and scaled up with ffmpeg."""

from __future__ import annotations

import numpy as np
import pytest
from clip_helpers import write_bunny, write_clip
from PIL import Image
from proc import ffmpeg

from uvosam.config import VideoLimits
from uvosam.errors import VideoLimitError
from uvosam.video import iter_frames, probe
from uvosam.video_fit import fit_size


@pytest.fixture(scope="module")
def phone_clip(tmp_path_factory):
    """4 frames of Big Buck Bunny at a phone's 2560x1440."""
    return write_bunny(tmp_path_factory.mktemp("phone") / "phone.mp4", 2560, 1440)


@pytest.mark.parametrize(
    ("size", "fit_side", "expected"),
    [
        ((2560, 1440), 1920, (1920, 1080)),
        ((3840, 2160), 1920, (1920, 1080)),
        ((1440, 2560), 1920, (1080, 1920)),  # portrait
        ((1001, 777), 500, (500, 388)),  # odd sides: scaled to even ones
        ((1001, 777), 501, (500, 388)),  # an odd fit_side: the longest side rounded down to even
        ((1921, 1081), 1920, (1920, 1080)),
        ((1280, 720), 1920, (1280, 720)),  # never enlarged
        ((1001, 777), 1001, (1001, 777)),  # not over it: kept as it is, odd sides too
        ((1001, 777), None, (1001, 777)),
    ],
)
def test_fit_size_keeps_the_aspect_with_even_sides_and_never_enlarges(size, fit_side, expected):
    assert fit_size(*size, fit_side) == expected


@pytest.mark.parametrize("bad", [0, 1, 2.5, True, "1920"])
def test_a_bad_fit_side_is_refused_naming_it(tmp_path, bad):
    clip = write_clip(tmp_path / "c.mp4", 2, 32, 16)
    with pytest.raises(
        ValueError, match=r"fit_side must be None \(the source size\) or an integer >= 2"
    ):
        probe(clip, fit_side=bad)


def test_a_phone_sized_clip_is_decoded_scaled_down_to_fit_side(phone_clip):
    info = probe(phone_clip, fit_side=1920)
    assert (info.width, info.height, info.scaled_from, info.source_size) == (
        1920, 1080, (2560, 1440), (2560, 1440))  # fmt: skip
    frames = list(iter_frames(phone_clip, fit_side=1920))
    full = list(iter_frames(phone_clip))
    assert len(frames) == len(full) == 4 and all(f.shape == (1080, 1920, 3) for f in frames)
    # area averaging by ffmpeg: what PIL's box filter makes of the full-size frame, within rounding and chroma
    for small, big in zip(frames, full):
        boxed = np.asarray(Image.fromarray(big).resize((1920, 1080), Image.Resampling.BOX))
        assert np.abs(small.astype(int) - boxed).mean() < 2.0
    # with a stride: the frames kept, scaled
    strided = list(iter_frames(phone_clip, fit_side=1001, stride=2))
    assert [f.shape for f in strided] == [(562, 1000, 3)] * 2


def test_limits_apply_to_the_source_size_not_the_scaled_one(phone_clip):
    """A refusal with fit_side says the limit is of the size before scaling (it named the source's size only);
    the subject, which the app's message uses, stays as it was."""
    with pytest.raises(VideoLimitError) as err:
        probe(phone_clip, fit_side=1920, limits=VideoLimits(max_side=2000))
    assert str(err.value) == (
        "phone.mp4 is 2560x1440: its longest side 2560 px, over the limit of 2000 (VideoLimits.max_side), which "
        "applies to its size before fit_side 1920 scales it down. To use it, resize it, or raise "
        "VideoLimits.max_side."
    )
    assert err.value.subject == "phone.mp4 is 2560x1440: its longest side 2560 px"
    for fit_side in (None, 2560):  # not scaled: nothing said of it
        with pytest.raises(VideoLimitError) as err:
            probe(phone_clip, fit_side=fit_side, limits=VideoLimits(max_pixels=2000 * 1000))
        assert "fit_side" not in str(err.value)
    with pytest.raises(VideoLimitError, match=r"\(VideoLimits\.max_frames\)\. To use it"):
        probe(
            phone_clip, fit_side=1920, limits=VideoLimits(max_frames=2)
        )  # not a limit of the size
    assert probe(phone_clip, fit_side=1920, limits=VideoLimits(max_side=2560)).width == 1920


def test_a_fit_side_over_the_source_changes_nothing(tmp_path):
    clip = write_clip(tmp_path / "c.mp4", 3, 96, 64)
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, frame in enumerate(iter_frames(clip)):
        Image.fromarray(frame).save(folder / f"{i:05d}.png")
    for source in (clip, folder):
        assert probe(source, fit_side=96) == probe(source) == probe(source, fit_side=4000)
        assert probe(source).scaled_from is None
        plain = list(iter_frames(source))
        for fit_side in (96, 4000):
            assert all(
                a.tobytes() == b.tobytes()
                for a, b in zip(plain, iter_frames(source, fit_side=fit_side), strict=True)
            )


def test_a_frame_folder_over_the_side_is_scaled_to_even_sides(tmp_path):
    rng = np.random.default_rng(0)
    folder = tmp_path / "seq"
    folder.mkdir()
    images = [rng.integers(0, 255, (201, 301, 3), dtype=np.uint8) for _ in range(2)]
    for i, image in enumerate(images):
        Image.fromarray(image).save(folder / f"{i:05d}.png")
    info = probe(folder, fit_side=100)
    assert (info.width, info.height, info.scaled_from) == (100, 66, (301, 201))
    with pytest.raises(
        VideoLimitError, match="which applies to its size before fit_side 100 scales it down"
    ):
        probe(folder, fit_side=100, limits=VideoLimits(max_side=300))
    frames = list(iter_frames(folder, fit_side=100))
    for frame, image in zip(frames, images, strict=True):
        assert frame.shape == (66, 100, 3)
        boxed = np.asarray(Image.fromarray(image).resize((100, 66), Image.Resampling.BOX))
        np.testing.assert_array_equal(frame, boxed)


def test_a_rotated_clip_is_scaled_in_display_orientation(tmp_path):
    src = write_clip(tmp_path / "src.mp4", 2, 160, 96)
    rotated = tmp_path / "rot.mp4"
    ffmpeg("-display_rotation", "90", "-i", src, "-c", "copy", rotated)
    info = probe(rotated, fit_side=80)
    assert (info.width, info.height, info.scaled_from) == (48, 80, (96, 160))
    full = list(iter_frames(rotated))
    for small, big in zip(iter_frames(rotated, fit_side=80), full, strict=True):
        assert small.shape == (80, 48, 3)
        boxed = np.asarray(Image.fromarray(big).resize((48, 80), Image.Resampling.BOX))
        assert np.abs(small.astype(int) - boxed).mean() < 4.0
