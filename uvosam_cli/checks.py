"""Checks the commands make before any model loads or any data is read: output paths, ``--sam``, ``--device``
and tracker weights.

A run can take hours (a YouTube-VIS split, DAVIS with SAM ViT-H on a CPU); an output path that cannot be written or
a model name that does not exist must stop it at the start, not after the work. Each check raises ``ValueError``
(or ``MissingPackageError``), which ``uvosam_cli.main`` prints as one line with exit code 2.
"""

from __future__ import annotations

import argparse
import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from uvosam import devices
from uvosam.config import SEGMENTER_MODEL_TYPES
from uvosam.errors import InputError, MissingInputError
from uvosam_cli.arguments import segmenter_config


def check_output_file(
    path: Path, option: str, *, example_name: str, beside: tuple[Path, ...] = ()
) -> None:
    """Raise ``ValueError`` unless a file can be written at ``path``: not an existing folder, and under a folder
    that exists (writable) or can be created. An existing file is fine (it is replaced).

    ``option``: how the message names the path (``"--out"``); ``example_name``: a file name to suggest inside the
    folder when ``path`` is one (``"results.json"``); ``beside``: further files the command writes next to it (a
    zip, a record), which must not be existing folders either.
    """
    with _searchable(path, option):
        _check_output_file(path, option, example_name=example_name, beside=beside)


def _check_output_file(
    path: Path, option: str, *, example_name: str, beside: tuple[Path, ...]
) -> None:
    if path.is_dir():
        raise InputError(
            f"{option} {path} is a folder; expected the path of the file to write: pass e.g. "
            f"{option} {path / example_name}"
        )
    for other in beside:
        if other.is_dir():
            raise InputError(
                f"{option} {path}: {other.name} is written beside it, but {other} is a folder; move that folder "
                f"away, or pass another {option}"
            )
    _check_parent_folder(path, option)


def check_output_folder(path: Path, option: str, *, instead: str | None = None) -> None:
    """Raise ``ValueError`` unless ``path`` is a writable folder or can be created as one.

    ``instead``: what the message advises when it cannot be written (default: another ``option`` path; a rerender
    of a RUN: ``--out``)."""
    with _searchable(path, option):
        _check_output_folder(path, option, instead or _elsewhere(option))


def _check_output_folder(path: Path, option: str, instead: str) -> None:
    if path.is_symlink() and not path.exists():
        raise InputError(
            f"{option} {path} is a link to {os.readlink(path)}, which does not exist; create that folder, or pass "
            f"another {option}"
        )
    if path.exists() and not path.is_dir():
        raise InputError(
            f"{option} {path} is a file; expected an output folder (created if missing): pass another {option}, "
            f"or move the file away"
        )
    if path.is_dir():
        _check_writable(path, path, option, instead)
        return
    _check_parent_folder(path, option, instead)


@contextlib.contextmanager
def _searchable(path: Path, option: str) -> Iterator[None]:
    """Raise the ``PermissionError`` of a folder above ``path`` that cannot be searched (no ``x``: even whether
    ``path`` exists cannot be told) as the check's ``ValueError``."""
    try:
        yield
    except PermissionError as err:
        folder = _unsearchable(Path(os.fsdecode(err.filename)) if err.filename else path)
        raise InputError(
            f"{option} {path} cannot be written: no permission to open the folder {folder}; {_elsewhere(option)}"
        ) from None


def _unsearchable(path: Path) -> Path:
    """The folder that cannot be searched above ``path``, whose look-up was refused: the nearest folder above it
    that ``os.stat`` accepts (the refusal is below it: for ``noX/sub/deeper``, ``noX``, not ``noX/sub``)."""
    folder = Path(os.path.abspath(path)).parent
    while folder != folder.parent:
        try:
            os.stat(folder)
        except OSError:
            folder = folder.parent
            continue
        return folder
    return folder


def _check_parent_folder(path: Path, option: str, instead: str | None = None) -> None:
    """The nearest existing folder above ``path`` must be a writable folder (the rest is created)."""
    parent = Path(os.path.abspath(path)).parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise InputError(
            f"{option} {path} cannot be written: {parent} is a file, not a folder, so nothing can be created "
            f"under it; pass a {option} path outside it, or move {parent} away"
        )
    _check_writable(parent, path, option, instead)


def _check_writable(folder: Path, path: Path, option: str, instead: str | None = None) -> None:
    if os.access(folder, os.W_OK | os.X_OK):
        return
    why = (
        f"{folder} is on a read-only file system"
        if _read_only(folder)
        else f"no permission to write in {folder}"
    )
    raise InputError(f"{option} {path} cannot be written: {why}; {instead or _elsewhere(option)}")


def _elsewhere(option: str) -> str:
    """The advice of a refusal to write at an ``option`` path."""
    return f"pass a {option} path in a folder you can write to"


def _read_only(folder: Path) -> bool:
    """Whether ``folder`` is on a file system mounted read-only (where ``os.access`` says no to anyone)."""
    try:
        return bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    except (AttributeError, OSError):  # no statvfs on Windows
        return False


def check_readable(path: Path) -> None:
    """Raise ``ValueError`` when the input ``path`` (a file, or a frame folder) exists but cannot be read (no
    permission). A missing one is left to the reader's message."""
    folder = path.is_dir()
    if path.exists() and not os.access(path, os.R_OK | (os.X_OK if folder else 0)):
        raise InputError(
            f"{path} cannot be read: no permission to read this {'folder' if folder else 'file'} (see its owner "
            "and mode: ls -l); pass one you can read"
        )


def check_device(device: str) -> None:
    """Raise ``ValueError`` unless torch can use ``--device`` here (``uvosam.devices.check_device``)."""
    devices.check_device(device, option="--device")


def sam_weight_names() -> list[str]:
    """The weight-table keys ``--sam`` takes besides the model types (``sam_vit_b`` ...)."""
    from uvosam import weight_table
    from uvosam.segmenter import weights_key

    keys = [weights_key(model_type) for model_type in SEGMENTER_MODEL_TYPES]
    return [key for key in keys if key in weight_table.WEIGHTS]


def not_a_file(path: Path) -> str:
    """What is at ``path`` instead of the file an option names, for its message: a folder, or nothing."""
    return f"{path} is a folder" if path.is_dir() else f"no file at {path}"


def _weight_file_problem(value: str, names: list[str]) -> str | None:
    """None if ``value`` is an existing file or a path named like the released file of one of ``names`` (looked up
    by that name), else what is there instead (for the message)."""
    from uvosam import weight_table

    path = Path(value).expanduser()
    released = {weight_table.WEIGHTS[name].basename for name in names}
    if path.is_file() or (path.name in released and not path.is_dir()):
        return None
    return not_a_file(path)


def check_sam(sam: str) -> None:
    """Raise ``ValueError`` unless ``--sam`` is a SAM / SAM 2.1 model type, a SAM weight-table key, an existing
    checkpoint file, or a path whose file name is a released SAM / SAM 2.1 checkpoint (looked up by that name)."""
    names = sam_weight_names()
    if sam in SEGMENTER_MODEL_TYPES or sam in names:
        return
    found = _weight_file_problem(sam, names)
    if found is None:
        return
    from uvosam.weight_table import unknown_weights_message

    raise InputError(f"--sam {unknown_weights_message(sam, 'sam', found)}")


def check_tracker_weights(weights: str, option: str, *, also: tuple[str, ...] = ()) -> None:
    """Raise ``ValueError`` unless ``weights`` is a tracker weight-table key (``idol-coco-r50`` ...), an
    existing checkpoint file, or a path whose file name is a released tracker checkpoint (looked up by that
    name). ``also``: further words accepted (any case) and listed in the message (``("none",)``)."""
    from uvosam import weight_table

    names = list(weight_table.TRACKERS)
    if weights in names or weights.lower() in also:
        return
    found = _weight_file_problem(weights, names)
    if found is None:
        return
    if weights in weight_table.WEIGHTS or weights in SEGMENTER_MODEL_TYPES:  # a mask model's
        found = f"{weights} is a SAM model, not a tracker"
    raise InputError(
        f"{option} {weight_table.unknown_weights_message(weights, 'tracker', found, also=also)}"
    )


def check_weight_files(args: argparse.Namespace) -> None:
    """Find the ``--tracker`` and ``--sam`` weight files now (``uvosam.pipeline.locate_weights``: local first, then the
    Hub, which may download them), for a command that has slow work to do before it loads the models (a link to
    download): a missing file is reported in seconds, not after that work and the tracker's load.

    Raises:
        FileNotFoundError: a file is missing (where it was looked for, how to get it).
        WeightsError: a file is corrupt.
    """
    # looked up when called: the tests of the commands replace it with their models
    from uvosam import pipeline

    pipeline.locate_weights(str(args.tracker), args.sam, segmenter_config=segmenter_config(args))


def check_config_yaml(path: Path, option: str) -> None:
    """Raise ``FileNotFoundError`` for a missing ``path``, ``ValueError`` unless it is a file (not a folder, nor a
    device such as ``/dev/null``); then read and parse it as an IDOL YAML (``load_tracker_yaml``: its errors, e.g.
    ``FileNotFoundError`` for a missing ``_BASE_``)."""
    from uvosam.tracker.yaml_config import EXPECTED_YAML, load_tracker_yaml

    if not path.exists():
        raise MissingInputError(f"{option} {path} does not exist; {EXPECTED_YAML}")
    if not path.is_file():
        what = "a folder" if path.is_dir() else "not a regular file"
        raise InputError(f"{option} {path} is {what}; {EXPECTED_YAML}")
    load_tracker_yaml(path)


def check_model_arguments(args: argparse.Namespace) -> None:
    """The checks of ``--tracker``, ``--config-yaml`` (read and parsed), ``--sam``, ``--sam-type``, ``--device`` and
    of the ``sam2`` package a SAM 2.1 ``--sam`` needs, all instant: a command calls this before it reads data or
    loads a model.

    Raises:
        ValueError: a bad ``--tracker``, ``--config-yaml``, ``--sam``, ``--device``, or a ``--sam-type`` that does
            not fit ``--sam``.
        FileNotFoundError: ``--config-yaml`` (or a ``_BASE_`` it names) does not exist.
        MissingPackageError: ``--sam`` is SAM 2.1 and the sam2 package is not installed.
        WeightsError: a ``--sam`` PATH that holds no SAM of a size uvosam builds (``check_segmenter_file``).
    """
    from uvosam.segmenter import check_segmenter_file, check_segmenter_packages

    config = segmenter_config(args)
    check_tracker_weights(str(args.tracker), "--tracker")
    if args.config_yaml is not None:
        check_config_yaml(Path(args.config_yaml), "--config-yaml")
    check_sam(args.sam)
    check_device(args.device)
    check_segmenter_packages(args.sam, config)
    # a --sam PATH that no SAM uvosam builds can take: said before the tracker loads (its keys and shapes read)
    check_segmenter_file(args.sam, config)
