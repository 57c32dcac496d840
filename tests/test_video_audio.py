"""The output mp4 keeps the source's sound (uvosam.video_audio): in sync, cut with the video, copied or encoded to
AAC, absent where there is none or it is switched off, and never at the video's expense. Clips of a lavfi test
pattern and a sine, a few frames at 64x48, generated with the ffmpeg bundled in imageio-ffmpeg."""

from __future__ import annotations

import logging
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from doubles import MovingBoxTracker
from PIL import Image
from proc import ffmpeg, ffmpeg_header

import uvosam_cli
import uvosam_cli.segment
from uvosam.job import rerender, run_job
from uvosam.job_outputs import source_sound
from uvosam.job_types import JobOptions, JobResult
from uvosam.pipeline import UVOSAM
from uvosam.segmenter import BoxPromptSegmenter
from uvosam.video import VideoInfo, iter_probed, probe
from uvosam.video_packets import read_packet_stats
from uvosam.video_writer import VideoWriter

FPS = 10


def clip(
    path: Path, *, frames: int = 20, audio: tuple[str, ...] = ("-c:a", "aac"), sine: bool = True
) -> Path:
    """``frames`` frames at ``FPS`` of a test pattern (H.264; VP9 for a .webm), with a sine as long as them."""
    vp9 = path.suffix == ".webm"
    video = ["-c:v", "libvpx-vp9", "-deadline", "realtime"] if vp9 else ["-c:v", "libx264"]
    sine_args = ["-f", "lavfi", "-i", f"sine=frequency=440:duration={frames / FPS}", *audio]
    ffmpeg("-f", "lavfi", "-i", f"testsrc=size=64x48:rate={FPS}", *(sine_args if sine else []),
           "-frames:v", frames, *video, path)  # fmt: skip
    return path


def streams(path: Path) -> dict[str, tuple[str, float, float]]:
    """``{"v"|"a": (codec, first time, end time)}`` of the first video and audio stream in ``path`` (those there)."""
    header = ffmpeg_header(path)
    found = {}
    for kind, name in (("v", "Video"), ("a", "Audio")):
        codec = re.search(rf"Stream #0:\d+.*?: {name}: (\w+)", header)
        if codec is None:
            continue
        packets = ffmpeg("-i", path, "-map", f"0:{kind}:0", "-c", "copy", "-f", "framecrc", "-")
        stats = read_packet_stats(packets.splitlines())
        found[kind] = (codec.group(1), stats.start_s, stats.start_s + stats.span_s)
    return found


def write(info: VideoInfo, out: Path, frames: list[np.ndarray] | None = None) -> Path:
    """``frames`` (default: the probed ``info``'s) through a ``VideoWriter`` with the sound a run gives it."""
    size = {"width": info.width, "height": info.height}
    with VideoWriter(
        out, fps=info.fps, **size, audio=source_sound(info, JobOptions())[0]
    ) as writer:
        for frame in iter_probed(info) if frames is None else frames:
            writer.write(frame)
    return out


def _pipe(sam) -> UVOSAM:
    return UVOSAM(MovingBoxTracker(num_objects=1), BoxPromptSegmenter(sam))


def _run(sam, source: Path, out: Path, options: JobOptions | None = None) -> JobResult:
    return list(run_job(_pipe(sam), source, out, options))[-1].result


@pytest.mark.parametrize(("stride", "max_frames"), [(2, None), (1, 6)])
def test_the_video_keeps_the_source_sound_as_long_as_its_frames(
    tmp_path, tiny_sam_model, stride, max_frames
):
    source = clip(tmp_path / "sine.mp4")  # 2.0 s
    options = JobOptions(stride=stride, max_frames=max_frames, chunk_seconds=1.0)
    steps = list(run_job(_pipe(tiny_sam_model), source, tmp_path / "out", options))
    out = streams(steps[-1].result.overlay_mp4)
    video_end = 2.0 if max_frames is None else max_frames / FPS  # stride 2: 10 frames at 5 fps
    assert out["v"][1:] == pytest.approx((0.0, video_end), abs=1e-3)
    codec, start, end = out["a"]
    assert codec == "aac", "copied"
    # within an AAC packet (1024 samples) of the video: the priming packet before 0, the last one past its end
    assert start == pytest.approx(0.0, abs=0.03) and end == pytest.approx(video_end, abs=0.03)
    data = steps[-1].result.overlay_mp4.read_bytes()
    assert data.index(b"moov") < data.index(b"mdat"), "+faststart, as the silent video"
    chunk = next(s.chunk for s in steps if s.chunk is not None)
    assert "a" not in streams(chunk), "the streaming chunks stay silent"


def test_no_sound_where_there_is_none_or_it_is_switched_off(tmp_path, tiny_sam_model, caplog):
    silent = clip(tmp_path / "silent.mp4", frames=4, sine=False)
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, frame in enumerate(iter_probed(probe(silent))):
        Image.fromarray(frame).save(folder / f"{i:05d}.png")
    with_sound = clip(tmp_path / "sine.mp4", frames=4)
    cases = [(silent, JobOptions()), (folder, JobOptions()), (with_sound, JobOptions(audio=False))]
    with caplog.at_level(logging.INFO, logger="uvosam"):
        for n, (source, options) in enumerate(cases):
            result = _run(tiny_sam_model, source, tmp_path / f"out{n}", options)
            assert set(streams(result.overlay_mp4)) == {"v"}, source.name
    assert "sound" not in caplog.text, "nothing was tried"


@pytest.mark.parametrize(
    ("name", "audio", "codec"),
    [("pcm.mov", ("-c:a", "pcm_s16le"), "aac"), ("pcm.avi", ("-c:a", "pcm_s16le"), "aac"),
     ("vorbis.webm", ("-c:a", "libvorbis"), "aac"), ("mp3.mp4", ("-c:a", "libmp3lame"), "mp3")],
)  # fmt: skip
def test_a_sound_that_mp4_players_may_not_play_is_encoded_to_aac(tmp_path, name, audio, codec):
    info = probe(clip(tmp_path / name, frames=10, audio=audio))
    out = streams(write(info, tmp_path / "out.mp4"))
    assert out["a"][0] == codec and out["a"][2] == pytest.approx(1.0, abs=0.06)


def test_a_video_whose_first_frame_comes_after_the_audio_keeps_them_in_sync(tmp_path):
    """Video from 0.5 s, a tone from 0.5 s (silence before): the output's first frame is at 0, so is the tone."""
    source = tmp_path / "late_video.mp4"
    ffmpeg("-itsoffset", "0.5", "-f", "lavfi", "-i", f"testsrc=size=64x48:rate={FPS}", "-f", "lavfi", "-i",
           "aevalsrc='if(gte(t,0.5),sin(2*PI*440*t),0)':s=48000:d=2.5", "-frames:v", "20", "-c:v", "libx264",
           "-c:a", "pcm_s16le", source.with_suffix(".mov"))  # fmt: skip
    ffmpeg("-i", source.with_suffix(".mov"), "-c:v", "copy", "-c:a", "aac", source)
    info = probe(source)
    assert info.start_s == pytest.approx(0.5)
    out = write(info, tmp_path / "out.mp4")
    pcm = ffmpeg("-i", out, "-map", "0:a:0", "-f", "s16le", "-ac", "1", "-ar", "48000", "-")
    samples = np.frombuffer(pcm, np.int16)
    tone_at = np.flatnonzero(np.abs(samples) > 3000)[0] / 48000
    assert tone_at < 0.03 and len(samples) / 48000 == pytest.approx(2.0, abs=0.05)


def _ten_channels(path: Path) -> Path:
    """A 1 s clip whose sound is 10 channels of PCM (5.1.4), each the sine: a layout AAC has none for."""
    ten = "pan=10c|" + "|".join(f"c{i}=c0" for i in range(10))
    return clip(path, frames=10, audio=("-af", ten, "-c:a", "pcm_s16le"))


def test_a_sound_of_more_channels_than_aac_has_is_downmixed_to_stereo(tmp_path, caplog):
    info = probe(_ten_channels(tmp_path / "ten.mov"))
    with caplog.at_level(logging.INFO, logger="uvosam"):
        out = write(info, tmp_path / "out.mp4")
    assert "Audio: aac (LC)" in ffmpeg_header(out) and ", stereo, " in ffmpeg_header(out)
    assert streams(out)["a"][2] == pytest.approx(1.0, abs=0.06)
    pcm = ffmpeg("-i", out, "-map", "0:a:0", "-f", "s16le", "-")
    assert np.abs(np.frombuffer(pcm, np.int16)).max() > 3000, "the sine, not silence"
    assert "WARNING" not in caplog.text and "left without sound" not in caplog.text
    assert "the sound of ten.mov (pcm_s16le) is downmixed to stereo" in caplog.text
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("out")] == ["out.mp4"]


def test_a_sound_that_cannot_be_added_leaves_the_silent_video(tmp_path, caplog):
    """A source damaged since it was probed (its 10 channels are tried again as stereo, which fails too): the
    video is kept, without sound, and a warning says why."""
    source = _ten_channels(tmp_path / "ten.mov")
    info = probe(source)
    source.write_bytes(b"not a video any more")
    with caplog.at_level(logging.WARNING, logger="uvosam"):
        out = write(info, tmp_path / "out.mp4", [np.zeros((48, 64, 3), np.uint8)] * 10)
    assert set(streams(out)) == {"v"} and probe(out).num_frames == 10
    assert "out.mp4 is left without sound: ffmpeg could not add the sound of ten.mov" in caplog.text
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("out")] == ["out.mp4"], (
        "no .tmp left"
    )


def test_rerender_keeps_the_sound_while_the_source_is_there(tmp_path, tiny_sam_model, caplog):
    source = clip(tmp_path / "sine.mp4", frames=6)
    run = _run(tiny_sam_model, source, tmp_path / "run", JobOptions(cache=True))
    assert streams(rerender(run.cache_dir, tmp_path / "again").overlay_mp4)["a"][0] == "aac"
    source.rename(tmp_path / "moved.mp4")
    with caplog.at_level(logging.INFO, logger="uvosam"):
        silent = rerender(run.cache_dir, tmp_path / "gone").overlay_mp4
    assert set(streams(silent)) == {"v"} and "sine.mp4 is no longer there" in caplog.text
    # another clip saved under the run's name: its sound would not match the cached frames
    clip(source, frames=9)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="uvosam"):
        other = rerender(run.cache_dir, tmp_path / "other").overlay_mp4
    assert set(streams(other)) == {"v"} and "sine.mp4 is not the file the run read" in caplog.text


def test_rerender_judges_a_same_size_file_by_its_content_not_its_time(
    tmp_path, tiny_sam_model, caplog
):
    """The run's own bytes written again a second later (as Gradio moves a second upload of the same clip onto
    the run's path): its sound. Other bytes of the same size: maybe another file, so no sound."""
    source = clip(tmp_path / "sine.mp4", frames=6)
    run = _run(tiny_sam_model, source, tmp_path / "run", JobOptions(cache=True))
    data = source.read_bytes()
    st = source.stat()
    source.write_bytes(data)
    os.utime(source, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    assert streams(rerender(run.cache_dir, tmp_path / "again").overlay_mp4)["a"][0] == "aac"
    middle = len(data) // 2
    source.write_bytes(data[:middle] + bytes([data[middle] ^ 0xFF]) + data[middle + 1 :])
    with caplog.at_level(logging.INFO, logger="uvosam"):
        silent = rerender(run.cache_dir, tmp_path / "rewritten").overlay_mp4
    assert set(streams(silent)) == {"v"}
    assert "sine.mp4 is not the file the run read" in caplog.text and "other content" in caplog.text


def test_the_cli_no_audio_flag_and_a_rerender_that_does_as_the_run_did(
    tmp_path, tiny_sam_model, monkeypatch
):
    source = clip(tmp_path / "sine.mp4", frames=4)
    monkeypatch.setattr(uvosam_cli.segment, "load_pipeline", lambda args: _pipe(tiny_sam_model))
    run = tmp_path / "run"
    assert (
        uvosam_cli.main(["segment", str(source), "--out", str(run), "--cache", "--no-audio"]) == 0
    )
    video = run / "sine_overlay.mp4"
    assert set(streams(video)) == {"v"}
    assert uvosam_cli.main(["rerender", str(run), "--out", str(tmp_path / "same")]) == 0
    assert set(streams(tmp_path / "same" / video.name)) == {"v"}, "silent, as the run was"
    assert uvosam_cli.main(["rerender", str(run), "--audio"]) == 0
    assert streams(video)["a"][0] == "aac"
    shutil.rmtree(run)
    assert uvosam_cli.main(["segment", str(source), "--out", str(run)]) == 0
    assert streams(video)["a"][0] == "aac"
