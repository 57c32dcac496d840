"""benchmarks/profile_frames.py: the per-frame arithmetic of its report, and a short CPU run (the CUDA figures need a
GPU: scripts/gpu_check.sh runs it there)."""

from types import SimpleNamespace

import pytest
from script_helpers import load_benchmark
from torch.autograd import DeviceType


@pytest.fixture(scope="module")
def bench():
    return load_benchmark("profile_frames")


def _event(key: str, count: int = 1, device_us: float = 0.0, device: DeviceType = DeviceType.CPU):
    return SimpleNamespace(
        key=key, count=count, self_device_time_total=device_us, device_type=device
    )


def test_summary_per_frame_counts_kernels_launches_and_waits(bench):
    events = [
        _event("sm90_gemm", 40, 30_000.0, DeviceType.CUDA),
        _event("fmha_cutlass", 8, 10_000.0, DeviceType.CUDA),
        _event(
            "aten::linear", 40, 30_000.0
        ),  # the CPU op that launched the gemms carries their time too
        _event("cudaLaunchKernel", 1800),
        _event("cudaGraphLaunch", 2),
        _event("cudaStreamSynchronize", 6),
    ]
    summary = bench.summarize(events, frames=2, wall_s=0.1)
    assert summary == {
        "wall_ms": 50.0,
        "gpu_ms": 20.0,
        "launches": 901.0,
        "waits": {"cudaStreamSynchronize": 3.0},
    }
    busy, launches = bench.report_lines(summary, cuda=True)[1:]
    assert "busy 40% of the wall time (bound by the CPU or by waits)" in busy
    assert launches == "kernel launches 901 a frame; host waits a frame: cudaStreamSynchronize 3.0"
    assert "GPU-bound" in bench.report_lines({**summary, "gpu_ms": 45.0}, cuda=True)[1]
    assert bench.report_lines(summary, cuda=False) == ["wall 50.0 ms a frame"]


def test_a_short_cpu_run_profiles_the_pipeline(bench, capsys):
    assert (
        bench.main(
            ["--warm", "2", "--frames", "3", "--height", "40", "--width", "64", "--top", "4"]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "tiny SAM + tiny IDOL" in out and "3 boxes a frame, 2 frames warm then 3 profiled" in out
    assert "wall " in out and "ms a frame" in out
    table = out.split("the 4 ops with the most CPU time of their own (all 3 frames):")[1]
    assert "aten::" in table and "GPU kernels" not in out
