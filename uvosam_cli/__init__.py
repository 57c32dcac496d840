"""The ``uvosam`` command line. Each subcommand lives in its own module exposing ``register(subparsers)``."""

from __future__ import annotations

import os

# Before torch loads OpenMP (it reads this once): threads waiting at the end of a parallel region sleep instead of
# spinning, which on a small CPU took the cores the decoder, the encoder and the export threads need (a user's own
# setting is kept). docs/performance.md, "OpenMP threads that wait".
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

# isort: split
import argparse
import importlib
import logging
import sys
import traceback

from uvosam.errors import MissingPackageError
from uvosam_cli.interrupts import OutputFolder, exit_code, signals_as_interrupts

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
    with signals_as_interrupts():
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    """The command, and how it ended: its exit code, and one line on stderr if it failed or was stopped (with
    ``-v`` the traceback too)."""
    folder = args.output_folder(args) if hasattr(args, "output_folder") else None
    out = OutputFolder(folder)
    try:
        return int(args.func(args) or 0)
    # Ctrl-C, SIGTERM, SIGHUP: the command deleted its unfinished files
    except KeyboardInterrupt as stop:
        _said(args, out, out.interrupted_line(stop))
        return exit_code(stop)
    except (
        ValueError,
        OSError,  # a missing input, an output path under a file, a folder where a file goes, no permission
        RuntimeError,
        MissingPackageError,
    ) as exc:  # user errors: no traceback (but with -v, which also shows an internal error's)
        _said(args, out, out.error_line(exc))
        return 2


def _said(args: argparse.Namespace, out: OutputFolder, line: str) -> None:
    if args.verbose:
        traceback.print_exc()
    out.remove_if_left_empty()
    print(f"uvosam {args.command}: {line}", file=sys.stderr)
