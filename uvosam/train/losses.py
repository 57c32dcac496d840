"""IDOL's training losses, box-only as in UVOSAM (``SetCriterion`` + ``select_pos_neg``; spec §6).

Per clip the key and the reference frame are decoded independently. On the KEY frame, every
decoder layer l is matched separately (``uvosam.train.matcher``) and gets

* ``loss_ce``: sigmoid focal loss (alpha 0.25, gamma 2) summed over all queries and classes,
  divided by the number of assigned queries;
* ``loss_bbox``: L1 on normalised ``(cx, cy, w, h)`` of the assigned queries, same normaliser;
* ``loss_giou``: 1 - GIoU of the assigned queries, same normaliser.

Layers 0..D-2 give ``loss_ce_<l>`` etc. (deep supervision, same weights). Re-id (last layer only):
for each GT present in both frames, its key query's embedding is contrasted with the REFERENCE
frame's queries: positives = the dynamic-k assignment with 10 candidates on the reference frame,
negatives = queries NOT assigned to it with 100 candidates.
``loss_reid`` = log(1 + sum_pos sum_neg exp(<e_neg, e_key> - <e_pos, e_key>)) (raw dot products),
``loss_reid_aux`` = mean squared error between cosine similarity and the 1/0 label, negatives
sub-sampled to at most 10 per positive (10 when there is no positive). Both are averaged over GTs.
Returned losses are already multiplied by their weights.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torchvision.ops import box_convert, generalized_box_iou_loss, sigmoid_focal_loss

from uvosam.train.config import TrainConfig
from uvosam.train.matcher import Assignment, assign_queries, dynamic_k_matching, ota_cost

POS_CANDIDATES = 10
NEG_CANDIDATES = 100
NEG_PER_POS = 10


@dataclass(frozen=True)
class FrameTargets:
    """GT objects of one frame; the key and reference frame of a clip list the same objects in the
    same order.

    Attributes:
        boxes_cxcywh_norm: (G, 4) float32 ``(cx, cy, w, h)`` normalised by the frame's unpadded
            size.
        labels: (G,) int64 class indices (0 for UVOSAM).
        valid: (G,) bool, False where the object is absent from this frame.
    """

    boxes_cxcywh_norm: torch.Tensor
    labels: torch.Tensor
    valid: torch.Tensor

    def to(self, device: torch.device | str) -> FrameTargets:
        tensors = (self.boxes_cxcywh_norm, self.labels, self.valid)
        return FrameTargets(*(t.to(device) for t in tensors))


@dataclass(frozen=True)
class HeadOutputs:
    """Detector outputs of a set of frames (``DetectorTrainOutput`` rows).

    Attributes:
        logits: (D, N, Q, K). boxes: (D, N, Q, 4) normalised cxcywh. embeddings: (N, Q, E).
    """

    logits: torch.Tensor
    boxes: torch.Tensor
    embeddings: torch.Tensor


def focal_loss(
    logits: torch.Tensor, targets: torch.Tensor, num_boxes: float, cfg: TrainConfig
) -> torch.Tensor:
    """Release normalisation: ``loss.mean(queries).sum() / num_boxes * Q`` = total / num_boxes."""
    loss = sigmoid_focal_loss(
        logits.float(), targets, alpha=cfg.focal_alpha, gamma=cfg.focal_gamma, reduction="sum"
    )
    return loss / num_boxes


def layer_losses(
    logits: torch.Tensor,
    boxes: torch.Tensor,
    targets: Sequence[FrameTargets],
    assignments: Sequence[Assignment],
    cfg: TrainConfig,
) -> dict[str, torch.Tensor]:
    """Unweighted ``loss_ce``, ``loss_bbox``, ``loss_giou`` of one decoder layer.

    Args:
        logits: (N, Q, K); boxes: (N, Q, 4); one target and one assignment per frame.
    """
    onehot = torch.zeros_like(logits, dtype=torch.float32)
    pred, gt = [], []
    for n, (tgt, asg) in enumerate(zip(targets, assignments, strict=True)):
        onehot[n, asg.query_idx, tgt.labels[asg.gt_idx]] = 1.0
        pred.append(boxes[n, asg.query_idx])
        gt.append(tgt.boxes_cxcywh_norm[asg.gt_idx])
    pred_boxes, gt_boxes = torch.cat(pred).float(), torch.cat(gt).float()
    num = max(len(pred_boxes), 1)
    out = {"loss_ce": focal_loss(logits, onehot, num, cfg)}
    if len(pred_boxes) == 0:
        zero = boxes.sum() * 0.0
        return {**out, "loss_bbox": zero, "loss_giou": zero}
    out["loss_bbox"] = F.l1_loss(pred_boxes, gt_boxes, reduction="sum") / num
    out["loss_giou"] = (
        generalized_box_iou_loss(
            box_convert(pred_boxes, "cxcywh", "xyxy"),
            box_convert(gt_boxes, "cxcywh", "xyxy"),
            reduction="sum",
        )
        / num
    )
    return out


@torch.no_grad()
def select_pos_neg(
    logits: torch.Tensor, boxes: torch.Tensor, target: FrameTargets
) -> tuple[torch.Tensor, torch.Tensor]:
    """Positive / negative reference-frame queries for each valid GT of one reference frame.

    Args:
        logits: (Q, K); boxes: (Q, 4) last-layer outputs of the reference frame.

    Returns:
        positives (Q, Gv) bool and negatives (Q, Gv) bool, Gv = number of valid GTs (in order).
    """
    gts, labels = target.boxes_cxcywh_norm[target.valid], target.labels[target.valid]
    cost, ious = ota_cost(logits.float().sigmoid(), boxes, gts, labels)
    pos = dynamic_k_matching(cost, ious, POS_CANDIDATES)
    neg = ~dynamic_k_matching(cost, ious, NEG_CANDIDATES)
    return pos, neg


def contrastive_loss(key: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
    """log(1 + sum_{p, n} exp(<n, key> - <p, key>)) for key (E,), pos (P, E), neg (M, E)."""
    diff = (neg.float() @ key.float())[None, :] - (pos.float() @ key.float())[:, None]
    return torch.logsumexp(F.pad(diff.flatten(), (0, 1)), 0)


def aux_cosine_loss(
    key: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor, generator: torch.Generator | None
) -> torch.Tensor:
    """Mean squared error of cosine similarity vs 1 (positives) / 0 (sub-sampled negatives)."""
    num_neg = NEG_PER_POS if len(pos) == 0 else min(len(neg), NEG_PER_POS * len(pos))
    pick = torch.randperm(len(neg), generator=generator)[: min(num_neg, len(neg))]
    emb = torch.cat([pos, neg[pick.to(neg.device)]]).float()
    label = torch.cat([torch.ones(len(pos)), torch.zeros(len(pick))]).to(emb.device)
    cosine = F.normalize(emb, dim=1) @ F.normalize(key.float(), dim=0)
    return ((cosine - label) ** 2).mean()


def reid_losses(
    key: HeadOutputs,
    ref: HeadOutputs,
    key_assignments: Sequence[Assignment],
    ref_targets: Sequence[FrameTargets],
    generator: torch.Generator | None = None,
) -> dict[str, torch.Tensor]:
    """Unweighted ``loss_reid`` and ``loss_reid_aux`` (module docstring); zero (but connected to
    the embeddings) when no GT is present in both frames."""
    contrast, aux = [], []
    for n, (asg, tgt) in enumerate(zip(key_assignments, ref_targets, strict=True)):
        if not bool(tgt.valid.any()):
            continue
        pos, neg = select_pos_neg(ref.logits[-1, n], ref.boxes[-1, n], tgt)
        ref_emb = ref.embeddings[n]
        for j, g in enumerate(tgt.valid.nonzero().flatten().tolist()):
            if int(asg.key_query[g]) < 0:
                continue
            key_emb = key.embeddings[n, asg.key_query[g]]
            p, m = ref_emb[pos[:, j]], ref_emb[neg[:, j]]
            contrast.append(contrastive_loss(key_emb, p, m))
            aux.append(aux_cosine_loss(key_emb, p, m, generator))
    if not contrast:
        zero = (key.embeddings.sum() + ref.embeddings.sum()) * 0.0
        return {"loss_reid": zero, "loss_reid_aux": zero}
    return {"loss_reid": torch.stack(contrast).mean(), "loss_reid_aux": torch.stack(aux).mean()}


def idol_losses(
    key: HeadOutputs,
    ref: HeadOutputs,
    key_targets: Sequence[FrameTargets],
    ref_targets: Sequence[FrameTargets],
    cfg: TrainConfig,
    generator: torch.Generator | None = None,
) -> dict[str, torch.Tensor]:
    """All weighted losses of a batch of clips (module docstring); the total is their sum.

    Returns:
        ``loss_ce``, ``loss_bbox``, ``loss_giou``, ``loss_reid``, ``loss_reid_aux`` (last layer)
        and ``loss_ce_<l>``, ``loss_bbox_<l>``, ``loss_giou_<l>`` for layers l = 0..D-2.
    """
    weights = {
        "loss_ce": cfg.class_weight,
        "loss_bbox": cfg.l1_weight,
        "loss_giou": cfg.giou_weight,
        "loss_reid": cfg.reid_weight,
        "loss_reid_aux": cfg.reid_aux_weight,
    }
    num_layers = key.logits.shape[0]
    out: dict[str, torch.Tensor] = {}
    assignments: list[Assignment] = []
    for lvl in range(num_layers):
        assignments = [
            assign_queries(key.logits[lvl, n], key.boxes[lvl, n], t.boxes_cxcywh_norm, t.labels)
            for n, t in enumerate(key_targets)
        ]
        suffix = "" if lvl == num_layers - 1 else f"_{lvl}"
        losses = layer_losses(key.logits[lvl], key.boxes[lvl], key_targets, assignments, cfg)
        out.update({name + suffix: value for name, value in losses.items()})
    out.update(reid_losses(key, ref, assignments, ref_targets, generator))
    return {
        name: value * weights[name.rsplit("_", 1)[0] if name[-1].isdigit() else name]
        for name, value in out.items()
    }
