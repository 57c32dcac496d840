"""The identity of the running code (``uvosam.code_identity``): the version plus a hash of the package's sources, the
same wherever a copy of the same files lies, another for any change of them."""

from __future__ import annotations

import os
import re
import shutil
import sys
from pathlib import Path

import uvosam
from uvosam import code_identity as identity
from uvosam.tracker import msda

CHECKOUT = Path(__file__).resolve().parents[1]


def _digest(package_dir: Path, ops_dir: Path) -> str:
    files = identity.source_files(package_dir, "uvosam")
    return identity.source_digest(files + identity.source_files(ops_dir, "uvosam_ops"))


def _installed_copy(site: Path) -> tuple[Path, Path]:
    """The checkout's uvosam/ and ops/ laid out as ``pip install .`` lays them out in ``site``, with compiled
    files, a hidden folder's script, a hidden file, a README and a stray JSON file that one has and the other lacks."""
    package = shutil.copytree(identity.PACKAGE_DIR, site / "uvosam")
    ops = shutil.copytree(CHECKOUT / "ops", site / "uvosam_ops")
    (package / "__pycache__").mkdir(exist_ok=True)
    (package / "__pycache__" / "extra.cpython-311.pyc").write_bytes(b"compiled")
    (package / "stale.pyc").write_bytes(b"compiled")
    (package / ".ipynb_checkpoints").mkdir()
    (package / ".ipynb_checkpoints" / "job-checkpoint.py").write_text("x = 1\n")
    (package / ".#job.py").write_text(
        "an editor's lock file\n"
    )  # a hidden file, not only a hidden folder's
    (ops / "NOTES.md").write_text("not code\n")
    (package / "coverage.json").write_text("{}")  # JSON outside data/ is not package data
    for path in package.rglob("*.py"):
        os.utime(path, (0, 0))
    return package, ops


def test_the_identity_is_the_version_and_a_hash_of_the_sources(tmp_path):
    code = identity.code_identity()
    assert re.fullmatch(re.escape(uvosam.__version__) + r"\+src\.[0-9a-f]{12}", code)
    assert identity.code_identity() is code  # computed once
    assert code.endswith(_digest(identity.PACKAGE_DIR, msda.ops_folder())[:12])


def test_a_copy_elsewhere_with_compiled_files_and_other_times_has_the_same_identity(tmp_path):
    package, ops = _installed_copy(tmp_path / "site")
    assert _digest(package, ops) == _digest(identity.PACKAGE_DIR, CHECKOUT / "ops")
    job = package / "job.py"  # a Windows checkout's line ends: Python reads the same source
    job.write_bytes(job.read_bytes().replace(b"\n", b"\r\n"))
    assert _digest(package, ops) == _digest(identity.PACKAGE_DIR, CHECKOUT / "ops")


def test_any_change_of_the_sources_changes_the_identity(tmp_path):
    package, ops = _installed_copy(tmp_path / "site")
    same = _digest(package, ops)
    changes = [
        lambda: (package / "render.py").write_text((package / "render.py").read_text() + "\n"),
        lambda: (package / "eval" / "new.py").write_text(""),
        lambda: (package / "render.py").rename(package / "render2.py"),
        lambda: (package / "data" / "class_names.json").write_text("{}"),
        lambda: (ops / "function.py").write_text("# another kernel\n"),
    ]
    seen = {same}
    for change in changes:
        change()
        seen.add(_digest(package, ops))
    assert len(seen) == len(changes) + 1


def test_an_install_hashes_the_installed_kernel_package(tmp_path, monkeypatch):
    """Without a checkout around it, the kernel's folder is the installed ``uvosam_ops`` (found, not imported)."""
    _, ops = _installed_copy(tmp_path / "site")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.delitem(sys.modules, msda.OPS_PACKAGE, raising=False)
    assert msda.ops_folder(tmp_path / "not-a-checkout") == ops
    assert msda.OPS_PACKAGE not in sys.modules
    assert msda.ops_folder(CHECKOUT) == CHECKOUT / "ops"
