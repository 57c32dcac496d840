"""``uvosam track``: IDOL box tracking of a video or frame folder, written as the release's
results.json."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from uvosam.text import count
from uvosam_cli.arguments import DEVICE_HELP, FIT_SIDE_HELP, max_side, non_empty, positive_int
from uvosam_cli.checks import (
    check_config_yaml,
    check_device,
    check_output_file,
    check_readable,
    check_tracker_weights,
)

logger = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "track",
        help="track objects (IDOL) and write results.json",
        description="Run the IDOL tracker on a video or a folder of frames and write one "
        "results.json record per trajectory and class: video_id, score, category_id, per-frame "
        "boxes [x1,y1,x2,y2] or null.",
    )
    parser.add_argument("input", help="video file or folder of .jpg/.png frames")
    parser.add_argument("--weights", required=True, help="weights preset name or checkpoint path")
    parser.add_argument(
        "--config-yaml", default=None, help="detectron2-style IDOL YAML (default: davis_r50)"
    )
    parser.add_argument(
        "--out", default="results.json", help="output JSON path (default: results.json)"
    )
    parser.add_argument("--device", default="auto", help=DEVICE_HELP)
    parser.add_argument("--fit-side", type=max_side, metavar="N",
                        help=FIT_SIDE_HELP + "; results.json's boxes are in the source's pixels all "
                             "the same (default: the source's size)")  # fmt: skip
    parser.add_argument(
        "--video-id",
        type=non_empty,
        default=None,
        help="video_id in results.json (default: input name)",
    )
    parser.add_argument(
        "--stride", type=positive_int, default=1, help="keep every STRIDE-th frame (default 1)"
    )
    parser.add_argument(
        "--max-frames",
        type=positive_int,
        default=None,
        help="stop after this many frames (default: all of them)",
    )
    parser.add_argument(
        "--batch-size",
        type=positive_int,
        default=None,
        help="frames per detector call (default: the config's BATCH_INFER_LEN on a GPU, 1 on the CPU)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from uvosam.atomic_files import write_text
    from uvosam.segmenter import resolve_device
    from uvosam.tracker.loading import load_tracker
    from uvosam.tracker.session import track_video
    from uvosam.tracker.trajectories import results_json
    from uvosam.video import iter_probed, probe

    out = Path(args.out)
    check_tracker_weights(args.weights, "--weights")
    if args.config_yaml is not None:
        check_config_yaml(Path(args.config_yaml), "--config-yaml")
    check_device(args.device)
    check_output_file(out, "--out", example_name="results.json")
    check_readable(Path(args.input))
    info = probe(args.input, stride=args.stride, max_frames=args.max_frames, fit_side=args.fit_side)
    device = resolve_device(args.device)
    tracker = load_tracker(args.weights, args.config_yaml, device, batch_size=args.batch_size)
    frames = iter_probed(info, stride=args.stride, max_frames=args.max_frames)
    source_w, source_h = info.source_size  # boxes in the source's pixels, also when decoded scaled
    trajectories = track_video(
        tracker, frames, height=info.height, width=info.width, boxes_hw=(source_h, source_w)
    )
    video_id = args.video_id if args.video_id is not None else Path(args.input).stem
    records = results_json(trajectories, video_id)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_text(out, json.dumps(records), encoding="utf-8")  # never a truncated results.json
    tracks = len({t.track_id for t in trajectories})
    found = f"{count(len(records), 'result')}, {count(tracks, 'trajectory', 'trajectories')}"
    logger.info("%s written to %s", found, out)
    print(f"{out}: {found}")
    return 0
