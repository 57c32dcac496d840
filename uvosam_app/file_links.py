"""A file input given as a link (an API client's ``handle_file("https://...")``): fetched as Load fetches a link, not
by Gradio's unbounded download (``bound_file_links``).

Gradio 6.31 fetches such a link itself before any handler runs: ``processing_utils.async_move_files_to_cache``
hands each file of an input to its component's ``Block.async_move_resource_to_block_cache``, which downloads an
http(s) path with ``processing_utils.async_ssrf_protected_download``: no size limit, no deadline, so a stranger
could fill the server's disk. ``bound_file_links`` replaces that method on every component of the app (see below:
the component's config and API stay Gradio's). A path that Gradio's
``is_http_url_like`` calls a link is downloaded as Load downloads one (``uvosam_app.links.download``: at most
``max_upload_mb``, ``url_timeout_s``, public addresses only unless ``url_allow_private``, page links refused), or
refused when the app takes no links (``url_input``); a refusal reaches the client as a ``gr.Error`` with the
downloader's message (what came, the limit, what to do), as Load gives it. Any other path (an upload, a file the
server served) goes to Gradio's own method, unchanged.

The file lands in a folder of its own (``link-*``) in the component's Gradio cache and is registered in its
``temp_files``, as Gradio registers its own downloads: the cache's sweep (Gradio's, run by ``ServedFiles`` in
``app.build_demo``) deletes it with the uploads, and its emptied folder later (``ServedFiles.drop_empty_folders``).
A refused or failed download leaves no file and no folder; one whose request is cancelled meanwhile (``/cancel``)
runs on in its thread, which cannot be cut, and its folder is deleted when it ends.

Why this hook: it is the one method that every file of every input goes through (the sync
``move_resource_to_block_cache`` serves only values the app itself sets: examples, defaults). It is a method of a
class of each component's own (``component_classes.gradio_like``: Gradio's class to the page and the API): a
session's copy of a component, which Gradio builds from the class on any update of its props (``gr.skip()``
included: the masks zip's box after any /segment), fetches links the same way; a method set on the instance was lost
in the copy. A file fetched by a copy is registered with the app's component (Gradio's sweep lists the files of
those, not of the copies'). The hook relies on Gradio's internals named above:
``tests/test_app_url.py::test_a_file_given_as_a_link_is_bounded_over_the_api`` sends links through
``gradio_client`` and fails loudly if a Gradio upgrade stops calling it; ``tests/test_app_session_copies.py`` sends
them after a run.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from pathlib import Path

import gradio as gr
from gradio_client.utils import is_http_url_like

from uvosam.errors import RemoteVideoError
from uvosam_app.component_classes import gradio_like
from uvosam_app.links import LINKS_OFF, download
from uvosam_app.settings import AppSettings


def bound_file_links(blocks: gr.Blocks, settings: AppSettings) -> None:
    """Every component of ``blocks`` fetches a file given as a link with Load's limits (see the module docstring),
    in every session; call it once the page is built."""
    for block in blocks.blocks.values():
        if isinstance(block, gr.components.Component):
            block.__class__ = _bounded_class(block, settings)


def _bounded_class(component: gr.components.Component, settings: AppSettings) -> type:
    """``component``'s class with the bounded download; a session's copy registers its files with ``component``."""
    base = type(component)

    async def async_move_resource_to_block_cache(
        self: gr.components.Component, url_or_file_path: str | Path | None
    ) -> str | None:
        if url_or_file_path is None or not is_http_url_like(str(url_or_file_path)):
            return await base.async_move_resource_to_block_cache(self, url_or_file_path)
        cache = Path(component.GRADIO_CACHE)
        fetch = asyncio.ensure_future(
            asyncio.to_thread(fetch_link, str(url_or_file_path), cache, settings)
        )
        try:
            path = await asyncio.shield(fetch)
        except asyncio.CancelledError:
            # the request was cancelled: the download goes on in its thread, its file to be deleted
            fetch.add_done_callback(_discard)
            raise
        component.temp_files.add(path)
        return path

    return gradio_like(base, async_move_resource_to_block_cache=async_move_resource_to_block_cache)


def _discard(fetch: asyncio.Future[str]) -> None:
    """Delete what a download no request waits for any more left (its folder; nothing if it failed)."""
    if not fetch.cancelled() and fetch.exception() is None:
        shutil.rmtree(Path(fetch.result()).parent, ignore_errors=True)


def fetch_link(url: str, cache_dir: Path, settings: AppSettings) -> str:
    """Download ``url`` into a new folder in ``cache_dir`` with Load's limits; returns the file's path.

    Raises:
        gr.Error: the app takes no links, or the download was refused or failed (the downloader's message);
            nothing is left in ``cache_dir`` then.
    """
    if not settings.url_input:
        raise gr.Error(LINKS_OFF, print_exception=False)
    cache_dir.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="link-", dir=cache_dir))
    try:
        return str(download(url, folder, settings))
    except BaseException as err:
        shutil.rmtree(folder, ignore_errors=True)
        if isinstance(err, RemoteVideoError):
            raise gr.Error(str(err), print_exception=False) from None
        raise
