"""``uvosam segment``: one video (file, frame folder or direct link) -> overlay (or effect) mp4, DAVIS PNGs, cut-outs,
JSONs and a zip.

A link is downloaded into a temporary folder (removed at the end, success or failure) and then read as a local file.
The command line allows links to private and loopback addresses (a NAS, a camera on the user's LAN): it fetches for
the user who runs it, with that user's own network access; the app, a server, refuses them.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from uvosam.config import PipelineConfig, VideoLimits
from uvosam.errors import InputError
from uvosam.export_types import ExportOptions
from uvosam.job import run_job
from uvosam.job_plan import job_name
from uvosam.job_staging import CACHE_FOLDER, EXPORT_FOLDER, check_replaceable
from uvosam.job_types import JobOptions
from uvosam.pipeline import DEFAULT_TRACKER, UVOSAM
from uvosam.progress import progress_bar
from uvosam.provenance import describe_component, weight_files_record
from uvosam.remote_files import is_zip_download
from uvosam.remote_links import looks_like_link, parse_link, refuse_page_link
from uvosam.remote_video import download_video
from uvosam.render import STYLES
from uvosam.text import count
from uvosam.video import probe
from uvosam_cli.arguments import (
    ALPHA_WEBM_HELP,
    CONFIG_YAML_HELP,
    DEVICE_HELP,
    FIT_SIDE_HELP,
    add_sam_arguments,
    max_side,
    positive_int,
    segmenter_config,
    unit_interval,
)
from uvosam_cli.checks import (
    check_model_arguments,
    check_output_folder,
    check_readable,
    check_weight_files,
)
from uvosam_cli.hints import print_merge_hints


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "segment",
        help="segment the main objects of a video (tracker boxes -> SAM or SAM 2.1 masks)",
    )
    p.add_argument(
        "input",
        help="a video file (.mp4 .mov .webm .avi .mkv; any other ffmpeg reads, e.g. an animated .gif or .apng), "
        "a folder of .jpg/.jpeg/.png frames (in natural name order), or a direct http(s) link to a video "
        f"file (downloaded to a temporary folder, at most {DOWNLOAD_MAX_BYTES >> 30} GiB; not a YouTube "
        "or other page link)",
    )
    p.add_argument("--out", type=Path, required=True, help="output folder (created)")
    p.add_argument(
        "--tracker", default=DEFAULT_TRACKER,
        help=f"tracker preset or checkpoint path (default: {DEFAULT_TRACKER})",
    )  # fmt: skip
    p.add_argument("--config-yaml", type=Path, help=CONFIG_YAML_HELP)
    add_sam_arguments(p)
    p.add_argument("--device", default="auto", help=DEVICE_HELP)
    p.add_argument(
        "--precision",
        default="fp32",
        choices=("fp32", "tf32", "bf16"),
        help="tracker compute precision (default: fp32, which matches the release; the SAM / SAM 2.1 "
        "image encoder: --sam-precision). tf32 and bf16 are faster on GPUs of compute capability 8.0 on (not a T4 or "
        "V100, where they gain nothing) but not exact: the tracks can differ from fp32's (on a CPU with AVX512-BF16, "
        "bf16 ran the R50 detector 1.8x faster)",
    )
    p.add_argument(
        "--compile",
        action="store_true",
        help="torch.compile the SAM / SAM 2.1 image encoder (the first frame waits for the compile; "
        "needs a C++ compiler on CPU, Triton on CUDA)",
    )
    p.add_argument(
        "--cuda-graph",
        action="store_true",
        help="replay the SAM / SAM 2.1 image encoder from a CUDA graph, captured at its first frame (CUDA only; "
        "elsewhere a warning and the usual forward; not with --compile; not yet measured on a GPU)",
    )
    p.add_argument(
        "--stride", type=positive_int, default=1, help="use every N-th frame (default: 1, all)"
    )
    p.add_argument(
        "--max-frames", type=positive_int, help="stop after this many frames (default: all of them)"
    )
    p.add_argument(
        "--max-objects",
        type=positive_int,
        help="segment at most this many tracks per frame, the best by score (default: all of them)",
    )
    p.add_argument(
        "--min-score",
        type=unit_interval,
        default=0.0,
        help="skip tracks scoring below this in a frame, 0 to 1 (default: 0, none skipped)",
    )
    p.add_argument(
        "--output-max-side",
        type=max_side,
        help="shrink the output video (any --style) to at most this longest side (never enlarged; default: "
        "the frames' size, the source's unless --fit-side)",
    )
    p.add_argument(
        "--style",
        default="overlay",
        choices=STYLES,
        help="the output video: overlay (colour masks; the default), cutout (objects on black), "
        "blur / gray (blurred / greyscale background), matte (white objects on black, for editors)",
    )
    p.add_argument("--alpha-webm", action="store_true", help=ALPHA_WEBM_HELP)
    p.add_argument(
        "--cache",
        action="store_true",
        help="keep the masks in <out>/cache so that `uvosam rerender <out>` can redraw the video and "
        "rebuild the zip (fewer tracks, merged tracks, another style) without the models",
    )
    p.add_argument("--no-boxes", action="store_true", help="do not draw boxes on the output video")
    p.add_argument("--no-labels", action="store_true", help="do not draw 'id class score' tags")
    p.add_argument("--no-audio", action="store_true",
                   help="a silent output mp4 (by default it has the source video's sound: its first audio "
                        "stream, cut to the frames)")  # fmt: skip
    p.add_argument("--fit-side", type=max_side, metavar="N",
                   help=FIT_SIDE_HELP + "; the masks, video and exports then have that size "
                        "(default: the source's size)")  # fmt: skip
    p.set_defaults(func=run, output_folder=lambda args: args.out)


DOWNLOAD_MAX_BYTES = 4 << 30
DOWNLOAD_TIMEOUT_S = 3600.0
DOWNLOAD_READ_TIMEOUT_S = 30.0


@contextlib.contextmanager
def local_input(text: str) -> Iterator[Path]:
    """The input as a local path: a link is downloaded into a temporary folder, removed when the block ends.

    Raises:
        RemoteVideoError: the link could not be downloaded (see ``uvosam.remote_video``).
        ValueError: it gave a zip (the command line reads a folder of frames).
    """
    if not looks_like_link(text):
        yield Path(text)
        return
    with (
        tempfile.TemporaryDirectory(prefix="uvosam-url-") as tmp,
        progress_bar(
            desc="download", unit="B", unit_scale=True, unit_divisor=1024, dynamic_ncols=True
        ) as bar,
    ):

        def progress(done: int, total: int | None) -> None:
            bar.total = total
            bar.update(done - bar.n)

        path = download_video(
            text, tmp, max_bytes=DOWNLOAD_MAX_BYTES, timeout_s=DOWNLOAD_TIMEOUT_S,
            read_timeout_s=DOWNLOAD_READ_TIMEOUT_S, allow_private=True, progress=progress,
        )  # fmt: skip
        bar.close()
        if is_zip_download(path):
            raise InputError(
                f"the link gave a zip ({path.name}); the command line reads a folder of frames: unzip it and pass "
                "the folder"
            )
        yield path


def load_pipeline(args: argparse.Namespace) -> UVOSAM:
    """The pipeline for these arguments (a seam the tests replace with tiny models)."""
    return UVOSAM.from_pretrained(
        args.tracker,
        args.sam,
        device=args.device,
        tracker_yaml=args.config_yaml,
        segmenter_config=segmenter_config(args, compile=args.compile, cuda_graph=args.cuda_graph),
        tracker_precision=args.precision,
    )


def slow_on_cpu_note(mask_model: dict) -> str | None:
    """A note for a run of SAM ViT-H or ViT-L on the CPU (``mask_model``: the segmenter's ``describe()``), whose
    image encoder costs far more there than the lighter models'; ``None`` otherwise."""
    model = mask_model.get("model_type")
    if mask_model.get("device") != "cpu" or model not in ("vit_h", "vit_l"):
        return None
    return (
        f"note: SAM {model} runs on the CPU here. On a 2-core test machine (bf16) the image encoder alone took "
        "17 s a frame for vit_h, 4.8 s for vit_b and 1.1 s for sam2.1_tiny: --sam vit_b or --sam sam2.1_tiny "
        "for a quicker look."
    )


def check_result_folder(out: Path, video_name: str, source: Path) -> None:
    """Refuse (``ValueError``) an ``--out`` whose earlier result this run could not replace, or where it would
    replace the input; say what it replaces of a result made from another input (``clip.mp4`` after ``clip.mov``:
    all of it; ``b.mp4`` after ``a.mp4``: the export's root files and the cache, which describe the folder's last
    run)."""
    earlier = check_replaceable(out, video_name, source=source, option="--out")
    if earlier is None or not earlier.source:
        return
    if earlier.video_name in (None, video_name):
        if earlier.source != source.name:
            print(
                f"note: {out} holds the results of {earlier.source}; this run of {source.name} replaces them "
                "when it has finished",
                file=sys.stderr,
            )
        return
    cache = f" and its mask cache ({CACHE_FOLDER}/)" if CACHE_FOLDER in earlier.entries else ""
    print(
        f"note: {out} holds the results of {earlier.source}; this run of {source.name} keeps its videos, zip and "
        f"per-video exports, and replaces the files at the root of {out / EXPORT_FOLDER} (README.txt, run.json, "
        f"the tables and the timeline: they describe the folder's last run){cache} when it has finished",
        file=sys.stderr,
    )


def run(args: argparse.Namespace) -> int:
    options = JobOptions(
        stride=args.stride,
        max_frames=args.max_frames,
        limits=VideoLimits(max_frames=None, max_side=None, max_duration_s=None, max_pixels=None),
        output_max_side=args.output_max_side,
        style=args.style,
        show_boxes=not args.no_boxes,
        show_labels=not args.no_labels,
        export=ExportOptions(alpha_webm=args.alpha_webm),
        cache=args.cache,
        audio=not args.no_audio,
        fit_side=args.fit_side,
    )
    # everything cheap to check is checked before the models load (SAM ViT-H alone is 2.5 GB)
    config = PipelineConfig(max_objects=args.max_objects, min_score=args.min_score)
    check_model_arguments(args)  # --tracker, --sam, --sam-type, --device, the sam2 package
    check_output_folder(args.out, "--out")  # before a download, too
    if looks_like_link(args.input):
        # a link that is no video file (a YouTube page...) is refused before any weight is looked for or downloaded;
        # then both weight files before the video's download (a local input is probed first)
        refuse_page_link(parse_link(args.input))
        check_weight_files(args)
    with local_input(args.input) as source:
        return _segment(args, source, config, options)


def _segment(
    args: argparse.Namespace, source: Path, config: PipelineConfig, options: JobOptions
) -> int:
    check_readable(source)
    info = probe(source, limits=options.limits, stride=args.stride, max_frames=args.max_frames,
                 fit_side=options.fit_side)  # fmt: skip
    if info.scaled_from is not None:
        width, height = info.scaled_from
        print(
            f"note: {source.name} is {width}x{height}, processed at {info.width}x{info.height} "
            f"(--fit-side {options.fit_side})",
            file=sys.stderr,
        )
    check_result_folder(args.out, job_name(info), source)
    pipe = load_pipeline(args)
    note = slow_on_cpu_note(describe_component(pipe.segmenter))
    if note:
        print(note, file=sys.stderr)
    pipe = UVOSAM(pipe.tracker, pipe.segmenter, config)
    result = None
    # the job is closed at once when stopped (Ctrl-C): its unfinished files go before the command says so
    with (
        progress_bar(desc=source.name, unit="frame", dynamic_ncols=True) as bar,
        contextlib.closing(
            run_job(
                pipe,
                source,
                args.out,
                options,
                weight_files=weight_files_record(
                    tracker=args.tracker, config_yaml=args.config_yaml, sam=args.sam
                ),
            )
        ) as steps,
    ):
        for update in steps:
            bar.total = update.frames_total
            if update.result is None:  # the last update carries the result, not a frame
                bar.set_postfix(objects=update.objects, tracks=update.tracks_so_far, refresh=False)
            bar.update(update.frames_done - bar.n)
            result = update.result or result
    assert result is not None
    print(
        f"{result.video_name}: {count(result.num_frames, 'frame')}, {count(len(result.tracks), 'track')}, "
        f"{result.seconds:.1f} s ({result.fps:.2f} fps) -> {result.overlay_mp4}, {result.zip_path}"
    )
    print_merge_hints(result.export.merge_hints, args.out, cached=args.cache)
    return 0
