"""Malformed and odd inputs through ``run_job`` (the app's library entry, tiny models, the app's
limits), a handful also through the app. Each input is generated in a temp folder (bundled ffmpeg,
PIL) and must end in a clear error of a stated type and message, or in a correct result (frames,
size, outputs), never a crash, a hang (per-test timeout), a leaked ffmpeg or a stray file.
"""

from __future__ import annotations

import os
import shutil
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from app_helpers import davis_labels, ffmpeg_children, zip_names
from doubles import MovingBoxTracker
from PIL import Image
from proc import ffmpeg as ff
from proc import pattern_clip as enc

from uvosam.errors import VideoLimitError, VideoReadError
from uvosam.job import run_job
from uvosam.job_types import JobOptions
from uvosam.pipeline import UVOSAM
from uvosam.segmenter import BoxPromptSegmenter
from uvosam.video import DEFAULT_FPS, probe
from uvosam.video_decoder import RgbDecoder
from uvosam_app.settings import AppSettings

OPTIONS = JobOptions(limits=AppSettings().limits())  # 900 frames, 120 s, 4096 px: the app's
ACCEPTED = r"Accepted: a video file \(\.mp4"


@dataclass(frozen=True)
class Works:
    """A correct result: ``frames`` frames of ``width`` x ``height`` (display size)."""

    frames: int
    width: int = 64
    height: int = 48
    fps: float | None = None


@dataclass(frozen=True)
class Fails:
    """A clear error: this type, a message matching ``match``; ``decodes``: found while decoding
    (else before any frame is decoded)."""

    error: type[Exception]
    match: str
    decodes: bool = False


def base(d: Path) -> Path:
    """The plain clip the renamed/copied cases start from: 10 frames, 64x48, 10 fps, H.264."""
    path = d / "base.mp4"
    return path if path.exists() else enc(path)


def copy_as(d: Path, name: str) -> Path:
    return Path(shutil.copy(base(d), d / name))


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def image(path: Path, fmt: str, size: tuple[int, int] = (64, 48), value: int = 120) -> Path:
    Image.fromarray(np.full((size[1], size[0], 3), value, np.uint8)).save(path, format=fmt)
    return path


def folder(path: Path, sizes: list[tuple[int, int]], extra: dict[str, str] | None = None) -> Path:
    path.mkdir()
    for i, size in enumerate(sizes):
        image(path / f"{i:05d}.png", "PNG", size, 40 * i)
    for name, text in (extra or {}).items():
        (path / name).write_text(text)
    return path


def symlink(path: Path, target: str) -> Path:
    os.symlink(target, path)
    return path


def partial_moov(d: Path) -> Path:
    """An mp4 whose index (moov, written first) is cut short: a recording still being written."""
    data = enc(d / "faststart.mp4", "-c:v", "libx264", "-movflags", "+faststart").read_bytes()
    return write(d / "being_written.mp4", data[: data.index(b"moov") + 200])


def fragmented_cut(d: Path) -> Path:
    """A fragmented mp4 (as live recorders write) cut after two thirds."""
    data = enc(d / "frag.mp4", "-c:v", "libx264", "-g", "2", "-movflags",
               "frag_keyframe+empty_moov").read_bytes()  # fmt: skip
    return write(d / "frag_cut.mp4", data[: len(data) * 2 // 3])


def corrupt_middle(d: Path) -> Path:
    data = bytearray(base(d).read_bytes())
    mid = len(data) // 2
    data[mid : mid + 400] = bytes(400)
    return write(d / "corrupt_middle.mp4", bytes(data))


def garbled(d: Path) -> Path:
    """Its index intact (1 s of frames), its frame data overwritten: ffmpeg demuxes no frame of it. Was told "has a
    video stream with no frames in it. Accepted: ..." as if it were empty."""
    data = bytearray(base(d).read_bytes())
    start = data.index(b"mdat") + 4
    end = data.index(b"moov") - 4 if data.index(b"moov") > start else len(data)
    data[start:end] = b"\x55" * (end - start)
    return write(d / "garbled.mp4", bytes(data))


def loop(d: Path) -> Path:
    symlink(d / "loop_b.mp4", "loop_a.mp4")
    return symlink(d / "loop_a.mp4", "loop_b.mp4")


X264 = ("-c:v", "libx264")
CASES: dict[str, tuple[Callable[[Path], Path], Works | Fails]] = {
    # broken or not video at all
    "truncated mp4": (lambda d: write(d / "cut.mp4", base(d).read_bytes()[:1500]),
                      Fails(VideoReadError, r"cut\.mp4 is truncated: its mp4/mov index \(moov")),
    "zero bytes": (lambda d: write(d / "zero.mp4", b""),
                   Fails(VideoReadError, r"zero\.mp4 is empty \(0 bytes\)")),
    "text named .mp4": (lambda d: write(d / "notes.mp4", b"not a video\n" * 30),
                        Fails(VideoReadError, r"notes\.mp4 is not a video: .*" + ACCEPTED)),
    "png named .mp4": (lambda d: image(d / "still.mp4", "PNG"),
                       Fails(VideoReadError, r"single still image \(png\), not a video")),
    "jpeg named .mov": (lambda d: image(d / "photo.mov", "JPEG"),
                        Fails(VideoReadError, r"single still image \(jpeg\), not a video")),
    "ffconcat list named .mkv": (lambda d: base(d) and write(d / "list.mkv",
                                 b"ffconcat version 1.0\nfile base.mp4\n"),
                                 Fails(VideoReadError, r"list\.mkv is a playlist \(concat\)")),
    "audio only .m4a": (lambda d: ff("-f", "lavfi", "-i", "sine=duration=0.3", d / "a.m4a")
                        or d / "a.m4a", Fails(VideoReadError, r"contains only audio \(aac\)")),
    "audio only .mp4": (lambda d: ff("-f", "lavfi", "-i", "sine=duration=0.3", "-c:a", "aac",
                                     d / "a.mp4") or d / "a.mp4",
                        Fails(VideoReadError, r"a\.mp4 contains only audio \(aac\)")),
    "being written (partial moov)": (partial_moov, Fails(
        VideoReadError, r"is truncated: its 'moov' box \(the index\) needs \d+ bytes but")),
    "frame data overwritten": (garbled, Fails(
        VideoReadError, r"^garbled\.mp4's video data is damaged: the container says 1\.00 s but none of its frames can "
        r"be read\. Re-export or re-encode it\.$")),
    "fragmented, cut": (fragmented_cut, Fails(VideoReadError, r"truncated: .*partial file")),
    "missing file": (lambda d: d / "nope.mp4",
                     Fails(FileNotFoundError, r"No video or frame folder at .*nope\.mp4")),
    "dangling symlink": (lambda d: symlink(d / "dangling.mp4", "nowhere.mp4"), Fails(
        FileNotFoundError, r"symbolic link to 'nowhere\.mp4', which does not exist")),
    "symlink loop": (loop, Fails(FileNotFoundError, r"symbolic link .*links form a loop")),
    # limits: refused from the header, before any decoding
    "huge resolution": (lambda d: enc(d / "huge.mp4", *X264, src="color", size="5000x16",
                                      frames=1),
                        Fails(VideoLimitError, r"longest side 5000 px, over the limit of 4096")),
    "too many frames": (lambda d: enc(d / "many.mp4", *X264, src="color", size="16x16",
                                      frames=1000, rate=100),
                        Fails(VideoLimitError, r"about 1000 frames, over the limit of 900 ")),
    "too long": (lambda d: enc(d / "long.mp4", *X264, src="color", size="16x16", frames=130,
                               rate=1),
                 Fails(VideoLimitError, r"lasts 130\.0 s, over the limit of 120\.0 ")),
    # odd but valid: must work
    "mp4 named .avi": (lambda d: copy_as(d, "really_mp4.avi"), Works(10)),
    "one frame": (lambda d: enc(d / "one.mp4", frames=1), Works(1)),
    "one frame, no frame rate (.ts)": (lambda d: enc(d / "one.ts", *X264, frames=1),
                                       Works(1, fps=DEFAULT_FPS)),
    "raw H.264, no timing": (lambda d: enc(d / "raw.h264", *X264, "-f", "h264"),
                             Works(10, fps=25.0)),
    "all timestamps 0": (lambda d: enc(d / "ts0.mkv", *X264, "-bsf:v", "setts=ts=0"), Works(10)),
    "variable frame rate": (lambda d: enc(d / "vfr.mp4", *X264, "-bf", "0", "-bsf:v",
                                          r"setts=ts=TS*if(lt(N\,5)\,1\,3)"), Works(10)),
    "vertical 9:16": (lambda d: enc(d / "vertical.mp4", size="36x64"), Works(10, 36, 64)),
    "rotated 90 (display matrix)": (lambda d: ff("-display_rotation", "90", "-i", base(d), "-c",
                                                 "copy", d / "rot.mp4") or d / "rot.mp4",
                                    Works(10, 48, 64)),
    "grayscale": (lambda d: enc(d / "gray.mp4", *X264, "-pix_fmt", "gray"), Works(10)),
    "RGBA png in .mov": (lambda d: enc(d / "rgba.mov", "-vf", "format=rgba", "-c:v", "png"),
                         Works(10)),
    "ARGB qtrle .mov": (lambda d: enc(d / "qtrle.mov", "-c:v", "qtrle", "-pix_fmt", "argb"),
                        Works(10)),
    "10-bit H.264": (lambda d: enc(d / "high10.mp4", *X264, "-pix_fmt", "yuv420p10le"),
                     Works(10)),
    "10-bit HEVC": (lambda d: enc(d / "hevc10.mp4", "-c:v", "libx265", "-pix_fmt",
                                  "yuv420p10le", "-x265-params", "log-level=error"), Works(10)),
    "unicode name": (lambda d: copy_as(d, "vidéo 🎬 测试.mp4"), Works(10)),
    "path-like name": (lambda d: copy_as(d, "..%2F..%2Fetc.mp4"), Works(10)),
    "spaces and quotes": (lambda d: copy_as(d, "my 'clip' \"v2\" .mp4"), Works(10)),
    "leading dash": (lambda d: copy_as(d, "-i.mp4"), Works(10)),
    "odd size 321x241": (lambda d: enc(d / "odd.mp4", *X264, "-pix_fmt", "yuv444p",
                                       size="321x241"), Works(10, 321, 241)),
    "tiny 2x2": (lambda d: enc(d / "tiny2.mp4", *X264, "-pix_fmt", "yuv444p", size="2x2"),
                 Works(10, 2, 2)),
    "tiny 16x16": (lambda d: enc(d / "tiny16.mp4", size="16x16"), Works(10, 16, 16)),
    "webm VP9": (lambda d: enc(d / "vp9.webm", "-c:v", "libvpx-vp9"), Works(10)),
    "mkv H.264": (lambda d: enc(d / "h264.mkv", *X264), Works(10)),
    "avi MJPEG": (lambda d: enc(d / "mjpeg.avi", "-c:v", "mjpeg"), Works(10)),
    "mov H.264": (lambda d: enc(d / "h264.mov", *X264), Works(10)),
    "animated GIF": (lambda d: enc(d / "anim.gif", "-c:v", "gif"), Works(10, fps=10.0)),
    "animated PNG": (lambda d: enc(d / "anim.apng", "-c:v", "apng", "-plays", "0", "-f", "apng"),
                     Works(10, fps=10.0)),
    "corrupt middle": (corrupt_middle, Fails(
        VideoReadError, r"stopped at frame \d+ .* of 10: the data is damaged", decodes=True)),
    # folders of frames
    "folder, mixed sizes": (lambda d: folder(d / "mixed", [(64, 48), (64, 50)]),
                            Fails(VideoReadError, r"differ in size: 00000\.png is 64x48 but")),
    "folder, empty": (lambda d: folder(d / "empty", []),
                      Fails(VideoReadError, r"has no \.jpg/\.jpeg/\.png frames: it is empty")),
    "folder, only a text file": (lambda d: folder(d / "txt", [], {"readme.txt": "hi"}), Fails(
        VideoReadError, r"no \.jpg/\.jpeg/\.png frames: it holds 1 other entries \(e\.g\. readm")),
    "folder, frames and a text file": (lambda d: folder(d / "seq", [(64, 48)] * 3,
                                                        {"notes.txt": "hi"}), Works(3)),
    "directory named clip.mp4": (lambda d: folder(d / "clip.mp4", []),
                                 Fails(VideoReadError, r"frame folder .*clip\.mp4 has no")),
}  # fmt: skip


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> Callable[[str], Path]:
    """Builds each case's input once, in its own folder (so a stray file would show)."""
    root = tmp_path_factory.mktemp("media")
    built: dict[str, Path] = {}

    def get(name: str) -> Path:
        if name not in built:
            d = root / f"case{len(built)}"
            d.mkdir()
            built[name] = CASES[name][0](d)
        return built[name]

    return get


@pytest.fixture(scope="module")
def pipe(tiny_sam_model) -> UVOSAM:
    return UVOSAM(MovingBoxTracker(num_objects=2), BoxPromptSegmenter(tiny_sam_model))


def listing(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


@pytest.mark.timeout(60)
@pytest.mark.parametrize("name", list(CASES))
def test_input_gives_a_clear_error_or_a_correct_result(name, media, pipe, tmp_path, monkeypatch):
    source = media(name)
    expect = CASES[name][1]
    around = source.parent
    before = listing(around)
    work = tmp_path / "work"
    if isinstance(expect, Fails):
        if not expect.decodes:  # refused from metadata: no frame may be decoded
            # every ffmpeg that decodes
            monkeypatch.setattr(RgbDecoder, "__init__", decoding_forbidden)
        with pytest.raises(expect.error, match=expect.match):
            list(run_job(pipe, source, work, OPTIONS))
        assert not work.exists() or not [p for p in work.rglob("*") if p.is_file()]
    else:
        check_result(list(run_job(pipe, source, work, OPTIONS))[-1].result, expect)
    assert ffmpeg_children() == []
    assert listing(around) == before, "nothing is written next to the input"


def decoding_forbidden(*args, **kwargs):
    raise AssertionError("a frame was decoded before the input was refused")


def check_result(result, expect: Works) -> None:
    info = result.info
    assert (result.num_frames, info.width, info.height) == (expect.frames, expect.width,
                                                            expect.height)  # fmt: skip
    if expect.fps is not None:
        assert info.fps == pytest.approx(expect.fps)
    overlay = probe(result.overlay_mp4)  # odd sizes are padded to even by the encoder
    padded = (expect.width + expect.width % 2, expect.height + expect.height % 2)
    assert (overlay.num_frames, overlay.width, overlay.height) == (expect.frames, *padded)
    assert result.overlay_mp4.parent == result.zip_path.parent  # all under the work folder
    assert davis_labels(str(result.zip_path), result.video_name)[0] == expect.frames
    first = next(n for n in zip_names(str(result.zip_path)) if n.startswith("davis/"))
    assert "/" not in result.video_name and ".." not in first.split("/")
    with zipfile.ZipFile(result.zip_path) as zf, zf.open(first) as png:
        assert Image.open(png).size == (expect.width, expect.height)  # masks keep the source size


# ------------------------------------------------------------------------------------ via the app
APP_CASES = {
    "truncated mp4": "is truncated: its mp4/mov index",
    "png named .mp4": r"single still image \(png\), not a video",
    "audio only .m4a": r"contains only audio \(aac\)",
    "huge resolution": (
        r"longest side 5000 px, over this app's limit of 4096 px\. To use it, scale it down"
        r".*UVOSAM_MAX_SIDE"
    ),
    "too long": (
        r"lasts 130\.0 s, over this app's limit of 120 s\. To use it, lower Max frames "
        r"\(under Settings;.*UVOSAM_MAX_SECONDS"
    ),
}


@pytest.fixture(scope="module")
def client(tmp_path_factory, pipe):
    pytest.importorskip("gradio")
    from app_helpers import launched
    from gradio_client import Client

    settings = AppSettings(work_root=tmp_path_factory.mktemp("work"))
    with launched(lambda preset, sam: pipe, settings) as url:
        yield Client(url, verbose=False)


@pytest.mark.slow
@pytest.mark.timeout(60)
@pytest.mark.parametrize("name", list(APP_CASES))
def test_app_shows_the_library_message_in_its_words(name, media, client):
    from gradio_client import handle_file

    with pytest.raises(Exception, match=APP_CASES[name]):
        client.predict(handle_file(str(media(name))), api_name="/segment")


@pytest.mark.slow
@pytest.mark.timeout(60)
@pytest.mark.parametrize("name", ["mp4 named .avi", "unicode name", "rotated 90 (display matrix)"])
def test_app_runs_odd_but_valid_uploads(name, media, client):
    from gradio_client import handle_file

    expect = CASES[name][1]
    status, _, _, mp4, zip_path, _, _ = client.predict(
        handle_file(str(media(name))), api_name="/segment"
    )
    assert status.startswith(f"done: {expect.frames} frames"), status
    overlay = probe(mp4)
    assert (overlay.num_frames, overlay.width, overlay.height) == (10, expect.width, expect.height)
    stem = Path(zip_path).name.removesuffix("_uvosam.zip")
    assert davis_labels(zip_path, stem)[0] == expect.frames


def test_truncation_reason_reads_the_box_headers(tmp_path):
    from uvosam.mp4_boxes import truncation_reason

    data = base(tmp_path).read_bytes()  # ftyp, free, mdat, moov (no faststart)
    assert truncation_reason(base(tmp_path)) is None
    cut = write(tmp_path / "cut.mp4", data[: len(data) - 10])
    assert truncation_reason(cut) == (
        f"its 'moov' box (the index) needs {len(data) - data.index(b'moov') + 4:,} bytes but the "
        f"file ends after {len(data) - 10 - data.index(b'moov') + 4:,}"
    )
    large = write(tmp_path / "large.mp4", data[:32] + (1).to_bytes(4, "big") + b"mdat"
                  + (10**6).to_bytes(8, "big") + bytes(100))  # fmt: skip
    assert "'mdat' box (the media data) needs 1,000,000 bytes" in truncation_reason(large)
    no_index = write(tmp_path / "no_index.mp4", data[: data.index(b"moov") - 4])
    assert truncation_reason(no_index) == "it has no 'moov' box (the index)"
    assert truncation_reason(enc(tmp_path / "v.webm", "-c:v", "libvpx-vp9", frames=2)) is None
    assert truncation_reason(write(tmp_path / "t.mp4", b"hello, not a video")) is None
