"""Process checks and the ffmpeg runner shared by the tests."""

import os
import subprocess
from pathlib import Path

import imageio_ffmpeg

FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()


def ffmpeg(*args: str | Path) -> bytes:
    """Run the bundled ffmpeg with ``args`` (errors only, overwriting outputs); raise if it fails. Returns what it
    wrote to stdout (an output named ``-``: raw frames, samples, frame CRCs)."""
    cmd = [FFMPEG, "-hide_banner", "-v", "error", "-y", *map(str, args)]
    return subprocess.run(cmd, check=True, stdout=subprocess.PIPE).stdout


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
