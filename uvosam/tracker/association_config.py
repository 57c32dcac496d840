"""Thresholds of IDOL's online association and of its per-video post-processing.

Defaults are the released UVOSAM values: the keyword arguments ``IDOL.forward`` passes to
``IDOL_Tracker`` (plus the constructor defaults it relies on) and the ``MODEL.IDOL.*`` inference
keys of ``davis_r50.yaml``, including the numbers IDOL hard-codes (pre-tracker NMS 0.9, short-track
pruning from frame 9, min 3 hits).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from uvosam.errors import InputError

MATCH_METRICS = ("bisoftmax", "softmax", "cosine")
TEMPORAL_SCORES = ("mean", "max")


def _check_unit(owner: str, name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise InputError(f"{owner}.{name} must be in [0, 1]; got {value!r}")


def _check_int(owner: str, name: str, value: int, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InputError(f"{owner}.{name} must be an int >= {minimum}; got {value!r}")


@dataclass(frozen=True)
class AssociationConfig:
    """``IDOL_Tracker`` settings (``idol/models/tracker.py``); defaults = what ``IDOL.forward``
    constructs.

    Attributes:
        init_score_thr: while the memory is empty, detections scoring above this start tracks.
        obj_score_thr: kept for completeness; has no effect on the output (as in the original).
        nms_thr_pre: greedy box-NMS IoU threshold applied to the detections before matching.
        nms_thr_post: an unassigned detection whose IoU with every EARLIER detection is below this
            is a backdrop (id -1) rather than a duplicate (id -2); neither is output.
        addnew_score_thr: unmatched detections scoring above this start new tracks (memory not
            empty).
        memo_tracklet_frames: a tracklet not matched for this many frames is forgotten.
        memo_momentum: weight of the NEW embedding in the momentum (EMA) embedding.
        long_match: match against the score/time-weighted mean of the last ``memory_len`` embeddings
            instead of the EMA embedding.
        frame_weight: if several tracklets score above ``frame_weight_score_thr`` for a detection,
            weight them by how many frames they exist (others by the mean of those counts).
        temporal_weight: add k/K (k = 1..K, oldest first) to the detection scores used as long_match
            weights.
        memory_len: embeddings (and scores) kept per tracklet for long_match.
        match_score_thr: a detection joins its best tracklet only if the (weighted) score exceeds
            this.
        memo_backdrop_frames: frames of backdrops kept (never used for matching; no effect on the
            output).
        match_metric: ``bisoftmax`` (released), ``softmax`` or ``cosine``.
        frame_weight_score_thr: candidate threshold of the frame-weight rule (hard-coded 0.5 in
            IDOL).
    """

    init_score_thr: float = 0.2
    obj_score_thr: float = 0.1
    nms_thr_pre: float = 0.5
    nms_thr_post: float = 0.05
    addnew_score_thr: float = 0.2
    memo_tracklet_frames: int = 10
    memo_momentum: float = 0.8
    long_match: bool = True
    frame_weight: bool = True
    temporal_weight: bool = True
    memory_len: int = 3
    match_score_thr: float = 0.5
    memo_backdrop_frames: int = 1
    match_metric: str = "bisoftmax"
    frame_weight_score_thr: float = 0.5

    def __post_init__(self) -> None:
        for name in (
            "init_score_thr",
            "obj_score_thr",
            "nms_thr_pre",
            "nms_thr_post",
            "addnew_score_thr",
            "memo_momentum",
            "match_score_thr",
            "frame_weight_score_thr",
        ):
            _check_unit("AssociationConfig", name, getattr(self, name))
        _check_int("AssociationConfig", "memo_tracklet_frames", self.memo_tracklet_frames, 0)
        _check_int("AssociationConfig", "memo_backdrop_frames", self.memo_backdrop_frames, 0)
        _check_int("AssociationConfig", "memory_len", self.memory_len, 1)
        if self.match_metric not in MATCH_METRICS:
            raise InputError(
                f"AssociationConfig.match_metric must be one of {MATCH_METRICS}; "
                f"got {self.match_metric!r}"
            )

    @classmethod
    def constructor_defaults(cls) -> AssociationConfig:
        """``IDOL_Tracker()`` with no arguments (EMA embedding, no frame/temporal weights, NMS
        0.7/0.3)."""
        return cls(
            init_score_thr=0.2,
            obj_score_thr=0.1,
            nms_thr_pre=0.7,
            nms_thr_post=0.3,
            addnew_score_thr=0.5,
            memo_tracklet_frames=10,
            memo_momentum=0.5,
            long_match=False,
            frame_weight=False,
            temporal_weight=False,
            memory_len=10,
            match_score_thr=0.5,
            memo_backdrop_frames=1,
            match_metric="bisoftmax",
        )

    @classmethod
    def from_yaml_dict(cls, idol: dict[str, Any]) -> AssociationConfig:
        """Map ``MODEL.IDOL.*`` keys the way ``IDOL.forward`` does: long_match = temporal_weight =
        INFERENCE_TW,
        frame_weight = INFERENCE_TW or INFERENCE_FW, memory_len = MEMORY_LEN, and (VNext configs)
        nms_thr_pre = NMS_PRE, addnew_score_thr = ADD_NEW_SCORE (the release hard-codes 0.5 / 0.2,
        VNext's defaults). Missing keys keep the defaults."""
        default = cls()
        tw = bool(idol.get("INFERENCE_TW", default.temporal_weight))
        fw = bool(idol.get("INFERENCE_FW", default.frame_weight))
        return cls(
            nms_thr_pre=float(idol.get("NMS_PRE", default.nms_thr_pre)),
            addnew_score_thr=float(idol.get("ADD_NEW_SCORE", default.addnew_score_thr)),
            long_match=tw,
            frame_weight=tw or fw,
            temporal_weight=tw,
            memory_len=int(idol.get("MEMORY_LEN", default.memory_len)),
        )


@dataclass(frozen=True)
class InferenceConfig:
    """``IDOL.inference`` settings: per-frame candidate selection and trajectory post-processing.

    Attributes:
        select_thres: queries whose max class probability exceeds this are candidates
            (``INFERENCE_SELECT_THRES``); if none does, the single best query is taken (top-1
            fallback).
        pre_nms_thres: IoU threshold of the class-wise ``batched_nms`` on the candidates (hard-coded
            0.9).
        apply_cls_thres: with ``multi_cls_on``, one result per (trajectory, class) whose temporal
            score exceeds this (``APPLY_CLS_THRES``).
        temporal_score: ``mean`` (released) or ``max`` over the frames with a box
            (``TEMPORAL_SCORE_TYPE``).
        multi_cls_on: ``MULTI_CLS_ON``; if False one result per trajectory with its best class, no
            threshold.
        short_track_start_frame: short-track pruning runs at frame indices >= this (IDOL: ``i_frame
            > 8``).
        short_track_min_valid: a trajectory missing in the last two frames with fewer hits than this
            is
            pruned (IDOL: ``valid < 3``).
    """

    select_thres: float = 0.1
    pre_nms_thres: float = 0.9
    apply_cls_thres: float = 0.05
    temporal_score: str = "mean"
    multi_cls_on: bool = True
    short_track_start_frame: int = 9
    short_track_min_valid: int = 3

    def __post_init__(self) -> None:
        for name in ("select_thres", "pre_nms_thres", "apply_cls_thres"):
            _check_unit("InferenceConfig", name, getattr(self, name))
        if self.temporal_score not in TEMPORAL_SCORES:
            raise InputError(
                f"InferenceConfig.temporal_score must be one of {TEMPORAL_SCORES}; "
                f"got {self.temporal_score!r}"
            )
        _check_int("InferenceConfig", "short_track_start_frame", self.short_track_start_frame, 1)
        _check_int("InferenceConfig", "short_track_min_valid", self.short_track_min_valid, 0)

    @classmethod
    def from_yaml_dict(cls, idol: dict[str, Any]) -> InferenceConfig:
        """Map ``MODEL.IDOL.{INFERENCE_SELECT_THRES, APPLY_CLS_THRES, TEMPORAL_SCORE_TYPE,
        MULTI_CLS_ON}``;
        missing keys keep the defaults."""
        default = cls()
        return cls(
            select_thres=float(idol.get("INFERENCE_SELECT_THRES", default.select_thres)),
            apply_cls_thres=float(idol.get("APPLY_CLS_THRES", default.apply_cls_thres)),
            temporal_score=str(idol.get("TEMPORAL_SCORE_TYPE", default.temporal_score)),
            multi_cls_on=bool(idol.get("MULTI_CLS_ON", default.multi_cls_on)),
        )
