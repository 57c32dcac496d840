"""A description of the running environment: versions, device, kernel backend, local weight files; for a bug report,
Python, the OS, torch's CUDA build and the GPU, the ffmpeg run, and the settings read from the environment.

Shown by ``uvosam info``; the app's footer shows some of ``package_versions``.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import re
import shutil
import subprocess
import sys
from pathlib import Path

import torch

from uvosam import box_segmenter, hub, weight_table
from uvosam.code_identity import PACKAGE_DIR, code_identity
from uvosam.cpu_quota import quota_summary
from uvosam.tracker.msda import backend_status


def package_versions() -> dict[str, str]:
    """Installed versions of the packages that matter for results."""
    versions = {}
    for name in (
        "uvosam",
        "torch",
        "torchvision",
        "segment-anything",
        "sam2",
        "gradio",
        "numpy",
        "triton",
        "huggingface_hub",
        "Pillow",
    ):
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def device_summary() -> str:
    """``cuda: <name> (<memory> GiB, bf16 native|emulated)`` or ``cpu (<threads> threads, bf16 native|emulated)``:
    where bf16 is native the SAM image encoders' fast path is on by default."""
    device = torch.device("cuda", 0) if torch.cuda.is_available() else torch.device("cpu")
    bf16 = "native" if box_segmenter.bf16_is_native(device) else "emulated"
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        return f"cuda: {props.name} ({props.total_memory / 2**30:.0f} GiB, bf16 {bf16})"
    return f"cpu ({torch.get_num_threads()} threads, bf16 {bf16})"


def local_weights() -> dict[str, Path | None]:
    """For each known weight file, its path in ``checkpoints/`` or the HF cache if present (no download, no
    checksum: this must stay instant)."""
    found: dict[str, Path | None] = {}
    ckdir = hub.default_checkpoints_dir()
    for name in weight_table.WEIGHTS:
        # with the environment's say (UVOSAM_DAVIS_REPO), as hub.resolve
        spec = weight_table.lookup(name)[0]
        local = ckdir / spec.basename
        found[name] = local if _is_file(local) else _in_hf_cache(spec)
    return found


def _is_file(path: Path) -> bool:
    """``path.is_file()``, False where its folder cannot be searched (``describe`` says so: ``unreadable``)."""
    try:
        return path.is_file()
    except OSError:
        return False


def unreadable(folder: Path) -> str | None:
    """Why the files in ``folder`` cannot be looked up (no permission to search it...), or None: they can, or it
    does not exist."""
    try:
        os.stat(os.path.join(folder, "."))  # looks "." up in it: needs the permission to search it
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as err:
        return err.strerror or str(err)
    return None


def _in_hf_cache(spec: weight_table.WeightSpec) -> Path | None:
    if spec.repo_id is None:
        return None
    from huggingface_hub import try_to_load_from_cache

    hit = try_to_load_from_cache(spec.repo_id, spec.filename, cache_dir=hub.hf_cache_dir())
    return Path(hit) if isinstance(hit, str) and os.path.isfile(hit) else None


def cuda_summary() -> list[str]:
    """torch's CUDA build (``torch.version.cuda``, cuDNN) and, where CUDA is usable, each GPU and the driver."""
    if torch.version.cuda is None:
        return ["torch CUDA build: none (a CPU-only torch)"]
    cudnn = torch.backends.cudnn.version()  # 92400: 9.24.0; 8907: 8.9.7 (before cuDNN 9)
    major = 10000 if cudnn and cudnn >= 90000 else 1000
    cudnn_text = f" (cuDNN {cudnn // major}.{cudnn % major // 100}.{cudnn % 100})" if cudnn else ""
    build = f"torch CUDA build: {torch.version.cuda}{cudnn_text}"
    if not torch.cuda.is_available():
        return [f"{build}; CUDA not usable here (torch.cuda.is_available() is False)"]
    lines = [f"{build}; NVIDIA driver {_nvidia_driver()}"]
    for index in range(torch.cuda.device_count()):
        props = torch.cuda.get_device_properties(index)
        lines.append(
            f"  cuda:{index}: {props.name}, {props.total_memory / 2**30:.0f} GiB, compute capability "
            f"{props.major}.{props.minor}"
        )
    return lines


def _nvidia_driver() -> str:
    """The driver version ``nvidia-smi`` reports, or why there is none."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return "unknown (no nvidia-smi on PATH)"
    try:
        proc = subprocess.run(
            [exe, "--query-gpu=driver_version", "--format=csv,noheader"],
            check=False, capture_output=True, text=True, timeout=10, stdin=subprocess.DEVNULL,
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired) as err:
        return f"unknown (nvidia-smi: {err})"
    versions = proc.stdout.split()
    return (
        versions[0]
        if proc.returncode == 0 and versions
        else f"unknown (nvidia-smi exit {proc.returncode})"
    )


def ffmpeg_summary() -> str:
    """The ffmpeg binary every video read and write runs (``uvosam.ffmpeg_binary``) and its version, or why it
    cannot be used."""
    from uvosam.ffmpeg_binary import ffmpeg_exe, ffmpeg_version

    try:
        exe = ffmpeg_exe()  # asks its version (once per path: ffmpeg_version)
        version = ffmpeg_version(exe)
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as err:
        return f"unusable: {err}"
    return f"{exe} (version {version or 'unknown'})"


SETTINGS = (
    "HF_HUB_OFFLINE",
    "HF_HOME",
    "HF_HUB_CACHE",
    "HF_ENDPOINT",
    "HF_TOKEN",
    "IMAGEIO_FFMPEG_EXE",
    "CUDA_VISIBLE_DEVICES",
    "OMP_NUM_THREADS",
)
"""Environment variables besides ``UVOSAM_*`` that change what uvosam does, listed by ``uvosam info``."""

_SECRET = re.compile(r"TOKEN|SECRET|PASSWORD|KEY", re.IGNORECASE)


def settings_summary(environ: dict[str, str] | None = None) -> str:
    """The settings that are set (``SETTINGS``, then ``UVOSAM_*``) as ``NAME=value``; a token's value is never
    shown (``HF_TOKEN=(set, not shown)``)."""
    environ = dict(os.environ if environ is None else environ)
    names = [name for name in SETTINGS if name in environ]
    names += sorted(name for name in environ if name.startswith("UVOSAM_"))
    shown = [
        f"{name}=(set, not shown)" if _SECRET.search(name) else f"{name}={environ[name]}"
        for name in names
    ]
    return ", ".join(shown) or f"none of {', '.join(SETTINGS)} or UVOSAM_* set"


def describe() -> list[str]:
    """Human-readable lines (``uvosam info``)."""
    lines = [
        f"python: {platform.python_version()} ({platform.python_implementation()}, {sys.executable})",
        f"platform: {platform.platform()}",
        f"device: {device_summary()}",
        *quota_summary(),
        *cuda_summary(),
        backend_status(),
        f"ffmpeg: {ffmpeg_summary()}",
    ]
    lines.append(f"uvosam code: {code_identity()} (from {PACKAGE_DIR})")
    lines += [f"{name}: {version}" for name, version in package_versions().items()]
    lines.append(f"settings: {settings_summary()}")
    ckdir = hub.default_checkpoints_dir()
    problem = unreadable(ckdir)
    note = f" (cannot read: {problem}; its weight files are not listed)" if problem else ""
    lines.append(f"checkpoints folder: {ckdir}{note}")
    lines += [f"  {name}: {weight_state(name, path)}" for name, path in local_weights().items()]
    return lines


def weight_state(name: str, path: Path | None) -> str:
    """What ``uvosam info`` says of a weight file: its path, "not downloaded yet", or its path and that its size is
    not the released file's, with what the loader does then (a size is a stat, so this stays instant: no checksum):
    in the checkpoints folder it refuses the file; in the Hugging Face cache ``hub.resolve`` deletes the copy and
    downloads it again (online; offline the load fails)."""
    if path is None:
        return "not downloaded yet"
    spec = weight_table.lookup(name)[0]
    size = path.stat().st_size
    if spec is None or spec.size_bytes is None or size == spec.size_bytes:
        return str(path)
    wrong = f"{path}: WRONG SIZE, {size:,} bytes where the released file has {spec.size_bytes:,}"
    if path.parent == hub.default_checkpoints_dir():
        return f"{wrong}, so loading it is refused; delete it and download it again ({spec.hub_url or spec.url})"
    return (
        f"{wrong}; a load deletes this Hugging Face cache copy and downloads it again (online; with HF_HUB_OFFLINE "
        "or the Hub unreachable, the load fails after deleting it)"
    )
