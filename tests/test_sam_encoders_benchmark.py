"""benchmarks/sam_encoders.py helpers: round-robin timing order and the report table (the script is run by hand)."""

import pytest
from script_helpers import load_benchmark


@pytest.fixture(scope="module")
def bench():
    return load_benchmark("sam_encoders")


def test_round_robin_warms_up_each_model_once_then_alternates(bench):
    calls = []
    fns = {name: (lambda name=name: calls.append(name)) for name in ("a", "b")}
    times = bench.time_round_robin(fns, repeats=3, sync=lambda: calls.append("sync"))
    assert [c for c in calls if c != "sync"] == ["a", "b"] + ["a", "b"] * 3
    assert list(times) == ["a", "b"] and all(len(v) == 3 and min(v) >= 0 for v in times.values())


def test_report_gives_medians_and_the_speed_against_the_first_model(bench):
    rows = bench.report_rows(
        {"vit_b": [12.0, 11.0, 13.0], "sam2.1_tiny": [3.0, 2.0, 4.0]},
        {"vit_b": (93_700_000, 89_700_000), "sam2.1_tiny": (39_000_000, 27_200_000)},
    )
    assert rows[1].split() == [
        "vit_b",
        "93.7M",
        "/",
        "89.7M",
        "12.000",
        "11.000",
        "13.000",
        "1.00x",
    ]
    assert rows[2].split() == [
        "sam2.1_tiny",
        "39.0M",
        "/",
        "27.2M",
        "3.000",
        "2.000",
        "4.000",
        "4.00x",
    ]


def test_an_unknown_model_is_refused(bench):
    with pytest.raises(ValueError, match="unknown model 'vit_x'"):
        bench.build_encoder("vit_x", "cpu", fast=False)
