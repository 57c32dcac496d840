"""A job's output loop, the one ``uvosam.job``'s run and re-render share: render -> encode -> export (-> cache) ->
zip, one frame at a time.

``produce`` takes the results whatever makes them (the models, or a mask cache) and writes the output video (+
chunks), the exports, the mask cache and the zip under the plan's ``work_dir``, yielding a ``JobProgress`` per frame
and a last one carrying the ``JobResult``. If it fails, also after the last frame (the exports' tables, the zip),
or is closed early (a cancelled job), it deletes what it had written (``job_outputs.discard_outputs``); written into a
staging folder (``uvosam.job_staging``), its result replaces the earlier one only once it is finished.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import replace
from pathlib import Path

from uvosam.export import make_zip
from uvosam.export_types import ExportResult
from uvosam.job_outputs import discard_outputs, open_outputs, overlay_size, render_frame
from uvosam.job_plan import JobPlan
from uvosam.job_staging import Staging
from uvosam.job_types import JobOptions, JobProgress, JobResult
from uvosam.mask_cache import MaskCache
from uvosam.reappearance import Reappearances
from uvosam.types import FrameResult

# the job's own log (a finished video's line): its name stayed when the loop moved out of uvosam.job
logger = logging.getLogger("uvosam.job")


def produce(
    results: Iterable[FrameResult],
    plan: JobPlan,
    options: JobOptions,
    *,
    cache: MaskCache | None,
    cache_root: Path | None = None,
    merge: Mapping[int, int] | None = None,
    staging: Staging | None = None,
) -> Iterator[JobProgress]:
    """Render, encode, export (and cache) a stream of results, then zip the exports: a ``JobProgress`` per frame,
    and a last one carrying the ``JobResult``.

    Args:
        results: the frames' results in frame order (``run_job``: the models'; ``rerender``: the cache's).
        plan: what the loop knows about the video, and where it writes (``plan.work_dir``).
        options: the video's look, its chunks and the export formats.
        cache: where to keep each result (a run with ``JobOptions(cache=True)``), or None.
        cache_root: the ``JobResult.cache_dir`` when ``cache`` is None (a re-render: the cache it read).
        merge: the merge applied to ``results`` (a re-render's), for the export's README.
        staging: where ``plan.work_dir`` is when it is a staging folder (``uvosam.job_staging``): once the zip is
            written, the result replaces the earlier one in its job's folder, and the ``JobResult`` (and the last
            chunk) name the files there.
    """
    info, work_dir = plan.info, plan.work_dir
    work_dir.mkdir(parents=True, exist_ok=True)
    out_w, out_h = overlay_size(info.width, info.height, options.output_max_side)
    overlay_path = work_dir / f"{plan.video_name}_{options.style}.mp4"
    writer, exporter, silent_because = open_outputs(
        plan, options, cache, overlay_path, (out_w, out_h), merge
    )
    # a returning track is marked for ~1 s
    returns = Reappearances(hold_frames=max(1, round(plan.fps)))
    seen: set[int] = set()
    done = objects = 0
    try:
        with writer, exporter:
            for result in results:
                notes = returns.update(result.frame_index, result.track_ids.tolist())
                preview = render_frame(plan.class_names, result, options, (out_w, out_h), notes)
                chunk = writer.write(preview)
                exporter.add(result)
                if cache is not None:
                    cache.append(result)
                done += 1
                seen.update(result.track_ids.tolist())
                objects = len(result)
                elapsed = time.perf_counter() - plan.start
                yield JobProgress(
                    done,
                    max(plan.total, done),
                    elapsed,
                    preview,
                    chunk,
                    objects=objects,
                    tracks_so_far=len(seen),
                )
            last_chunk = writer.close()
            export = exporter.close()
            if cache is not None:  # after every frame: a cache without it is an unfinished run's
                cache.finish(done)
        cache_dir = cache.root if cache is not None else cache_root
        result = _finish(plan, overlay_path, export, done, cache_dir, silent_because)
        if staging is not None:
            staging.promote()
            result = staging.rebased(replace(result, export=staging.rebased(result.export)))
            last_chunk = staging.final_path(last_chunk)
    # failed (also after the last frame, e.g. zipping) or closed early (GeneratorExit): no partial outputs
    except BaseException:
        discard_outputs(writer, exporter, cache)
        raise
    yield JobProgress(
        done,
        done,
        result.seconds,
        None,
        last_chunk,
        result,
        objects=objects,
        tracks_so_far=len(seen),
    )


def _finish(
    plan: JobPlan,
    overlay_path: Path,
    export: ExportResult,
    done: int,
    cache_dir: Path | None,
    silent_because: str | None,
) -> JobResult:
    """Zip the exports of a run that wrote ``done`` frames; its ``JobResult``, logged."""
    zip_path = make_zip(export, plan.work_dir / f"{plan.video_name}_uvosam.zip")
    seconds = time.perf_counter() - plan.start
    result = JobResult(
        info=plan.info,
        video_name=plan.video_name,
        overlay_mp4=overlay_path,
        zip_path=zip_path,
        export=export,
        tracks=export.tracks,
        num_frames=done,
        seconds=seconds,
        cache_dir=cache_dir,
        silent_because=silent_because,
    )
    logger.info(
        "%s: %d frames, %d tracks, %.1f s (%.2f fps)",
        plan.video_name,
        done,
        len(export.tracks),
        seconds,
        result.fps,
    )
    return result
