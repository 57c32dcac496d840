"""Scoring one clip against its own ground truth: the DAVIS-2017 unsupervised J&F for any video, not only DAVIS.

The ground truth is a folder of indexed PNGs (0 background, 1..K objects, 255 void): one per frame of the source
video, in natural name order (a DAVIS ``Annotations_unsupervised/480p/<seq>`` folder is one), or one per frame the
run processed, or PNGs of some processed frames only, named as those frames (key frames, every 5th...: then those
frames are scored, as the official scorer scores the frames its annotation folder holds). The results are a run's
DAVIS PNGs (``<out>/export/davis/<video>/<frame>.png``, or the zip's ``davis/<video>/``). The scores follow the
official unsupervised protocol exactly (``uvosam.eval.davis``): K is the largest id in the first ground-truth frame,
result ids are matched to objects by one Hungarian assignment over the whole clip, and J&F-Mean = (J-Mean +
F-Mean) / 2 over the K objects.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from uvosam.errors import InputError, MissingInputError
from uvosam.eval.davis import DavisScores, pool_scores, score_sequence
from uvosam.eval.layout import SequenceFiles, export_scaled_note
from uvosam.eval.masks_io import read_index_png
from uvosam.frame_folder import natural_key
from uvosam.text import count, id_ranges

__all__ = [
    "align_ground_truth",
    "ground_truth_by_name",
    "ground_truth_files",
    "id_gaps_note",
    "late_objects_note",
    "pair_ground_truth",
    "score_clip",
    "unscored_tail_note",
]


def ground_truth_files(folder: str | Path) -> list[Path]:
    """The ``.png`` files directly in ``folder``, in natural name order (``2.png`` before ``10.png``).

    Raises:
        FileNotFoundError: ``folder`` is not a folder, or holds no PNG.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise MissingInputError(
            f"ground truth: {folder} is not a folder (expected a folder of indexed PNGs)"
        )
    files = sorted(
        (p for p in folder.iterdir() if p.suffix.lower() == ".png" and p.is_file()), key=natural_key
    )
    if not files:
        raise MissingInputError(
            f"ground truth: {folder} holds no .png file (expected one indexed PNG per frame: 0 background, "
            "1..K objects, 255 void)"
        )
    return files


def _frame_key(stem: str) -> int | str:
    return int(stem) if stem.isdecimal() else stem  # isdigit() also takes '²', which int() refuses


def pair_ground_truth(
    ground_truth: Sequence[Path],
    frame_names: Sequence[str],
    source_indices: Sequence[int],
    source_frames: int,
) -> tuple[list[str], list[Path]]:
    """The result frames to score and the ground-truth file of each.

    Where every ground-truth PNG names a processed frame but not every processed frame has one (annotations of some
    frames only: key frames, every 5th...), those frames are scored, as the official scorer scores the frames its
    annotation folder holds. Else every processed frame, with ``align_ground_truth``'s file for each.

    Args:
        as ``align_ground_truth``.

    Returns:
        (result file stems, in frame order; one ground-truth file for each).

    Raises:
        ValueError: as ``align_ground_truth``.
    """
    annotated = _annotated_frames(ground_truth, frame_names)
    if annotated is not None:
        return annotated
    return list(frame_names), align_ground_truth(
        ground_truth, frame_names, source_indices, source_frames
    )


def _files_by_frame(ground_truth: Sequence[Path]) -> dict[int | str, list[Path]]:
    """The ground-truth files by the frame their name gives (digits compared as numbers), in their order."""
    by_frame: dict[int | str, list[Path]] = {}
    for path in ground_truth:
        by_frame.setdefault(_frame_key(path.stem), []).append(path)
    return by_frame


def _annotated_frames(
    ground_truth: Sequence[Path], frame_names: Sequence[str]
) -> tuple[list[str], list[Path]] | None:
    """The processed frames the ground truth names and its file for each, where each of its files names one and
    some frames have none; else ``None``."""
    by_frame = _files_by_frame(ground_truth)
    names = [n for n in frame_names if _frame_key(n) in by_frame]
    if (
        len(by_frame) != len(ground_truth)
        or len(names) != len(by_frame)
        or len(names) == len(frame_names)
    ):
        return None  # two files name one frame (align_ground_truth says so), one names no frame, or no subset
    return names, [by_frame[_frame_key(n)][0] for n in names]


def align_ground_truth(
    ground_truth: Sequence[Path],
    frame_names: Sequence[str],
    source_indices: Sequence[int],
    source_frames: int,
    *,
    by_name: bool = True,
) -> list[Path]:
    """One ground-truth file per processed frame.

    By name where every frame has a ground-truth file of the same name (digits compared as numbers: ``7.png``
    is frame ``00007``); else by order: the files are taken as one per processed frame, or as one per source frame
    (then those at ``source_indices`` are used).

    Args:
        ground_truth: the files in frame order.
        frame_names: the result file stems, one per processed frame.
        source_indices: the source frame index of each processed frame (``range(0, n * stride, stride)``).
        source_frames: number of frames of the source video.
        by_name: ``False``: by order only (the caller knows the result names are not the source frames').

    Raises:
        ValueError: neither names nor counts fit, saying both counts and what to supply; two files name one frame
            (``1.png`` and ``01.png``).
    """
    named = ground_truth_by_name(ground_truth, frame_names) if by_name else None
    if named is not None:
        return named
    if len(ground_truth) == len(source_indices):
        return list(ground_truth)
    if len(ground_truth) == source_frames and all(0 <= i < source_frames for i in source_indices):
        return [ground_truth[i] for i in source_indices]
    by_frame = _files_by_frame(ground_truth)
    lacking = [n for n in frame_names if _frame_key(n) not in by_frame]
    if by_name and 0 < len(lacking) < len(
        frame_names
    ):  # named as some frames, but not one for each
        processed = {_frame_key(n) for n in frame_names}
        extra = [p.name for p in ground_truth if _frame_key(p.stem) not in processed]
        if extra:
            raise InputError(
                f"ground truth: {count(len(extra), 'PNG')} named as no frame the run processed ({_some(extra)}): "
                f"give only PNGs named as processed frames ({_some([f'{n}.png' for n in frame_names])}; those frames "
                "are then scored), or score a run that covers them"
            )
        raise InputError(
            f"ground truth: none for {count(len(lacking), 'frame')} the run processed "
            f"({_some([f'{n}.png' for n in lacking])}): give a PNG for each"
        )
    raise InputError(
        f"ground truth: {count(len(ground_truth), 'PNG')}, but the run processed {len(source_indices)} of the "
        f"video's {count(source_frames, 'frame')} and their names "
        f"({frame_names[0] if frame_names else '-'}, ...) are not all among "
        "the PNGs'; name the PNGs as the frames, or give one PNG per source frame (the run's frame stride and Max "
        "frames are then applied to them) or one per processed frame, in frame order."
    )


def _some(names: Sequence[str]) -> str:
    """The first three of ``names``, then "..." if there are more."""
    return ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")


def ground_truth_by_name(
    ground_truth: Sequence[Path], frame_names: Sequence[str]
) -> list[Path] | None:
    """The file named as each of ``frame_names`` (digits compared as numbers), or ``None`` when one has none.

    Raises:
        ValueError: two files name one frame (``1.png`` and ``01.png``).
    """
    by_name = _files_by_frame(ground_truth)
    if not frame_names or not all(_frame_key(n) in by_name for n in frame_names):
        return None
    for name in frame_names:
        files = by_name[_frame_key(name)]
        if len(files) > 1:
            raise InputError(
                f"ground truth: {' and '.join(sorted(p.name for p in files))} both name frame {name}; keep one "
                "PNG per frame"
            )
    return [by_name[_frame_key(n)][0] for n in frame_names]


def score_clip(
    results_dir: str | Path, ground_truth: Sequence[Path], frame_names: Sequence[str]
) -> DavisScores:
    """DAVIS unsupervised scores of one clip.

    Args:
        results_dir: the clip's result PNGs, ``<frame name>.png`` (its folder name names the clip).
        ground_truth: one annotation PNG per entry of ``frame_names`` (``align_ground_truth``).
        frame_names: the result file stems, in frame order.

    Returns:
        ``DavisScores`` over the K objects of the first ground-truth frame (subset ``"clip"``).

    Raises:
        ValueError: the counts differ, the first ground-truth frame has no object, sizes differ, ids over 20.
        FileNotFoundError: a result PNG is missing.
    """
    results_dir = Path(results_dir)
    if len(ground_truth) != len(frame_names) or not frame_names:
        raise InputError(
            f"score_clip: {count(len(ground_truth), 'ground-truth file')} for "
            f"{count(len(frame_names), 'result frame')}; "
            "give one per frame (align_ground_truth)"
        )
    _check_size(Path(ground_truth[0]), results_dir / f"{frame_names[0]}.png")
    seq = SequenceFiles(results_dir.name, tuple(frame_names), tuple(Path(p) for p in ground_truth))
    objects = tuple(score_sequence(seq, results_dir.parent, task="unsupervised"))
    if not objects:
        raise InputError(
            f"ground truth: its first frame ({Path(ground_truth[0]).name}) has no object, and the DAVIS protocol "
            "takes the objects to score from the first frame; start the ground truth at a frame where the objects "
            "are annotated"
        )
    return pool_scores(objects, task="unsupervised", subset="clip")


def _check_size(truth: Path, result: Path) -> None:
    """Ground truth and masks of one size (a run's masks have the video's size, whatever its output video's)."""
    if not result.is_file():
        return  # score_sequence names the missing file
    (h, w), (rh, rw) = read_index_png(truth).shape, read_index_png(result).shape
    if (h, w) != (rh, rw):
        scaled = export_scaled_note(result, (rh, rw))
        raise InputError(
            f"ground truth is {w}x{h} (WxH) but the masks are {rw}x{rh} ({truth.name} vs {result.name}); "
            + (scaled or "a run's masks have the video's size: give the ground truth at that size (resized with "
               "nearest-neighbour sampling, so that ids stay ids)")
        )  # fmt: skip


def id_gaps_note(first_truth: str | Path, shown_as: str | None = None) -> str | None:
    """A warning when the first ground-truth frame's ids are not 1..K: the protocol scores objects 1..K all the same
    (K = its largest id), and one that is in no ground-truth frame counts as perfect wherever the masks leave it
    empty, which raises the mean (e.g. ids 2 and 7 make K = 7: five empty objects). None when the ids are 1..K.
    ``shown_as``: the file's name in the note (default: its file name)."""
    ids = np.unique(read_index_png(first_truth))
    present = {int(i) for i in ids if 0 < i < 255}
    if not present:
        return None
    k = max(present)
    missing = sorted(set(range(1, k + 1)) - present)
    if not missing:
        return None
    real = (
        f"renumber the objects 1..{len(present)}"
        if len(present) > 1
        else "give the object the id 1"
    )
    return (
        f"the first ground-truth frame ({shown_as or Path(first_truth).name}) has the ids "
        f"{id_ranges(sorted(present))}, not "
        f"1..{k}: the DAVIS protocol scores the {k} objects 1..{k}, and any of {id_ranges(missing)} counts as perfect "
        "(J = F = 1) on every frame where neither the ground truth nor the masks have it. If those ids are in no "
        f"ground-truth frame, {real} for a mean over the real ones."
    )


def late_objects_note(
    ground_truth: Sequence[str | Path], shown_as: Callable[[Path], str] | None = None
) -> str | None:
    """A note naming the ground-truth objects left out of the scores: ids over the first frame's largest (K) that
    appear in later frames. The DAVIS protocol scores objects 1..K of the first frame only, as the official scorer
    does (``design/DAVIS_METRIC.md``), so an object that first appears later, with a higher id, is not scored. None
    when there is none (or the first frame has no object: ``score_clip`` refuses that). ``shown_as``: a file's name
    in the note (default: its file name)."""
    paths = [Path(p) for p in ground_truth]
    first = read_index_png(paths[0])
    k = int(np.where(first == 255, 0, first).max(initial=0))
    seen: dict[int, Path] = {}
    for path in paths[1:] if k else ():
        ids = np.unique(read_index_png(path))
        for i in ids[(ids > k) & (ids < 255)].tolist():
            seen.setdefault(int(i), path)
    if not seen:
        return None
    name = shown_as or (lambda path: path.name)
    late = ", ".join(f"{i} (from {name(seen[i])})" for i in sorted(seen))
    objects = "object" if len(seen) == 1 else "objects"
    return (
        f"not scored: ground-truth {objects} {late}, not in the first ground-truth frame ({name(paths[0])}): the "
        f"DAVIS protocol scores that frame's objects, 1..{k}, as the official scorer does."
    )


def unscored_tail_note(
    ground_truth: Sequence[Path],
    scored: Sequence[Path],
) -> str | None:
    """A note naming the ground-truth PNGs after the last one scored (``scored``: those paired with result frames,
    in ``ground_truth``, the folder's files in frame order): a run stopped early (killed, or ``--max-frames``)
    pairs only the frames it made, and its score covers those alone. Frames between scored ones (a stride's, or
    key frames named as result frames) are skipped by design and not named, nor are the fewer than a stride after
    the last (a whole run with stride S ends within S frames of the video's end; S is the spacing of the last two
    scored). None when no more are left. Files are named by their file names."""
    # each file's place once (a list.index per scored file was quadratic: 8 s for 9000 frames); the first wins
    files = list(ground_truth)
    place = {p: i for i, p in reversed(list(enumerate(files)))}
    at = sorted(place[p] for p in scored)
    stride = at[-1] - at[-2] if len(at) > 1 else 1
    after = files[at[-1] + 1 :]
    if len(after) < max(stride, 1):
        return None
    span = after[0].name if len(after) == 1 else f"{after[0].name} ... {after[-1].name}"
    return (
        f"not scored: {count(len(after), 'ground-truth frame')} after the last one scored, {scored[-1].name} "
        f"({span}): the results stop there (a run stopped early, or one with a frame limit), so this score is "
        "of the frames up to there, not of the whole ground truth."
    )
