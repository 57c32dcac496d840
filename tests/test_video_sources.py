"""Videos as phones, cameras and editors make them: the container's pixel aspect, a variable rate with B-frames,
colour matrices and ranges (in and out), a Matroska file cut off, interlaced fields, a cover picture put in as a
video stream. Media are generated into ``tmp_path`` with the bundled ffmpeg, tiny (64x48; one 1280x720 frame)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
from proc import FFMPEG, ffmpeg, ffmpeg_header

from uvosam.errors import VideoReadError
from uvosam.video import VideoWriter, iter_frames, probe
from uvosam.video_packets import PacketStats, read_packet_stats
from uvosam.video_probe import Header, _check_stated_end

SRC = ("-f", "lavfi", "-i", "testsrc2=size=64x48:rate=25")
X264 = ("-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p")
BT709 = ("-colorspace", "bt709", "-color_primaries", "bt709", "-color_trc", "bt709")


def raw_rgb(path: Path, w: int, h: int, *args: str) -> np.ndarray:
    """Every frame of ``path`` as ffmpeg decodes it to RGB (its colour tags honoured), after ``args`` (filters)."""
    out = ffmpeg("-i", path, *args, "-f", "rawvideo", "-pix_fmt", "rgb24", "-")
    return np.frombuffer(out, np.uint8).reshape(-1, h, w, 3)


# ---------------------------------------------------------------- pixel aspect


@pytest.mark.parametrize("kind", ["mkv", "prores"])
def test_the_containers_pixel_aspect_is_the_one_read(tmp_path, kind):
    square = (
        tmp_path / "sq.mp4"
    )  # the codec says square pixels; the container says 4:3 (shown 16:9)
    ffmpeg(*SRC, "-frames:v", "3", "-vf", "setsar=1", *X264, square)
    if kind == "mkv":
        src = tmp_path / "dvd.mkv"
        ffmpeg("-i", square, "-c", "copy", "-aspect", "16:9", src)
    else:  # ProRes stores no aspect: the mov's pasp box does
        src = tmp_path / "anamorphic.mov"
        ffmpeg("-i", square, "-vf", "setsar=4/3", "-c:v", "prores_ks", src)
    assert ", SAR 4:3 DAR 16:9" in ffmpeg_header(src)
    info = probe(src)
    assert info.sample_aspect == (4, 3)
    out = tmp_path / "out.mp4"
    with VideoWriter(out, fps=25, width=64, height=48, sample_aspect=info.sample_aspect) as writer:
        for frame in iter_frames(src):
            writer.write(frame)
    assert "64x48 [SAR 4:3 DAR 16:9]" in ffmpeg_header(out)  # shown 16:9, as the input


def test_a_sample_aspect_is_written_exactly(tmp_path):
    out = tmp_path / "out.mp4"
    with VideoWriter(out, fps=10, width=64, height=48, sample_aspect=(1001, 1000)) as writer:
        writer.write(np.zeros((48, 64, 3), np.uint8))
    assert "[SAR 1001:1000 " in ffmpeg_header(out)  # setsar's default rounded it to 1:1


# ---------------------------------------------------------------- timing


# a 1 s mp4 with B-frames at 25 fps whose frames 5..19 were dropped (a screen recording that emits frames on change):
# the packet decoded before the gap (dts 2048) is shown after it, its duration (8192) is the gap in DECODING order
SCREENREC = b"""#tb 0: 1/12800
0,      -1024,          0,      512,    16225, 0xc8524e02
0,       -512,       2048,      512,     7079, 0x14e3dba5, F=0x0
0,          0,       1024,      512,     5894, 0x592f75a4, F=0x0
0,        512,        512,      512,      949, 0x6187e005, F=0x0
0,       1024,       1536,      512,     1084, 0xd51025fb, F=0x0
0,       1536,      11776,      512,     2371, 0xe67b962e, F=0x0
0,       2048,      10752,     8192,     3462, 0xeec6a379, F=0x0
0,      10240,      10240,      512,     2538, 0x137af54c, F=0x0
0,      10752,      11264,      512,      492, 0xfa06e3fb, F=0x0
0,      11264,      12288,      512,      433, 0xc491cf73, F=0x0
""".splitlines(keepends=True)


def test_variable_rate_with_b_frames_ends_at_the_last_shown_frame(tmp_path):
    stats = read_packet_stats(SCREENREC)
    assert stats.span_s == pytest.approx(
        1.0
    )  # not 1.48 s: pts 10752 + its decoding-order duration 8192
    assert stats.frame_rate(10) == pytest.approx(10.0)
    src = tmp_path / "screenrec.mp4"
    ffmpeg(*SRC, "-t", "1", "-vf", "select='not(between(n,5,19))'", "-fps_mode", "vfr", *X264[:2],
           "-preset", "veryfast", "-bf", "3", "-pix_fmt", "yuv420p", src)  # fmt: skip
    info = probe(src)
    assert info.num_frames == 10
    assert info.duration_s == pytest.approx(1.0, abs=0.01) and info.fps == pytest.approx(
        10.0, abs=0.1
    )


# ---------------------------------------------------------------- colour

GREEN, COLOURS = (0, 254, 0), [(0, 254, 0), (200, 30, 30), (30, 30, 200), (240, 200, 20)]


def test_output_is_bt709_limited_range_and_tagged_so(tmp_path):
    frames = [np.full((48, 64, 3), c, np.uint8) for c in COLOURS]
    out, webm = tmp_path / "out.mp4", tmp_path / "alpha.webm"
    with VideoWriter(out, fps=10, width=64, height=48, crf=0) as writer:
        for frame in frames:
            writer.write(frame)
    with VideoWriter(webm, fps=10, width=64, height=48, alpha=True) as writer:
        writer.write(np.dstack([frames[0], np.full((48, 64), 255, np.uint8)]))
    assert "yuv420p(tv, bt709, progressive)" in ffmpeg_header(out)
    assert "(tv, bt709" in ffmpeg_header(webm)
    # a player that reads it as BT.709 (what the tags say; what players assume of untagged HD) sees the colours
    shown = raw_rgb(out, 64, 48, "-vf", "setparams=colorspace=bt709:range=tv")
    for frame, colour in zip(shown, COLOURS):
        assert np.abs(frame.astype(int) - colour).max() <= 5  # BT.601 had green at (0, 213, 0)
    for frame, colour in zip(iter_frames(out), COLOURS):
        assert np.abs(frame.astype(int) - colour).max() <= 5


def _clip_of(path: Path, w: int, h: int, matrix: str, pix_fmt: str, *tags: str) -> Path:
    """Flat ``COLOURS`` frames converted to YUV with ``matrix`` (limited range; full for yuvj), lossless H.264."""
    frames = np.concatenate([np.full((h, w, 3), c, np.uint8) for c in COLOURS]).tobytes()
    full = "pc" if pix_fmt.startswith("yuvj") else "tv"
    untag = (
        "" if tags else ",setparams=colorspace=unknown:color_primaries=unknown:color_trc=unknown"
    )
    cmd = [FFMPEG, "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}", "-r", "4", "-i", "-",
           "-vf", f"scale=out_color_matrix={matrix}:out_range={full},format={pix_fmt}{untag}",
           "-c:v", "libx264", "-preset", "ultrafast", "-qp", "0", *tags, str(path)]  # fmt: skip
    subprocess.run(cmd, input=frames, check=True)
    return path


@pytest.mark.parametrize(
    ("name", "size", "matrix", "pix_fmt", "tags"),
    [
        ("untagged_hd", (1280, 720), "bt709", "yuv420p", ()),  # players take untagged HD as BT.709
        ("untagged_sd", (64, 48), "bt601", "yuv420p", ()),
        ("bt601_hd", (1280, 720), "bt601", "yuv420p", ("-colorspace", "smpte170m")),
        ("bt709_sd", (64, 48), "bt709", "yuv420p", BT709),
        ("full_range", (64, 48), "bt601", "yuvj420p", ("-color_range", "pc")),
        ("ten_bit", (64, 48), "bt709", "yuv420p10le", BT709),
        (
            "bt2020",
            (64, 48),
            "bt2020",
            "yuv420p10le",
            ("-colorspace", "bt2020nc", "-color_primaries", "bt2020"),
        ),
    ],
)
def test_every_input_matrix_and_range_decodes_to_its_colours(
    tmp_path, name, size, matrix, pix_fmt, tags
):
    w, h = size
    src = _clip_of(tmp_path / f"{name}.mp4", w, h, matrix, pix_fmt, *tags)
    frames = list(iter_frames(src))
    assert len(frames) == len(COLOURS)
    for frame, colour in zip(
        frames, COLOURS
    ):  # an untagged HD clip was read as BT.601: green 19 levels off
        assert np.abs(frame[::8, ::8].astype(int) - colour).max() <= 4, name
    if w == 64:  # and through the output
        out = tmp_path / "out.mp4"
        with VideoWriter(out, fps=4, width=w, height=h, crf=0) as writer:
            for frame in frames:
                writer.write(frame)
        for frame, colour in zip(iter_frames(out), COLOURS):
            assert np.abs(frame.astype(int) - colour).max() <= 5, name


def test_hdr_is_said_not_tone_mapped(tmp_path, caplog):
    src = tmp_path / "hdr.mp4"
    tags = "setparams=colorspace=bt2020nc:color_primaries=bt2020:color_trc=smpte2084"  # HDR10's PQ
    ffmpeg(*SRC, "-frames:v", "2", "-vf", tags, "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p10le",
           src)  # fmt: skip
    info = probe(src)
    assert (
        info.hdr
        and not probe(_clip_of(tmp_path / "sdr.mp4", 64, 48, "bt709", "yuv420p", *BT709)).hdr
    )
    assert "without tone mapping" in caplog.text


# ---------------------------------------------------------------- truncated Matroska


def test_a_cut_off_mkv_is_truncated(tmp_path):
    whole = tmp_path / "whole.mkv"
    ffmpeg(*SRC, "-t", "1", *X264, whole)
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size * 6 // 10])
    with pytest.raises(VideoReadError, match=r"cut\.mkv is truncated: the container says 1\.00 s"):
        probe(cut)


def test_a_stream_stated_longer_than_its_frames_is_truncated():
    """The stated duration alone (a file cut at a cluster's end, where no demuxer complains)."""
    frames = PacketStats(discarded=0, span_s=0.28, timed=7)
    cut = Header(64, 48, 25.0, 1.0, 0, stream_duration_s=1.0)
    with pytest.raises(
        VideoReadError, match=r"x\.mkv is truncated: the container says 1\.00 s .* 7 frames \(0\.28"
    ):
        _check_stated_end(Path("x.mkv"), cut, frames, 7)
    alone = Header(
        64, 48, 25.0, 1.0, 0, only_stream=True
    )  # the container's duration is the video's
    with pytest.raises(VideoReadError, match="truncated"):
        _check_stated_end(Path("x.mkv"), alone, frames, 7)
    # the container's duration with an audio track beside: that may be longer
    _check_stated_end(Path("x.mkv"), Header(64, 48, 25.0, 1.0, 0), frames, 7)
    late = PacketStats(
        discarded=0, span_s=0.5, timed=13, start_s=0.5
    )  # starts late, ends where stated
    _check_stated_end(Path("x.mkv"), cut, late, 13)


def _pause_at_the_end(tmp_path: Path, ext: str) -> Path:
    """10 frames at 10 fps, the last shown 2.1 s (a screen recording that stopped changing): 3 s in all."""
    src = tmp_path / "eleven.mp4"
    ffmpeg(*SRC, "-frames:v", "11", "-vf", "setpts='if(eq(N,10),3/TB,N/10/TB)'", "-fps_mode", "vfr", *X264,
           "-bf", "0", src)  # fmt: skip
    out = tmp_path / f"pause.{ext}"
    ffmpeg("-i", src, "-c", "copy", "-frames:v", "10", out)
    return out


def test_valid_files_that_end_after_their_video_are_not_truncated(tmp_path):
    base = tmp_path / "base.mp4"
    ffmpeg(*SRC, "-f", "lavfi", "-i", "sine=duration=2", "-t", "1", "-map", "0:v", "-map", "1:a", *X264,
           "-c:a", "aac", "-t:a", "2", base)  # fmt: skip
    longer_audio = tmp_path / "longer_audio.mkv"
    ffmpeg("-i", base, "-c", "copy", longer_audio)
    late = tmp_path / "late.mkv"  # the video starts 0.5 s after the audio
    ffmpeg(
        "-i",
        base,
        "-itsoffset",
        "0.5",
        "-i",
        base,
        "-map",
        "1:v",
        "-map",
        "0:a",
        "-c",
        "copy",
        late,
    )
    trimmed = tmp_path / "trimmed.mp4"  # an edit list hides the frames before the cut
    ffmpeg("-ss", "0.5", "-i", base, "-c", "copy", "-an", trimmed)
    delayed = tmp_path / "delayed.mkv"
    ffmpeg("-itsoffset", "0.5", "-i", base, "-c", "copy", "-an", delayed)
    for path in (longer_audio, late, trimmed, delayed):
        assert probe(path).num_frames > 0, path.name
    for ext in ("mkv", "mp4"):
        info = probe(_pause_at_the_end(tmp_path, ext))
        assert info.num_frames == 10 and info.duration_s == pytest.approx(3.0, abs=0.05)


# ---------------------------------------------------------------- interlaced


def _comb(frame: np.ndarray) -> float:
    """How much each row differs from the mean of its neighbours (the teeth of two fields taken at two times)."""
    luma = frame.astype(float).mean(axis=2)
    return float(np.abs(luma[1:-1] - (luma[:-2] + luma[2:]) / 2).mean())


@pytest.mark.parametrize("field", ["tff", "bff"])
def test_interlaced_video_is_deinterlaced_frame_for_frame(tmp_path, field):
    src = tmp_path / f"{field}.mp4"  # 50 fields/s woven into 25 frames/s, coded as fields
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=128x96:rate=50", "-frames:v", "20", "-vf",
           f"tinterlace=mode=interleave_{'top' if field == 'tff' else 'bottom'},setfield={field}", *X264,
           "-flags", "+ilme+ildct", "-x264opts", f"{field}=1", src)  # fmt: skip
    info = probe(src)
    assert info.interlaced and info.num_frames == 20 and info.fps == 25.0
    frames = list(iter_frames(src))
    assert len(frames) == 20 and len(list(iter_frames(src, stride=3))) == 7
    woven = raw_rgb(src, 128, 96)  # as stored: the two fields' moving edges comb
    assert np.mean([_comb(f) for f in frames]) < 0.85 * np.mean([_comb(f) for f in woven])


# ---------------------------------------------------------------- a cover put in as a video stream


def test_a_cover_picture_first_is_not_the_video(tmp_path):
    cover = tmp_path / "cover.jpg"
    ffmpeg("-f", "lavfi", "-i", "color=c=red:size=32x32", "-frames:v", "1", cover)
    video = tmp_path / "v.mp4"
    ffmpeg(*SRC, "-frames:v", "6", *X264, video)
    both = (
        tmp_path / "cover_first.mkv"
    )  # a 1-frame MJPEG video stream, not flagged attached_pic, then the video
    ffmpeg(
        "-i",
        cover,
        "-i",
        video,
        "-map",
        "0",
        "-map",
        "1",
        "-c:v:0",
        "mjpeg",
        "-c:v:1",
        "copy",
        both,
    )
    assert "Video: mjpeg" in ffmpeg_header(both).split("Stream #0:1")[0]
    info = probe(both)
    assert (info.stream, info.width, info.height, info.num_frames) == ("0:1", 64, 48, 6)
    frames = list(iter_frames(both))
    assert len(frames) == 6 and frames[0].shape == (48, 64, 3)
    assert np.array_equal(
        frames[0], next(iter_frames(video))
    )  # the video's frames, not the cover's
