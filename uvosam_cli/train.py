"""``uvosam train``: mask-free training of the IDOL tracker from box labels (one GPU, or many with
``torchrun``). Recipe and data layouts: ``uvosam/train/README.md``."""

from __future__ import annotations

import argparse
import dataclasses
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from uvosam.errors import InputError
from uvosam.text import count
from uvosam_cli.arguments import DEVICE_HELP, non_negative_int, positive_int
from uvosam_cli.checks import (
    check_device,
    check_output_folder,
    check_tracker_weights,
    not_a_file,
)

if TYPE_CHECKING:
    from uvosam.train.config import TrainConfig
    from uvosam.train.datasets import DataSpec

logger = logging.getLogger(__name__)

PRESETS = ("davis_r50", "tiny")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train the IDOL box tracker (box labels only)",
        description="Train the IDOL tracker on two-frame clips with box-only labels. Launch with "
        "torchrun --nproc_per_node N --no-python uvosam train ... for N GPUs.",
    )
    parser.add_argument(
        "--config",
        default="davis_r50",
        help="davis_r50 (default, the release's schedule), tiny, or a YAML file",
    )
    parser.add_argument(
        "--data",
        action="append",
        required=True,
        metavar="SPEC",
        help="ytvis:JSON:IMAGE_ROOT[:ratio], davis:ROOT[:ratio] or "
        "folder:DIR[:ratio]; repeat to mix datasets",
    )
    parser.add_argument(
        "--out", type=Path, required=True, help="output folder (checkpoints, losses.csv)"
    )
    parser.add_argument(
        "--init",
        default=None,
        help="starting weights: weight name (idol-coco-r50), checkpoint path or "
        "'none' (default: the config's init)",
    )
    parser.add_argument(
        "--iters",
        type=positive_int,
        default=None,
        help="override the iteration count (default: the config's)",
    )
    parser.add_argument(
        "--resume", action="store_true", help="continue from the newest checkpoint in --out"
    )
    parser.add_argument("--device", default="auto", help=DEVICE_HELP)
    parser.add_argument(
        "--no-memory-check",
        action="store_true",
        help="on a CPU, train even where the memory estimate for one iteration (R50 architecture only) says the "
        "machine has too little",
    )
    parser.add_argument(
        "--workers",
        type=non_negative_int,
        default=None,
        help="data-loading workers per process (0: load in the training process; default: the config's, "
        "at most the CPUs this process may use)",
    )
    parser.set_defaults(func=run)


def build_config(args: argparse.Namespace) -> TrainConfig:
    """The ``TrainConfig`` the arguments describe (preset or YAML, then overrides).

    Raises:
        ValueError: ``--config`` is neither a preset nor a file, or a value is out of range.
    """
    from uvosam.train.config import TrainConfig, load_train_config

    if args.config in PRESETS:
        cfg = getattr(TrainConfig, args.config)()
    else:
        _check_config_file(args.config)
        cfg = load_train_config(args.config)
    changes = {}
    if args.init is not None:
        changes["init"] = args.init
    if args.iters is not None:
        changes["max_iter"] = args.iters
        changes["lr_steps"] = tuple(s for s in cfg.lr_steps if s < args.iters)
    if args.workers is not None:
        changes["num_workers"] = args.workers
    return dataclasses.replace(cfg, **changes)


def _check_config_file(config: str) -> None:
    path = Path(config)
    if path.is_file():
        return
    from uvosam.train import TRAIN_README

    raise InputError(
        f"--config {config} is neither a preset nor a YAML file ({not_a_file(path)}); expected one of "
        f"{', '.join(PRESETS)}, or the path of a training YAML (see {TRAIN_README})"
    )


def checked_arguments(args: argparse.Namespace) -> tuple[TrainConfig, list[DataSpec]]:
    """The ``TrainConfig`` and the parsed ``--data`` specs, once every argument is checked: the config,
    ``--device``, ``--out`` (a folder that can be written or created), each ``--data`` path and the
    starting weights; then, on the CPU, that one iteration fits in the memory available
    (``uvosam.train.memory``). All instant: nothing is read from the datasets and no model is built.

    Raises:
        ValueError, FileNotFoundError: the first bad argument, saying what was expected.
    """
    from uvosam.train.checkpointing import find_last_checkpoint
    from uvosam.train.datasets import check_data_spec, parse_data_spec

    cfg = build_config(args)
    check_device(args.device)
    check_output_folder(args.out, "--out")
    specs = [parse_data_spec(s) for s in args.data]
    for spec in specs:
        check_data_spec(spec)
    last = find_last_checkpoint(args.out) if args.resume else None
    if last is None:  # a resumed run does not use them
        source = "--init" if args.init is not None else f"--config {args.config}: init"
        check_tracker_weights(cfg.init, source, also=("none",))
    if not args.no_memory_check:  # once the arguments are right: what the machine can give
        _check_cpu_memory(cfg, args.device, last)
    return cfg, specs


def _check_cpu_memory(cfg: TrainConfig, device: str, last: Path | None) -> None:
    """On the CPU (``--device cpu``, or auto without CUDA), refuse a config whose iteration needs more memory
    than the machine has (``uvosam.train.memory``, the check ``train`` makes too): the kernel would kill it
    without a word. ``last``: the checkpoint a resumed run starts from (one that has nothing left passes)."""
    from uvosam.box_segmenter import resolve_device
    from uvosam.train.checkpointing import checkpoint_iteration
    from uvosam.train.memory import check_training_memory

    start = (checkpoint_iteration(last) or 0) if last is not None else 0
    check_training_memory(cfg, resolve_device(device), start_iter=start)


def run(args: argparse.Namespace) -> int:
    # every argument and the output folder are checked before any data is read or model built
    cfg, specs = checked_arguments(args)
    from uvosam.train.datasets import load_specs
    from uvosam.train.loop import train

    sources = load_specs(specs)
    for spec, videos in zip(specs, sources, strict=True):
        logger.info(
            "%s %s: %s, ratio %g",
            spec.kind,
            ":".join(spec.paths),
            count(len(videos), "video"),
            spec.ratio,
        )
    device = None if args.device == "auto" else args.device
    result = train(
        cfg,
        sources,
        [s.ratio for s in specs],
        args.out,
        resume=args.resume,
        device=device,
        check_memory=not args.no_memory_check,
    )
    _log_end(result.iteration, result.checkpoint, args.out)
    return 0


def _log_end(iteration: int, checkpoint: Path | None, out: Path) -> None:
    """The last line: rank 0 names the final checkpoint (its path on stdout too); the other ``torchrun`` ranks save
    nothing and say so."""
    import os

    rank = int(os.environ.get("RANK", "0"))
    if checkpoint is not None:
        logger.info("finished at iteration %d: %s", iteration, checkpoint)
        print(checkpoint)  # the result, on stdout: `ckpt=$(uvosam train ...)`
    elif rank > 0:
        logger.info(
            "rank %d finished at iteration %d (rank 0 writes the checkpoints)", rank, iteration
        )
    else:
        logger.info("nothing to train: %s had reached iteration %d already", out, iteration)
