"""The ``uvosam`` command line. Each subcommand lives in its own module exposing ``register(subparsers)``."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from uvosam.errors import MissingPackageError

SUBCOMMAND_MODULES = [
    "uvosam_cli.segment",
    "uvosam_cli.rerender",
    "uvosam_cli.track",
    "uvosam_cli.davis",
    "uvosam_cli.clip_score",
    "uvosam_cli.benchmark_runs",
    "uvosam_cli.info",
    "uvosam_cli.train",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="uvosam",
        description="uvosam: mask-free unsupervised video object segmentation (IDOL tracker boxes -> SAM or SAM 2.1 "
        "masks).",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in SUBCOMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def configure_logging(*, verbose: bool) -> None:
    """Log records to stderr as ``LEVEL logger: message`` (DEBUG with ``-v``, else INFO), each once.

    huggingface_hub gives its own logger a stderr handler and lets records propagate too, so with a handler on the
    root logger each of its warnings (a retry of an unreachable Hub) was printed twice, once plain and once as
    ``WARNING huggingface_hub.utils._http: ...``: its records stop at its own handler.
    """
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("huggingface_hub").propagate = False


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(verbose=args.verbose)
    try:
        return int(args.func(args) or 0)
    except (
        ValueError,
        OSError,  # a missing input, an output path under a file, a folder where a file goes, no permission
        RuntimeError,
        MissingPackageError,
    ) as exc:  # user errors: no traceback
        print(f"uvosam {args.command}: error: {exc}", file=sys.stderr)
        return 2
