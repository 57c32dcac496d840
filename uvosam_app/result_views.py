"""The views of a finished run (``ResultViews``, ``App.views``): the timeline and merge hints of the zip shown, and
Score (J&F of its masks against an uploaded ground truth).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import gradio as gr

from uvosam.errors import InputError
from uvosam_app import server_log
from uvosam_app.checks import check_uploads, over_upload_limit
from uvosam_app.errors import failures_in_status
from uvosam_app.results import merge_hints_markdown, timeline_views
from uvosam_app.scoring import score_masks_zip
from uvosam_app.served import ServedFiles
from uvosam_app.settings import FILES_KEPT, AppSettings
from uvosam_app.text import GROUND_TRUTH_ZIP, score_failed_markdown
from uvosam_app.work import WorkRoot

RUN_FIRST_SCORE = (
    "Run a video first (or let the run under way finish): Score compares its masks with your "
    "ground truth (over the API: pass masks_zip, a zip that /segment or /rerender returned)."
)


class ResultViews:
    """The handlers of what the page shows of a finished run's zip; ``work`` is the app's ``WorkRoot`` (Score
    unpacks in its folder), ``served`` its ``ServedFiles`` (the zips the app served: the only ones it reads)."""

    def __init__(self, settings: AppSettings, work: WorkRoot, served: ServedFiles) -> None:
        self.settings = settings
        self.work = work
        self.served = served

    # ------------------------------------------------------------------------------------- timeline
    def zip_shown(
        self, masks_zip: str | None, merge: str | None = None
    ) -> tuple[Any, Any, str, str]:
        """What the page shows of the zip shown: its track timeline (``results.timeline_views``: two images, a
        phone's screen shows the narrow one; with an alt text that says what their bars show), its ``merge_hints``,
        and no scores (those shown were of other masks).

        Only of a zip the app served (``ServedFiles.shows``): the page gives back the one Run or Re-render showed,
        but this (unqueued) event is callable over plain HTTP with any upload, and what its readers cost grows with
        the zip's content, not its size (a timeline row per track, pairs of tracks for the hints)."""
        if not self.served.shows(masks_zip):
            return None, None, "", self.scores_gone()
        wide, narrow, alt = timeline_views(masks_zip)
        # the alt text names the image and its button for a screen reader (an event of the page's own: no API)
        images = [
            None if image is None else gr.Image(image, alt_text=alt) for image in (wide, narrow)
        ]
        return *images, self.merge_hints(masks_zip, merge), self.scores_gone()

    def merge_hints(self, masks_zip: str | None, merge: str | None = None) -> str:
        """Markdown: the possible id switches among the tracks of the zip shown, and what to put in *Merge tracks*
        (its text ``merge`` grown by them); "" if none or no zip."""
        return merge_hints_markdown(masks_zip, merge)

    # ---------------------------------------------------------------------------------------- score
    @failures_in_status(1, job=server_log.SCORE, line=score_failed_markdown)
    async def score_shown(
        self,
        gt_zip: str | None,
        masks_zip: str | None,
        request: gr.Request = None,  # type: ignore[assignment]  (set by Gradio: failures_in_status reads it)
    ) -> AsyncIterator[str]:
        """Score's handler: ``score``, in a worker thread. A refusal or a failure takes the place of the scores
        ("Score failed: ..."): the toast with the same words goes after a few seconds (``app.py``: Score's failure
        listener removes the "Error" badge that the page put over it)."""
        yield await asyncio.to_thread(self.score, gt_zip, masks_zip)

    def score(self, gt_zip: str | None, masks_zip: str | None) -> str:
        """J&F of the shown masks (the zip's DAVIS PNGs) against an uploaded zip of ground-truth PNGs, as Markdown.
        The zip is all it needs (its run.json says which frames its masks are): over the API, any zip that Run
        or Re-render made, in this session or not.

        Raises:
            gr.Error: no masks zip, no ground truth, or a zip that cannot be scored (saying why and what to do).
        """
        if not masks_zip:
            raise gr.Error(RUN_FIRST_SCORE, print_exception=False)
        if not Path(masks_zip).is_file():  # Gradio's file cache sweep deleted it (app.py)
            raise gr.Error(
                f"The masks of your last run are no longer kept on the server ({FILES_KEPT}): run "
                "the video again, then Score.",
                print_exception=False,
            )
        if not gt_zip:
            raise gr.Error(
                f"Upload the ground truth first: {GROUND_TRUTH_ZIP}.", print_exception=False
            )
        check_uploads(gt_zip, then="Score")
        too_big = over_upload_limit(gt_zip, self.settings.max_upload_mb)
        if too_big:
            raise gr.Error(too_big, print_exception=False)
        limit = max(10_000, 10 * self.settings.max_frames)
        try:
            return score_masks_zip(gt_zip, masks_zip, max_files=limit, work_dir=self.work.root)
        # anything else: to_gr_error's (logged with an id) in failures_in_status
        except InputError as err:
            raise gr.Error(str(err), print_exception=False) from err

    def scores_gone(self) -> str:
        """The scores shown, once the masks zip or the ground truth they were of changes: none."""
        return ""

    def score_failed(self) -> Any:
        """After a failed Score, whose handler put why in place of the scores: they stay (skip); Score's failure
        listener (``app.py``) is called for the "Error" badge over them to go."""
        return gr.skip()
