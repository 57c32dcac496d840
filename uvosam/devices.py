"""Which torch devices this machine can use, and the check that says so before any weights are read.

``UVOSAM.from_pretrained(device="cuda")`` on a machine without CUDA used to read the tracker checkpoint first and then
fail inside torch ("Found no NVIDIA driver"); the command line (``--device``) and the library now share this check.
``--device xpu`` on a torch built without XPU read both checkpoints and built the tracker, then failed with a traceback
("Torch not compiled with XPU enabled"): a device type other than CPU, CUDA and MPS is tried with a one-element tensor.
"""

from __future__ import annotations

import warnings

import torch

from uvosam.errors import InputError


def usable_devices() -> list[str]:
    """What a ``device`` argument takes on this machine: auto, cpu, and cuda, cuda:0 ... / mps / xpu where torch can
    use them (any other device torch can use is taken too: ``check_device``)."""
    devices = ["auto", "cpu"]
    if torch.cuda.is_available():
        devices += ["cuda"] + [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        devices.append("mps")
    xpu = getattr(torch, "xpu", None)
    if xpu is not None and xpu.is_available():
        devices.append("xpu")
    return devices


def check_device(device: str | torch.device, *, option: str | None = None) -> None:
    """Raise ``ValueError`` unless ``device`` is ``"auto"`` or a device torch accepts whose hardware is here.
    Call it before reading weights: instant for CPU, CUDA and MPS (nothing is allocated).

    Parsed by ``torch.device`` (so ``"cpu:0"`` and ``torch.device("cpu", 0)`` pass); then CUDA is checked
    (available, and the index below the GPU count) and MPS (available); any other device type (``xpu``, ``meta``,
    ``vulkan`` ...) must take a one-element tensor and give it back to the CPU: ``meta`` holds no data, a torch built
    without XPU refuses ``xpu``, and the message gives torch's reason.

    Args:
        device: ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``, ``"xpu"`` ... or a ``torch.device``.
        option: how the message names the value (``"--device"`` on the command line); ``None``: ``device='cuda'``.
    """
    if isinstance(device, str) and device == "auto":
        return
    label = f"{option} {device}" if option else f"device={str(device)!r}"
    accepted = f"expected one of {', '.join(usable_devices())} (those usable here)"
    try:
        # "'mkldnn' is no longer used as device type": refused below, in words
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            parsed = torch.device(device)
    except (RuntimeError, TypeError):
        raise InputError(
            f"{label}: that is not a device name; {accepted}, or another name torch.device takes (cpu:0)"
        ) from None
    why = _why_unusable(parsed)
    if why is not None:
        raise InputError(f"{label}: {why}; {accepted}")


def _why_unusable(device: torch.device) -> str | None:
    """Why this machine lacks ``device``, or ``None`` when torch may use it."""
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
    elif device.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            return "torch finds no Apple GPU (MPS) on this machine"
    elif device.type != "cpu":
        return _why_no_tensor(device)
    return None


def _why_no_tensor(device: torch.device) -> str | None:
    """Torch's reason why a one-element tensor cannot be made on ``device`` and copied back, else ``None``."""
    try:
        torch.ones(1, device=device).cpu()
    # what torch raises for a device type it was not built with, or has no kernels or data for
    except (RuntimeError, AssertionError, ImportError, ValueError, TypeError) as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else ""
        # "Could not run 'aten::empty...' ... backend. This could be ...": its first sentence
        if len(reason) > 160 and ". " in reason:
            reason = reason[: reason.index(". ") + 1]
        return f"torch cannot use it here ({type(err).__name__}: {reason})"
    return None


def cuda_has_bf16(device: torch.device | str | int | None = None) -> bool:
    """Whether this CUDA GPU computes bfloat16 natively: compute capability 8.0 on (A100, A10G, L4, L40S, H100/H200).
    Turing and Volta (T4, V100; 7.x) run bf16 without tensor cores, slower than float32, although torch's
    ``is_bf16_supported()`` says True there (it counts emulation)."""
    return torch.cuda.get_device_capability(device) >= (8, 0)


def slow_precision_note(what: str, precision: str, device: torch.device) -> str | None:
    """Why ``precision`` (``bf16`` or ``tf32``) asked for ``what`` on ``device`` gains nothing there, or None: a
    CUDA GPU below compute capability 8.0 (T4, V100) has no bf16 or TF32 tensor cores; bf16 runs emulated, slower
    than float32, and TF32 does not exist (float32 is computed)."""
    if precision not in ("bf16", "tf32") or device.type != "cuda" or cuda_has_bf16(device):
        return None
    major, minor = torch.cuda.get_device_capability(device)
    effect = (
        "runs emulated, slower than fp32"
        if precision == "bf16"
        else "does not exist there (fp32 is computed)"
    )
    return (
        f"{what}: {precision} asked for on a GPU of compute capability {major}.{minor} (8.0 or later has {precision} "
        f"tensor cores): it {effect}. Use fp32 on this GPU."
    )
