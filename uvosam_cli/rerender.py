"""``uvosam rerender``: redraw a cached ``segment`` run (fewer tracks, split or merged tracks, another style), no
models.

The new video is drawn as the run drew its own (style, size, boxes, labels, alpha WebM, sound:
``job_plan.run_output``) unless a flag says otherwise, so a re-render into the run's folder keeps what the run made.
The sound comes from the source file the run read, while it is still there (a downloaded link's is not: the video is
then silent).
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from uvosam.errors import InputError, MissingInputError
from uvosam.export_types import ExportOptions
from uvosam.job import CACHE_FOLDER, cache_unfinished, rerender_iter
from uvosam.job_locks import check_not_written
from uvosam.job_plan import check_run_meta, run_output
from uvosam.job_staging import check_replaceable, rerender_keeps
from uvosam.job_types import JobOptions
from uvosam.mask_cache import MaskCache
from uvosam.portable_names import recorded_name
from uvosam.progress import progress_bar
from uvosam.render import STYLES
from uvosam.text import count
from uvosam.track_edit import MERGE_SYNTAX, SPLIT_SYNTAX, parse_merge, parse_split
from uvosam_cli.arguments import ALPHA_WEBM_HELP, unit_interval
from uvosam_cli.checks import check_output_folder
from uvosam_cli.hints import print_merge_hints


def _merge(text: str) -> dict[int, int]:
    """An ``argparse`` type: ``parse_merge``'s pairs; its message without the app's "Merge tracks: " (argparse
    names the option)."""
    try:
        return parse_merge(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err).removeprefix("Merge tracks: ")) from None


def _run_last(text: str) -> str:
    """After an option's values (``nargs="+"``), the run's folder was read as one more of them: what to do instead
    when ``text`` is a folder ("" otherwise)."""
    if not Path(text).is_dir():
        return ""
    return f" ({text!r} is a folder: if it is RUN, put it before the option, or end the option's values with --)"


def _split(text: str) -> str:
    """An ``argparse`` type: one or more ``track@frame`` (``parse_split``), its message without "Split tracks: "."""
    try:
        parse_split(text)
    except ValueError as err:
        message = str(err).removeprefix("Split tracks: ")
        raise argparse.ArgumentTypeError(
            message.removesuffix(".") + _run_last(text) + "."
        ) from None
    return text


def _track_id(text: str) -> int:
    """An ``argparse`` type for ``--keep``: a track id (argparse said "invalid int value: 'a'")."""
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"takes track ids (whole numbers), e.g. --keep 1 3; got {text!r}{_run_last(text)}"
        ) from None


# the library's messages name its own parameters (and the app's boxes): the options here
_OPTIONS = {"keep_ids: ": "--keep: ", "Merge tracks: ": "--merge: ", "Split tracks: ": "--split: "}


def _checked(steps: Iterator[Any]) -> Iterator[Any]:
    """``rerender_iter``'s steps, its first taken now: it checks --split, --keep and --merge against the run's
    tracks (one read of them) before it writes anything; a refusal names the option."""
    try:
        first = next(steps)
    except InputError as err:
        message = str(err)
        for prefix, option in _OPTIONS.items():
            if message.startswith(prefix):
                raise InputError(option + message.removeprefix(prefix)) from None
        raise
    return itertools.chain([first], steps)


def _max_side(text: str) -> int | str:
    """An ``argparse`` type: an int >= 2, or ``source`` (the frames' size: the source's unless ``--fit-side``)."""
    if text == "source":
        return text
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 2:
        raise argparse.ArgumentTypeError(
            f"must be a longest side of at least 2 pixels, or 'source' for the frames' size; got {text!r}"
        )
    return value


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "rerender",
        help="redraw a run made with `segment --cache`: fewer tracks, merged tracks, another style (no models)",
        description="Rebuild the video, the exports and the zip of a `uvosam segment --cache` run from its cached "
        "masks, without running any model. The video is drawn as the run drew its own (style, output size, boxes, "
        "labels, alpha WebM, sound) unless a flag below says otherwise.",
    )
    p.add_argument("run", type=Path, help="the run's --out folder (it holds cache/)")
    p.add_argument(
        "--out",
        type=Path,
        help="write here instead of into the run's folder (default: the run's folder)",
    )
    p.add_argument(
        "--keep",
        type=_track_id,
        nargs="+",
        action="extend",
        metavar="ID",
        help="keep only these track ids (default: all; after --split: the ids once split)",
    )
    p.add_argument(
        "--merge", type=_merge, default={}, help=f"merge tracks: {MERGE_SYNTAX} (default: none)"
    )
    p.add_argument("--split", type=_split, nargs="+", action="extend", default=[], metavar="TRACK@FRAME",
                   help=f"split tracks: {SPLIT_SYNTAX}; the new ids follow the run's largest, one per split, in "
                        "the order of the split frames, then of the track ids; applied first: --keep and --merge "
                        "name the ids once split (default: none)")  # fmt: skip
    p.add_argument(
        "--style", choices=STYLES, help="the output video's style (see segment; default: the run's)"
    )
    p.add_argument("--alpha-webm", action=argparse.BooleanOptionalAction,
                   help=f"{ALPHA_WEBM_HELP} (default: as the run did)")  # fmt: skip
    p.add_argument("--min-score", type=unit_interval, default=0.0,
                   help="leave tracks out of the frames where they score below this (above the run's own "
                        "threshold; frames below that were never segmented; default: 0, none left "
                        "out)")  # fmt: skip
    p.add_argument("--output-max-side", type=_max_side, metavar="PIXELS|source",
                   help="shrink the video to at most this longest side (never enlarged); 'source': the frames' "
                        "size, the source's unless the run used --fit-side (default: the run's)")  # fmt: skip
    p.add_argument("--boxes", dest="show_boxes", action=argparse.BooleanOptionalAction,
                   help="draw boxes on the output video, or not (default: as the run did)")  # fmt: skip
    p.add_argument("--labels", dest="show_labels", action=argparse.BooleanOptionalAction,
                   help="draw 'id class score' tags, or not (default: as the run did)")  # fmt: skip
    p.add_argument("--audio", action=argparse.BooleanOptionalAction,
                   help="give the video the source's sound while its file is where the run read it, or not "
                        "(default: as the run did)")  # fmt: skip
    p.set_defaults(func=run, output_folder=lambda args: args.out or args.run)


def _options(args: argparse.Namespace, drawn: dict[str, Any]) -> JobOptions:
    """The ``JobOptions`` of the flags given, the run's own drawing (``run_output``) for those not given."""

    def given(value: object, default: object) -> object:
        return default if value is None else value

    max_side = given(args.output_max_side, drawn["output_max_side"])
    return JobOptions(
        output_max_side=None if max_side == "source" else max_side,
        style=given(args.style, drawn["style"]),
        show_boxes=given(args.show_boxes, drawn["show_boxes"]),
        show_labels=given(args.show_labels, drawn["show_labels"]),
        export=ExportOptions(alpha_webm=given(args.alpha_webm, drawn["alpha_webm"])),
        audio=given(args.audio, drawn["audio"]),
    )


def run(args: argparse.Namespace) -> int:
    cache = args.run / CACHE_FOLDER
    expected = "expected the --out folder of a `uvosam segment ... --cache` run"
    if not args.run.exists():
        raise MissingInputError(f"RUN {args.run} does not exist; {expected}")
    if not args.run.is_dir():
        raise InputError(f"RUN {args.run} is a file; {expected}")
    if not (cache / "meta.json").is_file():
        raise MissingInputError(
            f"no mask cache in {args.run} (expected {cache}/meta.json): make the run with "
            "`uvosam segment ... --out <folder> --cache` first"
        )
    option = "--out" if args.out else "RUN"
    # RUN is only read when the result goes elsewhere: --out is the way out of a RUN that cannot be written
    instead = None if args.out else "pass --out <a folder you can write to> (RUN is then only read)"
    check_output_folder(args.out or args.run, option, instead=instead)
    check_not_written(args.run)  # a run writing there now: refused before its cache is read
    masks = MaskCache(cache)
    meta = masks.info.meta
    check_run_meta(cache, meta)
    unfinished = cache_unfinished(masks)
    if unfinished is not None:
        raise InputError(
            f"{unfinished}; run the video again with `uvosam segment ... --out <folder> --cache`"
        )
    try:
        split = parse_split(", ".join(args.split))
    except InputError as err:  # one split in two arguments
        raise InputError(f"--split: {str(err).removeprefix('Split tracks: ')}") from None
    # the result there is replaced once the re-render has finished (as rerender_iter stages it): refused now if it
    # cannot be
    out = args.out or args.run
    check_replaceable(
        out,
        recorded_name(meta["video_name"]),  # rerender_iter's name
        source=None,
        option=option,
        keep=rerender_keeps(cache, out),
    )
    options = _options(args, run_output(meta))
    result = None
    steps = rerender_iter(
        cache,
        args.out or args.run,
        keep_ids=args.keep,
        merge=args.merge,
        options=options,
        min_score=args.min_score,
        split=split,
    )
    # the job is closed at once when stopped (Ctrl-C): its unfinished files go before the command says so
    with contextlib.closing(steps):
        checked = _checked(steps)
        with progress_bar(desc=args.run.name, unit="frame", dynamic_ncols=True) as bar:
            for update in checked:
                bar.total = update.frames_total
                bar.update(update.frames_done - bar.n)
                result = update.result or result
    assert result is not None
    tracks = ", ".join(str(t.track_id) for t in result.tracks) or "none"
    print(
        f"{result.video_name}: {count(result.num_frames, 'frame')}, tracks {tracks} -> {result.overlay_mp4}, "
        f"{result.zip_path}"
    )
    if result.silent_because:
        print(
            f"note: the video is silent: {result.silent_because} ({result.info.path}).",
            file=sys.stderr,
        )
    print_merge_hints(
        result.export.merge_hints,
        args.run,
        merge=args.merge,
        keep=args.keep,
        min_score=args.min_score,
        split=args.split,
    )
    return 0
