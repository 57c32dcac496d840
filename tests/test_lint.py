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


def test_no_python_line_is_over_120_columns():
    """No line of the repository's Python files (tracked, or new and not ignored) is over 120 columns, counted in
    characters. The formatter keeps code to 100 but leaves long strings, comments and docstrings alone (E501 is off:
    they may run to ~120); a docstring line of 155 columns (uploads.py) and 26 more in the library, the command
    line and the tests slipped past it."""
    try:
        listed = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard", "--", "*.py"],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except FileNotFoundError:
        pytest.skip("git is not installed: the Python files are the ones `git ls-files` lists")
    if listed.returncode != 0:
        pytest.skip(
            f"not a git checkout ({listed.stderr.strip()}): the Python files are the ones it lists"
        )
    paths = [REPO / name for name in listed.stdout.split("\0") if name]
    assert any(path.name == "test_lint.py" for path in paths), "git listed no test_lint.py"
    long = [
        f"{path.relative_to(REPO)}:{number} ({len(line)} columns)"
        for path in paths
        if path.is_file()
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if len(line) > 120
    ]
    assert not long, "lines over 120 columns:\n" + "\n".join(long)
