"""What the benchmarks read from the machine: how busy it was (every header prints it: timings on a shared machine
depend on it) and a process's resident memory (its peak, reset after loading; its ffmpeg children's, sampled)."""

from __future__ import annotations

import os
import resource
import sys
import threading


def load_text() -> str:
    """``load average 1.52 / 1.20 / 0.98 (1 / 5 / 15 min) on 2 CPUs``; on a system without ``os.getloadavg``, says so.

    A load near or above the CPU count means other work shared the cores: times measured then are longer and noisier
    than on an idle machine."""
    cpus = os.cpu_count()
    try:
        one, five, fifteen = os.getloadavg()
    except (AttributeError, OSError):
        return f"load average unknown on {cpus} CPUs"
    return f"load average {one:.2f} / {five:.2f} / {fifteen:.2f} (1 / 5 / 15 min) on {cpus} CPUs"


def _status_mb(field: str, pid: int | str = "self") -> float | None:
    """``VmHWM``/``VmRSS`` of a process in MB from ``/proc/<pid>/status`` (None: no such file or field)."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except (OSError, ValueError):
        pass
    return None


def rss_mb(pid: int | str = "self") -> float | None:
    """A process's resident memory now in MB (``VmRSS``; None where unknown)."""
    return _status_mb("VmRSS", pid)


def peak_rss_mb() -> float:
    """This process's peak resident memory in MB since its ``exec`` or the last ``reset_peak_rss``: ``VmHWM`` (Linux);
    elsewhere ``ru_maxrss`` (which on Linux would include the parent's RSS at ``exec``; bytes on macOS, KB on other
    systems)."""
    peak = _status_mb("VmHWM")
    if peak is not None:
        return peak
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024


def reset_peak_rss() -> bool:
    """Set this process's ``VmHWM`` back to its current RSS (Linux 4.0+: ``5`` into ``/proc/self/clear_refs``), so that
    ``peak_rss_mb`` sees only what comes after; False where the system refuses (the peak is then sampled)."""
    try:
        with open("/proc/self/clear_refs", "w") as clear:
            clear.write("5")
    except OSError:
        return False
    hwm, rss = _status_mb("VmHWM"), _status_mb("VmRSS")
    return hwm is not None and rss is not None and hwm <= rss + 1


def child_pids() -> list[int]:
    """The live child processes of this process (the ffmpeg decoder and encoders): ``/proc/self/task/*/children``,
    else (a kernel without those files) a scan of ``/proc/*/stat`` for this parent id."""
    me = os.getpid()
    if os.access(f"/proc/self/task/{me}/children", os.R_OK):
        pids: set[int] = set()
        for task in os.scandir("/proc/self/task"):
            try:
                with open(f"{task.path}/children") as children:
                    pids.update(int(pid) for pid in children.read().split())
            except OSError:  # the thread ended meanwhile (the frame and model threads come and go)
                continue
        return sorted(pids)
    pids_scanned: list[int] = []
    try:
        entries = [e.name for e in os.scandir("/proc") if e.name.isdigit()]
    except OSError:
        return []
    for name in entries:
        try:
            with open(f"/proc/{name}/stat") as stat:
                # "pid (comm) state ppid ...": comm may hold spaces and parentheses
                if int(stat.read().rsplit(")", 1)[1].split()[1]) == me:
                    pids_scanned.append(int(name))
        except (OSError, IndexError, ValueError):
            continue
    return pids_scanned


def _same_program(pid: int) -> bool:
    """Whether child ``pid`` still runs this process's program: forked (or vforked, sharing this address space) and
    not yet ``exec``'d, so its ``VmRSS`` is this process's memory, not its own."""
    try:
        return os.readlink(f"/proc/{pid}/exe") == os.readlink("/proc/self/exe")
    except OSError:
        return True  # gone, or not ours to read: count nothing


class MemorySampler(threading.Thread):
    """Samples, every ``interval`` s until ``stop()``, this process's ``VmRSS`` and its child processes' (ffmpeg; a
    child that has not ``exec``'d yet is left out):
    ``peak_self_mb``, ``peak_children_mb`` and ``peak_total_mb`` (the largest sum seen at one sample)."""

    def __init__(self, interval: float = 0.1) -> None:
        super().__init__(daemon=True, name="memory-sampler")
        self.interval = interval
        self.peak_self_mb = self.peak_children_mb = self.peak_total_mb = 0.0
        self._stop_event = threading.Event()

    def sample(self) -> None:
        own = rss_mb() or 0.0
        children = sum(rss_mb(pid) or 0.0 for pid in child_pids() if not _same_program(pid))
        self.peak_self_mb = max(self.peak_self_mb, own)
        self.peak_children_mb = max(self.peak_children_mb, children)
        self.peak_total_mb = max(self.peak_total_mb, own + children)

    def run(self) -> None:
        while not self._stop_event.is_set():
            self.sample()
            self._stop_event.wait(self.interval)

    def stop(self) -> None:
        self._stop_event.set()
        self.join()
        self.sample()
