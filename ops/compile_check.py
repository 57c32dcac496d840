"""Compile the kernels for an NVIDIA target without a GPU and report their register use.

Triton's wheel ships ``ptxas`` and ``cuobjdump``, so ``triton.compile`` can lower the kernels all the way to a
cubin for e.g. sm_90 (H100) on a CPU-only machine. That catches compile errors that Triton's interpreter does
not (it is far more permissive) and shows register pressure: ``spill_bytes > 0`` means the kernel spills to local
memory, which is slow. Used by ``benchmarks/msda.py --compile-check`` and the tests; needs no CUDA driver.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import triton
import triton.language as tl
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource
from triton.knobs import nvidia as nvidia_knobs

from ._kernels import _msda_bwd_kernel, _msda_fwd_kernel
from .function import _NUM_WARPS, _TILE, _launch_config

_POINTER_ARGS = {
    "fwd": ("value_ptr", "shapes_ptr", "starts_ptr", "loc_ptr", "attn_ptr", "out_ptr"),
    "bwd": (
        "value_ptr", "shapes_ptr", "starts_ptr", "loc_ptr", "attn_ptr", "grad_out_ptr",
        "grad_value_ptr", "grad_loc_ptr", "grad_attn_ptr",
    ),
}  # fmt: skip


@dataclass(frozen=True)
class KernelReport:
    """Resource use of one compiled kernel (per thread, from ``cuobjdump --dump-resource-usage``)."""

    kernel: str
    dtype: str
    arch: int
    block_q: int
    registers: int
    spill_bytes: int
    shared_bytes: int

    def __str__(self) -> str:
        return (
            f"{self.kernel} {self.dtype} sm_{self.arch} BLOCK_Q={self.block_q}: {self.registers} "
            f"registers, {self.spill_bytes} B spilled, {self.shared_bytes} B shared"
        )


def _pointer_type(arg: str, dtype: str) -> str:
    if arg in ("shapes_ptr", "starts_ptr"):
        return "*i64"
    if arg == "grad_value_ptr":
        return "*fp64" if dtype == "fp64" else "*fp32"
    return f"*{dtype}"


def _resource_usage(cubin: bytes) -> tuple[int, int, int]:
    """(registers, stack + local bytes, shared bytes) of the single kernel in ``cubin``."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "kernel.cubin"
        path.write_bytes(cubin)
        text = subprocess.run(
            [nvidia_knobs.cuobjdump.path, "--dump-resource-usage", str(path)],
            check=True, capture_output=True, text=True,
        ).stdout  # fmt: skip
    fields = {k: int(v) for k, v in re.findall(r"(REG|STACK|LOCAL|SHARED):(\d+)", text)}
    return fields["REG"], fields["STACK"] + fields["LOCAL"], fields["SHARED"]


def compile_report(
    dtype: str = "fp32",
    *,
    arch: int = 90,
    heads: int = 8,
    head_dim: int = 32,
    levels: int = 4,
    points: int = 4,
    block_q: int | None = None,
) -> list[KernelReport]:
    """Compile forward and backward for ``dtype`` (``fp32``, ``fp16``, ``bf16``, ``fp64``) and sm_``arch``.

    Uses the launcher's own BLOCK_Q / BLOCK_D choice unless ``block_q`` is given. Raises on compile errors.
    """
    bq, bd = _launch_config(1 << 20, head_dim, _TILE, block_q)
    compute = tl.float64 if dtype == "fp64" else tl.float32
    constexprs = {
        "M": heads,
        "D": head_dim,
        "L": levels,
        "P": points,
        "BLOCK_Q": bq,
        "BLOCK_D": bd,
        "COMPUTE": compute,
    }
    reports = []
    for name, kernel in (("fwd", _msda_fwd_kernel), ("bwd", _msda_bwd_kernel)):
        signature = dict.fromkeys(kernel.arg_names, "constexpr")
        signature.update({arg: _pointer_type(arg, dtype) for arg in _POINTER_ARGS[name]})
        signature.update(S="i32", Lq="i32")
        aligned = {
            (kernel.arg_names.index(a),): [["tt.divisibility", 16]] for a in _POINTER_ARGS[name]
        }
        src = ASTSource(kernel, signature, constexprs=constexprs, attrs=aligned)
        compiled = triton.compile(
            src, target=GPUTarget("cuda", arch, 32), options={"num_warps": _NUM_WARPS}
        )
        regs, spills, shared = _resource_usage(compiled.asm["cubin"])
        reports.append(KernelReport(name, dtype, arch, bq, regs, spills, shared))
    return reports
