"""The CPU training memory estimate (``uvosam.train.memory``): what it applies to, whose processes it counts, and
``train()`` checking it before it builds the model."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from uvosam.train import loop, memory
from uvosam.train.config import TrainConfig

R50 = TrainConfig.davis_r50()
CPU = torch.device("cpu")


class Built(Exception):
    """Raised in place of building the model: the run got past the check."""


def build_raises(*args, **kwargs):
    raise Built


def test_train_checks_the_cpu_memory_before_building_the_model(tmp_path, monkeypatch):
    """Only `uvosam train` checked: a Python caller of train() was killed by the kernel without a word."""
    monkeypatch.setattr(memory, "available_memory_bytes", lambda: 8 << 30)
    monkeypatch.setattr(loop, "build_train_model", lambda *a, **k: pytest.fail("model built"))
    with pytest.raises(ValueError, match=r"needs about 58\.0 GiB .* this machine has 8\.0 GiB"):
        loop.train(R50, [[]], [1.0], tmp_path / "run", device="cpu", progress=False)
    assert not (tmp_path / "run").exists()
    monkeypatch.setattr(loop, "build_train_model", build_raises)
    with pytest.raises(Built):  # an estimate: the caller may overrule it
        loop.train(
            R50, [[]], [1.0], tmp_path / "run", device="cpu", progress=False, check_memory=False
        )


def test_the_estimate_applies_to_the_measured_architecture_only():
    """The R50's model and per-pixel costs were charged to tiny too, which was then refused on a 1 GiB machine
    with the advice to use --config tiny."""
    memory.check_cpu_memory(TrainConfig.tiny(), available=1 << 30)
    r101 = R50.replace(detector=dataclasses.replace(R50.detector, depth=101))
    assert memory.estimate_applies(R50) and not memory.estimate_applies(r101)
    assert not memory.estimate_applies(TrainConfig.tiny())


def test_the_processes_counted_are_this_machines(monkeypatch):
    """WORLD_SIZE (the whole job) was charged to one machine: 8 processes on 4 machines counted 8 models and
    every clip of the batch here."""
    monkeypatch.setenv("WORLD_SIZE", "8")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    assert memory.process_counts() == (2, 8)
    pixels = 576 * 1024  # davis_r50's largest frame
    here = 2 * memory.CPU_MODEL_BYTES + 2 * (2 * 1) * pixels * memory.CPU_BYTES_PER_PIXEL
    assert memory.cpu_iteration_bytes(R50, processes=2, world_size=8) == here
    memory.check_training_memory(R50, CPU, available=here + (1 << 30))
    monkeypatch.delenv("LOCAL_WORLD_SIZE")  # one machine assumed: all 8 here
    with pytest.raises(ValueError, match="8 clips of 2 frames in this machine's 8 processes"):
        memory.check_training_memory(R50, CPU, available=here + (1 << 30))


def test_a_resumed_run_with_nothing_left_and_a_gpu_are_not_checked():
    with pytest.raises(
        ValueError, match=r"has 1\.5 GiB available"
    ):  # one decimal: it said "1 GiB" for both
        memory.check_training_memory(R50, CPU, start_iter=R50.max_iter - 1, available=1536 << 20)
    memory.check_training_memory(R50, CPU, start_iter=R50.max_iter, available=1 << 30)
    memory.check_training_memory(R50, torch.device("cuda"), available=1 << 30)
