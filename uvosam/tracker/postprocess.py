"""IDOL's video inference after the detector: candidate selection, association, trajectories.

Origin: ``IDOL.inference`` of the UVOSAM release (``prompt_networks/IDOL/idol/idol.py``), which
follows IDOL (Wu et al., ECCV 2022). Per frame ``t`` (tensors of ``DetectorOutput``):

1. ``prob = sigmoid(logits)``; candidates = queries whose max class probability > ``select_thres``;
   if none, the single best query (top-1 fallback, its score may be below the threshold); otherwise
   ``torchvision.ops.batched_nms`` (xyxy normalised boxes, max probability, arg-max class, IoU
   ``pre_nms_thres``), which keeps them in descending score order;
2. ``association.match`` on ``[cx, cy, w, h, max prob]``, arg-max labels and embeddings;
3. ``trajectories.TrajectoryBook`` records the tracked detections and prunes short tracks;
4. at the end, ``TrajectoryBook.trajectories`` gives the results.

``IDOLVideoState`` runs this frame by frame (the streaming session and ``run_idol_offline`` share
it, so they cannot drift apart).

Deliberate differences from the original (decisions are kept, bugs are dropped):

* a video in which no trajectory is born returns ``[]`` (the original raises ``UnboundLocalError``);
* ``multi_cls_on=False`` returns one result per trajectory with its best class (the original crashes
  there);
* no ``.cuda()``: detector outputs are moved to the CPU first, all post-processing runs there (the
  original ran the selection on the detector's device and the box conversion on CUDA);
* an unknown ``temporal_score`` is rejected by ``InferenceConfig`` (the original prints and
  calls ``sys.exit(0)``);
* results carry an output id (``Trajectory.track_id``) and the per-frame detection scores besides
  the original's score, label and pixel boxes.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torchvision

from uvosam.tracker.association import MatchResult, TrackMemory, box_cxcywh_to_xyxy, match
from uvosam.tracker.association_config import AssociationConfig, InferenceConfig
from uvosam.tracker.outputs import DetectorOutput
from uvosam.tracker.trajectories import Trajectory, TrajectoryBook, TrajectoryEntry


@dataclass(frozen=True)
class FrameCandidates:
    """The detections of one frame handed to the tracker, in tracker input order.

    Attributes:
        indices: (n,) int64 query indices.
        boxes_cxcywh_score: (n, 5) float32 ``[cx, cy, w, h, max prob]``, normalised boxes.
        labels: (n,) int64 arg-max class.
        probs: (n, K) float32 class probabilities.
        embeddings: (n, E) float32 re-id embeddings.
    """

    indices: torch.Tensor
    boxes_cxcywh_score: torch.Tensor
    labels: torch.Tensor
    probs: torch.Tensor
    embeddings: torch.Tensor


def select_candidates(
    logits: torch.Tensor,
    boxes_cxcywh_norm: torch.Tensor,
    embeddings: torch.Tensor,
    config: InferenceConfig = InferenceConfig(),
) -> FrameCandidates:
    """Pick one frame's tracker inputs from (Q, K) logits, (Q, 4) boxes and (Q, E) embeddings (step
    1)."""
    prob = logits.sigmoid()
    max_prob = torch.max(prob, 1)[0]
    indices = torch.nonzero(max_prob > config.select_thres).squeeze(1)
    if len(indices) == 0:
        top_values, top_indices = torch.topk(max_prob, k=1)
        indices = top_indices[torch.argmax(top_values)].reshape(1)
    else:
        nms_scores, classes = torch.max(prob[indices], 1)
        xyxy = box_cxcywh_to_xyxy(boxes_cxcywh_norm[indices])
        indices = indices[
            torchvision.ops.batched_nms(xyxy, nms_scores, classes, config.pre_nms_thres)
        ]
    probs = prob[indices]
    score = torch.max(probs, 1)[0]
    return FrameCandidates(
        indices=indices,
        boxes_cxcywh_score=torch.cat([boxes_cxcywh_norm[indices], score.unsqueeze(1)], dim=1),
        labels=torch.argmax(probs, dim=1),
        probs=probs,
        embeddings=embeddings[indices],
    )


@dataclass(frozen=True)
class FrameStep:
    """What one frame did: the tracker's inputs, its answer and the trajectory entries touched.

    Attributes:
        frame_idx: 0-based frame index.
        candidates: tracker inputs.
        result: the tracker's ids / query indices / kept rows.
        hits: trajectory entries with a box in this frame (detection order).
        pruned: entries removed by the short-track rule at this frame.
    """

    frame_idx: int
    candidates: FrameCandidates
    result: MatchResult
    hits: list[TrajectoryEntry]
    pruned: list[TrajectoryEntry]


class IDOLVideoState:
    """Per-video state of IDOL's inference (tracker memory + trajectory book); feed frames in
    order."""

    def __init__(
        self,
        association: AssociationConfig = AssociationConfig(),
        inference: InferenceConfig = InferenceConfig(),
    ) -> None:
        self.association = association
        self.inference = inference
        self.memory = TrackMemory()
        self.book = TrajectoryBook(inference)

    @property
    def num_frames(self) -> int:
        return self.book.num_frames

    def step(
        self, logits: torch.Tensor, boxes_cxcywh_norm: torch.Tensor, embeddings: torch.Tensor
    ) -> FrameStep:
        """Process the next frame from its (Q, K) logits, (Q, 4) boxes and (Q, E) embeddings."""
        frame_idx = self.book.num_frames
        cand = select_candidates(logits, boxes_cxcywh_norm, embeddings, self.inference)
        result = match(
            self.memory,
            cand.boxes_cxcywh_score,
            cand.labels,
            cand.embeddings,
            frame_idx,
            cand.indices,
            self.association,
        )
        tracked = result.kept[result.ids >= 0]
        hits, pruned = self.book.add_frame(
            result.ids[result.ids >= 0].tolist(),
            cand.boxes_cxcywh_score[tracked, :4],
            cand.probs[tracked],
        )
        return FrameStep(frame_idx, cand, result, hits, pruned)

    def iter_steps(self, outputs: DetectorOutput) -> Iterator[FrameStep]:
        """Process the frames of ``outputs`` (moved to the CPU first) one by one, yielding after
        each."""
        logits, boxes, embeds = (
            t.detach().cpu()
            for t in (outputs.logits, outputs.boxes_cxcywh_norm, outputs.embeddings)
        )
        for t in range(len(logits)):
            yield self.step(logits[t], boxes[t], embeds[t])


def run_idol_offline(
    outputs: DetectorOutput,
    image_size_hw: tuple[int, int],
    assoc_cfg: AssociationConfig = AssociationConfig(),
    infer_cfg: InferenceConfig = InferenceConfig(),
) -> list[Trajectory]:
    """``IDOL.inference`` on a whole video's detector outputs.

    Args:
        outputs: the detector's (T, Q, ...) outputs, frames in order.
        image_size_hw: (H, W) of the ORIGINAL frames; boxes are returned in those pixels.
        assoc_cfg: tracker thresholds; infer_cfg: selection and post-processing settings.

    Returns:
        One ``Trajectory`` per (trajectory, class) result in the original's order; ``[]`` if none.
    """
    state = IDOLVideoState(assoc_cfg, infer_cfg)
    for _ in state.iter_steps(outputs):
        pass
    state.book.close()
    return state.book.trajectories(image_size_hw)
