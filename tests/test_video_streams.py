"""Odd but valid video streams: an MPEG-TS that starts inside an open group of pictures (cut by stream copy
or by bytes), MPEG-TS files joined with ``cat``, what still counts as truncated, anamorphic (non-square pixel)
video. Media are generated into ``tmp_path`` with the bundled ffmpeg at 64x48."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from proc import ffmpeg, ffmpeg_header

from uvosam.errors import VideoReadError
from uvosam.video import VideoInfo, VideoWriter, iter_frames, probe
from uvosam.video_packets import read_packet_stats

SRC = ("-f", "lavfi", "-i", "testsrc=size=64x48:rate=10", "-t", "2")
MPEG2_OPEN_GOP = ("-c:v", "mpeg2video", "-g", "10", "-bf", "2")


def ts(path: Path, *codec: str) -> Path:
    ffmpeg(*SRC, *codec, "-f", "mpegts", path)
    return path


def test_ts_cut_inside_an_open_gop_counts_only_the_frames_that_decode(tmp_path):
    whole = ts(tmp_path / "m2.ts", *MPEG2_OPEN_GOP)
    cut = (
        tmp_path / "mpeg2_cut.ts"
    )  # starts at an I-frame whose 2 B-frames come after it, shown before
    ffmpeg("-ss", "0.55", "-i", whole, "-c", "copy", "-f", "mpegts", cut)
    info = probe(cut)
    frames = list(iter_frames(cut))
    assert info.num_frames == len(frames) == 8  # those B-frames refer to pictures cut off
    assert info.frame_names[-1] == "00007"
    assert info.start_s == 0.0  # the I-frame's time, not the dropped B-frames' (-0.2 s)
    assert len(list(iter_frames(cut, stride=3))) == info.num_output_frames(stride=3) == 3


def test_ts_cut_by_bytes_mid_stream(tmp_path):
    data = ts(tmp_path / "m2.ts", *MPEG2_OPEN_GOP).read_bytes()
    cut = tmp_path / "bytes.ts"
    cut.write_bytes(data[188 * (len(data) // 188 // 3) :])  # whole 188-byte TS packets, a third off
    info = probe(cut)
    assert info.num_frames == sum(1 for _ in iter_frames(cut))


def test_leading_frames_that_decode_are_frames(tmp_path):
    """An intra-only stream whose second packet is shown first: it is a leading packet of the first keyframe
    but needs no picture before the cut, so it decodes and counts (as HEVC RADL pictures)."""
    intra = ts(tmp_path / "intra.ts", "-c:v", "mpeg2video", "-g", "1")
    swapped = tmp_path / "swapped.nut"
    swap = "if(eq(N\\,0)\\,PTS+DURATION\\,if(eq(N\\,1)\\,PTS-DURATION\\,PTS))"
    ffmpeg("-i", intra, "-c", "copy", "-bsf:v", f"setts=pts={swap}:dts=DTS-DURATION", swapped)
    info = probe(swapped)
    assert info.num_frames == sum(1 for _ in iter_frames(swapped)) == 20


def test_ts_files_joined_with_cat_are_not_truncated(tmp_path):
    first = ts(tmp_path / "a.ts", "-c:v", "libx264", "-g", "10")
    second = tmp_path / "b.ts"
    ffmpeg(
        "-f", "lavfi", "-i", "testsrc2=size=64x48:rate=10", "-t", "0.5", "-c:v", "libx264", second
    )
    joined = tmp_path / "cat2.mts"
    joined.write_bytes(first.read_bytes() + second.read_bytes())
    info = probe(joined)
    assert info.num_frames == sum(1 for _ in iter_frames(joined)) == 25


@pytest.mark.parametrize("fmt", ["flv", "mpeg"])
def test_a_file_cut_after_its_last_keyframe_is_still_truncated(tmp_path, fmt):
    whole = tmp_path / f"whole.{fmt}"
    ffmpeg(*SRC, "-c:v", "flv1" if fmt == "flv" else "mpeg2video", "-f", fmt, whole)
    data = whole.read_bytes()
    cut = tmp_path / f"cut.{fmt}"
    cut.write_bytes(data[: len(data) * 2 // 3 + 7])
    with pytest.raises(
        VideoReadError, match=r"cut\.\w+ is truncated or damaged at its end: packets"
    ):
        probe(cut)


def test_packet_stats_leading_and_corrupt_packets():
    head = [b"#tb 0: 1/90000\n"]
    lines = [  # dts, pts, duration, size, crc[, flags]: an I-frame, 2 leading B-frames, a P-frame ...
        b"0, -27000, 0, 9000, 10, 0x1\n",
        b"0, -18000, -18000, 9000, 10, 0x1, F=0x0\n",
        b"0, -9000, -9000, 9000, 10, 0x1, F=0x0\n",
        b"0, 0, 27000, 9000, 10, 0x1, F=0x2\n",  # ... flagged corrupt, then a keyframe
        b"0, 9000, 36000, 9000, 10, 0x1\n",
    ]
    stats = read_packet_stats(head + lines)
    assert (stats.leading, stats.corrupt, stats.corrupt_at_end) == (2, 1, False)
    assert stats.start_s == pytest.approx(-0.2)
    dropped = read_packet_stats(head + lines, drop_leading=2)
    assert (dropped.timed, dropped.start_s) == (3, 0.0)
    assert dropped.span_s == pytest.approx(0.5)
    assert read_packet_stats(head + lines[:4]).corrupt_at_end
    # an mp4 cut by stream copy starts with discarded packets from the keyframe before the cut: no leading run
    trimmed = [b"0, -36000, -36000, 9000, 10, 0x1, F=0x5\n", *lines[1:]]
    assert read_packet_stats(head + trimmed).leading == 0


def test_anamorphic_video_keeps_its_pixels_and_the_output_its_shape(tmp_path):
    src = tmp_path / "sar.mp4"
    ffmpeg(*SRC[:4], "-t", "0.3", "-vf", "setsar=6/2", "-c:v", "libx264", src)  # 64x48 shown 192x48
    info = probe(src)
    assert (info.width, info.height, info.sample_aspect) == (64, 48, (3, 1))
    frames = list(iter_frames(src))
    assert frames[0].shape == (48, 64, 3)  # stored pixels: masks and DAVIS PNGs stay 64x48
    out = tmp_path / "out.mp4"
    chunks = tmp_path / "chunks"
    with VideoWriter(out, fps=10, width=63, height=48, sample_aspect=info.sample_aspect,
                     chunk_seconds=1.0, chunk_dir=chunks) as writer:  # fmt: skip
        for frame in frames:
            writer.write(frame[:, :63])  # an odd width is padded, the SAR kept
    for written in (out, next(chunks.iterdir())):
        assert "64x48 [SAR 3:1 DAR 4:1]" in ffmpeg_header(written)
    assert probe(out).sample_aspect == (3, 1)
    rotated = tmp_path / "rot.mp4"
    ffmpeg("-display_rotation", "90", "-i", src, "-c", "copy", rotated)
    turned = probe(rotated)
    assert (turned.width, turned.height, turned.sample_aspect) == (48, 64, (1, 3))
    assert probe(write_square(tmp_path)).sample_aspect == (1, 1)
    again = VideoInfo(**json.loads(json.dumps(dataclasses.asdict(info), default=str)))
    assert again.sample_aspect == (3, 1)  # a mask cache's meta gives a list back


def write_square(tmp_path: Path) -> Path:
    with VideoWriter(tmp_path / "square.mp4", fps=10, width=64, height=48) as writer:
        writer.write(np.zeros((48, 64, 3), np.uint8))
    assert "[SAR" not in ffmpeg_header(tmp_path / "square.mp4")
    return tmp_path / "square.mp4"


def test_writer_refuses_a_bad_sample_aspect(tmp_path):
    for bad in ((0, 1), (1.5, 1), (3,), (True, 1)):
        with pytest.raises(ValueError, match=r"sample_aspect must be two positive integers"):
            VideoWriter(tmp_path / "x.mp4", fps=10, width=64, height=48, sample_aspect=bad)
