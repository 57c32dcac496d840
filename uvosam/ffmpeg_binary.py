"""The ffmpeg binary that every video read and write runs: imageio-ffmpeg's (``imageio_ffmpeg.get_ffmpeg_exe``:
``IMAGEIO_FFMPEG_EXE`` if set, else the one it bundles, else a conda or system ffmpeg), checked once per path to be
new enough for the options uvosam gives it. An older one failed on the first frame with "Error splitting the
argument list: Option not found", which read as a damaged video.
"""

from __future__ import annotations

import functools
import os
import re
import subprocess

import imageio_ffmpeg

from uvosam.errors import SetupError

__all__ = ["MIN_VERSION", "ffmpeg_exe", "ffmpeg_version"]

MIN_VERSION = (5, 1)
"""``-fps_mode`` (frames passed on as they are timed, not resampled: ``uvosam.video``) came in ffmpeg 5.1."""

_VERSION = re.compile(r"ffmpeg version (\S+)")
_RELEASE = re.compile(
    r"n?(\d+)\.(\d+)"
)  # a release's version; a build from git's, "N-113-g...", is none


def ffmpeg_exe() -> str:
    """The path of the ffmpeg binary to run.

    Raises:
        RuntimeError: imageio-ffmpeg found no ffmpeg, or the one found is older than ``MIN_VERSION`` (the message
            names its version and what to do).
    """
    exe = imageio_ffmpeg.get_ffmpeg_exe()
    _check_version(exe)
    return exe


@functools.lru_cache(maxsize=8)
def ffmpeg_version(exe: str) -> str | None:
    """The version ``exe -version`` names (``7.0.2``, ``4.4.2-0ubuntu0.22.04.1``, ``N-113-g...`` for a build from
    git), None if it names none. Remembered per path, so ffmpeg is asked once."""
    proc = subprocess.run(
        [exe, "-version"],
        check=False,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=60,
    )
    match = _VERSION.match(proc.stdout.decode("utf-8", "replace"))
    return None if match is None else match[1]


def _check_version(exe: str) -> None:
    """Refuse ``exe`` if its version (``ffmpeg_version``) is a release older than ``MIN_VERSION`` (a build from git
    names none and passes)."""
    version = ffmpeg_version(exe)
    release = _RELEASE.match(version or "")
    if release is None or (int(release[1]), int(release[2])) >= MIN_VERSION:
        return
    need = ".".join(map(str, MIN_VERSION))
    if os.environ.get("IMAGEIO_FFMPEG_EXE"):
        fix = (
            f"IMAGEIO_FFMPEG_EXE names it: point IMAGEIO_FFMPEG_EXE at an ffmpeg {need} or newer, or unset it "
            "to use the ffmpeg that imageio-ffmpeg 0.8 or newer comes with"
        )
    else:
        fix = (
            "install imageio-ffmpeg 0.8 or newer (pip install -U 'imageio-ffmpeg>=0.8'), which comes with a "
            f"new enough ffmpeg, or set IMAGEIO_FFMPEG_EXE to an ffmpeg {need} or newer"
        )
    raise SetupError(
        f"ffmpeg {version} ({exe}) is too old: uvosam needs ffmpeg {need} or newer "
        f"(for its -fps_mode option). To fix it, {fix}."
    )
