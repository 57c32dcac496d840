"""The Triton MSDA kernel (``ops/``, imported as ``uvosam_ops``) against the PyTorch reference and the fixtures.

CPU tests run this checkout's kernels in Triton's interpreter. That needs Triton imported under
``TRITON_INTERPRET=1`` (its ``tl.sum`` etc. are ``@jit`` code), which a test session that already imported Triton
cannot undo, so one fresh subprocess (``msda_interp_worker.py``) runs every case and the tests compare its results
with the reference computed here. The interpreter costs ~0.1-0.5 s per program, hence tiny shapes.
``gpu`` tests (opt-in, ``-m gpu``) run the compiled kernel on CUDA through the dispatcher.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from model_helpers import OUTPUT_ATOL
from msda_helpers import (
    ARGS,
    KEYS,
    ODD,
    assert_scaled_close,
    border_inputs,
    fixture_inputs,
    forward_backward,
    grad_for,
    make_inputs,
    reference,
)

from uvosam.tracker import msda
from uvosam.tracker.msda import ms_deform_attn

REPO = Path(__file__).resolve().parents[1]
WORKER = Path(__file__).with_name("msda_interp_worker.py")


def build_cases(fixtures_dir: Path) -> dict:
    """Every interpreter case: name -> {"inputs", "grad_out", "block_q"} (see msda_interp_worker.py)."""
    cases = {}
    for tag, dtype, seed in (("f32", torch.float32, 1), ("f64", torch.float64, 1)):
        inputs = make_inputs(**ODD, dtype=dtype, seed=seed)
        cases[f"odd_{tag}"] = {"inputs": inputs, "grad_out": grad_for(inputs, 2), "block_q": 4}
    for tag, dtype in (("fp16", torch.float16), ("bf16", torch.bfloat16)):
        cases[f"odd_{tag}"] = {
            "inputs": make_inputs(**ODD, dtype=dtype, seed=4),
            "grad_out": None,
            "block_q": None,
        }
    empty = make_inputs(**{**ODD, "lq": 0})
    cases["empty_f32"] = {"inputs": empty, "grad_out": grad_for(empty, 2), "block_q": None}
    cases["borders_f64"] = {
        "inputs": border_inputs(),
        "grad_out": torch.ones(1, 8, 4, dtype=torch.float64),
        "block_q": None,
    }
    for name, dtype in (
        ("A", torch.float32),
        ("B", torch.float32),
        ("C", torch.float32),
        ("C", torch.float64),
    ):
        inputs, grad_out, _ = fixture_inputs(fixtures_dir, name, dtype)
        cases[f"fixture_{name}_{str(dtype)[6:]}"] = {
            "inputs": inputs,
            "grad_out": grad_out,
            "block_q": None,
        }
    return cases


def split_cases(cases: dict, parts: int) -> list[dict]:
    """Greedy balance by interpreter work (~ programs x points, x3 with a backward pass)."""

    def cost(case):
        return case["inputs"]["attention_weights"].numel() * (
            3 if case["grad_out"] is not None else 1
        )

    bins = [({}, [0]) for _ in range(parts)]
    for name in sorted(cases, key=lambda k: -cost(cases[k])):
        group, total = min(bins, key=lambda b: b[1][0])
        group[name] = cases[name]
        total[0] += cost(cases[name])
    return [group for group, _ in bins if group]


@pytest.fixture(scope="module")
def interpreted(fixtures_dir, tmp_path_factory) -> tuple[dict, dict]:
    """(cases, results): every case run once by this checkout's kernels in fresh interpreter-mode processes
    (two, in parallel: the interpreter is single-threaded and the CI machine has 2 cores)."""
    work = tmp_path_factory.mktemp("msda_interp")
    cases = build_cases(fixtures_dir)
    pythonpath = os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])
    env = dict(os.environ, TRITON_INTERPRET="1", PYTHONPATH=pythonpath)
    procs = []
    for i, group in enumerate(split_cases(cases, 2)):
        torch.save(group, work / f"cases{i}.pt")
        cmd = [
            sys.executable,
            str(WORKER),
            str(work / f"cases{i}.pt"),
            str(work / f"results{i}.pt"),
        ]
        procs.append(
            subprocess.Popen(
                cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
            )
        )
    results = {}
    for i, proc in enumerate(procs):
        log, _ = proc.communicate(timeout=240)
        assert proc.returncode == 0, f"interpreter worker failed:\n{log[-4000:]}"
        part = torch.load(work / f"results{i}.pt")
        assert Path(part.pop("__file__")) == REPO / "ops" / "__init__.py", (
            "tested another tree's ops/"
        )
        assert part.pop("__triton__") == importlib.util.find_spec("triton").origin, (
            "the interpreter worker imported another triton than this test session would "
            "(PYTHONPATH / environment not inherited?)"
        )
        results.update(part)
    assert results.keys() == cases.keys()
    return cases, results


def test_fixture_detector_through_the_interpreted_kernel_matches_the_original(
    fixtures_dir, tmp_path
):
    """Tracker parity with the kernel backend, on CPU: the ``idol_small_seed0`` detector with every deformable-
    attention call (2 encoder + 2 decoder layers) run by this kernel in the interpreter reproduces the original
    code's outputs on frame 0 within the fixture's tolerances (as ``test_tracker_model`` does with the reference)."""
    results = tmp_path / "detector.pt"
    cmd = [
        sys.executable,
        str(WORKER),
        "--detector",
        str(fixtures_dir / "idol_small_seed0"),
        "1",
        str(results),
    ]
    env = dict(
        os.environ,
        TRITON_INTERPRET="1",
        PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    )
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240, check=False)
    assert done.returncode == 0, done.stderr[-4000:]
    got = torch.load(results)
    assert got.pop("kernel_calls") == 4
    want = dict(np.load(fixtures_dir / "idol_small_seed0" / "outputs.npz"))
    for name, tol in OUTPUT_ATOL.items():
        err = float((got[name] - torch.from_numpy(want[name][:1])).abs().max())
        assert err <= tol, (name, err)


def check_against_reference(case: dict, got: dict, tol: float) -> dict:
    """Compare an interpreter result with autograd through the reference (same dtype); returns the reference."""
    if case["grad_out"] is None:
        want = {"output": reference(*(case["inputs"][k] for k in ARGS))}
    else:
        want = forward_backward(reference, case["inputs"], case["grad_out"])
    for key, expected in want.items():
        assert got[key].dtype == case["inputs"]["value"].dtype, key
        assert_scaled_close(got[key], expected, tol, key)
    return want


def test_forward_and_gradients_match_reference_float32_odd_shapes(interpreted):
    cases, results = interpreted
    got = results["odd_f32"]
    assert got["output"].shape == (2, 7, 15)
    want = check_against_reference(cases["odd_f32"], got, 1e-5)
    loc_grad = want["grad_sampling_locations"]
    assert (loc_grad != 0).any() and (loc_grad == 0).any(), (
        "want samples both inside and fully outside the maps"
    )


def test_forward_and_gradients_match_reference_float64_odd_shapes(interpreted):
    cases, results = interpreted
    check_against_reference(cases["odd_f64"], results["odd_f64"], 1e-12)


def test_no_queries(interpreted):
    _, results = interpreted
    got = results["empty_f32"]
    assert got["output"].shape == (2, 0, 15)
    assert got["grad_value"].shape == (2, 21, 3, 5) and not got["grad_value"].any()
    assert got["grad_sampling_locations"].shape == (2, 0, 3, 2, 2, 2)


def test_exact_pixel_centres_and_borders(interpreted):
    cases, results = interpreted
    check_against_reference(cases["borders_f64"], results["borders_f64"], 1e-12)


@pytest.mark.parametrize("tag, tol", [("fp16", 2e-3), ("bf16", 1.6e-2)])
def test_half_precision_forward(interpreted, tag, tol):
    """fp16 / bf16 inputs: float32 accumulation, output in the input dtype (only the final rounding differs)."""
    cases, results = interpreted
    inputs = cases[f"odd_{tag}"]["inputs"]
    out = results[f"odd_{tag}"]["output"]
    assert out.dtype == inputs["value"].dtype
    expected = reference(
        *(inputs[k].float() if inputs[k].is_floating_point() else inputs[k] for k in ARGS)
    )
    assert_scaled_close(out, expected, tol, f"{tag} output")


@pytest.mark.parametrize("name", ["A_float32", "B_float32", "C_float32", "C_float64"])
def test_fixture_sets(interpreted, fixtures_dir, name):
    """Kernel vs the float64 recordings of the original code (README: ~1e-5 outputs, ~1e-3 rel. location grads)."""
    _, results = interpreted
    set_name, dtype = name.split("_")
    _, _, expected = fixture_inputs(fixtures_dir, set_name, getattr(torch, dtype))
    tol = 1e-5 if dtype == "float32" else 1e-12
    for key in KEYS:
        assert_scaled_close(
            results[f"fixture_{name}"][key], expected[key], tol, f"set {name} {key}"
        )


def test_launcher_rejects_bad_inputs():
    """Checks run before any launch (so this uses the real, non-interpreted package on CPU tensors)."""
    ops = msda._import_ops_package()
    good = make_inputs(**ODD)
    bad = dict(good, attention_weights=good["attention_weights"][:, :, :2])
    with pytest.raises(ValueError, match="inconsistent shapes"):
        ops.ms_deform_attn_triton(*(bad[k] for k in ARGS))
    with pytest.raises(ValueError, match="power of two"):
        ops.ms_deform_attn_triton(*(good[k] for k in ARGS), block_q=6)
    if not ops.INTERPRETED:
        with pytest.raises(ValueError, match="needs CUDA tensors"):
            ops.ms_deform_attn_triton(*(good[k] for k in ARGS))


def test_kernels_compile_for_h100_without_register_spills():
    """Lower forward and backward to sm_90 cubins with the ptxas shipped in Triton's wheel (no GPU needed)."""
    import triton.backends

    if "nvidia" not in triton.backends.backends:
        pytest.skip("this triton has no NVIDIA backend")
    msda._import_ops_package()
    compile_report = importlib.import_module("uvosam_ops.compile_check").compile_report
    for dtype in ("fp32", "bf16"):
        for report in compile_report(dtype, arch=90):
            assert report.spill_bytes == 0 and report.registers <= 128, str(report)


class _SM90Driver:
    """Just enough of a Triton driver for the JIT to compile (not launch) for an H100 on a machine without one."""

    def get_current_device(self):
        return 0

    def get_current_stream(self, device=None):
        return 0

    def get_current_target(self):
        from triton.backends.compiler import GPUTarget

        return GPUTarget("cuda", 90, 32)


@pytest.fixture
def sm90_stub_driver():
    """Make ``_SM90Driver`` Triton's active driver for one test, then restore the driver state exactly (without
    creating the real driver, which needs a GPU). Saves the whole state because its layout varies: triton 3.4 keeps
    ``active`` as an attribute, 3.5+ a property over ``_active``."""
    from triton.runtime.driver import driver

    saved = dict(vars(driver))
    driver.set_active(_SM90Driver())
    yield
    vars(driver).clear()
    vars(driver).update(saved)


def test_launcher_compiles_through_the_triton_jit_like_the_compile_check(
    monkeypatch, sm90_stub_driver
):
    """The launcher's own ``kernel[grid](...)`` calls, with Triton's JIT doing the argument binding, specialisation
    and option parsing (which the interpreter and ``compile_report``'s hand-written signature bypass), compile for
    sm_90 under a stub driver; the cubins use the same resources as ``compile_report`` reports. Nothing is launched:
    ``run`` is forced to ``warmup=True``."""
    import triton.backends

    if "nvidia" not in triton.backends.backends:
        pytest.skip("this triton has no NVIDIA backend")
    msda._import_ops_package()
    kernels = importlib.import_module("uvosam_ops._kernels")
    function = importlib.import_module("uvosam_ops.function")
    compile_check = importlib.import_module("uvosam_ops.compile_check")
    compiled = []
    for kernel in (kernels._msda_fwd_kernel, kernels._msda_bwd_kernel):
        # Fresh per-device caches: nothing compiled for the stub driver may outlive this test.
        monkeypatch.setattr(
            kernel, "device_caches", type(kernel.device_caches)(kernel.create_binder)
        )

        def compile_only(*args, grid, warmup, _kernel=kernel, **kwargs):
            del warmup
            compiled.append(type(_kernel).run(_kernel, *args, grid=grid, warmup=True, **kwargs))
            return compiled[-1]

        monkeypatch.setattr(kernel, "run", compile_only, raising=False)
    # Decoder-like head shape (M = 8, D = 32, 4 points); Lq = 37 and S = 69 are not multiples of 16, like the
    # compile check's unspecialised i32 arguments.
    for dtype, tag in ((torch.float32, "fp32"), (torch.bfloat16, "bf16")):
        inputs = make_inputs([(6, 9), (3, 5)], n=2, lq=37, m=8, d=32, p=4, dtype=dtype)
        leaves = {k: v.requires_grad_(v.is_floating_point()) for k, v in inputs.items()}
        out = function.MSDeformAttnFunction.apply(*(leaves[k] for k in ARGS), None)
        out.backward(torch.ones_like(out))
        launched = [compile_check._resource_usage(k.asm["cubin"]) for k in compiled[-2:]]
        expected = compile_check.compile_report(tag, arch=90, levels=2, points=4)
        assert [k.name for k in compiled[-2:]] == ["_msda_fwd_kernel", "_msda_bwd_kernel"]
        assert launched == [(r.registers, r.spill_bytes, r.shared_bytes) for r in expected], tag


def test_grad_for_lives_on_the_inputs_device():
    """The gpu test's grad_output must be on CUDA with its inputs: ``out.backward(cpu_grad)`` on a CUDA output
    raises "invalid gradient at index 0 - expected device cuda:0 but got cpu" (shown here with the meta device)."""
    inputs = {k: v.to("meta") for k, v in make_inputs(**ODD).items()}
    assert grad_for(inputs, 7).device.type == "meta"
    out = inputs["value"].requires_grad_() * 2
    with pytest.raises(RuntimeError, match="expected device meta but got cpu"):
        out.backward(torch.ones(out.shape))


def test_launches_run_on_the_inputs_cuda_device(monkeypatch):
    """Triton launches on torch's current CUDA device, not the arguments' (triton-lang/triton#2441), so with
    ``--device cuda:1`` the kernels would run on cuda:0. Both launches must happen inside
    ``torch.cuda.device_of(value)`` (recorded with fakes: no GPU here)."""
    msda._import_ops_package()
    function = importlib.import_module("uvosam_ops.function")
    current = []  # devices of the device_of contexts entered and not yet left

    @contextlib.contextmanager
    def device_of(tensor):
        current.append(tensor.device)
        try:
            yield
        finally:
            current.pop()

    launched = []

    class FakeKernel:
        def __init__(self, name):
            self.name = name

        def __getitem__(self, grid):
            return lambda *args, **kwargs: launched.append((self.name, list(current)))

    monkeypatch.setattr(torch.cuda, "device_of", device_of)
    monkeypatch.setattr(function, "_msda_fwd_kernel", FakeKernel("fwd"))
    monkeypatch.setattr(function, "_msda_bwd_kernel", FakeKernel("bwd"))
    inputs = make_inputs(**ODD)
    leaves = {k: v.requires_grad_(v.is_floating_point()) for k, v in inputs.items()}
    out = function.MSDeformAttnFunction.apply(*(leaves[k] for k in ARGS), None)
    out.backward(torch.ones_like(out))
    cpu = [inputs["value"].device]
    assert launched == [("fwd", cpu), ("bwd", cpu)]


def test_reference_gradcheck_float64():
    inputs = make_inputs([(3, 4), (2, 1)], n=1, lq=3, m=2, d=3, p=2, dtype=torch.float64, seed=5)
    for key in ("value", "sampling_locations", "attention_weights"):
        inputs[key].requires_grad_()
    assert torch.autograd.gradcheck(reference, tuple(inputs[k] for k in ARGS), eps=1e-6, atol=1e-6)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize(
    "dtype, tol",
    [
        (torch.float32, 1e-5),
        (torch.float64, 1e-12),
        (torch.float16, 2e-3),
        (torch.bfloat16, 1.6e-2),
    ],
)
def test_gpu_dispatcher_matches_reference(dtype, tol, monkeypatch):
    """ms_deform_attn on CUDA runs the compiled kernel; outputs and gradients match the float64 reference."""
    monkeypatch.setenv("UVOSAM_MSDA", "triton")
    assert msda.backend_status().startswith("msda: triton (uvosam_ops")
    cpu = make_inputs([(60, 108), (30, 54), (15, 27), (8, 14)], n=2, lq=300, m=8, d=32, p=4, seed=6)
    inputs = {k: v.cuda().to(dtype) if v.is_floating_point() else v.cuda() for k, v in cpu.items()}
    grad_out = grad_for(inputs, 7)
    got = forward_backward(ms_deform_attn, inputs, grad_out)
    exact = {k: v.double() if v.is_floating_point() else v for k, v in inputs.items()}
    want = forward_backward(reference, exact, grad_out.double())
    for key in KEYS:
        assert got[key].dtype == dtype, key
        assert_scaled_close(
            got[key], want[key], tol if key == "output" else 10 * tol, f"{dtype} {key}"
        )
