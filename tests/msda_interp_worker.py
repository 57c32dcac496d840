"""Run this checkout's ``ops/`` kernels in Triton's CPU interpreter on saved cases (helper of test_msda_kernel.py).

Usage: ``TRITON_INTERPRET=1 python msda_interp_worker.py CASES.pt RESULTS.pt``, or
``... msda_interp_worker.py --detector FIXTURE_DIR NUM_FRAMES RESULTS.pt`` to run the ``idol_small_seed0`` detector
on its first frames with every deformable-attention call going through the kernel. The interpreter only works when
Triton itself is imported under ``TRITON_INTERPRET=1`` (its standard library, e.g. ``tl.sum``, is ``@jit`` code), so
it needs a fresh process: a test session may already have imported Triton for real.

CASES.pt: ``{name: {"inputs": {arg: tensor}, "grad_out": tensor | None, "block_q": int | None}}``.
RESULTS.pt: ``{"__file__": path of the loaded package, "__triton__": path of the triton package that ran,
name: {"output": ..., "grad_value": ..., "grad_sampling_locations": ..., "grad_attention_weights": ...}}`` (grads
only when grad_out was given).
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import torch

ARGS = ("value", "spatial_shapes", "level_start_index", "sampling_locations", "attention_weights")
GRADS = {
    "value": "grad_value",
    "sampling_locations": "grad_sampling_locations",
    "attention_weights": "grad_attention_weights",
}


def load_ops(init: Path):
    """This checkout's ops package under its install name ``uvosam_ops``, by file location."""
    spec = importlib.util.spec_from_file_location(
        "uvosam_ops", init, submodule_search_locations=[str(init.parent)]
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules["uvosam_ops"] = module
    spec.loader.exec_module(module)
    return module


def run_case(ops, case: dict) -> dict:
    inputs = {k: v.clone().requires_grad_(k in GRADS) for k, v in case["inputs"].items()}
    out = ops.ms_deform_attn_triton(*(inputs[k] for k in ARGS), block_q=case["block_q"])
    result = {"output": out.detach()}
    if case["grad_out"] is not None:
        out.backward(case["grad_out"])
        result.update({GRADS[k]: inputs[k].grad for k in GRADS})
    return result


def run_detector(ops, fixture_dir: Path, num_frames: int) -> dict:
    """The fixture detector's outputs on its first ``num_frames`` frames, deformable attention by the kernel."""
    import numpy as np
    from model_helpers import small_detector

    from uvosam.tracker import deform_attn

    calls = []

    def kernel(*args):
        calls.append(1)
        return ops.ms_deform_attn_triton(*args)

    deform_attn.ms_deform_attn = kernel  # what MSDeformAttn.forward calls
    det = small_detector(fixture_dir).detect_frames(
        np.load(fixture_dir / "frames.npy")[:num_frames]
    )
    return {
        "pred_logits": det.logits,
        "pred_boxes": det.boxes_cxcywh_norm,
        "pred_inst_embed": det.embeddings,
        "kernel_calls": len(calls),
    }


def main(*argv: str) -> None:
    if os.environ.get("TRITON_INTERPRET") != "1":
        raise SystemExit("run with TRITON_INTERPRET=1")
    ops = load_ops(Path(__file__).resolve().parents[1] / "ops" / "__init__.py")
    if not ops.INTERPRETED:
        raise SystemExit("the kernels were not decorated in interpreter mode")
    import triton  # already imported (under TRITON_INTERPRET=1) by the kernels

    if argv[0] == "--detector":
        fixture_dir, num_frames, results_path = Path(argv[1]), int(argv[2]), argv[3]
        torch.save(run_detector(ops, fixture_dir, num_frames), results_path)
        return
    cases_path, results_path = argv

    results = {"__file__": ops.__file__, "__triton__": triton.__file__}
    for name, case in torch.load(cases_path).items():
        results[name] = run_case(ops, case)
    torch.save(results, results_path)


if __name__ == "__main__":
    main(*sys.argv[1:])
