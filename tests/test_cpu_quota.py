"""A container's CPU quota (cgroup v2 ``cpu.max``, v1 ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us``; temp files stand
in for /sys/fs/cgroup) and torch's threads capped to it at the app's and the command line's start: PyTorch counts
the cores it sees, so a container limited to 2 CPUs on a many-core host ran a thread per core, throttled."""

from __future__ import annotations

import logging
import os

import pytest
import torch

import uvosam_cli
from uvosam import cpu_quota
from uvosam.cpu_quota import cpu_quota as quota_of
from uvosam.cpu_quota import limit_threads, quota_summary, usable_cpus


@pytest.fixture
def threads():
    """Set torch's thread count for a test; the suite's count comes back after it."""
    before = torch.get_num_threads()
    yield torch.set_num_threads
    torch.set_num_threads(before)


def _v2(root, text):
    (root / "cpu.max").write_text(text)
    return root


def _v1(root, quota, period="100000", folder="cpu"):
    (root / folder).mkdir(parents=True, exist_ok=True)
    (root / folder / "cpu.cfs_quota_us").write_text(quota)
    (root / folder / "cpu.cfs_period_us").write_text(period)
    return root


@pytest.mark.parametrize(
    ("text", "cpus"),
    [
        ("max 100000\n", None),
        ("200000 100000\n", 2.0),
        ("150000 100000", 1.5),
        ("50000 100000", 0.5),
        ("", None),
        ("200000", None),
        ("banana 100000", None),
        ("0 100000", None),
        ("-1 100000", None),
        ("200000 0", None),
        ("200000 100000 7", None),
    ],
)
def test_cgroup_v2_cpu_max_gives_the_quota_in_cpus(tmp_path, text, cpus):
    assert quota_of(_v2(tmp_path, text)) == cpus


def test_cgroup_v1_gives_the_quota_and_v2_is_read_first(tmp_path):
    assert quota_of(tmp_path) is None  # no cgroup files
    assert quota_of(tmp_path / "missing") is None
    _v1(tmp_path, "-1")
    assert quota_of(tmp_path) is None  # -1: no quota
    _v1(tmp_path, "300000\n", "100000\n")
    assert quota_of(tmp_path) == 3.0
    _v2(tmp_path, "max 100000")
    assert quota_of(tmp_path) is None  # a v2 system's own answer
    _v2(tmp_path, "100000 100000")
    assert quota_of(tmp_path) == 1.0
    combined = _v1(tmp_path / "docker", "250000", folder="cpu,cpuacct")
    assert quota_of(combined) == 2.5
    at_root = _v1(tmp_path / "flat", "100000", "50000", folder=".")
    assert quota_of(at_root) == 2.0


def test_odd_cgroup_files_read_as_no_quota(tmp_path):
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("200000")  # no period
    assert quota_of(tmp_path) is None
    (tmp_path / "cpu" / "cpu.cfs_period_us").write_bytes(b"\xff\xfe")
    assert quota_of(tmp_path) is None
    (tmp_path / "cpu.max").mkdir()  # not a file: unreadable, and v1 is read
    (tmp_path / "cpu" / "cpu.cfs_period_us").write_text("100000")
    assert quota_of(tmp_path) == 2.0


def test_threads_are_capped_at_the_quota_rounded_up_unless_the_user_set_a_count(
    tmp_path, threads, caplog
):
    caplog.set_level(logging.DEBUG, logger="uvosam.cpu_quota")
    threads(4)
    root = _v2(tmp_path, "150000 100000")
    assert (
        limit_threads({}, root) == "a CPU quota of 1.5 CPUs: torch's threads capped at 2 (from 4)"
    )
    assert torch.get_num_threads() == 2
    assert [(r.levelname, r.message) for r in caplog.records] == [
        ("INFO", "a CPU quota of 1.5 CPUs: torch's threads capped at 2 (from 4)")
    ]
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        threads(4)
        assert limit_threads({name: "4"}, root) == (
            f"a CPU quota of 1.5 CPUs: torch's 4 threads kept ({name} set)"
        )
        assert torch.get_num_threads() == 4
    assert [r.levelname for r in caplog.records] == [
        "INFO",
        "DEBUG",
        "DEBUG",
    ]  # only a cap is told at INFO
    threads(4)
    assert limit_threads({"OMP_NUM_THREADS": ""}, _v2(tmp_path, "50000 100000")).endswith(
        "capped at 1 (from 4)"
    )
    threads(2)
    assert (
        limit_threads({}, _v2(tmp_path, "800000 100000"))
        == "a CPU quota of 8 CPUs: torch uses 2 threads"
    )
    assert torch.get_num_threads() == 2
    caplog.clear()
    assert limit_threads({}, _v2(tmp_path, "max 100000")) == "no CPU quota: torch uses 2 threads"
    assert torch.get_num_threads() == 2 and caplog.records[0].levelname == "DEBUG"


def test_uvosam_info_shows_the_quota_and_the_command_line_caps_threads_at_start(
    tmp_path, monkeypatch, capsys, threads
):
    assert quota_summary(tmp_path) == []
    assert quota_summary(_v2(tmp_path, "200000 100000")) == [
        f"cpu quota: 2 CPUs (the container's cgroup); torch uses {torch.get_num_threads()} threads"
    ]
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("MKL_NUM_THREADS", raising=False)
    monkeypatch.setenv("UVOSAM_CHECKPOINTS", str(tmp_path))
    monkeypatch.setattr(cpu_quota, "cpu_quota", lambda root=None: 1.0)
    threads(2)
    assert uvosam_cli.main(["info"]) == 0
    assert torch.get_num_threads() == 1
    assert (
        "\ncpu quota: 1 CPU (the container's cgroup); torch uses 1 thread\n"
        in capsys.readouterr().out
    )


def test_the_app_caps_threads_at_start(tmp_path, monkeypatch, threads):
    """``python app.py`` caps them before any model loads (here ``main`` stops right after, at its work folder)."""
    import app as app_module

    class Stop(Exception):
        pass

    def stop(*args, **kwargs):
        raise Stop

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("MKL_NUM_THREADS", raising=False)
    monkeypatch.setenv("UVOSAM_WORK_DIR", str(tmp_path / "work"))
    monkeypatch.setattr(cpu_quota, "cpu_quota", lambda root=None: 1.0)
    monkeypatch.setattr(app_module, "process_dir", stop)
    threads(2)
    with pytest.raises(Stop):
        app_module.main()
    assert torch.get_num_threads() == 1


@pytest.fixture
def machine(monkeypatch):
    """``machine(cores, quota)``: this process may run on ``cores`` cores (its affinity mask and ``os.cpu_count``)
    under a cgroup CPU quota of ``quota`` CPUs (None: no quota)."""

    def fake(cores, quota):
        monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(cores)), raising=False)
        monkeypatch.setattr(os, "cpu_count", lambda: cores)
        monkeypatch.setattr(cpu_quota, "cpu_quota", lambda root=None: quota)

    return fake


def test_usable_cpus_are_the_cores_within_the_quota_rounded_up(tmp_path, monkeypatch, machine):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(64)), raising=False)
    assert usable_cpus(tmp_path) == 64  # no cgroup files: the cores
    assert usable_cpus(_v2(tmp_path, "200000 100000")) == 2
    assert usable_cpus(_v2(tmp_path, "150000 100000")) == 2
    assert usable_cpus(_v2(tmp_path, "max 100000")) == 64
    assert usable_cpus(_v1(tmp_path / "v1", "50000")) == 1
    for cores, quota, cpus in [(8, None, 8), (8, 0.5, 1), (8, 3.0, 3), (2, 16.0, 2), (1, None, 1)]:
        machine(cores, quota)
        assert usable_cpus() == cpus, (cores, quota)


def test_training_data_loading_workers_stay_within_the_quota(machine, caplog):
    """A 2-CPU container on a 64-core host started the 4 workers asked for (the cap looked at the cores only)."""
    from uvosam.train.loop import loader_workers

    caplog.set_level(logging.INFO, logger="uvosam.train.loop")
    machine(64, 2.0)
    assert loader_workers(4) == 2
    told = "data-loading workers: 2 (4 asked for; this process may use 2 CPUs, its cores within the container's"
    assert caplog.messages == [f"{told} CPU quota)"]
    assert loader_workers(2) == 2 and loader_workers(0) == 0 and len(caplog.messages) == 1
    machine(64, 0.5)
    assert loader_workers(4) == 1 and caplog.messages[-1].endswith(
        "may use 1 CPU, its cores within the container's CPU quota)"
    )
    machine(64, None)
    assert loader_workers(4) == 4 and len(caplog.messages) == 2


def test_export_write_threads_stay_within_the_quota_unless_the_user_gave_a_number(
    tmp_path, monkeypatch, machine
):
    """``ExportOptions.write_threads=None`` started min(4, os.cpu_count()) threads: 4 in a 1-CPU container."""
    from uvosam import export
    from uvosam.export_types import ExportOptions

    started = []

    class Recorded(export.BackgroundWrites):
        def __init__(self, workers):
            started.append(workers)
            super().__init__(workers)

    monkeypatch.setattr(export, "BackgroundWrites", Recorded)

    def threads(options=ExportOptions()):
        out = tmp_path / f"out{len(started)}"
        with export.ExportWriter(
            out, video_name="v", class_names=["o"], height=4, width=5, options=options
        ):
            pass
        return started[-1]

    machine(64, 1.0)
    assert threads() == 1
    assert threads(ExportOptions(write_threads=3)) == 3  # the user's number wins
    machine(64, 2.5)
    assert threads() == 3
    machine(64, None)
    assert threads() == 4
    machine(2, None)
    assert threads() == 2
