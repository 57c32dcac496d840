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
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from uvosam_cli.interrupts import OutputFolder

# Nothing of uvosam (which imports torch: seconds) at import time: a Ctrl-C then is caught by main.
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
        "masks). Results go to stdout; logs, progress and notes to stderr.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in SUBCOMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def parse_arguments(parser: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    """``parser.parse_args(argv)``, except that an unknown option after the command is reported with the command's
    usage (``uvosam davis-run: error: unrecognized arguments: ...``), not the top-level one (argparse's)."""
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        words = sys.argv[1:] if argv is None else argv
        command = _subcommands(parser)[args.command]
        after = words[words.index(args.command) + 1 :] if args.command in words else []
        (command if all(word in after for word in unknown) else parser).error(
            f"unrecognized arguments: {' '.join(unknown)}"
        )
    return args


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


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


def _replace_unwritable_characters() -> None:
    """Let stdout and stderr write what their encoding lacks as ``\\u52d5`` escapes instead of raising.

    On Windows a redirected stdout has the ANSI code page (cp1252...) with strict errors: a finished ``segment`` of
    a video with a Japanese name failed printing its summary ("'charmap' codec can't encode", exit status 2, its
    files written).
    """
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(
            stream, "reconfigure", None
        )  # None: a stream replaced by one without it
        if reconfigure is not None:
            reconfigure(errors="backslashreplace")


def main(argv: list[str] | None = None) -> int:
    _replace_unwritable_characters()
    try:
        # imports torch: a Ctrl-C in these seconds gets one line, not a traceback of the imports
        args = parse_arguments(build_parser(), argv)
        configure_logging(verbose=args.verbose)
        from uvosam.cpu_quota import limit_threads

        limit_threads()  # torch's threads within a container's CPU quota (a user's OMP_NUM_THREADS kept)
        from uvosam_cli.interrupts import end_for_gone_reader, reader_gone, signals_as_interrupts
    except KeyboardInterrupt:
        print("uvosam: interrupted", file=sys.stderr)
        return 130
    try:
        with signals_as_interrupts(args.command):
            return _run(args)
    except BrokenPipeError as exc:
        if not reader_gone(exc):
            raise
        return end_for_gone_reader()  # as a Unix tool whose reader went: no message, 141


def _run(args: argparse.Namespace) -> int:
    """The command, and how it ended: its exit code, and one line on stderr if it failed or was stopped (with
    ``-v`` the traceback too). A reader of stdout or stderr that went raises its ``BrokenPipeError`` to ``main``."""
    from uvosam.errors import MissingPackageError, out_of_memory
    from uvosam_cli.interrupts import OutputFolder, RunThreads, exit_code, reader_gone

    run_threads = RunThreads(args.command)
    out = OutputFolder(None)
    try:
        # in the try: a Ctrl-C or SIGTERM while the output folder is looked at gets the line, not a traceback
        out = OutputFolder(args.output_folder(args) if hasattr(args, "output_folder") else None)
        code = int(args.func(args) or 0)
        sys.stdout.flush()  # a reader that went is told here, not by "Exception ignored" at exit
        return code
    # Ctrl-C, SIGTERM, SIGHUP: the command deleted its unfinished files
    except KeyboardInterrupt as stop:
        run_threads.wait()  # the line is the last thing said
        _said(args, out, out.interrupted_line(stop))
        return exit_code(stop)
    except (
        ValueError,
        OSError,
        RuntimeError,
        MemoryError,
        MissingPackageError,
    ) as exc:  # one line; -v: the traceback too
        if reader_gone(exc):
            out.remove_if_left_empty()
            raise
        run_threads.wait()
        if out_of_memory(exc):  # the machine's limit, not a bug: what to lower
            _said(args, out, f"{out.error_line(exc)} {OUT_OF_MEMORY}")
            return 2
        refused = _refusal(exc)
        _said(args, out, out.error_line(exc) + ("" if refused else f" {MAYBE_A_BUG}"))
        return 2 if refused else 1
    finally:
        # also before an internal error's traceback (instant if waited for above)
        run_threads.wait()


# after the line of an error that is none of uvosam's refusals (``_refusal``): numpy's "operands could not be
# broadcast", torch's "mat1 and mat2 shapes cannot be multiplied" may be a bug of ours, or an input nothing checked
MAYBE_A_BUG = "(run with -v for the traceback; if this looks like a bug, please report it)"


# after an out-of-memory error's own words (torch's "CUDA out of memory. Tried to allocate ...")
OUT_OF_MEMORY = (
    "(out of memory: try a lighter mask model, --sam vit_b or sam2.1_tiny, smaller frames, --fit-side 1280, or fewer "
    "of them, --stride 2 or --max-frames)"
)


def _refusal(error: BaseException) -> bool:
    """Whether ``error`` is one of uvosam's deliberate refusals, whose message says what to do (exit code 2): an
    ``InputError`` (a bad argument, input file or setting), a model's weights or package missing or unusable, or
    an ``OSError`` of the file system (a missing input, an output path under a file, no permission, a full disk).
    Any other ``ValueError`` or ``RuntimeError`` gets the same one line, ``MAYBE_A_BUG`` after
    it, and exit code 1, Python's for an error it did not expect: the input may well be fine."""
    from uvosam.errors import InputError, MissingPackageError, SetupError, WeightsError

    return isinstance(error, (InputError, OSError, WeightsError, MissingPackageError, SetupError))


def _said(args: argparse.Namespace, out: OutputFolder, line: str) -> None:
    if args.verbose:
        traceback.print_exc()
    out.remove_if_left_empty()
    print(f"uvosam {args.command}: {line}", file=sys.stderr)
