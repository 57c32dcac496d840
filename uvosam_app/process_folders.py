"""The folder of one app process (``process_dir``): made in ``UVOSAM_WORK_DIR`` (or the temp folder), marked as the
process's, removed at its exit (``app.py``); and the folders of earlier processes that are gone, removed at the next
start (``remove_stale``): a process killed outright (SIGKILL, out of memory) cannot remove its own. Nothing here
imports gradio.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import sys
import tempfile
from pathlib import Path
from typing import Any

from uvosam.job_locks import is_held, lock_file

logger = logging.getLogger("uvosam.app")

PROCESS_PREFIX = "uvosam-app-"
MARKER = ".uvosam-app.json"  # in a process's folder: whose it is (``_identity``)
_MARKERS_HELD: list[Any] = []  # this process's marker, open and locked while it runs


def process_dir(parent: Path, prefix: str = PROCESS_PREFIX) -> Path:
    """A fresh folder for this process's work in ``parent`` (``uvosam-app-XXXXXXXX``), marked as this process's
    (``MARKER``, locked while it runs), once the folders of earlier processes that are gone are removed from
    ``parent`` (``remove_stale``): the app removes its own at exit, but a process killed (or, before, stopped by
    SIGTERM) left its folder with its sessions' runs for good. ``prefix``: of the folders' names (the test suite's
    temp folders have their own)."""
    remove_stale(parent, prefix)
    folder = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    marker = folder / MARKER
    marker.write_text(json.dumps(_identity(os.getpid())))
    try:  # held open: its lock lasts as long as this process
        _MARKERS_HELD.append(lock_file(marker))
    except OSError:  # a file system without locks: the marker's process tells
        pass
    return folder


def remove_stale(parent: Path, prefix: str = PROCESS_PREFIX) -> list[Path]:
    """Remove the folders in ``parent`` that earlier app processes made and left, now gone; returns them. Only
    those provably so: a ``prefix`` folder (no link) holding a ``MARKER`` of this machine whose process is
    gone (``_owner_gone``) and not locked (a live process holds its marker locked: ``uvosam.job_locks``' lock, as a
    live job holds its staging folder's; where it cannot be told, the folder stays). Nothing else is touched: another
    live server's folder, a folder of another machine sharing ``parent``, any other file or folder."""
    removed = []
    try:
        entries = sorted(parent.iterdir())
    except OSError as err:
        logger.warning(
            "could not look for folders left by earlier processes in %s: %s", parent, err
        )
        return removed
    for entry in entries:
        if not entry.name.startswith(prefix) or entry.is_symlink() or not entry.is_dir():
            continue
        marker = entry / MARKER
        try:
            if marker.is_symlink() or not marker.is_file():
                continue
            owner = json.loads(marker.read_text())
            if not (isinstance(owner, dict) and _owner_gone(owner)) or is_held(marker):
                continue
        except (OSError, ValueError):  # unreadable, not JSON: not provably ours
            continue
        logger.info("removing %s: left by process %s, which is gone", entry, owner.get("pid"))
        shutil.rmtree(entry, ignore_errors=True)
        removed.append(entry)
    return removed


def _identity(pid: int) -> dict[str, Any]:
    """What tells a process apart (a pid is reused): the machine, its boot, the pid and the process's start."""
    return {
        "host": socket.gethostname(),
        "boot": _boot_id(),
        "pid": pid,
        "started": _start_time(pid),
    }


def _owner_gone(owner: dict[str, Any]) -> bool:
    """Whether the process a marker names is provably gone: one of this machine (another's cannot be looked up
    here) that ran before the last boot, or whose pid no process has, or has with another start time (reused).
    Never on Windows: its signal 0 is Ctrl-C's (``os.kill`` would send it to the console, this app included) and a
    pid no process has raises no ``ProcessLookupError`` there; the folder stays."""
    pid = owner.get("pid")
    if owner.get("host") != socket.gethostname() or not isinstance(pid, int) or pid <= 0:
        return False
    if sys.platform == "win32":
        return False
    boot = _boot_id()
    if boot is not None and owner.get("boot") not in (None, boot):
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # e.g. PermissionError: a process of another user has it
        pass
    started = _start_time(pid)
    return None not in (started, owner.get("started")) and started != owner.get("started")


def _boot_id() -> str | None:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip() or None
    except OSError:  # not Linux
        return None


def _start_time(pid: int) -> int | None:
    """The process's start, in clock ticks after boot (Linux's /proc/<pid>/stat, field 22; None elsewhere)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return int(stat.rpartition(")")[2].split()[19])
    except (OSError, ValueError, IndexError):
        return None
