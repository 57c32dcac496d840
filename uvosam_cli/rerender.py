"""``uvosam rerender``: redraw a cached ``segment`` run (fewer tracks, merged tracks, another style), no models."""

from __future__ import annotations

import argparse
from pathlib import Path

from tqdm import tqdm

from uvosam.export_types import ExportOptions
from uvosam.job import JobOptions, rerender_iter
from uvosam.mask_cache import MaskCache
from uvosam.render import STYLES
from uvosam.track_edit import MERGE_SYNTAX, parse_merge
from uvosam_cli.arguments import ALPHA_WEBM_HELP, positive_int
from uvosam_cli.hints import print_merge_hints


def _merge(text: str) -> dict[int, int]:
    try:
        return parse_merge(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "rerender",
        help="redraw a run made with `segment --cache`: fewer tracks, merged tracks, another style (no models)",
        description="Rebuild the video, the exports and the zip of a `uvosam segment --cache` run from its cached "
        "masks, without running any model.",
    )
    p.add_argument("run", type=Path, help="the run's --out folder (it holds cache/)")
    p.add_argument("--out", type=Path, help="write here instead of into the run's folder")
    p.add_argument(
        "--keep", type=int, nargs="+", metavar="ID", help="keep only these track ids (default: all)"
    )
    p.add_argument("--merge", type=_merge, default={}, help=f"merge tracks: {MERGE_SYNTAX}")
    p.add_argument(
        "--style", choices=STYLES, help="the output video's style (see segment; default: the run's)"
    )
    p.add_argument("--alpha-webm", action="store_true", help=ALPHA_WEBM_HELP)
    p.add_argument("--min-score", type=float, default=0.0,
                   help="leave tracks out of the frames where they score below this (above the run's own "
                        "threshold; frames below that were never segmented)")  # fmt: skip
    p.add_argument("--output-max-side", type=positive_int,
                   help="shrink the video to at most this longest side (never enlarged)")  # fmt: skip
    p.add_argument("--no-boxes", action="store_true", help="do not draw boxes on the output video")
    p.add_argument("--no-labels", action="store_true", help="do not draw 'id class score' tags")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    cache = args.run / "cache"
    if not (cache / "meta.json").is_file():
        raise FileNotFoundError(
            f"no mask cache in {args.run} (expected {cache}/meta.json): make the run with "
            "`uvosam segment ... --out <folder> --cache` first"
        )
    # default: the run's own
    style = args.style or MaskCache(cache).info.meta.get("style", "overlay")
    options = JobOptions(
        output_max_side=args.output_max_side,
        style=style,
        show_boxes=not args.no_boxes,
        show_labels=not args.no_labels,
        export=ExportOptions(alpha_webm=args.alpha_webm),
    )
    result = None
    steps = rerender_iter(
        cache,
        args.out or args.run,
        keep_ids=args.keep,
        merge=args.merge,
        options=options,
        min_score=args.min_score,
    )
    with tqdm(desc=args.run.name, unit="frame", dynamic_ncols=True) as bar:
        for update in steps:
            bar.total = update.frames_total
            bar.update(update.frames_done - bar.n)
            result = update.result or result
    assert result is not None
    tracks = ", ".join(str(t.track_id) for t in result.tracks) or "none"
    print(
        f"{result.video_name}: {result.num_frames} frames, tracks {tracks} -> {result.overlay_mp4}, {result.zip_path}"
    )
    print_merge_hints(
        result.export.merge_hints,
        args.run,
        merge=args.merge,
        keep=args.keep,
        min_score=args.min_score,
    )
    return 0
