"""The page's file boxes read a file as Gradio's ``gr.File`` does, less the empty ``tmpXXXXXXXX`` that Gradio 6.31
left in its temp folder each time (``uvosam_app.file_input``; a soak: 66 after 33 API sessions, never deleted). The
page and the API of the boxes are Gradio's: ``tests/test_app_session_copies.py`` compares them for every
component. No models."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("gradio")
import gradio as gr
from gradio.data_classes import FileData, ListFiles

import app as app_module
from uvosam_app.file_input import FileInput
from uvosam_app.settings import AppSettings


def _entries(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()} if folder.is_dir() else set()


def test_the_pages_file_boxes_read_a_file_as_gradio_does_and_leave_nothing(tmp_path):
    """Every file box of the page (the frames zip, the mp4, the masks zip, the ground truth) gives the handler what
    Gradio's ``File`` gives (the upload's path, a ``NamedString``), and nothing new is in Gradio's cache."""
    demo = app_module.build_demo(lambda p, s: None, settings=AppSettings(work_root=tmp_path))
    try:
        boxes = [b for b in demo.blocks.values() if isinstance(b, gr.File)]
        assert {b.elem_id for b in boxes} == {"frames", "mp4", "zip", "gt"}
        cache = Path(demo.GRADIO_CACHE)
        upload = tmp_path / "upload" / "clip.zip"
        upload.parent.mkdir()
        upload.write_bytes(b"PK")
        before = _entries(cache)
        for box in boxes:
            for payload in (FileData(path=str(upload)), ListFiles([FileData(path=str(upload))])):
                value = box.preprocess(payload)
                assert isinstance(value, gr.utils.NamedString) and value == str(upload), box.elem_id
        assert _entries(cache) == before
    finally:
        demo.close()


def test_gradios_file_box_still_leaves_an_empty_temp_file(tmp_path):
    """Gradio's own bug, which ``FileInput`` works around: when this fails, Gradio no longer leaves the file, and
    ``FileInput``'s override of ``preprocess`` (``uvosam_app/file_input.py``) can go."""
    upload = tmp_path / "clip.zip"
    upload.write_bytes(b"PK")
    unpatched = gr.File(file_types=[".zip"])
    unpatched.GRADIO_CACHE = str(tmp_path / "gradio")
    (tmp_path / "gradio").mkdir()
    assert unpatched.preprocess(FileData(path=str(upload))) == str(upload)
    assert len(_entries(tmp_path / "gradio")) == 1, (
        "Gradio's gr.File no longer leaves an empty tmpXXXXXXXX: FileInput's override can go"
    )


def test_a_file_of_another_type_is_refused_as_gradio_refuses_it(tmp_path):
    """The same check of the box's types as Gradio's, the same message; ``binary`` read as Gradio reads it."""
    wrong = tmp_path / "clip.txt"
    wrong.write_bytes(b"text")
    messages, logged = [], []
    for cls in (gr.File, FileInput):
        box = cls(file_types=[".zip"])
        box.GRADIO_CACHE = str(tmp_path / "gradio")
        with pytest.raises(gr.Error) as refused:
            box.preprocess(FileData(path=str(wrong)))
        messages.append(refused.value.message)
        logged.append(refused.value.print_exception)
        assert cls(type="binary").preprocess(FileData(path=str(wrong))) == b"text"
    assert messages[0] == messages[1] and ".zip" in messages[0]
    # a visitor's wrong file: Gradio's class printed its traceback in the server log, the app's prints none
    assert logged == [True, False]
    assert FileInput().preprocess(FileData(path=str(wrong))) == str(wrong)  # no types: any file
