"""Per-video export of streamed results: DAVIS PNGs, RGBA cut-outs, mattes, a WebM with alpha, tracks/YTVIS JSON,
CSV, ``run.json`` (what made them: ``uvosam.provenance``) and one zip.

``ExportWriter`` is fed ``FrameResult``s in frame order and writes every per-frame file at once, so memory stays flat
in video length: it keeps only per-track boxes, scores, (for YTVIS) RLE strings spooled to disk and (for YTVIS under
IDOL's MULTI_CLS_ON rule, ``ExportOptions.ytvis_class_thres``) per-track sums of the class probabilities.

The DAVIS PNGs' labels follow the id policy in ``uvosam.export_davis`` (stable and contiguous, at most 20; the top
tracks by score when more appeared). The cut-outs, mattes and the WebM with alpha are written by
``uvosam.export_cutouts``, the tables and the timeline at the export's root by ``uvosam.export_root_files``. Which
files are written: ``uvosam.export_types.ExportOptions``; their formats: ``uvosam.export_formats``.
"""

from __future__ import annotations

import shutil
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from uvosam import atomic_files
from uvosam import export_formats as fmt
from uvosam.background_writes import BackgroundWrites
from uvosam.cleanup import best_effort
from uvosam.cpu_quota import usable_cpus
from uvosam.errors import InputError
from uvosam.export_cutouts import Cutouts
from uvosam.export_davis import DavisPngs, final_labels
from uvosam.export_readme import readme_text
from uvosam.export_root_files import (
    README_TXT,
    RESULTS_JSON,
    TIMELINE_PNG,
    TRACKS_CSV,
    YTVIS_JSON,
    RootFiles,
    write_tables,
)
from uvosam.export_types import ExportOptions, ExportResult
from uvosam.merge_hints import split_groups, suggest_merges
from uvosam.provenance import RUN_JSON, TEXT_ERRORS, export_record, write_run_json
from uvosam.types import FrameResult, TrackSummary, select_tracks, track_problem

if TYPE_CHECKING:
    from typing_extensions import Self  # typing.Self from Python 3.11

FrameNames = Callable[[int], str] | Sequence[str]

DAVIS, CUTOUTS, MATTES = "davis", "cutouts", "mattes"
PER_VIDEO_FOLDERS = (DAVIS, CUTOUTS, MATTES)  # an export's <kind>/<video> folders


def alpha_webm_name(video_name: str) -> str:
    """The file name of a video's WebM with alpha, at its export's root."""
    return f"{video_name}_alpha.webm"


def _export_workers(options: ExportOptions) -> int:
    """The write threads: the user's ``write_threads``, else at most 4 and at most the CPUs this process can keep
    busy (``cpu_quota.usable_cpus``: its cores within the container's CPU quota)."""
    return options.write_threads or min(4, usable_cpus())


class ExportWriter:
    """Writes one video's exports incrementally. Use as a context manager, or call ``close()``.

    Example::

        with ExportWriter(out, video_name="bunny", class_names=["object"], height=h, width=w) as writer:
            for result in pipe(frames):
                writer.add(result)
        zip_path = make_zip(writer.close())

    Args:
        out_dir: folder for this video's export (created). This video's earlier ``davis/<video>``,
            ``cutouts/<video>`` and ``mattes/<video>`` folders there are deleted first (a re-export never mixes
            in files of dropped tracks). Several videos may share one ``out_dir`` for DAVIS PNGs
            (``davis/<seq>/...``, the evaluator's layout); the JSON/CSV/README files at its root are per video.
        video_name: sequence name; used in paths and as ``video_id`` in the JSON files.
        class_names: names behind ``FrameResult.labels``.
        height, width: original frame size; every result must match it.
        frame_names: file stem of frame i, a callable or a sequence (default ``f"{i:05d}"``, DAVIS style).
        options: which formats to write.
        ytvis_video_id: integer ``video_id`` for ``ytvis_results.json`` (default: ``video_name``).
        keep_ids: export only these track ids (None: all), e.g. after the user dropped tracks.
        fps: the frames' rate (> 0), for ``ExportOptions.alpha_webm`` (required with it). sample_aspect: how wide
            the frames' pixels are shown (``VideoInfo.sample_aspect``), marked on the alpha WebM as on the video.
        merge: the merge the results were made with (a re-render's ``{source: target}``), so that the README's
            possible id switches give the whole merge to re-render with (``merge_hints.merge_text``).
        provenance: what made the results, a ``uvosam.provenance`` record (``run_record`` / ``rerender_record``;
            ``run_job`` and ``rerender`` pass one): written as ``run.json`` and summed up in the README's "Made with".
            ``None``: ``run.json`` still comes, saying only the uvosam version, the date and the video's name.
            A re-render's split keeps the possible id switches (``ExportResult.merge_hints``, the README's) from
            joining the parts of a split track again (``merge_hints.split_groups``).
    """

    def __init__(
        self,
        out_dir: str | Path,
        *,
        video_name: str,
        class_names: Sequence[str],
        height: int,
        width: int,
        frame_names: FrameNames | None = None,
        options: ExportOptions = ExportOptions(),
        ytvis_video_id: int | None = None,
        keep_ids: set[int] | None = None,
        fps: float | None = None,
        merge: Mapping[int, int] | None = None,
        provenance: Mapping[str, Any] | None = None,
        sample_aspect: tuple[int, int] = (1, 1),
    ) -> None:
        _check_stem(video_name, "video_name")
        if options.alpha_webm and not (fps and fps > 0):
            raise InputError(
                f"ExportWriter: ExportOptions(alpha_webm=True) needs the frame rate; pass fps=<frames per second> "
                f"(got {fps!r})."
            )
        self.fps = fps
        self.merge = dict(merge or {})
        self.provenance = None if provenance is None else dict(provenance)
        self.out_dir = Path(out_dir)
        self.video_name = video_name
        self.class_names = tuple(class_names)
        self.height, self.width = int(height), int(width)
        self.options = options
        self.ytvis_video_id = video_name if ytvis_video_id is None else int(ytvis_video_id)
        self.keep_ids = None if keep_ids is None else frozenset(int(i) for i in keep_ids)
        self._frame_names = frame_names
        self._records: dict[int, fmt.TrackRecord] = {}
        self._num_frames = 0
        # per-track class-probability sums, for ytvis_results.json under IDOL's MULTI_CLS_ON rule only
        self._sums_probs = options.ytvis and options.ytvis_class_thres is not None
        self._warned_no_probs = False
        self._result: ExportResult | None = None
        # what close() wrote at out_dir's root, for discard()
        self._root_files = RootFiles(self.out_dir)
        self._work = self.out_dir / ".work" / video_name
        self._writes = BackgroundWrites(_export_workers(options))
        self._davis = DavisPngs(
            self._dir(DAVIS),
            self._work,
            height=self.height,
            width=self.width,
            max_objects=options.max_objects,
            compress_level=options.png_compress_level,
            submit=self._writes.submit,
        )
        self._cutouts = Cutouts(
            self._dir(CUTOUTS),
            self._dir(MATTES),
            self.out_dir / alpha_webm_name(video_name),
            height=self.height,
            width=self.width,
            options=options,
            fps=fps,
            sample_aspect=sample_aspect,
            frame_name=self.frame_name,
            submit=self._writes.submit,
        )
        for stale in (self._dir(DAVIS), self._dir(CUTOUTS), self._dir(MATTES), self._work):
            shutil.rmtree(stale, ignore_errors=True)
        self._cutouts.alpha_path.unlink(missing_ok=True)
        (self.out_dir / TIMELINE_PNG).unlink(missing_ok=True)
        self.out_dir.mkdir(parents=True, exist_ok=True)

    # ----------------------------------------------------------------------------------------------- paths
    def frame_name(self, frame_index: int) -> str:
        """File stem of a frame (no extension)."""
        names = self._frame_names
        if names is None:
            name = f"{frame_index:05d}"
        elif callable(names):
            name = names(frame_index)
        else:
            if frame_index >= len(names):
                raise InputError(
                    f"ExportWriter: frame {frame_index} has no name; frame_names has {len(names)} entries. "
                    "Pass one name per frame or a callable."
                )
            name = names[frame_index]
        return _check_stem(str(name), "frame name")

    def _dir(self, kind: str) -> Path:
        return self.out_dir / kind / self.video_name

    def _frame_files(self, result: ExportResult) -> tuple[str, str] | None:
        """The stems of the first and the last of the per-frame files written, for the README: the DAVIS PNGs are
        one per frame, the cut-outs and mattes those of the frames their tracks were seen in; None when none was
        written (no per-frame export asked for, or no track for the cut-outs and mattes alone)."""
        if result.davis_dir is not None and self._num_frames:
            first, last = 0, self._num_frames - 1
        elif (result.cutouts_dir or result.mattes_dir) and result.tracks:
            first = min(t.first_frame for t in result.tracks)
            last = max(t.last_frame for t in result.tracks)
        else:
            return None
        return self.frame_name(first), self.frame_name(last)

    # ------------------------------------------------------------------------------------------ per frame
    def add(self, result: FrameResult) -> None:
        """Write one frame's files. Frames must come in order: ``frame_index`` 0, 1, 2, ...

        Raises:
            ValueError: a frame out of order, of another size, with duplicate track ids, or with tracks that break
                the rules of ``uvosam.types.FrameTracks`` (a box or score that is not finite...: ``track_problem``).
        """
        if self._result is not None:
            raise RuntimeError(
                "ExportWriter.add: the writer is closed; create a new one per video."
            )
        self._check(result)
        if result.masks.dtype != bool:
            result = replace(result, masks=result.masks.astype(bool))
        if self.keep_ids is not None:
            result = select_tracks(result, self.keep_ids)
        t = result.frame_index
        for row, track_id in enumerate(result.track_ids.tolist()):
            self._update_record(track_id, t, result, row)
        if self.options.davis:
            slots = [self._records[i].slot for i in result.track_ids.tolist()]
            self._davis.add(t, self.frame_name(t), slots, result.masks)
        self._cutouts.add(result)
        self._num_frames += 1

    def _check(self, result: FrameResult) -> None:
        if result.frame_index != self._num_frames:
            raise ValueError(
                f"ExportWriter.add: expected frame_index {self._num_frames}, got {result.frame_index}. "
                "Add every frame once, in order (frames without objects too)."
            )
        n, size = len(result), (self.height, self.width)
        if result.image.shape != (*size, 3) or result.masks.shape != (n, *size):
            raise ValueError(
                f"ExportWriter.add: expected image {(*size, 3)} and masks {(n, *size)} at the original size "
                f"given to the writer; got {result.image.shape} and {result.masks.shape}."
            )
        probs = result.class_probs
        if self._sums_probs and probs is not None and probs.shape != (n, len(self.class_names)):
            raise ValueError(
                f"ExportWriter.add: expected class_probs {(n, len(self.class_names))} (one row per track, one "
                f"column per class name given to the writer) in frame {result.frame_index}; got {probs.shape}. "
                "Pass the tracker's class_names, or results of the same tracker."
            )
        if len(np.unique(result.track_ids)) != n:
            raise ValueError(f"ExportWriter.add: duplicate track ids in frame {result.frame_index}")
        # here, not at close(): a box or score that is not finite is no JSON, and would fail the tables last
        problem = track_problem(result)
        if problem is not None:
            raise ValueError(
                f"ExportWriter.add: frame {result.frame_index}'s tracks have {problem}; the exports take finite "
                "boxes, scores in [0, 1] and track ids >= 0 (uvosam.types.FrameTracks): drop such a track from "
                "its frame, or fix what made it"
            )

    def _update_record(self, track_id: int, t: int, result: FrameResult, row: int) -> None:
        rec = self._records.get(track_id)
        if rec is None:
            rec = fmt.TrackRecord(
                track_id=track_id,
                slot=len(self._records) + 1,
                label=int(result.labels[row]),
                first_frame=t,
            )
            self._records[track_id] = rec
        # back after frames without a box: re-identified
        if rec.num_frames and t > rec.last_frame + 1:
            rec.returns += 1
        rec.last_frame = t
        rec.num_frames += 1
        rec.score_sum += float(result.scores[row])
        rec.boxes[t] = [float(v) for v in result.boxes_xyxy[row]]
        if self._sums_probs:
            self._add_probs(rec, result, row)
        if self.options.ytvis:
            if rec.rle_spool is None:
                (self._work / "rle").mkdir(parents=True, exist_ok=True)
                rec.rle_spool = self._work / "rle" / f"{track_id}.jsonl"
            rec.add_rle(t, fmt.encode_rle(result.masks[row].astype(bool, copy=False)))

    def _add_probs(self, rec: fmt.TrackRecord, result: FrameResult, row: int) -> None:
        """Add the row's class probabilities to its track's sums; warn once when a result has none."""
        probs = result.class_probs
        if probs is not None:
            rec.add_probs(probs[row])
        elif len(self.class_names) > 1 and not self._warned_no_probs:
            self._warned_no_probs = True
            warnings.warn(
                f"ExportWriter: frame {result.frame_index} has no class_probs (the tracker gives none, or the "
                "results were read back from a mask cache), so ytvis_results.json cannot follow IDOL's "
                "MULTI_CLS_ON rule for those frames; a track without any is listed once, under its label with "
                "its mean score (if that is over the threshold). Run the pipeline with an IDOLTracker to get "
                "them.",
                stacklevel=4,
            )

    # ---------------------------------------------------------------------------------------------- close
    def summaries(self) -> list[TrackSummary]:
        """Summaries of every track seen so far, in order of first appearance."""
        return [rec.summary(self.class_names) for rec in self._records.values()]

    def davis_labels(self) -> dict[int, int]:
        """``{track_id: DAVIS label}`` under the policy of ``uvosam.export_davis`` (final once all frames are in)."""
        return final_labels(self._records.values(), self.options.max_objects)

    def close(self) -> ExportResult:
        """Finish the DAVIS relabelling, write the JSON/CSV/README files and run.json. Idempotent."""
        if self._result is not None:
            return self._result
        try:
            self._writes.wait()
            self._cutouts.close()
        except BaseException:  # no ffmpeg left waiting for frames, no unfinished WebM
            best_effort("finishing the exports", self._cutouts.abort)
            raise
        davis_labels = self.davis_labels() if self.options.davis else {}
        if self.options.davis and len(self._records) > self.options.max_objects:
            self._davis.relabel(
                davis_labels, self._records, num_frames=self._num_frames, frame_name=self.frame_name
            )
        records, summaries = list(self._records.values()), self.summaries()
        opts, out = self.options, self.out_dir
        timeline = write_tables(
            self._root_files,
            opts,
            records,
            summaries,
            davis_labels,
            num_frames=self._num_frames,
            video_id=self.video_name,
            ytvis_video_id=self.ytvis_video_id,
        )
        self._remove_work()
        result = ExportResult(
            out_dir=out,
            video_name=self.video_name,
            ytvis_video_id=self.ytvis_video_id,
            num_frames=self._num_frames,
            davis_dir=self._dir(DAVIS) if opts.davis else None,
            cutouts_dir=self._dir(CUTOUTS) if opts.cutouts else None,
            mattes_dir=self._dir(MATTES) if opts.mattes else None,
            results_json=out / RESULTS_JSON if opts.results_json else None,
            ytvis_json=out / YTVIS_JSON if opts.ytvis else None,
            tracks_csv=out / TRACKS_CSV if opts.tracks_csv else None,
            readme=out / README_TXT,
            davis_labels=davis_labels,
            tracks=tuple(summaries),
            alpha_webm=self._cutouts.alpha_webm,
            timeline_png=timeline,
            # never the parts of a track the re-render split: that would undo it
            merge_hints=tuple(
                suggest_merges(
                    {r.track_id: r.boxes for r in records},
                    apart=split_groups((self.provenance or {}).get("rerender")),
                )
            ),
            run_json=out / RUN_JSON,
        )
        record = export_record(
            self.provenance,
            video_name=self.video_name,
            num_frames=self._num_frames,
            num_tracks=len(summaries),
        )
        self._root_files.write(RUN_JSON, write_run_json, record)
        readme = readme_text(
            result,
            opts,
            self.merge,
            record,
            size=(self.width, self.height),
            frame_files=self._frame_files(result),
        )
        # a name not UTF-8: \udcff
        self._root_files.write(
            result.readme.name, atomic_files.write_bytes, readme.encode("utf-8", TEXT_ERRORS)
        )
        self._result = result
        return result

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            best_effort("the exports", self._writes.cancel, self._cutouts.abort, self._remove_work)

    def discard(self) -> None:
        """Delete every file this writer wrote after a failed or stopped run, so no partial export is mistaken for a
        complete one: its per-video folders, its WebM and the files ``close`` wrote at the root (also once closed:
        a run can fail after its exports, e.g. zipping them). Files there that it did not write are left alone."""
        self._writes.cancel()
        self._cutouts.abort()
        self._remove_work()
        self._root_files.discard()
        for kind in PER_VIDEO_FOLDERS:
            shutil.rmtree(self._dir(kind), ignore_errors=True)
            _remove_if_empty(self.out_dir / kind)
        _remove_if_empty(self.out_dir)

    def _remove_work(self) -> None:
        shutil.rmtree(self._work, ignore_errors=True)
        if self._work.parent.is_dir() and not any(self._work.parent.iterdir()):
            self._work.parent.rmdir()


def make_zip(export: ExportResult, zip_path: str | Path | None = None) -> Path:
    """One zip with the DAVIS PNGs, cut-outs, mattes, JSON files (run.json too), tracks.csv and README.txt of an
    export.

    Args:
        export: what ``ExportWriter.close`` returned.
        zip_path: where to write (default ``<out_dir>/<video_name>_uvosam.zip``).

    Returns:
        The zip's path. Names inside are relative to ``out_dir`` (``davis/<video>/00000.png``, ``results.json``).
    """
    path = (
        Path(zip_path)
        if zip_path is not None
        else export.out_dir / f"{export.video_name}_uvosam.zip"
    )
    return fmt.write_zip(path, export.out_dir, export.entries())


def _check_stem(name: str, what: str) -> str:
    if not name or name in (".", "..") or "/" in name or "\\" in name or "\x00" in name:
        raise InputError(
            f"ExportWriter: {what} must be a plain file name without '/', got {name!r}"
        )
    return name


def _remove_if_empty(folder: Path) -> None:
    if folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()
