"""benchmarks/e2e.py helpers: variant names and the fps after the first chunk (the script itself is run by hand)."""

import argparse
import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "e2e.py"


@pytest.fixture(scope="module")
def e2e():
    spec = importlib.util.spec_from_file_location("e2e_benchmark", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_variants_parse_and_name(e2e):
    assert e2e.parse_variant("tf32") == ("tf32", False)
    assert e2e.parse_variant("bf16+compile") == ("bf16", True)
    assert [e2e.variant_name(*e2e.parse_variant(v)) for v in e2e.DEFAULT_VARIANTS] == list(e2e.DEFAULT_VARIANTS)
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
    run = {"frames": 100, "seconds": 30.0, "first_sam_call_s": 20.5, "sam_encoder_s": 25.0, "sam_encoder_calls": 10}
    assert e2e.first_call_overhead_s(run) == pytest.approx(20.0)  # others: 4.5 s / 9 calls
    assert e2e.steady_fps(run) == pytest.approx(10.0)
    assert e2e.steady_fps({**run, "sam_encoder_calls": 1}) is None
    row = e2e.variant_row("bf16+compile", {**run, "first_chunk_s": None})
    assert row.split() == ["bf16+compile", "-", "3.33", "-", "-", "20.50", "10.00", "10", "-"]
    assert e2e.variant_row("fp32", {**run, "first_chunk_s": None, "warm_up_s": 1.25}).split()[1] == "1.25"


def test_stage_totals_give_the_encoder_columns_and_the_stage_line(e2e):
    stages = {name: [0.0, 0, None] for name in e2e.STAGES}
    stages["sam_encode"] = [25.0, 10, 20.5]
    stages["detect"] = [0.5, 10, 0.2]
    assert e2e.encoder_stats(stages) == {"sam_encoder_s": 25.0, "sam_encoder_calls": 10, "first_sam_call_s": 20.5}
    line = e2e.stage_line({"frames": 100, "stages": stages})
    assert line.startswith("detect 5.0, sam_encode 250.0, sam_decode 0.0")
    assert e2e.stage_line({"frames": 0, "stages": stages}) is None
