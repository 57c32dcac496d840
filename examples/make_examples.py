"""Regenerate the example clips in this folder with uvosam's own video I/O.

    python examples/make_examples.py [--source path/to/bigbuckbunny.mp4]

* ``bigbuckbunny_cut.mp4``: seconds 1.0-4.5 of the Big Buck Bunny clip (the bunny climbs out of its
  burrow and stretches), downscaled to 640x360, 25 fps, H.264 crf 23.
* ``synthetic_shapes.mp4``: ``uvosam.testing.moving_shapes`` (48 frames, 320x240, 3 objects,
  seed 0) at 12 fps, H.264 crf 18.
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import numpy as np
from PIL import Image

from uvosam.testing import moving_shapes
from uvosam.video import VideoWriter, iter_frames, probe

HERE = Path(__file__).resolve().parent
DEFAULT_SOURCE = HERE.parent.parent / "shared" / "media" / "bigbuckbunny.mp4"

CUT_START_S = 1.0
CUT_DURATION_S = 3.5
CUT_SIZE = (640, 360)
CUT_CRF = 23


def make_bunny_cut(source: Path, out: Path) -> Path:
    """Cut ``CUT_DURATION_S`` seconds from ``CUT_START_S``, resized to ``CUT_SIZE``."""
    info = probe(source)
    first = round(CUT_START_S * info.fps)
    count = round(CUT_DURATION_S * info.fps)
    if first + count > info.num_frames:
        raise ValueError(f"{source} has {info.num_frames} frames; the cut needs {first + count}.")
    frames = itertools.islice(iter_frames(source, max_frames=first + count), first, None)
    width, height = CUT_SIZE
    with VideoWriter(out, fps=info.fps, width=width, height=height, crf=CUT_CRF) as writer:
        for frame in frames:
            small = Image.fromarray(frame).resize(CUT_SIZE, Image.Resampling.LANCZOS)
            writer.write(np.asarray(small))
    return out


def make_synthetic(out: Path) -> Path:
    """The synthetic moving-rectangles clip used by the tests, as a small mp4."""
    video = moving_shapes(48, height=240, width=320, num_objects=3, seed=0)
    with VideoWriter(out, fps=12, width=320, height=240, crf=18) as writer:
        for frame in video.frames:
            writer.write(frame)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE, help="bigbuckbunny.mp4")
    args = parser.parse_args()
    for path in (
        make_bunny_cut(args.source, HERE / "bigbuckbunny_cut.mp4"),
        make_synthetic(HERE / "synthetic_shapes.mp4"),
    ):
        info = probe(path)
        size_kb = path.stat().st_size / 1024
        print(
            f"{path.name}: {info.width}x{info.height}, {info.num_frames} frames at "
            f"{info.fps:g} fps, {info.duration_s:.2f} s, {size_kb:.0f} KiB"
        )


if __name__ == "__main__":
    main()
