"""``uvosam_app``'s docstring names each of its modules, and those that import gradio."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import uvosam_app

FOLDER = Path(uvosam_app.__file__).parent


def test_the_package_docstring_names_every_module_and_those_importing_gradio():
    doc = uvosam_app.__doc__
    modules = {p.stem for p in FOLDER.glob("*.py") if p.stem != "__init__"}
    assert modules - set(re.findall(r"``(\w+)``", doc)) == set()
    importing = set()
    for name in modules:
        tree = ast.parse((FOLDER / f"{name}.py").read_text(encoding="utf-8"))
        for node in tree.body:
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            if any(n == "gradio" or n.startswith("gradio.") for n in names):
                importing.add(name)
    listed = re.search(r"Only (.*?) import gradio", doc, re.DOTALL).group(1)
    assert set(re.findall(r"``(\w+)``", listed)) == importing
