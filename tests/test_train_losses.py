"""IDOL training losses and the dynamic-k matcher on hand-made cases."""

from __future__ import annotations

import torch

from uvosam.train.config import TrainConfig
from uvosam.train.losses import (
    FrameTargets,
    HeadOutputs,
    idol_losses,
    layer_losses,
    reid_losses,
)
from uvosam.train.matcher import (
    OUTSIDE_ALL_COST,
    assign_queries,
    dynamic_k_matching,
    dynamic_ks,
    ota_cost,
)

CFG = TrainConfig.tiny()
GT = torch.tensor([[0.25, 0.25, 0.2, 0.2], [0.7, 0.6, 0.3, 0.4]])  # cxcywh
FAR = torch.tensor(
    [
        [0.05, 0.95, 0.05, 0.05],
        [0.95, 0.05, 0.05, 0.05],
        [0.5, 0.95, 0.04, 0.04],
        [0.95, 0.95, 0.04, 0.04],
        [0.05, 0.5, 0.04, 0.04],
        [0.5, 0.05, 0.04, 0.04],
    ]
)


def targets(valid=(True, True)) -> FrameTargets:
    return FrameTargets(GT.clone(), torch.zeros(2, dtype=torch.long), torch.tensor(valid))


def perfect_frame(slots=(0, 1)) -> tuple[torch.Tensor, torch.Tensor]:
    """(8, 1) logits and (8, 4) boxes: GT 0 at query slots[0], GT 1 at slots[1], the rest far."""
    boxes = torch.cat([FAR[:6], FAR[:2]])
    logits = torch.full((8, 1), -9.0)
    for g, q in enumerate(slots):
        boxes[q] = GT[g]
        logits[q] = 9.0
    others = [q for q in range(8) if q not in slots]
    boxes[others] = FAR[: len(others)]
    return logits, boxes


def test_perfect_prediction_gives_near_zero_losses():
    logits, boxes = perfect_frame((3, 5))
    asg = assign_queries(logits, boxes, GT, torch.zeros(2, dtype=torch.long))
    assert asg.query_idx.tolist() == [3, 5] and asg.gt_idx.tolist() == [0, 1]
    assert asg.key_query.tolist() == [3, 5]
    losses = layer_losses(logits[None], boxes[None], [targets()], [asg], CFG)
    assert losses["loss_bbox"] < 1e-5 and losses["loss_giou"] < 1e-5
    assert losses["loss_ce"] < 1e-4
    # a wrong box and a wrong score cost more
    bad_boxes = boxes.clone()
    bad_boxes[3] = torch.tensor([0.3, 0.3, 0.2, 0.2])
    worse = layer_losses(-logits[None], bad_boxes[None], [targets()], [asg], CFG)
    assert worse["loss_bbox"] > 0.01 and worse["loss_giou"] > 0.05 and worse["loss_ce"] > 1.0


def test_matcher_prefers_queries_centred_in_the_box():
    gt = torch.tensor([[0.5, 0.5, 0.4, 0.4]])
    boxes = torch.tensor(
        [
            [0.5, 0.5, 0.38, 0.38],  # centred, near perfect
            [0.62, 0.62, 0.4, 0.4],  # inside the box, outside the centre region
            [0.9, 0.1, 0.1, 0.1],  # outside everything
            [0.51, 0.49, 0.2, 0.2],  # centred, too small
        ]
    )
    logits = torch.zeros(4, 1)
    cost, _ious = ota_cost(logits.sigmoid(), boxes, gt, torch.zeros(1, dtype=torch.long))
    assert cost[2, 0] > OUTSIDE_ALL_COST and cost[1, 0] > 50 > cost[0, 0]
    assert cost[0, 0] < cost[3, 0] < cost[1, 0]
    asg = assign_queries(logits, boxes, gt, torch.zeros(1, dtype=torch.long))
    # dynamic k = floor(0.9 + 0.75 + ...) = 1 -> only the best query, which is also the key
    assert asg.query_idx.tolist() == [0] and asg.key_query.tolist() == [0]


def test_dynamic_k_is_floor_of_top_iou_sum():
    ious = torch.tensor([[0.9, 0.1], [0.8, 0.2], [0.7, 0.3], [0.65, 0.05], [0.0, 0.0]])
    assert dynamic_ks(ious, 10).tolist() == [3, 1]
    assert dynamic_ks(ious, 2).tolist() == [1, 1]
    cost = torch.arange(10.0).view(5, 2)
    matching = dynamic_k_matching(cost, ious, 10)
    # GT 0 takes its 3 cheapest (0, 1, 2); GT 1 wants query 0 but GT 0 is cheaper there ->
    # query 0 stays with GT 0 (0 < 1) and GT 1 gets the cheapest free query (3)
    assert matching[:, 0].nonzero().flatten().tolist() == [0, 1, 2]
    assert matching[:, 1].nonzero().flatten().tolist() == [3]
    assert (matching.sum(1) <= 1).all()


def test_conflict_keeps_the_cheapest_gt():
    cost = torch.tensor([[1.0, 0.5], [5.0, 6.0], [7.0, 8.0]])
    ious = torch.tensor([[0.9, 0.9], [0.0, 0.0], [0.0, 0.0]])
    matching = dynamic_k_matching(cost, ious, 10)
    assert matching[0].tolist() == [False, True]
    assert matching[:, 0].nonzero().flatten().tolist() == [1]


def reid_case(ref_embed_order: tuple[int, int]) -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    emb = torch.nn.functional.normalize(torch.randn(2, 16), dim=1) * 4
    key_logits, key_boxes = perfect_frame((0, 1))
    ref_logits, ref_boxes = perfect_frame((2, 3))
    key_emb = torch.randn(8, 16) * 0.1
    ref_emb = torch.randn(8, 16) * 0.1
    key_emb[:2] = emb
    ref_emb[2], ref_emb[3] = emb[ref_embed_order[0]], emb[ref_embed_order[1]]
    key = HeadOutputs(key_logits[None, None], key_boxes[None, None], key_emb[None])
    ref = HeadOutputs(ref_logits[None, None], ref_boxes[None, None], ref_emb[None])
    asg = assign_queries(key_logits, key_boxes, GT, torch.zeros(2, dtype=torch.long))
    return reid_losses(key, ref, [asg], [targets()], torch.Generator().manual_seed(0))


def test_swapped_ids_raise_the_reid_losses():
    same, swapped = reid_case((0, 1)), reid_case((1, 0))
    assert same["loss_reid"] < 0.1 and same["loss_reid_aux"] < 0.2
    assert swapped["loss_reid"] > 5 * same["loss_reid"] + 1.0
    assert swapped["loss_reid_aux"] > 3 * same["loss_reid_aux"]


def test_reid_skips_objects_absent_from_the_reference_frame():
    logits, boxes = perfect_frame((0, 1))
    emb = torch.randn(1, 8, 16, requires_grad=True)
    key = HeadOutputs(logits[None, None], boxes[None, None], emb)
    asg = assign_queries(logits, boxes, GT, torch.zeros(2, dtype=torch.long))
    none = reid_losses(key, key, [asg], [targets((False, False))])
    assert float(none["loss_reid"].detach()) == 0.0
    none["loss_reid"].backward()  # still connected to the graph (DDP needs every parameter used)
    one = reid_losses(key, key, [asg], [targets((True, False))])
    assert float(one["loss_reid"].detach()) > 0.0


def test_idol_losses_names_weights_and_gradients():
    logits, boxes = perfect_frame((0, 1))
    layers = 2
    lg = logits.expand(layers, 1, 8, 1).clone().requires_grad_(True)
    bx = boxes.expand(layers, 1, 8, 4).clone()
    bx[0, 0, 0] = torch.tensor([0.3, 0.3, 0.2, 0.2])
    bx.requires_grad_(True)
    emb = torch.randn(1, 8, 16, requires_grad=True)
    out = HeadOutputs(lg, bx, emb)
    losses = idol_losses(out, out, [targets()], [targets()], CFG, torch.Generator().manual_seed(0))
    assert set(losses) == {
        "loss_ce",
        "loss_bbox",
        "loss_giou",
        "loss_reid",
        "loss_reid_aux",
        "loss_ce_0",
        "loss_bbox_0",
        "loss_giou_0",
    }
    assert losses["loss_bbox_0"] > 0 and losses["loss_bbox"] < 1e-5  # layer 0 is off, layer 1 exact
    raw = layer_losses(
        lg[0],
        bx[0],
        [targets()],
        [assign_queries(lg[0, 0], bx[0, 0], GT, torch.zeros(2, dtype=torch.long))],
        CFG,
    )
    assert torch.allclose(losses["loss_bbox_0"], CFG.l1_weight * raw["loss_bbox"])
    assert torch.allclose(losses["loss_giou_0"], CFG.giou_weight * raw["loss_giou"])
    sum(losses.values()).backward()
    assert bx.grad[0].abs().sum() > 0 and emb.grad.abs().sum() > 0
