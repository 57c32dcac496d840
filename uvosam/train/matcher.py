"""IDOL's query-to-object assignment for training (``idol/models/matcher.py``; spec §6).

Despite its name (``HungarianMatcher``) the release uses an OTA/SimOTA-style dynamic-k assignment
(Ge et al., "OTA" / "YOLOX", 2021) on DETR queries:

* cost[q, g] = focal class cost (pos - neg) + 3 * (-GIoU) + 100 * [query centre not inside both
  GT g's box and its centre region] + 10000 if the query centre lies in no GT box and no GT centre
  region. The centre region of a GT is a square of half-size ``2.5 / 32`` (normalised units) around
  its centre.
* dynamic k per GT = max(1, floor(sum of its top-``n_candidates`` IoUs)); each GT takes its k
  cheapest queries; a query claimed by several GTs keeps only the cheapest of them (the release: the
  cheapest of all GTs; ``uvosam/train/README.md``, differences); GTs left without a
  query take the cheapest free one (repeated until every GT has one or queries run out).
* The cheapest assigned query of each GT is its "key" query (used by the re-id loss).

All functions work on one frame, without gradients, boxes normalised ``(cx, cy, w, h)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torchvision.ops import box_convert, box_iou, generalized_box_iou

CENTER_RADIUS = 2.5
EXPANDED_STRIDE = 32
GIOU_COST = 3.0
NOT_IN_BOX_AND_CENTER_COST = 100.0
OUTSIDE_ALL_COST = 10000.0
TAKEN_QUERY_COST = 100000.0
FOCAL_ALPHA = 0.25
FOCAL_GAMMA = 2.0


@dataclass(frozen=True)
class Assignment:
    """Queries assigned to the GT objects of one frame.

    Attributes:
        query_idx: (M,) int64 assigned queries, ascending (each at most once).
        gt_idx: (M,) int64 the GT each of those queries is assigned to.
        key_query: (G,) int64 the cheapest assigned query of every GT (-1 if it got none, which
            only happens with more GTs than queries).
    """

    query_idx: torch.Tensor
    gt_idx: torch.Tensor
    key_query: torch.Tensor


def focal_class_cost(
    probs: torch.Tensor,
    labels: torch.Tensor,
    alpha: float = FOCAL_ALPHA,
    gamma: float = FOCAL_GAMMA,
) -> torch.Tensor:
    """(Q, K) probabilities, (G,) labels -> (Q, G) focal cost of labelling query q as GT g's
    class."""
    neg = (1 - alpha) * probs**gamma * -(1 - probs + 1e-8).log()
    pos = alpha * (1 - probs) ** gamma * -(probs + 1e-8).log()
    return pos[:, labels] - neg[:, labels]


def in_boxes_info(
    boxes_cxcywh: torch.Tensor, gt_cxcywh: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Where query centres fall relative to the GTs.

    Returns:
        fg (Q,) bool: centre inside at least one GT box or one GT centre region;
        in_box_and_center (Q, G) bool: centre inside GT g's box AND its centre region.
    """
    cx, cy = boxes_cxcywh[:, 0:1], boxes_cxcywh[:, 1:2]
    gt_xyxy = box_convert(gt_cxcywh, "cxcywh", "xyxy")
    in_x = (cx > gt_xyxy[:, 0]) & (cx < gt_xyxy[:, 2])
    in_box = in_x & (cy > gt_xyxy[:, 1]) & (cy < gt_xyxy[:, 3])
    r = CENTER_RADIUS / EXPANDED_STRIDE
    gx, gy = gt_cxcywh[:, 0], gt_cxcywh[:, 1]
    in_center = (cx > gx - r) & (cx < gx + r) & (cy > gy - r) & (cy < gy + r)
    fg = in_box.any(1) | in_center.any(1)
    return fg, in_box & in_center


def ota_cost(
    probs: torch.Tensor,
    boxes_cxcywh: torch.Tensor,
    gt_cxcywh: torch.Tensor,
    gt_labels: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Assignment cost and IoUs of one frame.

    Args:
        probs: (Q, K) sigmoid class probabilities. boxes_cxcywh: (Q, 4) predicted boxes.
        gt_cxcywh: (G, 4) GT boxes. gt_labels: (G,) int64 class indices.

    Returns:
        cost (Q, G) float32 and IoU (Q, G) float32.
    """
    probs, boxes, gts = probs.float(), boxes_cxcywh.float(), gt_cxcywh.float()
    fg, in_both = in_boxes_info(boxes, gts)
    boxes_xyxy = box_convert(boxes, "cxcywh", "xyxy")
    gt_xyxy = box_convert(gts, "cxcywh", "xyxy")
    ious = box_iou(boxes_xyxy, gt_xyxy)
    cost = (
        focal_class_cost(probs, gt_labels)
        - GIOU_COST * generalized_box_iou(boxes_xyxy, gt_xyxy)
        + NOT_IN_BOX_AND_CENTER_COST * (~in_both).float()
    )
    cost[~fg] += OUTSIDE_ALL_COST
    return cost, ious


def dynamic_ks(ious: torch.Tensor, n_candidates: int) -> torch.Tensor:
    """(Q, G) IoUs -> (G,) int64 ``max(1, floor(sum of the top-n IoUs of each GT))``."""
    top = torch.topk(ious, min(n_candidates, ious.shape[0]), dim=0).values
    return top.sum(0).long().clamp(min=1)


def dynamic_k_matching(cost: torch.Tensor, ious: torch.Tensor, n_candidates: int) -> torch.Tensor:
    """SimOTA assignment (module docstring) -> (Q, G) bool matching matrix.

    ``cost`` is not modified. Every GT gets at least one query when Q >= G; each query serves at
    most one GT.
    """
    cost = cost.clone()
    num_q, num_gt = cost.shape
    matching = torch.zeros_like(cost, dtype=torch.bool)
    for g, k in enumerate(dynamic_ks(ious, n_candidates).tolist()):
        matching[torch.topk(cost[:, g], min(k, num_q), largest=False).indices, g] = True
    _keep_cheapest(matching, cost)
    for _ in range(num_gt):
        unmatched = (~matching.any(0)).nonzero().flatten()
        if len(unmatched) == 0 or bool(matching.any(1).all()):
            break
        cost[matching.any(1)] += TAKEN_QUERY_COST
        matching[cost[:, unmatched].argmin(0), unmatched] = True
        _keep_cheapest(matching, cost)
    return matching


def _keep_cheapest(matching: torch.Tensor, cost: torch.Tensor) -> None:
    """In place: a query matched to several GTs keeps only its cheapest one."""
    multi = matching.sum(1) > 1
    if multi.any():
        cheapest = torch.where(matching[multi], cost[multi], torch.inf).argmin(1)
        matching[multi] = False
        matching[multi.nonzero().flatten(), cheapest] = True


@torch.no_grad()
def assign_queries(
    logits: torch.Tensor,
    boxes_cxcywh: torch.Tensor,
    gt_cxcywh: torch.Tensor,
    gt_labels: torch.Tensor,
    *,
    n_candidates: int = 10,
) -> Assignment:
    """Assign queries to the GTs of one frame (module docstring).

    Args:
        logits: (Q, K) raw class logits. boxes_cxcywh: (Q, 4) normalised predicted boxes.
        gt_cxcywh: (G, 4) normalised GT boxes. gt_labels: (G,) int64.
        n_candidates: IoUs summed for the dynamic k (10 in the release).
    """
    device = logits.device
    if len(gt_labels) == 0:
        empty = torch.zeros(0, dtype=torch.long, device=device)
        return Assignment(empty, empty, empty)
    cost, ious = ota_cost(logits.float().sigmoid(), boxes_cxcywh, gt_cxcywh, gt_labels)
    matching = dynamic_k_matching(cost, ious, n_candidates)
    query_idx = matching.any(1).nonzero().flatten()
    gt_idx = matching[query_idx].float().argmax(1)
    key_cost = torch.where(matching, cost, torch.inf)
    key_query = torch.where(matching.any(0), key_cost.argmin(0), -1)
    return Assignment(query_idx, gt_idx, key_query)
