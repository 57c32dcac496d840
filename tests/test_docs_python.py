"""docs/python.md's code, run as written: the "Bring your own tracker or mask model" example (toy stages through
``UVOSAM`` and ``run_job``) on a small encoded clip."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from clip_helpers import write_video

from uvosam.testing import moving_shapes
from uvosam.video import probe

PYTHON_MD = Path(__file__).resolve().parents[1] / "docs" / "python.md"


def _section_code(title: str) -> str:
    """The ```python block of the docs/python.md section headed ``## <title>``."""
    text = PYTHON_MD.read_text(encoding="utf-8")
    section = re.search(
        rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", text, re.MULTILINE | re.DOTALL
    )
    assert section, f"docs/python.md has no section '## {title}'"
    code = re.search(r"```python\n(.*?)```", section.group(1), re.DOTALL)
    assert code, f"docs/python.md's '## {title}' has no python block"
    return code.group(1)


def test_the_bring_your_own_stages_example_runs_the_pipeline_and_a_whole_job(tmp_path, monkeypatch):
    code = _section_code("Bring your own tracker or mask model")
    write_video(tmp_path / "clip.mp4", moving_shapes(6, height=48, width=64, seed=3).frames)
    monkeypatch.chdir(tmp_path)  # the example's "clip.mp4" and "out/"
    names: dict = {"__name__": "docs_python_example"}
    # the docs' own code
    exec(compile(code, str(PYTHON_MD), "exec"), names)

    results = names["results"]
    box = np.zeros((48, 64), bool)
    box[12:36, 16:48] = True  # the middle half: [W/4, H/4, 3W/4, 3H/4]
    assert [r.frame_index for r in results] == [0, 1, 2, 3]
    for r in results:
        assert r.track_ids.tolist() == [1] and r.masks.shape == (1, 48, 64)
        assert (r.masks[0] == box).all() and r.mask_scores.tolist() == [1.0]

    final = names["last"].result
    assert final is not None and [t.track_id for t in final.tracks] == [1]
    assert Path(final.overlay_mp4).resolve().parent == (tmp_path / "out").resolve()
    assert probe(final.overlay_mp4).num_frames == 6 and Path(final.zip_path).is_file()
