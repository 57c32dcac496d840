"""Streaming IDOL tracker: frames in, decided per-frame track boxes out, a few frames late.

``IDOLTracker`` implements ``uvosam.types.BoxTracker``. Each video gets an ``IDOLSession`` that
buffers frames into detector micro-batches (IDOL's ``BATCH_INFER_LEN``; frames never interact in the
detector, so batching changes nothing but speed), runs IDOL's association frame by frame
(``postprocess.IDOLVideoState``, the same code as ``run_idol_offline``) and returns every frame
whose tracks can no longer change.

When is a frame decided? Association is causal; only IDOL's short-track pruning looks back at the
past from a later frame: at frame j >= S (``short_track_start_frame``, 9) an entry with no box at j
and j-1 and fewer than V (``short_track_min_valid``, 3) hits is dropped with all its boxes. An entry
is decided once it is pruned or has V hits. Output ids are numbered over the surviving entries in
creation order, so frame f is decided when every entry created at a frame <= f is decided.
Worst case for an entry born at frame b with one hit: it can only be pruned from frame S on, and
until then it must never miss two frames in a row, so after p = max(b + 1, S - 1) the longest
undecided run is miss, hit, miss, ..., miss with V - 2 further hits, and the entry is decided at
p + 2V - 3 at the latest. Hence frame f is decided once frame max(f + 1, S - 1) + 2V - 3 is
associated: ``decision_lookahead`` = max(1, S - 1) + 2V - 3 frames (11 for the release; 4 for
frames f >= S - 2), and with micro-batches of B frames a frame is returned at most
``lookahead = decision_lookahead + B - 1`` pushes after its own (20 for the release's B = 10).

What the stream can NOT know early, and how it is handled (everything else is identical to
``run_idol_offline``: ids, boxes, per-frame scores, which frames each track is in):

* The final temporal-score filter (mean score > ``apply_cls_thres``, 0.05) depends on the whole
  video. A candidate scores > ``select_thres`` (0.1) except the top-1 fallback of a frame where no
  query passes it (that single detection always matches a live track: bisoftmax of one row is > 0.5
  for its best tracklet: its softmax over tracklets is >= 1 / #tracklets, while the others' may
  underflow to 0), and a track is born only above 0.2. So with one class a trajectory can fail
  the filter only if fallback hits pull its mean to <= 0.05. The stream does not apply the filter:
  such a trajectory is streamed but absent offline. With one class and every fallback score >
  ``apply_cls_thres``, stream and offline are identical.
* With K > 1 classes (YouTube-VIS checkpoints) offline results are per (track, class); the stream
  gives one box per track labelled with the class of highest temporal score over the hits known when
  the track's first frame is returned (offline: over the whole video), and shows tracks whatever
  their class scores. Each row carries its detection's class-probability vector
  (``FrameTracks.class_probs``), so a consumer that sums them per track (the YouTube-VIS export of
  ``uvosam ytvis-run``) gets the offline per-(track, class) results in O(tracks x classes) memory.
* ``defer_until_finish=True`` returns every frame from ``finish()`` built from the final results
  (exact, but unbounded look-ahead); ``IDOLSession.trajectories()`` after ``finish()`` always equals
  ``run_idol_offline``.

Output ids: 1, 2, 3, ... over surviving trajectories in creation order (gaps only where the final
score filter drops one). A trajectory pruned by the short-track rule and later re-opened under the
same tracker id is a new trajectory with a new output id.
"""

from __future__ import annotations

import sys
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import numpy as np
import torch

from uvosam.errors import InputError
from uvosam.tracker.association_config import AssociationConfig, InferenceConfig
from uvosam.tracker.config import DetectorConfig
from uvosam.tracker.frames import check_frame
from uvosam.tracker.outputs import DetectorOutput
from uvosam.tracker.postprocess import FrameStep, IDOLVideoState
from uvosam.tracker.trajectories import Trajectory, TrajectoryEntry, boxes_to_pixels
from uvosam.types import FrameTracks


class FrameDetector(Protocol):
    """Anything that runs IDOL's detector on a list of (H, W, 3) uint8 RGB frames."""

    def detect_frames(self, frames: Sequence[np.ndarray]) -> DetectorOutput: ...


def decision_lookahead(config: InferenceConfig) -> int:
    """Frames after frame f that must be associated before f is decided (see module docstring)."""
    if config.short_track_min_valid <= 1:
        return 0
    return max(1, config.short_track_start_frame - 1) + 2 * config.short_track_min_valid - 3


_Row = tuple[int, np.ndarray, float, int, np.ndarray | None]
"""One track in a frame: output id, pixel box, score, label, (K,) class probabilities or None."""


def frames_from_trajectories(
    trajectories: Sequence[Trajectory], num_frames: int
) -> list[FrameTracks]:
    """Per-frame view of final results: one row per track id (its best-scoring class), by id."""
    best: dict[int, Trajectory] = {}
    for traj in trajectories:
        if traj.track_id not in best or traj.score > best[traj.track_id].score:
            best[traj.track_id] = traj
    rows: list[list[_Row]] = [[] for _ in range(num_frames)]
    for track_id in sorted(best):
        traj = best[track_id]
        probs = traj.frame_probs or (None,) * num_frames
        for f, (box, score, prob) in enumerate(zip(traj.boxes_xyxy, traj.frame_scores, probs)):
            if box is not None:
                rows[f].append((track_id, box, score, traj.label, prob))
    return [_frame_tracks(f, r) for f, r in enumerate(rows)]


def _frame_tracks(frame_index: int, rows: list[_Row]) -> FrameTracks:
    rows = sorted(rows, key=lambda r: r[0])
    probs = [r[4] for r in rows]
    known = bool(probs) and all(p is not None for p in probs)
    return FrameTracks(
        frame_index=frame_index,
        track_ids=np.array([r[0] for r in rows], dtype=np.int64),
        boxes_xyxy=np.array([r[1] for r in rows], dtype=np.float32).reshape(-1, 4),
        scores=np.array([r[2] for r in rows], dtype=np.float32),
        labels=np.array([r[3] for r in rows], dtype=np.int64),
        class_probs=np.stack(probs).astype(np.float32, copy=False) if known else None,
    )


@dataclass
class _PendingFrame:
    index: int
    hits: list[tuple[TrajectoryEntry, np.ndarray, float, np.ndarray]] = field(default_factory=list)


class IDOLTracker:
    """IDOL box tracker behind the ``BoxTracker`` protocol; holds only the detector (read-only).

    Args:
        detector: object with ``detect_frames(frames) -> DetectorOutput`` (e.g. ``IDOLDetector``).
        class_names: names of the detector's classes (``labels`` index them).
        association: tracker thresholds; inference: selection and post-processing settings.
        batch_size: frames per detector call (IDOL's ``BATCH_INFER_LEN``, 10).
        defer_until_finish: return all frames from ``finish()``, built from the exact whole-video
            results.
        weights_name, config_name: the detector's weights (a ``weight_table.WEIGHTS`` preset or a checkpoint
            file name) and its YAML's file name, for exports' ``run.json`` (``describe``); ``load_tracker`` sets
            them, ``None`` = not known / no YAML.

    Attributes:
        lookahead: ``decision_lookahead(inference) + batch_size - 1`` (``sys.maxsize`` when
            deferring).
    """

    def __init__(
        self,
        detector: FrameDetector,
        class_names: Sequence[str],
        *,
        association: AssociationConfig = AssociationConfig(),
        inference: InferenceConfig = InferenceConfig(),
        batch_size: int = 10,
        defer_until_finish: bool = False,
        weights_name: str | None = None,
        config_name: str | None = None,
    ) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise InputError(f"IDOLTracker batch_size must be a positive int; got {batch_size!r}")
        if not class_names:
            raise InputError(
                "IDOLTracker needs the detector's class names (e.g. ('object',)); got none"
            )
        num_classes = getattr(
            getattr(detector, "cfg", None), "num_classes", None
        )  # an IDOLDetector's
        if num_classes is not None and num_classes != len(class_names):
            raise InputError(
                f"IDOLTracker: the detector has {num_classes} class output(s) but {len(class_names)} class names "
                f"were given ({tuple(class_names)[:5]}...); give one name per output "
                "(uvosam.classes.class_names_for(weights, num_classes) picks them for a checkpoint)"
            )
        self.detector = detector
        self.class_names = tuple(class_names)
        self.association = association
        self.inference = inference
        self.batch_size = batch_size
        self.defer_until_finish = defer_until_finish
        self.weights_name = weights_name
        self.config_name = config_name
        bound = decision_lookahead(inference) + batch_size - 1
        self.lookahead = sys.maxsize if defer_until_finish else bound

    def describe(self) -> dict[str, Any]:
        """What this tracker is, for an export's ``run.json`` (``uvosam.provenance``); JSON-able.

        Returns:
            ``weights``, ``config_yaml`` (``None`` when not known / none), ``num_classes``, ``batch_size``, the
            ``association`` and ``inference`` thresholds; with an ``IDOLDetector`` also its ``precision``,
            ``input_min_side`` / ``input_max_side`` (the detector's frame resize), ``num_queries``, and for a torch
            module its ``device`` and ``parameters`` (count).
        """
        record: dict[str, Any] = {
            "weights": self.weights_name,
            "config_yaml": self.config_name,
            "num_classes": len(self.class_names),
            "batch_size": self.batch_size,
            "association": asdict(self.association),
            "inference": asdict(self.inference),
        }
        cfg = getattr(self.detector, "cfg", None)  # an IDOLDetector's; a test double may have none
        if isinstance(cfg, DetectorConfig):
            record.update(
                precision=cfg.precision,
                input_min_side=cfg.min_size_test,
                input_max_side=cfg.max_size_test,
                num_queries=cfg.num_queries,
            )
        if isinstance(self.detector, torch.nn.Module):
            record["device"] = str(next(self.detector.parameters()).device)
            record["parameters"] = sum(p.numel() for p in self.detector.parameters())
        return record

    def new_video(self, *, height: int, width: int) -> IDOLSession:
        """Start a video of (height, width) frames; the session holds all per-video state."""
        return IDOLSession(self, height, width)


class IDOLSession:
    """Per-video tracking state (``uvosam.types.TrackingSession``); push frames in order, then
    ``finish()``."""

    def __init__(self, tracker: IDOLTracker, height: int, width: int) -> None:
        if height < 1 or width < 1:
            raise InputError(
                f"IDOLSession needs a positive frame size; got height={height}, width={width}"
            )
        self.tracker = tracker
        self.size_hw = (int(height), int(width))
        self.state = IDOLVideoState(tracker.association, tracker.inference)
        self.finished = False
        self._batch: list[np.ndarray] = []
        self._pending: deque[_PendingFrame] = deque()
        self._undecided: deque[TrajectoryEntry] = deque()
        self._labels: dict[int, int] = {}
        self._next_output_id = 1

    def push(self, frame_rgb: np.ndarray) -> list[FrameTracks]:
        """Add the next (H, W, 3) uint8 RGB frame, of the size given to ``new_video``; returns the frames decided by
        it (maybe none).

        Raises:
            TypeError, ValueError: a frame that is not that (``uvosam.tracker.frames.check_frame``).
        """
        if self.finished:
            raise RuntimeError(
                "IDOLSession.push after finish(): start a new video with tracker.new_video(...)"
            )
        index = self.state.num_frames + len(self._batch)
        check_frame(frame_rgb, index, self.size_hw, size_of="the size given to new_video")
        self._batch.append(frame_rgb)
        if len(self._batch) < self.tracker.batch_size:
            return []
        self._run_batch()
        return [] if self.tracker.defer_until_finish else self._emit()

    def finish(self) -> list[FrameTracks]:
        """End of video: returns every frame not returned yet."""
        if self.finished:
            return []
        self._run_batch()
        self.state.book.close()
        self.finished = True
        if self.tracker.defer_until_finish:
            return frames_from_trajectories(self.trajectories(), self.state.num_frames)
        return self._emit()

    def trajectories(self, boxes_hw: tuple[int, int] | None = None) -> list[Trajectory]:
        """The exact ``run_idol_offline`` results of this video (only after ``finish()``), their boxes in the pixels
        of a (height, width) ``boxes_hw`` frame (default: the frames' size; the source's for frames scaled down
        from it: the tracker keeps boxes normalised to the frame)."""
        if not self.finished:
            raise RuntimeError(
                "IDOLSession.trajectories() needs the whole video: call finish() first"
            )
        return self.state.book.trajectories(self.size_hw if boxes_hw is None else boxes_hw)

    @torch.inference_mode()
    def _run_batch(self) -> None:
        if not self._batch:
            return
        frames, self._batch = self._batch, []
        outputs = self.tracker.detector.detect_frames(frames)
        if len(outputs) != len(frames):
            raise ValueError(
                f"detector returned {len(outputs)} frames of outputs for {len(frames)} frames"
            )
        for step in self.state.iter_steps(outputs):
            self._record(step)

    def _record(self, step: FrameStep) -> None:
        pending = _PendingFrame(step.frame_idx)
        if step.hits:
            boxes = torch.stack([e.boxes_cxcywh_norm[-1] for e in step.hits])
            pixels = boxes_to_pixels(boxes, self.size_hw).numpy()
            for entry, box in zip(step.hits, pixels):
                if entry.valid == 1:
                    self._undecided.append(entry)
                probs = entry.probs[-1]
                pending.hits.append((entry, box, float(probs.max()), probs.numpy()))
        self._pending.append(pending)

    def _emit(self) -> list[FrameTracks]:
        book = self.state.book
        while self._undecided and book.is_decided(self._undecided[0]):
            entry = self._undecided.popleft()
            if not entry.pruned:
                entry.output_id = self._next_output_id
                self._next_output_id += 1
        bound = self._undecided[0].hit_frames[0] if self._undecided else book.num_frames
        out = []
        while self._pending and self._pending[0].index < bound:
            out.append(self._decided_frame(self._pending.popleft()))
        return out

    def _decided_frame(self, pending: _PendingFrame) -> FrameTracks:
        rows = []
        for entry, box, score, probs in pending.hits:
            if entry.pruned:
                continue
            if entry.serial not in self._labels:
                temporal = entry.temporal_score(self.tracker.inference.temporal_score)
                self._labels[entry.serial] = int(torch.max(temporal, dim=0)[1])
            assert entry.output_id is not None
            rows.append((entry.output_id, box, score, self._labels[entry.serial], probs))
        return _frame_tracks(pending.index, rows)


def track_video(
    tracker: IDOLTracker,
    frames: Iterable[np.ndarray],
    *,
    height: int,
    width: int,
    boxes_hw: tuple[int, int] | None = None,
) -> list[Trajectory]:
    """Run a whole video of (height, width) frames through a session and return the exact offline results
    (``run_idol_offline``), boxes in the pixels of a ``boxes_hw`` frame (default: the frames'; the source's size
    for frames ``fit_side`` scaled down: ``IDOLSession.trajectories``).

    Frames are consumed one at a time; the per-frame streamed tracks are discarded.
    """
    session = tracker.new_video(height=height, width=width)
    for frame in frames:
        session.push(frame)
    session.finish()
    return session.trajectories(boxes_hw)
