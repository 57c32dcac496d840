"""Argument types shared by the subcommands."""

from __future__ import annotations

import argparse


def positive_int(text: str) -> int:
    """An ``argparse`` type: an int >= 1, else a usage error that says so."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer; got {text}")
    return value


ALPHA_WEBM_HELP = (
    "also write <video>_alpha.webm into the zip: the objects over a transparent background (VP9 with alpha; "
    "browsers, OBS, Canva, Kdenlive)"
)
