"""Process checks and the ffmpeg runner shared by the tests."""

import io
import os
import subprocess
import sys
from pathlib import Path

import imageio_ffmpeg

FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()


def ffmpeg(*args: str | Path) -> bytes:
    """Run the bundled ffmpeg with ``args`` (errors only, overwriting outputs); raise if it fails. Returns what it
    wrote to stdout (an output named ``-``: raw frames, samples, frame CRCs)."""
    cmd = [FFMPEG, "-hide_banner", "-v", "error", "-y", *map(str, args)]
    return subprocess.run(cmd, check=True, stdout=subprocess.PIPE).stdout


def pattern_clip(
    path: Path,
    *codec: str | Path,
    size: str = "64x48",
    frames: int = 10,
    rate: int | str = 10,
    src: str = "testsrc",
) -> Path:
    """``frames`` frames of ffmpeg's lavfi test pattern ``src`` at ``size`` and ``rate`` fps (a number or a fraction
    such as ``"24000/1001"``), encoded with ``codec`` (its output options; default H.264 yuv420p) into ``path``, by
    the bundled ffmpeg."""
    codec = codec or ("-c:v", "libx264", "-pix_fmt", "yuv420p")
    ffmpeg("-f", "lavfi", "-i", f"{src}=size={size}:rate={rate}", "-frames:v", frames, *codec, path)
    return path


def ffmpeg_header(path: Path) -> str:
    """What ``ffmpeg -i path`` prints about the file (its streams)."""
    return subprocess.run(
        [FFMPEG, "-hide_banner", "-i", str(path)], check=False, capture_output=True, text=True
    ).stderr


def ffmpeg_children() -> list[int]:
    """PIDs of ffmpeg processes (running or zombie) whose parent is this test process."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == os.getpid() and b"ffmpeg" in cmdline:
            pids.append(int(entry.name))
    return pids


def run_with_gone_reader(args: list[str], **run) -> subprocess.CompletedProcess:
    """``python args`` with this checkout importable, its stdout a pipe whose reader has gone (``| true``: closed
    before it starts), stderr captured as text."""
    read, write = os.pipe()
    os.close(read)
    env = {
        **os.environ,
        "PYTHONPATH": str(Path(__file__).resolve().parents[1]),
        **run.pop("env", {}),
    }
    try:
        return subprocess.run(
            [sys.executable, *args], stdout=write, stderr=subprocess.PIPE, text=True, env=env,
            timeout=run.pop("timeout", 120), check=False, **run,
        )  # fmt: skip
    finally:
        os.close(write)


class GoneStdout(io.StringIO):
    """A ``sys.stdout`` whose reader went: every write raises ``BrokenPipeError`` (in-process, where the command's
    own files must not depend on stdout)."""

    def write(self, text: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")
