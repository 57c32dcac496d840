"""A description of the running environment: versions, device, kernel backend, local weight files.

Shown by ``uvosam info`` and in the app's footer.
"""

from __future__ import annotations

import importlib.metadata
import os
from pathlib import Path

import torch

from uvosam import box_segmenter, hub, weight_table
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
    ):
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def device_summary() -> str:
    """``cuda: <name> (<memory> GiB)`` or ``cpu (<threads> threads, bf16 native|emulated)``: on a CPU with native
    bf16 the SAM image encoders' fast path is on by default."""
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        return f"cuda: {props.name} ({props.total_memory / 2**30:.0f} GiB)"
    bf16 = "native" if box_segmenter.cpu_has_bf16() else "emulated"
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
        found[name] = local if local.is_file() else _in_hf_cache(spec)
    return found


def _in_hf_cache(spec: weight_table.WeightSpec) -> Path | None:
    if spec.repo_id is None:
        return None
    from huggingface_hub import try_to_load_from_cache

    hit = try_to_load_from_cache(spec.repo_id, spec.filename, cache_dir=hub.hf_cache_dir())
    return Path(hit) if isinstance(hit, str) and os.path.isfile(hit) else None


def describe() -> list[str]:
    """Human-readable lines (``uvosam info``)."""
    lines = [f"device: {device_summary()}", backend_status()]
    lines += [f"{name}: {version}" for name, version in package_versions().items()]
    lines.append(f"checkpoints folder: {hub.default_checkpoints_dir()}")
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
