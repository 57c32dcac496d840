"""Plain-PyTorch training loop of the IDOL tracker: one process or many (``torchrun``, DDP).

``train(cfg, sources, ratios, out_dir)`` runs the release's schedule (AdamW, step lr, full-model
gradient clipping, AMP on CUDA) on two-frame clips (``uvosam.train.clips``) with the IDOL losses
(``uvosam.train.losses``). With ``WORLD_SIZE > 1`` in the environment (``torchrun``) it joins the
process group (NCCL on CUDA, gloo on CPU), wraps the model in ``DistributedDataParallel`` and gives
each process its share of every batch; only rank 0 writes checkpoints and logs.

Resuming (``resume=True``) reloads the newest checkpoint of ``out_dir``: weights, AdamW state, the
fp16 loss scale and the iteration; the lr follows from the iteration, and the clip stream and the
per-step random generator are pure functions of (seed, iteration), so the run continues exactly as
the uninterrupted one would.
"""

from __future__ import annotations

import csv
import logging
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from uvosam.atomic_files import replacing
from uvosam.cpu_quota import usable_cpus
from uvosam.devices import cuda_has_bf16
from uvosam.progress import progress_bar
from uvosam.text import count
from uvosam.tracker.checkpoint import load_idol_checkpoint
from uvosam.tracker.detector import IDOLDetector
from uvosam.tracker.preprocess import pad_and_normalize
from uvosam.train.build import build_optimizer, build_train_model, lr_factor, set_lr
from uvosam.train.checkpointing import (
    FINAL_NAME,
    checkpoint_name,
    find_last_checkpoint,
    load_training_state,
    save_checkpoint,
)
from uvosam.train.clips import Clip, ClipDataset, ClipIndexSampler, clip_targets, collate_clips
from uvosam.train.config import TrainConfig
from uvosam.train.datasets import VideoRecord
from uvosam.train.losses import HeadOutputs, idol_losses
from uvosam.train.memory import check_training_memory

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistInfo:
    """This process's place in the job (``rank`` 0 of 1 without torchrun)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0


@dataclass(frozen=True)
class TrainResult:
    """What a finished run left in ``out_dir``.

    Attributes:
        iteration: finished optimiser steps. checkpoint: the final weights (``model_final.pth``;
        None on ranks > 0). losses_csv: per-``log_period`` mean losses (rank 0). last_losses:
        weighted losses of the last step. detector: the trained model (train mode, on its device).
    """

    iteration: int
    checkpoint: Path | None
    losses_csv: Path | None
    last_losses: dict[str, float]
    detector: IDOLDetector


def init_distributed() -> DistInfo:
    """Join the process group when launched by ``torchrun`` with ``WORLD_SIZE > 1``."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend=backend)
    return DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def default_device(info: DistInfo) -> torch.device:
    """``cuda:<local_rank>`` when CUDA is available, else the CPU."""
    if torch.cuda.is_available():
        torch.cuda.set_device(info.local_rank)
        return torch.device("cuda", info.local_rank)
    return torch.device("cpu")


def amp_dtype(mode: str, device: torch.device) -> torch.dtype | None:
    """Autocast dtype for ``TrainConfig.amp`` on ``device`` (None = full fp32, always on the
    CPU)."""
    if device.type != "cuda" or mode == "off":
        return None
    if mode == "auto":
        return torch.bfloat16 if cuda_has_bf16(device) else torch.float16
    return torch.bfloat16 if mode == "bf16" else torch.float16


class TrainForward(nn.Module):
    """Makes ``IDOLDetector.forward_train`` the ``forward`` (what DDP hooks into)."""

    def __init__(self, detector: IDOLDetector) -> None:
        super().__init__()
        self.detector = detector

    def forward(self, images: torch.Tensor, pad_mask: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.detector.forward_train(images, pad_mask)
        return out.logits, out.boxes_cxcywh_norm, out.embeddings


def clip_batch(
    clips: Sequence[Clip], cfg: TrainConfig, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """Frames ``[key_0, ref_0, key_1, ref_1, ...]`` normalised and zero-padded: (2N, 3, Hp, Wp)
    float32 and the (2N, Hp, Wp) bool pad mask."""
    frames = [image for clip in clips for image in clip.images]
    return pad_and_normalize(frames, cfg.detector, device=device)


def step_losses(
    outputs: tuple[torch.Tensor, ...],
    clips: Sequence[Clip],
    cfg: TrainConfig,
    generator: torch.Generator,
) -> dict[str, torch.Tensor]:
    """Split the interleaved outputs into key / reference frames and compute the weighted losses."""
    logits, boxes, embeds = (t.float() for t in outputs)
    key = HeadOutputs(logits[:, 0::2], boxes[:, 0::2], embeds[0::2])
    ref = HeadOutputs(logits[:, 1::2], boxes[:, 1::2], embeds[1::2])
    device = logits.device
    key_t = [t.to(device) for t in clip_targets(clips, 0)]
    ref_t = [t.to(device) for t in clip_targets(clips, 1)]
    return idol_losses(key, ref, key_t, ref_t, cfg, generator)


def step_generator(seed: int, rank: int, iteration: int) -> torch.Generator:
    """CPU generator for the step's random choices, a pure function of (seed, rank, iteration)."""
    state = np.random.SeedSequence([seed, rank, iteration]).generate_state(1, np.uint64)[0]
    return torch.Generator().manual_seed(int(state))


def loader_workers(requested: int) -> int:
    """``requested`` data-loading workers, at most the CPUs this process can keep busy (``cpu_quota.usable_cpus``:
    its cores, within the container's CPU quota): more only compete with the training for them (torch warns of a
    slow or frozen loader beyond the cores; beyond a quota the kernel throttles them in turn)."""
    cpus = usable_cpus()
    if requested > cpus:
        logger.info(
            "data-loading workers: %d (%d asked for; this process may use %s, its cores within the "
            "container's CPU quota)",
            cpus,
            requested,
            count(cpus, "CPU"),
        )
    return min(requested, cpus)


def clip_loader(
    sources: Sequence[Sequence[VideoRecord]],
    ratios: Sequence[float],
    cfg: TrainConfig,
    info: DistInfo,
    start_iter: int,
) -> Iterator[list[Clip]]:
    """Infinite iterator of this process's per-iteration clip lists, from ``start_iter`` on."""
    dataset = ClipDataset(sources, ratios, cfg)
    sampler = ClipIndexSampler(
        cfg.clips_per_batch, rank=info.rank, world_size=info.world_size, start_iter=start_iter
    )
    workers = loader_workers(cfg.num_workers)
    loader = DataLoader(
        dataset,
        batch_size=sampler.per_rank,
        sampler=sampler,
        num_workers=workers,
        collate_fn=collate_clips,
        persistent_workers=workers > 0,
    )
    return iter(loader)


class LossLog:
    """Rank-0 CSV of mean losses per ``log_period`` (columns: iteration, lr, total, each loss)."""

    def __init__(self, path: Path | None, period: int) -> None:
        self.path, self.period = path, period
        self.sums: dict[str, float] = {}
        self.count = 0
        self.header_written = path is not None and path.is_file() and path.stat().st_size > 0

    def keep_until(self, iteration: int) -> None:
        """Drop the rows of iterations after ``iteration`` (a resumed run's checkpoint): a run that died after
        its last checkpoint logged iterations it redoes, and a new run (0) keeps nothing of an old one."""
        if self.path is None or not self.path.is_file():
            return
        with self.path.open(newline="") as f:
            reader = csv.DictReader(f)
            fields, rows = reader.fieldnames, list(reader)
        kept = [row for row in rows if int(row["iteration"]) <= iteration]
        if len(kept) == len(rows):
            return
        # a crash meanwhile leaves the whole old log, not a truncated one
        with replacing(self.path) as tmp, tmp.open("w", newline="") as f:
            if kept and fields:
                writer = csv.DictWriter(f, fieldnames=fields)
                writer.writeheader()
                writer.writerows(kept)
        self.header_written = bool(kept)

    def add(self, iteration: int, lr: float, losses: dict[str, float]) -> None:
        for name, value in losses.items():
            self.sums[name] = self.sums.get(name, 0.0) + value
        self.count += 1
        if self.path is not None and (iteration + 1) % self.period == 0:
            self.flush(iteration, lr)

    def flush(self, iteration: int, lr: float) -> None:
        if not self.count or self.path is None:
            return
        means = {k: v / self.count for k, v in self.sums.items()}
        row = {"iteration": iteration + 1, "lr": lr, "total_loss": sum(means.values()), **means}
        with self.path.open("a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(row))
            if not self.header_written:
                writer.writeheader()
                self.header_written = True
            writer.writerow(row)
        self.sums, self.count = {}, 0


@dataclass
class _Run:
    """Mutable state of one training run (model, optimiser, where it stands)."""

    cfg: TrainConfig
    info: DistInfo
    device: torch.device
    detector: IDOLDetector
    module: nn.Module
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler | None
    dtype: torch.dtype | None
    out_dir: Path
    start_iter: int = 0

    def save(self, name: str, iteration: int) -> Path | None:
        if self.info.rank != 0:
            return None
        scheduler = {
            "name": "WarmupMultiStepLR",
            "last_iter": iteration - 1,
            "milestones": list(self.cfg.lr_steps),
            "gamma": self.cfg.lr_gamma,
            "lr_factor": lr_factor(max(iteration - 1, 0), self.cfg),
        }
        scaler = None if self.scaler is None else self.scaler.state_dict()
        return save_checkpoint(
            self.out_dir,
            name,
            model_state=self.detector.state_dict(),
            optimizer=self.optimizer,
            scheduler=scheduler,
            iteration=iteration,
            train_config=self.cfg.to_dict(),
            grad_scaler=scaler,
        )


def _setup(
    cfg: TrainConfig,
    out_dir: Path,
    resume: bool,
    device: torch.device | None,
    *,
    check_memory: bool = True,
) -> _Run:
    info = init_distributed()
    device = device or default_device(info)
    torch.manual_seed(cfg.seed)
    last = find_last_checkpoint(out_dir) if resume else None
    if resume and last is None:
        logger.warning("--resume: no checkpoint in %s; starting a new run", out_dir)
    state = load_training_state(last) if last is not None else None
    start = int(state["iteration"]) if state is not None else 0
    if check_memory:  # before the model is built or a clip read
        check_training_memory(cfg, device, start_iter=start)
    detector = build_train_model(cfg, init="none" if last else None).to(device)
    optimizer = build_optimizer(detector, cfg)
    dtype = amp_dtype(cfg.amp, device)
    scaler = torch.amp.GradScaler(device.type) if dtype == torch.float16 else None
    if state is not None:
        load_idol_checkpoint(detector, state["model"], source=last)
        optimizer.load_state_dict(state["optimizer"])
        if scaler is not None and state.get("grad_scaler"):
            scaler.load_state_dict(state["grad_scaler"])
        logger.info("resumed from %s at iteration %d", last, start)
    module: nn.Module = TrainForward(detector)
    if info.world_size > 1:
        ids = [info.local_rank] if device.type == "cuda" else None
        module = DistributedDataParallel(module, device_ids=ids)
    return _Run(cfg, info, device, detector, module, optimizer, scaler, dtype, out_dir, start)


def _train_step(run: _Run, clips: list[Clip], iteration: int) -> dict[str, float]:
    cfg = run.cfg
    images, pad_mask = clip_batch(clips, cfg, run.device)
    with torch.autocast(
        run.device.type, dtype=run.dtype or torch.float32, enabled=run.dtype is not None
    ):
        outputs = run.module(images, pad_mask)
    losses = step_losses(outputs, clips, cfg, step_generator(cfg.seed, run.info.rank, iteration))
    total = sum(losses.values())
    run.optimizer.zero_grad(set_to_none=True)
    if run.scaler is not None:
        run.scaler.scale(total).backward()
        run.scaler.unscale_(run.optimizer)
    else:
        total.backward()
    if cfg.clip_grad_norm > 0:
        params = [p for g in run.optimizer.param_groups for p in g["params"]]
        torch.nn.utils.clip_grad_norm_(params, cfg.clip_grad_norm)
    if run.scaler is not None:
        run.scaler.step(run.optimizer)
        run.scaler.update()
    else:
        run.optimizer.step()
    return {k: float(v.detach()) for k, v in losses.items()}


def train(
    cfg: TrainConfig,
    sources: Sequence[Sequence[VideoRecord]],
    ratios: Sequence[float],
    out_dir: str | Path,
    *,
    resume: bool = False,
    device: torch.device | str | None = None,
    progress: bool = True,
    check_memory: bool = True,
) -> TrainResult:
    """Train for ``cfg.max_iter`` iterations (module docstring).

    Args:
        sources: one list of videos per dataset; ratios: their mixing weights.
        out_dir: checkpoints (``model_XXXXXXX.pth`` every ``checkpoint_period``,
            ``model_final.pth``) and ``losses.csv`` (rank 0 only).
        resume: continue from the newest checkpoint in ``out_dir`` (if any).
        device: default ``cuda:<LOCAL_RANK>`` if available, else the CPU.
        progress: show the progress on rank 0 (``uvosam.progress``: a bar on a terminal, else a line every 30 s).
        check_memory: on the CPU, refuse (``ValueError``) a config whose iteration needs more memory than the
            machine has, before the model is built or a clip read (``uvosam.train.memory``: an estimate, for the
            release's R50 architecture only; ``False`` skips it).

    Raises:
        ValueError: ``check_memory`` and the iteration does not fit (the message says what to change).
    """
    out_dir = Path(out_dir)
    device = torch.device(device) if device else None
    run = _setup(cfg, out_dir, resume, device, check_memory=check_memory)
    is_main = run.info.rank == 0
    if is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
    log = LossLog(out_dir / "losses.csv" if is_main else None, cfg.log_period)
    log.keep_until(run.start_iter)
    batches = clip_loader(sources, ratios, cfg, run.info, run.start_iter)
    bar = progress_bar(
        range(run.start_iter, cfg.max_iter),
        desc="train",
        unit="iteration",
        initial=run.start_iter,
        total=cfg.max_iter,
        disable=not (progress and is_main),
    )
    losses: dict[str, float] = {}
    lr = set_lr(run.optimizer, run.start_iter, cfg)
    started = time.perf_counter()
    for iteration in bar:
        lr = set_lr(run.optimizer, iteration, cfg)
        losses = _train_step(run, next(batches), iteration)
        log.add(iteration, lr, losses)
        bar.set_postfix(loss=f"{sum(losses.values()):.3f}", lr=f"{lr:.2e}")
        if (iteration + 1) % cfg.checkpoint_period == 0 and iteration + 1 < cfg.max_iter:
            run.save(checkpoint_name(iteration), iteration + 1)
    log.flush(cfg.max_iter - 1, lr)
    final = run.save(FINAL_NAME, cfg.max_iter) if run.start_iter < cfg.max_iter else None
    logger.info(
        "trained %d iterations in %.1f s",
        cfg.max_iter - run.start_iter,
        time.perf_counter() - started,
    )
    return TrainResult(cfg.max_iter, final, log.path, losses, run.detector)
