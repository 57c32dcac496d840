"""IDOL's online association (``IDOL_Tracker.match``, ``idol/models/tracker.py`` of UVOSAM).

Origin: IDOL, "In Defense of Online Models for Video Instance Segmentation" (Wu et al., ECCV 2022),
box-based tracker as shipped with UVOSAM (arXiv 2305.12659). Pure tensor code: no modules, no I/O.
Per-video state is a ``TrackMemory`` that ``match`` updates in place; one memory per video, never
shared.

Step by step (frame ``t``, detections in the order given, i.e. score-descending as IDOL feeds them):

1. greedy box NMS (IoU > ``nms_thr_pre`` with an earlier kept detection drops a detection);
2. every detection starts as -2 (unassigned);
3. empty memory: detections scoring > ``init_score_thr`` get new ids;
   otherwise: similarity of raw embeddings with each tracklet's memory embedding (``bisoftmax`` =
   mean of the softmax over tracklets and over detections of the dot products); for each detection
   in order, the best tracklet (optionally frame-weighted) is taken if its score >
   ``match_score_thr``, and that tracklet's column is zeroed for all OTHER detections; unmatched
   detections scoring > ``addnew_score_thr`` get new ids (matching itself ignores the detection
   score);
4. a still unassigned detection becomes a backdrop (-1) iff its IoU with every EARLIER detection is
   < ``nms_thr_post``, else it stays -2;
5. memory update (box, score and embedding histories, EMA embedding, last/exist frame), then
   tracklets not matched for ``memo_tracklet_frames`` frames are forgotten. A frame with no
   detection changes nothing.

Track ids here are the tracker's own 0-based ids (``TrackMemory.num_tracklets`` counts them); they
are kept apart from the detector's query indices, which are only carried along. The output's ids
(>= 1) are given later, in ``trajectories.TrajectoryBook`` and (streaming) ``session.IDOLSession``.

Deliberate differences from the original: velocities, backdrop memory and the unused ``longrang``
metric are not kept (no effect on any output); stored embeddings are copies, not views of the
detector output; the temporal weights k/K use ``arange`` instead of the deprecated ``torch.range``
(identical float32 values).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import torch
import torch.nn.functional as F

from uvosam.tracker.association_config import AssociationConfig

UNASSIGNED = -2
BACKDROP = -1


@dataclass
class Tracklet:
    """Memory of one live track.

    Attributes:
        embed: (E,) momentum (EMA) embedding.
        long_embeds: the last <= ``memory_len`` matched raw (E,) embeddings, oldest first.
        long_scores: their detection scores (0-d tensors).
        label: class index of the last matched detection.
        last_frame: frame index of the last match.
        exist_frame: number of frames matched, birth included.
    """

    embed: torch.Tensor
    long_embeds: list[torch.Tensor]
    long_scores: list[torch.Tensor]
    label: int
    last_frame: int
    exist_frame: int = 1


@dataclass
class TrackMemory:
    """Per-video association state (``IDOL_Tracker``'s ``tracklets`` and ``num_tracklets``).

    Attributes:
        tracklets: live tracklets by tracker id, in birth order (dict insertion order matters for
            ties).
        num_tracklets: number of ids handed out so far (the next new id).
    """

    tracklets: dict[int, Tracklet] = field(default_factory=dict)
    num_tracklets: int = 0


class MatchResult(NamedTuple):
    """What ``match`` returns for one frame, one row per detection kept by the pre-NMS (input
    order).

    Attributes:
        ids: (M,) int64 tracker id (>= 0), ``BACKDROP`` (-1) or ``UNASSIGNED`` (-2).
        indices: (M,) int64 the caller's query indices of those detections.
        kept: (M,) int64 row positions of those detections in the caller's input.
    """

    ids: torch.Tensor
    indices: torch.Tensor
    kept: torch.Tensor


def box_cxcywh_to_xyxy(boxes: torch.Tensor) -> torch.Tensor:
    """(N, 4) ``(cx, cy, w, h)`` -> (N, 4) ``(x1, y1, x2, y2)`` in the same (normalised) frame."""
    cx, cy, w, h = boxes.unbind(-1)
    return torch.stack([cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h], dim=-1)


def pairwise_iou_cxcywh(boxes_a: torch.Tensor, boxes_b: torch.Tensor) -> torch.Tensor:
    """IoU of (N, >=4) and (M, >=4) ``cxcywh`` boxes -> (N, M), computed element by element as the
    original."""
    a = box_cxcywh_to_xyxy(boxes_a[:, :4])
    b = box_cxcywh_to_xyxy(boxes_b[:, :4])
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    lt = torch.max(a[:, None, :2], b[:, :2])
    rb = torch.min(a[:, None, 2:], b[:, 2:])
    wh = (rb - lt).clamp(min=0)
    inter = wh[:, :, 0] * wh[:, :, 1]
    return inter / (area_a[:, None] + area_b - inter)


def greedy_nms_keep(iou: torch.Tensor, thr: float) -> torch.Tensor:
    """Greedy NMS in the given order on an (N, N) IoU matrix -> (N,) bool keep mask (first one
    always kept)."""
    n = iou.shape[0]
    keep = torch.ones(n, dtype=torch.bool)
    later = torch.ones(n, n, dtype=torch.bool).triu(diagonal=1)
    suppress = (iou > thr) & later
    for i in range(n - 1):
        if keep[i]:
            keep &= ~suppress[i]
    return keep


def match(
    memory: TrackMemory,
    boxes_cxcywh_score: torch.Tensor,
    labels: torch.Tensor,
    embeds: torch.Tensor,
    frame_idx: int,
    indices: torch.Tensor,
    config: AssociationConfig = AssociationConfig(),
) -> MatchResult:
    """Associate one frame's detections with the memory and update it (``IDOL_Tracker.match``).

    Args:
        memory: the video's state; updated in place.
        boxes_cxcywh_score: (N, 5) float ``[cx, cy, w, h, score]``, normalised boxes, in the order
            to process.
        labels: (N,) int64 class index of each detection.
        embeds: (N, E) float raw re-id embeddings.
        frame_idx: 0-based index of this frame in the video.
        indices: (N,) int64 query index of each detection (carried along, never used for matching).
        config: association thresholds.

    Returns:
        ``MatchResult`` for the detections kept by the pre-NMS.
    """
    indices = torch.as_tensor(indices, dtype=torch.long).reshape(-1)
    if not len(boxes_cxcywh_score) == len(labels) == len(embeds) == len(indices):
        raise ValueError(
            "match expects one row per detection in boxes (N,5), labels (N,), embeds (N,E), "
            f"indices (N,); got {tuple(boxes_cxcywh_score.shape)}, {tuple(labels.shape)}, "
            f"{tuple(embeds.shape)}, {tuple(indices.shape)}"
        )
    iou = pairwise_iou_cxcywh(boxes_cxcywh_score, boxes_cxcywh_score)
    kept = torch.nonzero(greedy_nms_keep(iou, config.nms_thr_pre)).squeeze(1)
    boxes, labels, embeds = boxes_cxcywh_score[kept], labels[kept], embeds[kept]
    iou = iou[kept][:, kept]
    ids = torch.full((len(kept),), UNASSIGNED, dtype=torch.long)
    if len(kept) == 0:
        return MatchResult(ids, indices[kept], kept)
    if memory.tracklets:
        _match_to_memory(memory, embeds, ids, config)
        new_thr = config.addnew_score_thr
    else:
        new_thr = config.init_score_thr
    _assign_new_ids(memory, ids, boxes[:, 4], new_thr)
    _mark_backdrops(ids, iou, config.nms_thr_post)
    _update_memory(memory, ids, boxes, embeds, labels, frame_idx, config)
    return MatchResult(ids, indices[kept], kept)


def memory_embeddings(
    memory: TrackMemory, config: AssociationConfig
) -> tuple[list[int], torch.Tensor]:
    """Tracker ids (birth order) and the (T, E) embedding each live tracklet is matched with."""
    rows = []
    for tracklet in memory.tracklets.values():
        if not config.long_match:
            rows.append(tracklet.embed)
            continue
        weights = torch.stack(tracklet.long_scores)
        if config.temporal_weight:
            k = len(weights)
            weights = weights + (torch.arange(1, k + 1, dtype=torch.float32) / k).to(weights)
        rows.append(
            (torch.stack(tracklet.long_embeds) * weights.unsqueeze(1)).sum(0) / weights.sum()
        )
    return list(memory.tracklets), torch.stack(rows)


def similarity(embeds: torch.Tensor, memo_embeds: torch.Tensor, metric: str) -> torch.Tensor:
    """(N, E) detections x (T, E) tracklets -> (N, T) match scores."""
    if metric == "cosine":
        return torch.mm(F.normalize(embeds, p=2, dim=1), F.normalize(memo_embeds, p=2, dim=1).t())
    feats = torch.mm(embeds, memo_embeds.t())
    if metric == "softmax":
        return feats.softmax(dim=1)
    return (feats.softmax(dim=1) + feats.softmax(dim=0)) / 2


def _match_to_memory(
    memory: TrackMemory, embeds: torch.Tensor, ids: torch.Tensor, config: AssociationConfig
) -> None:
    memo_ids, memo_embeds = memory_embeddings(memory, config)
    scores = similarity(embeds, memo_embeds, config.match_metric)
    exist = torch.tensor([t.exist_frame for t in memory.tracklets.values()], dtype=torch.long).to(
        memo_embeds
    )
    for i in range(len(ids)):
        row = scores[i]
        candidates = row > config.frame_weight_score_thr
        if config.frame_weight and int(candidates.sum()) > 1:
            weighted = row.clone()
            counts = exist[candidates]
            weighted[candidates] = weighted[candidates] * counts
            weighted[~candidates] = weighted[~candidates] * counts.mean()
            conf, j = torch.max(weighted, dim=0)
        else:
            conf, j = torch.max(row, dim=0)
        if conf > config.match_score_thr:
            ids[i] = memo_ids[int(j)]
            scores[:i, j] = 0
            scores[i + 1 :, j] = 0


def _assign_new_ids(
    memory: TrackMemory, ids: torch.Tensor, scores: torch.Tensor, thr: float
) -> None:
    new = (ids == UNASSIGNED) & (scores > thr).cpu()
    count = int(new.sum())
    ids[new] = torch.arange(memory.num_tracklets, memory.num_tracklets + count, dtype=torch.long)
    memory.num_tracklets += count


def _mark_backdrops(ids: torch.Tensor, iou: torch.Tensor, thr: float) -> None:
    """Unassigned detections with IoU < ``thr`` against every EARLIER detection become backdrops."""
    earlier = torch.ones_like(iou, dtype=torch.bool).tril(diagonal=-1)
    isolated = ((iou < thr) | ~earlier).all(dim=1)
    ids[(ids == UNASSIGNED) & isolated] = BACKDROP


def _update_memory(
    memory: TrackMemory,
    ids: torch.Tensor,
    boxes: torch.Tensor,
    embeds: torch.Tensor,
    labels: torch.Tensor,
    frame_idx: int,
    config: AssociationConfig,
) -> None:
    momentum = config.memo_momentum
    for row in torch.nonzero(ids > BACKDROP).squeeze(1).tolist():
        track_id, box, embed = int(ids[row]), boxes[row].clone(), embeds[row].clone()
        tracklet = memory.tracklets.get(track_id)
        if tracklet is None:
            memory.tracklets[track_id] = Tracklet(
                embed, [embed], [box[4]], int(labels[row]), frame_idx
            )
            continue
        tracklet.long_scores.append(box[4])
        tracklet.embed = (1 - momentum) * tracklet.embed + momentum * embed
        tracklet.long_embeds.append(embed)
        tracklet.last_frame = frame_idx
        tracklet.label = int(labels[row])
        tracklet.exist_frame += 1
    for track_id in list(memory.tracklets):
        tracklet = memory.tracklets[track_id]
        del tracklet.long_embeds[: -config.memory_len], tracklet.long_scores[: -config.memory_len]
        if frame_idx - tracklet.last_frame >= config.memo_tracklet_frames:
            del memory.tracklets[track_id]
