"""What the IDOL detector hands to the association stage (one entry per frame, frames independent)."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class DetectorOutput:
    """Raw per-frame detector outputs, exactly IDOL's ``inference_forward`` heads (spec §1.7).

    Attributes:
        logits: (T, Q, K) float32 raw class logits (sigmoid -> probability; no background logit).
        boxes_cxcywh_norm: (T, Q, 4) float32 ``(cx, cy, w, h)`` in [0, 1] relative to the UNPADDED frame
            (so they scale directly to original pixels).
        embeddings: (T, Q, E) float32 re-id embeddings (raw, not normalised).
    """

    logits: torch.Tensor
    boxes_cxcywh_norm: torch.Tensor
    embeddings: torch.Tensor

    def __len__(self) -> int:
        return self.logits.shape[0]


@dataclass(frozen=True)
class DetectorTrainOutput:
    """Every decoder layer's heads, for training with deep supervision
    (``IDOLDetector.forward_train``).

    Attributes:
        logits: (D, N, Q, K) raw class logits of decoder layers 0..D-1 (``class_embed[l]``).
        boxes_cxcywh_norm: (D, N, Q, 4) refined boxes ``(cx, cy, w, h)`` in [0, 1] after every
            layer, relative to each frame's unpadded area (they carry gradients into that layer's
            box head).
        embeddings: (N, Q, E) re-id embeddings of the LAST layer (``reid_embed_head``), raw.
    """

    logits: torch.Tensor
    boxes_cxcywh_norm: torch.Tensor
    embeddings: torch.Tensor
