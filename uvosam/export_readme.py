"""The README.txt placed in every export folder and zip: what made it ("Made with", from run.json), what each file is,
the id rules, and credits."""

from __future__ import annotations

import textwrap
from collections.abc import Mapping
from typing import Any

from uvosam import __version__
from uvosam.config import is_integer
from uvosam.export_types import ExportOptions, ExportResult
from uvosam.merge_hints import merge_text
from uvosam.provenance import made_with_text
from uvosam.text import count

_HEADER = """\
UVOSAM export for video "{video}"
{rule}
Made by uvosam {version}: unsupervised video object segmentation. An IDOL video tracker finds the main objects
and follows each one with a box; the boxes prompt Segment Anything (SAM or SAM 2.1, as chosen), frame by frame.
{frames}, {tracks}.{names}{stride}
"""

_IDS = """
Track ids
---------
Every object has one track id (an integer >= 1) for the whole video; it never changes from frame to frame and is
never given to another object. tracks.csv lists every track: id, DAVIS label, category, mean score (the mean of its
per-frame detection scores), first/last frame (0-based) and the number of frames it was seen in.
The JSON files list the tracks in the same order as tracks.csv (order of first appearance).

Files
-----
"""

_FILES = {
    "run_json": """\
run.json
    What made this export, machine-readable: uvosam version and code (uvosam_code: the version and a hash of its
    source), date (UTC), the tracker (preset or checkpoint file) and mask model (SAM / SAM 2.1 type and weights)
    with their precision, fast path and device, the settings that decide the masks (min_score, max_objects,
    stride, max_frames), the frame size, and for a re-render the kept tracks, merge and min_score it applied to the
    run's cached masks and the code that made them. Summed up under "Made with" above.
""",
    "davis": """\
davis/{video}/<frame>.png
    DAVIS-2017 style indexed masks: palette PNG (mode "P", the standard DAVIS/VOC palette), pixel value = DAVIS
    label (0 = background). Read them with PIL: numpy.array(PIL.Image.open(path)) gives the labels (mode P:
    the pixel values are the labels); cv2.imread gives the palette's colours (their grey levels with
    IMREAD_GRAYSCALE), never the labels.
    Feeds davis2017-evaluation directly (unsupervised task). Each track keeps ONE label
    on every frame. At most {max_objects} labels (the official scorer refuses more): labels go to tracks in order
    of first appearance; if more than {max_objects} tracks appeared, the {max_objects} with the highest mean score
    are kept and numbered 1..N in order of first appearance, the others are left out of these PNGs only.
    Label of each track: column davis_label of tracks.csv.{dropped}
""",
    "cutouts": """\
cutouts/{video}/<track_id>/<frame>.png
    One RGBA image sequence per object for compositing (straight alpha): alpha = 255 on the object's mask and
    0 elsewhere; {rgb}{full}
""",
    "mattes": """\
mattes/{video}/<track_id>/<frame>.png
    Black-and-white alpha matte per object (grayscale: 255 = object, 0 = background), for track mattes in video
    editors (Premiere, Resolve, After Effects, ...).{full}
""",
    "alpha_webm": """\
{video}_alpha.webm
    The video's objects over a transparent background: VP9 WebM with an alpha channel (alpha = the union of the
    objects' masks), for web pages, OBS, Canva, Kdenlive. {rgb} Chrome and Edge play the alpha (Safari does
    not); ffmpeg keeps it only when decoding with libvpx: ffmpeg -c:v libvpx-vp9 -i {video}_alpha.webm frame_%05d.png
""",
    "timeline": """\
timeline.png
    One row per track (same order and colours as the video; with over 100 tracks, the 100 seen in the most
    frames, and a last line counting the rest), a bar on every frame the track was seen in: when
    each object is present, the gaps after which a track came back, and a track ending where another begins
    (often one object that got a new id; merge them with Re-render or `uvosam rerender --merge`).
""",
    "results_json": """\
results.json
    The original UVOSAM/IDOL tracks format: a JSON list with one entry per track,
    {{"video_id": "{video}", "score": <mean score>, "category_id": <class index + 1>,
      "boxes": [one per frame: [x1, y1, x2, y2] or null where absent]}}.
    {boxes}
""",
    "ytvis": """\
ytvis_results.json
    YouTube-VIS results format: a JSON list with {ytvis_entries},
    {{"video_id": {ytvis_id}, "category_id": <class index + 1>, "score": <mean score>,
      "segmentations": [one per frame: COCO RLE {{"size": [height, width], "counts": "<string>"}} or null]}}.
    pycocotools takes the entries as written (the string counts too): pycocotools.mask.decode(segmentation)
    gives the (height, width) mask; area, toBbox, iou and merge take them as well.
""",
    "tracks_csv": """\
tracks.csv
    One row per track: track_id, davis_label (empty if left out of the DAVIS PNGs), category_id, class_name,
    score, first_frame, last_frame, num_frames, returns (how often the track came back after frames without it:
    the tracker re-identified the object, e.g. after an occlusion, or its score was under the threshold or out of
    the max objects for a while; the video marks it "back after N" for ~1 s).
""",
}

_CREDITS = """
Credits
-------
UVOSAM: "UVOSAM: A Mask-free Paradigm for Unsupervised Video Object Segmentation via Segment
Anything Model", arXiv:2305.12659.
IDOL: J. Wu et al., "In Defense of Online Models for Video Instance Segmentation", ECCV 2022.
SAM: A. Kirillov et al., "Segment Anything", ICCV 2023 (Meta AI, Apache-2.0).
SAM 2.1: N. Ravi et al., "SAM 2: Segment Anything in Images and Videos", arXiv:2408.00714 (Meta AI, Apache-2.0).
The masks are model predictions; check them before relying on them.
"""


def readme_text(
    result: ExportResult,
    options: ExportOptions,
    merge: Mapping[int, int] | None = None,
    record: Mapping[str, Any] | None = None,
    *,
    size: tuple[int, int] | None = None,
    frame_files: tuple[str, str] | None = None,
) -> str:
    """The README.txt of an export, listing only the files that were written; ``record``: its ``run.json``
    (``uvosam.provenance``), summed up under "Made with" (none without it). ``size``: the frames' (width, height),
    which the masks and boxes have, where the record gives none; ``frame_files``: the stems of the first and the
    last frame's files (None: no frame)."""
    header = _HEADER.format(
        video=result.video_name,
        rule="=" * (len(result.video_name) + 26),
        version=__version__,
        frames=count(result.num_frames, "frame"),
        tracks=count(len(result.tracks), "track"),
        names=_names_text(frame_files),
        stride=_stride_text(record),
    )
    dropped_ids = [t.track_id for t in result.tracks if t.track_id not in result.davis_labels]
    dropped = f"\n    Left out of the PNGs here: tracks {dropped_ids}." if dropped_ids else ""
    full = (
        "\n    Every folder has one image per frame from the object's first frame to its last (empty where it is"
        "\n    absent in between), numbered as the video's frames: the first file says where the object starts."
        if options.full_sequences
        else "\n    Only frames where the object was seen are written."
    )
    rgb = (
        "RGB = the original frame everywhere (so the matte can be grown or feathered)."
        if options.cutout_keep_frame_rgb
        else "RGB = the original frame on the object, black elsewhere."
    )
    ytvis_id = (
        result.ytvis_video_id
        if isinstance(result.ytvis_video_id, int)
        else f'"{result.ytvis_video_id}"'
    )
    ytvis_entries = (
        "one entry per track (its class, its mean per-frame score)"
        if options.ytvis_class_thres is None
        else "one entry per (track, class) whose mean class probability over the track's frames is > "
        f"{options.ytvis_class_thres:g} (IDOL's MULTI_CLS_ON rule; score = that mean)"
    )
    parts = [
        text.format(
            video=result.video_name,
            max_objects=options.max_objects,
            dropped=dropped,
            full=full,
            rgb=rgb,
            ytvis_id=ytvis_id,
            ytvis_entries=ytvis_entries,
            boxes=_boxes_text(record, size),
        )
        for name, text in _FILES.items()
        if _wanted(options, name) and _written(result, name)
    ]
    made_with = made_with_text(record) if record is not None else ""
    return (
        header + made_with + _IDS + "\n".join(parts) + _hints_text(result, merge, record) + _CREDITS
    )


def _names_text(frame_files: tuple[str, str] | None) -> str:
    """How the per-frame files are named, with the first and last of this export's."""
    if frame_files is None:
        return ""
    first, last = frame_files
    here = f"{first}.png" if first == last else f"{first}.png ... {last}.png"
    return (
        " Frame file names follow the input's frames, unchanged: a video's\nframe numbers (00000.png, "
        f"00001.png, ...), a frame folder's own file names; here {here}."
    )


def _boxes_text(record: Mapping[str, Any] | None, size: tuple[int, int] | None) -> str:
    """Which pixels results.json's boxes are in: the frames the run processed, which a ``fit_side`` may have scaled
    down from the source's (run.json's ``video``: width, height, source_width, source_height)."""
    video = (record or {}).get("video") or {}
    width, height = video.get("width"), video.get("height")
    if not (is_integer(width) and is_integer(height)):
        if size is None:
            return "The boxes are in pixels of the frames the masks were made on (their size)."
        width, height = size
    source = video.get("source_width"), video.get("source_height")
    if not all(is_integer(v) for v in source):
        return f"The boxes are in pixels of the frames ({width}x{height}, the masks' size)."
    if source == (width, height):
        return f"The boxes are in pixels of the original frame ({width}x{height}, the masks' size)."
    fit_side = ((record or {}).get("settings") or {}).get("fit_side")
    how = f" (fit_side {fit_side})" if fit_side is not None else ""
    sx, sy = f"{width / source[0]:.6g}", f"{height / source[1]:.6g}"
    scale = (
        f"scale {sx}: divide the boxes by {sx}"
        if sx == sy
        else f"scale {sx} across and {sy} down: divide x by {sx} and y by {sy}"
    )
    text = (
        f"The boxes are in pixels of the frames the run processed, {width}x{height} (the masks' size): the "
        f"source's {source[0]}x{source[1]} frames scaled down{how}, {scale} for the source's pixels."
    )
    return textwrap.fill(text, 112, subsequent_indent="    ")


def _stride_text(record: Mapping[str, Any] | None) -> str:
    """With a frame stride s > 1 (run.json's settings): how frame numbers map to the input's frames and files."""
    stride = ((record or {}).get("settings") or {}).get("stride") or 1
    if stride == 1:
        return ""
    return (
        f"\nFrame stride {stride}: one frame in {stride} of the input was processed. Frame numbers in tracks.csv "
        f"and the JSON files\ncount the processed frames: frame k is the input's frame {stride}k, and its PNGs are "
        f"named after that input frame\n(frame 1: {stride:05d}.png for a video)."
    )


def _wanted(options: ExportOptions, name: str) -> bool:
    """Whether a file was asked for (run.json always is)."""
    return name == "run_json" or bool(getattr(options, name))


def _written(result: ExportResult, name: str) -> bool:
    """False for the files made from frames (the timeline, the WebM) when an export had none to make them from."""
    paths = {
        "timeline": result.timeline_png,
        "alpha_webm": result.alpha_webm,
        "run_json": result.run_json,
    }
    return paths.get(name, True) is not None


def _hints_text(
    result: ExportResult, merge: Mapping[int, int] | None, record: Mapping[str, Any] | None
) -> str:
    """The possible id switches, if any (``uvosam.merge_hints``); ``merge``: the one the files were made with,
    ``record``: their ``run.json``, whose re-render's split the merge's ids need (a re-render starts from the run's
    tracks)."""
    if not result.merge_hints:
        return ""
    lines = "".join(f"    {h.source}>{h.target}: {h.describe()}\n" for h in result.merge_hints)
    merged = merge_text(result.merge_hints, merge)
    # run.json's split_ids: {"track@frame": new id}, as the Made-with line names them
    split = ", ".join(((record or {}).get("rerender") or {}).get("split_ids") or {})
    if split:
        how = f'split "{split}" and merge "{merged}"\n(the app\'s Split tracks and Merge tracks boxes, or '
        how += f'`uvosam rerender <run> --split "{split}" --merge ...`).\n'
    else:
        how = f'merge "{merged}"\n(the app\'s Merge tracks box, or `uvosam rerender <run> --merge ...`).\n'
    return (
        "\nPossible id switches\n--------------------\n"
        "A track that starts right where and when another ended is often the same object with a new id:\n"
        f"{lines}"
        f"Check them in the video or timeline.png; to join them, re-render with {how}"
    )
