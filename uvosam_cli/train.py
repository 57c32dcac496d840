"""``uvosam train``: mask-free training of the IDOL tracker from box labels (one GPU, or many with
``torchrun``). Recipe and data layouts: ``uvosam/train/README.md``."""

from __future__ import annotations

import argparse
import dataclasses
import logging

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
    parser.add_argument("--out", required=True, help="output folder (checkpoints, losses.csv)")
    parser.add_argument(
        "--init",
        default=None,
        help="starting weights: weight name (idol-coco-r50), checkpoint path or "
        "'none' (default: the config's init)",
    )
    parser.add_argument("--iters", type=int, default=None, help="override the iteration count")
    parser.add_argument(
        "--resume", action="store_true", help="continue from the newest checkpoint in --out"
    )
    parser.add_argument("--device", default=None, help="torch device (default: cuda if available)")
    parser.add_argument(
        "--workers", type=int, default=None, help="data-loading workers per process"
    )
    parser.set_defaults(func=run)


def build_config(args: argparse.Namespace):
    """The ``TrainConfig`` the arguments describe (preset or YAML, then overrides)."""
    from uvosam.train.config import TrainConfig, load_train_config

    cfg = (
        getattr(TrainConfig, args.config)()
        if args.config in PRESETS
        else (load_train_config(args.config))
    )
    changes = {}
    if args.init is not None:
        changes["init"] = args.init
    if args.iters is not None:
        changes["max_iter"] = args.iters
        changes["lr_steps"] = tuple(s for s in cfg.lr_steps if s < args.iters)
    if args.workers is not None:
        changes["num_workers"] = args.workers
    return dataclasses.replace(cfg, **changes)


def run(args: argparse.Namespace) -> int:
    from uvosam.train.datasets import load_spec, parse_data_spec
    from uvosam.train.loop import train

    cfg = build_config(args)
    specs = [parse_data_spec(s) for s in args.data]
    sources = [load_spec(s) for s in specs]
    for spec, videos in zip(specs, sources, strict=True):
        logger.info(
            "%s %s: %d videos, ratio %g", spec.kind, ":".join(spec.paths), len(videos), spec.ratio
        )
    result = train(
        cfg, sources, [s.ratio for s in specs], args.out, resume=args.resume, device=args.device
    )
    logger.info("finished at iteration %d: %s", result.iteration, result.checkpoint)
    return 0
