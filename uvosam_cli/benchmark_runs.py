"""``uvosam davis-run`` and ``uvosam ytvis-run``: the pipeline over a whole benchmark split, scorer-ready."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from uvosam.errors import InputError
from uvosam.eval.davis import DavisScores, evaluate
from uvosam.eval.layout import SUBSETS, find_sequences
from uvosam.eval.runner import (
    PAPER_DAVIS17_UNSUPERVISED_VAL,
    DavisSelection,
    check_run_code,
    check_run_settings,
    finished_sequences,
    run_davis_selection,
    run_ytvis_split,
    select_davis_sequences,
)
from uvosam.eval.ytvis_split import (
    YtvisSplit,
    read_ytvis_split,
    shown_names,
    ytvis_category_ids,
    ytvis_classes_not_tracked,
)
from uvosam.pipeline import DEFAULT_TRACKER, UVOSAM
from uvosam.provenance import RUN_JSON, benchmark_record, read_record, write_run_json
from uvosam.text import count
from uvosam.weight_checksums import file_sha256
from uvosam_cli.arguments import (
    CONFIG_YAML_HELP,
    DEVICE_HELP,
    add_sam_arguments,
    segmenter_config,
)
from uvosam_cli.checks import check_model_arguments, check_output_file, check_output_folder
from uvosam_cli.davis import format_tables

PAPER_TRACKER = "uvosam-davis-r50"
"""The tracker preset of the release's DAVIS numbers (``PAPER_DAVIS17_UNSUPERVISED_VAL``), with SAM vit_h."""


def _model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--tracker", default=DEFAULT_TRACKER,
        help=f"tracker preset or checkpoint path (default: {DEFAULT_TRACKER}; the paper's DAVIS tracker is "
        f"{PAPER_TRACKER})",
    )  # fmt: skip
    p.add_argument("--config-yaml", type=Path, help=CONFIG_YAML_HELP)
    add_sam_arguments(p)
    p.add_argument("--device", default="auto", help=DEVICE_HELP)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "davis-run",
        help="segment a DAVIS-2017 set (resumable with the same models) and score it",
        description="Segment a DAVIS-2017 set into <out>/<seq>/<frame>.png, record what made them in "
        "<out>/run.json, then score them. A folder holds one set's results of one choice of models: a run "
        "skips the sequences it finds finished there, and one with other models or another --set is refused. "
        "A run with --sequences adds to the folder: run.json and the printed score then cover every sequence the "
        "folder holds, of this run and of earlier ones (so a finished full set stays recorded and scored as "
        "such); `uvosam davis-score --sequences` scores only some.",
    )
    p.add_argument(
        "--davis-root", type=Path, required=True, help="folder holding JPEGImages/ and ImageSets/"
    )
    p.add_argument(
        "--out", type=Path, required=True, help="results folder (<out>/<seq>/<frame>.png)"
    )
    p.add_argument("--set", dest="subset", choices=SUBSETS, default="val",
                   help="the DAVIS-2017 image set, ImageSets/2017/<set>.txt (default: val; test-dev and "
                        "test-challenge need --no-score)")  # fmt: skip
    p.add_argument(
        "--sequences",
        nargs="+",
        help="segment only these sequences of the set (default: all of it; the score covers all the "
        "folder holds)",
    )
    p.add_argument("--no-score", action="store_true", help="only write the PNGs (e.g. test-dev)")
    _model_args(p)
    p.set_defaults(func=run_davis_command)

    p = sub.add_parser(
        "ytvis-run", help="segment a YouTube-VIS split into a submission results.json + zip"
    )
    p.add_argument(
        "--ytvis-root",
        type=Path,
        required=True,
        help="folder holding <split>.json (YouTube-VIS 2019; 2021: <split>/instances.json) and "
        "<split>/JPEGImages",
    )
    p.add_argument(
        "--out", type=Path, required=True, help="results.json path (the zip is written beside it)"
    )
    p.add_argument("--split", default="valid",
                   help="valid | test | train: reads <split>.json (default: valid)")  # fmt: skip
    p.add_argument(
        "--class-agnostic", action="store_true",
        help="with a one-class tracker (uvosam-davis-r50, a `uvosam train` checkpoint): write every result under "
        "the dataset's lowest category id, for an evaluation that merges all classes into one (the server scores "
        "each class apart: its AP means nothing then). Without it such a tracker is refused",
    )  # fmt: skip
    _model_args(p)
    p.set_defaults(func=run_ytvis_command)


def load_pipeline(args: argparse.Namespace) -> UVOSAM:
    """The pipeline for these arguments (a seam the tests replace with tiny models)."""
    return UVOSAM.from_pretrained(
        args.tracker, args.sam, device=args.device, tracker_yaml=args.config_yaml,
        segmenter_config=segmenter_config(args),
    )  # fmt: skip


def model_settings(args: argparse.Namespace) -> dict:
    """The arguments that decide the masks, as recorded in a davis-run's results folder (not --device).

    A ``--tracker``, ``--sam`` or ``--config-yaml`` given as a file also records the file's SHA-256
    (``<name>_sha256``), so that a checkpoint retrained or replaced at the same path counts as another model.
    """
    yaml = None if args.config_yaml is None else str(args.config_yaml)
    settings = {"tracker": str(args.tracker), "sam": str(args.sam), "config_yaml": yaml}
    for name in ("tracker", "sam", "config_yaml"):
        if settings[name] is not None and Path(settings[name]).is_file():
            settings[f"{name}_sha256"] = file_sha256(settings[name])
    if args.sam_type is not None:  # only when given, so that folders of earlier runs still resume
        settings["sam_type"] = args.sam_type
    if args.sam_precision != "auto":  # the same (auto depends on the device, as --device does)
        settings["sam_precision"] = args.sam_precision
    return settings


DAVIS_DATASET = "DAVIS-2017 unsupervised"


def run_davis_command(args: argparse.Namespace) -> int:
    # every argument, the output folder and the sequence names are checked before the models load
    check_model_arguments(args)
    check_output_folder(args.out, "--out")
    selection = select_davis_sequences(args.davis_root, args.subset, args.sequences)
    listed, names = list(selection.listed), list(selection.names)
    settings = model_settings(args)
    check_run_settings(args.out, settings)  # so is a resume with other models
    record_path = args.out / RUN_JSON
    earlier = read_record(record_path)
    _check_same_set(earlier, args)
    # the record covers the folder: the sequences of earlier runs into it (same models, checked above) and these
    kept = set(finished_sequences(args.out, listed, args.davis_root)) | set(names)
    held = [name for name in listed if name in kept]
    if damaged := [name for name in listed if name not in kept and (args.out / name).is_dir()]:
        print(
            f"note: {', '.join(damaged)} in {args.out} {'lacks' if len(damaged) == 1 else 'lack'} the PNG of some "
            f"frame (deleted since it was written?): not scored; `--sequences {' '.join(damaged)}` segments "
            f"{'it' if len(damaged) == 1 else 'them'} again",
            file=sys.stderr,
        )
    if not args.no_score:
        _check_ground_truth(args, held)  # not after hours of segmenting
    sequences = None if held == listed else held  # what the record lists
    if _nothing_left(args, names, earlier, sequences):  # the models would load (~10 s) for nothing
        record = earlier
        for index, name in enumerate(names):
            print(f"[{index + 1}/{len(names)}] {name}: already done, skipped", file=sys.stderr)
        said = f"nothing left to segment in {args.out}: no model loaded (what made them: {record_path})"
    else:
        check_run_code(args.out)  # results of other code are scored as they are, never added to
        record, said = _segment_davis(args, selection, settings, earlier, sequences)
    # every file is written (the score too) before stdout says anything: a reader that went ends the command there
    scores = None if args.no_score else _score_folder(args, record, held)
    print(said)
    if scores is not None:
        _print_scores(args, scores, held, names, whole_set=held == listed)
    return 0


def _nothing_left(
    args: argparse.Namespace, names: list[str], earlier: dict | None, sequences: list[str] | None
) -> bool:
    """Every sequence of this run is finished in ``args.out`` and its record already lists what the folder holds
    (``sequences``), so neither the models nor a new record are needed."""
    benchmark = (earlier or {}).get("benchmark") or {}
    return (
        earlier is not None
        and finished_sequences(args.out, names, args.davis_root) == names
        and benchmark.get("sequences") == sequences
    )


def _segment_davis(
    args: argparse.Namespace,
    selection: DavisSelection,
    settings: dict,
    earlier: dict | None,
    sequences: list[str] | None,
) -> tuple[dict, str]:
    """Load the models, write the folder's record (before any sequence: a folder never holds masks without it) and
    segment the sequences not finished yet. Returns the record and the summary line for stdout."""
    record_path = args.out / RUN_JSON
    pipe = load_pipeline(args)
    videos = len(sequences) if sequences is not None else len(selection.listed)
    record = benchmark_record(
        pipe, dataset=DAVIS_DATASET, split=args.subset, videos=videos, sequences=sequences,
        earlier=earlier,
    )  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    write_run_json(record_path, record)
    start = time.perf_counter()
    for done in run_davis_selection(pipe, selection, args.out, settings=settings):
        state = "already done, skipped" if done.skipped else count(done.frames, "frame")
        print(f"[{done.index + 1}/{done.total}] {done.name}: {state}", file=sys.stderr)
    said = f"segmented in {time.perf_counter() - start:.1f} s -> {args.out} (what made them: {record_path})"
    return record, said


def _check_ground_truth(args: argparse.Namespace, names: list[str]) -> None:
    """The annotations the score will need (one PNG per frame of each of ``names``), or ``ValueError`` saying to
    pass --no-score."""
    try:
        find_sequences(args.davis_root, subset=args.subset, task="unsupervised", sequences=names)
    except InputError as err:  # also a missing file (MissingInputError)
        raise InputError(
            f"cannot score the {args.subset!r} set: {err}. Pass --no-score to only write the PNGs (the "
            "test-dev and test-challenge annotations are not public: submit the folder to the evaluation server)"
        ) from None


def _check_same_set(earlier: dict | None, args: argparse.Namespace) -> None:
    """One results folder holds one DAVIS set: refuse a run of another set into a folder recorded for one."""
    split = ((earlier or {}).get("benchmark") or {}).get("split")
    if split is not None and split != args.subset:
        raise InputError(
            f"{args.out} holds a davis-run of the {split!r} set (see {args.out / RUN_JSON}), but this run is "
            f"--set {args.subset}: one folder holds one set's results and score. Use another --out, or --set "
            f"{split} to add to it"
        )


def _score_folder(args: argparse.Namespace, record: dict, held: list[str]) -> DavisScores:
    """Score every sequence the folder holds (``held``) and put the global table into the record."""
    scores = evaluate(args.davis_root, args.out, subset=args.subset, sequences=held, num_workers=2)
    write_run_json(args.out / RUN_JSON, {**record, "scores": scores.global_dict()})
    return scores


def _print_scores(
    args: argparse.Namespace,
    scores: DavisScores,
    held: list[str],
    names: list[str],
    *,
    whole_set: bool,
) -> None:
    """The tables of every sequence the folder holds (``held``, which includes this run's ``names``)."""
    print(format_tables(scores))
    if len(held) > len(names):
        print(
            f"\nscored all {len(held)} sequences {args.out} holds: the {len(names)} asked for here and "
            f"{len(held) - len(names)} of earlier runs into it with the same models "
            "(`uvosam davis-score --sequences ...` scores only some)"
        )
    if args.subset == "val" and whole_set:
        ours = scores.global_dict()
        print(
            f"\nours: {args.tracker} + {args.sam}; paper (UVOSAM README): {PAPER_TRACKER} + vit_h"
        )
        print("          ours    paper")
        for key, paper in PAPER_DAVIS17_UNSUPERVISED_VAL.items():
            print(f"{key:9s} {ours[key]:.3f}   {paper:.3f}")


def run_ytvis_command(args: argparse.Namespace) -> int:
    # every argument, the output paths, the annotation file with every video id and listed frame, and the tracker's
    # classes against the dataset's categories are checked before the models load
    check_model_arguments(args)
    record_path = args.out.with_name(f"{args.out.stem}.run.json")
    check_output_file(args.out, "--out", example_name="results.json",
                      beside=(args.out.with_suffix(".zip"), record_path))  # fmt: skip
    data = read_ytvis_split(args.ytvis_root, args.split)
    category_ids = _check_categories(args, data)
    pipe = load_pipeline(args)
    record = benchmark_record(
        pipe, dataset="YouTube-VIS", split=args.split, videos=len(data.videos)
    )
    record["benchmark"]["category_ids"] = category_ids
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_run_json(record_path, record)
    zip_path = run_ytvis_split(
        pipe, data, args.out, class_agnostic=args.class_agnostic,
        progress=lambda d: print(f"[{d.index + 1}/{d.total}] video {d.name}: {count(d.frames, 'frame')}",
                                 file=sys.stderr),
    )  # fmt: skip
    print(
        f"wrote {args.out} and {zip_path} (upload the zip to the YouTube-VIS evaluation server); what made "
        f"them: {record_path}"
    )
    return 0


def _check_categories(args: argparse.Namespace, data: YtvisSplit) -> str:
    """Refuse a --tracker whose classes are not the dataset's (``ytvis_category_ids``), before it loads; print a
    note of class-agnostic results and of categories none of its classes has. Returns how run.json describes the
    results' category ids."""
    from uvosam.tracker.loading import tracker_class_names  # the model code: imported when needed

    names = tracker_class_names(args.tracker)
    ids = ytvis_category_ids(
        names,
        data.categories,
        class_agnostic=args.class_agnostic,
        tracker=f"--tracker {args.tracker}",
    )
    if args.class_agnostic:
        described = (
            f"class-agnostic: every result under category {ids[0]} ({dict(data.categories)[ids[0]]!r}), "
            "whatever its class; the evaluation server's per-class AP means nothing for them"
        )
        print(f"note: {described}", file=sys.stderr)
        return described
    if untracked := ytvis_classes_not_tracked(names, data.categories):
        print(
            f"note: {count(len(untracked), 'category', 'categories')} of {data.annotation_file} "
            f"{'is' if len(untracked) == 1 else 'are'} none of --tracker {args.tracker}'s classes "
            f"({shown_names(untracked)}): "
            "no result will have them (AP 0 for each)",
            file=sys.stderr,
        )
    return f"the ids {data.annotation_file.name} gives the tracker's class names"
