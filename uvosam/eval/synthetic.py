"""Small synthetic datasets in the DAVIS-2017 folder layout, and helpers to write result folders.

For tests and benchmarks of the DAVIS scorer and of anything that runs a model over a DAVIS folder. Each sequence
shows ellipses moving on straight lines (bouncing off the border) over a smooth textured background; later ids are
drawn on top of earlier ones. Annotations are palette PNGs with the DAVIS colour map; optional void (255) rings
surround the objects; optionally one extra object (id ``objects + 1``) enters half-way through, so it is absent
from the first annotation frame and therefore not evaluated, exactly as in the official protocol.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage

from uvosam.errors import InputError, MissingInputError
from uvosam.eval.layout import RESOLUTION, TASKS, annotation_folder, imageset_path
from uvosam.eval.masks_io import davis_palette, read_index_png, write_index_png

__all__ = [
    "frame_name",
    "make_synthetic_davis",
    "read_annotations",
    "render_labels",
    "write_davis_layout",
    "write_results",
]

VOID = 255


def frame_name(index: int) -> str:
    """DAVIS frame stem: 0 -> "00000"."""
    return f"{index:05d}"


def _tracks(
    rng: np.random.Generator, count: int, frames: int, height: int, width: int
) -> np.ndarray:
    """(count, frames, 4) float rows (cy, cx, ry, rx) of ellipses moving and bouncing inside the image."""
    radii = rng.uniform(0.08, 0.22, size=(count, 2)) * np.array([height, width])
    radii = np.maximum(radii, 2.0)
    centre = rng.uniform(0.25, 0.75, size=(count, 2)) * np.array([height, width])
    speed = rng.uniform(-0.03, 0.03, size=(count, 2)) * np.array([height, width])
    out = np.empty((count, frames, 4))
    for t in range(frames):
        out[:, t, :2], out[:, t, 2:] = centre, radii
        centre = centre + speed
        low, high = radii, np.array([height, width]) - radii
        bounced = (centre < low) | (centre > high)
        speed = np.where(bounced, -speed, speed)
        centre = np.clip(centre, low, high)
    return out


def render_labels(ellipses: np.ndarray, height: int, width: int, ids: Sequence[int]) -> np.ndarray:
    """Draw ellipses into one label map, later entries on top.

    Args:
        ellipses: (N, 4) float rows (cy, cx, ry, rx) in pixels; rows with NaN are skipped.
        ids: N object ids to paint.

    Returns:
        (H, W) uint8 label map (0 = background).
    """
    yy, xx = np.ogrid[:height, :width]
    labels = np.zeros((height, width), np.uint8)
    for (cy, cx, ry, rx), obj_id in zip(ellipses, ids):
        if np.isnan(cy):
            continue
        labels[((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0] = obj_id
    return labels


def _add_void(labels: np.ndarray) -> np.ndarray:
    width = max(1, round(min(labels.shape) / 160))
    ring = ndimage.binary_dilation(labels > 0, iterations=width) & (labels == 0)
    return np.where(ring, VOID, labels).astype(np.uint8)


def _image(background: np.ndarray, labels: np.ndarray, colours: np.ndarray) -> np.ndarray:
    rgb = background.copy()
    fg = (labels > 0) & (labels != VOID)
    rgb[fg] = colours[labels[fg]]
    return rgb


def _sequence(
    rng: np.random.Generator,
    frames: int,
    height: int,
    width: int,
    objects: int,
    *,
    void: bool,
    late_object: bool,
) -> tuple[np.ndarray, np.ndarray]:
    count = objects + int(late_object)
    tracks = _tracks(rng, count, frames, height, width)
    if late_object:
        tracks[objects, : max(1, frames // 2)] = np.nan
    colours = np.zeros((256, 3), np.uint8)
    colours[1 : count + 1] = rng.integers(140, 256, size=(count, 3))
    coarse = rng.integers(20, 110, size=(max(2, height // 8), max(2, width // 8), 3)).astype(
        np.float64
    )
    zoom = (height / coarse.shape[0], width / coarse.shape[1], 1)
    background = np.clip(ndimage.zoom(coarse, zoom, order=1), 0, 255).astype(np.uint8)[
        :height, :width
    ]
    labels = np.stack(
        [render_labels(tracks[:, t], height, width, range(1, count + 1)) for t in range(frames)]
    )
    if void:
        labels = np.stack([_add_void(lab) for lab in labels])
    images = np.stack([_image(background, lab, colours) for lab in labels])
    return labels, images


def make_synthetic_davis(
    root: str | Path,
    *,
    sequences: int = 3,
    frames: int | Sequence[int] = 10,
    height: int = 48,
    width: int = 64,
    objects: int | Sequence[int] = 2,
    seed: int = 0,
    void: bool = True,
    late_object: bool = True,
    subset: str = "val",
) -> list[str]:
    """Write a synthetic DAVIS-2017 dataset under ``root`` and return its sequence names.

    Writes ``JPEGImages/480p/<seq>/00000.jpg...``, the same labels to ``Annotations_unsupervised/480p`` and
    ``Annotations/480p`` (palette PNGs, DAVIS colours, 255 = void), and the set file ``ImageSets/2017/<subset>.txt``
    (plus ``ImageSets/2019/<subset>.txt`` for test-dev / test-challenge). Deterministic in ``seed``.

    Args:
        root: the DAVIS folder to create (existing files are overwritten).
        sequences: number of sequences, named ``synth-000``, ``synth-001``...
        frames: frames per sequence, one value or one per sequence.
        height, width: frame size in pixels.
        objects: objects present from the first frame (ids 1..objects), one value or one per sequence.
        void: surround objects with a void (255) ring, ``max(1, round(min(H, W) / 160))`` pixels wide.
        late_object: add object ``objects + 1`` from frame ``max(1, frames // 2)`` on (not evaluated: K comes
            from the first frame).
        subset: name of the set file.
    """
    root = Path(root)
    rng = np.random.default_rng(seed)
    frame_counts = [frames] * sequences if isinstance(frames, int) else list(frames)
    object_counts = [objects] * sequences if isinstance(objects, int) else list(objects)
    if len(frame_counts) != sequences or len(object_counts) != sequences:
        raise InputError(
            f"frames and objects need one value or {sequences} values, got {frames!r}, {objects!r}"
        )
    labels, images = {}, {}
    for i, (t_count, k_count) in enumerate(zip(frame_counts, object_counts)):
        name = f"synth-{i:03d}"
        labels[name], images[name] = _sequence(
            rng, t_count, height, width, k_count, void=void, late_object=late_object
        )
    return write_davis_layout(root, labels, images_by_sequence=images, subset=subset)


def write_davis_layout(
    root: str | Path,
    labels_by_sequence: Mapping[str, np.ndarray],
    *,
    images_by_sequence: Mapping[str, np.ndarray] | None = None,
    subset: str = "val",
) -> list[str]:
    """Write given ground truth as a DAVIS-2017 folder (jpgs, both annotation folders, ImageSets files).

    Args:
        root: the DAVIS folder to create.
        labels_by_sequence: per sequence, (T, H, W) integer ids in 0..255 (255 = void), written as palette PNGs
            ``00000.png``... to ``Annotations_unsupervised/480p`` and ``Annotations/480p``.
        images_by_sequence: optional (T, H, W, 3) uint8 RGB frames; default the labels drawn in DAVIS colours.
        subset: the set file listing the sequences in mapping order (``ImageSets/2017/<subset>.txt``, plus
            ``ImageSets/2019`` for test-dev / test-challenge).

    Returns:
        The sequence names.
    """
    root = Path(root)
    for name, given in labels_by_sequence.items():
        labels = np.asarray(given)
        if labels.ndim != 3:
            raise InputError(
                f"sequence {name!r}: expected (T, H, W) labels, got shape {labels.shape}"
            )
        images = davis_palette()[labels] if images_by_sequence is None else images_by_sequence[name]
        for t, (lab, rgb) in enumerate(zip(labels, images)):
            jpg = root / "JPEGImages" / RESOLUTION / name / f"{frame_name(t)}.jpg"
            jpg.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.asarray(rgb, np.uint8)).save(jpg, quality=85)
            for task in TASKS:
                write_index_png(
                    root / annotation_folder(task) / RESOLUTION / name / f"{frame_name(t)}.png", lab
                )
    names = list(labels_by_sequence)
    for task in TASKS:
        set_file = imageset_path(root, subset=subset, task=task)
        set_file.parent.mkdir(parents=True, exist_ok=True)
        set_file.write_text("".join(f"{n}\n" for n in names))
    return names


def read_annotations(root: str | Path, sequence: str, *, task: str = "unsupervised") -> np.ndarray:
    """(T, H, W) ground-truth ids of one sequence (255 = void), frames in file order."""
    folder = Path(root) / annotation_folder(task) / RESOLUTION / sequence
    paths = sorted(folder.glob("*.png"))
    if not paths:
        raise MissingInputError(f"no annotation PNGs in {folder}")
    return np.stack([read_index_png(p) for p in paths])


def write_results(
    results_dir: str | Path,
    labels_by_sequence: Mapping[str, np.ndarray | Sequence[np.ndarray]],
    *,
    frame_ids: Mapping[str, Sequence[str]] | None = None,
) -> Path:
    """Write a results folder ``<results_dir>/<seq>/<frame>.png`` of palette PNGs.

    Args:
        labels_by_sequence: per sequence, (T, H, W) integer object ids in 0..255 (0 = background).
        frame_ids: optional file stems per sequence; default ``00000``, ``00001``...

    Returns:
        ``results_dir`` as a Path.
    """
    results_dir = Path(results_dir)
    for name, labels in labels_by_sequence.items():
        stems = list(frame_ids[name]) if frame_ids else [frame_name(t) for t in range(len(labels))]
        if len(stems) != len(labels):
            raise InputError(
                f"sequence {name!r}: {len(labels)} label maps but {len(stems)} frame ids"
            )
        for stem, lab in zip(stems, labels):
            write_index_png(results_dir / name / f"{stem}.png", np.asarray(lab))
    results_dir.mkdir(parents=True, exist_ok=True)
    return results_dir
