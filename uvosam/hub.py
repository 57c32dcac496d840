"""Finding and fetching weight files (which ones exist: ``uvosam.weight_table``), and loading them safely.

``resolve(name_or_path)`` returns a local path to a verified weight file. Places, in order:

1. an explicit path that exists (verified against the table when its basename is a known file);
2. ``checkpoints/<basename>`` (``checkpoints_dir``: env ``UVOSAM_CHECKPOINTS``, else
   ``<repo>/checkpoints`` in a checkout, else ``~/.cache/uvosam/checkpoints``: ``default_checkpoints_dir``);
3. the Hugging Face cache, then the Hub, via ``huggingface_hub.hf_hub_download`` (cache only when
   ``HF_HUB_OFFLINE`` is set; the variable is read at call time);
4. the spec's direct public ``url`` (not when offline), saved into ``checkpoints_dir``.

Every file found is checked against the table (``uvosam.weight_checksums``: size, then a SHA-256 computed once and
remembered). A bad file in ``checkpoints/`` raises ``WeightsError`` and is left alone (it is the user's). A bad
file in the HF cache is deleted (snapshot entry and blob) and downloaded again once; still bad ->
``WeightsError``. ``load_checkpoint`` only ever unpickles with ``weights_only=True``.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import pickle
import urllib.request
import zipfile
from pathlib import Path

import huggingface_hub
import torch
from huggingface_hub import constants as hf_constants
from huggingface_hub.errors import EntryNotFoundError

from uvosam.errors import WeightsError
from uvosam.weight_checksums import (
    CHUNK_BYTES,
    check_copy,
    remember_sha256,
    sidecar_path,
    verify_file,
)
from uvosam.weight_table import WEIGHTS, WeightSpec, lookup

logger = logging.getLogger(__name__)

_REPO_ROOT = Path(__file__).resolve().parents[1]


def _transport_errors() -> tuple[type[Exception], ...]:
    """Network errors (connection reset, timeout) of the HTTP library huggingface_hub downloads
    with: httpx2 or httpx (not ``OSError``s, and a reset mid-file is not retried); requests'
    errors are ``OSError``s already."""
    return tuple(
        importlib.import_module(name).TransportError
        for name in ("httpx2", "httpx")
        if importlib.util.find_spec(name) is not None
    )


# what a failed Hub download (hf_hub_download) can raise: the Hub is then "not available"
_DOWNLOAD_ERRORS = (OSError, ValueError, EntryNotFoundError, *_transport_errors())


def default_checkpoints_dir() -> Path:
    """``$UVOSAM_CHECKPOINTS`` if set; else the repository's ``checkpoints/`` when uvosam runs from a checkout (an
    editable install, a Space); else (a wheel in site-packages) ``$XDG_CACHE_HOME/uvosam/checkpoints`` (default
    ``~/.cache/uvosam/checkpoints``), so nothing is downloaded into site-packages."""
    env = os.environ.get("UVOSAM_CHECKPOINTS")
    if env:
        return Path(env).expanduser()
    if (_REPO_ROOT / "pyproject.toml").is_file():
        return _REPO_ROOT / "checkpoints"
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache).expanduser() / "uvosam" / "checkpoints"


def resolve(
    name_or_path: str | os.PathLike,
    *,
    checkpoints_dir: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
    verify: bool = True,
) -> Path:
    """Find (or download) a weight file and return its local path, checksum-verified.

    Args:
        name_or_path: a key of ``WEIGHTS`` (``"sam_vit_h"``) or a file path. A path that does not
            exist but whose basename is a known file (``ckpt/sam_vit_h_4b8939.pth``) is looked up
            like its name.
        checkpoints_dir: folder searched by basename; default ``default_checkpoints_dir()``.
        cache_dir: Hugging Face cache folder; ``None`` = huggingface_hub's default
            (``HF_HUB_CACHE``/``HF_HOME``).
        verify: check size and SHA-256 against the table (cached, see module docstring).

    Raises:
        FileNotFoundError: nowhere to be found; the message lists every place looked and how to get
            the file.
        WeightsError: found, but the size or checksum is wrong (and, for the HF cache,
            re-downloading did not help).
    """
    spec, explicit = lookup(name_or_path)
    if explicit is not None and explicit.is_file():
        if spec is not None and verify:
            verify_file(explicit, spec)
        return explicit
    if spec is None:
        raise FileNotFoundError(
            f"No weight file at {explicit} and {str(name_or_path)!r} is not a known weight name. "
            f"Give an existing path or one of {sorted(WEIGHTS)}."
        )
    looked = [f"{explicit} (the path given)"] if explicit is not None else []
    ckdir = (
        Path(checkpoints_dir).expanduser()
        if checkpoints_dir is not None
        else default_checkpoints_dir()
    )
    local = ckdir / spec.basename
    if local.is_file():
        if verify:
            verify_file(local, spec)
        return local
    looked.append(f"{local} (checkpoints folder)")
    if spec.repo_id is not None:
        found = _from_hub(spec, cache_dir, verify, looked)
        if found is not None:
            return found
    if spec.url is not None and not _offline():
        found = _from_url(spec, local, verify, looked)
        if found is not None:
            return found
    raise FileNotFoundError(_missing_message(spec, looked, ckdir))



def _offline() -> bool:
    env = os.environ.get("HF_HUB_OFFLINE", "").strip().lower()
    return env in {"1", "true", "yes", "on"} or bool(hf_constants.HF_HUB_OFFLINE)


def _cache_root(cache_dir: str | os.PathLike | None) -> Path:
    return Path(cache_dir) if cache_dir is not None else Path(hf_constants.HF_HUB_CACHE)


def _hf_download(
    spec: WeightSpec, cache_dir, *, local_files_only: bool, force: bool = False
) -> Path:
    path = huggingface_hub.hf_hub_download(
        repo_id=spec.repo_id,
        filename=spec.filename,
        cache_dir=cache_dir,
        local_files_only=local_files_only,
        force_download=force,
    )
    return Path(path)


def _from_hub(spec: WeightSpec, cache_dir, verify: bool, looked: list[str]) -> Path | None:
    """HF cache (and Hub unless offline); a bad cached copy is deleted and fetched again once."""
    offline = _offline()
    kind = "cache" if offline else "cache and Hub"
    where = f"Hugging Face {kind} {_cache_root(cache_dir)} ({spec.repo_id}: {spec.filename})"
    try:
        path = _hf_download(spec, cache_dir, local_files_only=offline)
    except _DOWNLOAD_ERRORS as err:
        reason = (
            "HF_HUB_OFFLINE is set"
            if offline
            else f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
        )
        looked.append(f"{where} — not available ({reason})")
        return None
    if not verify:
        return path
    try:
        verify_file(path, spec)
        return path
    except WeightsError as err:
        _delete_cached(path)
        if offline:
            raise WeightsError(
                f"{err} The bad copy was deleted from the Hugging Face cache; HF_HUB_OFFLINE is "
                f"set, so it was not downloaded again: unset HF_HUB_OFFLINE and run again, or put "
                f"a good copy in checkpoints/."
            ) from None
        logger.warning("%s Deleted the cached copy; downloading it again once.", err)
    try:
        path = _hf_download(spec, cache_dir, local_files_only=False, force=True)
    except _DOWNLOAD_ERRORS as err:
        raise WeightsError(
            f"The cached {spec.basename} was corrupt and was deleted; downloading it again "
            f"failed ({err}). "
            f"Check the connection and run again, or put a good copy in checkpoints/."
        ) from err
    verify_file(path, spec)
    return path


def _delete_cached(path: Path) -> None:
    """Delete a snapshot entry of the HF cache, the blob it links to, and its sidecar."""
    real = path.resolve()
    for p in (path, sidecar_path(path), real):
        if p.is_symlink() or p.exists():
            p.unlink()


def _from_url(spec: WeightSpec, dest: Path, verify: bool, looked: list[str]) -> Path | None:
    """Stream ``spec.url`` to ``dest`` (via ``.part``), hashing on the way; None on failure."""
    part = dest.with_name(dest.name + ".part")
    digest = hashlib.sha256()
    try:
        with urllib.request.urlopen(spec.url, timeout=60) as resp:
            dest.parent.mkdir(parents=True, exist_ok=True)
            with open(part, "wb") as out:
                while chunk := resp.read(CHUNK_BYTES):
                    digest.update(chunk)
                    out.write(chunk)
    except OSError as err:
        part.unlink(missing_ok=True)
        looked.append(f"{spec.url} — download failed ({type(err).__name__}: {err})")
        return None
    if verify:
        try:
            check_copy(
                part,
                spec,
                part.stat().st_size,
                digest.hexdigest(),
                hint=f"Got from {spec.url}; try again.",
            )
        except WeightsError:
            part.unlink()
            raise
    os.replace(part, dest)
    remember_sha256(dest, digest.hexdigest())
    return dest


def _missing_message(spec: WeightSpec, looked: list[str], ckdir: Path) -> str:
    lines = [
        f"Weight file {spec.basename!r} ({spec.name}: {spec.description}; "
        f"{spec.size_text}) was not found.",
        "Looked in:",
        *[f"  - {place}" for place in looked],
        "To get it, either:",
    ]
    if spec.repo_id is not None:
        cmd = f"{spec.repo_id} {spec.filename}"
        lines.append(
            f"  - run `hf download {cmd}` (older huggingface_hub: `huggingface-cli download "
            f"{cmd}`), which fills the Hugging Face cache, or"
        )
    urls = " or ".join(u for u in (spec.hub_url, spec.url) if u is not None)
    lines.append(
        f"  - download {urls} and put the file in {ckdir}/ (or set UVOSAM_CHECKPOINTS to the "
        f"folder holding it)."
    )
    if spec.sha256 is not None:
        lines.append(f"Expected sha256 {spec.sha256}.")
    return "\n".join(lines)




def load_checkpoint(path: str | os.PathLike) -> dict:
    """Load a PyTorch checkpoint on CPU with ``weights_only=True`` (no code in the file can run).

    Raises:
        WeightsError: the file is truncated/corrupt, not a PyTorch checkpoint, holds objects other
            than tensors and plain containers (e.g. a pickle that would run code), or is not a dict.
    """
    path = Path(path)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        # torch's message starts with a generic paragraph; the second one names the refused object.
        paragraphs = [p.strip() for p in str(err).split("\n\n") if p.strip()] or [""]
        raise WeightsError(
            f"{path} holds objects that a weights-only load refuses (only tensors and plain "
            f"containers are allowed, so nothing in the file was run): "
            f"{paragraphs[min(1, len(paragraphs) - 1)]} Use a checkpoint from a trusted source "
            f"(see checkpoints/README.md). If you trust this file and it only carries extra training "
            f"state (optimizer/scheduler objects), keep just its weights once with: python -c \"import "
            f"torch; c = torch.load('{path}', weights_only=False); torch.save({{'model': c.get('model', c)}}, "
            f"'{path.with_suffix('.weights.pth')}')\" and use the new file."
        ) from None
    except (RuntimeError, EOFError, ValueError, KeyError, TypeError, IndexError, zipfile.BadZipFile) as err:
        raise WeightsError(
            f"{path} could not be read as a PyTorch checkpoint ({type(err).__name__}: {err}). "
            f"It is probably truncated or corrupt: delete it and download it again."
        ) from None
    if not isinstance(obj, dict):
        raise WeightsError(
            f"{path}: expected a dict (a state dict) at the top level; got {type(obj).__name__}."
        )
    return obj


def load_into(model: torch.nn.Module, state: dict, path: str | os.PathLike, name: str, hint: str) -> None:
    """``model.load_state_dict(state)`` (strict).

    Raises:
        WeightsError: ``state`` does not fit ``model`` ("``path`` does not fit ``name``: ..."): the message counts
            the missing keys, the unexpected keys and the keys of another shape, names the first few of each,
            then gives ``hint`` (what to do).
    """
    try:
        model.load_state_dict(state)
    except RuntimeError:
        raise WeightsError(f"{path} does not fit {name}: {state_dict_mismatch(model, state)}. {hint}") from None


def state_dict_mismatch(model: torch.nn.Module, state: dict, shown: int = 3) -> str:
    """What keeps ``state`` from loading into ``model``, e.g. ``"1 missing key (no_mem_embed); 2 keys of another
    shape, file vs model (a.weight (8,) vs (4,), b.bias (8,) vs (4,))"``; the first ``shown`` of each kind named."""
    own = model.state_dict()
    kinds = {
        "missing {}": [key for key in own if key not in state],
        "unexpected {}": [key for key in state if key not in own],
        "{} of another shape, file vs model": [
            f"{key} {tuple(state[key].shape)} vs {tuple(own[key].shape)}"
            for key in own
            if key in state and hasattr(state[key], "shape") and tuple(state[key].shape) != tuple(own[key].shape)
        ],
    }
    parts = [
        f"{len(keys)} {kind.format('key' if len(keys) == 1 else 'keys')} "
        f"({', '.join(keys[:shown])}{', ...' if len(keys) > shown else ''})"
        for kind, keys in kinds.items()
        if keys
    ]
    return "; ".join(parts) or "load_state_dict refused it"
