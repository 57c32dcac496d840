"""What the packets of one video stream say, from ffmpeg's ``framecrc`` muxer (``-c copy -f framecrc``).

``framecrc`` writes a ``#tb 0: num/den`` header line, then one line per packet: ``0, dts, pts, duration, size,
crc[, F=0x<flags>]`` (timestamps in that time base; ``F`` is left out for a plain keyframe). Facts the container
header does not give reliably come out of it:

* packets flagged "discard" (``AV_PKT_FLAG_DISCARD``, 0x4) decode to no frame: an mp4/mov cut by stream copy
  (``ffmpeg -ss ... -c copy``, lossless cutters) keeps the packets from the keyframe before the cut so flagged;
* the time the shown frames span, so the average frame rate: the rate ffmpeg prints for webm/mkv is estimated from
  the first frames only, which for a variable-frame-rate recording (a browser's MediaRecorder, a screen recorder
  that emits frames only on change) can be several times the real average;
* when the first shown frame comes, which is after the file's start where its audio starts earlier (so the output
  video's sound is cut there, ``uvosam.video_audio``);
* the "leading" packets: those right after the first keyframe in decoding order that are shown before it. In a
  stream cut out of a longer one (an MPEG-TS cut by stream copy or by bytes, an open-GOP HEVC/MPEG-2 recording)
  they are the B-frames of the cut-off group of pictures, whose references are gone: the decoder drops them.
  Whether it does is decided by decoding them (``uvosam.video_probe``); ``drop_leading`` then leaves the dropped
  ones out of the timing;
* packets flagged "corrupt" (``AV_PKT_FLAG_CORRUPT``, 0x2): demuxers flag the packet a file's end cuts short, and
  the MPEG-TS demuxer also flags the packet at a continuity-counter jump, as where two ``.ts``/``.mts`` files
  were joined with ``cat`` (which a fresh keyframe then follows).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction

__all__ = ["PacketStats", "read_packet_stats"]

_KEY, _CORRUPT, _DISCARD = 0x1, 0x2, 0x4
_NO_PTS = -(2**63)  # AV_NOPTS_VALUE, as framecrc prints a missing timestamp
_TIME_BASE = re.compile(rb"^#tb 0: (\d+)/(\d+)")
_FLAGS = re.compile(rb", F=0x([0-9A-Fa-f]+)")


@dataclass(frozen=True)
class PacketStats:
    """Packets of one stream.

    Attributes:
        discarded: packets flagged "discard" (no frame).
        span_s: seconds from the start of the earliest shown frame to the end of the latest: its timestamp plus
            its own packet's duration (not the largest timestamp + duration of any packet: with B-frames an mp4
            packet's duration is its gap in decoding order); without one, the mean gap between frames stands in.
            ``None`` when fewer than two packets have distinct timestamps.
        timed: packets (not discarded) with a timestamp.
        start_s: the earliest shown frame's timestamp in seconds, as ffmpeg's ``-i`` gives it (its timeline starts
            at 0 at the file's start; a video stream whose first frame comes after the audio's starts later); 0.0
            without timestamps.
        leading: packets that follow the first packet, a keyframe, in decoding order but are shown before it
            (a cut open group of pictures), counted up to the first one that is shown after it; dropped ones
            included. 0 when the stream starts with discarded packets (an mp4 cut by stream copy keeps the
            pictures before the cut, so every frame's references are there).
        corrupt: packets (not discarded) flagged corrupt.
        corrupt_at_end: a packet from the stream's last keyframe on is flagged corrupt: the data stops inside
            the last group of pictures (a truncated file), not at a join or glitch that a keyframe follows.
    """

    discarded: int
    span_s: float | None
    timed: int
    start_s: float = 0.0
    leading: int = 0
    corrupt: int = 0
    corrupt_at_end: bool = False

    def frame_rate(self, num_frames: int) -> float | None:
        """Average frames per second of ``num_frames`` shown frames over ``span_s``; ``None`` if unknown."""
        if self.span_s is None or num_frames < 2 or self.timed < num_frames:
            return None
        return num_frames / self.span_s


@dataclass
class _Packet:
    pts: int
    duration: int
    flags: int


class _Timing:
    """The earliest and latest timestamps of the shown packets, fed one at a time."""

    def __init__(self) -> None:
        self.timed = 0
        self.first: int | None = None
        self.last: int | None = None
        self.last_duration = 0

    def add(self, pts: int, duration: int) -> None:
        self.timed += 1
        self.first = pts if self.first is None else min(self.first, pts)
        if self.last is None or pts >= self.last:
            self.last, self.last_duration = pts, max(duration, 0)

    def span(self, time_base: Fraction) -> float | None:
        # The end is the LAST SHOWN frame's timestamp plus its duration, not the largest pts + duration of any
        # packet: an mp4 packet's duration is its gap in decoding order, so with B-frames and a variable rate a
        # frame decoded before a pause (shown after it) would seem to last the whole pause past the end.
        if self.timed < 2 or self.last == self.first:
            return None
        gap = (self.last - self.first) / (self.timed - 1)
        end = self.last + (self.last_duration if self.last_duration > 0 else gap)
        return float((end - self.first) * time_base)


class _Reader:
    """The packets of ``framecrc`` lines, discarded ones counted and skipped; ``time_base`` once read;
    ``starts_at_key``: the first packet (discarded or not) is a keyframe that is shown."""

    def __init__(self, lines: Iterable[bytes]) -> None:
        self._lines = lines
        self.time_base: Fraction | None = None
        self.discarded = 0
        self.starts_at_key = False

    def __iter__(self) -> Iterator[_Packet]:
        first = True
        for line in self._lines:
            if line.startswith(b"#"):
                match = _TIME_BASE.match(line)
                self.time_base = Fraction(int(match[1]), int(match[2])) if match else self.time_base
                continue
            fields = line.split(b",")
            if len(fields) < 6:
                continue
            flags = _FLAGS.search(line)
            flag_bits = int(flags.group(1), 16) if flags else _KEY
            if first:
                self.starts_at_key = flag_bits & (_KEY | _DISCARD) == _KEY
                first = False
            if flag_bits & _DISCARD:
                self.discarded += 1
                continue
            yield _Packet(int(fields[2]), int(fields[3]), flag_bits)


def read_packet_stats(lines: Iterable[bytes], *, drop_leading: int = 0) -> PacketStats:
    """Parse ``framecrc`` output (bytes lines) of a single mapped stream.

    ``drop_leading``: how many of the ``leading`` packets the decoder drops (they are not frames): the earliest
    shown ones (the leading frames that refer to the cut-off pictures are shown before those that do not) are
    left out of ``span_s``, ``timed`` and ``start_s``.
    """
    reader = _Reader(lines)
    timing = _Timing()
    key_pts: int | None = None
    # the leading packets while they come; None before the first and after
    run: list[_Packet] | None = None
    leading = corrupt = 0
    corrupt_at_end = False
    for i, pkt in enumerate(reader):
        corrupt += bool(pkt.flags & _CORRUPT)
        corrupt_at_end = (not pkt.flags & _KEY and corrupt_at_end) or bool(pkt.flags & _CORRUPT)
        if run is not None and pkt.pts != _NO_PTS and pkt.pts < key_pts:
            run.append(pkt)
            continue
        if run is not None:
            leading = _end_run(run, drop_leading, timing)
            run = None
        if i == 0 and reader.starts_at_key and pkt.pts != _NO_PTS:
            key_pts, run = pkt.pts, []
        if pkt.pts != _NO_PTS:
            timing.add(pkt.pts, pkt.duration)
    if run is not None:
        leading = _end_run(run, drop_leading, timing)
    counts = {"leading": leading, "corrupt": corrupt, "corrupt_at_end": corrupt_at_end}
    if reader.time_base is None or timing.first is None:
        return PacketStats(reader.discarded, None, timing.timed, **counts)
    start = float(timing.first * reader.time_base)
    return PacketStats(
        reader.discarded, timing.span(reader.time_base), timing.timed, start, **counts
    )


def _end_run(run: list[_Packet], drop: int, timing: _Timing) -> int:
    """Time the leading packets ``run`` but the ``drop`` earliest shown; return how many there were."""
    for pkt in sorted(run, key=lambda p: p.pts)[drop:]:
        timing.add(pkt.pts, pkt.duration)
    return len(run)
