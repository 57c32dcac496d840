"""``uvosam info``: what a bug report needs (Python, OS, device, torch's CUDA build and GPU, ffmpeg, versions,
settings), the deformable-attention backend and which weight files are available."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "info",
        help="show what a bug report needs: versions, device, ffmpeg, settings, local weight files",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    del args
    from uvosam.environment import describe

    for line in describe():
        print(line)
    return 0
