"""Time ``uvosam.eval.davis.evaluate`` on a synthetic dataset the size of DAVIS-2017 val.

Thirty 480x854 sequences (lengths drawn around the val mean, 1999 frames in all as in val), 2-3 objects
each plus a late-entering one, and void rings. The results are the ground truth perturbed per sequence (shifted,
eroded, ids permuted, an identity switch, an extra false object, a dropped object). Prints the build time, the
scoring seconds and frames per second.

    PYTHONPATH=$PWD python benchmarks/davis_score.py [--workers 2] [--keep DIR]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._machine import load_text
from uvosam.eval.davis import evaluate
from uvosam.eval.synthetic import make_synthetic_davis, read_annotations, write_results

TOTAL_FRAMES = 1999  # DAVIS-2017 val: 30 sequences, 1999 frames


def perturb(labels: np.ndarray, kind: int, rng: np.random.Generator) -> np.ndarray:
    """Result ids for one sequence: the ground truth (void removed) changed in one of six ways."""
    gt = np.where(labels == 255, 0, labels).astype(np.uint8)
    if kind == 0:
        return np.roll(gt, tuple(rng.integers(-12, 13, size=2)), axis=(1, 2))
    if kind == 1:
        return np.stack(
            [np.where(ndimage.binary_erosion(f > 0, iterations=4), f, 0) for f in gt]
        ).astype(np.uint8)
    if kind == 2:  # the sequence's ids 1..max shuffled one to one (every object kept)
        perm = np.concatenate([[0], rng.permutation(np.arange(1, int(gt.max()) + 1))]).astype(
            np.uint8
        )
        return perm[gt]
    if kind == 3:
        out = gt.copy()
        half = len(gt) // 2
        out[half:][gt[half:] == 1], out[half:][gt[half:] == 2] = 2, 1
        return out
    if kind == 4:
        out = gt.copy()
        out[:, 20:120, 30:200] = 9
        return out
    return np.where(gt == 1, 0, gt).astype(np.uint8)


def build(root: Path, results: Path, seed: int = 0) -> int:
    """Write the dataset and the results; return the number of frames."""
    rng = np.random.default_rng(seed)
    frames = np.clip(rng.normal(67, 20, size=30), 25, 104)
    frames = np.round(frames * TOTAL_FRAMES / frames.sum()).astype(int)
    frames[np.argmin(frames)] += TOTAL_FRAMES - frames.sum()
    objects = rng.integers(2, 4, size=30).tolist()
    names = make_synthetic_davis(
        root,
        sequences=30,
        frames=frames.tolist(),
        height=480,
        width=854,
        objects=objects,
        seed=seed,
    )
    labels = {n: perturb(read_annotations(root, n), i % 6, rng) for i, n in enumerate(names)}
    write_results(results, labels)
    return int(frames.sum())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--workers", type=int, default=2, help="processes for evaluate() (default 2)"
    )
    parser.add_argument(
        "--keep", type=Path, help="build the dataset here and keep it (reused if present)"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = args.keep or Path(tmp)
        root, results = base / "DAVIS", base / "results"
        t0 = time.perf_counter()
        if (root / "ImageSets").is_dir() and results.is_dir():
            num_frames = sum(1 for _ in (root / "JPEGImages" / "480p").glob("*/*.jpg"))
        else:
            num_frames = build(root, results)
        print(
            f"dataset: 30 sequences, {num_frames} frames of 480x854 ({time.perf_counter() - t0:.1f} s to build)"
        )
        t0 = time.perf_counter()
        scores = evaluate(
            root, results, subset="val", task="unsupervised", num_workers=args.workers
        )
        seconds = time.perf_counter() - t0
    print(f"evaluate(workers={args.workers}): {seconds:.2f} s, {num_frames / seconds:.1f} frames/s, "
          f"{len(scores.objects)} objects; {load_text()}")  # fmt: skip
    print(", ".join(f"{k} {v:.4f}" for k, v in scores.global_dict().items()))


if __name__ == "__main__":
    main()
