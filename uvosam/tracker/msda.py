"""Multi-scale deformable attention core (Deformable DETR, Zhu et al. 2021, arXiv 2010.04159).

``ms_deform_attn_pytorch`` is the readable reference (bilinear ``grid_sample``, zero padding,
``align_corners=False``, i.e. pixel centres at ``(i + 0.5) / W``): it runs everywhere and defines the numerics.
``ms_deform_attn`` is what the model calls: it dispatches CUDA tensors to the Triton kernel of the ``uvosam_ops``
package (top-level ``ops/`` folder of the repository) iff that package imported, and CPU tensors to the weighted
gather of ``uvosam.tracker.msda_gather`` (the same sum, 3.5-5.8x faster than the reference at the encoder's shape
on this project's CPU; calls that need gradients keep the reference, whose backward is faster), unless the
``UVOSAM_MSDA`` environment variable is ``pytorch``; otherwise to the reference.

``UVOSAM_MSDA`` (read at every call): ``auto`` (default; falls back with one warning for CUDA tensors when the
kernel is unavailable), ``pytorch`` (always the reference, on every device), ``triton`` (require the kernel; a
RuntimeError that names the reason when it cannot be used, CPU tensors included). ``backend_status()`` says in one
line which backend CUDA and CPU calls get, and why. Triton is imported lazily, on the first CUDA call or
``backend_status()``, never at ``import uvosam``.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import logging
import os
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import torch
import torch.nn.functional as F

from uvosam.errors import InputError, SetupError
from uvosam.tracker.msda_gather import ms_deform_attn_gather

logger = logging.getLogger(__name__)

ENV_VAR = "UVOSAM_MSDA"
MODES = ("auto", "pytorch", "triton")
OPS_PACKAGE = "uvosam_ops"
# A source checkout keeps the kernel package beside uvosam/: <root>/ops is installed as uvosam_ops.
_CHECKOUT_ROOT = Path(__file__).resolve().parents[2]
_warned_fallback = False


def ms_deform_attn_pytorch(
    value: torch.Tensor,
    spatial_shapes: torch.Tensor,
    sampling_locations: torch.Tensor,
    attention_weights: torch.Tensor,
) -> torch.Tensor:
    """Reference multi-scale deformable attention.

    Args:
        value: (N, S, M, D) per-head values, S = sum_l H_l * W_l, levels concatenated row-major in level order.
        spatial_shapes: (L, 2) int64 ``(H_l, W_l)``.
        sampling_locations: (N, Lq, M, L, P, 2) ``(x, y)`` normalised to [0, 1] on each level's (padded) map.
        attention_weights: (N, Lq, M, L, P), already softmax-normalised over L * P.

    Returns:
        (N, Lq, M * D), channel ``m * D + d`` = head m, channel d.
    """
    n, _, m, d = value.shape
    _, lq, _, n_levels, n_points, _ = sampling_locations.shape
    sizes = [int(h) * int(w) for h, w in spatial_shapes.tolist()]
    dtype = _sampling_dtype(value)
    value_list = value.to(dtype).split(sizes, dim=1)
    # grid_sample wants one dtype (autocast promotes to the wider); 2 * loc - 1 computed in the wider of the two
    grids = (
        2 * sampling_locations.to(torch.promote_types(sampling_locations.dtype, dtype)) - 1
    ).to(dtype)
    sampled = []
    for lvl, (h, w) in enumerate(spatial_shapes.tolist()):
        value_l = value_list[lvl].flatten(2).transpose(1, 2).reshape(n * m, d, int(h), int(w))
        grid_l = grids[:, :, :, lvl].transpose(1, 2).flatten(0, 1)
        sampled.append(
            F.grid_sample(
                value_l, grid_l, mode="bilinear", padding_mode="zeros", align_corners=False
            )
        )
    weights = attention_weights.transpose(1, 2).reshape(n * m, 1, lq, n_levels * n_points)
    out = (torch.stack(sampled, dim=-2).flatten(-2) * weights).sum(-1)
    out_dtype = torch.promote_types(
        value.dtype, attention_weights.dtype
    )  # as without the half-precision upcast
    return out.view(n, m * d, lq).transpose(1, 2).to(out_dtype).contiguous()


def _sampling_dtype(value: torch.Tensor) -> torch.dtype:
    """float32 for float16/bfloat16 tensors on every device, else ``value``'s dtype.

    ``grid_sample`` needs the values and the grid in one dtype; in half precision the grid ``2 * loc - 1`` would be
    rounded to 8 (bf16) or 11 (fp16) mantissa bits, moving samples by up to ~0.1 pixel on a 100-pixel-wide level,
    while the CPU gather and the Triton kernel keep float32 locations. On CPU there is a second reason: torch's
    ``grid_sample`` in half precision reads out of bounds on the reference's strided per-level views (a
    segmentation fault that depends on where the tensors lie in memory, seen with torch 2.14.1 at a 480x854
    frame's first level), and is slower than in float32 there anyway."""
    if value.dtype in (torch.float16, torch.bfloat16):
        return torch.float32
    return value.dtype


@dataclass(frozen=True)
class KernelLoad:
    """Outcome of loading the Triton kernel: the function, or why it is unavailable.

    Attributes:
        fn: ``uvosam_ops.ms_deform_attn_triton`` or None.
        label: ``"uvosam_ops 0.1, triton 3.8.0"`` when loaded, else "".
        reason: why ``fn`` is None (import error text, interpreter mode), else "".
    """

    fn: Callable[..., torch.Tensor] | None
    label: str = ""
    reason: str = ""


def msda_mode() -> str:
    """The ``UVOSAM_MSDA`` setting, one of ``MODES`` (default ``auto``)."""
    mode = os.environ.get(ENV_VAR, "auto").strip().lower() or "auto"
    if mode not in MODES:
        raise InputError(
            f"{ENV_VAR} must be one of {', '.join(MODES)}; got {mode!r}. Unset it for 'auto'."
        )
    return mode


def _checkout_ops_init(root: Path) -> Path | None:
    """``<root>/ops/__init__.py`` if ``root`` is a uvosam source checkout (its pyproject maps ``uvosam_ops``)."""
    init = root / "ops" / "__init__.py"
    pyproject = root / "pyproject.toml"
    if (
        init.is_file()
        and pyproject.is_file()
        and OPS_PACKAGE in pyproject.read_text(encoding="utf-8")
    ):
        return init
    return None


def ops_folder(root: Path = _CHECKOUT_ROOT) -> Path | None:
    """The folder of the ``uvosam_ops`` that ``_import_ops_package`` would load (a checkout's ``<root>/ops``, else
    the installed package's), found without importing it; None where there is none."""
    init = _checkout_ops_init(root)
    if init is not None:
        return init.parent
    spec = importlib.util.find_spec(OPS_PACKAGE)
    locations = None if spec is None else spec.submodule_search_locations
    return Path(next(iter(locations))) if locations else None


def _import_ops_package(root: Path = _CHECKOUT_ROOT) -> ModuleType:
    """Import ``uvosam_ops`` from the same tree as this uvosam.

    In a source checkout (``PYTHONPATH=<repo>``, or an editable install) that is ``<root>/ops``, loaded by file
    location under the name ``uvosam_ops`` (a different ``uvosam_ops`` found on ``sys.path`` is not used, so
    uvosam and its kernel never come from two trees); otherwise the installed ``uvosam_ops``.
    Raises ImportError when that fails (e.g. no triton).
    """
    init = _checkout_ops_init(root)
    if init is None:
        return importlib.import_module(OPS_PACKAGE)
    loaded = sys.modules.get(OPS_PACKAGE)
    if (
        loaded is not None
        and Path(getattr(loaded, "__file__", "") or "").resolve() == init.resolve()
    ):
        return loaded
    spec = importlib.util.spec_from_file_location(
        OPS_PACKAGE, init, submodule_search_locations=[str(init.parent)]
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[OPS_PACKAGE] = module
    try:
        spec.loader.exec_module(module)
    except ImportError:
        del sys.modules[OPS_PACKAGE]
        raise
    logger.debug("msda: loaded %s from %s", OPS_PACKAGE, init)
    return module


@functools.lru_cache(maxsize=1)
def load_kernel() -> KernelLoad:
    """Import the Triton kernel once (imports triton: ~0.15 s after torch); never raises, records why."""
    try:
        ops = _import_ops_package()
    except (ImportError, OSError) as exc:
        return KernelLoad(None, reason=f"{type(exc).__name__}: {exc}")
    if ops.INTERPRETED:
        return KernelLoad(
            None, reason="TRITON_INTERPRET=1 is set (the kernel would run in the CPU interpreter)"
        )
    import triton

    return KernelLoad(
        ops.ms_deform_attn_triton,
        label=f"{OPS_PACKAGE} {ops.__version__}, triton {triton.__version__}",
    )


def backend_status() -> str:
    """One line for the app footer / ``uvosam info``: which backend CUDA and CPU calls get, and why.

    E.g. ``"msda: triton (uvosam_ops 0.1, triton 3.8.0); CPU tensors: gather"`` or, without a GPU,
    ``"msda: gather on CPU (triton kernel unavailable: no CUDA device)"`` (on a Mac: ``"msda: gather on CPU, the
    pytorch reference on MPS (...)"``).
    """
    mode = msda_mode()
    if mode == "pytorch":
        return f"msda: pytorch reference (triton kernel and CPU gather switched off: {ENV_VAR}=pytorch)"
    suffix = f"; {ENV_VAR}=triton calls will raise" if mode == "triton" else ""
    if not torch.cuda.is_available():
        mps = ", the pytorch reference on MPS" if torch.backends.mps.is_available() else ""
        return f"msda: gather on CPU{mps} (triton kernel unavailable: no CUDA device{suffix})"
    kernel = load_kernel()
    if kernel.fn is not None:
        return f"msda: triton ({kernel.label}); CPU tensors: gather{suffix}"
    return (
        f"msda: pytorch reference on CUDA (triton kernel unavailable: {kernel.reason}{suffix}); "
        "CPU tensors: gather"
    )


def _fall_back(mode: str, reason: str) -> None:
    """Raise under ``UVOSAM_MSDA=triton``, else warn once that CUDA calls use the slower reference."""
    global _warned_fallback  # noqa: PLW0603 - warn once per process
    if mode == "triton":
        raise SetupError(
            f"{ENV_VAR}=triton but the Triton deformable-attention kernel cannot be used: "
            f"{reason}. Fix that (e.g. pip install triton, CUDA tensors) or set {ENV_VAR}=auto "
            "to fall back to PyTorch."
        )
    if not _warned_fallback:
        _warned_fallback = True
        warnings.warn(
            "multi-scale deformable attention falls back to the slower PyTorch reference on "
            f"CUDA: {reason}",
            RuntimeWarning,
            stacklevel=4,
        )


def _select_kernel(
    device: torch.device, mode: str, needs_grad: bool = False
) -> Callable[..., torch.Tensor] | None:
    """The fused function for tensors on ``device`` (Triton on CUDA; the gather on CPU unless gradients are
    needed: its backward is slower than the reference's), or None for the reference (raises / warns as ``mode``
    says)."""
    if mode == "pytorch":
        return None
    if device.type != "cuda":
        if mode == "triton":
            _fall_back(mode, f"the tensors are on {device}, the kernel needs CUDA tensors")
        return ms_deform_attn_gather if device.type == "cpu" and not needs_grad else None
    kernel = load_kernel()
    if kernel.fn is None:
        _fall_back(mode, kernel.reason)
    return kernel.fn


def ms_deform_attn(
    value: torch.Tensor,
    spatial_shapes: torch.Tensor,
    level_start_index: torch.Tensor,
    sampling_locations: torch.Tensor,
    attention_weights: torch.Tensor,
) -> torch.Tensor:
    """Multi-scale deformable attention as called by the model (same arguments/return as the reference, plus
    ``level_start_index`` (L,) int64, the exclusive cumulative sum of ``H_l * W_l`` used by fused kernels).

    Runs the Triton kernel for CUDA tensors when it is available and the gather for CPU tensors that need no
    gradients, unless switched off (module docstring).
    """
    needs_grad = torch.is_grad_enabled() and any(
        t.requires_grad for t in (value, sampling_locations, attention_weights)
    )
    fused = _select_kernel(value.device, msda_mode(), needs_grad)
    if fused is not None:
        return fused(
            value, spatial_shapes, level_start_index, sampling_locations, attention_weights
        )
    return ms_deform_attn_pytorch(value, spatial_shapes, sampling_locations, attention_weights)
