"""The per-frame timings ``benchmarks/render.py`` and ``benchmarks/export.py`` share: ``render`` in one video style,
and ``ExportWriter.add`` on the calling thread then ``close()`` (which waits for the background writes). Each script
makes its own frames and prints its own statistic."""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass

from uvosam.export import ExportWriter
from uvosam.export_types import ExportOptions
from uvosam.render import render
from uvosam.types import FrameResult


def render_seconds(results: list[FrameResult], style: str) -> list[float]:
    """Wall seconds of ``render`` in ``style`` (boxes and tags on), one per result, after one untimed frame."""
    render(results[0], style=style, class_names=["object"])
    times = []
    for result in results:
        start = time.perf_counter()
        render(result, style=style, class_names=["object"])
        times.append(time.perf_counter() - start)
    return times


@dataclass(frozen=True)
class ExportSeconds:
    """Seconds ``ExportWriter`` took over all the results: ``add_s`` wall and ``add_cpu_s`` CPU time of the calling
    thread in ``add()``, ``close_s`` wall time in ``close()``."""

    add_s: float
    add_cpu_s: float
    close_s: float


def export_seconds(
    results: list[FrameResult],
    options: ExportOptions = ExportOptions(),
    *,
    fps: float | None = None,
) -> ExportSeconds:
    """Every result through ``ExportWriter.add`` with ``options`` (``fps``: the writer's), then ``close()``, into a
    temporary folder."""
    height, width = results[0].image.shape[:2]
    with tempfile.TemporaryDirectory() as out:
        writer = ExportWriter(
            out,
            video_name="v",
            class_names=["object"],
            height=height,
            width=width,
            options=options,
            fps=fps,
        )
        start, cpu = time.perf_counter(), time.thread_time()
        for result in results:
            writer.add(result)
        added, cpu = time.perf_counter(), time.thread_time() - cpu
        writer.close()
        closed = time.perf_counter()
    return ExportSeconds(add_s=added - start, add_cpu_s=cpu, close_s=closed - added)
