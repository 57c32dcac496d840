"""Test doubles (not product code)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from uvosam.tracker.outputs import DetectorOutput
from uvosam.types import FrameTracks


@dataclass
class ReplaySession:
    tracker: ReplayTracker
    height: int
    width: int
    pushed: int = 0
    emitted: int = 0
    frames_seen: list[np.ndarray] = field(default_factory=list)

    def push(self, frame_rgb: np.ndarray) -> list[FrameTracks]:
        assert frame_rgb.shape == (self.height, self.width, 3), frame_rgb.shape
        self.frames_seen.append(frame_rgb)
        self.pushed += 1
        return self._emit_until(self.pushed - self.tracker.lookahead)

    def finish(self) -> list[FrameTracks]:
        return self._emit_until(self.pushed)

    def _emit_until(self, stop: int) -> list[FrameTracks]:
        out = []
        while self.emitted < stop:
            out.append(self.tracker.frame_tracks(self.emitted))
            self.emitted += 1
        return out


@dataclass
class ReplayTracker:
    """Replays known boxes: ``boxes_xyxy`` (T, K, 4) with NaN rows for absent objects; object k gets
    id k + 1.

    Frame i is decided ``lookahead`` pushes after its own (like a tracker with hindsight).
    """

    boxes_xyxy: np.ndarray
    scores: np.ndarray | None = None
    lookahead: int = 2
    class_names: tuple[str, ...] = ("object",)
    sessions: list[ReplaySession] = field(default_factory=list)

    def new_video(self, *, height: int, width: int) -> ReplaySession:
        session = ReplaySession(self, height, width)
        self.sessions.append(session)
        return session

    def frame_tracks(self, t: int) -> FrameTracks:
        boxes = (
            self.boxes_xyxy[t] if t < len(self.boxes_xyxy) else np.full((0, 4), np.nan, np.float32)
        )
        present = ~np.isnan(boxes).any(axis=1)
        k = np.flatnonzero(present)
        scores = (
            self.scores[k].astype(np.float32)
            if self.scores is not None
            else np.linspace(0.9, 0.5, len(boxes), dtype=np.float32)[k]
        )
        return FrameTracks(
            frame_index=t,
            track_ids=(k + 1).astype(np.int64),
            boxes_xyxy=boxes[k].astype(np.float32),
            scores=scores,
            labels=np.zeros(len(k), np.int64),
        )


@dataclass
class MovingBoxSession:
    tracker: MovingBoxTracker
    height: int
    width: int
    pushed: int = 0
    emitted: int = 0

    def push(self, frame_rgb: np.ndarray) -> list[FrameTracks]:
        assert frame_rgb.shape == (self.height, self.width, 3), frame_rgb.shape
        if self.tracker.delay_s:
            time.sleep(self.tracker.delay_s)
        if self.pushed == self.tracker.fail_at:
            raise self.tracker.error()
        self.pushed += 1
        return self._emit_until(self.pushed - self.tracker.lookahead)

    def finish(self) -> list[FrameTracks]:
        return self._emit_until(self.pushed)

    def _emit_until(self, stop: int) -> list[FrameTracks]:
        out = []
        while self.emitted < stop:
            out.append(self.tracker.frame_tracks(self.emitted, self.height, self.width))
            self.emitted += 1
        return out


@dataclass
class MovingBoxTracker:
    """Boxes for ANY video, deterministic: object k (id k + 1, label k) is a box a quarter of the
    frame wide and a third high, in row k, sliding right by 1/20 of the width per frame (wrapping);
    scores 0.9, 0.6, 0.3...

    ``delay_s`` sleeps in every ``push`` (a slow model, to watch streaming and cancellation);
    pushing frame ``fail_at`` (0-based) raises ``error()`` (a model failing mid-video, e.g. CUDA
    out of memory).
    """

    num_objects: int = 2
    lookahead: int = 1
    delay_s: float = 0.0
    fail_at: int | None = None
    error: Callable[[], BaseException] = lambda: RuntimeError("MovingBoxTracker failure")
    class_names: tuple[str, ...] = ("person", "dog", "car")

    def new_video(self, *, height: int, width: int) -> MovingBoxSession:
        return MovingBoxSession(self, height, width)

    def frame_tracks(self, t: int, height: int, width: int) -> FrameTracks:
        k = np.arange(self.num_objects)
        bw, bh = width / 4, height / 3
        x1 = (t * width / 20 + k * width / 3) % (width - bw)
        y1 = (k % 3) * bh
        boxes = np.stack([x1, y1, x1 + bw, y1 + bh], axis=1).astype(np.float32)
        return FrameTracks(
            frame_index=t,
            track_ids=(k + 1).astype(np.int64),
            boxes_xyxy=boxes,
            scores=(0.9 - 0.3 * k).clip(0.05).astype(np.float32),
            labels=(k % len(self.class_names)).astype(np.int64),
        )


@dataclass
class SliceDetector:
    """Fake detector: returns the next slices of recorded outputs, one frame per input frame."""

    outputs: DetectorOutput
    calls: list[int] = field(default_factory=list)

    def detect_frames(self, frames):
        start = sum(self.calls)
        self.calls.append(len(frames))
        sl = slice(start, start + len(frames))
        return DetectorOutput(
            self.outputs.logits[sl], self.outputs.boxes_cxcywh_norm[sl], self.outputs.embeddings[sl]
        )


def interrupt_text_writes(monkeypatch) -> None:
    """Make every ``Path.write_text`` write half its text, then raise ``KeyboardInterrupt``: a write cut off (Ctrl-C,
    a full disk). Undo with ``monkeypatch.undo()``."""
    write_text = Path.write_text

    def half_then_interrupted(self, data, *args, **kwargs):
        write_text(self, data[: len(data) // 2], *args, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(Path, "write_text", half_then_interrupted)


# an allocation that failed, as each backend raises it (a ``MovingBoxTracker(error=...)`` each): torch's
# OutOfMemoryError on CUDA; a plain RuntimeError from torch on the CPU and on Apple's GPU; numpy's MemoryError
OUT_OF_MEMORY = {
    "cuda": lambda: __import__("torch").OutOfMemoryError(
        "CUDA out of memory. Tried to allocate 2.00 GiB"
    ),
    "cpu": lambda: RuntimeError(
        "DefaultCPUAllocator: can't allocate memory: you tried to allocate 70368744177664 bytes"
    ),
    "mps": lambda: RuntimeError("MPS backend out of memory (MPS allocated: 17.00 GB)"),
    "numpy": lambda: MemoryError("Unable to allocate 8.00 EiB for an array with shape (2, 2**62)"),
}
