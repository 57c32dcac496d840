"""Loading weight files safely: a checkpoint read with ``weights_only=True`` (nothing in the file can run), and a
state dict loaded strictly into a module, with a message that says which keys do not fit.
"""

from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path

import torch

from uvosam import weight_table
from uvosam.errors import WeightsError

# What torch.load raises on a truncated or corrupt file (a damaged zip, a cut-off pickle, a bad storage record):
# load_checkpoint reports these as such, peek_checkpoint returns None for them.
CORRUPT_CHECKPOINT_ERRORS = (
    RuntimeError,
    EOFError,
    ValueError,
    KeyError,
    TypeError,
    IndexError,
    zipfile.BadZipFile,
)


def load_checkpoint(path: str | os.PathLike) -> dict:
    """Load a PyTorch checkpoint on CPU with ``weights_only=True`` (no code in the file can run).

    Raises:
        WeightsError: the file is truncated/corrupt, not a PyTorch checkpoint, holds objects other
            than tensors and plain containers (e.g. a pickle that would run code), or is not a dict.
    """
    path = Path(path)
    _check_is_checkpoint(path)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        # torch's message starts with a generic paragraph; the second one names the refused object.
        paragraphs = [p.strip() for p in str(err).split("\n\n") if p.strip()] or [""]
        raise WeightsError(
            f"{path} holds objects that a weights-only load refuses (only tensors and plain "
            f"containers are allowed, so nothing in the file was run): "
            f"{paragraphs[min(1, len(paragraphs) - 1)]} Use a checkpoint from a trusted source "
            f"(see {weight_table.TABLE_DOC}). If you trust this file and it only carries extra training "
            f'state (optimizer/scheduler objects), keep just its weights once with: python -c "import '
            f"torch; c = torch.load('{path}', weights_only=False); torch.save({{'model': c.get('model', c)}}, "
            f"'{path.with_suffix('.weights.pth')}')\" and use the new file."
        ) from None
    except CORRUPT_CHECKPOINT_ERRORS as err:
        raise WeightsError(unreadable_message(path, err)) from None
    if not isinstance(obj, dict):
        raise WeightsError(
            f"{path}: expected a dict (a state dict) at the top level; got {type(obj).__name__}."
        )
    return obj


def unreadable_message(path: Path, err: Exception) -> str:
    """Why ``torch.load`` could not read ``path``, as ``verify_file`` words a bad copy of a known file: torch's
    reason in one sentence (its zip reader's ends in a paragraph on "an internal miniz error"), then where to
    download the file again (``weight_table``: by its name), or, for a file of the user's own, to replace it."""
    reason = (str(err).strip().splitlines() or [""])[0].split(". ")[0].rstrip(".")[:200]
    reason = f"{type(err).__name__}: {reason}" if reason else type(err).__name__
    spec, _ = weight_table.lookup(path)
    if spec is None:
        return (
            f"{path} could not be read as a PyTorch checkpoint ({reason}). It is probably truncated or corrupt: "
            "replace it with a complete copy."
        )
    return (
        f"{path} is not a good copy of {spec.basename} ({spec.name}): it could not be read as a PyTorch checkpoint "
        f"({reason}). The file is truncated, corrupt or a different file. {spec.redownload_hint}"
    )


def _redownload_hint(path: Path) -> str:
    """Where to get ``path`` again: its URL for a file of ``weight_table`` (by its name); a file of the user's own:
    to check it is the one meant."""
    spec, _ = weight_table.lookup(path)
    if spec is None:
        return f"Check that {path} is the checkpoint you meant (the released files: {weight_table.TABLE_DOC})."
    return spec.redownload_hint


def peek_checkpoint(path: str | os.PathLike) -> dict | None:
    """A checkpoint's dict with its tensors memory-mapped, not read (``weights_only=True``): key names and shapes
    for the cost of the file's index (0.05 s for a 375 MB SAM ViT-B file), e.g. to tell which model it holds before
    choosing the loader. ``None`` for what cannot be mapped (a legacy-format file) or read, or a non-dict: the full
    ``load_checkpoint`` then reads or reports it."""
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except (pickle.UnpicklingError, OSError, *CORRUPT_CHECKPOINT_ERRORS):
        return None
    return obj if isinstance(obj, dict) else None


# torch.save's zip format; a legacy pickle (protocol 2+)
_CHECKPOINT_STARTS = (b"PK\x03\x04", b"\x80")


def _check_is_checkpoint(path: Path) -> None:
    """Refuse, by its first bytes, a file that is no PyTorch checkpoint at all (an HTML error page or a Git LFS
    pointer saved under a checkpoint's name), which ``torch.load`` would report as a refused pickle object."""
    try:
        with open(path, "rb") as file:
            head = file.read(64)
    except OSError as err:
        raise WeightsError(f"{path} could not be read ({type(err).__name__}: {err}).") from None
    if head and not head.startswith(_CHECKPOINT_STARTS):
        shown = head[:32].decode("utf-8", "replace").split("\n")[0]
        raise WeightsError(
            f"{path} is not a PyTorch checkpoint: it starts with {shown!r} (a web page or a Git LFS pointer saved "
            f"under its name?). {_redownload_hint(path)}"
        )


def load_into(
    model: torch.nn.Module, state: dict, path: str | os.PathLike, name: str, hint: str
) -> None:
    """``model.load_state_dict(state)`` (strict).

    Raises:
        WeightsError: ``state`` does not fit ``model`` ("``path`` does not fit ``name``: ..."): the message counts
            the missing keys, the unexpected keys and the keys of another shape, names the first few of each,
            then gives ``hint`` (what to do).
    """
    try:
        model.load_state_dict(state)
    except RuntimeError:
        raise WeightsError(
            f"{path} does not fit {name}: {state_dict_mismatch(model, state)}. {hint}"
        ) from None


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
            if key in state
            and hasattr(state[key], "shape")
            and tuple(state[key].shape) != tuple(own[key].shape)
        ],
    }
    parts = [
        f"{len(keys)} {kind.format('key' if len(keys) == 1 else 'keys')} "
        f"({', '.join(keys[:shown])}{', ...' if len(keys) > shown else ''})"
        for kind, keys in kinds.items()
        if keys
    ]
    return "; ".join(parts) or "load_state_dict refused it"
