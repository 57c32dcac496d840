"""Video input: ``probe`` a video file or frame folder, then ``iter_frames`` lazily as RGB uint8.

Everything goes through the ffmpeg binary bundled with imageio-ffmpeg (no ffprobe, no OpenCV):

* ``probe`` runs ``ffmpeg -i`` once to read the container header (size, frame rate, duration,
  rotation), checks ``VideoLimits`` against those numbers, and only then counts the frames
  exactly by demuxing the video stream without decoding it (``-c copy -f framecrc``: reads packets
  only, fast; packets an edit list discards, as in a trimmed mp4, are not frames). That pass also
  detects truncated files ("partial file"). The video stream read is the first one that is not
  cover art (``-map 0:V:0``), in ``probe`` and ``iter_frames`` alike.
* ``iter_frames`` streams raw ``rgb24`` frames out of one ffmpeg process
  (``uvosam.video_decoder``), one frame in memory at a time, each decoded frame exactly
  once (``-fps_mode passthrough``: variable-frame-rate phone videos are not resampled). Rotation
  metadata is applied in numpy, so frames come out in display orientation. Stride is applied
  inside ffmpeg (``select`` filter), so skipped frames never cross the pipe. Sizes are pixel
  sizes; a non-square sample aspect ratio is not corrected. Every frame has the probed size: ffmpeg
  scales frames of another size (a size change mid-stream) to it.
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
import re
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO

import imageio_ffmpeg
import numpy as np

from uvosam import frame_folder
from uvosam.config import VideoLimits
from uvosam.errors import VideoLimitError, VideoReadError
from uvosam.frame_folder import FRAME_EXTENSIONS
from uvosam.mp4_boxes import truncation_reason
from uvosam.video_decoder import RgbDecoder
from uvosam.video_packets import PacketStats, read_packet_stats
from uvosam.video_writer import VideoWriter

__all__ = [
    "DEFAULT_FPS",
    "FRAME_EXTENSIONS",
    "VIDEO_EXTENSIONS",
    "VideoInfo",
    "VideoWriter",
    "check_limits",
    "iter_frames",
    "probe",
]

logger = logging.getLogger(__name__)

VIDEO_EXTENSIONS = (".mp4", ".mov", ".webm", ".avi", ".mkv")
DEFAULT_FPS = 24.0
_HEADER_TIMEOUT_S = 60.0
_COUNT_TIMEOUT_S = 600.0
_RATE_TOLERANCE = 0.01  # header frame rate vs the timestamps' average: within this, the header's (exact) value
# the video stream that is counted and decoded: the first one that is not cover art (the one ``probe`` describes)
_STREAM = "0:V:0"
ACCEPTED_FOLDER = f"a folder of {'/'.join(FRAME_EXTENSIONS)} frames"
"""How input errors name the other accepted input (the app, which takes a zip of frames instead, rewrites it)."""
_ACCEPTED = (
    f"Accepted: a video file ({' '.join(VIDEO_EXTENSIONS)}; other formats ffmpeg reads also "
    f"work) or {ACCEPTED_FOLDER}."
)


@dataclass(frozen=True)
class VideoInfo:
    """What ``probe`` found, before any frame was decoded.

    Attributes:
        path: the video file or frame folder.
        fps: frames per second (> 0): the header's rate, or the average over the frames' timestamps where
            that is more than 1% away from it (variable-frame-rate webm/mkv, whose header rate is estimated
            from the first frames only), so ``num_frames / fps`` is the video's real length. Folders and single
            frames without a rate report ``DEFAULT_FPS``.
        num_frames: number of source frames (exact: packets counted for video files, files
            counted for folders).
        width, height: DISPLAY size in pixels, i.e. after ``rotation`` is applied; every frame from
            ``iter_frames`` has shape ``(height, width, 3)``.
        rotation: counter-clockwise degrees (0, 90, 180, 270) applied to the stored frames for
            display, from the stream's display matrix; 0 for folders (EXIF orientation is applied
            per image).
        duration_s: duration of the frames in seconds, ``num_frames / fps`` (the container's
            duration, which may include an audio tail, is only used for the early limit check).
        is_folder: True for a folder of frames.
        frame_names: one name per source frame: file stems for a folder, ``f"{i:05d}"`` for a video.
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
) -> VideoInfo:
    """Read a video's (or frame folder's) metadata and check ``limits`` before anything is decoded.

    Args:
        path: a video file or a folder of frames.
        limits: refuse inputs over these limits (``None``: no check). Frame and duration limits
            apply to what a read with ``stride`` and ``max_frames`` would cover.
        stride, max_frames: as in ``iter_frames``; used only for the limit check.
        default_fps: frame rate reported for folders and for a single frame without a frame rate.

    Raises:
        FileNotFoundError: nothing at ``path``.
        VideoReadError: not a readable video (empty, truncated, not a video, a still image, audio
            only, no frame rate, no frames) or a bad frame folder (no frames, mixed sizes,
            unreadable image).
        VideoLimitError: over ``limits``.
    """
    path = Path(path)
    _check_read_args(stride, max_frames)
    if not path.exists():
        if path.is_symlink():
            raise FileNotFoundError(
                f"{path} is a symbolic link to {os.readlink(path)!r}, which does not exist (or the "
                f"links form a loop). Point it at a video or frame folder. {_ACCEPTED}"
            )
        raise FileNotFoundError(f"No video or frame folder at {path}. {_ACCEPTED}")
    if path.is_dir():
        return _probe_folder(path, limits, stride, max_frames, default_fps)
    return _probe_file(path, limits, stride, max_frames, default_fps)


def check_limits(
    info: VideoInfo,
    limits: VideoLimits | None,
    *,
    stride: int = 1,
    max_frames: int | None = None,
    approximate: bool = False,
) -> None:
    """Raise ``VideoLimitError`` if reading ``info`` with ``stride``/``max_frames`` exceeds limits.

    A ``num_frames`` or ``duration_s`` of 0 means "unknown" and is not checked. With
    ``approximate`` (``num_frames`` estimated from the container's duration, before counting) the
    frame limit only trips 10% over, and the message says the number is an estimate.
    """
    if limits is None:
        return
    name, size, pixels = info.path.name, f"{info.width}x{info.height}", info.width * info.height
    side = max(info.width, info.height)
    n_out = info.num_output_frames(stride=stride, max_frames=max_frames)
    duration = info.duration_s
    if max_frames is not None and info.fps > 0:
        duration = min(duration, max_frames * stride / info.fps)
    about, slack = ("about ", 1.1) if approximate else ("", 1.0)
    checks = (
        ("max_side", side, 1.0, f"{name} is {size}: its longest side {side} px", "resize it"),
        ("max_pixels", pixels, 1.0, f"{name} is {size} = {pixels} px per frame", "resize it"),
        ("max_frames", n_out, slack, f"reading {name} (stride {stride}) gives {about}{n_out} "
         "frames",
         "trim it, read it with a larger stride or max_frames"),
        ("max_duration_s", duration, 1.0, f"{name} lasts {duration:.1f} s",
         "trim it or read fewer frames (max_frames)"),
    )  # fmt: skip
    for field_name, value, allowance, what, fix in checks:
        limit = getattr(limits, field_name)
        if limit is not None and value > limit * allowance:
            raise VideoLimitError(
                f"{what}, over the limit of {limit} (VideoLimits.{field_name}). To use it, {fix}, "
                f"or raise VideoLimits.{field_name}."
            )


def _check_read_args(stride: int, max_frames: int | None) -> None:
    if not isinstance(stride, int) or stride < 1:
        raise ValueError(f"stride must be an integer >= 1 (1 = every frame); got {stride!r}")
    if max_frames is not None and (not isinstance(max_frames, int) or max_frames < 1):
        raise ValueError(
            f"max_frames must be None (all frames) or an integer >= 1; got {max_frames!r}"
        )


def iter_frames(
    path: str | Path,
    *,
    stride: int = 1,
    max_frames: int | None = None,
    limits: VideoLimits | None = None,
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

    Returns:
        An iterator of ``(H, W, 3)`` uint8 RGB arrays (writable) in display orientation, with
        ``H, W = probe(path).height, .width``. Grayscale, alpha and 10-bit sources are converted
        to RGB uint8 (alpha dropped).

    Raises:
        Everything ``probe`` raises, at call time; ``VideoReadError`` naming the frame index if
        decoding fails part-way (damaged file, file changed while reading).
    """
    info = probe(path, limits=limits, stride=stride, max_frames=max_frames)
    return iter_probed(info, stride=stride, max_frames=max_frames)


def iter_probed(
    info: VideoInfo, *, stride: int = 1, max_frames: int | None = None
) -> Iterator[np.ndarray]:
    """``iter_frames`` of an input already probed (``probe``'s ``VideoInfo``), without probing it
    again (a probe reads a whole video file, or every frame header of a folder).

    Args and returns as ``iter_frames``; ``stride`` and ``max_frames`` should be those ``info``
    was probed (and its limits checked) with.
    """
    n_out = info.num_output_frames(stride=stride, max_frames=max_frames)
    if info.is_folder:
        files = frame_folder.list_frames(info.path)[::stride][:n_out]
        return frame_folder.iter_images(files, (info.width, info.height))
    return _iter_video(info, stride, n_out)


# ---------------------------------------------------------------- video files


@dataclass(frozen=True)
class _Header:
    """What we use of ``ffmpeg -i``'s output. Sizes are STORED (before rotation); 0 = unknown."""

    width: int
    height: int
    fps: float
    duration_s: float
    rotation: int


def _run_ffmpeg(
    args: list[str], timeout: float, path: Path, stdout: IO[bytes] | None = None
) -> tuple[int, str]:
    """Run the bundled ffmpeg; return (exit code, stderr text). ``stdout``: where its output goes
    (default: discarded)."""
    cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-nostdin", *args]
    out = subprocess.DEVNULL if stdout is None else stdout
    try:
        proc = subprocess.run(
            cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.PIPE, timeout=timeout
        )
    except subprocess.TimeoutExpired as err:
        raise VideoReadError(
            f"ffmpeg needed more than {timeout:.0f} s to read {path.name}; the file may be on a "
            "stalled network drive or be malformed. Copy it locally or re-encode it."
        ) from err
    return proc.returncode, proc.stderr.decode("utf-8", "replace")


def _probe_file(
    path: Path, limits: VideoLimits | None, stride: int, max_frames: int | None, default_fps: float
) -> VideoInfo:
    if path.stat().st_size == 0:
        raise VideoReadError(
            f"{path} is empty (0 bytes): the upload or copy did not complete. {_ACCEPTED}"
        )
    if path.suffix.lower() not in VIDEO_EXTENSIONS:
        logger.info("%s: extension not in %s; trying ffmpeg anyway", path, VIDEO_EXTENSIONS)
    header = _read_header(path)
    w, h = header.width, header.height
    if header.rotation in (90, 270):
        w, h = h, w
    # An estimate (0 where fps or duration is unknown): the container's duration can include an
    # audio tail. The exact count is checked again below.
    estimate = round(header.duration_s * header.fps)
    info = VideoInfo(
        path,
        header.fps or default_fps,
        estimate,
        w,
        h,
        header.rotation,
        header.duration_s,
        False,
        (),
    )
    check_limits(info, limits, stride=stride, max_frames=max_frames, approximate=True)
    n, packets = _count_frames(path, header)
    fps = _resolve_fps(header.fps, n, packets.frame_rate(n), header.duration_s, default_fps, path)
    names = tuple(f"{i:05d}" for i in range(n))
    info = replace(info, fps=fps, num_frames=n, duration_s=n / fps, frame_names=names)
    check_limits(info, limits, stride=stride, max_frames=max_frames)
    return info


def _read_header(path: Path) -> _Header:
    _, text = _run_ffmpeg(["-i", str(path)], _HEADER_TIMEOUT_S, path)
    container = re.search(r"^Input #0, (.+?), from ", text, re.M)
    if container is None:
        raise VideoReadError(_truncated(path, text) or _open_failure(path, text))
    fmt = container.group(1)
    if fmt.endswith("_pipe") or fmt == "image2":
        kind = fmt.removesuffix("_pipe")
        raise VideoReadError(
            f"{path.name} is a single still image ({kind}), not a video. To segment images, put "
            f"them in a folder as frames. {_ACCEPTED}"
        )
    streams = re.findall(r"^\s*Stream #0:\d+.*$", text, re.M)
    video = [s for s in streams if " Video: " in s and "(attached pic)" not in s]
    if not video:
        audio = [
            s.split(" Audio: ", 1)[1].split()[0].rstrip(",") for s in streams if " Audio: " in s
        ]
        what = f"only audio ({', '.join(audio)})" if audio else "no video stream"
        cut = _truncated(path, text)
        if cut is not None:
            raise VideoReadError(cut)
        raise VideoReadError(
            f"{path.name} contains {what}, so there are no frames to segment. {_ACCEPTED}"
        )
    return _parse_video_stream(text, video[0], path)


def _parse_video_stream(text: str, line: str, path: Path) -> _Header:
    """Size, frame rate and rotation from the first video stream's line (and its side data)."""
    size = re.search(r", (\d+)x(\d+)", line)
    if size is None:
        unsized = (
            f"{path.name}: ffmpeg reports no frame size for its video stream ({line.strip()}). "
            "Re-encode it (e.g. to H.264 .mp4)."
        )
        raise VideoReadError(_truncated(path, text) or unsized)
    fps = re.search(r", (\d+(?:\.\d+)?)(k?) fps", line)
    fps_value = float(fps.group(1)) * (1000 if fps.group(2) else 1) if fps else 0.0
    dur = re.search(r"Duration: (\d+):(\d+):(\d+(?:\.\d+)?)", text)
    duration = (
        int(dur.group(1)) * 3600 + int(dur.group(2)) * 60 + float(dur.group(3)) if dur else 0.0
    )
    after = text[text.index(line) + len(line) :]
    section = re.split(r"^\s*Stream #", after, maxsplit=1, flags=re.M)[0]
    rot = re.search(r"rotation of (-?\d+(?:\.\d+)?) degrees", section)
    rotation = int(round(float(rot.group(1)) / 90.0)) * 90 % 360 if rot else 0
    return _Header(int(size.group(1)), int(size.group(2)), fps_value, duration, rotation)


def _truncated(path: Path, text: str) -> str | None:
    """The message for an mp4/mov file cut off (or still being written), else ``None``."""
    if "misdetection possible" in text:  # not an mp4/mov at all, whatever its extension says
        return None
    if "moov atom not found" in text:
        return (
            f"{path.name} is truncated: its mp4/mov index (moov atom) is missing, as happens when "
            "a recording or upload is cut off. Re-export or re-upload the complete file. "
            + _ACCEPTED
        )
    reason = truncation_reason(path)
    if reason is None:
        return None
    return (
        f"{path.name} is truncated: {reason}, as happens when a recording or upload is cut off "
        "or the file is still being written. Re-export or re-upload the complete file. "
        + _ACCEPTED
    )


def _open_failure(path: Path, text: str) -> str:
    """The message for a file ffmpeg could not open at all (and that is not truncated)."""
    if "misdetection possible" in text or "Invalid data" in text:
        return f"{path.name} is not a video: ffmpeg does not recognise its content. {_ACCEPTED}"
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    reason = lines[-1] if lines else "no output"
    return f"ffmpeg could not open {path.name} ({reason}). {_ACCEPTED}"


def _packet_count(text: str) -> int | None:
    """Packets of the video stream in the stderr of ``ffmpeg -v verbose ... -c copy`` (``_count_frames``); None if
    not stated."""
    counts = re.findall(r"Output stream #0:0 \(video\): (\d+) packets muxed", text)
    counts = counts or re.findall(r"frame=\s*(\d+)", text)
    return int(counts[-1]) if counts else None


def _count_frames(path: Path, header: _Header) -> tuple[int, PacketStats]:
    """Count the video frames by demuxing without decoding; detect truncated files. Returns the count and what
    the packets say (``uvosam.video_packets``: discarded packets, the time span of the frames).

    The packet count comes from the muxer summary that ``-v verbose`` prints ("Output stream #0:0 (video): N
    packets muxed"), which every ffmpeg release has; the progress line's ``frame=`` is the fallback (ffmpeg 7.0,
    bundled with imageio-ffmpeg 0.6, leaves ``frame=`` out of it for stream copies). Packets an edit list
    discards (a trimmed mp4/mov) decode to no frame and are subtracted."""
    args = ["-v", "verbose", "-i", str(path), "-map", _STREAM, "-c", "copy", "-f", "framecrc", "-"]
    with tempfile.TemporaryFile() as packets:
        code, text = _run_ffmpeg(args, _COUNT_TIMEOUT_S, path, stdout=packets)
        packets.seek(0)
        stats = read_packet_stats(packets)
    n = _packet_count(text)
    if code != 0 or n is None:
        reason = text.strip().splitlines()[-1] if text.strip() else f"exit code {code}"
        raise VideoReadError(
            f"ffmpeg could not read the frames of {path.name} ({reason}). Re-encode it."
        )
    if "partial file" in text or "corrupt input packet" in text:
        said = f"the container says {header.duration_s:.2f} s but " if header.duration_s else ""
        raise VideoReadError(
            f"{path.name} is truncated: {said}its data ends after {n} frames (ffmpeg: "
            "partial file). Re-export or re-upload the complete file."
        )
    n -= stats.discarded
    if n <= 0:
        raise VideoReadError(f"{path.name} has a video stream with no frames in it. {_ACCEPTED}")
    return n, stats


def _resolve_fps(
    fps: float,
    num_frames: int,
    timed_fps: float | None,
    duration_s: float,
    default_fps: float,
    path: Path,
) -> float:
    """The header's frame rate, unless the frames' timestamps average more than 1% away from it (then that
    average: a variable-frame-rate webm/mkv's header rate comes from its first frames only); without a header
    rate: the timestamps' average, else frames / duration; a single frame may have none at all."""
    if fps > 0 and timed_fps is not None and abs(timed_fps / fps - 1) > _RATE_TOLERANCE:
        logger.info(
            "%s: the header says %.3f fps, its %d frames' timestamps average %.3f fps; using the average",
            path.name, fps, num_frames, timed_fps,
        )
        return timed_fps
    if fps > 0:
        return fps
    if num_frames == 1:
        return default_fps
    if timed_fps is not None:
        return timed_fps
    if duration_s > 0:
        return num_frames / duration_s
    raise VideoReadError(
        f"{path.name} has {num_frames} frames but no frame rate (0 fps) and no duration, so "
        "frame times are unknown. Re-encode it with a fixed rate, e.g. "
        "`ffmpeg -i in -r 25 -c:v libx264 out.mp4`."
    )


def _iter_video(info: VideoInfo, stride: int, n_out: int) -> Iterator[np.ndarray]:
    """Frames from one ffmpeg process; ``-frames:v`` stops decoding after the last frame we need."""
    # passthrough: every decoded frame exactly once (the default would duplicate or drop frames of
    # variable-frame-rate videos, e.g. from phones, to make a constant rate).
    stored = (info.height, info.width) if info.rotation in (90, 270) else (info.width, info.height)
    # -s: frames are read at the probed size, so ffmpeg must output exactly that size. The header's size can
    # differ from the first frames' (a stream copy of clips of two sizes into an mkv states the last one), and
    # ffmpeg keeps the first frame's size; without -s the bytes would be cut into frames of the wrong size.
    out = ["-map", _STREAM, "-fps_mode", "passthrough", "-frames:v", str(n_out)]
    out += ["-s", f"{stored[0]}x{stored[1]}"]
    if stride > 1:
        out = ["-vf", f"select=not(mod(n\\,{stride}))", *out]
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


def _probe_folder(
    folder: Path, limits: VideoLimits | None, stride: int, max_frames: int | None, fps: float
) -> VideoInfo:
    """Count and size the frames of a folder; limits are checked before every header is read."""
    files = frame_folder.list_frames(folder, _ACCEPTED)
    width, height = frame_folder.display_size(files[0])
    stems = tuple(p.stem for p in files)
    info = VideoInfo(folder, fps, len(files), width, height, 0, len(files) / fps, True, stems)
    check_limits(info, limits, stride=stride, max_frames=max_frames)
    frame_folder.check_same_size(files, (width, height))
    return info
