"""Two-frame training clips: sampling, augmentation and the mixed, sharded clip stream (spec §6).

Sampling (``YTVISDatasetMapper`` of the release): a random frame r and one other frame from
[r - range, r + range] minus r, sorted; the earlier is the KEY frame. Augmentation per clip: with
probability ``crop_prob`` every frame gets its own absolute-range random crop (each side uniform in
``crop_size``, clamped to the frame); then both frames are resized so the shortest edge is one size
chosen per clip from ``min_size_train`` (longest edge capped at ``max_size_train``, PIL bilinear);
then the whole clip is flipped horizontally with probability ``flip_prob``. Boxes follow (clipped to
the crop); a box left with no width or height marks the object absent. Objects absent from the key
frame are dropped from both frames.

The stream is stateless: clip number ``i`` is a pure function of (seed, i) (``ClipDataset``), the
dataset of each clip is drawn with probability proportional to its ratio and the video uniformly
within it. ``ClipIndexSampler`` hands every process its share of each global batch (like
``DistributedSampler``) starting at any iteration, so a resumed run sees exactly the clips the
uninterrupted one would have.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler
from torchvision.ops import box_convert

from uvosam.errors import InputError
from uvosam.tracker.preprocess import resize_frame
from uvosam.train.config import TrainConfig
from uvosam.train.datasets import VideoRecord, read_frame
from uvosam.train.losses import FrameTargets

MIN_BOX_SIDE = 1e-5
"""detectron2 ``Boxes.nonempty`` threshold (pixels)."""


@dataclass(frozen=True)
class Clip:
    """A key + reference frame pair, augmented.

    Attributes:
        images: (key, reference) (H_t, W_t, 3) uint8 RGB arrays (sizes may differ).
        boxes_xyxy: (2, G, 4) float32 pixel boxes in each augmented frame (zeros where absent).
        valid: (2, G) bool; ``valid[0]`` is all True.
        track_ids: (G,) int64 the objects' ids in the source video.
    """

    images: tuple[np.ndarray, np.ndarray]
    boxes_xyxy: np.ndarray
    valid: np.ndarray
    track_ids: np.ndarray


def sample_frame_pair(length: int, frame_range: int, rng: np.random.Generator) -> tuple[int, int]:
    """(key, reference) frame indices, key <= reference; equal only for one-frame videos."""
    ref = int(rng.integers(length))
    others = [
        t for t in range(max(0, ref - frame_range), min(length, ref + frame_range + 1)) if t != ref
    ]
    if not others:
        return ref, ref
    other = int(rng.choice(others))
    return min(ref, other), max(ref, other)


def crop_window(
    height: int, width: int, size: tuple[int, int], rng: np.random.Generator
) -> tuple[int, int, int, int]:
    """detectron2 ``RandomCrop("absolute_range")``: (y0, x0, h, w) of a random window."""
    ch = int(rng.integers(min(height, size[0]), min(height, size[1]) + 1))
    cw = int(rng.integers(min(width, size[0]), min(width, size[1]) + 1))
    y0 = int(rng.integers(height - ch + 1))
    x0 = int(rng.integers(width - cw + 1))
    return y0, x0, ch, cw


def augment_frame(
    image: np.ndarray,
    boxes_xyxy: np.ndarray,
    *,
    crop: tuple[int, int, int, int] | None,
    short_edge: int,
    max_size: int,
    flip: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """Crop -> resize -> flip one frame and its (G, 4) pixel boxes (clipped to the frame)."""
    boxes = boxes_xyxy.astype(np.float32).copy()
    if crop is not None:
        y0, x0, ch, cw = crop
        image = image[y0 : y0 + ch, x0 : x0 + cw]
        boxes -= np.array([x0, y0, x0, y0], np.float32)
    h, w = image.shape[:2]
    boxes = np.clip(boxes, 0, np.array([w, h, w, h], np.float32))
    resized = resize_frame(np.ascontiguousarray(image), short_edge, max_size)
    boxes *= np.array([resized.shape[1] / w, resized.shape[0] / h] * 2, np.float32)
    if flip:
        resized = resized[:, ::-1]
        boxes = np.stack(
            [
                resized.shape[1] - boxes[:, 2],
                boxes[:, 1],
                resized.shape[1] - boxes[:, 0],
                boxes[:, 3],
            ],
            1,
        )
    return np.ascontiguousarray(resized), boxes.reshape(-1, 4)


def make_clip(video: VideoRecord, cfg: TrainConfig, rng: np.random.Generator) -> Clip:
    """Sample and augment one clip of ``video`` (module docstring)."""
    key_t, ref_t = sample_frame_pair(len(video), cfg.sampling_frame_range, rng)
    ids = sorted(set(video.boxes[key_t]) | set(video.boxes[ref_t]))
    use_crop = rng.random() < cfg.crop_prob
    short = int(rng.choice(cfg.min_size_train))
    flip = rng.random() < cfg.flip_prob
    images, boxes, valid = [], [], []
    for t in (key_t, ref_t):
        frame = read_frame(video.frames[t])
        raw = np.array([video.boxes[t].get(i, (0.0, 0.0, 0.0, 0.0)) for i in ids], np.float32)
        crop = crop_window(*frame.shape[:2], cfg.crop_size, rng) if use_crop else None
        image, b = augment_frame(
            frame,
            raw.reshape(-1, 4),
            crop=crop,
            short_edge=short,
            max_size=cfg.max_size_train,
            flip=flip,
        )
        present = np.array([i in video.boxes[t] for i in ids], bool)
        ok = present & (b[:, 2] - b[:, 0] > MIN_BOX_SIDE) & (b[:, 3] - b[:, 1] > MIN_BOX_SIDE)
        images.append(image)
        boxes.append(np.where(ok[:, None], b, 0.0))
        valid.append(ok)
    keep = valid[0]
    return Clip(
        images=(images[0], images[1]),
        boxes_xyxy=np.stack(boxes)[:, keep].astype(np.float32),
        valid=np.stack(valid)[:, keep],
        track_ids=np.array(ids, np.int64)[keep],
    )


class ClipDataset(Dataset):
    """Clip ``i`` of the mixed stream = f(seed, i) (module docstring). Map-style, infinite: any
    non-negative index is valid (``__len__`` is only nominal)."""

    def __init__(
        self,
        sources: Sequence[Sequence[VideoRecord]],
        ratios: Sequence[float],
        cfg: TrainConfig,
        *,
        seed: int | None = None,
    ) -> None:
        if len(sources) != len(ratios) or not sources:
            raise InputError(
                f"ClipDataset needs one ratio per source and at least one source; "
                f"got {len(sources)} sources, {len(ratios)} ratios"
            )
        empty = [i for i, s in enumerate(sources) if not s]
        if empty:
            raise InputError(f"data sources {empty} have no videos")
        self.sources = [list(s) for s in sources]
        total = float(sum(ratios))
        self.probs = np.array([r / total for r in ratios])
        self.cfg = cfg
        self.seed = cfg.seed if seed is None else seed

    def __len__(self) -> int:
        return 2**62

    def __getitem__(self, index: int) -> Clip:
        rng = np.random.default_rng([self.seed, int(index)])
        source = self.sources[int(rng.choice(len(self.sources), p=self.probs))]
        return make_clip(source[int(rng.integers(len(source)))], self.cfg, rng)


class ClipIndexSampler(Sampler[int]):
    """Global clip indices of process ``rank`` from iteration ``start_iter`` on (infinite).

    Iteration ``it`` uses global indices ``it * clips_per_batch + [0, clips_per_batch)``, split into
    ``world_size`` contiguous shares of ``clips_per_batch // world_size``.
    """

    def __init__(
        self, clips_per_batch: int, *, rank: int = 0, world_size: int = 1, start_iter: int = 0
    ) -> None:
        if clips_per_batch % world_size:
            raise InputError(
                f"clips_per_batch ({clips_per_batch}) must be divisible by the number "
                f"of processes ({world_size})"
            )
        self.per_rank = clips_per_batch // world_size
        self.clips_per_batch = clips_per_batch
        self.rank = rank
        self.start_iter = start_iter

    def __iter__(self) -> Iterator[int]:
        it = self.start_iter
        while True:
            base = it * self.clips_per_batch + self.rank * self.per_rank
            yield from range(base, base + self.per_rank)
            it += 1


def collate_clips(clips: list[Clip]) -> list[Clip]:
    """DataLoader ``collate_fn``: keep the clips as a list (frames differ in size)."""
    return clips


def clip_targets(clips: Sequence[Clip], frame: int) -> list[FrameTargets]:
    """Per clip the ``FrameTargets`` of frame 0 (key) or 1 (reference): boxes normalised by that
    frame's size, class 0."""
    out = []
    for clip in clips:
        h, w = clip.images[frame].shape[:2]
        boxes = torch.from_numpy(clip.boxes_xyxy[frame]) / torch.tensor([w, h, w, h])
        out.append(
            FrameTargets(
                boxes_cxcywh_norm=box_convert(boxes, "xyxy", "cxcywh").float(),
                labels=torch.zeros(len(boxes), dtype=torch.long),
                valid=torch.from_numpy(clip.valid[frame]),
            )
        )
    return out
