"""scripts/gpu_check.sh, the one-call GPU check, in its CPU dry run: the plumbing a GPU session depends on
(each step runs, writes its log under $OUT, and the summary holds the benchmarks' numbers) must not rot unseen."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_gpu_check_dry_run_runs_every_step(tmp_path):
    env = {
        **os.environ,
        "OUT": str(tmp_path / "out"),
        "PYTHON": sys.executable,
        "GPU_CHECK_DRY_RUN": "1",
        "GPU_CHECK_DIR": str(tmp_path / "not-prepared"),
    }
    done = subprocess.run(
        ["bash", str(REPO / "scripts" / "gpu_check.sh")],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "e2e.txt",
        "e2e_sam2.txt",
        "env.txt",
        "gpu_tests.txt",
        "msda.txt",
    ]
    for step in ("env", "gpu_tests", "msda", "e2e", "e2e_sam2"):
        assert f"== {step} " in done.stdout
    assert done.stdout.count("rc=0 after") == 5, done.stdout
    summary = done.stdout.split("######## summary", 1)[1]
    assert "msda: gather on CPU" in summary
    assert "skipped" in summary  # the gpu tests were collected and skipped on CPU
    assert "CPU interpreter sanity check" in summary and "-> ok" in summary
    assert "memory ratio 16 vs 8 frames" in summary and "speed vs release-equivalent" in summary
    assert "  bf16 " in summary  # the variants table
    sam2 = summary.split("-- e2e_sam2", 1)[1]
    assert "tiny SAM 2.1 + tiny IDOL" in sam2 and "memory ratio 16 vs 8 frames" in sam2
    assert "not measured with sam2.1_large" in sam2 and "  stages:" not in sam2


def test_gpu_check_step_limits_fit_one_device_call():
    """The step limits must leave room for the wheel install and the summary within one 600 s device call."""
    import re

    limits = [
        int(n)
        for n in re.findall(
            r"^step \S+ (\d+) ", (REPO / "scripts" / "gpu_check.sh").read_text(), re.MULTILINE
        )
    ]
    assert len(limits) == 5 and sum(limits) <= 580, limits
