"""One video, end to end: decode -> track + segment -> video (+ ~1 s chunks) -> exports -> zip.

* ``run_job`` is a generator used by the CLI (with a progress bar) and by the Gradio app (which streams the
  chunks): it yields a ``JobProgress`` after every frame and a last one carrying the ``JobResult``.
* Everything it writes goes under ``work_dir``; per-frame memory is flat in video length (frames are decoded,
  segmented, rendered, encoded and exported one at a time).
* A run that fails, or whose generator is closed (a cancelled Gradio job), stops ffmpeg and deletes what it had
  written (video, chunks, exports, mask cache), also when it fails after the last frame (writing the exports or the
  zip): no partial output is left to pass for a complete one.
* In a folder that holds an earlier result, a job writes into a staging folder there and replaces that result whole
  (its files only: its videos of every style, exports, zip and, for a run, cache) once it has finished; a job that
  does not finish leaves it exactly as it was (``uvosam.job_staging``).
* One job at a time writes to a folder: a second one into it is refused at once (``ValueError``,
  ``uvosam.job_locks``).
* With ``JobOptions(cache=True)`` the run also keeps a per-frame mask cache (``uvosam.mask_cache``), and
  ``rerender`` rebuilds the video, exports and zip from it for a subset of tracks, tracks split or merged, or in
  another style (``JobOptions.style``), without running any model.
* Both go through one loop (``uvosam.job_loop.produce``: render -> encode -> export -> zip), so a re-render writes
  what a run would have, drawn on the cache's frames (JPEG, quality 95: the masks, ids and tables are the run's
  exactly; the pixels of the video and of the cut-outs' colour may differ by a few levels).
* What the loop knows about the video (``JobPlan``), and what a run keeps in the cache so that a re-render knows it
  again, are in ``uvosam.job_plan``; the video and exports it writes frame by frame are opened, drawn and discarded
  by ``uvosam.job_outputs``; ``rerender``'s track edits (``keep_ids``, ``merge``, ``split``) are checked by
  ``uvosam.job_args``.
* ``JobOptions``, ``JobProgress`` and ``JobResult`` are defined in ``uvosam.job_types`` and importable from here too
  (the README names them here).
* Every export says what made it (``run.json`` and the README's "Made with", ``uvosam.provenance``): a run records
  the pipeline's models and its settings, and keeps that record in the mask cache; a re-render carries it over and
  adds what it changed (split, kept tracks, merge, min_score).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Generator, Iterable, Iterator, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from uvosam.config import config_or, is_number
from uvosam.errors import InputError
from uvosam.job_args import merge_map, split_map, track_ids
from uvosam.job_locks import FolderLock
from uvosam.job_loop import produce
from uvosam.job_plan import (
    JobPlan,
    cache_meta,
    check_run_meta,
    drawing,
    info_from_meta,
    job_name,
    source_digest,
    video_record,
)
from uvosam.job_staging import CACHE_FOLDER, Staging, rerender_keeps
from uvosam.job_types import JobOptions, JobProgress, JobResult
from uvosam.made_folders import made_for
from uvosam.mask_cache import MaskCache, has_cache
from uvosam.pipeline import UVOSAM
from uvosam.portable_names import recorded_name, safe_name
from uvosam.prefetch import MODELS_THREAD, prefetch
from uvosam.provenance import rerender_record, run_record
from uvosam.track_edit import (
    merge_tracks,
    resolve_edits,
    split_tracks,
)
from uvosam.types import FrameResult, select_tracks
from uvosam.video import VideoInfo, iter_probed, probe

logger = logging.getLogger(__name__)


# the job's API, as the README names it: the types are uvosam.job_types', used here and importable from here
__all__ = ["JobOptions", "JobProgress", "JobResult", "rerender", "rerender_iter", "run_job"]


def run_job(
    pipe: UVOSAM,
    source: str | Path,
    work_dir: str | Path,
    options: JobOptions | None = None,
    *,
    weight_files: Mapping[str, Mapping[str, str]] | None = None,
) -> Generator[JobProgress, None, None]:
    """Process one video (file or frame folder) into ``work_dir``.

    ``weight_files``: the models' local files, path and SHA-256, for ``run.json``
    (``uvosam.provenance.weight_files_record``; ``uvosam segment`` gives them).

    Raises (at the first ``next``): ``FileNotFoundError``, ``VideoReadError``, ``VideoLimitError``
    for bad input.
    """
    options = _options(options)
    start = time.perf_counter()
    info = probe(
        source, limits=options.limits, stride=options.stride, max_frames=options.max_frames,
        fit_side=options.fit_side,
    )  # fmt: skip
    total = info.num_output_frames(stride=options.stride, max_frames=options.max_frames)
    plan = JobPlan(
        info=info,
        video_name=job_name(info, options.video_name),
        frame_names=info.frame_names[:: options.stride][:total],
        total=total,
        fps=info.fps / options.stride,
        class_names=tuple(pipe.class_names),
        work_dir=Path(work_dir).expanduser(),
        start=start,
    )
    record = run_record(
        pipe, video=video_record(plan), stride=options.stride, max_frames=options.max_frames,
        fit_side=options.fit_side, output=_output_record(options), weight_files=weight_files,
    )  # fmt: skip
    plan = replace(plan, record=record)
    # into a staging folder when work_dir holds an earlier result, which this one replaces when it is finished (an
    # earlier cache too: it would no longer match the folder's outputs, also when this run keeps none)
    with made_for(plan.work_dir):
        yield from _run(pipe, info, plan, options)


def _run(
    pipe: UVOSAM, info: VideoInfo, plan: JobPlan, options: JobOptions
) -> Generator[JobProgress, None, None]:
    """``run_job``'s work, once planned."""
    staging = Staging(plan.work_dir, plan.video_name, source=info.path)
    try:
        cache = None
        if options.cache:
            meta = cache_meta(plan, options.stride, drawing(options))
            cache = MaskCache(staging.dir / CACHE_FOLDER, meta=meta)
        # decoding runs in a background thread, a few frames ahead of the models (memory stays bounded); the models
        # in their own thread too: rendering, encoding and export of frame t overlap the models' work on frame
        # t + 1 (two results in flight at most, so memory stays flat)
        frames = prefetch(iter_probed(info, stride=options.stride, max_frames=options.max_frames))
        results = prefetch(_closing(pipe(frames), frames), depth=2, name=MODELS_THREAD)
        try:
            yield from produce(
                results, replace(plan, work_dir=staging.dir), options, cache=cache, staging=staging
            )
        finally:
            results.close()  # stops the model thread, which closes the decoder: also when the consumer stops early
    finally:
        staging.close()  # a run that did not finish: its files go; and work_dir is free for another job


def _closing(
    results: Iterator[FrameResult], source: Generator[np.ndarray, None, None]
) -> Generator[FrameResult, None, None]:
    """``results``, closing ``source`` (the decoder) in the same thread when done or closed."""
    try:
        yield from results
    finally:
        source.close()


def rerender_iter(
    cache_dir: str | Path,
    work_dir: str | Path,
    *,
    keep_ids: Iterable[int] | None = None,
    merge: Mapping[int, int] | None = None,
    options: JobOptions | None = None,
    class_names: Sequence[str] | None = None,
    min_score: float = 0.0,
    split: Mapping[int, Sequence[int]] | None = None,
    keep_split_parts: bool = False,
) -> Generator[JobProgress, None, None]:
    """``rerender`` step by step: a ``JobProgress`` per frame, the last one carries the result."""
    if not is_number(min_score) or not 0.0 <= min_score <= 1.0:
        raise InputError(
            f"rerender: min_score must be in [0, 1] (a tracker score); got {min_score!r}"
        )
    options = _options(options)
    keep_ids, merge, split = track_ids(keep_ids), merge_map(merge), split_map(split)
    start = time.perf_counter()
    root = _cache_root(Path(cache_dir).expanduser())
    work = Path(work_dir).expanduser()
    into_run = root.parent.resolve() == work.resolve()
    held = _hold_run(root, into_run)
    try:
        cache = _finished_cache(root)
        meta = cache.info.meta
        info = info_from_meta(meta["info"])
        replaced = not _same_source(info, meta)  # another file's sound would not match the frames
        plan = JobPlan(
            info=info,
            # the run's name as it recorded it (``recorded_name``): its files are replaced, not left beside
            video_name=safe_name(options.video_name)
            if options.video_name
            else recorded_name(meta["video_name"]),
            frame_names=tuple(meta["frame_names"]),
            total=cache.info.num_frames,
            fps=float(meta["fps"]),
            class_names=tuple(class_names if class_names is not None else meta["class_names"]),
            work_dir=work,
            start=start,
            source_replaced=replaced,
        )
        # the run's track ids read once, for every edit
        edits = resolve_edits(
            cache.iter_track_ids() if keep_ids or merge or split else (),
            keep_ids=keep_ids, merge=merge, split=split, keep_split_parts=keep_split_parts,
            stride=int(meta["stride"]),
        )  # fmt: skip
        record = rerender_record(
            meta["provenance"], video=video_record(plan), keep_ids=edits.keep_ids, merge=merge,
            min_score=min_score, output=_output_record(options), split=edits.new_ids,
        )  # fmt: skip
        plan = replace(plan, record=record)
        results = cache.iter_results(keep_ids=edits.read)
        if split:  # first: keep and merge name the ids once split
            results = (split_tracks(r, split, edits.new_ids) for r in results)
            if edits.keep is not None:
                results = (select_tracks(r, edits.keep) for r in results)
        # per frame, as PipelineConfig.min_score: before the merge, on the tracker's own scores
        if min_score > 0:
            results = (_scoring_at_least(r, min_score) for r in results)
        if merge:
            results = (merge_tracks(r, merge, edits.labels) for r in results)
        # as a run's: one into a new folder that fails removes it, and a full disk's error names it
        with made_for(plan.work_dir):
            staging = Staging(
                plan.work_dir, plan.video_name, keep=rerender_keeps(cache.root, plan.work_dir),
                folder=held if into_run else None,
            )  # fmt: skip
            try:
                yield from produce(
                    results, replace(plan, work_dir=staging.dir), options, cache=None, cache_root=cache.root,
                    merge=merge, staging=staging,
                )  # fmt: skip
            finally:
                staging.close()
    finally:
        if held is not None:
            held.release()  # (once ``Staging`` has let go of it: nothing to do)


def _options(options: object) -> JobOptions:
    return config_or(options, JobOptions(), "JobOptions(stride=2)", what="options")


def _same_source(info: VideoInfo, meta: Mapping[str, Any]) -> bool:
    """Whether the file at the run's source path is still the one the run read: the ``source_size`` and
    ``source_digest`` (``job_plan.source_digest``) its cache ``meta`` recorded. A cache without them (a frame
    folder's), or no file there: yes (``job_outputs.source_sound`` says when the file is gone)."""
    size, digest = meta["source_size"], meta["source_digest"]
    if size is None or not info.path.is_file():
        return True
    now = info.path.stat().st_size
    if now == size and digest == source_digest(info.path):
        return True
    logger.info(
        "%s is not the file the run read (%d bytes; it read %d bytes%s): the video is made without its sound",
        info.path, now, size, ", other content" if now == size else "",
    )  # fmt: skip
    return False


def _hold_run(root: Path, into_run: bool) -> FolderLock | None:
    """The lock on the run's folder that holds the mask cache at ``root``, held while a re-render reads the cache
    frame by frame: a job into the folder (which would replace the cache) is refused, and so is the re-render while
    one writes there. Shared with other re-renders of it; exclusive for one into it (``into_run``: ``Staging``
    holds it on); none for a cache that is no run's ``cache/`` (no job replaces it)."""
    if into_run:
        return FolderLock(root.parent)
    return FolderLock(root.parent, shared=True) if root.name == CACHE_FOLDER else None


def _cache_root(cache_dir: Path) -> Path:
    """The mask cache of a ``run_job`` at ``cache_dir`` or in the job's folder there (``cache/``); ``ValueError``
    (and nothing created) if there is none."""
    if not has_cache(cache_dir) and has_cache(cache_dir / CACHE_FOLDER):
        cache_dir = cache_dir / CACHE_FOLDER
    if not has_cache(cache_dir):
        raise InputError(
            f"rerender: {cache_dir} is not a finished run_job cache (no meta.json there); "
            "run the job with JobOptions(cache=True) first."
        )
    return cache_dir


def _finished_cache(cache_dir: Path) -> MaskCache:
    """The mask cache at ``cache_dir`` (``_cache_root``), once its run finished (else ``ValueError``)."""
    cache = MaskCache(cache_dir)
    check_run_meta(cache_dir, cache.info.meta)
    unfinished = cache_unfinished(cache)
    if unfinished is not None:
        raise InputError(
            f"rerender: {unfinished}; run the video again with JobOptions(cache=True)."
        )
    return cache


def cache_unfinished(cache: MaskCache) -> str | None:
    """Why ``cache`` cannot be re-rendered (its run wrote no frames, or did not finish), or ``None`` when it can.

    The caller adds the advice in its own terms (``JobOptions(cache=True)`` in Python, ``--cache`` on the CLI)."""
    if cache.info.height is None:
        return f"{cache.root} is not a finished run_job cache (no frames)"
    if cache.finished:
        return None
    held = len(cache)
    if cache.info.num_frames is None:
        return (
            f"the run that wrote {cache.root} did not finish (it holds {held} frames but no end mark: the run was "
            "killed, or is still going), so its masks may not cover the whole video"
        )
    return f"{cache.root} holds {held} of the {cache.info.num_frames} frames its run wrote"


def _scoring_at_least(result: FrameResult, min_score: float) -> FrameResult:
    """The frame without the tracks whose score in it is below ``min_score``."""
    return select_tracks(result, set(result.track_ids[result.scores >= min_score].tolist()))


def rerender(
    cache_dir: str | Path,
    work_dir: str | Path,
    *,
    keep_ids: Iterable[int] | None = None,
    merge: Mapping[int, int] | None = None,
    options: JobOptions | None = None,
    class_names: Sequence[str] | None = None,
    min_score: float = 0.0,
    split: Mapping[int, Sequence[int]] | None = None,
    keep_split_parts: bool = False,
) -> JobResult:
    """Rebuild the overlay video, the exports and the zip of a cached run WITHOUT running any model.

    Args:
        cache_dir: ``JobResult.cache_dir`` of a ``run_job`` made with ``JobOptions(cache=True)``, or the job's
            ``work_dir``, which holds it (``<work_dir>/cache``; as ``uvosam rerender`` takes the run's folder).
        work_dir: where the new files go (may be the original job's folder: once the re-render has finished,
            its result replaces the run's there, videos of every style, exports and zip; the cache is only read,
            and stays). In another run's folder, the mask cache there goes with the result it replaces.
        keep_ids: track ids to keep (None: all; each must be a track of the run, or of a ``split``'s new ones).
            Dropped tracks are absent from the overlay, the DAVIS PNGs (labels are re-assigned among the kept
            tracks), cut-outs, mattes, JSON and CSV.
        merge: ``{source_id: target_id}``: each source track becomes part of its target (masks joined, the
            target's id and class; ``uvosam.track_edit``); or the same as text, ``"3>1, 5>1"``
            (``track_edit.parse_merge``, as ``uvosam rerender --merge`` and the app take it). ``keep_ids`` names
            the ids before the merge; a merged track is kept when its target is (its sources follow it, kept or
            not: ``track_edit.kept_tracks``).
        options: style, drawing, output size, chunks, export formats and sound; ``stride``, ``max_frames``,
            ``limits``, ``cache`` and ``fit_side`` are ignored (the cached frames are what they are). The sound
            (``audio``) is read from the source file the run read, where the cache says it was; a cache of a
            frame folder or of a file since moved, deleted (a downloaded link's, say) or replaced by another (of
            another size) gives a silent video (``JobResult.silent_because`` says which).
        class_names: names behind the labels (default: those recorded in the cache).
        min_score: leave a track out of each frame where its tracker score is below this (as
            ``PipelineConfig.min_score`` does in a run; before any merge): low-confidence frames go, the rest stay.
            Only raising the run's threshold changes anything: frames below the run's own were never segmented.
        split: ``{track_id: [frames]}``: from each frame on, the track's rows (mask, box, scores, class) get a new
            id (one object's track that went on with another, after a scene cut or a crossing); or the same as
            text, ``"3@120, 5@40"`` (``track_edit.parse_split``, as ``uvosam rerender --split`` and the app take
            it). Frames count as tracks.csv and the timeline count them (the processed frames, from 0). The new
            ids are the next after the run's largest, one per split, in the order of the split frames, then of
            the track ids, however the split is written (``track_edit.split_new_ids``: ``{3: [120, 300], 5: [40]}``
            in a run up to id 7 makes 5 from frame 40 on 8, 3 from 120 on 9, 3 from 300 on 10;
            ``JobResult.tracks`` and run.json's ``rerender.split_ids`` list them). Applied first: ``keep_ids``
            and ``merge`` name the ids once split (a new id not in ``keep_ids`` is dropped), so a split and a
            merge repair an id switch in one re-render (``split={3: [120]}, merge={8: 5}`` in a run up to id 7).
        keep_split_parts: ``keep_ids`` name the run's tracks (before the split), each kept with the parts the
            split gives new ids (as the app's *Tracks to keep*, which lists the run's ids).

    Returns:
        The new ``JobResult`` (its ``cache_dir`` is ``cache_dir``, so it can be re-rendered again).

    Raises:
        ValueError: ``cache_dir`` holds no finished ``run_job`` cache (none: nothing is created there; one whose
            run was killed before its end, ``MaskCache.finished``; or one of another version's layout,
            ``mask_cache.CACHE_FORMAT``: the run must be made again); ``keep_ids`` names a track not in the run;
            ``min_score`` is not in [0, 1];
            ``merge`` names a track not in the run,
            a track merged into itself or a chain (``check_merge``), or a ``merge`` text ``parse_merge`` cannot read;
            ``split`` names a track not in the run, a frame outside the track's span or one of its frames twice,
            or makes a track without any frame (``check_split``), or is text ``parse_split`` cannot read, or
            holds more than ``track_edit.MAX_SPLITS`` splits;
            a job is writing to the run's folder now (its cache would change as it is read), or, for a re-render
            into that folder, another re-render reads it (``job_locks.FolderLock``).
        TypeError: ``keep_ids`` that is no list of track ids (a bare ``1``: write ``[1]``), a ``merge`` or
            ``split`` that is no mapping or text, ``options`` that are no ``JobOptions``.
    """
    steps = rerender_iter(
        cache_dir,
        work_dir,
        keep_ids=keep_ids,
        merge=merge,
        options=options,
        class_names=class_names,
        min_score=min_score,
        split=split,
        keep_split_parts=keep_split_parts,
    )
    for step in steps:
        if step.result is not None:
            return step.result
    raise RuntimeError(f"rerender: {cache_dir} produced no result")


def _output_record(options: JobOptions) -> dict[str, Any]:
    """The ``output`` entry of ``run.json``: how the video looks (never the masks)."""
    return {"style": options.style, "output_max_side": options.output_max_side}
