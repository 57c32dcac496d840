"""Re-render (``RerenderHandlers``, ``App.rerenders``): a finished run's masks again, without the models, with
fewer tracks, split or merged tracks, a higher score threshold or another style; and what *Tracks to keep* offers
after a re-render that split tracks (``keep_offered``; what it offers is ``uvosam_app.keep_parts``).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import gradio as gr

from uvosam.job import rerender_iter
from uvosam.job_types import JobOptions, JobProgress
from uvosam.mask_cache import MaskCache
from uvosam.merge_hints import recorded_split_ids
from uvosam_app import server_log
from uvosam_app.checks import OutputChoices, check_ranges, merge_map, split_map
from uvosam_app.errors import failures_in_status, from_page
from uvosam_app.keep_parts import KeepOffer, keep_choices, rerender_keep, rerender_record, split_key
from uvosam_app.progress import drive
from uvosam_app.rerender_names import edits_tag, renamed_results
from uvosam_app.results import track_rows
from uvosam_app.served import ServedFiles
from uvosam_app.settings import AppSettings
from uvosam_app.text import done_line

# SessionRun is imported at run time, not under TYPE_CHECKING: Gradio resolves the handlers' annotations to find
# their gr.Request parameter, and an unresolvable one hides it
from uvosam_app.work import OpenJob, SessionRun, WorkRoot, opened, session_key

# a Run under way has let its tab's last run go (its first update): Re-render and Score wait for its end
RUN_FIRST_RERENDER = (
    "Run a video first (or let the run under way finish): Re-render reuses the masks of this session's last "
    "finished run (over the API: /segment first, with the same client or session_hash)."
)

# how a job's file work starts (``App._start``): (session, kind, job, slots, held, *, keep) -> the open job
StartJob = Callable[..., OpenJob]


class RerenderHandlers:
    """Re-render's handlers; ``work`` is the app's ``WorkRoot`` (the run's folder is held while its masks are read),
    ``served`` its ``ServedFiles`` (the files shown; a zip it served is the only one ``keep_offered`` reads),
    ``start`` the app's ``App._start`` (the job's folder and worker thread, as a Run's). Two re-renders run at once
    (``slots``; app.py's concurrency limit of the event)."""

    def __init__(
        self, settings: AppSettings, work: WorkRoot, served: ServedFiles, start: StartJob
    ) -> None:
        self.settings = settings
        self.work = work
        self.served = served
        self.start = start
        self.slots = threading.BoundedSemaphore(2)

    @failures_in_status(6, job=server_log.RERENDER)
    async def rerender(
        self,
        keep: list[int] | None,
        show_boxes: bool,
        show_labels: bool,
        output_side: str | int,
        style: str,
        merge: str | None,
        alpha_webm: bool,
        min_score: float,
        state: SessionRun | None,
        request: gr.Request,
        linked: str | None = None,  # the session's linked video (a State, not in the API)
        split: str | None = None,  # the API's last value (so that positional calls keep working)
        offer: KeepOffer | None = None,  # what Tracks to keep offers (a State set by the page only)
    ) -> AsyncIterator[tuple]:
        """Rebuild video and zip from the last run's masks, keeping only the ``keep`` track ids (of
        the run; the parts a split gives new ids go with their track), splitting tracks (``"3@120, 5@40"``), merging
        tracks (``"3>1, 5>1"``, ids once split), in any style. On the page, once a re-render offered the parts of the
        split in *Tracks to keep* (``offer``, ``keep_offered``), ``keep`` names ids once split while the split
        stays that one: an unticked part is dropped (``keep_parts.rerender_keep``). An async generator, as
        ``App.segment`` (a refusal or a failure ends the status line too)."""
        if state is None:
            raise gr.Error(RUN_FIRST_RERENDER, print_exception=False)
        # the settings are checked before any folder is made
        min_score = check_ranges(self.settings, min_score=min_score)["min_score"]
        splits = split_map(split)
        asked = [int(k) for k in keep or []]
        kept, with_parts = rerender_keep(asked, splits, offer, state.run_dir)
        if asked and not kept:  # only parts of the former split ticked
            raise gr.Error(
                f"Tracks to keep: only parts of the former split are ticked ({', '.join(map(str, asked))}), and "
                "Split tracks changed: tick the run's tracks (the parts of the new split go with them).",
                print_exception=False,
            )
        outputs = OutputChoices(output_side, style, show_boxes, show_labels, alpha_webm)
        options = JobOptions(**outputs.job_fields(self.settings))
        merges = merge_map(merge)
        job = partial(  # called with its output folder (``App._start``)
            rerender_iter,
            state.cache_dir,
            merge=merges,
            split=splits,
            keep_split_parts=with_parts,  # keep names the run's tracks, or (the page's) ids once split
            options=options,
            # raising it drops low-scoring frames of tracks from the cached masks
            min_score=float(min_score),
        )
        # over the API, no keep (gradio_client's default, []) keeps all the run's tracks: the page's none ticked is
        # refused (``_start_rerender``)
        kept = kept if asked or from_page(request) else None
        start = partial(self._start_rerender, state, session_key(request), kept, linked, job)
        skip = gr.skip()
        interval = self.settings.status_interval_s
        async with (
            opened(start) as running,
            contextlib.aclosing(
                drive(running.pump, "re-rendering", interval, lend_in=running.folder)
            ) as updates,
        ):
            async for up in updates:
                if up.result is None:
                    preview = await self.served.frame(up.preview)
                    yield up.status, preview, up.chunk, skip, skip, skip
                else:
                    r = up.result
                    # served under names of their own: a browser saved them as "<run's name> (1).zip"
                    tag = edits_tag(
                        (t.track_id for t in r.tracks),
                        merge=merges,
                        split=splits,
                        min_score=min_score,
                    )
                    named = await asyncio.to_thread(renamed_results, r, tag)
                    files = await self.served.results(*named)
                    yield done_line(up.status, r), skip, up.chunk, *files, track_rows(r)

    def _start_rerender(
        self,
        state: SessionRun,
        session: str | None,
        keep: list[int] | None,
        linked: str | None,
        job: Callable[..., Iterator[JobProgress]],
    ) -> OpenJob:
        """Re-render's file work, in a worker thread: the run's folder is held while it is checked and for the
        whole job (a Run pressed now in the same tab deletes the session's idle folders, not the masks read here),
        and so is a linked Load's folder while the new one is made (Run reads that file later). ``keep``: the ids
        that ``job`` (``rerender_iter``, which checks the edits) keeps (``rerender``; None: all)."""
        with self.work.held(state.run_dir):
            if not state.cache_dir.is_dir():
                raise gr.Error(RUN_FIRST_RERENDER, print_exception=False)
            job = partial(job, keep_ids=keep)
            # the page's tracks all unticked: a video without any object is never what was meant
            if keep == []:
                ids = sorted(MaskCache(state.cache_dir).track_labels())
                if ids:
                    raise gr.Error(
                        "No track to keep: tick at least one in 'Tracks to keep' (the run's tracks: "
                        f"{', '.join(map(str, ids))}).",
                        print_exception=False,
                    )
            with self.work.held(Path(linked).parent if linked else None):
                return self.start(
                    session, "rerender", job, self.slots, state.run_dir, keep=state.run_dir
                )

    def keep_offered(self, state: SessionRun | None, masks_zip: str | None) -> tuple[Any, Any]:
        """After the page's Re-render (``app.py``: not in the API): *Tracks to keep* offers the ids once split (the
        run's tracks and the parts its split gave new ids, ``keep_parts.keep_choices``), ticked as the re-render
        kept them, and the page remembers which split they belong to (``KeepOffer``, for the next ``rerender``).
        Of a zip the app served only (as ``ResultViews.zip_shown``), re-rendered from the session's last run (its
        run.json names the run, ``run_created_utc``); otherwise nothing changes. A Run of the same tab that ended
        during the Re-render (allowed: the re-render holds its run's masks) is the session's last run now: its
        tracks beside the former run's parts would be offered, and the split remembered for the wrong run."""
        if state is None or not state.tracks or not self.served.shows(masks_zip):
            return gr.skip(), gr.skip()
        record = rerender_record(masks_zip)
        if (
            record is None
            or state.created_utc is None
            or record.get("run_created_utc") != state.created_utc
        ):
            return gr.skip(), gr.skip()
        new_ids = recorded_split_ids(record)
        choices = keep_choices(state.tracks, new_ids, record.get("merge"))
        kept = record.get("keep_ids")
        value = [i for _, i in choices if kept is None or i in kept]
        offer = KeepOffer(
            state.run_dir, split_key(record.get("split")), frozenset(new_ids.values())
        )
        return gr.CheckboxGroup(choices=choices, value=value), offer
