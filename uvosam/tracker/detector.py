"""IDOL per-frame detector (Wu et al., "In Defense of Online Models for Video Instance
Segmentation", ECCV 2022) as used by UVOSAM: Deformable DETR with iterative box refinement + a re-id
embedding head, box-only.

Reproduces ``CondInst_segm.inference_forward`` of the release in plain PyTorch (no detectron2).
Module names mirror the original state dict after the prefixes ``detr.detr.`` / ``detr.`` (see
``uvosam.tracker.checkpoint``).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch import nn

from uvosam.tracker.backbone import ResNetBackbone, resize_mask
from uvosam.tracker.config import DetectorConfig
from uvosam.tracker.outputs import DetectorOutput, DetectorTrainOutput
from uvosam.tracker.position import sine_position_embedding
from uvosam.tracker.preprocess import pad_and_normalize, resize_frames
from uvosam.tracker.transformer import DeformableTransformer, TransformerOutput

FeatureLevels = tuple[list[torch.Tensor], list[torch.Tensor], list[torch.Tensor]]


class MLP(nn.Module):
    """``num_layers`` Linear layers with ReLU between them (none after the last)."""

    def __init__(self, input_dim: int, hidden_dim: int, output_dim: int, num_layers: int) -> None:
        super().__init__()
        dims_in = [input_dim] + [hidden_dim] * (num_layers - 1)
        dims_out = [hidden_dim] * (num_layers - 1) + [output_dim]
        self.layers = nn.ModuleList(nn.Linear(i, o) for i, o in zip(dims_in, dims_out, strict=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = torch.relu(x)
        return x


@contextlib.contextmanager
def compute_precision(precision: str, device: torch.device) -> Iterator[None]:
    """``bf16``: autocast to bfloat16 on ``device``. On CUDA, ``fp32`` switches TF32 *off* for matmuls and cuDNN
    convolutions while the block runs (PyTorch's default lets cuDNN convolutions use TF32, which would break the
    float32 parity with the original code) and ``tf32`` switches it on. These are process-wide switches, restored
    on exit. On CPU ``fp32`` and ``tf32`` change nothing."""
    if precision == "bf16":
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16):
            yield
    elif device.type == "cuda":
        with _tf32_switches(precision == "tf32"):
            yield
    else:
        yield


_tf32_lock = threading.Lock()
_tf32_users = 0  # blocks inside _tf32_switches now, in any thread
_tf32_saved: tuple[bool, bool] = (False, True)  # the switches before the first of them entered


@contextlib.contextmanager
def _tf32_switches(enabled: bool) -> Iterator[None]:
    """Set both TF32 switches to ``enabled``; the last of overlapping blocks (threads: the app's concurrent runs)
    restores what they were before the first one entered. Saving and restoring per block would let the first run
    to finish switch TF32 back on under a concurrent fp32 run, and leave it off for good at the end. Overlapping
    blocks that want different values (two detectors of different precisions in one process): the last to enter
    wins, as the switches are process-wide."""
    global _tf32_users, _tf32_saved  # noqa: PLW0603 - process-wide, like the switches
    with _tf32_lock:
        if _tf32_users == 0:
            _tf32_saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
        _tf32_users += 1
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = enabled
    try:
        yield
    finally:
        with _tf32_lock:
            _tf32_users -= 1
            if _tf32_users == 0:
                torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = _tf32_saved


class IDOLDetector(nn.Module):
    """ResNet + deformable transformer + class / box / re-id heads; frames are processed
    independently.

    ``forward`` takes normalised padded tensors; ``detect_frames`` takes raw RGB frames and does the
    exact test-time preprocessing. Weights: ``uvosam.tracker.checkpoint.load_idol_checkpoint``.
    """

    def __init__(self, cfg: DetectorConfig) -> None:
        super().__init__()
        self.cfg = cfg
        hidden = cfg.hidden_dim
        self.backbone = ResNetBackbone(cfg)
        self.input_proj = nn.ModuleList(
            nn.Sequential(
                nn.Conv2d(ch, hidden, kernel_size=1),
                nn.GroupNorm(cfg.input_proj_norm_groups, hidden),
            )
            for ch in self.backbone.out_channels
        )
        in_ch = self.backbone.out_channels[-1]
        for _ in range(cfg.num_feature_levels - len(self.backbone.out_channels)):
            self.input_proj.append(
                nn.Sequential(
                    nn.Conv2d(in_ch, hidden, kernel_size=3, stride=2, padding=1),
                    nn.GroupNorm(cfg.input_proj_norm_groups, hidden),
                )
            )
            in_ch = hidden
        self.query_embed = nn.Embedding(cfg.num_queries, hidden * 2)
        self.transformer = DeformableTransformer(
            hidden,
            cfg.nheads,
            cfg.dim_feedforward,
            cfg.num_feature_levels,
            enc_layers=cfg.enc_layers,
            dec_layers=cfg.dec_layers,
            enc_n_points=cfg.enc_n_points,
            dec_n_points=cfg.dec_n_points,
        )
        self.class_embed = nn.ModuleList(
            nn.Linear(hidden, cfg.num_classes) for _ in range(cfg.dec_layers)
        )
        self.bbox_embed = nn.ModuleList(MLP(hidden, hidden, 4, 3) for _ in range(cfg.dec_layers))
        self.reid_embed_head = MLP(hidden, hidden, hidden, 3)
        nn.init.normal_(self.transformer.level_embed)

    @property
    def device(self) -> torch.device:
        """Device of the parameters."""
        return self.query_embed.weight.device

    def forward(self, images: torch.Tensor, pad_mask: torch.Tensor) -> DetectorOutput:
        """Detect objects in a batch of frames.

        Args:
            images: (T, 3, Hp, Wp) float32, normalised with ``pixel_mean/std``, zero-padded at
                the bottom/right (Hp, Wp multiples of ``size_divisibility``).
            pad_mask: (T, Hp, Wp) bool, True on padded pixels.

        Returns:
            ``DetectorOutput``: logits (T, Q, K), boxes_cxcywh_norm (T, Q, 4) relative to each
            frame's unpadded area, embeddings (T, Q, hidden_dim).
        """
        out = self.forward_features(images, pad_mask)
        hs = out.hs[-1]
        return DetectorOutput(
            logits=self.class_embed[-1](hs),
            boxes_cxcywh_norm=out.inter_references[-1],
            embeddings=self.reid_embed_head(hs),
        )

    def forward_train(self, images: torch.Tensor, pad_mask: torch.Tensor) -> DetectorTrainOutput:
        """All decoder layers' class logits and boxes plus the last layer's re-id embeddings.

        Same inputs as ``forward``; the last layer's entries equal ``forward``'s outputs. Used by
        ``uvosam.train`` (deep supervision on layers 0..D-2, re-id on the last one).
        """
        out = self.forward_features(images, pad_mask)
        logits = torch.stack([head(h) for head, h in zip(self.class_embed, out.hs, strict=True)])
        return DetectorTrainOutput(
            logits=logits,
            boxes_cxcywh_norm=out.inter_references,
            embeddings=self.reid_embed_head(out.hs[-1]),
        )

    def forward_features(self, images: torch.Tensor, pad_mask: torch.Tensor) -> TransformerOutput:
        """Backbone + transformer (memory, per-layer decoder states and refined boxes); see
        ``forward``."""
        srcs, masks, pos = self.feature_levels(images, pad_mask)
        return self.transformer(srcs, masks, pos, self.query_embed.weight, self.bbox_embed)

    def feature_levels(self, images: torch.Tensor, pad_mask: torch.Tensor) -> FeatureLevels:
        """Projected levels (N, C, H_l, W_l), their pad masks (N, H_l, W_l) and sine position
        embeddings.

        Levels 0-2 = ``input_proj`` of res3/res4/res5; extra levels = stride-2 convs, the first on
        raw res5, the next on the previous level; extra levels' masks are resized from the level-0
        (res3) mask, as in IDOL.
        """
        feats = self.backbone(images, pad_mask)
        srcs = [proj(f) for proj, (f, _) in zip(self.input_proj, feats, strict=False)]
        masks = [m for _, m in feats]
        for lvl in range(len(feats), self.cfg.num_feature_levels):
            src = self.input_proj[lvl](feats[-1][0] if lvl == len(feats) else srcs[-1])
            srcs.append(src)
            masks.append(resize_mask(masks[0], src.shape[-2:]))
        pos = [
            sine_position_embedding(m, self.cfg.hidden_dim // 2).to(s.dtype)
            for s, m in zip(srcs, masks, strict=True)
        ]
        return srcs, masks, pos

    def detect_frames(self, frames: Sequence[np.ndarray] | np.ndarray) -> DetectorOutput:
        """Run the detector on raw frames with the exact test-time preprocessing (spec §1.3).

        Frames are resized (shortest edge ``min_size_test``, longest capped at ``max_size_test``,
        PIL bilinear; not at all for ``min_size_test`` 0), normalised, zero-padded to
        ``size_divisibility`` and run in micro-batches of ``batch_infer_len`` frames under
        ``torch.inference_mode()`` on the module's device.

        Args:
            frames: a list of (H, W, 3) uint8 RGB arrays or one (T, H, W, 3) uint8 array.

        Returns:
            ``DetectorOutput`` with T frames, on the module's device; boxes are normalised to each
            frame, so they scale directly to the original pixel size.
        """
        frames = list(frames)
        chunks = []
        with torch.inference_mode(), compute_precision(self.cfg.precision, self.device):
            for start in range(0, len(frames), self.cfg.batch_infer_len):
                batch = resize_frames(frames[start : start + self.cfg.batch_infer_len], self.cfg)
                images, pad_mask = pad_and_normalize(batch, self.cfg, device=self.device)
                chunks.append(self(images, pad_mask))
        if not chunks:
            return self._empty_output()

        def joined(parts: list[torch.Tensor]) -> torch.Tensor:
            # a single micro-batch (the streaming session's) is not copied by torch.cat
            return (parts[0] if len(parts) == 1 else torch.cat(parts)).float()

        return DetectorOutput(
            logits=joined([c.logits for c in chunks]),
            boxes_cxcywh_norm=joined([c.boxes_cxcywh_norm for c in chunks]),
            embeddings=joined([c.embeddings for c in chunks]),
        )

    def _empty_output(self) -> DetectorOutput:
        q, k, e = self.cfg.num_queries, self.cfg.num_classes, self.cfg.hidden_dim
        return DetectorOutput(
            logits=torch.zeros(0, q, k, device=self.device),
            boxes_cxcywh_norm=torch.zeros(0, q, 4, device=self.device),
            embeddings=torch.zeros(0, q, e, device=self.device),
        )
