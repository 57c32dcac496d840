"""Whose fault an error is, as the app and the command line tell it: uvosam's deliberate refusals (``InputError``
and its subclasses) keep their message; a plain ValueError, FileNotFoundError or RuntimeError met after the checks
(numpy's, torch's, a bug of ours) is the app's "Something went wrong on our side (error id ...)" with an ERROR line
and its traceback, and the command line's one line with a hint. Tiny models on CPU."""

from __future__ import annotations

import logging
import re
import types
import zipfile

import pytest

pytest.importorskip("gradio")
import gradio as gr
from app_helpers import client, stepped, write_clip
from doubles import OUT_OF_MEMORY, MovingBoxTracker
from gradio_client import handle_file

import uvosam_cli
import uvosam_cli.segment
from uvosam.errors import InputError, MissingInputError, VideoReadError
from uvosam.pipeline import UVOSAM
from uvosam.segmenter import BoxPromptSegmenter
from uvosam_app import file_links, scoring
from uvosam_app.errors import INTERNAL_ERROR
from uvosam_app.handlers import App
from uvosam_app.probes import ProbeCache
from uvosam_app.settings import AppSettings

NUMPY_BUG = "operands could not be broadcast together with shapes (3,) (4,)"
OURS = re.escape(INTERNAL_ERROR) + r" \(error id (\w{8})\)"


def _logged_failure(caplog, error_id: str) -> logging.LogRecord:
    """The ERROR line of ``error_id``, which carries the traceback."""
    (record,) = [r for r in caplog.records if f"error id {error_id})" in r.getMessage()]
    assert record.levelno == logging.ERROR and record.exc_info is not None
    return record


def test_inputerror_is_a_valueerror_and_a_missing_input_also_a_filenotfounderror():
    """Callers' ``except ValueError`` / ``except FileNotFoundError`` keep working."""
    assert issubclass(VideoReadError, InputError) and issubclass(InputError, ValueError)
    missing = MissingInputError("no video at x.mp4")
    assert isinstance(missing, FileNotFoundError) and isinstance(missing, InputError)
    assert str(missing) == "no video at x.mp4"


@pytest.mark.parametrize(
    "error, ours",
    [
        (lambda: ValueError(NUMPY_BUG), True),
        (lambda: FileNotFoundError(2, "No such file", "/srv/app/internal/cache/meta.json"), True),
        (lambda: InputError("frame 2: boxes_xyxy rows [0] contain NaN"), False),
    ],
    ids=["numpy ValueError", "server-path FileNotFoundError", "InputError"],
)
def test_a_run_tells_our_own_valueerror_as_ours_and_a_refusal_as_the_inputs(
    tmp_path, tiny_sam_model, caplog, error, ours
):
    """A numpy ValueError (or a FileNotFoundError naming a server path) from inside a run was shown as the
    visitor's fault: "failed: operands could not be broadcast...", the log's "refused" line, no traceback."""
    pipe = UVOSAM(MovingBoxTracker(fail_at=2, error=error), BoxPromptSegmenter(tiny_sam_model))
    app = App(lambda preset, sam: pipe, AppSettings(work_root=tmp_path / "work"))
    clip = write_clip(tmp_path / "clip.mp4", 6, 64, 48)
    caplog.set_level(logging.INFO, logger="uvosam.app")
    request = types.SimpleNamespace(session_hash="errors")
    updates = []
    with pytest.raises(gr.Error) as raised:
        updates += stepped(app.segment(str(clip), "idol-ytvis19-r50", "vit_b", 0.0, 10, 1, 900, 0, True, True,
                                       "overlay", None, False, request))  # fmt: skip
    end = [
        r.getMessage() for r in caplog.records if r.getMessage().startswith(("failed ", "refused "))
    ]
    if ours:
        error_id = re.fullmatch(
            OURS + r"\. Try again; if it persists, report the id\.", raised.value.message
        )[1]
        assert updates[-1][0] == f"failed: {raised.value.message}"
        assert "/srv/app" not in raised.value.message
        _logged_failure(caplog, error_id)
        assert end[0].startswith("failed /segment") and end[0].endswith(f"error id {error_id}")
    else:
        assert raised.value.message == "frame 2: boxes_xyxy rows [0] contain NaN"
        assert end[0].startswith("refused /segment") and "Traceback" not in caplog.text


def test_score_and_the_description_tell_an_unexpected_error_as_ours(tmp_path, caplog, monkeypatch):
    """Score re-raised score_clip's ValueError ``from None`` as the visitor's ("**Score failed:** operands could
    not be broadcast..."); the description said "Run would refuse this input: invalid literal for int()...",
    logging nothing."""
    app = App(lambda preset, sam: None, AppSettings(work_root=tmp_path / "work"))
    caplog.set_level(logging.INFO, logger="uvosam.app")
    png = _png()
    gt = tmp_path / "gt.zip"
    masks = tmp_path / "masks.zip"
    with zipfile.ZipFile(gt, "w") as zf:
        zf.writestr("gt/00000.png", png)
    with zipfile.ZipFile(masks, "w") as zf:
        zf.writestr("davis/v/00000.png", png)
        zf.writestr("tracks.csv", "track_id,class_name,davis_label\n1,o,1\n")

    def score(error: Exception) -> tuple[str, gr.Error]:
        monkeypatch.setattr(scoring, "score_clip", lambda *a, **k: (_ for _ in ()).throw(error))
        shown = []
        with pytest.raises(gr.Error) as raised:
            shown += stepped(app.views.score_shown(str(gt), str(masks), types.SimpleNamespace()))
        return shown[-1], raised.value

    status, err = score(ValueError(NUMPY_BUG))
    error_id = re.match(OURS, err.message)[1]
    assert NUMPY_BUG not in status and error_id in status
    assert isinstance(err.__cause__, ValueError)  # chained, not ``from None``
    _logged_failure(caplog, error_id)
    status, err = score(InputError("gt.zip: gt/00000.png holds ids over 20"))
    assert "gt/00000.png holds ids over 20" in status and err.message.endswith("holds ids over 20")

    clip = write_clip(tmp_path / "clip.mp4", 4, 64, 48)
    bug = ValueError("invalid literal for int() with base 10: 'N/A'")
    monkeypatch.setattr(ProbeCache, "info", lambda *a, **k: (_ for _ in ()).throw(bug))
    text = app.describe(str(clip), "idol-ytvis19-r50", "vit_b", 1, 900)
    assert "refuse" not in text and "invalid literal" not in text
    _logged_failure(caplog, re.search(OURS, text)[1])
    # the first frame of an upload browsers cannot play: a preview, logged (it was a silent None)
    assert app.links._unplayable_frame(str(clip)) is None
    assert caplog.records[-1].levelno == logging.ERROR and caplog.records[-1].exc_info[1] is bug


def _png() -> bytes:
    import io

    import numpy as np
    from PIL import Image

    ids = np.zeros((8, 8), np.uint8)
    ids[2:5, 2:6] = 1
    buffer = io.BytesIO()
    Image.fromarray(ids).save(buffer, format="PNG")
    return buffer.getvalue()


def test_an_unexpected_error_fetching_a_file_link_is_mapped_with_an_id(server, caplog, monkeypatch):
    """A file input given as a link whose download failed unexpectedly answered Gradio's "The upstream Gradio app
    has raised an exception" and logged a bare traceback: no error id, no session."""

    def bug(*args, **kwargs):
        raise TypeError("download() got an unexpected keyword argument 'limits'")

    monkeypatch.setattr(file_links, "download", bug)
    caplog.set_level(logging.INFO, logger="uvosam.app")
    with pytest.raises(Exception, match=OURS) as raised:
        client(server).predict(handle_file("http://example.invalid/clip.mp4"), api_name="/segment")
    error_id = re.search(OURS, str(raised.value))[1]
    record = _logged_failure(caplog, error_id)
    assert re.fullmatch(
        rf"/segment \(API, \w{{6}}\) failed \(error id {error_id}\)", record.getMessage()
    )


@pytest.mark.parametrize(
    "error, code",
    [
        (lambda: InputError("frame 2: boxes_xyxy rows [0] contain NaN"), 2),
        (lambda: ValueError(NUMPY_BUG), 1),
        (lambda: RuntimeError("mat1 and mat2 shapes cannot be multiplied (4x256 and 512x256)"), 1),
    ],
    ids=["InputError", "numpy ValueError", "torch RuntimeError"],
)
def test_the_command_line_tells_a_refusal_apart_from_an_error_it_did_not_expect(
    tmp_path, tiny_sam_model, monkeypatch, capsys, error, code
):
    """Every ValueError and RuntimeError was one line, exit code 2, as if the input were wrong."""
    pipe = UVOSAM(MovingBoxTracker(fail_at=2, error=error), BoxPromptSegmenter(tiny_sam_model))
    monkeypatch.setattr(uvosam_cli.segment, "load_pipeline", lambda args: pipe)
    clip = write_clip(tmp_path / "clip.mp4", 6, 64, 48)
    assert uvosam_cli.main(["segment", str(clip), "--out", str(tmp_path / "out")]) == code
    last = capsys.readouterr().err.splitlines()[-1]
    assert last.startswith(f"uvosam segment: error: {error()}")
    assert last.endswith(uvosam_cli.MAYBE_A_BUG) is (code == 1)


@pytest.mark.parametrize(
    "error",
    list(OUT_OF_MEMORY.values()),
    ids=list(OUT_OF_MEMORY),
)
def test_the_app_tells_every_out_of_memory_as_such(error):
    """Only CUDA's was; the CPU's and MPS's (plain RuntimeErrors) and numpy's MemoryError were "Something went wrong
    on our side", though what to lower is the same (one test of what is out of memory: ``uvosam.errors``)."""
    from uvosam_app.errors import to_gr_error

    told = to_gr_error(error())
    assert (
        told.message.startswith("Out of memory on this video: the run was stopped")
        and "smaller SAM" in told.message
    )
