"""Export benchmark: what writing a run's exports, and drawing its video, cost the thread that renders and streams.

Synthetic 854x480 frames with N moving disc-shaped masks; ``ExportWriter.add`` with the default options (DAVIS PNGs,
RGBA cut-outs of every track, YTVIS RLE, ...) timed on the calling thread, then ``close()`` (waits for the
background writes). Compared in one run: one background write thread vs the default (min(4, CPU count)), and the
default plus the transparent WebM (``alpha_webm``: VP9 with alpha, encoded by another process). Then
``render`` in each video style (``uvosam.render.STYLES``; boxes and labels on), per frame, and the frames per
second the thread keeps with the default exports plus that style.

Last, churning ids (a long video whose objects get new ids every ``--churn-every`` frames, as after many cuts): the
exports' frames per second over the first and the last ``--churn-window`` frames, which should be about the same
(cost per frame does not grow with the video's length or the tracks seen), and the files and bytes written.

    python benchmarks/export.py                  # 5 objects, 60 frames; churn: 1000 frames of 96x64
    python benchmarks/export.py --objects 10 --frames 100
    python benchmarks/export.py --churn-frames 4000   # the soak test's 240 tracks
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._frame_costs import export_seconds, render_seconds
from benchmarks._machine import load_text
from uvosam.export import ExportWriter
from uvosam.export_types import ExportOptions
from uvosam.render import STYLES
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
    spent = export_seconds(results, options, fps=25)
    return 1000 * spent.add_s / len(results), 1000 * spent.close_s


def churn_results(frames: int, objects: int, every: int) -> list[FrameResult]:
    """96x64 frames whose ``objects`` tracks are replaced by new ids every ``every`` frames."""
    out = make_results(frames, objects, 64, 96)
    return [replace(r, track_ids=r.track_ids + objects * (r.frame_index // every)) for r in out]


def time_churn(results: list[FrameResult], window: int) -> tuple[float, float, int, int]:
    """(frames/s of the first ``window`` frames, of the last ``window``, files written, their bytes) with the default
    exports; a frame's time is its ``add()`` on the caller, held back by the bounded background writes."""
    with tempfile.TemporaryDirectory() as out:
        writer = ExportWriter(out, video_name="v", class_names=["object"], height=64, width=96)
        times = []
        for result in results:
            start = time.perf_counter()
            writer.add(result)
            times.append(time.perf_counter() - start)
        writer.close()
        files = [p for p in Path(out).rglob("*") if p.is_file()]
        size = sum(p.stat().st_size for p in files)
    return window / sum(times[:window]), window / sum(times[-window:]), len(files), size


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--frames", type=int, default=60)
    p.add_argument("--objects", type=int, default=5)
    p.add_argument("--height", type=int, default=480)
    p.add_argument("--width", type=int, default=854)
    p.add_argument("--churn-frames", type=int, default=1000, help="0: no churn case")
    p.add_argument("--churn-every", type=int, default=50)
    p.add_argument("--churn-window", type=int, default=100)
    args = p.parse_args()
    results = make_results(args.frames, args.objects, args.height, args.width)
    print(
        f"{args.frames} frames of {args.width}x{args.height}, {args.objects} objects, default ExportOptions "
        f"(DAVIS PNGs, RGBA cut-outs, YTVIS RLE, JSON, CSV); {load_text()}"
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
    if args.churn_frames:
        print_churn(args.churn_frames, args.churn_every, args.churn_window)


def print_churn(frames: int, every: int, window: int) -> None:
    objects = 3
    tracks = objects * -(-frames // every)
    early, late, files, size = time_churn(
        churn_results(frames, objects, every), min(window, frames)
    )
    print(
        f"churning ids: {frames} frames of 96x64, {objects} objects with new ids every {every} frames ({tracks} "
        f"tracks), default exports:\n  first {window} frames {early:.0f} frames/s, last {window} {late:.0f} "
        f"frames/s (late/early {late / early:.2f}); {files} files, {size / 1e6:.1f} MB"
    )


def time_render(results: list[FrameResult], style: str) -> float:
    """ms per frame of ``render`` in ``style``: the mean frame (after one untimed frame)."""
    return 1000 * sum(render_seconds(results, style)) / len(results)


if __name__ == "__main__":
    main()
