"""The repository is lint-clean with the ruff that pyproject.toml pins in its "test" extra: `ruff check .` (the
rules chosen in [tool.ruff.lint]) and `ruff format --check .` find nothing. Another ruff version checks other
rules and formats differently, so a different installed version fails here too, saying what to install."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
INSTALL = 'pip install -e ".[test]"'


def pinned_ruff() -> str:
    """The version in pyproject.toml's ``"ruff==X.Y.Z"`` requirement."""
    found = re.findall(r'"ruff==([^"\s;]+)"', (REPO / "pyproject.toml").read_text(encoding="utf-8"))
    assert len(found) == 1, f"pyproject.toml should pin ruff once in its test extra; found {found}"
    return found[0]


@pytest.fixture(scope="module")
def ruff_version() -> str:
    pinned = pinned_ruff()
    if importlib.util.find_spec("ruff") is None:
        pytest.fail(
            f"ruff is not installed for {sys.executable}: run {INSTALL} (it pins ruff=={pinned})",
            pytrace=False,
        )
    installed = metadata.version("ruff")
    if installed != pinned:
        pytest.fail(
            f"ruff {installed} is installed but the project pins ruff=={pinned}: run {INSTALL}",
            pytrace=False,
        )
    return installed


@pytest.mark.parametrize(
    "args",
    [("check", "--output-format", "concise", "."), ("format", "--check", ".")],
    ids=["check", "format"],
)
def test_pinned_ruff_finds_nothing(ruff_version, args):
    command = ["ruff", *args, "--no-cache"]
    done = subprocess.run(
        [sys.executable, "-m", *command],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, (
        f"`{' '.join(command)}` (ruff {ruff_version}) found:\n{done.stdout}{done.stderr}"
    )
