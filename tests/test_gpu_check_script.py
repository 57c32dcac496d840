"""scripts/gpu_check.sh, the one-call GPU check, in its CPU dry run: the plumbing a GPU session depends on
(each step runs, writes its log under $OUT, and the summary holds the benchmarks' numbers) must not rot unseen."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


STEPS = (
    "env",
    "gpu_tests",
    "sam_encoder",
    "e2e",
    "profile",
    "e2e_variants",
    "e2e_sam2",
    "msda",
    "e2e_compile",
)
ON_REQUEST = ("e2e_compile",)  # run only when GPU_CHECK_STEPS names them
DEFAULT_STEPS = tuple(s for s in STEPS if s not in ON_REQUEST)


def run_script(tmp_path, **env_extra) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "OUT": str(tmp_path / "out"),
        "PYTHON": sys.executable,
        "GPU_CHECK_DIR": str(tmp_path / "not-prepared"),
        **env_extra,
    }
    return subprocess.run(
        ["bash", str(REPO / "scripts" / "gpu_check.sh")],
        env=env,
        capture_output=True,
        text=True,
        timeout=420,
        check=False,
    )


@pytest.mark.slow
def test_gpu_check_dry_run_runs_every_step(tmp_path):
    done = run_script(tmp_path, GPU_CHECK_DRY_RUN="1")
    assert done.returncode == 0, done.stdout + done.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(
        f"{s}.txt" for s in DEFAULT_STEPS
    )
    for step in STEPS:
        assert f"== {step} " in done.stdout
    assert "== e2e_compile (only when GPU_CHECK_STEPS names it)" in done.stdout
    assert done.stdout.count("rc=0 after") == len(DEFAULT_STEPS), done.stdout
    summary = done.stdout.split("######## summary", 1)[1]
    assert "msda: gather on CPU" in summary
    assert (
        "| SDPA cuDNN attention enabled: " in summary and "cudnn " in summary
    )  # TransformerEngine#2344
    assert "skipped" in summary  # the gpu tests were collected and skipped on CPU
    tests_log = (tmp_path / "out" / "gpu_tests.txt").read_text()
    assert "SKIPPED" in tests_log and "slowest 15 durations" in tests_log  # -v --durations=15
    assert "CPU interpreter sanity check" in summary and "-> ok" in summary
    assert "out " in summary.split("CPU interpreter sanity check", 1)[1]  # the error per tensor
    e2e = summary.split("-- e2e\n", 1)[1].split("-- e2e_variants", 1)[0]
    assert "memory ratio 16 vs 8 frames" in e2e and "with the ffmpeg processes" in e2e
    assert "speed vs release-equivalent" in e2e and "medians of 3 alternating runs" in e2e
    assert "load average" in e2e and "  json " not in e2e and "  stages:" not in e2e
    assert "  bf16 " in summary.split("-- e2e_variants", 1)[1]  # the variants table
    sam2 = summary.split("-- e2e_sam2", 1)[1]
    assert "tiny SAM 2.1 + tiny IDOL" in sam2 and "memory ratio 16 vs 8 frames" in sam2
    assert "not measured with sam2.1_large" in sam2 and "  stages:" not in sam2
    profile = summary.split("-- profile\n", 1)[1].split("-- ", 1)[0]
    assert "tiny SAM + tiny IDOL" in profile and "3 boxes a frame" in profile
    assert "wall " in profile and "ms a frame" in profile and "most CPU time" in profile
    encoder = summary.split("-- sam_encoder", 1)[1].split("-- ", 1)[0]
    assert "sam2.1_tiny" in encoder and "fast path" in encoder
    assert (
        "sam2.1_tiny graph" in encoder and "ran EAGER: not a CUDA device (cpu)" in encoder
    )  # --cuda-graph
    assert "  bf16+graph " in summary.split("-- e2e_variants", 1)[1]
    assert (
        "3 boxes on every frame" in e2e
    )  # --objects 3: SAM works on every frame, as with trained weights


def test_a_second_call_runs_only_the_steps_it_names(tmp_path):
    """GPU_CHECK_STEPS: a second device call for what the first cut runs those steps alone, and says so."""
    done = run_script(tmp_path, GPU_CHECK_DRY_RUN="1", GPU_CHECK_STEPS="env,")
    assert done.returncode == 0, done.stdout + done.stderr
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["env.txt"]
    assert "== env (limit" in done.stdout and "== e2e (not in GPU_CHECK_STEPS)" in done.stdout
    assert "msda: gather on CPU" in done.stdout.split("######## summary", 1)[1]


def test_a_step_on_request_runs_when_named(tmp_path):
    """e2e_compile's cold compile outlasted its step in the first call of 2026-11-30: it runs when named only."""
    done = run_script(tmp_path, GPU_CHECK_DRY_RUN="1", GPU_CHECK_STEPS="e2e_compile")
    assert done.returncode == 0, done.stdout + done.stderr
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["e2e_compile.txt"]
    assert "  tf32 " in done.stdout.split("-- e2e_compile", 1)[1]


def test_without_the_prepared_wheels_it_stops_and_says_what_to_do(tmp_path):
    """Without .gpu/whl every step failed on an import and the script went on silently; it needs no CUDA to say so."""
    done = run_script(tmp_path)
    assert done.returncode == 3, done.stdout + done.stderr
    assert "gpu_prepare.sh" in done.stdout and "== env" not in done.stdout


def test_gpu_check_worst_case_fits_one_device_call():
    """The worst case of one run, every limit hit and every --kill-after margin used, with the CUDA check, the wheel
    install and the summary, fits the 600 s of one device call; and no command outside a step runs unbounded."""
    import re

    text = (REPO / "scripts" / "gpu_check.sh").read_text()

    def number(name: str) -> int:
        found = re.findall(rf"^{name}=(\d+)\b", text, re.MULTILINE)
        assert len(found) == 1, name
        return int(found[0])

    kill_after = number("KILL_AFTER")
    limits = dict(re.findall(r"^step (\S+) (\d+) ", text, re.MULTILINE))
    assert tuple(limits) == STEPS
    assert re.findall(r'^ON_REQUEST="(.*)"', text, re.MULTILINE) == [" ".join(ON_REQUEST)]
    # the names GPU_CHECK_STEPS accepts are the steps the script runs
    assert re.findall(r'^ALL_STEPS="(.*)"', text, re.MULTILINE) == [" ".join(STEPS)]
    fixed = [number("CUDA_LIMIT"), number("INSTALL_LIMIT")]
    for steps in (
        DEFAULT_STEPS,
        *[(s,) for s in ON_REQUEST],
    ):  # a call without GPU_CHECK_STEPS; each on request
        timed = fixed + [int(limits[s]) for s in steps]
        worst = sum(limit + kill_after for limit in timed) + number("SUMMARY_MARGIN")
        assert worst <= 600, (steps, worst, timed)
    # every timeout has its kill-after margin; python and pip run only under a timeout
    timeouts = re.findall(r"timeout (.*)", text)
    assert len(timeouts) == 3 and all(t.startswith("--kill-after=$KILL_AFTER ") for t in timeouts)
    outside = [
        line
        for line in text.splitlines()
        if re.search(r'"\$PY"|\bpip\b', line)
        and not re.search(r"^\s*(#|step |timeout |\"\$PY\" (-|benchmarks))", line)
    ]
    assert outside == [], outside


@pytest.mark.parametrize("steps", ["bogus", "env bogus", "env,e2e_compil"])
def test_an_unknown_step_name_stops_before_anything_runs(tmp_path, steps):
    """A misspelt name ran no step and exited 0: a whole device call lost."""
    done = run_script(tmp_path, GPU_CHECK_DRY_RUN="1", GPU_CHECK_STEPS=steps)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "unknown step" in done.stdout and "== env" not in done.stdout
