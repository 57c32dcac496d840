"""The entry points (``uvosam`` and ``app.py``) ask OpenMP for sleeping, not spinning, waits before torch loads it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Records OMP_WAIT_POLICY as it is when torch is first imported (OpenMP reads it then, once), then imports the module.
_PROBE = """
import os, sys
class Probe:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" and "seen" not in globals():
            globals()["seen"] = os.environ.get("OMP_WAIT_POLICY")
        return None
sys.meta_path.insert(0, Probe())
import {module}
import torch
print("at torch import:", seen)
"""


def _policy_at_torch_import(module: str, env_policy: str | None) -> str:
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if env_policy is not None:
        env["OMP_WAIT_POLICY"] = env_policy
    out = subprocess.run(
        [sys.executable, "-c", _PROBE.format(module=module)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    return out.strip().splitlines()[-1]


@pytest.mark.parametrize("module", ["uvosam_cli", "app"])
def test_passive_waits_are_asked_for_before_torch_loads(module: str) -> None:
    assert _policy_at_torch_import(module, None) == "at torch import: PASSIVE"


def test_a_users_own_policy_is_kept() -> None:
    assert _policy_at_torch_import("uvosam_cli", "ACTIVE") == "at torch import: ACTIVE"


# The order ``uvosam_app.gpu`` (which imports ZeroGPU's ``spaces`` first, where it is installed) and ``torch`` are
# first looked for in (gradio happens to try ``spaces`` too: the app must not rely on it).
_ORDER_PROBE = """
import sys
order = []
class Probe:
    def find_spec(self, name, path=None, target=None):
        if name in ("uvosam_app.gpu", "torch") and name not in order:
            order.append(name)
        return None
sys.meta_path.insert(0, Probe())
import app
print(" ".join(order))
"""


def test_app_py_imports_spaces_before_torch() -> None:
    """ZeroGPU needs ``spaces`` imported before torch sets up CUDA: ``app.py`` imports ``uvosam_app.gpu`` (which tries
    ``spaces`` first) before anything that imports torch. A change of its imports left the line out (torch came in
    through the settings' server log)."""
    out = subprocess.run(
        [sys.executable, "-c", _ORDER_PROBE],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    assert out.strip().splitlines()[-1] == "uvosam_app.gpu torch"
