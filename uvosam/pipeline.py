"""The UVOSAM pipeline: box trajectories from a video tracker prompt SAM frame by frame (arXiv 2305.12659).

``UVOSAM`` holds the loaded models only and is read-only while running: every call creates its own per-video
state (the tracker session and the look-ahead buffer), so one loaded pipeline can serve many Gradio sessions.

Streaming: a frame is segmented as soon as the tracker says its boxes are decided, which is at most
``tracker.lookahead`` frames after it was read. The buffer of undecided frames is therefore bounded and the memory
per video does not grow with its length.
"""

from __future__ import annotations

import logging
import os
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from uvosam.config import PipelineConfig, SegmenterConfig, config_or
from uvosam.devices import check_device
from uvosam.errors import MissingWeightsError
from uvosam.pipeline_args import (
    check_frames,
    check_load_args,
    check_masks,
    check_models,
    check_prepare_ahead,
    check_tracks,
)
from uvosam.prepare_ahead import FramePreparer
from uvosam.tracker.frames import check_frame
from uvosam.types import BoxSegmenter, BoxTracker, FrameResult, FrameTracks

logger = logging.getLogger(__name__)

DEFAULT_TRACKER = "idol-ytvis19-r50"
"""Works out of the box from the Hub (40 YouTube-VIS classes, used class-agnostically as salient objects)."""


def tracks_to_segment(tracks: FrameTracks, config: PipelineConfig) -> FrameTracks:
    """Keep the tracks that get masks: score >= ``min_score``, then the ``max_objects`` best by score.

    Order of the kept rows is ascending track id (deterministic, independent of score ties).
    """
    keep = np.flatnonzero(tracks.scores >= config.min_score)
    if config.max_objects is not None and len(keep) > config.max_objects:
        order = np.lexsort((tracks.track_ids[keep], -tracks.scores[keep]))
        keep = keep[order[: config.max_objects]]
    keep = keep[np.argsort(tracks.track_ids[keep], kind="stable")]
    return FrameTracks(
        frame_index=tracks.frame_index,
        track_ids=tracks.track_ids[keep],
        boxes_xyxy=tracks.boxes_xyxy[keep],
        scores=tracks.scores[keep],
        labels=tracks.labels[keep],
        class_probs=None if tracks.class_probs is None else tracks.class_probs[keep],
    )


def locate_weights(
    tracker: str | os.PathLike | None = DEFAULT_TRACKER,
    sam: str | os.PathLike | None = None,
    *,
    segmenter_config: SegmenterConfig | None = None,
) -> tuple[Path | None, Path]:
    """The tracker's and the mask model's weight files (local ``checkpoints/`` first, then the Hugging Face Hub, as
    the loaders look), found before either model loads: a missing SAM file is then reported in seconds, not after
    the tracker has loaded (or after a command has downloaded its input). Each file found is checked against the
    weight table once (``uvosam.hub``); the loads that follow find it again at no cost.

    Args:
        tracker, sam, segmenter_config: as ``UVOSAM.from_pretrained``; ``tracker=None``: only the mask model's file
            is looked for (a tracker that has no weight file, such as a test's double in the app).

    Returns:
        (tracker file, or None when not looked for; mask model file).

    Raises:
        MissingWeightsError: (a ``FileNotFoundError``) one or both are missing; the message holds the report of
            each (where it looked, how to get it).
        WeightsError: a file found is corrupt.
    """
    from uvosam import hub
    from uvosam.segmenter import segmenter_weights

    found: list[Path | None] = []
    missing: list[str] = []
    for find in (
        lambda: None if tracker is None else hub.resolve(tracker, role="tracker"),
        lambda: segmenter_weights(sam, config=segmenter_config),
    ):
        try:
            found.append(find())
        except FileNotFoundError as err:
            missing.append(str(err))
    if missing:
        raise MissingWeightsError("\n\n".join(missing))
    return found[0], found[1]


@dataclass
class _VideoState:
    """Per-call state: frames read but not yet decided by the tracker (bounded by the look-ahead), each with the
    ``Future`` of its ``segmenter.prepare`` result or None (``prepared``, in step: ``uvosam.prepare_ahead``)."""

    pending: deque[np.ndarray] = field(default_factory=deque)
    prepared: deque[Future | None] = field(default_factory=deque)
    next_index: int = 0


class UVOSAM:
    """Tracker + SAM. ``for result in pipe(frames)`` yields one ``FrameResult`` per input frame, in order.

    Args:
        tracker: a ``uvosam.types.BoxTracker`` (the IDOL tracker, or any object with the same protocol).
        segmenter: a ``uvosam.types.BoxSegmenter``: ``uvosam.segmenter.BoxPromptSegmenter`` (SAM),
            ``uvosam.sam2_segmenter.Sam2BoxSegmenter`` (SAM 2.1), or any object with the same protocol.
        config: which tracks get masks.
    """

    def __init__(
        self, tracker: BoxTracker, segmenter: BoxSegmenter, config: PipelineConfig | None = None
    ) -> None:
        check_models(tracker, segmenter)
        check_prepare_ahead(segmenter)
        self.tracker = tracker
        self.segmenter = segmenter
        self.config = config_or(
            config, PipelineConfig(), "PipelineConfig(max_objects=3)", what="UVOSAM: config"
        )

    @classmethod
    def from_pretrained(
        cls,
        tracker: str | os.PathLike = DEFAULT_TRACKER,
        sam: str | os.PathLike | None = None,
        *,
        device: str = "auto",
        tracker_yaml: str | os.PathLike | None = None,
        config: PipelineConfig | None = None,
        segmenter_config: SegmenterConfig | None = None,
        tracker_precision: str = "fp32",
    ) -> UVOSAM:
        """Load the tracker and SAM once (local ``checkpoints/`` first, then the Hugging Face Hub).

        Args:
            tracker: a tracker preset of ``uvosam.weight_table.WEIGHTS`` (``idol-ytvis19-r50`` (default),
                ``idol-ytvis21-r50``, ``idol-ovis-r50``, ``idol-coco-r50``, ``uvosam-davis-r50``) or a checkpoint path.
            sam: SAM ``vit_b`` / ``vit_l`` / ``vit_h``, SAM 2.1 ``sam2.1_tiny`` / ``sam2.1_small`` /
                ``sam2.1_base_plus`` / ``sam2.1_large`` (needs the sam2 package), or a checkpoint path; ``None`` =
                ``segmenter_config.model_type`` (``vit_h`` by default).
            device: ``auto`` (CUDA when available), ``cpu``, ``cuda``, ``cuda:1`` ...
            tracker_yaml: detectron2-style IDOL config matching the tracker checkpoint (optional).
            segmenter_config: SAM options (``fast`` = bf16 + SDPA image encoder, on by default on GPUs
                (compute capability 8.0 on) and CPUs with native bf16;
                ``compile`` = ``torch.compile`` the encoder forward, off by default: the first frame
                then waits for the compile).
            tracker_precision: ``fp32`` (exact), ``tf32`` or ``bf16`` for the detector.

        Raises:
            FileNotFoundError: a weight file is missing (the message says where it looked and how to get it); both
                files are looked for before either model loads (``locate_weights``).
            WeightsError: a weight file is corrupt or does not fit the architecture (a SAM file that no SAM size
                fits: before the tracker loads, ``check_segmenter_file``).
            MissingPackageError: ``sam`` is a SAM 2.1 model and the sam2 package is missing (before anything loads).
            TypeError: an argument of the wrong kind (a dict for ``config``, ``tracker=None``), before anything loads.
            ValueError: a ``tracker_precision`` not in ``fp32``/``tf32``/``bf16`` or a ``device`` torch cannot use
                here (``uvosam.devices.check_device``; before any weights are read), or a ``tracker_yaml`` that is
                not valid YAML or not an IDOL config (before any weight is looked for; a missing one:
                ``FileNotFoundError``).
        """
        from uvosam.segmenter import (
            check_segmenter_file,
            check_segmenter_packages,
            load_segmenter,
            resolve_device,
        )
        from uvosam.tracker.loading import load_tracker
        from uvosam.tracker.yaml_config import load_tracker_yaml

        check_load_args(tracker, sam, tracker_yaml, config, segmenter_config, tracker_precision)
        check_device(device)
        if sam is None:
            sam = (segmenter_config or SegmenterConfig()).model_type
        # SAM 2.1 without the sam2 package: said before any load
        check_segmenter_packages(sam, segmenter_config)
        torch_device = resolve_device(device)
        # a missing or malformed tracker YAML is said before any weight is found or downloaded (parsed again by the
        # tracker's load below: a few milliseconds)
        if tracker_yaml is not None:
            load_tracker_yaml(tracker_yaml)
        # both weight files before either model: a missing SAM file is not found only after the tracker loaded
        locate_weights(tracker, sam, segmenter_config=segmenter_config)
        # a SAM file of no size uvosam builds (its keys and shapes read, not its weights): before the tracker loads
        check_segmenter_file(sam, segmenter_config)
        # then the tracker: a wrong YAML or a checkpoint that does not fit is reported before SAM's 0.4-2.5 GB load
        box_tracker = load_tracker(
            tracker, tracker_yaml, device=torch_device, precision=tracker_precision
        )
        segmenter = load_segmenter(sam, device=torch_device, config=segmenter_config)
        return cls(box_tracker, segmenter, config)

    def warm_up(self, height: int = 480, width: int = 854) -> float:
        """Run one mid-grey frame through the tracker and SAM once, so that one-time costs (CUDA context and
        library handles, the Triton kernel's just-in-time compile, first allocations) are paid now instead of inside
        the first user's first streamed chunk. Nothing is kept (the tracking session is local).

        Costs one frame of compute, i.e. seconds on CPU with real-size models: the app calls it on CUDA only.

        Returns:
            seconds it took.
        """
        start = time.perf_counter()
        frame = np.full((height, width, 3), 128, np.uint8)
        session = self.tracker.new_video(height=height, width=width)
        session.push(frame)
        session.finish()
        box = np.array([[width / 4, height / 4, 3 * width / 4, 3 * height / 4]], np.float32)
        self.segmenter.segment(frame, box)
        if self.segmenter.device.type == "cuda":
            # this thread's stream only: a device-wide synchronize would invalidate a CUDA-graph capture that another
            # thread (another app session loading its models) has underway (uvosam.encoder_graphs)
            torch.cuda.current_stream(self.segmenter.device).synchronize()
        return time.perf_counter() - start

    @property
    def class_names(self) -> list[str]:
        return list(self.tracker.class_names)

    def track(self, frames: Iterable[np.ndarray]) -> Iterator[FrameTracks]:
        """Run the tracker alone; yields the decided ``FrameTracks`` of every frame, in order.

        Raises:
            TypeError: ``frames`` is no iterable of frames (a path, one frame): when called; a frame that is no uint8
                numpy array (a PIL image, a float array): when it is reached.
            ValueError: a frame that is not (H, W, 3) (grey, RGBA) or not the first frame's size: when it is reached;
                tracks the tracker gave with a box or score that is not finite, a score outside [0, 1] or a
                negative id: when they come (``uvosam.pipeline_args.check_tracks``).
        """
        check_frames(frames)
        return self._track(frames)

    def _track(self, frames: Iterable[np.ndarray]) -> Iterator[FrameTracks]:
        for _, decided in self._pushed(frames):
            yield from decided

    def _pushed(
        self, frames: Iterable[np.ndarray], before_push: Callable[[np.ndarray], None] | None = None
    ) -> Iterator[tuple[np.ndarray | None, list[FrameTracks]]]:
        """Each frame (checked: ``check_frame``, then handed to ``before_push``) with the tracks the tracker decided
        when it was pushed, then ``(None, those its finish() decided)`` (each checked: ``check_tracks``); the
        tracker's video starts with the first frame (its size)."""
        session = None
        size_hw = None
        for index, frame in enumerate(frames):
            check_frame(frame, index, size_hw)
            if before_push is not None:
                before_push(frame)
            if session is None:
                size_hw = frame.shape[:2]
                session = self.tracker.new_video(height=size_hw[0], width=size_hw[1])
            yield frame, self._checked(session.push(frame))
        if session is not None:
            yield None, self._checked(session.finish())

    def _checked(self, decided: list[FrameTracks]) -> list[FrameTracks]:
        for tracks in decided:
            check_tracks(self.tracker, tracks)
        return decided

    def __call__(self, frames: Iterable[np.ndarray]) -> Iterator[FrameResult]:
        """Track and segment ``frames`` ((H, W, 3) uint8 RGB, one size) lazily; yields ``FrameResult`` in order.

        A video file or frame folder: ``pipe(uvosam.video.iter_frames(path))``.

        Raises:
            TypeError: ``frames`` is no iterable of frames (a path, one frame): when called; a frame that is no uint8
                numpy array (a PIL image, a float array): when it is reached.
            ValueError: a frame that is not (H, W, 3) (grey, RGBA) or not the first frame's size: when it is reached;
                tracks the tracker gave with a box or score that is not finite, a score outside [0, 1] or a
                negative id: when they come (``uvosam.pipeline_args.check_tracks``).
        """
        check_frames(frames)
        return self._stream(frames)

    def _stream(self, frames: Iterable[np.ndarray]) -> Iterator[FrameResult]:
        state = _VideoState()
        # SAM on CUDA: each frame's resize starts in a background thread as soon as the frame is read, before the
        # tracker works on it (prepare_ahead)
        with FramePreparer(self.segmenter) as preparer:

            def submit(frame: np.ndarray) -> None:
                state.prepared.append(preparer.submit(frame))

            for frame, decided in self._pushed(frames, submit):
                if frame is not None:
                    state.pending.append(frame)
                    state.next_index += 1
                yield from self._segment_decided(state, decided)
        if state.pending:
            raise RuntimeError(
                f"tracker left {len(state.pending)} frame(s) undecided after finish()"
            )

    def _segment_decided(
        self, state: _VideoState, decided: list[FrameTracks]
    ) -> Iterator[FrameResult]:
        batch = max(1, self.segmenter.config.encoder_batch)
        for start in range(0, len(decided), batch):
            group = [tracks_to_segment(t, self.config) for t in decided[start : start + batch]]
            images, prepared = [], []
            for tracks in group:
                expected = state.next_index - len(state.pending)
                if tracks.frame_index != expected:
                    raise RuntimeError(
                        f"tracker returned frame {tracks.frame_index} but frame {expected} was due; "
                        "a TrackingSession must return every frame once, in order"
                    )
                images.append(state.pending.popleft())
                prepared.append(state.prepared.popleft())
            yield from self._segment_group(images, group, prepared)

    @torch.inference_mode()
    def _segment_group(
        self, images: list[np.ndarray], group: list[FrameTracks], prepared: list[Future | None]
    ) -> list[FrameResult]:
        # only a segmenter that prepares ahead is given what it prepared (a plug-in need not take the argument), and
        # only for frames with tracks: a frame without one is not encoded, so its result is not waited for
        extra = {}
        if any(p is not None for p in prepared):
            ready = [
                p.result() if p is not None and len(t) else None
                for p, t in zip(prepared, group, strict=True)
            ]
            extra = {"prepared": ready}
        outputs = list(
            self.segmenter.segment_batch(
                images,
                [t.boxes_xyxy for t in group],
                scores=[t.scores for t in group],
                track_ids=[t.track_ids for t in group],
                **extra,
            )
        )
        check_masks(self.segmenter, outputs, images, [len(t) for t in group])
        return [
            FrameResult(
                frame_index=t.frame_index,
                image=image,
                track_ids=t.track_ids,
                boxes_xyxy=t.boxes_xyxy,
                scores=t.scores,
                labels=t.labels,
                masks=out.masks,
                mask_scores=out.mask_scores,
                class_probs=t.class_probs,
            )
            for image, t, out in zip(images, group, outputs)
        ]
