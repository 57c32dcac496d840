"""Frame folders with odd but valid frames (16-bit grayscale PNGs; the train loader's ``read_frame`` decodes
frames the same way), odd frame names, frames that cannot be read, and inputs that are not regular files."""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from uvosam.errors import VideoReadError
from uvosam.frame_folder import to_rgb8
from uvosam.train.datasets import read_frame
from uvosam.video import iter_frames, probe


def ramp16(path: Path) -> Path:
    """A 16-bit grayscale PNG (PIL mode I;16): 0..65535 left to right, 256x4."""
    Image.fromarray(np.tile(np.linspace(0, 65535, 256).astype(np.uint16), (4, 1))).save(path)
    return path


def test_16_bit_grayscale_frames_are_scaled_to_8_bits_not_clipped(tmp_path):
    folder = tmp_path / "seq"
    folder.mkdir()
    ramp16(folder / "00000.png")
    ramp16(folder / "00001.png")
    with Image.open(folder / "00000.png") as im:
        assert im.mode in ("I;16", "I")  # Pillow < 10.3 opens a 16-bit grayscale PNG as "I"
    assert (probe(folder).width, probe(folder).height) == (256, 4)
    frame = next(iter_frames(folder))
    assert frame.dtype == np.uint8 and frame.shape == (4, 256, 3)
    assert frame.mean() == pytest.approx(
        127.5, abs=0.5
    )  # it was 254.5: all but black clipped to white
    assert frame[0, 0].tolist() == [0, 0, 0] and frame[0, -1].tolist() == [255, 255, 255]
    assert frame[0, 128].tolist() == [128] * 3
    np.testing.assert_array_equal(read_frame(folder / "00001.png"), frame)  # the train loader alike


@pytest.mark.parametrize(
    ("array", "expected"),
    [
        (np.array([[0, 257, 65535]], np.int32), [0, 1, 255]),  # mode I with 16-bit values: scaled
        (np.array([[0, 7, 255]], np.int32), [0, 7, 255]),  # mode I with 8-bit values: as they are
        (np.array([[-5, 70000, 32896]], np.int32), [0, 255, 128]),  # out of 0..65535: clipped
    ],
)
def test_to_rgb8_of_32_bit_integer_images(array, expected):
    rgb = to_rgb8(Image.fromarray(array))
    assert rgb.shape == (1, 3, 3) and rgb.flags.writeable
    assert rgb[..., 0].ravel().tolist() == expected


def test_a_dark_16_bit_png_opened_as_mode_i_is_scaled_as_a_bright_one():
    """Where Pillow opens a 16-bit grayscale PNG as mode I (not I;16), whether a frame was scaled depended on its
    values: a dark frame (max 40) of a 16-bit sequence stayed as it was (40) while its bright neighbours were
    scaled (to 0..255), so brightness jumped between frames. A PNG's mode I is 16-bit whatever its values."""
    dark = Image.fromarray(np.array([[0, 40, 255]], np.int32))
    dark.format = "PNG"  # as Image.open gives it
    assert to_rgb8(dark)[..., 0].ravel().tolist() == [0, 0, 1]


def test_to_rgb8_of_8_bit_modes_is_pil_convert():
    la = Image.new("LA", (2, 2), (77, 10))
    np.testing.assert_array_equal(to_rgb8(la), np.full((2, 2, 3), 77, np.uint8))


def frames(folder: Path, names: list[str]) -> Path:
    folder.mkdir()
    for value, name in enumerate(names):
        Image.new("RGB", (8, 6), (value * 40, 0, 0)).save(folder / name)
    return folder


def test_a_zero_byte_frame_is_named_without_pils_file_object(tmp_path):
    folder = frames(tmp_path / "seq", ["00000.png", "00001.png"])
    (folder / "00002.png").write_bytes(b"")
    with pytest.raises(VideoReadError) as refused:
        probe(folder)
    assert str(refused.value) == (
        f"Frame {folder / '00002.png'} is not a readable image (it is empty: 0 bytes). Replace or remove it."
    )
    (folder / "00002.png").write_bytes(b"not an image")
    with pytest.raises(VideoReadError, match=r"\(PIL does not recognise its content as an image\)"):
        probe(folder)


def test_a_frame_that_links_to_nothing_is_refused_by_name(tmp_path):
    folder = frames(tmp_path / "seq", ["00000.png", "00001.png"])
    (folder / "00009.png").symlink_to(tmp_path / "gone.png")
    with pytest.raises(
        VideoReadError, match=r"Frame .*00009\.png is a symbolic link to '.*gone\.png', which"
    ):
        probe(folder)


def test_a_hyphen_before_digits_is_not_a_minus_sign(tmp_path):
    folder = frames(tmp_path / "seq", ["clip-10.png", "clip-2.png", "clip-1.png"])
    assert probe(folder).frame_names == ("clip-1", "clip-2", "clip-10")


@pytest.mark.parametrize("kind", ["fifo", "/dev/zero"])
def test_a_pipe_or_device_is_not_called_an_empty_upload(tmp_path, kind):
    if kind == "fifo":
        path = tmp_path / "pipe.mp4"
        os.mkfifo(path)
        what = "a named pipe (FIFO)"
    else:
        path, what = Path(kind), "a character device"
    with pytest.raises(
        VideoReadError, match=rf"is not a regular file but {re.escape(what)}: a video"
    ):
        probe(path)
