"""Export benchmark: what writing a run's exports, and drawing its video, cost the thread that renders and streams.

Synthetic 854x480 frames with N moving disc-shaped masks; ``ExportWriter.add`` with the default options (DAVIS PNGs,
RGBA cut-outs of every track, YTVIS RLE, ...) timed on the calling thread, then ``close()`` (waits for the
background writes). Compared in one run: one background write thread vs the default (min(4, CPU count)), and the
default plus the transparent WebM (``alpha_webm``: VP9 with alpha, encoded by another process). Then
``render`` in each video style (``uvosam.render.STYLES``; boxes and labels on), per frame, and the frames per
second the thread keeps with the default exports plus that style.

    python benchmarks/export.py                  # 5 objects, 60 frames
    python benchmarks/export.py --objects 10 --frames 100
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from uvosam.export import ExportWriter
from uvosam.export_types import ExportOptions
from uvosam.render import STYLES, render
from uvosam.types import FrameResult


def make_results(frames: int, objects: int, height: int, width: int) -> list[FrameResult]:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
    yy, xx = np.mgrid[:height, :width]
    radius = height // 8
    out = []
    for t in range(frames):
        cx = (np.arange(objects) + 0.5) * width / objects + 2 * t % radius
        cy = np.full(objects, height / 2)
        masks = (xx[None] - cx[:, None, None]) ** 2 + (
            yy[None] - cy[:, None, None]
        ) ** 2 < radius**2
        boxes = np.stack([cx - radius, cy - radius, cx + radius, cy + radius], 1).astype(np.float32)
        ones = np.full(objects, 0.9, np.float32)
        out.append(
            FrameResult(
                t,
                image,
                np.arange(1, objects + 1),
                boxes,
                ones,
                np.zeros(objects, int),
                masks,
                ones,
            )
        )
    return out


def time_export(results: list[FrameResult], options: ExportOptions) -> tuple[float, float]:
    """(ms per frame spent in add() on the calling thread, ms spent in close())."""
    height, width = results[0].image.shape[:2]
    with tempfile.TemporaryDirectory() as out:
        writer = ExportWriter(
            out,
            video_name="v",
            class_names=["object"],
            height=height,
            width=width,
            options=options,
            fps=25,
        )
        start = time.perf_counter()
        for result in results:
            writer.add(result)
        added = time.perf_counter()
        writer.close()
        closed = time.perf_counter()
    return 1000 * (added - start) / len(results), 1000 * (closed - added)


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--frames", type=int, default=60)
    p.add_argument("--objects", type=int, default=5)
    p.add_argument("--height", type=int, default=480)
    p.add_argument("--width", type=int, default=854)
    args = p.parse_args()
    results = make_results(args.frames, args.objects, args.height, args.width)
    print(
        f"{args.frames} frames of {args.width}x{args.height}, {args.objects} objects, default ExportOptions "
        f"(DAVIS PNGs, RGBA cut-outs, YTVIS RLE, JSON, CSV); {os.cpu_count()} CPUs"
    )
    rows = {}
    cases = (("1 write thread", ExportOptions(write_threads=1)), ("default threads", ExportOptions()),
             ("+ alpha WebM", ExportOptions(alpha_webm=True)))  # fmt: skip
    for label, options in cases:
        add_ms, close_ms = time_export(results, options)
        rows[label] = add_ms + close_ms / len(results)
        print(
            f"  {label:16s}: add() {add_ms:6.1f} ms/frame on the caller, close() {close_ms:6.0f} ms; "
            f"{rows[label]:6.1f} ms/frame in all"
        )
    ratio = rows["1 write thread"] / rows["default threads"]
    print(
        f"default vs 1 thread: {ratio:.2f}x faster; the caller (the app's render/stream thread) can keep "
        f"{1000 / rows['default threads']:.0f} frames/s of exports"
    )
    print("video styles (render, boxes and labels on):")
    for style in STYLES:
        ms = time_render(results, style)
        total = ms + rows["default threads"]
        print(
            f"  {style:8s}: {ms:5.1f} ms/frame; with the exports {total:5.1f} ms/frame = {1000 / total:3.0f} frames/s"
        )


def time_render(results: list[FrameResult], style: str) -> float:
    """ms per frame of ``render`` in ``style`` (after one untimed frame)."""
    render(results[0], style=style, class_names=["object"])
    start = time.perf_counter()
    for result in results:
        render(result, style=style, class_names=["object"])
    return 1000 * (time.perf_counter() - start) / len(results)


if __name__ == "__main__":
    main()
