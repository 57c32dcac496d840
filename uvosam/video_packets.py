"""What the packets of one video stream say, from ffmpeg's ``framecrc`` muxer (``-c copy -f framecrc``).

``framecrc`` writes a ``#tb 0: num/den`` header line, then one line per packet: ``0, dts, pts, duration, size,
crc[, F=0x<flags>]`` (timestamps in that time base; ``F`` is left out for a plain keyframe). Three facts the
container header does not give reliably come out of it:

* packets flagged "discard" (``AV_PKT_FLAG_DISCARD``, 0x4) decode to no frame: an mp4/mov cut by stream copy
  (``ffmpeg -ss ... -c copy``, lossless cutters) keeps the packets from the keyframe before the cut so flagged;
* the time the shown frames span, so the average frame rate: the rate ffmpeg prints for webm/mkv is estimated from
  the first frames only, which for a variable-frame-rate recording (a browser's MediaRecorder, a screen recorder
  that emits frames only on change) can be several times the real average;
* when the first shown frame comes, which is after the file's start where its audio starts earlier (so the output
  video's sound is cut there, ``uvosam.video_audio``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from fractions import Fraction

__all__ = ["PacketStats", "read_packet_stats"]

_DISCARD = 0x4
_NO_PTS = -(2**63)  # AV_NOPTS_VALUE, as framecrc prints a missing timestamp
_TIME_BASE = re.compile(rb"^#tb 0: (\d+)/(\d+)")
_FLAGS = re.compile(rb", F=0x([0-9A-Fa-f]+)")


@dataclass(frozen=True)
class PacketStats:
    """Packets of one stream.

    Attributes:
        discarded: packets flagged "discard" (no frame).
        span_s: seconds from the start of the earliest shown frame to the end of the latest (its duration; when a
            stream gives no durations, the mean gap between frames stands in for the last one); ``None`` when
            fewer than two packets have distinct timestamps.
        timed: packets (not discarded) with a timestamp.
        start_s: the earliest shown frame's timestamp in seconds, as ffmpeg's ``-i`` gives it (its timeline starts
            at 0 at the file's start; a video stream whose first frame comes after the audio's starts later); 0.0
            without timestamps.
    """

    discarded: int
    span_s: float | None
    timed: int
    start_s: float = 0.0

    def frame_rate(self, num_frames: int) -> float | None:
        """Average frames per second of ``num_frames`` shown frames over ``span_s``; ``None`` if unknown."""
        if self.span_s is None or num_frames < 2 or self.timed < num_frames:
            return None
        return num_frames / self.span_s


def read_packet_stats(lines: Iterable[bytes]) -> PacketStats:
    """Parse ``framecrc`` output (bytes lines) of a single mapped stream."""
    time_base, discarded, timed = None, 0, 0
    first = last = last_end = None
    last_duration = 0
    for line in lines:
        if line.startswith(b"#"):
            match = _TIME_BASE.match(line)
            time_base = Fraction(int(match.group(1)), int(match.group(2))) if match else time_base
            continue
        fields = line.split(b",")
        if len(fields) < 6:
            continue
        flags = _FLAGS.search(line)
        if flags and int(flags.group(1), 16) & _DISCARD:
            discarded += 1
            continue
        pts, duration = int(fields[2]), int(fields[3])
        if pts == _NO_PTS:
            continue
        timed += 1
        first = pts if first is None else min(first, pts)
        if last is None or pts >= last:
            last, last_duration = pts, max(duration, 0)
        last_end = max(pts + max(duration, 0), last_end if last_end is not None else pts)
    if time_base is None or first is None:
        return PacketStats(discarded, None, timed)
    start = float(first * time_base)
    if timed < 2 or last == first:
        return PacketStats(discarded, None, timed, start)
    end = last_end if last_duration > 0 else last + (last - first) / (timed - 1)
    return PacketStats(discarded, float((end - first) * time_base), timed, start)
