"""The ffmpeg binary's version check: an ffmpeg older than 5.1 (no -fps_mode), e.g. one that IMAGEIO_FFMPEG_EXE
names, is refused with its version and the fix, not read as a damaged video; a new one is asked its version once."""

from __future__ import annotations

from pathlib import Path

import imageio_ffmpeg
import numpy as np
import pytest
from proc import FFMPEG, ffmpeg

from uvosam.video import iter_frames, probe


def fake_ffmpeg(folder: Path, version_line: str, *, old: bool = False) -> tuple[Path, Path]:
    """An "ffmpeg" script that prints ``version_line`` for ``-version`` and runs the real ffmpeg otherwise (``old``:
    refuses -fps_mode as ffmpeg < 5.1 does), and the file where it notes each ``-version`` call."""
    calls = folder / "version_calls"
    script = folder / "ffmpeg"
    refuse = (
        'case " $* " in *" -fps_mode "*) echo "Unrecognized option \'fps_mode\'." >&2; '
        'echo "Error splitting the argument list: Option not found" >&2; exit 1;; esac\n'
    )
    script.write_text(
        "#!/bin/sh\n"
        f'if [ "$1" = -version ]; then echo >> "{calls}"; echo "{version_line}"; exit 0; fi\n'
        f"{refuse if old else ''}"
        f'exec "{FFMPEG}" "$@"\n'
    )
    script.chmod(0o755)
    return script, calls


@pytest.fixture
def clip(tmp_path) -> Path:
    path = tmp_path / "clip.mp4"
    ffmpeg(
        "-f",
        "lavfi",
        "-i",
        "testsrc=size=64x48:rate=10",
        "-frames:v",
        "5",
        "-pix_fmt",
        "yuv420p",
        path,
    )
    return path


OLD = "ffmpeg version 4.2.2-static https://johnvansickle.com/ffmpeg/  Copyright (c) 2000-2019"


def test_an_old_ffmpeg_that_the_env_var_names_is_refused_with_its_version_and_the_fix(
    tmp_path, clip, monkeypatch
):
    script, _ = fake_ffmpeg(tmp_path, OLD, old=True)
    monkeypatch.setenv("IMAGEIO_FFMPEG_EXE", str(script))
    with pytest.raises(RuntimeError) as err:
        probe(clip)
    message = str(err.value)
    assert f"ffmpeg 4.2.2-static ({script}) is too old: uvosam needs ffmpeg 5.1 or newer" in message
    assert "point IMAGEIO_FFMPEG_EXE at an ffmpeg 5.1 or newer, or unset it" in message
    with pytest.raises(RuntimeError, match="too old"):  # not "Error splitting the argument list"
        next(iter_frames(clip))


def test_an_old_ffmpeg_found_without_the_env_var_names_imageio_ffmpeg(tmp_path, clip, monkeypatch):
    script, _ = fake_ffmpeg(
        tmp_path, "ffmpeg version 4.4.2-0ubuntu0.22.04.1 Copyright (c) 2000-2021"
    )
    monkeypatch.delenv("IMAGEIO_FFMPEG_EXE", raising=False)
    monkeypatch.setattr(imageio_ffmpeg, "get_ffmpeg_exe", lambda: str(script))
    with pytest.raises(RuntimeError, match=r"ffmpeg 4\.4\.2-0ubuntu0\.22\.04\.1 .* too old") as err:
        probe(clip)
    assert "pip install -U 'imageio-ffmpeg>=0.8'" in str(err.value)


@pytest.mark.parametrize(
    "version_line",
    [
        "ffmpeg version 5.1.9-0+deb12u1 Copyright (c) 2000-2026",
        "ffmpeg version n9.0.2-17-g2a571b6068-20260930 Copyright (c) 2000-2026",
        "ffmpeg version N-112233-gabcdef0123 Copyright (c) 2000-2026",  # a git build: no release named
    ],
)
def test_a_new_ffmpeg_is_asked_its_version_once(tmp_path, clip, monkeypatch, version_line):
    script, calls = fake_ffmpeg(tmp_path, version_line)
    monkeypatch.setenv("IMAGEIO_FFMPEG_EXE", str(script))
    assert probe(clip).num_frames == 5
    frames = list(iter_frames(clip))
    assert len(frames) == 5 and frames[0].shape == (48, 64, 3) and frames[0].dtype == np.uint8
    assert probe(clip).num_frames == 5
    assert calls.read_text() == "\n"  # one -version call
