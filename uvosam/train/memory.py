"""What a training iteration needs on the CPU, so that a run that cannot fit is refused before it starts (the kernel's
out-of-memory killer ends it without a message, and nothing is left in ``--out``).

Measured on this project's CPU machine (torch 2.14, fp32, the pure-PyTorch deformable attention the CPU runs; one
``_train_step`` of the ``davis_r50`` architecture on 480x854 frames, 2026-11-29), above the 0.9 GB the built model
and its optimiser hold: 3.5 GB for one clip (two frames) at 392x697, 6.9 GB for one clip at 576x1024, 6.9 GB for two
clips at 392x697. The memory grows with the number of frames in a batch (``clips_per_batch`` clips of two frames,
key and reference: a clip always has two) and with their size: 6.1-6.8 KB for every pixel of every frame.
``TrainConfig.davis_r50()`` (8 clips, shortest side up to 640, longest up to 1024) then needs about 58 GiB at its
largest frame size; the whole run was killed at 23 GB on a 23 GB machine. The estimate is the R50 architecture's:
smaller ones (``DetectorConfig.tiny()``) need far less than it says.
"""

from __future__ import annotations

import os

from uvosam.train.config import TrainConfig

CPU_BYTES_PER_PIXEL = 6_500
"""Memory of one CPU training iteration per pixel of every frame in the batch (measured: module docstring)."""
CPU_MODEL_BYTES = 900 << 20
"""Memory of the built R50 model with its AdamW state, per process."""
ASPECT = 16 / 9
"""The frame shape the estimate assumes (DAVIS' 854x480 and most YouTube-VIS videos)."""


def largest_frame_hw(cfg: TrainConfig) -> tuple[int, int]:
    """The largest (height, width) a 16:9 frame is resized to for training: the largest shortest side of
    ``min_size_train``, the longest side capped at ``max_size_train`` (as ``uvosam.train.clips`` resizes)."""
    short = max(cfg.min_size_train)
    long = short * ASPECT
    if long > cfg.max_size_train:
        short, long = short * cfg.max_size_train / long, cfg.max_size_train
    return round(short), round(long)


def cpu_iteration_bytes(cfg: TrainConfig, *, world_size: int = 1) -> int:
    """About how much memory one training iteration of ``cfg`` needs on the CPU at its largest frame size, over
    all ``world_size`` processes of the machine (they share ``clips_per_batch``; each holds its own model)."""
    height, width = largest_frame_hw(cfg)
    frames = 2 * cfg.clips_per_batch
    return world_size * CPU_MODEL_BYTES + frames * height * width * CPU_BYTES_PER_PIXEL


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


def check_cpu_memory(
    cfg: TrainConfig, *, world_size: int = 1, available: int | None = None
) -> None:
    """Raise ``ValueError`` when one iteration of ``cfg`` on the CPU needs more memory than the machine has
    available (``available``; ``None``: ``available_memory_bytes()``); a machine that has it trains (slowly).

    The message says what the iteration would need and what drives it, and how to go on: a GPU, ``--config tiny``
    for a smoke test, or fewer clips / smaller frames in a training YAML.
    """
    available = available if available is not None else available_memory_bytes()
    need = cpu_iteration_bytes(cfg, world_size=world_size)
    if available is None or need <= available:
        return
    height, width = largest_frame_hw(cfg)
    raise ValueError(
        f"this training config needs about {need / 2**30:.0f} GiB of memory for one iteration on the CPU and "
        f"this machine has {available / 2**30:.0f} GiB available, so the run would be killed: "
        f"{cfg.clips_per_batch} clips of 2 frames, up to {height}x{width} pixels each, take about "
        f"{CPU_BYTES_PER_PIXEL / 1000:.1f} KB a pixel on the CPU (fp32). Train on a GPU (--device cuda; "
        "torchrun for several), run `--config tiny` for a smoke test, or lower clips_per_batch and "
        "min_size_train / max_size_train in a training YAML (see uvosam/train/README.md)"
    )
