"""The app's file boxes (``FileInput``): Gradio's ``gr.File``, less the empty file that its input leaves in Gradio's
temp folder on every call.

Gradio 6.31's ``File._process_single_file`` (``type="filepath"``, the default) makes a
``tempfile.NamedTemporaryFile(delete=False, dir=GRADIO_CACHE)`` for each file an event reads and throws it away: the
handler gets the upload's own path. Nothing lists that file, so no sweep deletes it, nor did Gradio's shutdown: one
empty ``tmpXXXXXXXX`` a file read, for good (a Score reads two: the ground truth and the masks zip; a soak of 33 API
sessions left 66). ``FileInput`` reads a file as Gradio does (the same check of its type, the same message, the path
as a ``NamedString``) and makes none. It is a ``component_classes.gradio_like`` class: Gradio's ``File`` to the page
and the API, its method a session's copy's too.
"""

from __future__ import annotations

import gradio as gr
from gradio.data_classes import FileData
from gradio.utils import NamedString
from gradio_client import utils as client_utils

from uvosam_app.component_classes import gradio_like


def _process_single_file(self: gr.File, f: FileData) -> NamedString | bytes:
    """One file of the input: its path, once its type is checked as Gradio checks it (``binary``: Gradio's)."""
    if self.type != "filepath":
        return gr.File._process_single_file(self, f)
    if self.file_types and not client_utils.is_valid_file(f.path, self.file_types):
        # a visitor's wrong file: no traceback in the server log (Gradio's own class logs one)
        raise gr.Error(
            f"Invalid file type. Please upload a file that is one of these formats: {self.file_types}",
            print_exception=False,
        )
    return NamedString(f.path)


# a method of a class, not of the instance: a session's copy of the component keeps it (``component_classes``)
FileInput = gradio_like(gr.File, _process_single_file=_process_single_file)
