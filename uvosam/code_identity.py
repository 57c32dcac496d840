"""Which code runs: the uvosam version plus a short hash of the package's own source files, ``"0.1.0+src.1a2b3c4d5e6f"``
(a PEP 440 local version).

The version alone cannot tell two checkouts apart (it has been 0.1.0 at every commit), so the records of outputs
(``run.json``, a mask cache's, ``davis-run``'s folder record, benchmark records) carry this beside it, under
``CODE_KEY``: masks made by other code differ in a fraction of a percent of their pixels, and ``davis-run`` refuses to
add to a folder whose masks another code made.

Hashed: every ``*.py`` of the ``uvosam`` package and its data ``*.json`` (the class names), and every ``*.py`` of the
deformable-attention kernel package (a checkout's ``ops/``, else the installed ``uvosam_ops``: the one
``uvosam.tracker.msda`` loads), each as its path relative to its package (``/``-separated, under the installed
package's name) and its bytes, with CRLF read as LF (as Python reads source). So a git checkout and a ``pip install .``
of the same commit get the same identity, wherever they lie; compiled files (``__pycache__``, ``.pyc``), modification
times, other files and folders starting with a dot are not hashed. No git is run. Computed once per process, when
first asked for (about 100 files; milliseconds).
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterable
from pathlib import Path

from uvosam import __version__
from uvosam.tracker.msda import OPS_PACKAGE, ops_folder

CODE_KEY = "uvosam_code"
"""The key of the identity in every record that has ``uvosam_version`` (records written before it lack it)."""

PACKAGE_DIR = Path(__file__).resolve().parent
"""The folder of the uvosam package that runs (a checkout's uvosam/, or the installed one)."""
_HASH_CHARS = 12  # 48 bits: two codes sharing one by chance is not a worry


@functools.cache
def code_identity() -> str:
    """The identity of the code this process runs: ``"<version>+src.<12 hex digits>"``."""
    files = source_files(PACKAGE_DIR, "uvosam") + source_files(ops_folder(), OPS_PACKAGE)
    return f"{__version__}+src.{source_digest(files)[:_HASH_CHARS]}"


def source_files(root: Path | None, package: str) -> list[tuple[str, Path]]:
    """``(name, path)`` of every source file of the package folder ``root`` (none for None), ``name`` being
    ``"<package>/<path relative to root>"``: the ``*.py`` files in it and below, and the ``*.json`` files of its
    ``data`` folder, leaving out files and folders whose name starts with a dot (an editor's ``.#x.py``) and
    ``__pycache__``."""
    if root is None:
        return []
    files = []
    for path in root.rglob("*"):
        relative = path.relative_to(root)
        if any(part.startswith(".") or part == "__pycache__" for part in relative.parts):
            continue
        data_file = path.suffix == ".json" and relative.parts[:-1] == ("data",)
        if (path.suffix == ".py" or data_file) and path.is_file():
            files.append((f"{package}/{relative.as_posix()}", path))
    return files


def source_digest(files: Iterable[tuple[str, Path]]) -> str:
    """SHA-256 (hex) of the files ``(name, path)`` in the order of their names: each name, its length in bytes and
    its bytes (CRLF as LF), so that no two different sets of files give the same stream."""
    digest = hashlib.sha256()
    for name, path in sorted(files):
        data = path.read_bytes().replace(b"\r\n", b"\n")
        digest.update(f"{name}\0{len(data)}\0".encode())
        digest.update(data)
    return digest.hexdigest()
