"""Tiny random-weight models built with the REAL constructors, and synthetic videos, for tests and benchmarks.

Nothing here is downloaded: these models have the exact architecture classes of the released ones at toy sizes,
so every code path (loading, batching, resizing, post-processing) runs as it does with real weights.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import partial

import numpy as np
import torch
from segment_anything.modeling import (
    ImageEncoderViT,
    MaskDecoder,
    PromptEncoder,
    Sam,
    TwoWayTransformer,
)


def tiny_sam(*, seed: int = 0, img_size: int = 64, embed_dim: int = 32, depth: int = 1) -> Sam:
    """A random-weight SAM with segment_anything's own classes at toy size (ViT depth 1, width 32, 64 px input).

    Returns:
        ``segment_anything.modeling.Sam`` in eval mode on CPU.
    """
    torch.manual_seed(seed)
    patch = 16
    prompt_dim = 32
    sam = Sam(
        image_encoder=ImageEncoderViT(
            depth=depth,
            embed_dim=embed_dim,
            img_size=img_size,
            mlp_ratio=4,
            norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
            num_heads=2,
            patch_size=patch,
            qkv_bias=True,
            use_rel_pos=True,
            global_attn_indexes=[depth - 1],
            window_size=2,
            out_chans=prompt_dim,
        ),
        prompt_encoder=PromptEncoder(
            embed_dim=prompt_dim,
            image_embedding_size=(img_size // patch, img_size // patch),
            input_image_size=(img_size, img_size),
            mask_in_chans=8,
        ),
        mask_decoder=MaskDecoder(
            num_multimask_outputs=3,
            transformer=TwoWayTransformer(
                depth=1, embedding_dim=prompt_dim, mlp_dim=64, num_heads=2
            ),
            transformer_dim=prompt_dim,
            iou_head_depth=2,
            iou_head_hidden_dim=32,
        ),
        pixel_mean=[123.675, 116.28, 103.53],
        pixel_std=[58.395, 57.12, 57.375],
    )
    return sam.eval()


def tiny_sam2(*, seed: int = 0, image_size: int = 256) -> torch.nn.Module:
    """A random-weight SAM 2.1 (``sam2.modeling.sam2_base.SAM2Base``) built from the sam2 package's own
    ``sam2.1_hiera_t`` config at toy size: Hiera width 8 with 5 blocks (one global-attention block), 32-channel
    neck, prompt encoder and mask decoder, ``image_size`` input (1024 in the released models; any multiple of
    64). Needs the sam2 package.

    Returns:
        ``SAM2Base`` in eval mode on CPU (about 0.7 M parameters).
    """
    from uvosam.sam2_segmenter import build_sam2_model

    torch.manual_seed(seed)
    return build_sam2_model("sam2.1_tiny", tiny_sam2_overrides(image_size))


def tiny_sam2_overrides(image_size: int = 256) -> list[str]:
    """The Hydra overrides that shrink the sam2 package's ``sam2.1_hiera_t`` config to ``tiny_sam2``'s size."""
    d, mem = 32, 16
    att = "++model.memory_attention.layer"
    side = image_size // 16
    return [
        f"++model.image_size={image_size}",
        "++model.image_encoder.trunk.embed_dim=8",
        "++model.image_encoder.trunk.stages=[1,1,2,1]",
        "++model.image_encoder.trunk.global_att_blocks=[3]",
        "++model.image_encoder.neck.backbone_channel_list=[64,32,16,8]",
        f"++model.image_encoder.neck.d_model={d}",
        f"++model.image_encoder.neck.position_encoding.num_pos_feats={d}",
        f"++model.memory_attention.d_model={d}",
        "++model.memory_attention.num_layers=1",
        f"{att}.d_model={d}",
        f"{att}.dim_feedforward={d}",
        f"{att}.self_attention.embedding_dim={d}",
        f"{att}.self_attention.feat_sizes=[{side},{side}]",
        f"{att}.cross_attention.embedding_dim={d}",
        f"{att}.cross_attention.feat_sizes=[{side},{side}]",
        f"{att}.cross_attention.kv_in_dim={mem}",
        f"++model.memory_encoder.out_dim={mem}",
        f"++model.memory_encoder.in_dim={d}",
        f"++model.memory_encoder.position_encoding.num_pos_feats={mem}",
        f"++model.memory_encoder.mask_downsampler.embed_dim={d}",
        f"++model.memory_encoder.fuser.layer.dim={d}",
    ]


@dataclass(frozen=True)
class SyntheticVideo:
    """A clip of moving coloured rectangles on a textured background, with its ground truth.

    Attributes:
        frames: (T, H, W, 3) uint8 RGB.
        boxes_xyxy: (T, K, 4) float32 pixel boxes of the K objects; rows of NaN where object k is absent.
        masks: (T, K, H, W) bool ground-truth masks.
    """

    frames: np.ndarray
    boxes_xyxy: np.ndarray
    masks: np.ndarray


def moving_shapes(
    num_frames: int = 8,
    *,
    height: int = 48,
    width: int = 64,
    num_objects: int = 2,
    seed: int = 0,
    absent: dict[int, range] | None = None,
) -> SyntheticVideo:
    """Rectangles moving on straight lines (bouncing off the border) over a noisy background.

    Args:
        absent: optional ``{object index: frame range}`` during which that object is not drawn.
    """
    rng = np.random.default_rng(seed)
    absent = absent or {}
    base = rng.integers(40, 90, size=(height, width, 3), dtype=np.uint8)
    sizes = rng.integers(
        max(4, min(height, width) // 6), max(6, min(height, width) // 3), size=(num_objects, 2)
    )
    pos = rng.uniform(0, 1, size=(num_objects, 2)) * (np.array([width, height]) - sizes)
    vel = rng.uniform(-2.5, 2.5, size=(num_objects, 2))
    colours = rng.integers(150, 256, size=(num_objects, 3))
    frames = np.empty((num_frames, height, width, 3), np.uint8)
    boxes = np.full((num_frames, num_objects, 4), np.nan, np.float32)
    masks = np.zeros((num_frames, num_objects, height, width), bool)
    for t in range(num_frames):
        img = base.copy()
        for k in range(num_objects):
            x0, y0 = np.round(pos[k]).astype(int)
            w, h = sizes[k]
            if t not in absent.get(k, range(0)):
                img[y0 : y0 + h, x0 : x0 + w] = colours[k]
                masks[t, k] = False
                masks[t, k, y0 : y0 + h, x0 : x0 + w] = True
                masks[t, :k, y0 : y0 + h, x0 : x0 + w] = False
                boxes[t, k] = (x0, y0, x0 + w, y0 + h)
            pos[k] += vel[k]
            for axis, limit in ((0, width - w), (1, height - h)):
                if not 0 <= pos[k, axis] <= limit:
                    vel[k, axis] *= -1
                    pos[k, axis] = np.clip(pos[k, axis], 0, limit)
        frames[t] = img
    return SyntheticVideo(frames=frames, boxes_xyxy=boxes, masks=masks)


def tiny_idol_tracker(
    *,
    seed: int = 0,
    batch_size: int = 3,
    class_names: tuple[str, ...] = ("object",),
    precision: str = "fp32",
):
    """A random-weight IDOL tracker (``DetectorConfig.tiny()``: real layout, toy widths, 8 queries) behind the real
    ``IDOLTracker`` association and streaming. Its boxes are meaningless but every code path runs.

    Args:
        class_names: one per classifier output (``DetectorConfig.num_classes``).
        precision: the detector's ``DetectorConfig.precision`` (``fp32`` / ``tf32`` / ``bf16``).

    Returns:
        ``uvosam.tracker.session.IDOLTracker`` on CPU.
    """
    from uvosam.tracker.config import DetectorConfig
    from uvosam.tracker.detector import IDOLDetector
    from uvosam.tracker.session import IDOLTracker

    torch.manual_seed(seed)
    cfg = replace(DetectorConfig.tiny(), precision=precision, num_classes=len(class_names))
    detector = IDOLDetector(cfg).eval()
    return IDOLTracker(detector, class_names, batch_size=batch_size)
