"""The MSDA dispatcher (``uvosam.tracker.msda``): backend choice, recorded reasons, status line, kernel loading."""

from __future__ import annotations

import subprocess
import sys
import types
import warnings
from pathlib import Path

import pytest
import torch
from msda_helpers import record_backend_calls

from uvosam.tracker import msda

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def fresh_dispatcher(monkeypatch):
    """Each test starts with no cached kernel load, no warning issued yet and UVOSAM_MSDA unset."""
    monkeypatch.delenv("UVOSAM_MSDA", raising=False)
    monkeypatch.setattr(msda, "_warned_fallback", False)
    msda.load_kernel.cache_clear()
    yield
    msda.load_kernel.cache_clear()


def fake_ops(calls: list | None = None, *, interpreted: bool = False) -> types.ModuleType:
    """A stand-in for ``uvosam_ops`` whose kernel records its calls and returns a marker tensor."""
    module = types.ModuleType("uvosam_ops")
    module.__version__ = "0.1"
    module.INTERPRETED = interpreted

    def kernel(value, spatial_shapes, level_start_index, sampling_locations, attention_weights):
        if calls is not None:
            calls.append(value.device)
        return torch.full((1,), 42.0)

    module.ms_deform_attn_triton = kernel
    return module


def use_ops(monkeypatch, outcome) -> list:
    """Make the loader return ``outcome`` (a module) or raise it (an exception); returns the load-call log."""
    loads = []

    def importer(root=None):
        loads.append(root)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    monkeypatch.setattr(msda, "_import_ops_package", importer)
    return loads


def tiny_inputs():
    shapes = torch.tensor([[2, 3]])
    return (
        torch.randn(1, 6, 2, 4),
        shapes,
        torch.tensor([0]),
        torch.rand(1, 5, 2, 1, 2, 2),
        torch.rand(1, 5, 2, 1, 2).softmax(-1),
    )


@pytest.mark.parametrize(("mode", "backend"), [("auto", "gather"), ("pytorch", "reference")])
def test_cpu_tensors_use_the_gather_or_the_reference_without_loading_the_kernel(
    monkeypatch, mode, backend
):
    monkeypatch.setenv("UVOSAM_MSDA", mode)
    loads = use_ops(monkeypatch, fake_ops())
    called = record_backend_calls(monkeypatch)
    value, shapes, starts, loc, attn = tiny_inputs()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = msda.ms_deform_attn(value, shapes, starts, loc, attn)
    assert called == [f"ms_deform_attn_{'pytorch' if backend == 'reference' else backend}"]
    torch.testing.assert_close(
        out, msda.ms_deform_attn_pytorch(value, shapes, loc, attn), rtol=1e-5, atol=1e-6
    )
    assert loads == []


def test_cpu_calls_that_need_gradients_keep_the_reference(monkeypatch):
    """The gather's backward is slower than grid_sample's: training on CPU keeps the reference."""
    called = record_backend_calls(monkeypatch)
    value, shapes, starts, loc, attn = tiny_inputs()
    msda.ms_deform_attn(value.requires_grad_(), shapes, starts, loc, attn).sum().backward()
    assert value.grad is not None and called == ["ms_deform_attn_pytorch"]
    with torch.no_grad():
        msda.ms_deform_attn(value, shapes, starts, loc, attn)
    assert called[-1] == "ms_deform_attn_gather"


def test_cuda_tensors_get_the_kernel_when_it_loaded(monkeypatch):
    calls = []
    use_ops(monkeypatch, fake_ops(calls))
    kernel = msda._select_kernel(torch.device("cuda"), "auto")
    assert kernel is not None
    kernel(*tiny_inputs())
    assert len(calls) == 1


def test_pytorch_mode_switches_the_kernel_off_for_cuda(monkeypatch):
    loads = use_ops(monkeypatch, fake_ops())
    assert msda._select_kernel(torch.device("cuda"), "pytorch") is None
    assert loads == []


def test_auto_falls_back_with_one_warning_naming_the_reason(monkeypatch):
    use_ops(monkeypatch, ImportError("No module named 'triton'"))
    with pytest.warns(RuntimeWarning, match="No module named 'triton'"):
        assert msda._select_kernel(torch.device("cuda"), "auto") is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert msda._select_kernel(torch.device("cuda"), "auto") is None


def test_triton_mode_raises_with_the_recorded_reason(monkeypatch):
    use_ops(monkeypatch, ImportError("No module named 'triton'"))
    with pytest.raises(RuntimeError, match=r"UVOSAM_MSDA=triton .*No module named 'triton'"):
        msda._select_kernel(torch.device("cuda"), "triton")


def test_triton_mode_with_cpu_tensors_raises(monkeypatch):
    monkeypatch.setenv("UVOSAM_MSDA", "triton")
    with pytest.raises(RuntimeError, match="needs CUDA tensors"):
        msda.ms_deform_attn(*tiny_inputs())


def test_interpreter_mode_kernel_is_not_used_for_cuda(monkeypatch):
    use_ops(monkeypatch, fake_ops(interpreted=True))
    load = msda.load_kernel()
    assert load.fn is None and "TRITON_INTERPRET" in load.reason


def test_unknown_mode_is_rejected(monkeypatch):
    monkeypatch.setenv("UVOSAM_MSDA", "cuda")
    with pytest.raises(ValueError, match="auto, pytorch, triton"):
        msda.ms_deform_attn(*tiny_inputs())


def test_backend_status_lines(monkeypatch):
    import triton

    monkeypatch.setenv("UVOSAM_MSDA", "pytorch")
    assert msda.backend_status() == (
        "msda: pytorch reference (triton kernel and CPU gather switched off: UVOSAM_MSDA=pytorch)"
    )
    monkeypatch.setenv("UVOSAM_MSDA", "auto")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert (
        msda.backend_status() == "msda: gather on CPU (triton kernel unavailable: no CUDA device)"
    )
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)  # a Mac: --device mps
    assert msda.backend_status() == (
        "msda: gather on CPU, the pytorch reference on MPS (triton kernel unavailable: no CUDA device)"
    )
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    use_ops(monkeypatch, fake_ops())
    assert msda.backend_status() == (
        f"msda: triton (uvosam_ops 0.1, triton {triton.__version__}); CPU tensors: gather"
    )
    msda.load_kernel.cache_clear()
    use_ops(monkeypatch, ImportError("No module named 'triton'"))
    monkeypatch.setenv("UVOSAM_MSDA", "triton")
    assert msda.backend_status() == (
        "msda: pytorch reference on CUDA (triton kernel unavailable: ImportError: No module named "
        "'triton'; UVOSAM_MSDA=triton calls will raise); CPU tensors: gather"
    )


def test_checkout_kernel_package_is_this_trees_ops(monkeypatch):
    """In a source checkout the loader takes <repo>/ops, even when another uvosam_ops is importable."""
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    monkeypatch.delitem(sys.modules, "uvosam_ops", raising=False)
    ops = msda._import_ops_package()
    assert Path(ops.__file__) == REPO / "ops" / "__init__.py"
    assert sys.modules["uvosam_ops"] is ops and not ops.INTERPRETED
    assert callable(ops.ms_deform_attn_triton) and ops.__version__ == "0.1"
    assert msda._import_ops_package() is ops


def test_installed_kernel_package_is_imported_by_name(monkeypatch, tmp_path):
    """Outside a checkout (an installed wheel: no pyproject beside uvosam/) ``import uvosam_ops`` is used."""
    site = tmp_path / "site"
    (site / "uvosam_ops").mkdir(parents=True)
    (site / "uvosam_ops" / "__init__.py").write_text("__version__ = 'installed'\n")
    (tmp_path / "ops").mkdir()
    (tmp_path / "ops" / "__init__.py").write_text(
        "raise AssertionError('a stray ops/ folder must not load')\n"
    )
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.delitem(sys.modules, "uvosam_ops", raising=False)
    assert msda._import_ops_package(tmp_path).__version__ == "installed"
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'something-else'\n")
    monkeypatch.delitem(sys.modules, "uvosam_ops", raising=False)
    assert msda._import_ops_package(tmp_path).__version__ == "installed"


def test_importing_uvosam_does_not_import_triton():
    code = "import sys, uvosam, uvosam.tracker.msda; assert 'triton' not in sys.modules"
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
