"""The IDOL detector's ``pad_and_normalize``: the CPU path and the upload path (one host buffer, one non-blocking
copy; run here with a CPU target) give, bit for bit, what the original per-frame algorithm gives."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from uvosam.tracker import preprocess
from uvosam.tracker.config import DetectorConfig


def plain_pad_and_normalize(frames, mean, std, div):
    """The original algorithm, written out in numpy: a zero float32 batch and a True mask of the padded size, each
    frame's (x - mean) / std in float32 at its top left, the mask False there."""
    hp = -(-max(f.shape[0] for f in frames) // div) * div
    wp = -(-max(f.shape[1] for f in frames) // div) * div
    images = np.zeros((len(frames), 3, hp, wp), np.float32)
    pad_mask = np.ones((len(frames), hp, wp), bool)
    mean = np.array(mean, np.float32).reshape(3, 1, 1)
    std = np.array(std, np.float32).reshape(3, 1, 1)
    for i, frame in enumerate(frames):
        h, w = frame.shape[:2]
        x = frame.transpose(2, 0, 1).astype(np.float32)
        images[i, :, :h, :w] = (x - mean) / std
        pad_mask[i, :h, :w] = False
    return images, pad_mask


def upload_path(frames, cfg):
    """The path taken for a CUDA target (``_upload_and_normalize``), with a CPU target: the same buffer, views and
    ops, no pinning."""
    div = cfg.size_divisibility
    hp = -(-max(f.shape[0] for f in frames) // div) * div
    wp = -(-max(f.shape[1] for f in frames) // div) * div
    return preprocess._upload_and_normalize(frames, cfg, hp, wp, torch.device("cpu"))


PATHS = {
    "cpu": preprocess.pad_and_normalize,
    "upload": upload_path,
}


def assert_bit_identical(got, frames, cfg):
    images, pad_mask = got
    ref_images, ref_mask = plain_pad_and_normalize(
        frames, cfg.pixel_mean, cfg.pixel_std, cfg.size_divisibility
    )
    assert images.dtype == torch.float32 and pad_mask.dtype == torch.bool
    assert images.is_contiguous()
    assert images.shape == ref_images.shape and pad_mask.shape == ref_mask.shape
    np.testing.assert_array_equal(images.numpy().view(np.uint32), ref_images.view(np.uint32))
    np.testing.assert_array_equal(pad_mask.numpy(), ref_mask)


def random_frames(shapes, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in shapes]


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("div", [1, 32])
def test_frames_of_different_odd_sizes_match_the_original_bit_for_bit(path, div):
    cfg = dataclasses.replace(DetectorConfig.tiny(), size_divisibility=div)
    frames = random_frames([(33, 47), (65, 31), (1, 1), (64, 96), (17, 95)])
    frames[1][:] = 255  # the extremes of uint8
    frames[2][:] = 0
    assert_bit_identical(PATHS[path](frames, cfg), frames, cfg)


@pytest.mark.parametrize("path", PATHS)
def test_other_constants_and_frames_that_are_views_or_read_only(path):
    cfg = dataclasses.replace(
        DetectorConfig.tiny(),
        pixel_mean=(0.1, 250.5, 17.25),
        pixel_std=(1e-3, 3.3, 255.0),
        size_divisibility=7,
    )
    base = random_frames([(40, 50)], seed=1)[0]
    read_only = base.copy()
    read_only.flags.writeable = False
    frames = [base[::-1, ::2], read_only, np.asfortranarray(base[:13, :29])]
    assert_bit_identical(PATHS[path](frames, cfg), frames, cfg)
    assert not read_only.flags.writeable


def test_one_frame_already_divisible_has_no_padding_on_either_path():
    cfg = DetectorConfig.tiny()
    frames = random_frames([(64, 96)], seed=2)
    for path in PATHS.values():
        images, pad_mask = path(frames, cfg)
        assert images.shape == (1, 3, 64, 96) and not pad_mask.any()
        assert_bit_identical((images, pad_mask), frames, cfg)
