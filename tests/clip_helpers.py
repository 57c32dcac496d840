"""Clips the tests write: frames as an H.264 mp4, and moving-shapes clips (``uvosam.testing.moving_shapes``).
Imports no app or Gradio code (``app_helpers`` re-exports ``write_clip``). Not product code."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from uvosam.testing import moving_shapes
from uvosam.video import VideoWriter


def write_video(path: Path, frames: Sequence[np.ndarray], fps: float = 10, **writer_kwargs) -> Path:
    """``frames`` ((H, W, 3) uint8 RGB, all one size) as an mp4 at ``path``; ``writer_kwargs`` go to
    ``VideoWriter`` (``crf``, ``sample_aspect``, ...). Returns ``path``."""
    height, width = frames[0].shape[:2]
    with VideoWriter(path, fps=fps, width=width, height=height, **writer_kwargs) as writer:
        for frame in frames:
            writer.write(frame)
    return path


def write_clip(
    path: Path,
    frames: int,
    width: int,
    height: int,
    fps: float = 8,
    *,
    num_objects: int = 2,
    seed: int | None = None,
) -> Path:
    """A moving-shapes clip of ``num_objects`` objects (H.264 mp4); ``seed`` (default: ``frames``) picks its
    colours. Returns ``path``."""
    video = moving_shapes(
        frames,
        height=height,
        width=width,
        num_objects=num_objects,
        seed=frames if seed is None else seed,
    )
    return write_video(path, video.frames, fps)


BUNNY = Path(__file__).resolve().parents[1] / "examples" / "bigbuckbunny_cut.mp4"
"""The app's example: a cut of Big Buck Bunny (CC-BY 3.0, Blender Foundation, www.bigbuckbunny.org), 640x360,
25 fps, 88 frames."""


def write_bunny(path: Path, width: int, height: int, frames: int = 4) -> Path:
    """``frames`` frames of Big Buck Bunny (``BUNNY``; CC-BY 3.0, Blender Foundation) from its second 1, scaled by
    ffmpeg to ``width`` x ``height`` (e.g. a phone's 2560x1440), as an H.264 mp4 at ``path`` (no sound). Returns
    ``path``."""
    from proc import ffmpeg

    ffmpeg("-ss", "1", "-i", BUNNY, "-frames:v", str(frames), "-vf", f"scale={width}:{height}", "-an",
           "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", path)  # fmt: skip
    return path
