"""Render / export benchmark: the per-frame work a run does on its main thread, besides encoding the video.

``render`` in every style (``uvosam.render.STYLES``; boxes and tags on) and ``ExportWriter.add`` with the default
options (DAVIS PNGs, RGBA cut-outs, YTVIS RLE: its PNG encoding runs on background threads, which ``close()`` waits
for) on 3 objects, at 854x480 and 1280x720, for two kinds of masks: ``blob`` (filled ellipses, what a trained SAM
gives) and ``noise`` (each mask 30% of the frame's pixels at random, disjoint: a worst case, finer-grained than a
random-weight SAM's blotchy masks). Prints ms per frame.

    python benchmarks/render.py
    python benchmarks/render.py --frames 40 --styles overlay
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._frame_costs import export_seconds, render_seconds
from benchmarks._machine import load_text
from uvosam.render import STYLES
from uvosam.types import FrameResult

SIZES = ((854, 480), (1280, 720))
KINDS = ("blob", "noise")


def make_results(
    kind: str, frames: int, width: int, height: int, objects: int = 3
) -> list[FrameResult]:
    """``frames`` results of one random image with ``objects`` side-by-side boxes, a mask of ``kind`` in each."""
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
    yy, xx = np.mgrid[:height, :width]
    step = width / objects
    out = []
    for t in range(frames):
        x0 = (np.arange(objects) * step + step / 8 + t % 7).astype(np.float32)
        boxes = np.stack(
            [x0, np.full(objects, height / 4), x0 + step * 0.7, np.full(objects, height * 0.8)], 1
        ).astype(np.float32)
        masks = np.zeros((objects, height, width), bool)
        noise = rng.random((height, width))
        for k, (bx0, by0, bx1, by1) in enumerate(boxes):
            if kind == "blob":
                cx, cy, rx, ry = (bx0 + bx1) / 2, (by0 + by1) / 2, (bx1 - bx0) / 2, (by1 - by0) / 2
                masks[k] = ((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 < 1
            else:  # disjoint, as the segmenter's default overlap="score" leaves them
                masks[k] = (noise >= 0.3 * k) & (noise < 0.3 * (k + 1))
        scores = np.full(objects, 0.9, np.float32)
        labels = np.zeros(objects, np.int64)
        ids = np.arange(1, objects + 1)
        out.append(FrameResult(t, image, ids, boxes, scores, labels, masks, scores))
    return out


def time_render(results: list[FrameResult], style: str) -> float:
    """ms per frame of ``render`` in ``style``: the median frame (a shared machine's hiccups fall outside it)."""
    return 1000 * float(np.median(render_seconds(results, style)))


def time_export(results: list[FrameResult]) -> tuple[float, float, float]:
    """(ms per frame in ``ExportWriter.add`` on the caller, its CPU time there, ms per frame in all with
    ``close()``)."""
    spent = export_seconds(results)
    per_frame = 1000 / len(results)
    return (
        per_frame * spent.add_s,
        per_frame * spent.add_cpu_s,
        per_frame * (spent.add_s + spent.close_s),
    )


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--frames", type=int, default=20)
    p.add_argument("--styles", nargs="+", default=list(STYLES), choices=STYLES)
    args = p.parse_args()
    print(f"{args.frames} frames, 3 objects, ms per frame; {load_text()}")
    for width, height in SIZES:
        for kind in KINDS:
            results = make_results(kind, args.frames, width, height)
            times = "  ".join(f"{s} {time_render(results, s):5.1f}" for s in args.styles)
            add_ms, cpu_ms, all_ms = time_export(results)
            print(
                f"{width}x{height} {kind:5s}: render {times}  | export add() {add_ms:5.1f} "
                f"(CPU {cpu_ms:5.1f}; with close() {all_ms:5.1f})"
            )


if __name__ == "__main__":
    main()
