"""Which torch devices this machine can use, and the check that says so before any weights are read.

``UVOSAM.from_pretrained(device="cuda")`` on a machine without CUDA used to read the tracker checkpoint first and then
fail inside torch ("Found no NVIDIA driver"); the command line (``--device``) and the library now share this check.
"""

from __future__ import annotations

import torch


def usable_devices() -> list[str]:
    """What a ``device`` argument takes on this machine: auto, cpu, and cuda, cuda:0 ... / mps where torch can use
    them."""
    devices = ["auto", "cpu"]
    if torch.cuda.is_available():
        devices += ["cuda"] + [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        devices.append("mps")
    return devices


def check_device(device: str | torch.device, *, option: str | None = None) -> None:
    """Raise ``ValueError`` unless ``device`` is ``"auto"`` or a device torch accepts whose hardware is here.
    Instant: call it before reading weights.

    Parsed by ``torch.device`` (so ``"cpu:0"``, ``torch.device("cpu", 0)``, ``"mps:0"``, ``"xpu"`` pass); only what
    can be missing on this machine is checked: CUDA (available, and the index below the GPU count) and MPS
    (available). Other device types go to torch as given.

    Args:
        device: ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"`` ... or a ``torch.device``.
        option: how the message names the value (``"--device"`` on the command line); ``None``: ``device='cuda'``.
    """
    if isinstance(device, str) and device == "auto":
        return
    label = f"{option} {device}" if option else f"device={str(device)!r}"
    accepted = f"expected one of {', '.join(usable_devices())} (those usable here)"
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(
            f"{label}: that is not a device name; {accepted}, or another name torch.device takes (cpu:0, xpu)"
        ) from None
    why = _why_unusable(parsed)
    if why is not None:
        raise ValueError(f"{label}: {why}; {accepted}")


def _why_unusable(device: torch.device) -> str | None:
    """Why this machine lacks ``device`` (CUDA or MPS), or ``None`` when torch may use it."""
    if device.type == "cuda":
        if not torch.cuda.is_available():
            return (
                "torch finds no CUDA GPU on this machine (torch.cuda.is_available() is False: no GPU or "
                "NVIDIA driver, or a CPU-only torch build)"
            )
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            gpus = ", ".join(f"cuda:{i}" for i in range(count))
            return f"this machine has {count} CUDA GPU(s) ({gpus})"
    if device.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            return "torch finds no Apple GPU (MPS) on this machine"
    return None
