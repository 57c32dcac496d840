"""DAVIS region (J) and boundary (F) measures and the per-object statistics (mean, recall, decay).

Definitions follow the official DAVIS-2017 evaluator (github.com/davisvideochallenge/davis2017-evaluation, BSD-3;
Pont-Tuset et al., "The 2017 DAVIS Challenge on Video Object Segmentation", and Perazzi et al., CVPR 2016 for J/F),
as written down in ``design/DAVIS_METRIC.md``. This is an independent implementation with numpy/scipy only.

Two paths compute the same numbers (tests check that they agree exactly):

* the readable reference, one (ground truth, result) pair at a time: :func:`jaccard`, :func:`f_measure`, which dilate
  boundary maps with a disk via ``scipy.ndimage.binary_dilation`` exactly as the definition says;
* the fast path :func:`frame_scores`, all (proposal, object) pairs of one frame from two label maps at once: one
  joint histogram gives every intersection and union, each mask's boundary is computed once, and "boundary pixel of A
  lies inside the disk dilation of boundary B" is answered by a nearest-neighbour query (a pixel lies in the
  dilation iff some pixel of B is within Euclidean distance ``radius``), with squared distances compared as integers.

All masks are (H, W) arrays in image pixel coordinates (row y, column x).
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

from uvosam.errors import InputError

__all__ = [
    "boundary_map",
    "boundary_radius",
    "decay_bins",
    "disk",
    "f_measure",
    "frame_scores",
    "jaccard",
    "object_statistics",
]

BOUNDARY_FRACTION = 0.008
"""Boundary tolerance of the F measure as a fraction of the image diagonal (official ``bound_th``)."""


def boundary_radius(height: int, width: int) -> int:
    """Dilation radius in pixels of the F measure: ``ceil(0.008 * sqrt(H^2 + W^2))`` (480x854 -> 8)."""
    return int(np.ceil(BOUNDARY_FRACTION * np.linalg.norm([height, width])))


def disk(radius: int) -> np.ndarray:
    """Disk structuring element {(dy, dx): dy^2 + dx^2 <= radius^2}, shape (2r+1, 2r+1) bool."""
    offsets = np.arange(-radius, radius + 1)
    return offsets[:, None] ** 2 + offsets[None, :] ** 2 <= radius**2


def boundary_map(mask: np.ndarray) -> np.ndarray:
    """One-pixel boundary of a binary mask, offset half a pixel toward the origin (Martin's ``seg2bmap``).

    Pixel (y, x) is on the boundary iff its value differs from its east, south or south-east neighbour. On the last
    row only the east neighbour is compared, on the last column only the south one, and the bottom-right pixel is
    never a boundary, so nothing is ever compared with the outside of the image.

    Args:
        mask: (H, W) array; nonzero = object.

    Returns:
        (H, W) bool boundary map.
    """
    m = np.asarray(mask).astype(bool)
    b = np.zeros_like(m)
    core = m[:-1, :-1]
    b[:-1, :-1] = (core != m[:-1, 1:]) | (core != m[1:, :-1]) | (core != m[1:, 1:])
    b[-1, :-1] = m[-1, :-1] != m[-1, 1:]
    b[:-1, -1] = m[:-1, -1] != m[1:, -1]
    return b


def _not_void(shape: tuple[int, ...], void: np.ndarray | None) -> np.ndarray:
    if void is None:
        return np.ones(shape, bool)
    if void.shape != shape:
        raise InputError(f"void mask shape {void.shape} differs from the mask shape {shape}")
    return ~void.astype(bool)


def jaccard(gt_mask: np.ndarray, res_mask: np.ndarray, void: np.ndarray | None = None) -> float:
    """Region similarity J = |R & G & ~V| / |(R | G) & ~V|, and 1 when that union is empty.

    Args:
        gt_mask, res_mask: (H, W) binary masks of one object.
        void: optional (H, W) binary mask of pixels that count for nothing.
    """
    if gt_mask.shape != res_mask.shape:
        raise InputError(
            f"ground truth shape {gt_mask.shape} differs from result shape {res_mask.shape}"
        )
    keep = _not_void(gt_mask.shape, void)
    g, r = gt_mask.astype(bool), res_mask.astype(bool)
    inter = int(np.sum(g & r & keep))
    union = int(np.sum((g | r) & keep))
    return 1.0 if union == 0 else inter / union


def _f_from_counts(matched_res, n_res, matched_gt, n_gt):
    """F from boundary counts, with the official edge cases; works elementwise on arrays."""
    matched_res, n_res, matched_gt, n_gt = np.broadcast_arrays(
        *(np.asarray(a, np.float64) for a in (matched_res, n_res, matched_gt, n_gt))
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(n_res > 0, matched_res / n_res, 0.0)
        recall = np.where(n_gt > 0, matched_gt / n_gt, 0.0)
        precision = np.where(n_res == 0, 1.0, precision)
        recall = np.where((n_gt == 0) & (n_res > 0), 1.0, recall)
        recall = np.where((n_gt == 0) & (n_res == 0), 1.0, recall)
        total = precision + recall
        return np.where(total == 0, 0.0, 2 * precision * recall / total)


def f_measure(
    gt_mask: np.ndarray,
    res_mask: np.ndarray,
    void: np.ndarray | None = None,
    *,
    radius: int | None = None,
) -> float:
    """Boundary F measure of one object in one frame (reference path, dense disk dilation).

    Both masks are first cleared on void pixels; boundaries come from :func:`boundary_map`; precision is the share
    of result boundary pixels inside the disk dilation of the ground-truth boundary, recall the converse.
    Edge cases: no result boundary but some GT boundary -> P=1, R=0; the reverse -> P=0, R=1; neither -> P=R=1.
    F = 2PR / (P + R), or 0 when P + R = 0.

    Args:
        gt_mask, res_mask: (H, W) binary masks of one object.
        void: optional (H, W) binary void mask.
        radius: dilation radius in pixels; default :func:`boundary_radius` of the mask size.
    """
    if gt_mask.shape != res_mask.shape:
        raise InputError(
            f"ground truth shape {gt_mask.shape} differs from result shape {res_mask.shape}"
        )
    keep = _not_void(gt_mask.shape, void)
    radius = boundary_radius(*gt_mask.shape) if radius is None else radius
    b_res = boundary_map(res_mask.astype(bool) & keep)
    b_gt = boundary_map(gt_mask.astype(bool) & keep)
    structure = disk(radius)
    dil_res = ndimage.binary_dilation(b_res, structure)
    dil_gt = ndimage.binary_dilation(b_gt, structure)
    counts = (np.sum(b_res & dil_gt), np.sum(b_res), np.sum(b_gt & dil_res), np.sum(b_gt))
    return float(_f_from_counts(*counts))


def _boundary_points(labels: np.ndarray, count: int) -> list[np.ndarray]:
    """(N_i, 2) int (y, x) boundary pixels of the binary masks ``labels == i`` for i = 1..count.

    Each mask's boundary is computed on its bounding box grown by one pixel up/left (boundaries sit half a pixel
    toward the origin) and one pixel down/right (so the crop's last row and column are background and the
    last-row/last-column rules of :func:`boundary_map` act only where they do on the full image).
    """
    empty = np.zeros((0, 2), np.intp)
    out = [empty] * count
    height, width = labels.shape
    for i, box in enumerate(ndimage.find_objects(labels, max_label=count)):
        if box is None:
            continue
        y0, x0 = max(box[0].start - 1, 0), max(box[1].start - 1, 0)
        crop = labels[y0 : min(box[0].stop + 1, height), x0 : min(box[1].stop + 1, width)] == i + 1
        out[i] = np.argwhere(boundary_map(crop)) + (y0, x0)
    return out


def _matched_counts(
    queries: list[np.ndarray], targets: list[np.ndarray], radius: int
) -> np.ndarray:
    """``out[i, j]`` = number of points of ``queries[i]`` within Euclidean distance ``radius`` of ``targets[j]``.

    Equals ``|Q_i & dilate(T_j, disk(radius))|``: only points inside the target's bounding box grown by ``radius``
    can match, and the squared distance to the nearest target point is an integer compared with ``radius**2``.
    """
    out = np.zeros((len(queries), len(targets)), np.int64)
    sizes = np.array([len(q) for q in queries])
    if sizes.sum() == 0:
        return out
    points = np.concatenate(queries)
    owner = np.repeat(np.arange(len(queries)), sizes)
    for j, target in enumerate(targets):
        if len(target) == 0:
            continue
        low, high = target.min(0) - radius, target.max(0) + radius
        inside = np.all((points >= low) & (points <= high), axis=1)
        if not inside.any():
            continue
        dist, _ = cKDTree(target).query(points[inside], k=1, distance_upper_bound=radius + 0.5)
        near = np.isfinite(dist)
        near[near] = np.rint(dist[near] ** 2) <= radius**2
        out[:, j] = np.bincount(owner[inside][near], minlength=len(queries))
    return out


def _small_labels(labels: np.ndarray, count: int, void: np.ndarray | None) -> np.ndarray:
    """Labels as uint8 with void and ids above ``count`` set to 0 (copies only when needed)."""
    labels = np.asarray(labels)
    if void is not None:
        labels = np.where(void, 0, labels)
    if labels.size and labels.max() > count:
        labels = np.where(labels > count, 0, labels)
    return labels.astype(np.uint8, copy=False)


def frame_scores(
    res_labels: np.ndarray,
    gt_labels: np.ndarray,
    num_proposals: int,
    num_objects: int,
    *,
    radius: int,
    void: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """J and F of every (proposal, object) pair in one frame (fast path; equals the reference path exactly).

    Args:
        res_labels: (H, W) integer result ids; proposal p is ``res_labels == p`` for p = 1..num_proposals
            (ids above num_proposals are ignored; ids with no pixels are empty proposals).
        gt_labels: (H, W) integer ground-truth ids; object k is ``gt_labels == k`` for k = 1..num_objects
            (other values count as background, so set void to 0 or pass it as ``void``).
        num_proposals: P, the number of proposal rows, at most 255.
        num_objects: K, the number of ground-truth objects, at most 255.
        radius: F dilation radius in pixels.
        void: optional (H, W) bool void mask; void pixels are removed from both sides.

    Returns:
        (J, F): two (P, K) float64 arrays.
    """
    if res_labels.shape != gt_labels.shape:
        raise InputError(
            f"result shape {res_labels.shape} differs from ground truth shape {gt_labels.shape}"
        )
    if max(num_proposals, num_objects) > 255:
        raise InputError(
            f"at most 255 proposals and objects, got {num_proposals} and {num_objects}"
        )
    res = _small_labels(res_labels, num_proposals, void)
    gt = _small_labels(gt_labels, num_objects, void)
    joint = res.astype(np.uint16) * np.uint16(num_objects + 1) + gt
    hist = np.bincount(joint.ravel(), minlength=(num_proposals + 1) * (num_objects + 1))
    hist = hist.reshape(num_proposals + 1, num_objects + 1)
    inter = hist[1:, 1:]
    union = hist[1:, :].sum(1)[:, None] + hist[:, 1:].sum(0)[None, :] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        j = np.where(union == 0, 1.0, inter / union)
    b_res = _boundary_points(res, num_proposals)
    b_gt = _boundary_points(gt, num_objects)
    n_res = np.array([len(b) for b in b_res])[:, None]
    n_gt = np.array([len(b) for b in b_gt])[None, :]
    f = _f_from_counts(
        _matched_counts(b_res, b_gt, radius), n_res, _matched_counts(b_gt, b_res, radius).T, n_gt
    )
    return j, f.reshape(num_proposals, num_objects)


def decay_bins(num_frames: int) -> list[slice]:
    """The four overlapping frame bins of the official Decay statistic.

    ``ids = round(linspace(1, T, 5) + 1e-10) - 1`` cast to uint8 (so indices wrap modulo 256: bins are only
    meaningful for T <= 256, as ``shared/design/DAVIS_METRIC.md`` says), bin i = ``[ids[i], ids[i+1] + 1)``. The
    ``+ 1`` does not wrap: under NumPy 1.x, which the official scorer's published numbers were computed with, a
    uint8 scalar plus a Python int is an int64 (255 + 1 = 256); under NumPy >= 2 it stays uint8 and 255 + 1 wraps to
    0, which would empty the last bin of a 256-frame sequence (Decay NaN).
    """
    ids = (np.round(np.linspace(1, num_frames, 5) + 1e-10) - 1).astype(np.int64) % 256
    return [slice(int(ids[i]), int(ids[i + 1]) + 1) for i in range(4)]


def _nanmean(values: np.ndarray) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=RuntimeWarning)
        return float(np.nanmean(values))


def object_statistics(values: np.ndarray) -> tuple[float, float, float]:
    """Mean, recall and decay of one object's per-frame J (or F) values.

    Args:
        values: (T,) float per-frame scores of the evaluated frames.

    Returns:
        (mean, recall, decay): nanmean; share of frames with a score strictly above 0.5; nanmean of the first
        :func:`decay_bins` bin minus nanmean of the last. NaN where a bin (or the input) is empty.
    """
    values = np.asarray(values, np.float64)
    if len(values) > 256:
        warnings.warn(
            f"Decay of a {len(values)}-frame sequence: the official binning casts frame indices to uint8, which "
            "wraps above 256 frames, so this Decay is NaN or uses the wrong frames (reproduced as is)",
            stacklevel=2,
        )
    bins = decay_bins(len(values))
    decay = _nanmean(values[bins[0]]) - _nanmean(values[bins[3]])
    return _nanmean(values), _nanmean(values > 0.5), decay
