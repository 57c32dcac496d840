"""The per-video files at an export's root, written once all frames are in: the tables (``results.json``,
``ytvis_results.json``, ``tracks.csv``), ``timeline.png``, and (by ``ExportWriter.close``) ``README.txt`` and
``run.json``.

``RootFiles`` writes each atomically and remembers it, so that a failed run deletes exactly the files its export
wrote there (several videos may share one export folder: another video's files, or an earlier file this export
failed to replace, stay). ``write_tables`` writes the tables and the timeline that ``ExportOptions`` ask for, from
the track records ``ExportWriter`` kept (``uvosam.export``); their formats are in ``uvosam.export_formats``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from uvosam import export_formats as fmt
from uvosam.export_types import ExportOptions
from uvosam.provenance import RUN_JSON
from uvosam.timeline import TimelineRow, draw_timeline
from uvosam.types import TrackSummary

README_TXT = "README.txt"
RESULTS_JSON = "results.json"
YTVIS_JSON = "ytvis_results.json"
TRACKS_CSV = "tracks.csv"
TIMELINE_PNG = "timeline.png"
# every file an export may write at its root: they describe the last video exported there
ROOT_FILES = (README_TXT, RUN_JSON, RESULTS_JSON, YTVIS_JSON, TRACKS_CSV, TIMELINE_PNG)


class RootFiles:
    """The files one export wrote at its root ``out_dir``."""

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = out_dir
        self._written: list[Path] = []

    def write(self, name: str, write: Callable[..., Any], *args: Any, **kwargs: Any) -> Path:
        """``write(out_dir / name, *args, **kwargs)``, an atomic writer (``atomic_files.replacing``: a failed one
        leaves neither its ``.tmp`` nor a changed file), remembered for ``discard``; if it fails, the file there (if
        any) is not this export's."""
        path = self.out_dir / name
        write(path, *args, **kwargs)
        self._written.append(path)
        return path

    def discard(self) -> None:
        """Delete every file ``write`` wrote."""
        for path in self._written:
            path.unlink(missing_ok=True)
        self._written.clear()


def write_tables(
    files: RootFiles,
    options: ExportOptions,
    records: list[fmt.TrackRecord],
    summaries: list[TrackSummary],
    davis_labels: dict[int, int],
    *,
    num_frames: int,
    video_id: str,
    ytvis_video_id: str | int,
) -> Path | None:
    """The JSON and CSV files and the timeline ``options`` ask for; the timeline's path (None: not written).

    Args:
        files: where they go (``RootFiles.write``).
        records, summaries: every exported track, in order of first appearance (``summaries[i]`` is ``records[i]``'s).
        davis_labels: ``{track_id: DAVIS label}`` (``tracks.csv``'s ``davis_label``).
        num_frames: frames in the video. video_id, ytvis_video_id: ``video_id`` in results.json / ytvis_results.json.
    """
    kw = {"num_frames": num_frames}
    if options.results_json:
        files.write(RESULTS_JSON, fmt.write_results_json, records, video_id=video_id, **kw)
    if options.ytvis:
        files.write(
            YTVIS_JSON, fmt.write_ytvis_json, records, video_id=ytvis_video_id,
            class_thres=options.ytvis_class_thres, **kw,
        )  # fmt: skip
    if options.tracks_csv:
        files.write(TRACKS_CSV, fmt.write_tracks_csv, summaries, davis_labels)
    if not (options.timeline and num_frames):
        return None
    rows = [
        TimelineRow(r.track_id, s.class_name, list(r.boxes)) for r, s in zip(records, summaries)
    ]
    listed_in = (
        TRACKS_CSV if options.tracks_csv else None
    )  # the rows left out are named nowhere else
    return files.write(
        TIMELINE_PNG, fmt.write_rgb_png, draw_timeline(rows, num_frames, listed_in=listed_in)
    )
