"""uvosam.video / video_probe / video_writer / frame_folder: round trips, chunks, rotation, folders,
laziness, and every bad input. All media are generated into ``tmp_path`` with the ffmpeg bundled in
imageio-ffmpeg, at tiny sizes.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import tracemalloc
import zlib
from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest
from clip_helpers import write_video
from PIL import Image, ImageOps, PngImagePlugin
from proc import ffmpeg, ffmpeg_children, ffmpeg_header, pattern_clip

from uvosam.config import VideoLimits
from uvosam.errors import VideoLimitError, VideoReadError
from uvosam.frame_folder import display_size
from uvosam.video import DEFAULT_FPS, VideoWriter, iter_frames, probe
from uvosam.video_decoder import DecodeError, RgbDecoder
from uvosam.video_packets import read_packet_stats
from uvosam.video_probe import _packet_count, resolve_fps
from uvosam.video_writer import MIN_FPS


def flat(value: tuple[int, int, int] | int, h: int = 48, w: int = 64) -> np.ndarray:
    return np.full((h, w, 3), value, np.uint8)


@pytest.fixture(scope="module")
def long_video(tmp_path_factory) -> Path:
    """300 frames, 160x120, 25 fps, +faststart (~200 kB)."""
    path = tmp_path_factory.mktemp("long") / "long.mp4"
    codec = (
        "-c:v",
        "libx264",
        "-preset",
        "veryfast",
        "-pix_fmt",
        "yuv420p",
        "-movflags",
        "+faststart",
    )
    return pattern_clip(path, *codec, size="160x120", frames=300, rate=25, src="testsrc2")


# ---------------------------------------------------------------- round trips


def test_round_trip_flat_colours(tmp_path):
    colours = [
        (200, 30, 30),
        (30, 200, 30),
        (30, 30, 200),
        (128, 128, 128),
        (250, 250, 250),
        (5, 5, 5),
    ] * 2
    path = write_video(tmp_path / "flat.mp4", [flat(c) for c in colours], fps=12, crf=10)
    info = probe(path)
    assert (info.width, info.height, info.num_frames, info.fps, info.rotation) == (
        64,
        48,
        12,
        12.0,
        0,
    )
    assert info.duration_s == pytest.approx(1.0, abs=0.05)
    assert (
        not info.is_folder
        and info.frame_names[:2] == ("00000", "00001")
        and len(info.frame_names) == 12
    )
    frames = list(iter_frames(path))
    assert len(frames) == 12
    for frame, colour in zip(frames, colours):
        assert frame.shape == (48, 64, 3) and frame.dtype == np.uint8 and frame.flags.writeable
        assert np.abs(frame.astype(int) - colour).max() <= 4


def test_written_file_is_browser_friendly_h264(tmp_path):
    path = write_video(tmp_path / "web.mp4", [flat(100)] * 5)
    header = ffmpeg_header(path)
    assert "Video: h264" in header and "yuv420p" in header
    data = path.read_bytes()
    assert data.index(b"moov") < data.index(b"mdat"), (
        "+faststart puts the index before the media data"
    )


def test_odd_size_is_padded_not_scaled(tmp_path):
    frame = flat((200, 200, 200), h=21, w=33)
    frame[:, -1] = (20, 180, 60)  # the edge column, which the padding repeats
    path = write_video(tmp_path / "odd.mp4", [frame] * 3, crf=5)
    info = probe(path)
    assert (info.width, info.height) == (34, 22) and info.num_frames == 3
    out = next(iter_frames(path)).astype(int)
    assert np.abs(out[:20, :31] - 200).max() <= 4, "original pixels kept (no rescale)"
    assert np.abs(out[21, :31] - 200).max() <= 6, "the added row repeats the bottom row (was black)"
    assert np.abs(out[:, 33] - (20, 180, 60)).max() <= 12, (
        "the added column repeats the edge column"
    )


def test_stride_and_max_frames(tmp_path):
    values = [10 + 10 * k for k in range(20)]
    path = write_video(tmp_path / "ramp.mp4", [flat(v) for v in values], crf=5)

    def read(**kw) -> list[int]:
        # int(): with numpy < 2, round() of a float64 is a float64
        return [int(round(f.mean())) for f in iter_frames(path, **kw)]  # noqa: RUF046

    def near(got: list[int], want: list[int]) -> bool:
        return len(got) == len(want) and all(abs(g - w) <= 3 for g, w in zip(got, want))

    assert near(read(stride=3), values[::3])
    assert near(read(max_frames=4), values[:4])
    assert near(read(stride=3, max_frames=2), [values[0], values[3]])
    # a computed (numpy) stride is an integer; True is not 1 (config.is_integer's rule)
    assert near(read(stride=np.int64(3), max_frames=np.int32(2)), [values[0], values[3]])
    for bad in ({"stride": True}, {"stride": 2.0}, {"max_frames": True}):
        with pytest.raises(ValueError, match=rf"{next(iter(bad))} must be .*an integer >= 1"):
            iter_frames(path, **bad)
    info = probe(path)
    assert (
        info.num_output_frames(stride=3) == 7
        and info.num_output_frames(stride=3, max_frames=2) == 2
    )
    with pytest.raises(ValueError, match="stride"):
        iter_frames(path, stride=0)
    with pytest.raises(ValueError, match="max_frames"):
        iter_frames(path, max_frames=0)


@pytest.mark.parametrize("fmt", [".ts", ".mp4"])
def test_chunks_decode_and_add_up(tmp_path, fmt):
    frames = [flat(5 * k) for k in range(25)]
    done = []
    with VideoWriter(
        tmp_path / "full.mp4", fps=10, width=64, height=48, chunk_seconds=1.0, chunk_format=fmt
    ) as writer:
        for k, frame in enumerate(frames):
            chunk = writer.write(frame)
            if chunk is not None:
                done.append((k, chunk))
        last = writer.close()
    assert [k for k, _ in done] == [9, 19], "a chunk is returned by the write that completes it"
    chunks = [c for _, c in done] + [last]
    assert all(c.suffix == fmt and c.parent == tmp_path / "full_chunks" for c in chunks)
    counts = [sum(1 for _ in iter_frames(c)) for c in chunks]
    assert counts == [10, 10, 5]
    for chunk in chunks:
        header = ffmpeg_header(chunk)
        assert "Video: h264" in header and "yuv420p" in header
    first = next(iter_frames(chunks[1]))
    assert abs(first.mean() - frames[10].mean()) <= 3, (
        "each chunk starts where the previous one ended"
    )
    assert probe(tmp_path / "full.mp4").num_frames == 25


def test_writer_rejects_bad_frames_and_stays_usable(tmp_path):
    writer = VideoWriter(tmp_path / "x.mp4", fps=10, width=64, height=48)
    assert ffmpeg_children(), "the helper sees the writer's ffmpeg"
    with pytest.raises(ValueError, match=r"shape \(48, 64, 3\); got uint8 \(48, 64\)"):
        writer.write(np.zeros((48, 64), np.uint8))
    with pytest.raises(ValueError, match=r"got float32"):
        writer.write(np.zeros((48, 64, 3), np.float32))
    writer.write(flat(3))
    assert writer.close() is None and writer.close() is None
    assert probe(tmp_path / "x.mp4").num_frames == 1 and not ffmpeg_children()
    with pytest.raises(ValueError, match="closed"):
        writer.write(flat(3))
    with pytest.raises(ValueError, match="fps"):
        VideoWriter(tmp_path / "z.mp4", fps=0, width=64, height=48)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        VideoWriter(tmp_path / "no" / "z.mp4", fps=10, width=64, height=48)


@pytest.mark.parametrize("fmt", [".mp4", ".ts"])
def test_writer_takes_rates_down_to_min_fps_and_refuses_slower_at_once(tmp_path, fmt):
    """``--stride 100000000000`` made the output rate 2.5e-10 fps: ffmpeg got "-r 0" and failed after the run."""
    slow = write_video(tmp_path / f"slow{fmt}", [flat(9), flat(99)], fps=MIN_FPS)
    assert probe(slow).num_frames == 2
    for fps in (25 / 100_000_000_000, MIN_FPS / 2, float("inf"), float("nan")):
        with pytest.raises(
            ValueError, match=r"fps must be a number >= 1e-05 \(a frame every 100,000 s"
        ):
            VideoWriter(tmp_path / f"z{fmt}", fps=fps, width=64, height=48)
    assert not (tmp_path / f"z{fmt}").exists() and not ffmpeg_children()


def test_writer_exception_in_with_block_kills_ffmpeg(tmp_path):
    with (
        pytest.raises(RuntimeError, match="boom"),
        VideoWriter(tmp_path / "a.mp4", fps=10, width=64, height=48, chunk_seconds=0.5) as writer,
    ):
        for _ in range(7):
            writer.write(flat(50))
        assert len(ffmpeg_children()) == 2, "full file + current chunk"
        raise RuntimeError("boom")
    assert not ffmpeg_children()
    assert not (tmp_path / "a.mp4").exists(), "the unfinished full file is removed"
    assert [p.name for p in sorted((tmp_path / "a_chunks").iterdir())] == ["a_00000.ts"], (
        "finished chunk kept"
    )
    write_video(tmp_path / "b.mp4", [flat(50)] * 3)
    assert not ffmpeg_children()


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full (Linux)")
@pytest.mark.parametrize("size", [(1, 1), (48, 64)])
def test_a_two_frame_ts_chunk_is_probed_as_mpeg_ts(tmp_path, size):
    """2 frames of a tiny clip made a 9-packet .ts that ffmpeg and ffprobe took for MPEG-PS ("End of file"): Gradio's
    streaming video probes each chunk with ffprobe, and the run failed."""
    height, width = size
    with VideoWriter(
        tmp_path / "full.mp4", fps=24, width=width, height=height, chunk_seconds=1.0
    ) as writer:
        assert writer.write(np.zeros((height, width, 3), np.uint8)) is None
        assert writer.write(np.full((height, width, 3), 200, np.uint8)) is None
        chunk = writer.close()
    assert "Input #0, mpegts" in ffmpeg_header(chunk)
    assert sum(1 for _ in iter_frames(chunk)) == 2
    if shutil.which("ffprobe"):  # Gradio's (the system's)
        said = subprocess.run(
            [
                "ffprobe",
                "-v",
                "error",
                "-show_entries",
                "format=format_name",
                "-of",
                "csv=p=0",
                str(chunk),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        assert said.stdout.strip() == "mpegts", said.stderr


def test_chunk_ffmpeg_fails_to_finish_is_removed(tmp_path):
    chunks = tmp_path / "a_chunks"
    chunks.mkdir()
    (chunks / "a_00000.ts").symlink_to("/dev/full")  # every write fails, as on a full disk
    with (
        pytest.raises(OSError, match="No space left on device"),
        VideoWriter(tmp_path / "a.mp4", fps=10, width=64, height=48, chunk_seconds=0.5) as writer,
    ):
        for _ in range(5):
            writer.write(flat(50))
    assert not ffmpeg_children() and not (tmp_path / "a.mp4").exists()
    assert not list(chunks.iterdir()), "the chunk ffmpeg could not finish is not left behind"


# ------------------------------------------------------- rotation, frame rates, pixel formats


def test_variable_frame_rate_gives_each_frame_once(tmp_path):
    path = tmp_path / "vfr.mp4"  # 15 frames 0.1 s apart, then 15 frames 0.3 s apart
    pattern_clip(path, "-c:v", "libx264", "-bf", "0", "-bsf:v", "setts=ts=TS*if(lt(N\\,15)\\,1\\,3)",
                 frames=30)  # fmt: skip
    info = probe(path)
    frames = list(iter_frames(path))
    assert info.num_frames == len(frames) == 30
    assert all(not np.array_equal(a, b) for a, b in pairwise(frames)), "no duplicated frames"
    assert len(list(iter_frames(path, stride=4))) == 8


def test_variable_frame_rate_webm_gets_its_real_average_rate(tmp_path):
    # 20 frames 0.1 s apart, then 40 frames 0.5 s apart: ffmpeg's header rate for webm comes from the first
    # frames (10 fps), which would make the 21.6 s clip 6 s long and the overlay play 3.6x too fast
    path = tmp_path / "recording.webm"
    pattern_clip(path, "-vf", "setpts='if(lt(N,20),N/10,2+(N-20)*0.5)/TB'", "-fps_mode", "passthrough",
                 "-c:v", "libvpx", frames=60)  # fmt: skip
    info = probe(path)
    assert info.num_frames == len(list(iter_frames(path))) == 60
    assert info.duration_s == pytest.approx(21.6, rel=0.01)
    assert info.fps == pytest.approx(60 / 21.6, rel=0.01)
    assert info.nominal_fps == 10  # the header's, kept for the app's description


def test_an_ntsc_rate_is_read_exactly_and_the_output_keeps_it(tmp_path):
    """ffmpeg prints 24000/1001 as "23.98 fps": taken as printed, a 20 s overlay drifted 0.08 frames from its
    source (an editor lining up the matte sees it); the rate is the exact N*1000/1001 the print rounds."""
    path = tmp_path / "ntsc.mp4"
    pattern_clip(path, "-c:v", "libx264", frames=480, rate="24000/1001")
    source = probe(path)
    assert source.fps == 24000 / 1001 and source.duration_s == pytest.approx(20.02, abs=0.005)
    copy = write_video(tmp_path / "copy.mp4", [flat(9)] * 480, fps=source.fps)
    assert probe(copy).duration_s == pytest.approx(
        source.duration_s, abs=1e-3
    )  # at 23.98: 3.3 ms short
    assert resolve_fps(29.97, 30, None, 0.0, DEFAULT_FPS, path) == 30000 / 1001
    assert resolve_fps(119.9, 30, None, 0.0, DEFAULT_FPS, path) == 120000 / 1001
    assert [resolve_fps(f, 30, None, 0.0, DEFAULT_FPS, path) for f in (25.0, 12.5, 23.5)] == [
        25.0,
        12.5,
        23.5,
    ]
    # the frames' timestamps closer to the printed rate than to N*1000/1001: kept as printed
    assert resolve_fps(23.98, 30, 23.98, 0.0, DEFAULT_FPS, path) == 23.98


def test_packet_stats_from_framecrc_lines():
    lines = [b"#tb 0: 1/1000\n", b"0, -80, -80, 40, 10, 0x1, F=0x5\n",  # discarded keyframe (edit list)
             b"0, 0, 0, 40, 10, 0x2\n", b"0, 40, 80, 40, 10, 0x3, F=0x0\n",  # reordered (B-frames)
             b"0, 80, 40, 40, 10, 0x4, F=0x0\n", b"0, 120, -9223372036854775808, 40, 10, 0x5, F=0x0\n"]  # fmt: skip
    stats = read_packet_stats(lines)
    assert (stats.discarded, stats.timed, stats.span_s) == (1, 3, pytest.approx(0.12))
    # one frame untimed
    assert stats.frame_rate(3) == pytest.approx(25) and stats.frame_rate(4) is None
    no_durations = [b"#tb 0: 1/90000\n"] + [
        f"0, {t}, {t}, 0, 9, 0x0\n".encode() for t in (0, 9000, 18000)
    ]
    # the mean gap stands in for the last
    assert read_packet_stats(no_durations).span_s == pytest.approx(0.3)
    same_time = [b"#tb 0: 1/1000\n", b"0, 0, 0, 0, 9, 0x0\n", b"0, 0, 0, 0, 9, 0x0\n"]
    # all timestamps 0: unknown, not infinite
    assert read_packet_stats(same_time).frame_rate(2) is None


def test_trimmed_mp4_counts_only_the_frames_its_edit_list_shows(tmp_path):
    src = tmp_path / "src.mp4"
    pattern_clip(src, "-c:v", "libx264", "-g", "50", frames=50, rate=25)
    trimmed = tmp_path / "trim.mp4"  # a stream-copy cut keeps the GOP's packets, flagged "discard"
    ffmpeg("-ss", "0.5", "-i", src, "-c", "copy", trimmed)
    info = probe(trimmed)
    frames = list(iter_frames(trimmed))
    assert info.num_frames == len(frames) and 35 <= len(frames) <= 40


def test_second_video_stream_is_not_mixed_up_with_the_first(tmp_path):
    path = tmp_path / "two.mkv"  # the larger, "default" stream second: ffmpeg's own pick
    ffmpeg("-f", "lavfi", "-i", "color=red:size=32x24:rate=10", "-f", "lavfi", "-i",
           "testsrc=size=64x48:rate=10", "-map", "0", "-map", "1", "-frames:v:0", "2",
           "-frames:v:1", "5", "-c:v", "libx264", "-disposition:v:0", "0",
           "-disposition:v:1", "default", path)  # fmt: skip
    info = probe(path)
    frames = list(iter_frames(path))
    assert len(frames) == info.num_frames
    assert {f.shape for f in frames} == {(info.height, info.width, 3)}


@pytest.mark.parametrize("sizes", [("64x48", "32x24"), ("32x24", "64x48")])
def test_size_change_mid_stream_gives_frames_of_the_probed_size(tmp_path, sizes):
    """A stream copy of two clips of different sizes into one mkv: its header states the second size, while the
    first frames decode at the first. Frames are read at the probed size, so ffmpeg must be told to scale to it
    (here 4 quarter-frames per frame came out, 40 frames of 10; the other way round the output ended inside one)."""
    parts = []
    for size, colour in zip(sizes, ("red", "blue")):
        part = tmp_path / f"{colour}.ts"
        ffmpeg("-f", "lavfi", "-i", f"color={colour}:size={size}:rate=10", "-frames:v", "5",
               "-c:v", "libx264", "-preset", "ultrafast", part)  # fmt: skip
        parts.append(f"file '{part}'\n")
    listing = tmp_path / "parts.txt"
    listing.write_text("".join(parts))
    path = tmp_path / "joined.mkv"
    ffmpeg("-f", "concat", "-safe", "0", "-i", listing, "-c", "copy", path)
    info = probe(path)
    # what the header says: not the first frames' size
    assert f"{info.width}x{info.height}" == sizes[1]
    frames = list(iter_frames(path))
    assert len(frames) == info.num_frames == 10
    assert {f.shape for f in frames} == {(info.height, info.width, 3)}
    assert np.abs(np.stack(frames[:5]).astype(int) - (254, 0, 0)).max() <= 12  # red, scaled
    assert np.abs(np.stack(frames[5:]).astype(int) - (0, 0, 254)).max() <= 12  # blue


@pytest.mark.parametrize("degrees", [90, -90, 180])
def test_rotated_video_comes_out_in_display_orientation(tmp_path, degrees):
    img = flat((0, 0, 0))
    img[:16, :16] = (255, 0, 0)
    img[30:, 40:] = (0, 0, 255)
    src = write_video(tmp_path / "src.mp4", [img] * 2, crf=5)
    rotated = tmp_path / "rot.mp4"
    ffmpeg("-display_rotation", degrees, "-i", src, "-c", "copy", rotated)
    info = probe(rotated)
    assert info.rotation == degrees % 360
    frame = next(iter_frames(rotated))
    assert (
        frame.shape
        == ((48, 64, 3) if degrees == 180 else (64, 48, 3))
        == (info.height, info.width, 3)
    )
    # display matrix angles are counter-clockwise
    reference = np.rot90(next(iter_frames(src)), degrees // 90)
    assert np.array_equal(frame, reference)
    # ffmpeg's own autorotation as a second opinion
    with RgbDecoder(rotated, width=info.width, height=info.height) as decoder:
        assert np.array_equal(frame, next(iter(decoder)))


@pytest.mark.parametrize("pix_fmt", ["gray", "yuva420p", "yuv420p10le"])
def test_other_pixel_formats_come_out_rgb_uint8(tmp_path, pix_fmt):
    path = tmp_path / f"{pix_fmt}.mkv"
    ffmpeg(
        "-f",
        "lavfi",
        "-i",
        "color=c=0x808080:size=32x24:rate=5:duration=0.4",
        "-c:v",
        "ffv1",
        "-pix_fmt",
        pix_fmt,
        path,
    )
    frames = list(iter_frames(path))
    assert len(frames) == 2 and frames[0].shape == (24, 32, 3) and frames[0].dtype == np.uint8
    assert np.abs(frames[0].astype(int) - 128).max() <= 3


# ---------------------------------------------------------------- folders of frames


def test_folder_of_frames_sorted_by_name(tmp_path):
    folder = tmp_path / "JPEGImages" / "480p" / "seq"
    folder.mkdir(parents=True)
    colours = {"1": (255, 0, 0), "2": (0, 255, 0), "10": (0, 0, 255)}
    for name, colour in colours.items():
        Image.fromarray(flat(colour, 20, 30)).save(folder / f"{name}.png")
    (folder / "notes.txt").write_text("not a frame")
    info = probe(folder)
    assert info.is_folder and info.frame_names == ("1", "2", "10") and info.num_frames == 3
    assert (info.width, info.height, info.fps) == (30, 20, DEFAULT_FPS)
    frames = list(iter_frames(folder))
    assert [tuple(f[0, 0]) for f in frames] == list(colours.values())
    assert [tuple(f[0, 0]) for f in iter_frames(folder, stride=2)] == [colours["1"], colours["10"]]


def test_frames_named_with_a_superscript_digit_sort_by_their_numbers():
    """``str.isdigit`` takes "²", which ``int()`` refuses: sorting a folder holding ``1²2.png`` raised ValueError."""
    from uvosam.frame_folder import natural_key

    names = ["10.png", "1²2.png", "2.png", "1²10.png"]
    assert sorted(names, key=lambda n: natural_key(Path(n))) == [
        "1²2.png",
        "1²10.png",
        "2.png",
        "10.png",
    ]


def test_folder_with_stride_and_max_frames_yields_exactly_those_frames(tmp_path):
    for k in range(6):
        Image.fromarray(flat(10 * k, 8, 8)).save(tmp_path / f"{k:05d}.png")
    assert [int(f[0, 0, 0]) for f in iter_frames(tmp_path, stride=2, max_frames=2)] == [0, 20]
    assert [int(f[0, 0, 0]) for f in iter_frames(tmp_path, max_frames=2)] == [0, 10]
    assert [int(f[0, 0, 0]) for f in iter_frames(tmp_path, stride=4)] == [0, 40]


def test_folder_applies_exif_orientation(tmp_path):
    img = Image.fromarray(flat((10, 200, 10), 20, 40))
    exif = img.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise for display
    img.save(tmp_path / "00000.jpg", exif=exif)
    img.save(tmp_path / "00001.jpg", exif=exif)
    info = probe(tmp_path)
    assert (info.width, info.height) == (20, 40)
    assert [f.shape for f in iter_frames(tmp_path)] == [(40, 20, 3)] * 2


def _png_with_exif_after_pixels(path: Path, image: Image.Image, exif: Image.Exif) -> Path:
    """``image`` as a PNG whose eXIf chunk comes after its IDAT chunks (allowed before PNG's 3rd edition)."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", exif=exif)
    data, chunks, pos = buffer.getvalue(), [], 8
    while pos < len(buffer.getvalue()):
        length = int.from_bytes(data[pos : pos + 4], "big")
        chunks.append(data[pos : pos + 12 + length])
        pos += 12 + length
    exif_chunk = next(c for c in chunks if c[4:8] == b"eXIf")
    rest = [c for c in chunks if c[4:8] != b"eXIf"]
    path.write_bytes(data[:8] + b"".join(rest[:-1]) + exif_chunk + rest[-1])  # ... IDAT, eXIf, IEND
    return path


@pytest.mark.parametrize("exif_after_pixels", [False, True])
def test_png_frames_exif_orientation_is_read_without_decoding(
    tmp_path, monkeypatch, exif_after_pixels
):
    img = Image.fromarray(flat((10, 200, 10), 20, 40))
    exif = img.getexif()
    exif[0x0112] = 6
    for name in ("00000.png", "00001.png"):
        if exif_after_pixels:
            _png_with_exif_after_pixels(tmp_path / name, img, exif)
        else:
            img.save(tmp_path / name, exif=exif)
    with Image.open(tmp_path / "00000.png") as im:  # where PIL finds the chunk on opening
        assert ("exif" in im.info) is not exif_after_pixels
    decoded = []
    load = Image.Image.load
    monkeypatch.setattr(Image.Image, "load", lambda im: decoded.append(im) or load(im))
    info = probe(tmp_path)
    assert (info.width, info.height) == (20, 40) and decoded == []  # no pixel was decoded to probe
    assert [f.shape for f in iter_frames(tmp_path)] == [(40, 20, 3)] * 2


def test_bad_folders(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(VideoReadError, match=r"no \.jpg/\.jpeg/\.png frames: it is empty"):
        probe(empty)
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    Image.fromarray(flat(0, 20, 30)).save(mixed / "00000.png")
    Image.fromarray(flat(0, 22, 30)).save(mixed / "00001.png")
    with pytest.raises(VideoReadError, match=r"00000.png is 30x20 but 00001.png is 30x22"):
        probe(mixed)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "00000.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(VideoReadError, match="00000.jpg is not a readable image"):
        probe(broken)


# ---------------------------------------------------------------- bad inputs


def test_missing_empty_and_text_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.mp4"):
        probe(tmp_path / "nope.mp4")
    (tmp_path / "zero.mp4").write_bytes(b"")
    with pytest.raises(VideoReadError, match=r"empty \(0 bytes\)"):
        probe(tmp_path / "zero.mp4")
    (tmp_path / "notes.mp4").write_text("hello, I am not a video\n" * 20)
    with pytest.raises(VideoReadError, match=r"not a video.*Accepted: a video file \(\.mp4 \.mov"):
        probe(tmp_path / "notes.mp4")


def test_a_link_is_refused_saying_how_to_download_it():
    """``iter_frames("https://example.com/clip.mp4")`` said "No video or frame folder at https:/example.com/..."
    (pathlib folds the double slash) and nothing of how to read a link."""
    with pytest.raises(FileNotFoundError) as refused:
        iter_frames("https://example.com/media/clip.mp4")
    assert str(refused.value).startswith(
        "https://example.com/media/clip.mp4 is a link: this reads local files. Download it first "
        "(uvosam.remote_video.download_video"
    )


def test_truncated_files(tmp_path):
    src = tmp_path / "src.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=64x48:rate=25:duration=2", "-c:v", "libx264", src)
    data = src.read_bytes()  # no +faststart: the index (moov) is at the end and is lost
    (tmp_path / "cut.mp4").write_bytes(data[: len(data) // 2])
    with pytest.raises(VideoReadError, match="truncated: its mp4/mov index"):
        probe(tmp_path / "cut.mp4")
    faststart = write_video(tmp_path / "fs.mp4", [flat(7 * k) for k in range(30)])
    data = faststart.read_bytes()  # index first: the header is fine but the data stops early
    (tmp_path / "cut_fs.mp4").write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(
        VideoReadError, match=r"truncated: the container says 3\.00 s but its data ends after"
    ):
        iter_frames(tmp_path / "cut_fs.mp4")


def test_still_image_and_audio_only(tmp_path):
    png = tmp_path / "still.png"
    Image.fromarray(flat(9)).save(png)
    renamed = tmp_path / "still.mp4"
    shutil.copy(png, renamed)
    with pytest.raises(VideoReadError, match=r"single still image \(png\), not a video"):
        probe(renamed)
    audio = tmp_path / "sine.m4a"
    ffmpeg("-f", "lavfi", "-i", "sine=duration=0.3", audio)
    with pytest.raises(VideoReadError, match=r"contains only audio \(aac\)"):
        iter_frames(audio)


def test_single_frame_without_frame_rate_is_accepted(tmp_path):
    path = tmp_path / "one.ts"  # MPEG-TS with one frame: ffmpeg reports no fps for it
    ffmpeg(
        "-f",
        "lavfi",
        "-i",
        "color=c=red:size=32x24:rate=10",
        "-frames:v",
        "1",
        "-c:v",
        "libx264",
        path,
    )
    assert not re.search(r"\d fps", ffmpeg_header(path))
    info = probe(path)
    assert info.num_frames == 1 and info.fps == DEFAULT_FPS and info.duration_s > 0
    frames = list(iter_frames(path))
    assert len(frames) == 1 and frames[0][..., 0].mean() > 200


def test_frame_rate_resolution_rules():
    """ffmpeg guesses a rate for every file it writes, so the 0-fps rule is checked on its own."""
    v = Path("v.mp4")
    assert resolve_fps(25.0, 10, None, 0.4, DEFAULT_FPS, v) == 25.0
    # within 1%: the header's exact value
    assert resolve_fps(25.0, 10, 25.2, 0.4, DEFAULT_FPS, v) == 25.0
    assert resolve_fps(25.0, 10, 5.0, 0.4, DEFAULT_FPS, v) == 5.0  # the timestamps' average wins
    assert resolve_fps(0.0, 10, None, 0.5, DEFAULT_FPS, v) == 20.0
    # timestamps before the container duration
    assert resolve_fps(0.0, 10, 4.0, 0.5, DEFAULT_FPS, v) == 4.0
    assert resolve_fps(0.0, 1, None, 0.0, DEFAULT_FPS, v) == DEFAULT_FPS
    with pytest.raises(VideoReadError, match=r"no frame rate \(0 fps\)"):
        resolve_fps(0.0, 10, None, 0.0, DEFAULT_FPS, v)


def test_huge_resolution_refused_before_decoding(tmp_path, monkeypatch):
    path = tmp_path / "wide.mp4"
    ffmpeg(
        "-f", "lavfi", "-i", "color=size=5000x16:rate=5", "-frames:v", "1", "-c:v", "libx264", path
    )

    def no_counting(*args, **kwargs):
        raise AssertionError("frames were read before the limits were checked")

    monkeypatch.setattr("uvosam.video.count_frames", no_counting)
    with pytest.raises(
        VideoLimitError, match=r"longest side 5000 px, over the limit of 4096 .*VideoLimits"
    ):
        probe(path, limits=VideoLimits())
    with pytest.raises(VideoLimitError, match=r"80000 px per frame, over the limit of 1000"):
        iter_frames(path, limits=VideoLimits(max_side=None, max_pixels=1000))


def test_frame_and_duration_limits_follow_stride(tmp_path):
    path = write_video(tmp_path / "v.mp4", [flat(0)] * 20, fps=10)
    with pytest.raises(VideoLimitError, match=r"gives about 20 frames, over the limit of 10 "):
        probe(path, limits=VideoLimits(max_frames=10))  # from the header, before counting
    with pytest.raises(
        VideoLimitError, match=r"gives 20 frames, over the limit of 19 .*larger str"
    ):
        probe(path, limits=VideoLimits(max_frames=19))  # within the estimate's slack: exact count
    assert probe(path, limits=VideoLimits(max_frames=5), stride=4).num_frames == 20
    assert len(list(iter_frames(path, max_frames=5, limits=VideoLimits(max_frames=5)))) == 5
    with pytest.raises(VideoLimitError, match=r"lasts 2\.0 s, over the limit of 1\.5"):
        iter_frames(path, limits=VideoLimits(max_duration_s=1.5))
    # max_frames shortens the span read: 5 frames at stride 4 span 20 source frames (2.0 s), 3 span 1.2 s
    with pytest.raises(VideoLimitError, match=r"lasts 2\.0 s, over the limit of 1\.5"):
        probe(path, limits=VideoLimits(max_duration_s=1.5), stride=4, max_frames=5)
    assert (
        probe(path, limits=VideoLimits(max_duration_s=1.5), stride=4, max_frames=3).num_frames == 20
    )


# ---------------------------------------------------------------- streaming behaviour


def test_iter_frames_is_lazy_and_holds_one_frame(long_video):
    frame_bytes = 160 * 120 * 3
    tracemalloc.start()
    try:
        frames = iter_frames(long_video)
        assert not ffmpeg_children(), "nothing is decoded before the first frame is asked for"
        first = next(frames)
        assert ffmpeg_children(), "ffmpeg is still running: the rest is not decoded yet"
        count = 1 + sum(1 for _ in frames)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert first.shape == (120, 160, 3) and count == 300
    assert peak < 8 * frame_bytes, (
        f"peak {peak} B for 300 frames of {frame_bytes} B: frames are not held"
    )
    assert not ffmpeg_children()


def test_breaking_out_stops_ffmpeg(long_video):
    for k, _ in enumerate(iter_frames(long_video)):
        if k == 3:
            break
    assert not ffmpeg_children()


def test_decoding_runs_no_python_between_fork_and_exec(long_video, monkeypatch):
    """A ``preexec_fn`` (imageio-ffmpeg's ``read_frames`` passes ``os.setpgrp``) makes Python run code in the
    forked child before it closes the parent's descriptors; with many threads that child can deadlock, holding
    every pipe of the server, so other jobs' encoders never see the end of their input."""
    started = []

    class RecordingPopen(subprocess.Popen):
        def __init__(self, *args, **kwargs) -> None:
            started.append(kwargs)
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(subprocess, "Popen", RecordingPopen)
    frames = iter_frames(long_video)
    next(frames)
    # probing, decoding
    assert started and all(kwargs.get("preexec_fn") is None for kwargs in started)
    (pid,) = ffmpeg_children()
    # own session: Ctrl-C in a terminal reaches Python only
    assert os.getsid(pid) == pid != os.getsid(0)
    frames.close()
    assert not ffmpeg_children()


def test_on_windows_the_decoders_ffmpeg_gets_a_process_group_of_its_own(tmp_path, monkeypatch):
    """Windows has no sessions, and its Ctrl-C reaches every process of the console: ffmpeg, in the console's
    group, could end first and the read fail as a cut-off one. There it gets a process group of its own, as it gets
    its own session on POSIX (above)."""
    from uvosam import video_decoder

    started = []

    class Started(Exception):
        pass

    def popen(cmd, **kwargs):
        kwargs["stderr"].close()
        started.append(kwargs)
        raise Started

    monkeypatch.setattr(video_decoder, "ffmpeg_exe", lambda: "ffmpeg")
    monkeypatch.setattr(subprocess, "Popen", popen)
    monkeypatch.setattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0x200, raising=False)
    monkeypatch.setattr("sys.platform", "win32")
    with pytest.raises(Started):
        RgbDecoder(tmp_path / "clip.mp4", width=2, height=2)
    assert started[0]["creationflags"] == 0x200 and "start_new_session" not in started[0]


def test_decoder_refuses_output_that_ends_inside_a_frame(tmp_path):
    path = write_video(tmp_path / "two.mp4", [flat(0), flat(9)])
    with RgbDecoder(
        path, width=65, height=48
    ) as decoder:  # 2 frames of 64x48 are 1.97 frames of 65x48
        frames = iter(decoder)
        assert next(frames).shape == (48, 65, 3)
        with pytest.raises(DecodeError, match=r"ended inside a frame \(9072 of 9360 bytes\)"):
            next(frames)
    assert not ffmpeg_children()


def test_decode_error_mid_video_names_the_frame(long_video, tmp_path):
    path = tmp_path / "shrinking.mp4"
    shutil.copy(long_video, path)
    frames = iter_frames(path)
    next(frames)
    os.truncate(path, path.stat().st_size * 4 // 10)  # the file changes while it is read
    read = 1
    with pytest.raises(
        VideoReadError, match=r"stopped at frame (\d+) \(output frame \1\) of 300"
    ) as err:
        for _ in frames:
            read += 1
    assert 1 < read < 300 and f"frame {read} " in str(err.value)
    assert not ffmpeg_children()


def test_packet_count_reads_the_muxer_summary_of_every_ffmpeg_release():
    """ffmpeg 7.0 (imageio-ffmpeg 0.6) prints no ``frame=`` for stream copies; the verbose summary is always there."""
    ffmpeg_7_0 = (
        "[out#0/null @ 0x1834b5c0]   Output stream #0:0 (video): 8 packets muxed (1971 bytes); \n"
        "size=N/A time=00:00:00.24 bitrate=N/A speed=83.7x    \n"
        "[in#0/mov,mp4 @ 0x18342b80]   Input stream #0:0 (video): 9 packets read (1971 bytes); \n"
    )
    ffmpeg_5_1 = "frame=    1 fps=0.0 q=-1.0 size=N/A\nframe=   12 fps=0.0 q=-1.0 Lsize=N/A time=00:00:00.20\n"
    assert _packet_count(ffmpeg_7_0) == 8
    assert (
        _packet_count(ffmpeg_5_1 + "  Output stream #0:0 (video): 12 packets muxed (1971 bytes);\n")
        == 12
    )
    assert _packet_count(ffmpeg_5_1) == 12
    assert _packet_count("size=N/A time=00:00:00.24 bitrate=N/A") is None


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")


def _before_iend(png: bytes, chunk: bytes) -> bytes:
    end = png.rfind(b"IEND") - 4
    return png[:end] + chunk + png[end:]


_XMP_ROTATED = (
    '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
    '<rdf:Description xmlns:tiff="http://ns.adobe.com/tiff/1.0/" tiff:Orientation="6"/></rdf:RDF></x:xmpmeta>'
)


def _png_variants(tmp_path: Path) -> dict[str, Path]:
    """PNG frames whose orientation PIL's decode (``exif_transpose``) finds outside an eXIf before the pixels."""
    img = Image.fromarray(flat((10, 200, 10), 20, 40))
    exif = img.getexif()
    exif[0x0112] = 6
    raw = exif.tobytes()  # "Exif\0\0" + TIFF
    text = f"\nexif\n{len(raw):8d}\n{raw.hex()}\n"  # ImageMagick's 'Raw profile type exif'
    buffer = io.BytesIO()
    img.save(buffer, format="PNG")
    plain = buffer.getvalue()
    apng = io.BytesIO()
    img.save(apng, format="PNG", save_all=True, append_images=[img.rotate(180)])
    variants = {}
    for name, (kind, data) in {
        "xmp_before": (None, _XMP_ROTATED),
        "raw_profile_before": (None, text),
        "xmp_after": (b"iTXt", b"XML:com.adobe.xmp\x00\x00\x00\x00\x00" + _XMP_ROTATED.encode()),
        "raw_profile_after": (b"tEXt", b"Raw profile type exif\x00" + text.encode("latin-1")),
        "apng_exif_after_second_frame": (b"eXIf", exif.tobytes()[6:]),
    }.items():
        path = tmp_path / name / "00000.png"
        path.parent.mkdir()
        if kind is None:
            info = PngImagePlugin.PngInfo()
            key = "XML:com.adobe.xmp" if name.startswith("xmp") else "Raw profile type exif"
            (info.add_itxt if key.startswith("XML") else info.add_text)(key, data)
            img.save(path, pnginfo=info)
        else:
            base = apng.getvalue() if name.startswith("apng") else plain
            path.write_bytes(_before_iend(base, _png_chunk(kind, data)))
        variants[name] = path
    return variants


@pytest.mark.parametrize(
    "name",
    [
        "xmp_before",
        "raw_profile_before",
        "xmp_after",
        "raw_profile_after",
        "apng_exif_after_second_frame",
    ],
)
def test_png_display_size_is_the_decoded_size(tmp_path, name):
    """Probe's size is the size iter_frames decodes to, wherever the PNG keeps its orientation (XMP, ImageMagick's
    text chunk, an eXIf PIL does not read for an APNG's first frame): else every frame is refused as 'not WxH'."""
    path = _png_variants(tmp_path)[name]
    with Image.open(path) as im:
        decoded = ImageOps.exif_transpose(im).size
    assert display_size(path) == decoded
    (frame,) = iter_frames(path.parent)
    assert frame.shape[1::-1] == decoded


@pytest.mark.parametrize(
    "chunk",
    [_png_chunk(b"eXIf", b"garbage!!"), (2**31).to_bytes(4, "big") + b"eXIfMM\x00"],
    ids=["not_tiff", "cut_short"],
)
def test_png_with_a_broken_exif_chunk_is_a_video_read_error(tmp_path, chunk):
    buffer = io.BytesIO()
    Image.fromarray(flat(0, 20, 40)).save(buffer, format="PNG")
    (tmp_path / "00000.png").write_bytes(_before_iend(buffer.getvalue(), chunk))
    with pytest.raises(VideoReadError, match="00000.png"):
        probe(tmp_path)


def test_alpha_writer_wants_one_webm_and_rgba_frames(tmp_path):
    with pytest.raises(ValueError, match=r"one \.webm file without chunks; got a\.mp4"):
        VideoWriter(tmp_path / "a.mp4", fps=10, width=64, height=48, alpha=True)
    with pytest.raises(ValueError, match="without chunks"):
        VideoWriter(tmp_path / "a.webm", fps=10, width=64, height=48, alpha=True, chunk_seconds=1)
    with VideoWriter(tmp_path / "a.webm", fps=10, width=64, height=48, alpha=True) as writer:
        with pytest.raises(
            ValueError, match=r"uint8 RGBA array of shape \(48, 64, 4\); got uint8 \(48, 64, 3\)"
        ):
            writer.write(flat(0))
        writer.write(np.dstack([flat(0), np.full((48, 64), 255, np.uint8)]))
    assert probe(tmp_path / "a.webm").num_frames == 1 and not ffmpeg_children()


def test_an_encoder_on_a_full_disk_raises_the_disks_error(tmp_path, monkeypatch):
    """ffmpeg that ran out of space ended in a plain OSError quoting it: the app answered "Something went wrong on
    our side" and the CLI gave no advice. Its words now give the error ENOSPC (``errors.write_problem``)."""
    import errno

    from uvosam import video_writer
    from uvosam.errors import write_problem

    fake = tmp_path / "ffmpeg"
    fake.write_text(
        "#!/bin/sh\necho 'av_interleaved_write_frame(): No space left on device' >&2\nexit 1\n"
    )
    fake.chmod(0o755)
    monkeypatch.setattr(video_writer, "ffmpeg_exe", lambda: str(fake))
    writer = VideoWriter(tmp_path / "full.mp4", fps=10, width=64, height=48)
    with pytest.raises(OSError) as caught:
        for _ in range(200):  # until the pipe breaks, or close() reads the exit code
            writer.write(flat(3))
        writer.close()
    assert caught.value.errno == errno.ENOSPC, caught.value
    assert "No space left on device" in str(caught.value)
    assert write_problem(caught.value, tmp_path) == f"{tmp_path} is out of disk space"
    assert not (tmp_path / "full.mp4").exists()
