"""``uvosam davis-score``: score a results folder with the DAVIS-2017 protocol (same numbers as the official tool)."""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

from uvosam.atomic_files import write_text
from uvosam.errors import MissingInputError
from uvosam.eval.davis import GLOBAL_METRICS, DavisScores, evaluate
from uvosam.eval.layout import SUBSETS, TASKS, semi_supervised_annotations_only
from uvosam.text import count
from uvosam_cli.arguments import positive_int
from uvosam_cli.checks import check_output_file, check_output_folder


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``davis-score`` subcommand."""
    parser = subparsers.add_parser(
        "davis-score",
        help="score DAVIS-2017 results (J&F, official protocol)",
        description="Score <results>/<sequence>/<frame>.png indexed PNGs against DAVIS-2017 annotations. "
        "Unsupervised: all frames, void ignored, Hungarian matching per sequence, at most 20 ids. "
        "Semi-supervised: first and last frames dropped, ids matched by value.",
    )
    parser.add_argument(
        "--davis-root", type=Path, required=True, help="DAVIS folder (JPEGImages/, ImageSets/...)"
    )
    parser.add_argument(
        "--results", type=Path, required=True, help="folder of <sequence>/<frame>.png results"
    )
    parser.add_argument(
        "--set", dest="subset", choices=SUBSETS, default="val", help="image set (default: val)"
    )
    parser.add_argument(
        "--task", choices=TASKS, default="unsupervised", help="protocol (default: unsupervised)"
    )
    parser.add_argument(
        "--sequences", nargs="+", help="score only these sequences of the set (default: all of it)"
    )
    parser.add_argument(
        "--workers", type=positive_int, default=2, help="scoring processes (default: 2)"
    )
    parser.add_argument(
        "--json", type=Path, help="also write the numbers to this JSON file (default: none)"
    )
    parser.add_argument(
        "--csv", type=Path, metavar="DIR",
        help="also write the official tool's two tables into DIR: global_results-<set>.csv and "
        "per-sequence_results-<set>.csv (its columns and 3 decimals; default: none)",
    )  # fmt: skip
    parser.set_defaults(func=run)


def _cell(value: float) -> str:
    return "nan" if math.isnan(value) else f"{value:.3f}"


def format_tables(scores: DavisScores) -> str:
    """The global table and the per-object table with the official names, 3 decimals, and each object's GT and
    result ids ("none": the results have no pixel of the id matched to it, as the app's Score says it; the official
    script prints full precision, and no ids; ``write_official_csvs`` writes its files)."""
    glob = scores.global_dict()
    widths = [max(len(name), 7) for name in GLOBAL_METRICS]
    lines = [
        f"---------- Global results for {scores.subset} ({scores.task}) ----------",
        "  ".join(name.rjust(w) for name, w in zip(GLOBAL_METRICS, widths)),
        "  ".join(_cell(glob[name]).rjust(w) for name, w in zip(GLOBAL_METRICS, widths)),
        "",
        f"---------- Per sequence results for {scores.subset} ----------",
    ]
    name_w = max([len("Sequence")] + [len(o.name) for o in scores.objects])
    lines.append(f"{'Sequence'.ljust(name_w)}  GT id  Result id  J-Mean  F-Mean")
    lines.extend(
        f"{obj.name.ljust(name_w)}  {obj.gt_id:5d}  {'none' if obj.result_empty else obj.result_id:>9}  "
        f"{_cell(obj.j_mean).rjust(6)}  {_cell(obj.f_mean).rjust(6)}"
        for obj in scores.objects
    )
    return "\n".join(lines)


def _csv_cell(value: float) -> str:
    # as pandas' to_csv(float_format="%.3f") writes it: NaN is empty
    return "" if math.isnan(value) else f"{value:.3f}"


def write_official_csvs(scores: DavisScores, folder: Path) -> tuple[Path, Path]:
    """The two CSV files of the official ``evaluation_method.py``, byte for byte: ``global_results-<set>.csv``
    (the seven global numbers) and ``per-sequence_results-<set>.csv`` (``Sequence,J-Mean,F-Mean``, one row per
    object), 3 decimals. Each is written atomically (``uvosam.atomic_files``): an interrupted write leaves the
    file as it was, never a truncated table. Returns their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    glob = scores.global_dict()
    global_path = folder / f"global_results-{scores.subset}.csv"
    global_row = ",".join(_csv_cell(glob[k]) for k in GLOBAL_METRICS)
    write_text(global_path, f"{','.join(GLOBAL_METRICS)}\n{global_row}\n", encoding="utf-8")
    rows = [f"{o.name},{_csv_cell(o.j_mean)},{_csv_cell(o.f_mean)}" for o in scores.objects]
    per_path = folder / f"per-sequence_results-{scores.subset}.csv"
    write_text(per_path, "\n".join(["Sequence,J-Mean,F-Mean", *rows]) + "\n", encoding="utf-8")
    return global_path, per_path


def _json_safe(value):
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value


def write_scores_json(scores: DavisScores, path: Path) -> None:
    """``scores.to_dict()`` as indented JSON at ``path`` (NaN, e.g. an undefined Decay, becomes null), written
    atomically: never a truncated file read as the scores."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text(path, json.dumps(_json_safe(scores.to_dict()), indent=2) + "\n", encoding="utf-8")


def run(args: argparse.Namespace) -> int:
    """Score, optionally write JSON (NaN, e.g. an undefined Decay, becomes null) and the CSV tables, each file
    atomically, then print both tables and the files written: the files do not depend on stdout (a reader that
    went, ``| head``, ends the command at its first print)."""
    if args.json:
        check_output_file(args.json, "--json", example_name="scores.json")
    if args.csv:
        check_output_folder(args.csv, "--csv")
    start = time.perf_counter()
    try:
        scores = evaluate(
            args.davis_root,
            args.results,
            subset=args.subset,
            task=args.task,
            sequences=args.sequences,
            num_workers=args.workers,
        )
    except MissingInputError as err:
        if args.task != "unsupervised" or not semi_supervised_annotations_only(args.davis_root):
            raise
        raise MissingInputError(
            f"{err}; or score the semi-supervised task on the annotations that are there: --task semi-supervised"
        ) from None
    seconds = time.perf_counter() - start
    written = []
    if args.json:
        write_scores_json(scores, args.json)
        written.append(f"wrote {args.json}")
    if args.csv:
        written.append("wrote " + " and ".join(map(str, write_official_csvs(scores, args.csv))))
    print(format_tables(scores))
    sequences = len({o.sequence for o in scores.objects})
    print(
        f"\n{count(sequences, 'sequence')}, {count(len(scores.objects), 'object')} scored in {seconds:.1f} s"
    )
    for line in written:
        print(line)
    return 0
