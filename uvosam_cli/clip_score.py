"""``uvosam clip-score``: score one clip's result PNGs against its own ground truth (DAVIS unsupervised J&F)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from uvosam.errors import InputError, MissingInputError
from uvosam.eval.clip import (
    align_ground_truth,
    ground_truth_by_name,
    ground_truth_files,
    id_gaps_note,
    late_objects_note,
    pair_ground_truth,
    score_clip,
    unscored_tail_note,
)
from uvosam.text import count
from uvosam_cli.arguments import positive_int
from uvosam_cli.checks import check_output_file
from uvosam_cli.davis import format_tables, write_scores_json


def _result_names(folder: Path) -> list[str]:
    """The stems of the result PNGs in ``folder``, in natural order (errors name the results, not the ground truth)."""
    if not folder.is_dir() or not any(p.suffix.lower() == ".png" for p in folder.iterdir()):
        raise MissingInputError(
            f"results: {folder} is not a folder of result PNGs (expected a run's DAVIS PNGs, e.g. "
            "<out>/export/davis/<video>, or the zip's davis/<video>/)"
        )
    return [p.stem for p in ground_truth_files(folder)]


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``clip-score`` subcommand."""
    parser = subparsers.add_parser(
        "clip-score",
        help="score one clip's masks against its own ground truth (J&F, DAVIS unsupervised protocol)",
        description="Score a folder of result PNGs (e.g. <out>/export/davis/<video>) against a folder of indexed "
        "ground-truth PNGs (0 background, 1..K objects, 255 void) of the same clip: matched by name (digits as "
        "numbers), else in natural name order; PNGs of some frames only (key frames), named as those frames, score "
        "those frames. "
        "Objects come from the first ground-truth frame; results are matched to them once per clip.",
    )
    parser.add_argument("results", type=Path, help="folder of the clip's result PNGs")
    parser.add_argument("ground_truth", type=Path, help="folder of the clip's ground-truth PNGs")
    parser.add_argument(
        "--stride", type=positive_int,
        help="the run's frame stride S: the ground truth has one PNG per source frame, not named as the result "
        "frames, and every S-th is used (default: none, PNGs are matched by name or one per result frame)",
    )  # fmt: skip
    parser.add_argument(
        "--json", type=Path, help="also write the numbers to this JSON file (default: none)"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.json:
        check_output_file(args.json, "--json", example_name="scores.json")
    names = processed = _result_names(args.results)
    truth = every_truth = ground_truth_files(args.ground_truth)
    if args.stride is None:  # by name, or one PNG per result frame: nothing is guessed
        try:
            names, truth = pair_ground_truth(truth, names, range(len(names)), len(names))
        except InputError as err:
            raise InputError(
                f"{err} If the ground truth has one PNG per source frame and the run took every S-th frame, "
                "pass --stride S."
            ) from None
    else:
        truth = _by_stride(truth, names, args.stride)
    scored = count(len(names), "result frame")
    if len(names) < len(processed):
        scored = f"{len(names)} of {count(len(processed), 'result frame')} (those the ground truth annotates)"
    scores = score_clip(args.results, truth, names)
    # before anything is printed: the file does not depend on stdout (a reader that went)
    if args.json:
        write_scores_json(scores, args.json)
    print(f"{scored} ({names[0]} ...) scored against {truth[0].name} ... {truth[-1].name}")
    # beside the line above, before the numbers: a partial run's score must not read as the whole clip's
    if tail := unscored_tail_note(every_truth, truth):
        print(f"Note: {tail}")
    print(format_tables(scores))
    for note in (id_gaps_note(truth[0]), late_objects_note(truth)):
        if note is not None:
            print(f"Note: {note}")
    if args.json:
        print(f"wrote {args.json}")
    return 0


def _by_stride(truth: list[Path], names: list[str], stride: int) -> list[Path]:
    """One ground-truth PNG per source frame, every ``stride``-th used (or one per result frame), whatever the
    result files are named; a note on stderr where their names would have picked other PNGs.

    Raises:
        ValueError: too few PNGs for the stride, saying how many it needs.
    """
    needed = (len(names) - 1) * stride + 1
    if len(truth) != len(names) and len(truth) < needed:
        raise InputError(
            f"--stride {stride} over {count(len(names), 'result frame')} takes one ground-truth PNG per source "
            f"frame, {stride} frames apart: at least {needed} PNGs (or one per result frame, {len(names)}); the "
            f"ground truth has {len(truth)}"
        )
    picked = align_ground_truth(
        truth, names, [i * stride for i in range(len(names))], len(truth), by_name=False
    )
    try:
        named = ground_truth_by_name(truth, names)
    except ValueError:  # two PNGs name one frame: names play no part here
        named = None
    if named is not None and named != picked:
        print(
            f"Note: the result files are named as ground-truth frames ({', '.join(names[:2])} ...), but --stride "
            f"{stride} takes {', '.join(p.name for p in picked[:2])} ...: scored by --stride (without it, by name: "
            "right for uvosam's own exports, named after their source frames)",
            file=sys.stderr,
        )
    return picked
