"""What an export writes (``ExportOptions``: which formats, and how) and what it wrote (``ExportResult``: the paths,
the DAVIS labels, the track summaries, and the list of what goes in its zip).

Written by ``uvosam.export.ExportWriter``; plain frozen dataclasses, no I/O but ``ExportResult.entries``' existence
checks.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from uvosam.colours import PALETTE_MAX_LABEL
from uvosam.config import check_count, check_fields, check_flag, is_integer, is_number
from uvosam.errors import InputError
from uvosam.merge_hints import MergeHint
from uvosam.types import TrackSummary

DAVIS_MAX_OBJECTS = 20


@dataclass(frozen=True)
class ExportOptions:
    """Which files ``ExportWriter`` writes, and how.

    Attributes:
        davis: DAVIS palette PNGs ``davis/<video>/<frame>.png``.
        cutouts: RGBA cut-outs ``cutouts/<video>/<track_id>/<frame>.png``.
        mattes: black/white alpha mattes ``mattes/<video>/<track_id>/<frame>.png``.
        results_json: the release's tracks JSON ``results.json`` (boxes).
        ytvis: YouTube-VIS results ``ytvis_results.json`` (COCO RLE masks).
        tracks_csv: ``tracks.csv`` (one row per track).
        full_sequences: a track's folder has a cut-out/matte for every frame of its span, its first to its last
            frame (a blank one, transparent / black, where it is absent in between), so editors import a gap-free
            image sequence; none before its first or after its last frame (the files keep the video's frame
            numbers). Files: the sum of the tracks' spans. False: only the frames the track was seen in.
        cutout_keep_frame_rgb: keep the whole frame's RGB in the cut-outs (alpha still = mask); larger files,
            but a matte can be grown/feathered in an editor. False: RGB = 0 outside the mask.
        max_objects: most labels in the DAVIS PNGs (the official unsupervised scorer accepts 20).
        png_compress_level: zlib level 0-9 for the PNGs (1: fast, a little larger).
        write_threads: threads that encode and write the PNGs while the caller goes on (PNG encoding releases
            the GIL); ``None`` = min(4, the CPUs this process can keep busy: its cores, within the container's
            CPU quota, ``cpu_quota.usable_cpus``). Results are the same for any value.
        alpha_webm: ``<video>_alpha.webm``: every exported track over a transparent background (alpha = the union
            of their masks; RGB as in the cut-outs), one VP9 WebM with alpha at the frames' size and the frame rate
            given to ``ExportWriter(fps=...)``: for web pages, OBS, Canva, Kdenlive. Its encoder is a separate
            process (50-100 frames/s at 854x480 on this project's 2-core machine).
        timeline: ``timeline.png``, one row per track with a bar on the frames it was seen in (``uvosam.timeline``):
            gaps, returns and a track ending where another begins, at a glance. With more than
            ``timeline.MAX_ROWS`` (100) tracks, rows for the longest, and a line counting the others.
        ytvis_class_thres: how ``ytvis_results.json`` lists the tracks. ``None`` (default, the app's and ``uvosam
            segment``'s): one entry per track, under its label, with its mean per-frame score. A number t in [0, 1]
            (``uvosam ytvis-run``: 0.05): IDOL's ``MULTI_CLS_ON`` / ``APPLY_CLS_THRES`` rule, one entry per (track,
            class) whose mean class probability over the track's frames (``FrameResult.class_probs``) is > t, with
            that mean as score, in track id order then class order (``export_formats.ytvis_entries``).
    """

    davis: bool = True
    cutouts: bool = True
    mattes: bool = False
    results_json: bool = True
    ytvis: bool = True
    tracks_csv: bool = True
    full_sequences: bool = True
    cutout_keep_frame_rgb: bool = False
    max_objects: int = DAVIS_MAX_OBJECTS
    png_compress_level: int = 1
    write_threads: int | None = None
    # from here on: code that passes the other fields by position keeps working
    alpha_webm: bool = False
    timeline: bool = True
    ytvis_class_thres: float | None = None

    def __post_init__(self) -> None:
        check_fields(self, check_flag, *_FLAGS)
        check_fields(self, check_count, "write_threads")
        for name, low, high, meaning in _RANGES:
            value = getattr(self, name)
            if not is_integer(value) or not low <= value <= high:
                raise InputError(
                    f"ExportOptions.{name} must be an integer in {low}..{high} ({meaning}); got {value!r}"
                )
            object.__setattr__(self, name, int(value))
        thres = self.ytvis_class_thres
        if thres is not None and (not is_number(thres) or not 0.0 <= thres <= 1.0):
            raise InputError(
                f"ExportOptions.ytvis_class_thres must be None (one YouTube-VIS entry per track) or a number in "
                f"[0, 1] (IDOL's APPLY_CLS_THRES, 0.05), got {thres!r}"
            )


_FLAGS = (
    "davis", "cutouts", "mattes", "results_json", "ytvis", "tracks_csv", "full_sequences", "cutout_keep_frame_rgb",
    "alpha_webm", "timeline",
)  # fmt: skip
_MAX_OBJECTS_MEANING = (
    "labels in a DAVIS PNG, whose 8-bit pixels hold 255 besides the background; the official scorer takes 20; "
    "tracks past it are left out of the PNGs only, the cut-outs, results.json and tracks.csv keep every one"
)
_RANGES = (
    ("max_objects", 1, PALETTE_MAX_LABEL, _MAX_OBJECTS_MEANING),
    ("png_compress_level", 0, 9, "zlib's levels"),
)


@dataclass(frozen=True)
class ExportResult:
    """What ``ExportWriter.close`` wrote. Paths are None for formats that were not requested.

    Attributes:
        out_dir: the export root (zip names are relative to it).
        davis_labels: ``{track_id: DAVIS label}`` of the tracks painted in the DAVIS PNGs.
        tracks: summaries of all tracks, in order of first appearance.
    """

    out_dir: Path
    video_name: str
    ytvis_video_id: str | int
    num_frames: int
    davis_dir: Path | None
    cutouts_dir: Path | None
    mattes_dir: Path | None
    results_json: Path | None
    ytvis_json: Path | None
    tracks_csv: Path | None
    readme: Path
    davis_labels: dict[int, int]
    tracks: tuple[TrackSummary, ...]
    alpha_webm: Path | None = None
    timeline_png: Path | None = None
    # possible id switches among the exported tracks (uvosam.merge_hints)
    merge_hints: tuple[MergeHint, ...] = ()
    # what made the export (uvosam.provenance); always written by ExportWriter
    run_json: Path | None = None

    def entries(self) -> list[Path]:
        """Every file/folder that belongs in the zip, README and run.json first."""
        paths = [
            self.readme,
            self.run_json,
            self.results_json,
            self.ytvis_json,
            self.tracks_csv,
            self.timeline_png,
        ]
        paths += [self.alpha_webm]
        paths += [self.davis_dir, self.cutouts_dir, self.mattes_dir]
        return [p for p in paths if p is not None and p.exists()]
