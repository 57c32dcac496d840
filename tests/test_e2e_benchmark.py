"""benchmarks/e2e.py helpers: variant names and the fps after the first chunk (the script itself is run by hand)."""

import argparse
import json
from pathlib import Path

import numpy as np
import pytest
from script_helpers import load_benchmark


@pytest.fixture(scope="module")
def e2e():
    return load_benchmark("e2e")


def test_variants_parse_and_name(e2e):
    assert e2e.parse_variant("tf32") == ("tf32", "")
    assert e2e.parse_variant("bf16+compile") == ("bf16", "compile")
    assert e2e.parse_variant("bf16+graph") == ("bf16", "graph")
    assert [e2e.variant_name(*e2e.parse_variant(v)) for v in e2e.DEFAULT_VARIANTS] == list(
        e2e.DEFAULT_VARIANTS
    )
    for bad in ("fp16", "bf16+", "bf16+jit", "compile"):
        with pytest.raises(argparse.ArgumentTypeError, match="optionally followed by"):
            e2e.parse_variant(bad)


def test_fps_after_the_first_chunk(e2e):
    run = {"frames": 100, "seconds": 12.0, "first_chunk_s": 2.0, "frames_at_first_chunk": 25}
    assert e2e.after_first_chunk_fps(run) == pytest.approx(75 / 10.0)
    one_chunk = {"frames": 20, "seconds": 3.0, "first_chunk_s": 3.0, "frames_at_first_chunk": 20}
    assert e2e.after_first_chunk_fps(one_chunk) is None
    assert e2e.after_first_chunk_fps({"frames": 0, "seconds": 1.0, "first_chunk_s": None}) is None


def test_fps_without_the_first_sam_calls_extra_time(e2e):
    run = {
        "frames": 100,
        "seconds": 30.0,
        "first_sam_call_s": 20.5,
        "sam_encoder_s": 25.0,
        "sam_encoder_calls": 10,
    }
    assert e2e.first_call_overhead_s(run) == pytest.approx(20.0)  # others: 4.5 s / 9 calls
    assert e2e.steady_fps(run) == pytest.approx(10.0)
    assert e2e.steady_fps({**run, "sam_encoder_calls": 1}) is None
    row = e2e.variant_row("bf16+compile", {**run, "first_chunk_s": None})
    assert row.split() == ["bf16+compile", "-", "3.33", "-", "-", "20.50", "10.00", "10", "-"]
    assert (
        e2e.variant_row("fp32", {**run, "first_chunk_s": None, "warm_up_s": 1.25}).split()[1]
        == "1.25"
    )


def test_stage_totals_give_the_encoder_columns_and_the_stage_line(e2e):
    stages = {name: [0.0, 0, None] for name in e2e.STAGES}
    stages["sam_encode"] = [25.0, 10, 20.5]
    stages["detect"] = [0.5, 10, 0.2]
    assert e2e.encoder_stats(stages) == {
        "sam_encoder_s": 25.0,
        "sam_encoder_calls": 10,
        "first_sam_call_s": 20.5,
    }
    line = e2e.stage_line({"frames": 100, "stages": stages})
    assert line.startswith("detect 5.0, sam_encode 250.0, sam_decode 0.0")
    assert e2e.stage_line({"frames": 0, "stages": stages}) is None


def test_sam2_types_build_the_sam2_segmenter_at_tiny_or_real_size(e2e):
    from uvosam.sam2_segmenter import Sam2BoxSegmenter
    from uvosam.segmenter import BoxPromptSegmenter

    tiny = e2e.build_segmenter("cpu", False, "sam2.1_large")
    assert isinstance(tiny, Sam2BoxSegmenter) and tiny.image_size == 256  # uvosam.testing.tiny_sam2
    assert tiny.config.model_type == "sam2.1_large"
    real = e2e.build_segmenter("cpu", True, "sam2.1_tiny", compile_sam=True)
    assert isinstance(real, Sam2BoxSegmenter) and real.image_size == 1024 and real.config.compile
    assert 38e6 < sum(p.numel() for p in real.model.parameters()) < 40e6  # the released tiny's size
    assert isinstance(e2e.build_segmenter("cpu", False, "vit_h"), BoxPromptSegmenter)


def test_sam_precision_picks_the_fast_path_of_either_family(e2e):
    from uvosam.config import SAM_PRECISIONS

    assert (
        e2e.SAM_PRECISIONS == SAM_PRECISIONS
    )  # the script keeps its own copy (its parent imports no torch)
    for sam in ("vit_b", "sam2.1_tiny"):
        for precision, fast in (("bf16", True), ("fp32", False)):
            assert (
                e2e.build_segmenter("cpu", False, sam, fast=SAM_PRECISIONS[precision]).fast is fast
            )


def test_the_report_names_the_mask_model_and_skips_the_release_comparison_for_sam2(e2e):
    assert e2e.model_text("sam2.1_large", True, True) == (
        "SAM 2.1 sam2.1_large + IDOL R50 (random weights)",
        "SAM 2.1 encoder bf16 autocast",
    )
    assert e2e.model_text("vit_h", False, False) == (
        "tiny SAM + tiny IDOL (random weights)",
        "SAM encoder SAM's own forward",
    )
    args = argparse.Namespace(sam="sam2.1_small", frames=[100, 200], precision="fp32")
    assert e2e.release_lines(args, {"ours_pipeline_s": 1.0}) == [
        (
            "speed vs release-equivalent pipeline: not measured with sam2.1_small "
            "(the release used SAM; run with a vit_* --sam for this comparison)"
        )
    ]
    sam_run = {
        "ours_pipeline_s": 1.0,
        "release_equivalent_s": 1.5,
        "ours_prompts": 10,
        "release_prompts": 30,
    }
    lines = e2e.release_lines(
        argparse.Namespace(sam="vit_h", frames=[100, 200], precision="bf16"), sam_run
    )
    assert lines[0].startswith(
        "speed vs release-equivalent pipeline (100 frames, frames->masks): 1.50x"
    )
    assert lines[1].endswith("the tracker in bf16 on both.")


def test_a_child_reports_its_own_peak_rss_not_its_parents(e2e):
    """Linux keeps a process's ``ru_maxrss`` across ``exec``: a child reported at least its parent's resident size
    as its own peak (the 480p benchmark's "run itself: 0 MB"). The parent here holds 256 MB more than the child
    can reach by itself (its imports: torch)."""
    import subprocess
    import sys

    import numpy as np

    held = np.ones(256 << 20, dtype=np.uint8)  # touched: resident in this (the parent) process
    status = Path("/proc/self/status").read_text().splitlines()
    parent_mb = next(int(line.split()[1]) / 1024 for line in status if line.startswith("VmRSS:"))
    child = (
        "import importlib.util, sys; spec = importlib.util.spec_from_file_location('e2e', sys.argv[1]); "
        "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m); print(m.peak_rss_mb())"
    )
    out = subprocess.run(
        [sys.executable, "-c", child, e2e.__file__], capture_output=True, text=True, check=True
    )
    assert held.sum() == 256 << 20
    assert 10 < float(out.stdout) < parent_mb - 128, (float(out.stdout), parent_mb)


def fake_run(frames: int, **extra) -> dict:
    """A child's record as ``benchmarks/e2e.py --child`` prints it (CPU, no release comparison)."""
    return {
        "frames": frames,
        "sam_fast": True,
        "warm_up_s": None,
        "seconds": frames / 50,
        "first_chunk_s": 0.5,
        "frames_at_first_chunk": 25,
        "peak_rss_mb": 700.0,
        "peak_rss_load_mb": 650.0,
        "peak_rss_source": "VmHWM",
        "peak_rss_with_ffmpeg_mb": 800.0,
        "peak_ffmpeg_mb": 100.0,
        "rss_after_load_mb": 640.0,
        **extra,
    }


# a run's comparison with the release-equivalent pipeline (the medians; each test gives its own pairs)
RELEASE = {
    "ours_pipeline_s": 1.0,
    "release_equivalent_s": 2.0,
    "ours_prompts": 5,
    "release_prompts": 50,
}


def test_each_length_prints_as_it_ends_and_a_failing_one_loses_only_its_own(
    e2e, monkeypatch, capsys
):
    """All numbers were printed after both lengths: a long run that failed or was cut by gpu_check.sh's time limit
    lost the short run's numbers too (the 20-frame child had finished; `timeout` left 0 bytes)."""
    monkeypatch.setattr(e2e, "make_video", lambda *a: None)
    release = {
        **RELEASE,
        "ours_pipeline_runs_s": [1.0, 1.1, 0.9],
        "release_equivalent_runs_s": [2.0, 1.9, 2.1],
    }
    seen_before_long = []

    def run_child(args, video, compare, precision, option):
        if video.name == "v20.mp4":
            assert compare
            return fake_run(20, **release)
        seen_before_long.append(capsys.readouterr().out)
        raise RuntimeError("benchmark child fp32 on v40.mp4 failed (exit -15)")

    monkeypatch.setattr(e2e, "run_child", run_child)
    assert e2e.main(["--frames", "20", "40"]) == 1
    before = seen_before_long[0]
    assert (
        "     20 frames:  50.00 fps end to end" in before and "first chunk after 0.50 s" in before
    )
    assert '  json 20: {"frames": 20' in before
    assert "speed vs release-equivalent pipeline (20 frames, frames->masks): 2.00x" in before
    assert "load average" in before
    after = capsys.readouterr().out
    assert "     40 frames: FAILED: benchmark child fp32 on v40.mp4 failed" in after
    assert "memory ratio" not in before + after  # it needs both lengths


def test_both_lengths_give_the_memory_ratios(e2e, monkeypatch, capsys):
    monkeypatch.setattr(e2e, "make_video", lambda *a: None)
    runs = {
        "v20.mp4": fake_run(20, peak_gpu_mb=1000.0, peak_gpu_reserved_mb=1200.0),
        "v40.mp4": fake_run(40, peak_rss_mb=714.0, peak_gpu_mb=1100.0, peak_gpu_reserved_mb=1300.0),
    }
    monkeypatch.setattr(e2e, "run_child", lambda args, video, *a: runs[video.name])
    assert e2e.main(["--frames", "20", "40", "--sam", "sam2.1_tiny"]) == 0
    out = capsys.readouterr().out
    assert "memory ratio 40 vs 20 frames (peak RSS): 1.020 (goal <= 1.15)" in out
    assert "with the ffmpeg processes (sampled every 100 ms): 800 vs 800 MB" in out
    assert (
        "of which the run itself (peak RSS above the RSS after loading the models): 74 MB vs 60 MB"
        in out
    )
    assert (
        "GPU memory ratio 40 vs 20 frames (peak allocated by PyTorch): 1.100 (1100 vs 1000 MB"
        in out
    )
    assert (
        "peak GPU 1000 MB allocated by PyTorch (1200 MB reserved; CUDA context not counted)" in out
    )
    assert (
        "since the models were loaded; 800 MB with the ffmpeg processes, sampled; 650 MB while loading"
        in out
    )


def test_release_ratio_is_the_median_of_alternating_pairs_and_names_the_precision(e2e):
    args = argparse.Namespace(sam="vit_h", frames=[100, 200], precision="fp32")
    run = {
        **RELEASE,
        "sam_fast": True,
        "ours_pipeline_runs_s": [1.0, 2.0, 0.5],
        "release_equivalent_runs_s": [2.0, 2.0, 2.5],
    }
    lines = e2e.release_lines(args, run)
    assert (
        "2.00x (ratio of the medians of 3 alternating runs of each side, pairs 1.00-5.00x;"
        in lines[0]
    )
    assert "bf16 + SDPA on our side vs fp32 on the release side" in lines[1]
    assert "SAM in fp32 on both sides" in e2e.release_lines(args, {**run, "sam_fast": False})[1]


def test_the_peak_after_a_reset_is_the_runs_not_the_loads(e2e):
    """Real-size models built in fp32 on the CPU and then moved to the GPU set a high-water mark the run never
    reached: the memory ratio read 1.000 whatever the run did. After ``reset_peak_rss`` the peak is the run's."""
    import subprocess
    import sys

    machine = Path(e2e.__file__).with_name("_machine.py")
    code = (
        "import importlib.util, sys; spec = importlib.util.spec_from_file_location('m', sys.argv[1]); "
        "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)\n"
        "load = bytearray(b'x' * (300 << 20)); del load\n"  # touched, then freed (munmap'd)
        "before = m.peak_rss_mb(); ok = m.reset_peak_rss(); print(before, ok, m.peak_rss_mb())"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(machine)], capture_output=True, text=True, check=True
    )
    before, ok, after = out.stdout.split()
    if ok != "True":
        pytest.skip("this kernel refuses /proc/self/clear_refs: the sampled peak is used instead")
    assert float(before) - float(after) > 250, out.stdout


def test_the_sampler_counts_child_processes_but_not_an_unexecd_fork(e2e, monkeypatch):
    """ffmpeg's decoder and encoders are child processes: the Python peak alone left out 180-232 MB of them."""
    import subprocess
    import sys

    from script_helpers import load_benchmark

    machine = load_benchmark("_machine")
    holder = subprocess.Popen(
        [sys.executable, "-c", "x = b'x' * (200 << 20); print('ready', flush=True); input()"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "ready"
        assert holder.pid in machine.child_pids()
        # a thread that ends while its children file is read: the children found so far were listed twice (the
        # file scan's fallback appended to them), and the sampler summed that memory twice
        real_scandir = machine.os.scandir

        def with_a_thread_gone(path):
            entries = list(real_scandir(path))
            if str(path) == "/proc/self/task":
                gone = type(
                    "Gone", (), {"path": "/proc/self/task/999999999", "name": "999999999"}
                )()
                entries.append(gone)
            return iter(entries)

        monkeypatch.setattr(machine.os, "scandir", with_a_thread_gone)
        assert machine.child_pids().count(holder.pid) == 1
        monkeypatch.setattr(machine.os, "scandir", real_scandir)
        # the same program as this one: what a fork before its exec looks like, so it is left out
        assert machine._same_program(holder.pid)
        sampler = machine.MemorySampler()
        sampler.sample()
        assert sampler.peak_children_mb < 100
        monkeypatch.setattr(machine, "_same_program", lambda pid: False)
        sampler.sample()
        assert sampler.peak_children_mb > 180
        assert sampler.peak_total_mb >= sampler.peak_self_mb + 180
    finally:
        holder.communicate("")


def test_release_why_says_what_differs_in_the_prompts(e2e):
    """With --objects both sides prompt the same boxes on every frame: the 'why' must not claim dummies and skipped
    frames as a reason then."""
    args = argparse.Namespace(sam="vit_h", frames=[100, 200], precision="fp32")
    fewer = e2e.release_lines(args, {**RELEASE, "ours_prompts": 30, "release_prompts": 3000})[1]
    same = e2e.release_lines(args, {**RELEASE, "ours_prompts": 300, "release_prompts": 300})[1]
    assert "no [0,0,0,0] dummies" in fewer and "skips frames without boxes" in fewer
    assert "both sides prompt the same boxes on every frame" in same and "dummies" not in same


def test_fixed_objects_replace_the_trackers_boxes_on_every_frame():
    """--objects: the tracker runs (its frame order and look-ahead kept), its output replaced by N boxes inside the
    frame, the same boxes for the release side's trajectories."""
    from doubles import ReplayTracker

    from benchmarks._objects import FixedObjects, object_boxes
    from uvosam.pipeline_args import check_tracks

    frames = [np.zeros((47, 63, 3), np.uint8)] * 6
    empty = np.full((6, 1, 4), np.nan, np.float32)
    tracker = FixedObjects(ReplayTracker(empty, lookahead=2), 3)
    assert tracker.lookahead == 2 and tracker.describe()["fixed_objects"] == 3
    session = tracker.new_video(height=47, width=63)
    decided = [t for f in frames for t in session.push(f)] + session.finish()
    assert [t.frame_index for t in decided] == list(range(6))
    for t in decided:
        check_tracks(tracker, t)
        assert t.track_ids.tolist() == [0, 1, 2]
        np.testing.assert_array_equal(t.boxes_xyxy, object_boxes(3, t.frame_index, 47, 63))
        assert (t.boxes_xyxy[:, :2] >= 0).all() and (t.boxes_xyxy[:, 2] <= 63).all()
        assert (t.boxes_xyxy[:, 3] <= 47).all() and (t.boxes_xyxy[:, 2] > t.boxes_xyxy[:, 0]).all()
    trajectories = session.trajectories()
    assert len(trajectories) == 3
    np.testing.assert_array_equal(trajectories[1].boxes_xyxy[4], decided[4].boxes_xyxy[1])
    with pytest.raises(ValueError, match="count >= 1"):
        FixedObjects(tracker, 0)


def test_each_length_says_how_often_sams_encoder_ran(e2e):
    """A random-weight tracker's few boxes made SAM run on 2 frames of 100 unseen in the first GPU report."""
    run = {
        "frames": 100,
        "seconds": 4.0,
        "first_chunk_s": 1.0,
        "peak_rss_mb": 900.0,
        "sam_encoder_calls": 2,
    }
    assert "SAM's image encoder ran 2 times" in e2e.run_lines(100, run)[0]


def test_a_graph_variant_runs_its_child_with_cuda_graph_and_reports_an_eager_fallback(
    e2e, monkeypatch, capsys
):
    import subprocess

    commands = []

    def fake_run(cmd, **kw):
        commands.append(cmd)
        run = {"frames": 8, "seconds": 1.0, "first_chunk_s": 0.5, "frames_at_first_chunk": 4, "stages": {},
               "sam_cuda_graph_fallback": "not a CUDA device (cpu)" if "--cuda-graph" in cmd else None}  # fmt: skip
        return subprocess.CompletedProcess(cmd, 0, stdout=json.dumps(run) + "\n", stderr="")

    monkeypatch.setattr(e2e.subprocess, "run", fake_run)
    monkeypatch.setattr(e2e, "make_video", lambda *a: None)
    assert (
        e2e.main(["--frames", "8", "8", "--variants-only", "--variants", "bf16", "bf16+graph"]) == 0
    )
    assert ["--cuda-graph" in cmd for cmd in commands] == [False, True]
    assert all("--compile" not in cmd for cmd in commands)
    out = capsys.readouterr().out
    assert "  bf16+graph     (its SAM encoder ran EAGER: not a CUDA device (cpu))" in out
    with pytest.raises(SystemExit):
        e2e.main(["--compile", "--cuda-graph"])


def test_build_segmenter_passes_cuda_graph_and_keeps_its_own_models_weights_in_bf16(e2e):
    import torch

    with pytest.warns(UserWarning, match="cuda_graph needs a CUDA device"):
        seg = e2e.build_segmenter("cpu", False, "vit_h", fast=True, cuda_graph=True)
    assert seg.config.cuda_graph and seg.cuda_graph_fallback == "not a CUDA device (cpu)"
    assert seg.model.image_encoder.blocks[0].attn.qkv.weight.dtype == torch.bfloat16
    assert e2e.build_segmenter("cpu", False, "vit_h", fast=False).matmul_weights_bf16 is False
