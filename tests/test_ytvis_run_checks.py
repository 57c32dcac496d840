"""ytvis-run checks the whole split before any work: a missing frame or a bad video id is refused before a model
loads."""

import pytest
from ytvis_helpers import YTVIS19, ytvis_root

import uvosam_cli
import uvosam_cli.benchmark_runs as runs_cli
from uvosam.eval.runner import run_ytvis
from uvosam.pipeline import UVOSAM
from uvosam.segmenter import BoxPromptSegmenter
from uvosam.testing import tiny_idol_tracker


class Segmented(Exception):
    pass


class NoFrames(UVOSAM):
    """A pipeline that fails on its first frame: a check meant to come first must fail before it."""

    def __call__(self, frames):
        raise Segmented("a frame was read")


def _pipe(tiny_sam_model, class_names):
    return UVOSAM(tiny_idol_tracker(class_names=class_names), BoxPromptSegmenter(tiny_sam_model))


def _no_models(args):
    pytest.fail("models loaded")


def test_every_frame_is_checked_before_the_models_load(
    tmp_path, tiny_sam_model, monkeypatch, capsys
):
    """A frame missing from the last video was found only when that video's turn came, after hours of the others
    (and the run does not resume): every listed frame is looked for first, and the message counts them all."""
    root = ytvis_root(tmp_path)
    frames = root / "valid" / "JPEGImages"
    (frames / "vid9" / "00005.jpg").unlink()
    (frames / "vid9" / "00010.jpg").unlink()
    monkeypatch.setattr(runs_cli, "load_pipeline", _no_models)
    out = tmp_path / "sub" / "results.json"
    assert uvosam_cli.main(["ytvis-run", "--ytvis-root", str(root), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert (
        f"2 of the 7 frames that {root / 'valid.json'} lists are missing, in 1 video (ids 9); e.g. "
        f"{frames / 'vid9' / '00005.jpg'} of video 9" in err
    )
    assert "--ytvis-root" in err and len(err.strip().splitlines()) == 1 and not out.parent.exists()
    pipe = _pipe(tiny_sam_model, YTVIS19)
    done = []
    with pytest.raises(
        FileNotFoundError, match="2 of the 7 frames"
    ):  # the library checks first too
        run_ytvis(NoFrames(pipe.tracker, pipe.segmenter), root, out, progress=done.append)
    assert not done and not out.parent.exists()
