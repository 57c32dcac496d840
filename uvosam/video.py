"""Video input: ``probe`` a video file or frame folder, then ``iter_frames`` lazily as RGB uint8.

Everything goes through the ffmpeg binary bundled with imageio-ffmpeg (no ffprobe, no OpenCV):

* ``probe`` runs ``ffmpeg -i`` once to read the container header (size, frame rate, duration,
  rotation), checks ``VideoLimits`` against those numbers, and only then counts the frames
  exactly by demuxing the video stream without decoding it (``-c copy -f framecrc``: reads packets
  only, fast; packets an edit list discards, as in a trimmed mp4, are not frames, nor are the leading
  B-frames of a cut open GOP, as at the start of an MPEG-TS cut out of a broadcast, which the decoder
  drops: only there are the first few frames decoded to tell). That pass also detects truncated files
  ("partial file", corrupt packets after the last keyframe, a Matroska file ending early or a video stated to last
  well beyond its last frame; not a ``cat`` join of two MPEG-TS files). The video stream read is the first one that
  is not cover art (flagged, or a still picture in a video stream: ``VideoInfo.stream``), in ``probe`` and
  ``iter_frames`` alike. Those ffmpeg passes and the frame rate's choice are ``uvosam.video_probe``.
* ``iter_frames`` streams raw ``rgb24`` frames out of one ffmpeg process
  (``uvosam.video_decoder``), one frame in memory at a time, each decoded frame exactly
  once (``-fps_mode passthrough``: variable-frame-rate phone videos are not resampled). Interlaced streams are
  deinterlaced frame for frame (``bwdif``); an untagged HD stream is converted to RGB as BT.709 (as players do; ffmpeg
  would take BT.601), a tagged one by its tags, full range and 10-bit included; HDR is not tone-mapped. Rotation
  metadata is applied in numpy, so frames come out in display orientation. Stride is applied
  inside ffmpeg (``select`` filter), so skipped frames never cross the pipe. Sizes are pixel
  sizes: frames of an anamorphic video (non-square pixels, e.g. ``[SAR 3:1]``) keep their stored
  pixels, so masks and DAVIS PNGs align with them pixel for pixel; ``VideoInfo.sample_aspect`` says
  how wide a pixel is shown, for ``VideoWriter(sample_aspect=...)`` to mark the output so players
  stretch it as they did the input. Every frame has the probed size: ffmpeg
  scales frames of another size (a size change mid-stream) to it.
* ``fit_side`` (``probe``, ``iter_frames``): frames with a side over it are decoded scaled down to fit it, aspect
  kept, even sides (``uvosam.video_fit``); the ``VideoInfo`` then has the scaled size and ``scaled_from`` the
  source's. ``limits`` apply to the source's size.
* A folder of ``.jpg/.jpeg/.png`` frames (DAVIS ``JPEGImages/480p/<sequence>``) is read with PIL
  (``uvosam.frame_folder``: natural name order, EXIF orientation applied). A folder has no frame
  rate: ``DEFAULT_FPS`` (24, as DAVIS) is reported unless ``default_fps`` says otherwise.

Frame names: ``VideoInfo.frame_names`` holds one name per source frame: the file stems for a folder
(``"00000"``), ``f"{i:05d}"`` for a video file.
"""

from __future__ import annotations

import logging
import math
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from uvosam import frame_folder
from uvosam.config import VideoLimits, is_integer
from uvosam.errors import InputError, MissingInputError, VideoLimitError, VideoReadError
from uvosam.frame_folder import FRAME_EXTENSIONS
from uvosam.remote_links import looks_like_link
from uvosam.video_decoder import RgbDecoder
from uvosam.video_fit import check_fit_side, fit_info, fit_size
from uvosam.video_probe import STREAM, count_frames, read_header, resolve_fps
from uvosam.video_writer import VideoWriter

__all__ = [
    "DEFAULT_FPS",
    "FRAME_EXTENSIONS",
    "VIDEO_EXTENSIONS",
    "VideoInfo",
    "VideoWriter",
    "check_limits",
    "fit_info",
    "iter_frames",
    "probe",
]

logger = logging.getLogger(__name__)

VIDEO_EXTENSIONS = (".mp4", ".mov", ".webm", ".avi", ".mkv")
DEFAULT_FPS = 24.0
ACCEPTED_FILE = f"a video file ({' '.join(VIDEO_EXTENSIONS)}; other formats ffmpeg reads also work)"
ACCEPTED_FOLDER = f"a folder of {'/'.join(FRAME_EXTENSIONS)} frames"
"""How input errors name the accepted inputs (the app, whose upload box takes video files only and which takes a
zip of frames instead of a folder, rewrites both)."""
_ACCEPTED = f"Accepted: {ACCEPTED_FILE} or {ACCEPTED_FOLDER}."


@dataclass(frozen=True)
class VideoInfo:
    """What ``probe`` found, before any frame was decoded.

    Attributes:
        path: the video file or frame folder.
        fps: frames per second (> 0): the header's rate, or the average over the frames' timestamps where
            that is more than 1% away from it (variable-frame-rate webm/mkv, whose header rate is estimated
            from the first frames only), so ``num_frames / fps`` is the video's real length. Folders and single
            frames without a rate report ``DEFAULT_FPS``.
        num_frames: number of source frames (exact: the packets that decode to a frame counted for video
            files, files counted for folders).
        width, height: DISPLAY size in pixels, i.e. after ``rotation`` is applied; every frame from
            ``iter_frames`` has shape ``(height, width, 3)``. Read with ``fit_side``: the scaled size.
        rotation: counter-clockwise degrees (0, 90, 180, 270) applied to the stored frames for
            display, from the stream's display matrix; 0 for folders (EXIF orientation is applied
            per image).
        duration_s: duration of the frames in seconds, ``num_frames / fps`` (the container's
            duration, which may include an audio tail, is only used for the early limit check).
        is_folder: True for a folder of frames.
        frame_names: one name per source frame: file stems for a folder, ``f"{i:05d}"`` for a video.
        codec, audio_codec: a video file's video and first audio codec as ffmpeg names them (``h264``, ``hevc``,
            ``aac``...); "" for folders, a file without audio, or an info that does not record them.
        start_s: when a video file's first frame is shown, in seconds from the file's start as ffmpeg counts it
            (``-ss``): above 0 where the audio starts earlier, so the output video's audio is cut there to stay in
            sync (``uvosam.video_audio``); 0.0 for folders.
        nominal_fps: a video file's frame rate as its header gives it (``fps`` is the frames' average where that is
            more than 1% away: frames missing from a fixed-rate clip's timing, a variable rate); 0.0 without one,
            for folders, and in an info that does not record it.
        sample_aspect: (w, h): a pixel of the frames (display orientation) is shown ``w / h`` times as wide as
            tall, in lowest terms; (1, 1) for square pixels, folders and an info that does not record it. The frames
            are NOT resized to square pixels (``width`` x ``height`` stays the pixel size, which masks and DAVIS PNGs
            keep); the displayed size is ``width * w / h`` x ``height``. Pass it to ``VideoWriter`` so the output
            is shown as the input (a 160x120 video with SAR 3:1 is shown 480x120).
        scaled_from: (width, height) of the source's frames (display orientation) where a read with ``fit_side``
            scales them down to ``width`` x ``height`` (``uvosam.video_fit``); None where frames keep their size.
        stream: the video stream read (``-map``), ``0:<index>``: the first that is not cover art (flagged, or a
            still picture put in as a video stream: ``uvosam.video_probe``); ``0:V:0`` in an info that does not record
            it.
        interlaced: the stream is interlaced (ffmpeg gives a field order): frames are deinterlaced as decoded
            (``bwdif``, one frame per frame, so count and timing stay).
        assumed_matrix: the colour matrix frames are decoded with where the stream states none: ``bt709`` for HD
            (as players assume), "" for ffmpeg's default (BT.601, SD) or a stated matrix.
        hdr: the stream's transfer is HDR (PQ or HLG): its frames are converted to RGB WITHOUT tone mapping (they
            look washed out or dim, as in a player that does not tone-map).
    """

    path: Path
    fps: float
    num_frames: int
    width: int
    height: int
    rotation: int
    duration_s: float
    is_folder: bool
    frame_names: tuple[str, ...] = field(repr=False)
    codec: str = ""
    audio_codec: str = ""
    start_s: float = 0.0
    nominal_fps: float = 0.0
    sample_aspect: tuple[int, int] = (1, 1)
    scaled_from: tuple[int, int] | None = None
    stream: str = STREAM
    interlaced: bool = False
    assumed_matrix: str = ""
    hdr: bool = False

    def __post_init__(self) -> None:
        # JSON (a mask cache's meta, ``uvosam.job_plan``) gives back a list
        object.__setattr__(self, "sample_aspect", tuple(self.sample_aspect))
        if self.scaled_from is not None:
            object.__setattr__(self, "scaled_from", tuple(self.scaled_from))

    @property
    def source_size(self) -> tuple[int, int]:
        """(width, height) of the source's frames: ``scaled_from``, else ``width`` x ``height``."""
        return self.scaled_from or (self.width, self.height)

    def num_output_frames(self, *, stride: int = 1, max_frames: int | None = None) -> int:
        """How many frames ``iter_frames(path, stride=stride, max_frames=max_frames)`` yields."""
        n = math.ceil(self.num_frames / stride)
        return n if max_frames is None else min(n, max_frames)


def probe(
    path: str | Path,
    *,
    limits: VideoLimits | None = None,
    stride: int = 1,
    max_frames: int | None = None,
    default_fps: float = DEFAULT_FPS,
    fit_side: int | None = None,
) -> VideoInfo:
    """Read a video's (or frame folder's) metadata and check ``limits`` before anything is decoded.

    Args:
        path: a video file or a folder of frames (a leading ``~`` is the home folder; a link is refused: see
            ``uvosam.remote_video.download_video``).
        limits: refuse inputs over these limits (``None``: no check). Frame and duration limits
            apply to what a read with ``stride`` and ``max_frames`` would cover.
        stride, max_frames: as in ``iter_frames``; used only for the limit check.
        default_fps: frame rate reported for folders and for a single frame without a frame rate.
        fit_side: as in ``iter_frames``: the info then gives the scaled size (``fit_info``).

    Raises:
        FileNotFoundError: nothing at ``path``.
        VideoReadError: not a readable video (empty, truncated, not a video, a still image, audio
            only, no frame rate, no frames) or a bad frame folder (no frames, mixed sizes,
            unreadable image).
        VideoLimitError: over ``limits``.
    """
    _check_read_args(stride, max_frames)
    fit_side = check_fit_side(fit_side)
    if isinstance(path, str) and looks_like_link(path):
        raise MissingInputError(
            f"{path} is a link: this reads local files. Download it first (uvosam.remote_video.download_video, "
            "or `uvosam segment <link>`, which downloads it) and pass the file."
        )
    path = Path(path).expanduser()
    if not path.exists():
        if path.is_symlink():
            raise MissingInputError(
                f"{path} is a symbolic link to {os.readlink(path)!r}, which does not exist (or the "
                f"links form a loop). Point it at a video or frame folder. {_ACCEPTED}"
            )
        raise MissingInputError(f"No video or frame folder at {path}. {_ACCEPTED}")
    read = (limits, stride, max_frames, default_fps, fit_side)
    info = _probe_folder(path, *read) if path.is_dir() else _probe_file(path, *read)
    return fit_info(info, fit_side)


def check_limits(
    info: VideoInfo,
    limits: VideoLimits | None,
    *,
    stride: int = 1,
    max_frames: int | None = None,
    approximate: bool = False,
    fit_side: int | None = None,
) -> None:
    """Raise ``VideoLimitError`` if reading ``info`` with ``stride``/``max_frames`` exceeds limits (its frame
    size: the source's, ``VideoInfo.source_size``, also for a read that scales it down; with the ``fit_side``
    that scales it, a refusal of its size says so).

    A ``num_frames`` or ``duration_s`` of 0 means "unknown" and is not checked. With
    ``approximate`` (``num_frames`` estimated from the container's duration, before counting) the
    frame limit only trips 10% over, and the message says the number is an estimate.
    """
    if limits is None:
        return
    (width, height), name = info.source_size, info.path.name
    size, pixels, side = f"{width}x{height}", width * height, max(width, height)
    n_out = info.num_output_frames(stride=stride, max_frames=max_frames)
    duration = info.duration_s
    if max_frames is not None and info.fps > 0:
        duration = min(duration, max_frames * stride / info.fps)
    about, slack = ("about ", 1.1) if approximate else ("", 1.0)
    scaled = fit_size(width, height, fit_side) != (width, height)
    at_source = (
        f", which applies to its size before fit_side {fit_side} scales it down" if scaled else ""
    )
    checks = (
        ("max_side", side, 1.0, f"{name} is {size}: its longest side {side} px", "resize it"),
        ("max_pixels", pixels, 1.0, f"{name} is {size} = {pixels} px per frame", "resize it"),
        ("max_frames", n_out, slack,
         f"reading {name} (stride {stride}) gives {about}{n_out} frames",
         "trim it, read it with a larger stride or max_frames"),
        ("max_duration_s", duration, 1.0, f"{name} lasts {duration:.1f} s",
         "trim it or read fewer frames (max_frames)"),
    )  # fmt: skip
    for field_name, value, allowance, what, fix in checks:
        limit = getattr(limits, field_name)
        if limit is not None and value > limit * allowance:
            where = at_source if field_name in ("max_side", "max_pixels") else ""
            raise VideoLimitError(
                f"{what}, over the limit of {limit} (VideoLimits.{field_name}){where}. To use it, {fix}, "
                f"or raise VideoLimits.{field_name}.",
                limit_name=field_name,
                subject=what,
                limit=limit,
            )


def _check_read_args(stride: int, max_frames: int | None) -> None:
    if not is_integer(stride) or stride < 1:  # a numpy integer is fine, True is not 1 here
        raise InputError(f"stride must be an integer >= 1 (1 = every frame); got {stride!r}")
    if max_frames is not None and (not is_integer(max_frames) or max_frames < 1):
        raise InputError(
            f"max_frames must be None (all frames) or an integer >= 1; got {max_frames!r}"
        )


def iter_frames(
    path: str | Path,
    *,
    stride: int = 1,
    max_frames: int | None = None,
    limits: VideoLimits | None = None,
    fit_side: int | None = None,
) -> Iterator[np.ndarray]:
    """Frames of a video file or frame folder, decoded one at a time.

    The input is probed (and ``limits`` checked) when this function is CALLED, so bad input
    raises here; frames are decoded only as the returned iterator is consumed. Memory does not
    depend on the video's length. Closing the iterator (or leaving a ``for`` loop) stops ffmpeg.

    Args:
        path: a video file or a folder of ``.jpg/.jpeg/.png`` frames.
        stride: keep source frames ``0, stride, 2*stride, ...``.
        max_frames: stop after this many OUTPUT frames (``None``: all).
        limits: checked from metadata before decoding (see ``probe``).
        fit_side: frames with a side over this many pixels are decoded scaled down (area averaging) to fit it,
            aspect kept, to even sides (2560x1440 at 1920: 1920x1080); never enlarged. None: the source size.

    Returns:
        An iterator of ``(H, W, 3)`` uint8 RGB arrays (writable) in display orientation, with
        ``H, W = probe(path, fit_side=fit_side).height, .width``. Grayscale, alpha and 10-bit sources are converted
        to RGB uint8 (alpha dropped).

    Raises:
        Everything ``probe`` raises, at call time; ``VideoReadError`` naming the frame index if
        decoding fails part-way (damaged file, file changed while reading).
    """
    info = probe(path, limits=limits, stride=stride, max_frames=max_frames, fit_side=fit_side)
    return iter_probed(info, stride=stride, max_frames=max_frames)


def iter_probed(
    info: VideoInfo, *, stride: int = 1, max_frames: int | None = None
) -> Iterator[np.ndarray]:
    """``iter_frames`` of an input already probed (``probe``'s ``VideoInfo``), without probing it
    again (a probe reads a whole video file, or every frame header of a folder).

    Args and returns as ``iter_frames``; ``stride`` and ``max_frames`` should be those ``info``
    was probed (and its limits checked) with. Frames have ``info``'s size: scaled down from the source's where
    ``info.scaled_from`` says so (``fit_info``).
    """
    n_out = info.num_output_frames(stride=stride, max_frames=max_frames)
    if info.is_folder:
        files = frame_folder.list_frames(info.path)[::stride][:n_out]
        return frame_folder.iter_images(files, info.source_size, (info.width, info.height))
    return _iter_video(info, stride, n_out)


def _probe_file(
    path: Path,
    limits: VideoLimits | None,
    stride: int,
    max_frames: int | None,
    default_fps: float,
    fit_side: int | None,
) -> VideoInfo:
    mode = path.stat().st_mode
    if not stat.S_ISREG(mode):
        raise VideoReadError(
            f"{path} is not a regular file but {_file_kind(mode)}: a video is read several times "
            f"(probed, then decoded), so it must be a file saved on disk. {_ACCEPTED}"
        )
    if path.stat().st_size == 0:
        raise VideoReadError(
            f"{path.name} is empty (0 bytes): the upload or copy did not complete. {_ACCEPTED}"
        )
    if path.suffix.lower() not in VIDEO_EXTENSIONS:
        logger.info("%s: extension not in %s; trying ffmpeg anyway", path, VIDEO_EXTENSIONS)
    header = read_header(path, accepted=_ACCEPTED)
    w, h, sar = header.width, header.height, header.sample_aspect
    if header.rotation in (90, 270):
        w, h, sar = h, w, sar[::-1]
    # An estimate (0 where fps or duration is unknown): the container's duration can include an
    # audio tail. The exact count is checked again below.
    estimate = round(header.duration_s * header.fps)
    info = VideoInfo(
        path=path,
        fps=header.fps or default_fps,
        num_frames=estimate,
        width=w,
        height=h,
        rotation=header.rotation,
        duration_s=header.duration_s,
        is_folder=False,
        frame_names=(),
        codec=header.codec,
        audio_codec=header.audio_codec,
        nominal_fps=header.fps,
        sample_aspect=sar,
        stream=header.stream,
        interlaced=header.interlaced,
        assumed_matrix=header.assumed_matrix,
        hdr=header.hdr,
    )
    if header.hdr:
        logger.warning(
            "%s is HDR (transfer %s): its frames are converted to RGB without tone mapping, so they and the "
            "output look flat or dim",
            path.name,
            header.transfer,
        )
    check = {"stride": stride, "max_frames": max_frames, "fit_side": fit_side}
    check_limits(info, limits, approximate=True, **check)
    n, packets = count_frames(path, header, accepted=_ACCEPTED)
    fps = resolve_fps(header.fps, n, packets.frame_rate(n), header.duration_s, default_fps, path)
    names = tuple(f"{i:05d}" for i in range(n))
    info = replace(
        info, fps=fps, num_frames=n, duration_s=n / fps, frame_names=names, start_s=packets.start_s
    )
    check_limits(info, limits, **check)
    return info


def _file_kind(mode: int) -> str:
    """What a file that is neither a regular file nor a folder is (``os.stat``'s ``st_mode``)."""
    kinds = (
        (stat.S_ISFIFO, "a named pipe (FIFO)"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    )
    return next((kind for test, kind in kinds if test(mode)), "a special file")


def _iter_video(info: VideoInfo, stride: int, n_out: int) -> Iterator[np.ndarray]:
    """Frames from one ffmpeg process; ``-frames:v`` stops decoding after the last frame we need."""
    # passthrough: every decoded frame exactly once (the default would duplicate or drop frames of
    # variable-frame-rate videos, e.g. from phones, to make a constant rate).
    stored = (info.height, info.width) if info.rotation in (90, 270) else (info.width, info.height)
    # -s: frames are read at the probed size, so ffmpeg must output exactly that size. The header's size can
    # differ from the first frames' (a stream copy of clips of two sizes into an mkv states the last one), and
    # ffmpeg keeps the first frame's size; without -s the bytes would be cut into frames of the wrong size.
    out = ["-map", info.stream, "-fps_mode", "passthrough", "-frames:v", str(n_out)]
    out += ["-s", f"{stored[0]}x{stored[1]}"]
    filters = _decode_filters(info)
    if stride > 1:
        filters.append(f"select=not(mod(n\\,{stride}))")
    if info.scaled_from is not None:  # fit_side: after select, so skipped frames are never scaled
        filters.append(f"scale={stored[0]}:{stored[1]}:flags=area")
    if filters:
        out = ["-vf", ",".join(filters), *out]
    count = 0
    with RgbDecoder(
        info.path, width=stored[0], height=stored[1], input_args=["-noautorotate"], output_args=out
    ) as decoder:
        try:
            for frame in decoder:
                yield np.rot90(frame, info.rotation // 90).copy()
                count += 1
        except OSError as err:
            raise VideoReadError(
                f"decoding {info.path.name} failed at frame {count * stride} (output frame "
                f"{count}): {str(err).splitlines()[0]}. The file is damaged; re-encode it."
            ) from err
        if count < n_out:
            said = decoder.said()
            raise VideoReadError(
                f"decoding {info.path.name} stopped at frame {count * stride} (output frame "
                f"{count}) of {info.num_frames}: the data is damaged or the file changed while it "
                "was read. Re-encode it."
                + (f" ffmpeg said: {said.splitlines()[-1]}" if said else "")
            )


def _decode_filters(info: VideoInfo) -> list[str]:
    """The filters every frame goes through first: the colour matrix of an untagged HD stream stated (ffmpeg would
    convert it to RGB as BT.601); an interlaced stream deinterlaced (``bwdif`` sending one frame per frame, only
    frames flagged interlaced; it needs 3 rows and columns)."""
    filters = []
    if info.assumed_matrix:
        filters.append(f"setparams=colorspace={info.assumed_matrix}")
    if info.interlaced and min(info.width, info.height) >= 3:
        filters.append("bwdif=mode=send_frame:deint=interlaced")
    return filters


def _probe_folder(
    folder: Path,
    limits: VideoLimits | None,
    stride: int,
    max_frames: int | None,
    fps: float,
    fit_side: int | None,
) -> VideoInfo:
    """Count and size the frames of a folder; limits are checked before every header is read."""
    files = frame_folder.list_frames(folder, _ACCEPTED)
    width, height = frame_folder.display_size(files[0])
    stems = tuple(p.stem for p in files)
    info = VideoInfo(
        path=folder,
        fps=fps,
        num_frames=len(files),
        width=width,
        height=height,
        rotation=0,
        duration_s=len(files) / fps,
        is_folder=True,
        frame_names=stems,
    )
    check_limits(info, limits, stride=stride, max_frames=max_frames, fit_side=fit_side)
    frame_folder.check_same_size(files, (width, height))
    return info
