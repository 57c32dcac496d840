"""What made an export: ``run.json`` beside its files (and in its zip) and the "Made with" section of its README.txt.

Masks downloaded from the app or written by ``uvosam segment`` are often scored weeks later; ``run.json`` says which
uvosam, models and settings made them, and whether they were re-rendered from a run's cached masks (and how), so a
score can be traced to SAM ViT-H or SAM 2.1 tiny, a tracker preset or checkpoint, a threshold. It is written by
``ExportWriter.close`` from a record ``run_job`` / ``rerender`` build here (``run_record`` / ``rerender_record``);
the mask cache keeps the run's record, so a re-render still names the run's models.

``run.json`` (``RUN_FORMAT``; every key is present, ``null`` where not known)::

    format           "uvosam-run/1"
    uvosam_version   the uvosam that wrote this export
    uvosam_code      which code that was: the version and a hash of its source (``uvosam.code_identity``:
                     "0.1.0+src.1a2b3c4d5e6f"); absent from files of earlier versions
    created_utc      ISO 8601 UTC ("2025-05-01T12:00:00Z"): when the run (or the re-render) started
    video            name, source (the input's file or folder name, no folders above it), width, height (the
                     frames' size, which the masks have: frames are never resized for the export), source_width,
                     source_height (the source's frames: larger where fit_side scaled them down, else the same),
                     fps (the source's; for a folder or zip of frames, which has none, the rate the run used: 24
                     unless given), source_frames
    settings         what decides the masks: min_score, max_objects (PipelineConfig), stride, max_frames,
                     fit_side (JobOptions; null: the source size); a re-render keeps its run's (its own min_score
                     is under "rerender")
    models           device (the mask model's); tracker: class, then what the tracker's describe() says (for
                     IDOLTracker: weights = preset name or checkpoint file name, config_yaml, precision,
                     input_min_side / input_max_side = the detector's own frame resize, thresholds, ...; for a
                     checkpoint or YAML given as a local path, also weights_path / config_yaml_path, the path as
                     given, and weights_sha256 / config_yaml_sha256: ``weight_files_record``);
                     mask_model: class, family ("SAM" / "SAM 2.1"), then BoxSegmenterBase.describe() (model_type,
                     weights, parameters, fast, compile, cuda_graph, encoder_dtype, ...; weights_path and
                     weights_sha256 for a local file, as for the tracker). weights null = the model
                     was built from an object, not loaded by name, so only its class, config and parameter count
                     are known, and model_type is the released type its architecture has (null for another size).
                     null when not recorded (an ExportWriter given no record)
    output           this export's video: style, output_max_side (they never change the masks)
    rerender         null for a run; a re-render: from_cached_masks (true), keep_ids (null = all; the ids once
                     split), merge ({"source id": target id}), min_score, run_created_utc, run_uvosam_version,
                     run_uvosam_code (the code that made the masks; null for a cache of an earlier version; it
                     may differ from this export's uvosam_code, which re-rendered them), split ({"track id":
                     [frames]}) and split_ids ({"track@frame": new id}, in the order of the new ids: by split
                     frame, then track id)
    export           frames, tracks (what was written)
"""

from __future__ import annotations

import json
import os
import textwrap
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from uvosam import __version__, atomic_files
from uvosam.code_identity import CODE_KEY, code_identity
from uvosam.config import SAM2_MODEL_TYPES, SAM_MODEL_TYPES, SEGMENTER_MODEL_TYPES

if TYPE_CHECKING:
    from uvosam.pipeline import UVOSAM

RUN_FORMAT = "uvosam-run/1"
RUN_JSON = "run.json"
TEXT_ERRORS = "backslashreplace"
"""How run.json and the README write a name that is not UTF-8 (a lone surrogate): as ``\\udcff``."""

_KEYS = (
    "format",
    "uvosam_version",
    CODE_KEY,
    "created_utc",
    "video",
    "settings",
    "models",
    "output",
    "rerender",
    "export",
)


def utc_now() -> str:
    """The current time, ISO 8601 in UTC to the second: ``"2025-05-01T12:00:00Z"``."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def describe_component(component: object) -> dict[str, Any]:
    """``{"class": <its class name>}`` plus what its ``describe()`` returns, if it has one (``IDOLTracker`` and the
    mask stages do; any other tracker or segmenter is named by its class).

    Raises:
        TypeError: ``describe()`` returned a value JSON cannot hold (a NumPy scalar, NaN): said when the run starts
            rather than when its export closes (which would fail the finished run).
    """
    record: dict[str, Any] = {"class": type(component).__name__}
    describe = getattr(component, "describe", None)
    if callable(describe):
        described = describe()
        try:
            json.dumps(described, allow_nan=False)
        except (TypeError, ValueError) as err:
            raise TypeError(
                f"{record['class']}.describe() must return JSON values for run.json (str, finite int/float, bool, "
                f"None, lists and str-keyed dicts of them); got {described!r} ({err}). Return plain Python values, "
                "e.g. float(x) for a NumPy scalar."
            ) from None
        record.update(described)
    return record


def _family(model_type: object) -> str | None:
    if model_type in SAM2_MODEL_TYPES:
        return "SAM 2.1"
    return "SAM" if model_type in SAM_MODEL_TYPES else None


def weight_files_record(
    *,
    tracker: str | os.PathLike | None = None,
    config_yaml: str | os.PathLike | None = None,
    sam: str | os.PathLike | None = None,
) -> dict[str, dict[str, str]]:
    """The models' local files, for ``run.json``: ``{"tracker" | "config_yaml" | "sam": {"path": as given, "sha256":
    hex}}`` for each argument that is a file here, not a released model's name (``weight_table.WEIGHTS`` key or a
    SAM model type: those name one file already). Their describe() names a file by its name only; the hash tells two
    ``weights.pth`` apart (``weight_checksums.file_sha256``: remembered beside the file, so read once)."""
    from uvosam.weight_checksums import file_sha256
    from uvosam.weight_table import WEIGHTS

    files = {}
    for role, given in (("tracker", tracker), ("config_yaml", config_yaml), ("sam", sam)):
        if given is None or str(given) in WEIGHTS or str(given) in SEGMENTER_MODEL_TYPES:
            continue
        if Path(given).is_file():
            files[role] = {"path": str(given), "sha256": file_sha256(given)}
    return files


def models_record(
    pipe: UVOSAM, weight_files: Mapping[str, Mapping[str, str]] | None = None
) -> dict[str, Any]:
    """The ``models`` entry of ``run.json`` for a pipeline (loaded by ``from_pretrained`` or built by hand);
    ``weight_files`` (``weight_files_record``) adds ``weights_path`` / ``weights_sha256`` to the tracker and the mask
    model and ``config_yaml_path`` / ``config_yaml_sha256`` to the tracker, for the files it has."""
    files = weight_files or {}
    mask_model = describe_component(pipe.segmenter)
    family = mask_model.pop("family", None) or _family(mask_model.get("model_type"))
    mask_model = {
        "class": mask_model.pop("class"),
        "family": family,
        **mask_model,
        **_file_keys(files, "sam", "weights"),
    }
    tracker = describe_component(pipe.tracker)
    tracker.update(_file_keys(files, "tracker", "weights"))
    tracker.update(_file_keys(files, "config_yaml", "config_yaml"))
    device = getattr(pipe.segmenter, "device", None)
    return {
        "device": None if device is None else str(device),
        "tracker": tracker,
        "mask_model": mask_model,
    }


def _file_keys(files: Mapping[str, Mapping[str, str]], role: str, key: str) -> dict[str, str]:
    """``{key_path, key_sha256}`` of ``files[role]``, or nothing when that file was not given as a path."""
    if role not in files:
        return {}
    return {f"{key}_path": files[role]["path"], f"{key}_sha256": files[role]["sha256"]}


def _head(video: Mapping[str, Any]) -> dict[str, Any]:
    """The entries every record starts with: format, uvosam version and code, the time now (UTC) and the video."""
    return {
        "format": RUN_FORMAT,
        "uvosam_version": __version__,
        CODE_KEY: code_identity(),
        "created_utc": utc_now(),
        "video": dict(video),
    }


def run_record(
    pipe: UVOSAM,
    *,
    video: Mapping[str, Any],
    stride: int,
    max_frames: int | None,
    output: Mapping[str, Any],
    fit_side: int | None = None,
    weight_files: Mapping[str, Mapping[str, str]] | None = None,
) -> dict[str, Any]:
    """The record of a run of ``pipe`` starting now (``run.json`` less its ``export`` entry; JSON-able).

    Args:
        video: the ``video`` entry (module docstring). stride, max_frames: the run's frame selection.
        fit_side: the longest side its frames were scaled down to (``JobOptions.fit_side``; None: not scaled).
        output: the ``output`` entry (the video's style and size).
        weight_files: the models' local files (``weight_files_record``), for ``models_record``.
    """
    return {
        **_head(video),
        "settings": {
            "min_score": float(pipe.config.min_score),
            "max_objects": pipe.config.max_objects,
            "stride": int(stride),
            "max_frames": max_frames,
            "fit_side": fit_side,
        },
        "models": models_record(pipe, weight_files),
        "output": dict(output),
        "rerender": None,
        "export": None,
    }


def rerender_record(
    run: Mapping[str, Any],
    *,
    video: Mapping[str, Any],
    keep_ids: Iterable[int] | None,
    merge: Mapping[int, int] | None,
    min_score: float,
    output: Mapping[str, Any],
    split: Mapping[tuple[int, int], int] | None = None,
) -> dict[str, Any]:
    """The record of a re-render starting now from the cached masks of the run recorded as ``run`` (its
    ``run_record``, which its mask cache keeps).

    The run's ``settings`` and ``models`` are carried over unchanged (they made the masks); ``rerender`` says how
    this export differs: the tracks kept (``None`` = all), the merge ``{source: target}``, the min_score and the
    split, ``{(track_id, frame): new_id}`` (``track_edit.check_split``). ``output``: the new
    video's.
    """
    return {
        **_head(video),
        "settings": run["settings"],
        "models": run["models"],
        "output": dict(output),
        "rerender": {
            "from_cached_masks": True,
            "keep_ids": None if keep_ids is None else sorted(int(i) for i in keep_ids),
            "merge": {str(int(k)): int(v) for k, v in sorted((merge or {}).items())},
            "min_score": float(min_score),
            "run_created_utc": run["created_utc"],
            "run_uvosam_version": run["uvosam_version"],
            "run_uvosam_code": run.get(CODE_KEY),
            "split": _split_record(split or {}),
            "split_ids": {f"{t}@{f}": int(new) for (t, f), new in (split or {}).items()},
        },
        "export": None,
    }


def _split_record(split: Mapping[tuple[int, int], int]) -> dict[str, list[int]]:
    """``{"track id": [frames]}``, as ``rerender(split=...)`` takes it back."""
    frames: dict[str, list[int]] = {}
    for track, frame in split:
        frames.setdefault(str(int(track)), []).append(int(frame))
    return frames


def export_record(
    record: Mapping[str, Any] | None, *, video_name: str, num_frames: int, num_tracks: int
) -> dict[str, Any]:
    """What ``ExportWriter.close`` writes as ``run.json``: ``record`` (``None``: a writer used on its own, which
    knows only the video's name) with the ``export`` entry filled in and every key of the layout present."""
    if record is None:
        record = _head({"name": video_name})
    filled = {key: record.get(key) for key in _KEYS}
    filled.update({key: value for key, value in record.items() if key not in filled})
    filled["export"] = {"frames": int(num_frames), "tracks": int(num_tracks)}
    return filled


BENCHMARK_FORMAT = "uvosam-benchmark-run/1"


def benchmark_record(
    pipe: UVOSAM,
    *,
    dataset: str,
    split: str,
    videos: int,
    sequences: Iterable[str] | None = None,
    earlier: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The record of a benchmark run (``uvosam davis-run`` / ``ytvis-run``) of ``pipe`` starting now.

    Format ``BENCHMARK_FORMAT``: format, uvosam_version, uvosam_code (``uvosam.code_identity``), created_utc (of
    the first run into this folder: carried over from ``earlier``, the record a resumed run finds), started_utc (this
    run's), benchmark (dataset, split, videos = how many, sequences = their names or null = the whole split;
    ``davis-run`` passes every sequence its folder holds, of earlier runs too, not only the ones asked for),
    settings (min_score, max_objects; every frame, none skipped), models (as in ``run.json``), scores (null;
    ``davis-run`` fills in the global table, keyed as the official one, once it has scored the run).
    """
    now = utc_now()
    return {
        "format": BENCHMARK_FORMAT,
        "uvosam_version": __version__,
        CODE_KEY: code_identity(),
        "created_utc": (earlier or {}).get("created_utc") or now,
        "started_utc": now,
        "benchmark": {
            "dataset": dataset,
            "split": split,
            "videos": int(videos),
            "sequences": None if sequences is None else list(sequences),
        },
        "settings": {
            "min_score": float(pipe.config.min_score),
            "max_objects": pipe.config.max_objects,
            "stride": 1,
            "max_frames": None,
        },
        "models": models_record(pipe),
        "scores": None,
    }


def read_record(path: str | Path) -> dict[str, Any] | None:
    """The record at ``path`` (a ``run.json``), or None when there is none or it is not a readable JSON object."""
    try:
        record = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def write_run_json(path: str | Path, record: Mapping[str, Any]) -> Path:
    """``record`` as indented JSON (UTF-8) at ``path``; returns the path.

    A name that is not UTF-8 (Linux file names are bytes; Python holds the bad ones as lone surrogates,
    ``os.fsdecode``) is written as JSON escapes (``"clip\\udcff"``), which read back to the same string.
    """
    path = Path(path)
    atomic_files.write_text(  # a reader never sees half of it
        path,
        json.dumps(record, indent=2, ensure_ascii=False) + "\n",
        encoding="utf-8",
        errors=TEXT_ERRORS,
    )
    return path


# ------------------------------------------------------------------------------------------------ README section
_WIDTH = 115  # the README's line width


def made_with_text(record: Mapping[str, Any]) -> str:
    """The README's "Made with" section for a ``run.json`` record: uvosam, date, the models (with their device),
    the settings that decide the masks and, for a re-render, what it changed. One entry per line, wrapped."""
    models = record.get("models")
    lines = [f"uvosam {_code(record)}, {record.get('created_utc')}."]
    if models:
        lines.append("Tracker: " + _tracker_text(models.get("tracker") or {}))
        lines.append("Mask model: " + _mask_model_text(models.get("mask_model") or {}))
    else:
        lines.append(
            "Models: not recorded (no record of the run that made these masks came with them)."
        )
    settings = record.get("settings")
    if settings:
        lines.append("Settings: " + _settings_text(settings, record.get("video") or {}))
    if record.get("rerender"):
        stride = (settings or {}).get("stride") or 1
        lines.append(_rerender_text(record["rerender"], record, stride))
    lines.append("All of this is in run.json (machine-readable).")
    body = "\n".join(textwrap.fill(line, _WIDTH, subsequent_indent="    ") for line in lines)
    return f"\nMade with\n---------\n{body}\n"


def _code(record: Mapping[str, Any]) -> object:
    """The code a record names: its ``uvosam_code``, else (a record of an earlier version) its version."""
    return record.get(CODE_KEY) or record.get("uvosam_version")


def _tracker_text(tracker: Mapping[str, Any]) -> str:
    name = tracker.get("weights")
    if name:
        text = name + (f" with {tracker['config_yaml']}" if tracker.get("config_yaml") else "")
        details = [str(tracker.get("class"))]
    else:
        text, details = str(tracker.get("class")), ["built from objects: no weights name recorded"]
    if tracker.get("num_classes") is not None:
        count = tracker["num_classes"]
        details.append(f"{count} class{'' if count == 1 else 'es'}")
    if tracker.get("precision"):
        details.append(tracker["precision"])
    if tracker.get("input_min_side"):
        details.append(
            f"frames resized to {tracker['input_min_side']} px on the short side for the detector"
        )
    device = f" on {tracker['device']}" if tracker.get("device") else ""
    return f"{text} ({', '.join(details)}){device}."


def _mask_model_text(mask: Mapping[str, Any]) -> str:
    size = mask.get("model_type")
    text = f"{mask.get('family') or mask.get('class')} {size or 'of no released size'}"
    if mask.get("weights"):
        text += f", weights {mask['weights']}"
        details = [str(mask.get("class"))]
    else:
        text += " by its architecture" if size else ""
        details = [f"{mask.get('class')} built from a model object: weights not recorded"]
    if mask.get("parameters") is not None:
        details.append(f"{mask['parameters']:,} parameters")
    if mask.get("fast") is not None:
        details.append(f"fast path {'on' if mask['fast'] else 'off'}")
    if mask.get("sdpa_float32"):
        details.append("float32 with SDPA attention")
    if mask.get("encoder_dtype"):
        details.append(f"encoder weights {mask['encoder_dtype']}")
    if mask.get("compile"):
        details.append("torch.compile")
    if mask.get("cuda_graph"):
        fallback = mask.get("cuda_graph_fallback")
        details.append(
            f"CUDA graph requested, ran eager ({fallback})" if fallback else "CUDA graph"
        )
    device = f" on {mask['device']}" if mask.get("device") else ""
    return f"{text} ({', '.join(details)}){device}."


def _settings_text(settings: Mapping[str, Any], video: Mapping[str, Any]) -> str:
    def value(key: str) -> str:
        v = settings.get(key)
        return "all" if v is None else str(v)

    text = (f"min_score {value('min_score')}, max_objects {value('max_objects')}, stride {value('stride')}, "
            f"max_frames {value('max_frames')}")  # fmt: skip
    if video.get("width") and video.get("height"):
        text += f"; masks at the frames' size, {video['width']}x{video['height']}"
        source = video.get("source_width"), video.get("source_height")
        if all(source) and source != (video["width"], video["height"]):
            text += (f", scaled down from the source's {source[0]}x{source[1]} (fit_side "
                     f"{value('fit_side')})")  # fmt: skip
    return text + "."


def _rerender_text(rerender: Mapping[str, Any], record: Mapping[str, Any], stride: int) -> str:
    """What the re-render ``record`` changed (``rerender``: its entry); ``stride``: its run's frame stride (a split's
    frame is a processed frame: with a stride, the input frame is named too, as the PNGs are)."""
    keep = rerender.get("keep_ids")
    merge = ", ".join(f"{k}>{v}" for k, v in (rerender.get("merge") or {}).items()) or "none"
    split = ", ".join(
        f"{k} ({_input_frame(k, stride)}new id {v})"
        for k, v in (rerender.get("split_ids") or {}).items()
    )
    text = (
        f"Re-rendered from the run's cached masks (no model run) on {record.get('created_utc')}: "
        f"{f'split {split}; ' if split else ''}keep tracks "
        f"{'all' if keep is None else ', '.join(map(str, keep)) or 'none'}; merge {merge}; "
        f"min_score {rerender.get('min_score')}."
    )
    run_code = rerender.get("run_uvosam_code")
    made_by = run_code or f"{rerender['run_uvosam_version']}, which did not record its code"
    text += (
        f" The masks come from the run of {rerender.get('run_created_utc')} "
        f"(uvosam {made_by}), with the models and settings above."
    )
    if run_code != record.get(CODE_KEY):
        text += f" This re-render ran other code (uvosam {_code(record)}): the masks are as that run made them."
    return text


def _input_frame(split: str, stride: int) -> str:
    """``"input frame 120, "`` for the split ``"3@60"`` of a run with frame stride 2; "" without a stride."""
    if stride == 1:
        return ""
    return f"input frame {int(split.rsplit('@', 1)[1]) * stride}, "
