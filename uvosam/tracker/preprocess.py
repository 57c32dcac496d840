"""Test-time preprocessing of the IDOL detector, identical to the release's detectron2 pipeline
(spec §1.3): ``ResizeShortestEdge(min_size_test, max_size_test)`` with PIL bilinear on uint8 (none for
``min_size_test`` 0),
per-frame normalisation with the RGB mean/std, zero padding (after normalisation) at the
bottom/right to a multiple of ``size_divisibility``. On CUDA a batch goes up in one non-blocking copy
from pinned memory (``pad_and_normalize``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image

from uvosam.tracker.config import DetectorConfig
from uvosam.tracker.frames import check_frame


def resized_shape(height: int, width: int, min_size: int, max_size: int) -> tuple[int, int]:
    """Output ``(height, width)`` of detectron2's ``ResizeShortestEdge``: scale the shortest edge to
    ``min_size``; if the longest edge would exceed ``max_size``, scale that to ``max_size`` instead;
    round with ``int(x + 0.5)``, but to at least 1 px: a frame more than ``2 * max_size`` times
    as wide as it is tall (or tall as wide) would get a side of 0 px, where the reference fails.
    ``min_size`` 0 keeps the frame's size (detectron2: no resize, ``max_size`` ignored)."""
    if min_size == 0:
        return height, width
    scale = min_size / min(height, width)
    if height < width:
        new_h, new_w = float(min_size), scale * width
    else:
        new_h, new_w = scale * height, float(min_size)
    if max(new_h, new_w) > max_size:
        scale = max_size / max(new_h, new_w)
        new_h, new_w = new_h * scale, new_w * scale
    return max(int(new_h + 0.5), 1), max(int(new_w + 0.5), 1)


def resize_frame(frame: np.ndarray, min_size: int, max_size: int) -> np.ndarray:
    """Resize an (H, W, 3) uint8 RGB frame per ``resized_shape``, PIL bilinear (uint8 -> uint8)."""
    h, w = frame.shape[:2]
    new_h, new_w = resized_shape(h, w, min_size, max_size)
    if (new_h, new_w) == (h, w):
        return frame
    return np.array(Image.fromarray(frame).resize((new_w, new_h), Image.BILINEAR))


def resize_frames(frames: Sequence[np.ndarray], cfg: DetectorConfig) -> list[np.ndarray]:
    """Validate and resize every frame with the config's ``min_size_test`` / ``max_size_test``."""
    return [
        resize_frame(check_frame(f, i), cfg.min_size_test, cfg.max_size_test)
        for i, f in enumerate(frames)
    ]


def pad_and_normalize(
    frames: Sequence[np.ndarray], cfg: DetectorConfig, *, device: torch.device | str = "cpu"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalise already-resized frames and batch them with zero padding.

    On the CPU each frame is normalised straight into its place in the batch. On another device
    the batch goes up in one copy of one host buffer that holds the normalisation constants, the
    frames as uint8 and the pad mask, and is normalised there in three launches; on CUDA the
    buffer is pinned and the copy non-blocking, so it does not wait for the work already queued
    on the device. Both give the same values, bit for bit.

    Args:
        frames: T (H_t, W_t, 3) uint8 RGB arrays (any sizes; the batch is padded to the largest).
        cfg: supplies ``pixel_mean``, ``pixel_std``, ``size_divisibility``.
        device: where the tensors are built.

    Returns:
        images (T, 3, Hp, Wp) float32 = (x - mean) / std, 0 in the padding; pad_mask (T, Hp, Wp)
        bool, True on padding. Hp, Wp are the largest H_t, W_t rounded up to ``size_divisibility``.
        Off the CPU, pad_mask is a view of the uploaded buffer.
    """
    if not frames:
        raise ValueError("pad_and_normalize needs at least one frame")
    div = cfg.size_divisibility
    hp = -(-max(f.shape[0] for f in frames) // div) * div
    wp = -(-max(f.shape[1] for f in frames) // div) * div
    device = torch.device(device)
    if device.type == "cpu":
        return _normalize_in_place(frames, cfg, hp, wp)
    return _upload_and_normalize(frames, cfg, hp, wp, device)


def _normalize_in_place(
    frames: Sequence[np.ndarray], cfg: DetectorConfig, hp: int, wp: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """``pad_and_normalize`` on the CPU: each frame's (x - mean) / std written into its slice of
    the batch (no float copy of the frame), then its padding zeroed."""
    mean = torch.tensor(cfg.pixel_mean, dtype=torch.float32).view(3, 1, 1)
    std = torch.tensor(cfg.pixel_std, dtype=torch.float32).view(3, 1, 1)
    images = torch.empty(len(frames), 3, hp, wp, dtype=torch.float32)
    pad_mask = torch.ones(len(frames), hp, wp, dtype=torch.bool)
    for i, frame in enumerate(frames):
        h, w = frame.shape[:2]
        x = torch.from_numpy(np.require(frame, requirements=["C", "W"])).permute(2, 0, 1)
        out = images[i, :, :h, :w]
        torch.sub(x, mean, out=out)  # uint8 - float32: computed in float32, as x.float() - mean
        out.div_(std)
        images[i, :, h:] = 0
        images[i, :, :h, w:] = 0
        pad_mask[i, :h, :w] = False
    return images, pad_mask


_CONSTANTS = 32  # bytes at the start of the upload: mean and std as 6 float32, then 8 unused


def _upload_and_normalize(
    frames: Sequence[np.ndarray], cfg: DetectorConfig, hp: int, wp: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """``pad_and_normalize`` off the CPU: one host buffer ``[mean, std | frames (T, Hp, Wp, 3)
    uint8 | pad mask (T, Hp, Wp)]`` in one copy; for CUDA pinned and copied with
    ``non_blocking=True``.

    The pinned buffer comes from PyTorch's caching host allocator, which records the copy on the
    current stream: dropping it here cannot let the memory be reused before the copy is done.
    """
    cuda = device.type == "cuda"
    n = len(frames) * hp * wp
    host = torch.empty(_CONSTANTS + 4 * n, dtype=torch.uint8, pin_memory=cuda)
    buf = host.numpy()
    buf[:24].view(np.float32)[:] = (*cfg.pixel_mean, *cfg.pixel_std)
    pixels = buf[_CONSTANTS : _CONSTANTS + 3 * n].reshape(len(frames), hp, wp, 3)
    padding = buf[_CONSTANTS + 3 * n :].reshape(len(frames), hp, wp)
    padding.fill(1)  # the pixels under it are left as they are: zeroed after normalising
    for i, frame in enumerate(frames):
        h, w = frame.shape[:2]
        pixels[i, :h, :w] = frame
        padding[i, :h, :w] = 0
    up = host.to(device, non_blocking=cuda)
    constants = up[:24].view(torch.float32)
    mean, std = constants[:3].view(3, 1, 1), constants[3:].view(3, 1, 1)
    x = up[_CONSTANTS : _CONSTANTS + 3 * n].view(len(frames), hp, wp, 3).permute(0, 3, 1, 2)
    pad_mask = up[_CONSTANTS + 3 * n :].view(len(frames), hp, wp).view(torch.bool)
    images = torch.empty(len(frames), 3, hp, wp, dtype=torch.float32, device=device)
    torch.sub(x, mean, out=images)  # contiguous (T, 3, Hp, Wp), as on the CPU
    images.div_(std)
    images.masked_fill_(pad_mask.unsqueeze(1), 0.0)
    return images, pad_mask
