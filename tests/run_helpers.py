"""Shared by the tests of runs into an output folder that may hold an earlier result (test_job_staging.py,
test_cli_interrupts.py): the clips they run on, and a folder's exact state; and by the tests of re-renders that
count their reads of a run's track ids (``track_id_reads``). Not product code."""

from __future__ import annotations

from pathlib import Path

from clip_helpers import write_clip


def run_clip(path: Path, num_frames: int = 8, seed: int = 3) -> Path:
    """A 64x48, 10 fps moving-shapes clip at ``path``, its folder created if needed. Returns ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_clip(path, num_frames, 64, 48, fps=10, seed=seed)


def track_id_reads(monkeypatch) -> list[Path]:
    """The mask caches whose track ids are read (``MaskCache.iter_track_ids``) from now on, one entry per read."""
    from uvosam.mask_cache import MaskCache

    reads: list[Path] = []
    real = MaskCache.iter_track_ids

    def counted(self):
        reads.append(self.root)
        return real(self)

    monkeypatch.setattr(MaskCache, "iter_track_ids", counted)
    return reads


def snapshot(folder: Path) -> dict[str, bytes | None]:
    """Every path under ``folder`` (relative, as str) -> the file's bytes, or None for a folder."""
    return {
        str(p.relative_to(folder)): p.read_bytes() if p.is_file() else None
        for p in sorted(folder.rglob("*"))
    }
