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
