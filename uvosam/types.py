"""Data passed between the stages: tracker -> pipeline -> segmenter -> render/export.

Conventions used everywhere in uvosam:

* Images are ``(H, W, 3) uint8`` RGB numpy arrays in the video's display orientation.
* ``boxes_xyxy`` are ``(N, 4) float32`` pixel coordinates ``[x1, y1, x2, y2]`` in the ORIGINAL frame size
  (continuous coordinates: a box covering the whole frame is ``[0, 0, W, H]``).
* ``track_ids`` are ``(N,) int64`` stable ids (>= 1), unique within a video, never re-used for another object,
  and independent of detector query positions or tensor rows (the Cutie ``ObjectManager`` idea).
* ``labels`` are ``(N,) int64`` 0-based contiguous class indices into the tracker's ``class_names``.
* ``class_probs`` are ``(N, K) float32`` per-frame class probabilities (K = ``len(class_names)``; IDOL: the sigmoid
  of each class logit, so a row need not sum to 1), or ``None`` when the tracker gives none.
* ``masks`` are ``(N, H, W) bool`` and pairwise disjoint after overlap resolution (see ``segmenter``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Protocol

import numpy as np

from uvosam.text import count

if TYPE_CHECKING:
    import torch

    from uvosam.config import SegmenterConfig


def _empty(shape: tuple[int, ...], dtype: type) -> np.ndarray:
    return np.zeros(shape, dtype=dtype)


@dataclass(frozen=True)
class FrameTracks:
    """The tracker's final (decided) boxes for one frame.

    Attributes:
        frame_index: 0-based index of the frame in the processed sequence (after stride).
        track_ids: (N,) int64 stable track ids, >= 0.
        boxes_xyxy: (N, 4) float32 finite boxes in original-frame pixels.
        scores: (N,) float32 per-frame detection confidence of each track in this frame, in [0, 1].
        labels: (N,) int64 class index of each track (the track's class, constant over the video).
        class_probs: (N, K) float32 class probabilities of each track's detection in this frame (its
            ``scores`` are their row maxima), or None when the tracker gives none. The YouTube-VIS results of
            ``uvosam ytvis-run`` average them per track (``ExportOptions.ytvis_class_thres``).

    The pipeline refuses a tracker's tracks that break these rules (``uvosam.pipeline_args.check_tracks``).
    """

    frame_index: int
    track_ids: np.ndarray = field(default_factory=lambda: _empty((0,), np.int64))
    boxes_xyxy: np.ndarray = field(default_factory=lambda: _empty((0, 4), np.float32))
    scores: np.ndarray = field(default_factory=lambda: _empty((0,), np.float32))
    labels: np.ndarray = field(default_factory=lambda: _empty((0,), np.int64))
    class_probs: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = len(self.track_ids)
        probs = self.class_probs
        if (
            self.boxes_xyxy.shape != (n, 4)
            or self.scores.shape != (n,)
            or self.labels.shape != (n,)
            or (probs is not None and (probs.ndim != 2 or len(probs) != n))
        ):
            raise ValueError(
                f"FrameTracks {self.frame_index}: expected track_ids (N,), boxes_xyxy (N,4), scores (N,), "
                f"labels (N,) and class_probs (N,K) or None with one N; got {self.track_ids.shape}, "
                f"{self.boxes_xyxy.shape}, {self.scores.shape}, {self.labels.shape}, "
                f"{None if probs is None else probs.shape}"
            )

    def __len__(self) -> int:
        return len(self.track_ids)


@dataclass(frozen=True)
class FrameResult:
    """One output frame of the pipeline: the tracker's boxes plus SAM's masks.

    Attributes:
        frame_index: 0-based index in the processed sequence (after stride).
        image: (H, W, 3) uint8 RGB frame the masks belong to.
        track_ids, boxes_xyxy, scores, labels: as in ``FrameTracks``.
        masks: (N, H, W) bool, pairwise disjoint (overlaps resolved, see ``box_segmenter.resolve_overlaps``).
        mask_scores: (N,) float32 SAM's predicted IoU of each mask.
        class_probs: (N, K) float32 or None, as in ``FrameTracks`` (None too for frames read back from a
            ``MaskCache``, which does not store them).
    """

    frame_index: int
    image: np.ndarray
    track_ids: np.ndarray
    boxes_xyxy: np.ndarray
    scores: np.ndarray
    labels: np.ndarray
    masks: np.ndarray
    mask_scores: np.ndarray
    class_probs: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.track_ids)


def track_problem(tracks: FrameTracks | FrameResult) -> str | None:
    """What breaks the rules of ``FrameTracks`` in one frame's tracks (finite boxes, scores in [0, 1], finite class
    probabilities, track ids >= 0), in a message's words: ``"a box that is not finite (track 3: box [...], score
    0.9; 1 of its 2 tracks)"``; None when nothing does. The checks of the pipeline (a tracker's output,
    ``uvosam.pipeline_args.check_tracks``) and of ``uvosam.export.ExportWriter.add`` (a caller's results)."""
    boxes, scores, ids = tracks.boxes_xyxy, tracks.scores, tracks.track_ids
    probs = tracks.class_probs
    wrong = [
        ("a box that is not finite", ~np.isfinite(boxes).all(axis=1)),
        ("a score that is not finite", ~np.isfinite(scores)),
        ("a score outside [0, 1]", (scores < 0) | (scores > 1)),
        ("class probabilities that are not finite", None if probs is None else ~np.isfinite(probs).all(axis=1)),
        ("a negative track id", ids < 0),
    ]  # fmt: skip
    for what, bad in wrong:
        if bad is not None and bad.any():
            k = int(np.flatnonzero(bad)[0])
            return (
                f"{what} (track {int(ids[k])}: box {boxes[k].tolist()}, score {float(scores[k]):.4g}; "
                f"{int(bad.sum())} of its {count(len(ids), 'track')})"
            )
    return None


def select_tracks(result: FrameResult, keep_ids: set[int] | frozenset[int]) -> FrameResult:
    """The same frame restricted to the tracks whose id is in ``keep_ids`` (original row order kept)."""
    rows = np.isin(result.track_ids, np.fromiter(keep_ids, np.int64, len(keep_ids)))
    return replace(
        result,
        track_ids=result.track_ids[rows],
        boxes_xyxy=result.boxes_xyxy[rows],
        scores=result.scores[rows],
        labels=result.labels[rows],
        masks=result.masks[rows],
        mask_scores=result.mask_scores[rows],
        class_probs=None if result.class_probs is None else result.class_probs[rows],
    )


@dataclass(frozen=True)
class TrackSummary:
    """Whole-video summary of one track, built from the emitted frames.

    Attributes:
        track_id: the stable id.
        label: class index; ``class_name`` its name.
        score: mean of the per-frame scores over the frames the track was seen in. A per-frame score is the
            detection's highest class probability, so with one class this is IDOL's 'mean' temporal score; with
            several it is >= IDOL's mean probability of any one class (equal when the same class is the most
            likely in every frame).
        first_frame, last_frame: 0-based indices of the first and last frame with a box.
        num_frames: number of frames with a box.
        returns: how often the track came back after frames without a box (the tracker re-identified the object,
            e.g. after an occlusion, or ``min_score`` / ``max_objects`` had left it out): 0 for a track seen on
            consecutive frames only.
    """

    track_id: int
    label: int
    class_name: str
    score: float
    first_frame: int
    last_frame: int
    num_frames: int
    returns: int = 0


class TrackingSession(Protocol):
    """Per-video tracking state. Created by ``BoxTracker.new_video``; never shared between videos.

    Frames are pushed in order; each call returns the frames that became *decided* (their boxes can no longer
    change), in increasing ``frame_index`` order, possibly none. ``finish`` returns every frame not yet returned.
    Every pushed frame is returned exactly once, at most ``BoxTracker.lookahead`` pushes after its own.
    """

    def push(self, frame_rgb: np.ndarray) -> list[FrameTracks]: ...

    def finish(self) -> list[FrameTracks]: ...


class BoxTracker(Protocol):
    """Anything that turns a stream of frames into per-frame track boxes (IDOL, or a test double).

    Attributes:
        class_names: names of the classes behind ``labels``.
        lookahead: upper bound on how many further frames must be pushed before a frame is decided.

    Optional: ``describe() -> dict`` (JSON-able) of what the tracker is (weights, thresholds, ...), which exports
    record in ``run.json`` (``uvosam.provenance``; ``IDOLTracker.describe``); without it they name the class only.
    """

    class_names: Sequence[str]
    lookahead: int

    def new_video(self, *, height: int, width: int) -> TrackingSession: ...


class BoxMasks(Protocol):
    """One frame's masks from a ``BoxSegmenter``, in the row order of its boxes (``box_segmenter.SegmentOutput``).

    Attributes:
        masks: (N, H, W) bool, one per box, in the frame's pixels.
        mask_scores: (N,) float32 quality of each mask (SAM: its predicted IoU).
    """

    masks: np.ndarray
    mask_scores: np.ndarray


class BoxSegmenter(Protocol):
    """Anything that turns boxes into masks (SAM, SAM 2.1's image path, or your own): what ``UVOSAM`` uses of it.

    The pipeline calls ``segment_batch`` with up to ``config.encoder_batch`` frames whose boxes are decided and
    checks what comes back (``(N, H, W)`` bool masks and ``(N,)`` scores for the N boxes of each HxW frame, else a
    ``ValueError`` naming the segmenter's class); ``warm_up`` calls ``segment`` once on ``device``. The masks are
    used as returned: resolving overlaps is the segmenter's (``box_segmenter.resolve_overlaps``, as SAM's do).

    Attributes:
        config: only ``encoder_batch`` is read (frames per ``segment_batch`` call); ``SegmenterConfig()`` will do.
        device: where it runs (``torch.device("cpu")``, ``"cuda"``: ``warm_up`` synchronises its CUDA stream).

    Optional: ``describe() -> dict`` (JSON-able; its ``"family"`` key, such as ``"SAM"``, names the model family),
    which exports record in ``run.json`` (``uvosam.provenance``); without it they name the class only. And
    ``prepare(image)`` with a true ``prepare_ahead``: the pipeline then calls ``prepare`` on each frame in a
    background thread as frames are read, and passes the results to ``segment_batch(..., prepared=[...])``.
    """

    config: SegmenterConfig
    device: torch.device

    def segment(self, image: np.ndarray, boxes_xyxy: np.ndarray) -> BoxMasks:
        """Masks for the (N, 4) float32 pixel boxes of one (H, W, 3) uint8 RGB frame."""
        ...

    def segment_batch(
        self,
        images: list[np.ndarray],
        boxes_list: list[np.ndarray],
        *,
        scores: list[np.ndarray | None] | None,
        track_ids: list[np.ndarray | None] | None,
    ) -> Sequence[BoxMasks]:
        """One ``BoxMasks`` per frame, in order: T frames, T (N_t, 4) box arrays, and each box's (N_t,) tracker
        score and track id (for resolving overlaps; a segmenter may ignore them)."""
        ...
