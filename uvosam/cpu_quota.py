"""A container's CPU quota (its cgroup's CPU bandwidth limit), and torch's CPU threads capped to it.

PyTorch sizes its intra-op thread pool from the cores it sees (its affinity mask), not from a cgroup's quota: a
container limited to 2 CPUs on a 64-core host (a Space on CPU basic, ``docker run --cpus 2``) ran 64 threads that
the kernel throttled in turn. ``limit_threads`` caps them at the quota, rounded up, where the user set no thread
count (``THREAD_SETTINGS``); the app (``app.py``'s ``main``) and the command line (``uvosam_cli.main``) call it at
start, and ``uvosam info`` shows the quota. uvosam's own pools (training's data-loading workers, the export's write
threads) size themselves from ``usable_cpus``, the same count, where the user gave no number.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping
from pathlib import Path

import torch

from uvosam.text import count

logger = logging.getLogger(__name__)

CGROUP_ROOT = "/sys/fs/cgroup"
# cgroup v1: the cpu controller's folder under the root, by the names distributions mount it with
V1_FOLDERS = ("cpu", "cpu,cpuacct", "cpuacct,cpu", ".")
# the user's own thread count (torch's OpenMP and MKL read these at start): kept as it is
THREAD_SETTINGS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")


def cpu_quota(root: str | os.PathLike[str] = CGROUP_ROOT) -> float | None:
    """The CPUs this process's cgroup may use (quota / period: 2.0 for "200000 100000"), or None where there is no
    quota or it cannot be read. cgroup v2's ``cpu.max`` ("max 100000": no quota) first, then v1's
    ``cpu.cfs_quota_us`` (-1: no quota) and ``cpu.cfs_period_us``. ``root``: where the cgroup files are (inside a
    container, its own cgroup's)."""
    root = Path(root)
    v2 = _read(root / "cpu.max")
    if v2 is not None:  # a cgroup v2 system: its answer, even "no quota"
        parts = v2.split()
        return _ratio(parts[0], parts[1]) if len(parts) == 2 else None
    for name in V1_FOLDERS:
        quota = _read(root / name / "cpu.cfs_quota_us")
        period = _read(root / name / "cpu.cfs_period_us")
        if quota is not None and period is not None:
            return _ratio(quota, period)
    return None


def _read(path: Path) -> str | None:
    """A cgroup file's text, stripped; None where it is missing or unreadable."""
    try:
        return path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None


def _ratio(quota: str, period: str) -> float | None:
    """quota / period where both are positive integers ("max" and -1 are no quota; anything odd is None)."""
    try:
        q, p = int(quota), int(period)
    except ValueError:
        return None
    return q / p if q > 0 and p > 0 else None


def usable_cpus(root: str | os.PathLike[str] = CGROUP_ROOT) -> int:
    """The CPUs this process can keep busy: the cores it may run on (``os.sched_getaffinity``, else
    ``os.cpu_count()``), at most the cgroup's CPU quota rounded up (a 2-CPU container on a 64-core host: 2, where
    the core count alone said 64); at least 1. ``root``: as for ``cpu_quota``."""
    cores = (
        len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    )
    quota = cpu_quota(root)
    return max(1, cores if quota is None else min(cores, _whole_cpus(quota)))


def _whole_cpus(quota: float) -> int:
    """A quota in whole CPUs, rounded up (1.5 -> 2; 2.0000001, a period that does not divide evenly, -> 2), >= 1."""
    return max(1, math.ceil(round(quota, 6)))


def limit_threads(
    environ: Mapping[str, str] | None = None, root: str | os.PathLike[str] = CGROUP_ROOT
) -> str:
    """Cap torch's intra-op threads (``torch.set_num_threads``) at the CPU quota rounded up, where the quota is
    below torch's count and no ``THREAD_SETTINGS`` variable is set in ``environ`` (default: the process's); log
    what was done on one line (INFO where threads were capped, else DEBUG) and return it."""
    environ = os.environ if environ is None else environ
    quota = cpu_quota(root)
    threads = torch.get_num_threads()
    if quota is None:
        line = f"no CPU quota: torch uses {count(threads, 'thread')}"
        logger.debug(line)
        return line
    quota_text = f"a CPU quota of {_cpus(quota)}"
    allowed = _whole_cpus(quota)
    user = [name for name in THREAD_SETTINGS if environ.get(name, "").strip()]
    if user:
        line = f"{quota_text}: torch's {count(threads, 'thread')} kept ({' and '.join(user)} set)"
    elif threads > allowed:
        torch.set_num_threads(allowed)
        line = f"{quota_text}: torch's threads capped at {allowed} (from {threads})"
        logger.info(line)
        return line
    else:
        line = f"{quota_text}: torch uses {count(threads, 'thread')}"
    logger.debug(line)
    return line


def quota_summary(root: str | os.PathLike[str] = CGROUP_ROOT) -> list[str]:
    """``uvosam info``'s line on the CPU quota, where there is one."""
    quota = cpu_quota(root)
    if quota is None:
        return []
    threads = count(torch.get_num_threads(), "thread")
    return [f"cpu quota: {_cpus(quota)} (the container's cgroup); torch uses {threads}"]


def _cpus(quota: float) -> str:
    """ "2 CPUs", "1 CPU", "1.5 CPUs"."""
    return f"{quota:g} CPU{'' if quota == 1 else 's'}"
