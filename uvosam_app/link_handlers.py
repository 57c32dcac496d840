"""Load (a direct link) and its "linked video": the handlers of the link input (``LinkHandlers``).

A link is downloaded into the session's folder and checked (``uvosam_app.links``); a video the player would show is
returned to it, one the player would re-encode is kept as the session's linked video (a ``gr.State``), whose first
frame goes under *Latest frame*, and which an upload or a zip chosen later replaces.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np

from uvosam_app import links as app_links
from uvosam_app import server_log
from uvosam_app.checks import taken_inputs
from uvosam_app.errors import USER_ERRORS, from_page, text_toasts, to_gr_error
from uvosam_app.probes import ProbeCache
from uvosam_app.served import ServedFiles
from uvosam_app.settings import AppSettings
from uvosam_app.text import LINK_EXAMPLE

# SessionRun is imported at run time, not under TYPE_CHECKING: Gradio resolves the handlers' annotations to find
# their gr.Request parameter, and an unresolvable one hides it (every session's Load then came as no session)
from uvosam_app.work import SessionRun, WorkRoot, session_key

logger = logging.getLogger("uvosam.app")


class LinkHandlers:
    """Load's handlers; ``work`` is the app's ``WorkRoot`` (a link's folder is one of the session's), ``probes`` its
    ``ProbeCache`` (a file is probed once for its checks, its first frame and its description), ``served`` its
    ``ServedFiles`` (a first frame shown under *Latest frame* is deleted by its sweep)."""

    def __init__(
        self,
        settings: AppSettings,
        work: WorkRoot,
        probes: ProbeCache,
        served: ServedFiles | None = None,
    ) -> None:
        self.settings = settings
        self.work = work
        self.probes = probes
        self.served = served or ServedFiles()

    @text_toasts(server_log.LOAD)
    def load_url(
        self,
        url: str | None,
        state: SessionRun | None = None,
        linked: str | None = None,
        request: gr.Request = None,  # type: ignore[assignment]  (set by Gradio)
        progress: gr.Progress = gr.Progress(),  # noqa: B008 - how Gradio passes a progress bar
    ) -> tuple[str | None, str | None, str | None]:
        """Download a direct link to a video file (or a zip of frames) into the session's folder and make it the
        input: returns (video, frames zip, linked video), one set, the others cleared (over the API: (video, frames
        zip), both None for a linked video; the session keeps the download, whichever it is, for a /segment call
        without a video or zip).

        The file is checked as Run checks it, but for the limits that Frame stride and Max frames change (the
        upload's description names those): a file that is not a video or is over the size limits is refused
        here and deleted. A video the player would re-encode (``links.needs_reencode``) is not shown: the
        session's "linked video" state keeps its path and Run reads it as downloaded; any other is shown, and
        Gradio serves (and Run reads) its own copy. The session's last run stays (Re-render still reads it); an
        earlier download goes (a linked one once this Load succeeded); the session's folder goes with the session.
        """
        if not self.settings.url_input:
            raise gr.Error(app_links.LINKS_OFF, print_exception=False)
        if not (url or "").strip():
            raise gr.Error(
                f"Paste a direct link to a video file first, e.g. {LINK_EXAMPLE}, then press Load.",
                print_exception=False,
            )
        keep = state.run_dir if state is not None else None
        # a linked file's folder stays while the new one is made: still the input if this Load fails
        with self.work.held(Path(linked).parent if linked else None):
            folder = self.work.new_dir(session_key(request), "link", keep=keep)
        try:
            path = app_links.download(
                url,
                folder,
                self.settings,
                progress=lambda done, total: progress((done, total), desc="downloading"),
            )
            loaded = app_links.check_download(path, self.settings, self.probes)
            # over the API the session keeps any download (/load_url returns no State): /segment given no video and
            # no zip runs it, whether it came back as the video, the zip or neither. The page's State is the
            # linked video only: a video or zip it shows is the input, and clearing it (✕) leaves none.
            linked = loaded.linked if from_page(request) else str(path)
            # shown from Gradio's cache: it serves no session's folder (``app.launch_kwargs``)
            cached = self.served.file_now
            return cached(loaded.video), cached(loaded.frames_zip), linked
        # a refusal, or unexpected (a bug, a stop): no folder is left behind
        except BaseException as err:
            self.work.discard(folder)
            if not isinstance(err, USER_ERRORS):
                raise
            shown = to_gr_error(err)  # named as the user knows the file, not by the server's folder
            message = shown.message.replace(f"{folder}{os.sep}", "")
            raise gr.Error(message, print_exception=False) from None
        finally:
            self.work.release(folder)

    def refused(self) -> Any:
        """After a refused link: the link box keeps it (to be corrected); Load's failure listener (``app.py``) is
        called for the "Error" badge over the box to go (the toast says why)."""
        return gr.skip()

    def linked_frame(self, linked: str | None) -> Any:
        """The first frame of a linked Load's file, for *Latest frame* (it has no player); none once an upload, a zip
        or another Load replaces that file (its frame stayed beside the new input); unchanged (``gr.skip()``) if the
        file is gone."""
        if not linked:
            return None
        if not Path(linked).is_file():
            return gr.skip()
        try:
            info = self.probes.info(linked, limits=self.settings.limits(), max_frames=1)
            return self.served.frame_now(app_links.first_frame(info))
        except USER_ERRORS as err:  # Load checked the file; the description says what Run would say
            logger.warning("no first frame of %s: %s", Path(linked).name, err)
            return gr.skip()
        except Exception:  # a bug of ours, logged: the frame is only a preview
            logger.exception("no first frame of %s (unexpected error)", Path(linked).name)
            return gr.skip()

    def input_changed(
        self, video: str | None, frames_zip: str | None, linked: str | None = None
    ) -> tuple[Any, Any]:
        """(the linked Load's file, *Latest frame*) when the upload or the zip changes. *Latest frame* goes with the
        input it was of (None): an unplayable upload's first frame stayed beside the next upload, a run's beside
        another input. An upload that browsers cannot play (``links.browser_plays``) shows its first frame there
        instead, as a linked file does (its player shows no picture), and so does a GIF in the zip's box. An upload
        or a zip chosen replaces a linked file (None); their clearing by a linked Load leaves both (skip: the linked
        file's frame comes with its State's change). The frame is set here: Gradio fires no change of the State when
        this (unqueued) event sets it."""
        if not video and not frames_zip:
            return gr.skip(), gr.skip() if linked else None
        unlinked = None if linked else gr.skip()
        # a GIF in the box of a zip of frames is the video (``checks.taken_inputs``)
        video, frames_zip = taken_inputs(video, frames_zip)
        frame = self._unplayable_frame(video) if video and not frames_zip else None
        return unlinked, self.served.frame_now(frame)

    def _unplayable_frame(self, video: str) -> np.ndarray | None:
        """``links.unplayable_first_frame``; None for a file that is not a readable video (the description says
        what Run would say of it)."""
        try:
            # Run's checks that no setting changes (frame size), as Load's (``links.check_download``)
            info = self.probes.info(video, limits=self.settings.limits(), max_frames=1)
            return app_links.unplayable_first_frame(info)
        except USER_ERRORS:
            return None
        except Exception:  # a bug of ours, logged: the frame is only a preview
            logger.exception("no first frame of %s (unexpected error)", Path(video).name)
            return None
