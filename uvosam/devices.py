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
    """Raise ``ValueError`` unless torch can use ``device`` here (see ``usable_devices``). Instant: call it before
    reading weights.

    Args:
        device: ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"`` or a ``torch.device``.
        option: how the message names the value (``"--device"`` on the command line); ``None``: ``device='cuda'``.
    """
    device = str(device)
    usable = usable_devices()
    if device in usable:
        return
    accepted = ", ".join(usable)
    if device == "cuda" or device.startswith("cuda:"):
        gpus = [d for d in usable if d.startswith("cuda:")]
        why = (
            f"this machine has {len(gpus)} CUDA GPU(s) ({', '.join(gpus)})"
            if gpus
            else "torch finds no CUDA GPU on this machine (torch.cuda.is_available() is False: no GPU or "
            "NVIDIA driver, or a CPU-only torch build)"
        )
    elif device == "mps":
        why = "torch finds no Apple GPU (MPS) on this machine"
    else:
        why = "that is not a device name"
    label = f"{option} {device}" if option else f"device={device!r}"
    raise ValueError(f"{label}: {why}; expected one of {accepted} (those usable here)")
