"""What a training iteration needs on the CPU, so that a run that cannot fit is refused before it starts (the kernel's
out-of-memory killer ends it without a message, and nothing is left in ``--out``).

Measured on this project's CPU machine (torch 2.14, fp32, the pure-PyTorch deformable attention the CPU runs; one
``_train_step`` of the ``davis_r50`` architecture on 480x854 frames, 2026-11-29), above the 0.9 GB the built model
and its optimiser hold: 3.5 GB for one clip (two frames) at 392x697, 6.9 GB for one clip at 576x1024, 6.9 GB for two
clips at 392x697. The memory grows with the number of frames in a batch (``clips_per_batch`` clips of two frames,
key and reference: a clip always has two) and with their size: 6.1-6.8 KB for every pixel of every frame.
``TrainConfig.davis_r50()`` (8 clips, shortest side up to 640, longest up to 1024) then needs about 58 GiB at its
largest frame size; the whole run was killed at 23 GB on a 23 GB machine.

The estimate is the measured architecture's only (``DetectorConfig()``'s defaults, the release's R50: same backbone
and transformer sizes, ``estimate_applies``); any other (``DetectorConfig.tiny()``, an R101 in a YAML) is not checked,
since its costs were not measured and scaling them would be a guess. ``uvosam.train.loop.train`` checks
(``check_training_memory``) before it builds the model or reads a clip; ``uvosam train`` also before it reads the
datasets. It is an estimate: ``train(check_memory=False)`` / ``--no-memory-check`` skip it.
"""

from __future__ import annotations

import os

import torch

from uvosam.errors import InputError
from uvosam.tracker.config import DetectorConfig
from uvosam.train import TRAIN_README
from uvosam.train.config import TrainConfig

CPU_BYTES_PER_PIXEL = 6_500
"""Memory of one CPU training iteration per pixel of every frame in the batch (measured: module docstring)."""
CPU_MODEL_BYTES = 900 << 20
"""Memory of the built R50 model with its AdamW state, per process."""
ASPECT = 16 / 9
"""The frame shape the estimate assumes (DAVIS' 854x480 and most YouTube-VIS videos)."""
MEASURED_FIELDS = (
    "depth",
    "stem_out_channels",
    "res2_out_channels",
    "width_per_group",
    "num_groups",
    "stride_in_1x1",
    "res5_dilation",
    "hidden_dim",
    "nheads",
    "dim_feedforward",
    "enc_layers",
    "dec_layers",
    "enc_n_points",
    "dec_n_points",
    "num_feature_levels",
    "num_queries",
)
"""The ``DetectorConfig`` fields that size the model and its activations: the estimate holds where all of them are
``DetectorConfig()``'s (the architecture measured); ``num_classes``, normalisation and test sizes do not matter."""


def estimate_applies(cfg: TrainConfig) -> bool:
    """Whether ``cfg`` trains the architecture the estimate was measured on (``MEASURED_FIELDS``)."""
    measured = DetectorConfig()
    return all(getattr(cfg.detector, name) == getattr(measured, name) for name in MEASURED_FIELDS)


def process_counts() -> tuple[int, int]:
    """(training processes on this machine, which share its memory; in the whole job): ``LOCAL_WORLD_SIZE`` (set
    by torchrun), else ``WORLD_SIZE`` (one machine assumed); ``WORLD_SIZE``; 1 and 1 without torchrun."""
    world = max(int(os.environ.get("WORLD_SIZE") or "1"), 1)
    local = max(int(os.environ.get("LOCAL_WORLD_SIZE") or world), 1)
    return local, world


def largest_frame_hw(cfg: TrainConfig) -> tuple[int, int]:
    """The largest (height, width) a 16:9 frame is resized to for training: the largest shortest side of
    ``min_size_train``, the longest side capped at ``max_size_train`` (as ``uvosam.train.clips`` resizes)."""
    short = max(cfg.min_size_train)
    long = short * ASPECT
    if long > cfg.max_size_train:
        short, long = short * cfg.max_size_train / long, cfg.max_size_train
    return round(short), round(long)


def cpu_iteration_bytes(
    cfg: TrainConfig, *, processes: int = 1, world_size: int | None = None
) -> int:
    """About how much memory one training iteration of ``cfg`` needs on the CPU at its largest frame size, over
    the ``processes`` training processes of this machine, of ``world_size`` in the job (default: all of them here).
    Each process holds its own model and takes ``clips_per_batch / world_size`` clips. For the measured
    architecture only (``estimate_applies``)."""
    height, width = largest_frame_hw(cfg)
    frames = 2 * _clips_here(cfg, processes, world_size)
    return processes * CPU_MODEL_BYTES + frames * height * width * CPU_BYTES_PER_PIXEL


def _clips_here(cfg: TrainConfig, processes: int, world_size: int | None) -> int:
    """The clips of one iteration that this machine's ``processes`` take, of ``world_size`` (default: all here)."""
    return (cfg.clips_per_batch // (world_size or processes)) * processes


def available_memory_bytes() -> int | None:
    """The memory this machine can still give (``MemAvailable`` of ``/proc/meminfo``), else its free physical
    memory (``sysconf``), else ``None`` (not known)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def check_training_memory(
    cfg: TrainConfig, device: torch.device, *, start_iter: int = 0, available: int | None = None
) -> None:
    """``train``'s check: on the CPU, with iterations left to train (a resumed run that has reached
    ``cfg.max_iter`` is not refused), ``check_cpu_memory`` for this machine's processes
    (``process_counts``). Instant; call it before the model is built or data read.

    Raises:
        ValueError: one iteration needs more memory than is available (``check_cpu_memory``).
    """
    if device.type != "cpu" or start_iter >= cfg.max_iter:
        return
    processes, world_size = process_counts()
    check_cpu_memory(cfg, processes=processes, world_size=world_size, available=available)


def check_cpu_memory(
    cfg: TrainConfig,
    *,
    processes: int = 1,
    world_size: int | None = None,
    available: int | None = None,
) -> None:
    """Raise ``ValueError`` when one iteration of ``cfg`` on the CPU, in this machine's ``processes`` of the job's
    ``world_size`` (``cpu_iteration_bytes``), needs more memory than the machine has available (``available``;
    ``None``: ``available_memory_bytes()``); a machine that has it trains (slowly). Only for the measured
    architecture (``estimate_applies``): any other passes unchecked.

    The message says what the iteration would need and what drives it, and how to go on: a GPU, ``--config tiny``
    for a smoke test, fewer clips / smaller frames in a training YAML, or skipping this estimate.
    """
    if not estimate_applies(cfg):
        return
    available = available if available is not None else available_memory_bytes()
    need = cpu_iteration_bytes(cfg, processes=processes, world_size=world_size)
    if available is None or need <= available:
        return
    height, width = largest_frame_hw(cfg)
    clips = _clips_here(cfg, processes, world_size)
    here = f" in this machine's {processes} processes" if processes > 1 else ""
    raise InputError(
        f"this training config needs about {need / 2**30:.1f} GiB of memory for one iteration on the CPU and "
        f"this machine has {available / 2**30:.1f} GiB available, so the run would be killed: "
        f"{clips} clips of 2 frames{here}, up to {height}x{width} pixels each, take about "
        f"{CPU_BYTES_PER_PIXEL / 1000:.1f} KB a pixel on the CPU (fp32; measured for the R50 architecture). "
        "Train on a GPU (--device cuda; torchrun for several), run `--config tiny` for a smoke test, or lower "
        f"clips_per_batch and min_size_train / max_size_train in a training YAML (see {TRAIN_README}); "
        "this is an estimate: --no-memory-check (train(check_memory=False)) skips it"
    )
