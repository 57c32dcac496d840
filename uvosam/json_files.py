"""Reading a JSON file that a user or an earlier run wrote, with a message that names the file when it is damaged."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from uvosam.errors import InputError


def read_json(path: str | Path, advice: str) -> Any:
    """The JSON value in ``path`` (UTF-8).

    Args:
        path: the file.
        advice: what to do when it is damaged, the end of the message ("make the run again with --cache").

    Raises:
        ValueError: not valid JSON or not UTF-8 text: "<path> is not valid JSON (<problem> at line L, column C);
            <advice>".
    """
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as err:
        problem = f"byte {err.start} is not UTF-8 text"
    except json.JSONDecodeError as err:
        problem = f"{err.msg} at line {err.lineno}, column {err.colno}"
    raise InputError(f"{path} is not valid JSON ({problem}); {advice}")
