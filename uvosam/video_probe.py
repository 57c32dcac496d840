"""Probing a video file with the ffmpeg binary: its header, its exact frame count, its frame rate.

``uvosam.video.probe`` calls these in two steps, checking ``VideoLimits`` in between, so a video over the limits
is refused before its frames are counted:

* ``read_header`` runs ``ffmpeg -i`` once and parses the container header (``Header``: stored size, frame rate,
  duration, rotation, colour, field order of the video stream read: the first that is not cover art, flagged or a
  still picture in a video stream, ``Header.stream``). A still image, an audio-only
  file, a playlist (HLS, DASH, ffconcat: it would make ffmpeg open other files), a file ffmpeg cannot open and
  a truncated mp4/mov (``uvosam.mp4_boxes``) are refused with a message that says which.
* ``count_frames`` demuxes that stream without decoding it (``-c copy -f framecrc``: packets only, fast) and
  counts its packets; packets an edit list discards (a trimmed mp4) are not frames, nor are the leading
  B-frames of a cut open GOP that the decoder drops (the first frames are decoded only where packets show
  such frames). The same pass detects truncated files ("partial file", "File ended prematurely" (Matroska), a
  corrupt packet after the last keyframe, or a video stated to last well beyond its last frame; a corrupt packet
  that a keyframe follows, as at a ``cat`` join of MPEG-TS files, is not one).
* ``resolve_fps`` picks the frame rate: the header's, or the frames' timestamps' average where the two
  disagree (variable-frame-rate webm/mkv).

``run_ffmpeg`` runs the bundled binary to its end (also for ``uvosam.video_audio``). Every error is a
``VideoReadError`` whose message ends with ``accepted`` (what inputs are accepted, from the caller) where the input
may simply be the wrong kind of file.
"""

from __future__ import annotations

import logging
import math
import re
import subprocess
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO

from uvosam.errors import VideoReadError
from uvosam.ffmpeg_binary import ffmpeg_exe
from uvosam.mp4_boxes import truncation_reason
from uvosam.text import count
from uvosam.video_packets import PacketStats, read_packet_stats

logger = logging.getLogger(__name__)

STREAM = "0:V:0"
"""The first video stream that is not flagged cover art: what ``Header.stream`` defaults to. The stream read is the
one ``read_header`` chooses (``Header.stream``, ``0:<index>``), in the probe and the decoder alike."""
_HEADER_TIMEOUT_S = 60.0
_COUNT_TIMEOUT_S = 600.0
# header frame rate vs the timestamps' average: within this, the header's (exact) value
_RATE_TOLERANCE = 0.01


@dataclass(frozen=True)
class Header:
    """What we use of ``ffmpeg -i``'s output. Sizes are STORED (before rotation); 0 = unknown. ``codec``: the
    video stream's codec as ffmpeg (and ffprobe's ``codec_name``) names it (``h264``, ``hevc``, ``gif``...);
    ``audio_codec``: the first audio stream's, "" without one. ``sample_aspect``: the stored pixels' width:height
    as shown: the container's (``, SAR 32:27 DAR 16:9`` after the brackets, what players use) where it states one,
    else the codec's (``[SAR 3:1 DAR 4:1]``), in lowest terms; (1, 1) for square pixels or when not stated.

    ``stream``: the ``-map`` of the stream read, ``0:<index>``. ``stream_duration_s``: that stream's own stated
    duration (a Matroska ``DURATION`` tag), 0.0 without one; ``only_stream``: it is the file's only stream (besides
    flagged cover art), so the container's duration is its own. ``matrix``, ``transfer``: its colour matrix and
    transfer as ffmpeg names them (``bt709``, ``smpte170m``, ``bt2020nc``; ``smpte2084`` is HDR10's PQ,
    ``arib-std-b67`` HLG), "" where not stated. ``interlaced``: ffmpeg gives a field order (``top first``...)."""

    width: int
    height: int
    fps: float
    duration_s: float
    rotation: int
    codec: str = ""
    audio_codec: str = ""
    sample_aspect: tuple[int, int] = (1, 1)
    stream: str = STREAM
    stream_duration_s: float = 0.0
    only_stream: bool = False
    matrix: str = ""
    transfer: str = ""
    interlaced: bool = False

    @property
    def assumed_matrix(self) -> str:
        """The colour matrix to decode with where the stream states none: ``bt709`` for HD (a side of 720 rows or
        1280 columns or more; what players assume, and what phones and cameras record), else "" (ffmpeg's default,
        BT.601, as players assume for SD)."""
        hd = self.height >= 720 or self.width >= 1280
        return "bt709" if not self.matrix and hd else ""

    @property
    def hdr(self) -> bool:
        """The transfer is HDR (PQ or HLG): its frames are converted to RGB without tone mapping."""
        return self.transfer in _HDR_TRANSFERS


_HDR_TRANSFERS = frozenset({"smpte2084", "arib-std-b67"})
# codecs of a still picture: a video stream of one of these that is stated to last a frame or two (or is named a
# cover) is a cover image that lacks the attached_pic flag, not the video, when another video stream exists
_STILL_CODECS = frozenset({"mjpeg", "png", "bmp", "tiff", "webp", "jpegls", "jpeg2000", "qoi"})


def run_ffmpeg(args: list[str], timeout: float, stdout: IO[bytes] | None = None) -> tuple[int, str]:
    """Run the bundled ffmpeg (``-hide_banner -nostdin`` + ``args``, no stdin) to its end; return (exit code,
    stderr text). ``stdout``: where its output goes (default: discarded).

    Raises:
        subprocess.TimeoutExpired: it ran longer than ``timeout`` seconds (it was killed).
    """
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", *args]
    out = subprocess.DEVNULL if stdout is None else stdout
    proc = subprocess.run(
        cmd,
        check=False,
        stdin=subprocess.DEVNULL,
        stdout=out,
        stderr=subprocess.PIPE,
        timeout=timeout,
    )
    return proc.returncode, proc.stderr.decode("utf-8", "replace")


def _run_ffmpeg(
    args: list[str], timeout: float, path: Path, stdout: IO[bytes] | None = None
) -> tuple[int, str]:
    """``run_ffmpeg`` reading ``path``, whose timeout is a ``VideoReadError``."""
    try:
        return run_ffmpeg(args, timeout, stdout)
    except subprocess.TimeoutExpired as err:
        raise VideoReadError(
            f"ffmpeg needed more than {timeout:.0f} s to read {path.name}; the file may be on a "
            "stalled network drive or be malformed. Copy it locally or re-encode it."
        ) from err


# Demuxers whose "file" names other files or network addresses that ffmpeg would then open (HLS and DASH
# playlists, ffconcat lists, IMF compositions): a video file is its own data, so these are refused.
_PLAYLIST_FORMATS = frozenset({"hls", "dash", "concat", "imf"})


def read_header(path: Path, *, accepted: str) -> Header:
    """The container header of the video file ``path`` (one ``ffmpeg -i``, nothing decoded).

    Raises:
        VideoReadError: ffmpeg cannot open it, it is truncated, a still image, audio only or has no video
            stream, or its video stream has no frame size.
    """
    _, text = _run_ffmpeg(["-i", str(path)], _HEADER_TIMEOUT_S, path)
    container = re.search(r"^Input #0, (.+?), from ", text, re.MULTILINE)
    if container is None:
        raise VideoReadError(
            _truncated(path, text, accepted) or _open_failure(path, text, accepted)
        )
    fmt = container.group(1)
    if fmt in _PLAYLIST_FORMATS:
        raise VideoReadError(
            f"{path.name} is a playlist ({fmt}) that points to other files or addresses, not a "
            f"video file. Upload the video itself. {accepted}"
        )
    if fmt.endswith("_pipe") or fmt == "image2":
        kind = fmt.removesuffix("_pipe")
        raise VideoReadError(
            f"{path.name} is a single still image ({kind}), not a video. To segment images, put "
            f"them in a folder as frames. {accepted}"
        )
    streams = re.findall(r"^\s*Stream #0:\d+.*$", text, re.MULTILINE)
    video = [s for s in streams if " Video: " in s and "(attached pic)" not in s]
    video = sorted(video, key=lambda line: _is_still(line, _section(text, line)))
    if not video:
        audio = [
            s.split(" Audio: ", 1)[1].split()[0].rstrip(",") for s in streams if " Audio: " in s
        ]
        what = f"only audio ({', '.join(audio)})" if audio else "no video stream"
        cut = _truncated(path, text, accepted)
        if cut is not None:
            raise VideoReadError(cut)
        raise VideoReadError(
            f"{path.name} contains {what}, so there are no frames to segment. {accepted}"
        )
    header = _parse_video_stream(text, video[0], path, accepted)
    audio_lines = [s for s in streams if " Audio: " in s]
    others = [s for s in streams if s != video[0] and "(attached pic)" not in s]
    index = re.search(r"Stream #0:(\d+)", video[0])
    stated = _duration(r"^\s*DURATION\s*: ", _section(text, video[0]))
    return replace(
        header,
        codec=_codec(video[0], " Video: "),
        audio_codec=_codec(audio_lines[0], " Audio: ") if audio_lines else "",
        stream=f"0:{index.group(1)}" if index else STREAM,
        stream_duration_s=stated,
        only_stream=not others,
    )


def _section(text: str, line: str) -> str:
    """What ``ffmpeg -i`` prints under the stream line ``line`` (its metadata, side data), up to the next stream."""
    after = text[text.index(line) + len(line) :]
    return re.split(r"^\s*Stream #", after, maxsplit=1, flags=re.MULTILINE)[0]


def _duration(prefix: str, text: str) -> float:
    """Seconds of the first ``HH:MM:SS.frac`` after ``prefix`` (a regex) in ``text``; 0.0 without one."""
    dur = re.search(prefix + r"(\d+):(\d+):(\d+(?:\.\d+)?)", text, re.MULTILINE)
    return int(dur.group(1)) * 3600 + int(dur.group(2)) * 60 + float(dur.group(3)) if dur else 0.0


def _is_still(line: str, section: str) -> bool:
    """A video stream that holds a still picture though not flagged cover art: a still-image codec (MJPEG, PNG...)
    stated to last no more than two frames, without a frame rate, or named a cover (an MKV cover put in as a
    video stream). An MJPEG video (fps stated, no short duration) is not one."""
    if _codec(line, " Video: ") not in _STILL_CODECS:
        return False
    stated = _duration(r"^\s*DURATION\s*: ", section)
    rate = _fps(line)
    short = 0 < stated <= 2.5 / rate if rate else True
    named = re.search(
        r"^\s*(?:title|filename|comment)\s*: .*cover", section, re.MULTILINE | re.IGNORECASE
    )
    return short or named is not None


def _fps(line: str) -> float:
    """The frame rate of a stream line of ``ffmpeg -i`` (``..., 29.97 fps, ...``, ``1k fps``); 0.0 if none."""
    fps = re.search(r", (\d+(?:\.\d+)?)(k?) fps", line)
    return float(fps.group(1)) * (1000 if fps.group(2) else 1) if fps else 0.0


def _codec(line: str, kind: str) -> str:
    """The codec name of a stream line of ``ffmpeg -i`` (``Stream #0:0: Video: hevc (Main), ...`` -> ``hevc``)."""
    return line.split(kind, 1)[1].split()[0].rstrip(",")


def _parse_video_stream(text: str, line: str, path: Path, accepted: str) -> Header:
    """Size, frame rate and rotation from the first video stream's line (and its side data)."""
    size = re.search(r", (\d+)x(\d+)", line)
    if size is None:
        unsized = (
            f"{path.name}: ffmpeg reports no frame size for its video stream ({line.strip()}). "
            "Re-encode it (e.g. to H.264 .mp4)."
        )
        raise VideoReadError(_truncated(path, text, accepted) or unsized)
    fps_value = _fps(line)
    duration = _duration(r"Duration: ", text)
    rot = re.search(r"rotation of (-?\d+(?:\.\d+)?) degrees", _section(text, line))
    rotation = round(float(rot.group(1)) / 90.0) * 90 % 360 if rot else 0
    width, height = int(size.group(1)), int(size.group(2))
    matrix, transfer, interlaced = _pixel_format_notes(line)
    return Header(
        width,
        height,
        fps_value,
        duration,
        rotation,
        sample_aspect=_sample_aspect(line),
        matrix=matrix,
        transfer=transfer,
        interlaced=interlaced,
    )


_FIELD_ORDERS = ("top first", "bottom first", "top coded first", "bottom coded first")


def _pixel_format_notes(line: str) -> tuple[str, str, bool]:
    """(matrix, transfer, interlaced) from what a video stream line says in the pixel format's brackets:
    ``yuv420p(tv, bt709, progressive)`` (matrix, primaries and transfer alike), ``yuv420p10le(tv,
    bt2020nc/bt2020/smpte2084)`` (matrix/primaries/transfer; ``unknown`` where not stated), ``yuv420p(top first)``
    (interlaced)."""
    notes = re.search(
        r", [0-9a-z_]+\(([^()]*(?:\([^()]*\))?[^()]*)\)", line.split(" Video: ", 1)[-1]
    )
    matrix = transfer = ""
    interlaced = False
    for word in (w.strip() for w in notes.group(1).split(",")) if notes else ():
        if word.startswith(_FIELD_ORDERS):
            interlaced = True
        elif word not in ("tv", "pc", "progressive") and word:
            parts = [p if p != "unknown" else "" for p in word.split("/")]
            matrix, transfer = parts[0], parts[-1]
    return matrix, transfer, interlaced


def _sample_aspect(line: str) -> tuple[int, int]:
    """The stream line's pixel aspect in lowest terms: the container's ``, SAR w:h DAR ...`` (printed after the
    brackets where it differs from the codec's; players use it), else the codec's ``[SAR w:h DAR ...]``; (1, 1)
    without one or for ffmpeg's 0:1 (unknown)."""
    sar = re.search(r", SAR (\d+):(\d+) DAR", line) or re.search(r"\[SAR (\d+):(\d+) DAR", line)
    if sar is None or int(sar.group(1)) == 0 or int(sar.group(2)) == 0:
        return (1, 1)
    num, den = int(sar.group(1)), int(sar.group(2))
    common = math.gcd(num, den)
    return (num // common, den // common)


def _truncated(path: Path, text: str, accepted: str) -> str | None:
    """The message for an mp4/mov file cut off (or still being written), else ``None``."""
    if "misdetection possible" in text:  # not an mp4/mov at all, whatever its extension says
        return None
    if "moov atom not found" in text:
        return (
            f"{path.name} is truncated: its mp4/mov index (moov atom) is missing, as happens when "
            "a recording or upload is cut off. Re-export or re-upload the complete file. "
            + accepted
        )
    reason = truncation_reason(path)
    if reason is None:
        return None
    return (
        f"{path.name} is truncated: {reason}, as happens when a recording or upload is cut off "
        "or the file is still being written. Re-export or re-upload the complete file. " + accepted
    )


def _open_failure(path: Path, text: str, accepted: str) -> str:
    """The message for a file ffmpeg could not open at all (and that is not truncated)."""
    if "misdetection possible" in text or "Invalid data" in text:
        return f"{path.name} is not a video: ffmpeg does not recognise its content. {accepted}"
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    reason = lines[-1] if lines else "no output"
    return f"ffmpeg could not open {path.name} ({reason}). {accepted}"


def _packet_count(text: str) -> int | None:
    """Packets of the video stream in the stderr of ``ffmpeg -v verbose ... -c copy`` (``count_frames``);
    None if not stated."""
    counts = re.findall(r"Output stream #0:0 \(video\): (\d+) packets muxed", text)
    counts = counts or re.findall(r"frame=\s*(\d+)", text)
    return int(counts[-1]) if counts else None


def count_frames(path: Path, header: Header, *, accepted: str) -> tuple[int, PacketStats]:
    """Count the video frames by demuxing without decoding; detect truncated files. Returns the count and
    what the packets say (``uvosam.video_packets``: discarded packets, the time span of the frames).

    The packet count comes from the muxer summary that ``-v verbose`` prints ("Output stream #0:0 (video): N
    packets muxed"), which every ffmpeg release has; the progress line's ``frame=`` is the fallback (ffmpeg
    7.0, bundled with imageio-ffmpeg 0.6, leaves ``frame=`` out of it for stream copies). Packets an edit list
    discards (a trimmed mp4/mov) decode to no frame and are subtracted, and so are leading packets the decoder
    drops (``undecodable_leading``: a cut open group of pictures; only then is anything decoded).

    Raises:
        VideoReadError: ffmpeg could not read the packets, the file is truncated, or the stream has no frames.
    """
    args = [
        "-v",
        "verbose",
        "-i",
        str(path),
        "-map",
        header.stream,
        "-c",
        "copy",
        "-f",
        "framecrc",
        "-",
    ]
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
        _check_complete(path, header, text, stats, n)
        dropped = undecodable_leading(path, stats.leading, header.stream)
        if dropped:
            packets.seek(0)
            stats = read_packet_stats(packets, drop_leading=dropped)
    n -= stats.discarded + dropped
    _check_stated_end(path, header, stats, n)
    # the stream has frames, none of them readable
    if n <= 0 and (dropped or header.duration_s > 0):
        said = f"the container says {header.duration_s:.2f} s but " if header.duration_s else ""
        raise VideoReadError(
            f"{path.name}'s video data is damaged: {said}none of its frames can be read. Re-export or re-encode "
            "it."
        )
    if n <= 0:
        raise VideoReadError(f"{path.name} has a video stream with no frames in it. {accepted}")
    return n, stats


def _check_complete(path: Path, header: Header, text: str, stats: PacketStats, n: int) -> None:
    """Refuse a truncated file: the mov demuxer says "partial file", or a packet of the last group of pictures
    is flagged corrupt (other demuxers flag the packet the end of the file cuts short). A corrupt packet that a
    keyframe follows is not the end of the data: the MPEG-TS demuxer flags the packet at a continuity-counter
    jump, which is where two ``.ts``/``.mts`` files were joined with ``cat``; the decoder recovers at the key."""
    said = f"the container says {header.duration_s:.2f} s but " if header.duration_s else ""
    if "partial file" in text or "File ended prematurely" in text:  # mov, Matroska/WebM
        raise VideoReadError(
            f"{path.name} is truncated: {said}its data ends after {count(n, 'frame')} (ffmpeg: "
            f"{'partial file' if 'partial file' in text else 'file ended prematurely'}). Re-export or re-upload "
            "the complete file."
        )
    if stats.corrupt_at_end:
        raise VideoReadError(
            f"{path.name} is truncated or damaged at its end: packets after its last keyframe are "
            "incomplete (ffmpeg: corrupt input packet). Re-export or re-upload the complete file."
        )
    if stats.corrupt:
        logger.info(
            "%s: %s flagged corrupt, each followed by a keyframe (e.g. files joined with cat); "
            "decoding goes on",
            path.name,
            count(stats.corrupt, "packet"),
        )


def _check_stated_end(path: Path, header: Header, stats: PacketStats, n: int) -> None:
    """Refuse a file whose video stream is stated to last well beyond its last frame: a Matroska/WebM (or other)
    file cut off where no demuxer says so. What is stated: the stream's own duration (a Matroska ``DURATION``
    tag), else the container's where the video is its only stream (an audio track may be longer than the video).
    "Well beyond": more than 0.5 s, 2 frames and 2% of it. The frames end at the latest one's end
    (``PacketStats``: the last shown frame's duration counts, so a recording that pauses on its last frame ends
    there); an edit list's hidden packets and a late start are in that timing as the container's."""
    stated = header.stream_duration_s or (header.duration_s if header.only_stream else 0.0)
    if stated <= 0 or stats.span_s is None or n < 1:
        return
    end = stats.start_s + stats.span_s
    gap = stats.span_s / n
    if stated - end > max(0.5, 2 * gap, 0.02 * stated):
        raise VideoReadError(
            f"{path.name} is truncated: the container says {stated:.2f} s but its data ends after "
            f"{count(n, 'frame')} ({end:.2f} s), as happens when a recording or upload is cut off. Re-export or "
            "re-upload the complete file."
        )


def undecodable_leading(path: Path, leading: int, stream: str = STREAM) -> int:
    """How many of the ``leading`` packets of ``path`` (``PacketStats.leading``: shown before the first
    keyframe, decoded after it) the decoder drops. The first ``leading + 1`` packets (that keyframe and its
    leading packets: a packet can only refer to packets before it) are copied to a temporary file and decoded
    on their own: those missing from the frames are dropped. 0 without leading packets (nothing is decoded)
    or when ffmpeg cannot copy or decode them (the count stays the packets', as before).

    A stream cut out of a longer one (an MPEG-TS cut by stream copy or by bytes, an HEVC clip with open GOPs)
    starts with a keyframe whose leading B-frames refer to pictures before the cut: no decoder can show them,
    so they are not frames; leading frames that refer only to the keyframe (HEVC RADL) decode and are frames.
    """
    if leading == 0:
        return 0
    with tempfile.TemporaryDirectory(prefix="uvosam-head-") as tmp:
        head = Path(tmp) / "head.nut"
        copy = ["-i", str(path), "-map", stream, "-c", "copy", "-frames:v", str(leading + 1)]
        code, _ = _run_ffmpeg([*copy, "-f", "nut", str(head)], _HEADER_TIMEOUT_S, path)
        if code != 0:
            return 0
        with tempfile.TemporaryFile() as frames:
            decode = ["-i", str(head), "-fps_mode", "passthrough", "-f", "framecrc", "-"]
            code, _ = _run_ffmpeg(decode, _HEADER_TIMEOUT_S, path, stdout=frames)
            frames.seek(0)
            decoded = sum(not line.startswith(b"#") for line in frames)
    return max(leading + 1 - decoded, 0) if code == 0 else 0


def _ntsc_exact(fps: float, timed_fps: float | None) -> float:
    """A header rate as ffmpeg prints it (4 significant digits) back to the exact N * 1000/1001 it rounds, e.g.
    23.98 -> 24000/1001 (23.976...), 29.97 -> 30000/1001, 119.9 -> 120000/1001: encoded at the printed rate, the
    output drifted from its source (0.08 frames at 20 s for 23.98 fps). Kept as printed when it is an integer, when
    no N * 1000/1001 rounds to it, or when the frames' timestamps are closer to the printed rate."""
    n = round(fps * 1.001)
    exact = n * 1000 / 1001
    half_digit = 0.5 * 10.0 ** (math.floor(math.log10(fps)) - 3)  # of the 4th significant digit
    if n < 1 or fps == n or abs(exact - fps) > half_digit + 1e-9:
        return fps
    if timed_fps is not None and abs(timed_fps - fps) < abs(timed_fps - exact):
        return fps
    return exact


def resolve_fps(
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
            "%s: the header says %.3f fps, its %d frames' timestamps average %.3f fps; "
            "using the average",
            path.name,
            fps,
            num_frames,
            timed_fps,
        )
        return timed_fps
    if fps > 0:
        return _ntsc_exact(fps, timed_fps)
    if num_frames == 1:
        return default_fps
    if timed_fps is not None:
        return timed_fps
    if duration_s > 0:
        return num_frames / duration_s
    raise VideoReadError(
        f"{path.name} has {count(num_frames, 'frame')} but no frame rate (0 fps) and no duration, so "
        "frame times are unknown. Re-encode it with a fixed rate, e.g. "
        "`ffmpeg -i in -r 25 -c:v libx264 out.mp4`."
    )
