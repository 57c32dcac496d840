"""DAVIS-2017 video object segmentation scores (J&F), equal to the official ``davis2017-evaluation``.

Protocols (see ``design/DAVIS_METRIC.md``; official code: github.com/davisvideochallenge/davis2017-evaluation):

* **unsupervised**: every frame is scored; annotation label 255 is void and counts for nothing. Result ids 1..P
  (P = the largest id in any frame, at most 20) are proposals, padded with empty ones up to the number K of ground
  truth objects; one Hungarian assignment per sequence maximises the sum over pairs of (mean J + mean F) / 2.
* **semi-supervised**: the first and last frames are dropped, result id k is ground-truth object k, no void (255 is
  background), and ids above K are refused.

K is the largest label of the FIRST annotation frame. Global numbers are means over all objects of all sequences,
and J&F-Mean = (J-Mean + F-Mean) / 2.

Layout: ``<davis_root>/JPEGImages/480p/<seq>/*.jpg``, ``<davis_root>/Annotations_unsupervised/480p/<seq>/*.png``
(``Annotations/480p`` for semi-supervised), ``<davis_root>/ImageSets/2017/<subset>.txt`` (``ImageSets/2019`` for
unsupervised test-dev / test-challenge); results ``<results_dir>/<seq>/<frame>.png`` with the annotation file stems
(``<seq>`` may be named as uvosam names a video, ``car_1`` for ``car 1``: ``layout.result_folder``).
"""

from __future__ import annotations

import logging
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy.optimize import linear_sum_assignment

from uvosam.errors import InputError, MissingInputError
from uvosam.eval.layout import (
    SUBSETS,
    TASKS,
    SequenceFiles,
    find_sequences,
    read_result,
    result_folder,
)
from uvosam.eval.masks_io import read_index_png
from uvosam.eval.measures import boundary_radius, frame_scores, object_statistics

__all__ = [
    "GLOBAL_METRICS",
    "MAX_PROPOSALS",
    "DavisScores",
    "ObjectScore",
    "evaluate",
    "pool_scores",
    "score_sequence",
]

logger = logging.getLogger(__name__)

MAX_PROPOSALS = 20
"""Largest result id the unsupervised protocol accepts per sequence (the official evaluator exits above it)."""

GLOBAL_METRICS = ("J&F-Mean", "J-Mean", "J-Recall", "J-Decay", "F-Mean", "F-Recall", "F-Decay")


@dataclass(frozen=True)
class ObjectScore:
    """Scores of one ground-truth object (one row of the official per-sequence table).

    Attributes:
        name: ``<sequence>_<i>`` as the official evaluator prints it; i counts the matched pairs from 1 in
            ascending result-id order (unsupervised) or is the object id (semi-supervised).
        sequence: sequence name.
        gt_id: ground-truth object id (1..K).
        result_id: result id matched to it; ids above the largest id present are empty padding proposals.
        j_frames, f_frames: (T,) float64 per-frame J and F over the evaluated frames.
        result_empty: no pixel of the results has ``result_id`` in the frames scored (a padding proposal, or an id
            the results skip): the tables say "none" for it (not in ``to_dict``, whose rows are the official ones).
    """

    name: str
    sequence: str
    gt_id: int
    result_id: int
    j_mean: float
    j_recall: float
    j_decay: float
    f_mean: float
    f_recall: float
    f_decay: float
    j_frames: np.ndarray = field(repr=False, compare=False)
    f_frames: np.ndarray = field(repr=False, compare=False)
    result_empty: bool = field(default=False, compare=False)

    def to_dict(self) -> dict:
        """The JSON row: ``Sequence`` (the name), ids, and the six per-object statistics plus their J&F."""
        return {
            "Sequence": self.name,
            "gt_id": self.gt_id,
            "result_id": self.result_id,
            "J&F-Mean": (self.j_mean + self.f_mean) / 2,
            "J-Mean": self.j_mean,
            "J-Recall": self.j_recall,
            "J-Decay": self.j_decay,
            "F-Mean": self.f_mean,
            "F-Recall": self.f_recall,
            "F-Decay": self.f_decay,
        }


@dataclass(frozen=True)
class DavisScores:
    """Global DAVIS numbers (object-weighted means) and the per-object rows they pool."""

    jf_mean: float
    j_mean: float
    j_recall: float
    j_decay: float
    f_mean: float
    f_recall: float
    f_decay: float
    objects: tuple[ObjectScore, ...]
    task: str
    subset: str

    def global_dict(self) -> dict[str, float]:
        """The seven global numbers keyed exactly as the official table ("J&F-Mean", "J-Mean", ...)."""
        values = (
            self.jf_mean,
            self.j_mean,
            self.j_recall,
            self.j_decay,
            self.f_mean,
            self.f_recall,
            self.f_decay,
        )
        return dict(zip(GLOBAL_METRICS, (float(v) for v in values)))

    def to_dict(self) -> dict:
        """JSON-ready: the seven global numbers at the top level and a ``sequences`` list of per-object rows."""
        return {**self.global_dict(), "sequences": [obj.to_dict() for obj in self.objects]}


def _check_ids(labels: np.ndarray, limit: int, path: Path, what: str) -> None:
    top = int(labels.max(initial=0))
    if top > limit:
        raise InputError(
            f"{path}: result id {top} exceeds {what}. Ids are object labels 1..N per sequence (0 = background); "
            "relabel them to consecutive ids (and keep at most the best 20 objects)"
        )


def _protocol(seq: SequenceFiles, task: str, num_objects: int) -> tuple[range, int, int, str]:
    """Frames scored, proposal rows computed per frame, the largest result id allowed and how to say so."""
    frames = range(len(seq.frame_ids))
    if task == "unsupervised":
        limit_text = f"the maximum of {MAX_PROPOSALS} proposals allowed per sequence"
        return frames, max(MAX_PROPOSALS, num_objects), MAX_PROPOSALS, limit_text
    if len(frames) < 3:
        raise InputError(
            f"sequence {seq.name!r} has {len(frames)} frames; the semi-supervised protocol scores all but the "
            "first and last, so it needs at least 3"
        )
    return (
        frames[1:-1],
        num_objects,
        num_objects,
        f"the {num_objects} ground-truth objects of the first frame",
    )


def _frame_matrices(
    seq: SequenceFiles, results_dir: Path, task: str
) -> tuple[np.ndarray, np.ndarray, int, frozenset[int]]:
    """Per-frame J and F of every (proposal, object) pair as two (P, K, T) arrays, K, and the result ids found in
    the frames scored.

    P = max(largest result id, K) for unsupervised (empty proposals pad up to K), K for semi-supervised.
    """
    first = read_index_png(seq.annotations[0])
    num_objects = int(np.where(first == 255, 0, first).max(initial=0))
    frames, rows, limit, limit_text = _protocol(seq, task, num_objects)
    try:
        folder = result_folder(results_dir, seq.name)
    except FileNotFoundError as err:
        raise MissingInputError(
            f"{err} (expected {len(seq.frame_ids)} PNGs {seq.frame_ids[0]}.png ... {seq.frame_ids[-1]}.png)"
        ) from None
    radius = boundary_radius(*first.shape)
    j_all, f_all = [], []
    seen = np.zeros(limit + 1, bool)  # by result id (0: background)
    for t in frames:
        gt = read_index_png(seq.annotations[t]) if t else first
        _same_shape(gt, first, seq.annotations[t], seq.annotations[0])
        void = gt == 255
        res_path = folder / f"{seq.frame_ids[t]}.png"
        res = read_result(res_path, gt.shape, seq.annotations[t])
        _check_ids(res, limit, res_path, limit_text)
        seen[np.bincount(res.ravel(), minlength=limit + 1) > 0] = True
        gt = np.where(void, 0, gt)
        j, f = frame_scores(
            res, gt, rows, num_objects, radius=radius, void=void if task == "unsupervised" else None
        )
        j_all.append(j)
        f_all.append(f)
    found = np.flatnonzero(seen[1:]) + 1
    rows = max(found.max(initial=0), num_objects) if task == "unsupervised" else num_objects
    j_arr = np.ascontiguousarray(np.stack(j_all, axis=-1)[:rows])
    f_arr = np.ascontiguousarray(np.stack(f_all, axis=-1)[:rows])
    return j_arr, f_arr, num_objects, frozenset(found.tolist())


def _same_shape(labels: np.ndarray, first: np.ndarray, path: Path, first_path: Path) -> None:
    if labels.shape != first.shape:
        raise InputError(
            f"{path} is {labels.shape[0]}x{labels.shape[1]} but the first annotation {first_path} is "
            f"{first.shape[0]}x{first.shape[1]}; all frames of a sequence must have one size"
        )


def score_sequence(
    seq: SequenceFiles, results_dir: str | Path, *, task: str = "unsupervised"
) -> list[ObjectScore]:
    """Score one sequence: one :class:`ObjectScore` per ground-truth object of its first annotation frame (none
    when that frame has no object: ``evaluate`` warns of such a sequence, ``score_clip`` refuses it)."""
    j_arr, f_arr, num_objects, found = _frame_matrices(seq, Path(results_dir), task)
    if num_objects == 0:
        return []
    if task == "semi-supervised":
        pairs = [(k, k) for k in range(num_objects)]
    else:
        matching = (np.mean(j_arr, axis=2) + np.mean(f_arr, axis=2)) / 2
        rows, cols = linear_sum_assignment(-matching)
        pairs = list(zip(rows.tolist(), cols.tolist()))
    out = []
    for i, (p, k) in enumerate(pairs):
        jm, jr, jd = object_statistics(j_arr[p, k])
        fm, fr, fd = object_statistics(f_arr[p, k])
        out.append(
            ObjectScore(
                name=f"{seq.name}_{i + 1}", sequence=seq.name, gt_id=k + 1, result_id=p + 1,
                j_mean=jm, j_recall=jr, j_decay=jd, f_mean=fm, f_recall=fr, f_decay=fd,
                j_frames=j_arr[p, k].copy(), f_frames=f_arr[p, k].copy(), result_empty=p + 1 not in found,
            )
        )  # fmt: skip
    return out


def _score_job(job: tuple[SequenceFiles, Path, str]) -> list[ObjectScore]:
    seq, results_dir, task = job
    return score_sequence(seq, results_dir, task=task)


def evaluate(
    davis_root: str | Path,
    results_dir: str | Path,
    *,
    subset: str = "val",
    task: str = "unsupervised",
    sequences: list[str] | None = None,
    num_workers: int = 1,
) -> DavisScores:
    """Score a results folder against DAVIS-2017 exactly as the official evaluator does.

    Args:
        davis_root: the DAVIS folder holding ``JPEGImages``, ``Annotations[_unsupervised]`` and ``ImageSets``.
        results_dir: folder with ``<seq>/<frame>.png`` indexed PNGs of object ids (0 = background).
        subset: "train", "val", "test-dev" or "test-challenge" (selects ``ImageSets/<year>/<subset>.txt``).
        task: "unsupervised" or "semi-supervised".
        sequences: optional subset of the set's sequences, scored in the given order; default all, in file order.
        num_workers: processes scoring sequences in parallel (1 = in this process). Results do not depend on it.
            More than 1 starts 'spawn' processes, so a script calling it needs an
            ``if __name__ == "__main__":`` guard.

    Returns:
        :class:`DavisScores`.

    Raises:
        FileNotFoundError: missing dataset folder, ImageSets file, frames or result PNGs (the path is named).
        ValueError: bad task/subset, unknown sequence, annotation/jpg count mismatch, a non-2-D (e.g. RGB) PNG,
            a size mismatch, or too many result ids.
    """
    if task not in TASKS:
        raise InputError(f"task must be one of {TASKS}, got {task!r}")
    if subset not in SUBSETS:
        raise InputError(f"subset must be one of {SUBSETS}, got {subset!r}")
    results_dir = Path(results_dir)
    if not results_dir.is_dir():
        raise MissingInputError(
            f"results folder not found: {results_dir} (expected <results>/<sequence>/<frame>.png)"
        )
    seqs = find_sequences(davis_root, subset=subset, task=task, sequences=sequences)
    jobs = [(seq, results_dir, task) for seq in seqs]
    if num_workers > 1 and len(jobs) > 1:
        per_seq = _score_in_processes(jobs, min(num_workers, len(jobs)))
    else:
        per_seq = [_score_job(job) for job in jobs]
    for seq, rows in zip(seqs, per_seq, strict=True):
        # the set's other sequences are scored: this one is left out, which its user must hear
        if not rows:
            logger.warning(
                "sequence %s has no object in its first annotation frame; it adds no rows", seq.name
            )
    objects = tuple(obj for rows in per_seq for obj in rows)
    if not objects:
        raise InputError(
            f"no ground-truth object in the first annotation frame of any of {len(seqs)} sequences"
        )
    return pool_scores(objects, task=task, subset=subset)


def _score_in_processes(jobs: list[tuple], workers: int) -> list[list[ObjectScore]]:
    """``_score_job`` of each job in ``workers`` 'spawn' processes, in job order.

    A pool that breaks fails once (a ``multiprocessing.Pool`` would start new workers for ever): a worker that dies
    while it starts, as in a script without a main guard, whose workers run the script again.

    Raises:
        RuntimeError: a worker died (it ran a script without a main guard, or was killed for want of memory),
            with what to do.
    """
    ctx = multiprocessing.get_context("spawn")
    try:
        with ProcessPoolExecutor(workers, mp_context=ctx) as pool:
            return list(pool.map(_score_job, jobs))
    except BrokenProcessPool:
        raise RuntimeError(
            f"evaluate(num_workers={workers}): a scoring process died. Each one starts by importing the script "
            'that called evaluate(): one without an `if __name__ == "__main__":` guard runs its evaluate() '
            "again there, which cannot start processes. Put the call under that guard, or pass num_workers=1 "
            "(one process: also the way out if a process was killed for want of memory)."
        ) from None


def pool_scores(objects: tuple[ObjectScore, ...], *, task: str, subset: str) -> DavisScores:
    """The global numbers: means over all ``objects`` (at least one), J&F-Mean = (J-Mean + F-Mean) / 2."""
    means = {
        name: float(np.mean([getattr(o, name) for o in objects]))
        for name in ("j_mean", "j_recall", "j_decay", "f_mean", "f_recall", "f_decay")
    }
    return DavisScores(
        jf_mean=(means["j_mean"] + means["f_mean"]) / 2,
        **means,
        objects=objects,
        task=task,
        subset=subset,
    )
