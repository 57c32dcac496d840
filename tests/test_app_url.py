"""The app's "direct link" input: Load downloads into the session's folder and shows the file as the input (a
video, or a zip of frames); refusals come back as the library's message; links into the server's own network are
refused by default; a host can switch the input off (UVOSAM_URL_INPUT=0); a file input of the API given as a link
is fetched with the same limits (uvosam_app.file_links). Links are served by a local HTTP server
(tests/http_helpers.py). Load then Run in a browser: tests/test_app_browser.py."""

from __future__ import annotations

import asyncio
import io
import logging
import re
import subprocess
import tempfile
import threading
import time
import zipfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("gradio")
import gradio as gr
import httpx
import imageio_ffmpeg
from app_helpers import launched, run_json, stepped, write_clip
from doubles import MovingBoxTracker
from gradio.utils import get_upload_folder
from gradio_client import Client, handle_file
from http_helpers import Route, send, serving

import app as app_module
from uvosam.pipeline import UVOSAM
from uvosam.segmenter import BoxPromptSegmenter
from uvosam_app import handlers as app_handlers
from uvosam_app import links as app_links
from uvosam_app.settings import AppSettings

MP4 = {"Content-Type": "video/mp4"}
# a request of the app's page (``uvosam_app.errors.from_page``), of no session: Load as the page calls it
PAGE = SimpleNamespace(headers={"x-gradio-user": "app"}, session_hash=None)


def no_progress(*args, **kwargs) -> None:
    pass


def mpeg4_avi(mp4: Path) -> bytes:
    """The clip re-encoded to MPEG-4 Part 2 in an .avi: a codec browsers cannot play (Gradio's player would
    re-encode it to H.264)."""
    avi = mp4.with_suffix(".avi")
    ffmpeg = [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-y", "-i", str(mp4)]
    subprocess.run([*ffmpeg, "-c:v", "mpeg4", "-q:v", "2", str(avi)], check=True, timeout=60)
    return avi.read_bytes()


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """A local server with a clip (H.264 .mp4, and as MPEG-4 .avi), a zip of frames, a text file named .mp4 and a
    clip too wide for the app's sanity limit (4096 px a side)."""
    folder = tmp_path_factory.mktemp("site")
    clip = write_clip(folder / "clip.mp4", 12, 96, 64).read_bytes()
    avi = mpeg4_avi(folder / "clip.mp4")
    frames = io.BytesIO()
    with zipfile.ZipFile(frames, "w") as zf:
        for i in range(3):
            image = io.BytesIO()
            Image.fromarray(np.full((64, 96, 3), 60 * i, np.uint8)).save(image, format="PNG")
            zf.writestr(f"seq/{i:05d}.png", image.getvalue())
    with serving() as server:
        server.routes["/media/street.mp4"] = send(clip, MP4)
        server.routes["/media/old.avi"] = send(avi, {"Content-Type": "video/x-msvideo"})
        server.routes["/media/frames.zip"] = send(
            frames.getvalue(), {"Content-Type": "application/zip"}
        )
        server.routes["/media/wide.mp4"] = send(
            write_clip(folder / "w.mp4", 2, 4112, 16).read_bytes(), MP4
        )
        server.routes["/media/notes.mp4"] = send(
            b"not a video\n" * 50, {"Content-Type": "video/mp4"}
        )
        server.avi = avi
        yield server, clip


def test_load_puts_the_download_in_the_session_folder_and_keeps_the_last_run(site, tmp_path):
    server, clip = site
    settings = AppSettings(work_root=tmp_path, url_allow_private=True)
    app = app_handlers.App(lambda preset, sam: None, settings)
    # as a finished run leaves it: idle, its masks feed Re-render
    last_run = app.work.new_dir(None, "run")
    app.work.release(last_run)
    state = app_handlers.SessionRun(last_run, last_run / "cache")
    video, frames, linked = app.links.load_url(
        server.url("/media/street.mp4"), state, request=PAGE, progress=no_progress
    )
    assert frames is None and linked is None  # H.264 .mp4: the player shows it as it is
    assert Path(video).read_bytes() == clip and Path(video).name == "street.mp4"
    # the session's folder: goes with it
    assert Path(video).parent.parent == app.work.session_dir(None)
    assert "**street.mp4**: 96x64, 12 frames" in app.describe(
        video, "idol-ytvis19-r50", "vit_b", 1, 900
    )
    # a zip of frames goes to the frames input (the video is cleared); the earlier download goes, the run stays
    video2, frames, _ = app.links.load_url(
        server.url("/media/frames.zip"), state, request=PAGE, progress=no_progress
    )
    assert (
        video2 is None
        and zipfile.is_zipfile(frames)
        and last_run.is_dir()
        and not Path(video).exists()
    )
    assert "**frames.zip**: 96x64, 3 frames." in app.describe(
        None, "idol-ytvis19-r50", "vit_b", 1, 900, frames
    )
    app.unload(None)  # the tab closes: the session's folder goes, downloads with it
    assert not app.work.session_dir(None).exists()


@pytest.mark.parametrize(
    ("path", "message"),
    [
        (
            "/media/missing.mp4",
            r"127\.0\.0\.1 answered 404 Not Found for http://127\.0\.0\.1:\d+/media/missing",
        ),
        ("/media/notes.mp4", r"^notes\.mp4 is not a video"),  # by name, not by the server's folder
        (
            "/media/wide.mp4",
            r"wide\.mp4 is 4112x16: its longest side 4112 px, over this app's limit of 4096 px.*UVOSAM_MAX_SIDE",
        ),
    ],
)
def test_a_refused_link_gives_the_message_and_leaves_no_file(site, tmp_path, path, message):
    server, _ = site
    settings = AppSettings(work_root=tmp_path, max_side=150, url_allow_private=True)
    app = app_handlers.App(lambda preset, sam: None, settings)
    with pytest.raises(gr.Error) as err:
        app.links.load_url(server.url(path), None, progress=no_progress)
    assert re.search(message, err.value.message) and str(tmp_path) not in err.value.message
    assert not app.work.session_dir(None).exists()  # nothing left, the session's folder included


def test_a_load_failing_unexpectedly_leaves_no_file(site, tmp_path, monkeypatch, caplog):
    server, _ = site
    app = app_handlers.App(
        lambda preset, sam: None, AppSettings(work_root=tmp_path, url_allow_private=True)
    )

    def broken(*args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(app_links, "check_download", broken)
    caplog.set_level(logging.ERROR, logger="uvosam.app")
    with pytest.raises(gr.Error, match=r"Something went wrong .*\(error id (\w+)\)") as raised:
        app.links.load_url(server.url("/media/street.mp4"), None, progress=no_progress)
    assert not app.work.session_dir(None).exists()  # the download's folder went, and the session's
    error_id = re.search(r"error id (\w+)", raised.value.message)[1]
    # named by its request ("run failed (error id ...)" before)
    failed = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(failed) == 1 and re.fullmatch(
        rf"/load_url \(API, \w{{6}}\) failed \(error id {error_id}\)", failed[0]
    ), failed


def test_the_app_refuses_links_into_its_own_network_by_default(site, tmp_path):
    server, _ = site
    app = app_handlers.App(lambda preset, sam: None, AppSettings(work_root=tmp_path))
    seen = len(server.seen)
    for url in (server.url("/media/street.mp4"), "http://169.254.169.254/latest/meta-data/"):
        with pytest.raises(gr.Error, match=r"inside this server's network .*refused here"):
            app.links.load_url(url, None, progress=no_progress)
    assert len(server.seen) == seen  # nothing reached the server
    with pytest.raises(gr.Error, match="Paste a direct link to a video file first"):
        app.links.load_url("  ", None, progress=no_progress)


def test_the_sessions_folders_are_not_served_and_what_load_shows_is_copied(
    site, tmp_path, monkeypatch
):
    """Gradio serves a folder of ``launch(allowed_paths)`` inline with its files' real types: the sessions' folders
    were one, and a Load's download named x.html (a <script>, then a zip: a zip of frames) ran its script in the
    Space's origin. They are served no more (and the download is named x_html): what the page shows of them goes
    through Gradio's cache, also from a work folder outside the temp folder and the working directory, from where
    Gradio copies nothing itself."""
    server, clip = site
    hostile = io.BytesIO(b"<script>alert(document.domain)</script>")
    with zipfile.ZipFile(hostile, "a") as zf:  # a zip of frames after the script
        for i in range(2):
            image = io.BytesIO()
            Image.fromarray(np.full((64, 96, 3), 90 * i, np.uint8)).save(image, format="PNG")
            zf.writestr(f"seq/{i:05d}.png", image.getvalue())
    attached = {"Content-Disposition": 'attachment; filename="x.html"'}
    server.routes["/x"] = send(hostile.getvalue(), attached)
    (tmp_path / "temp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "temp"))
    settings = AppSettings(work_root=tmp_path / "work", url_allow_private=True)
    with launched(lambda preset, sam: None, settings) as url, httpx.Client(timeout=30) as http:
        client = Client(url, verbose=False)
        video, frames_zip = client.predict(server.url("/media/street.mp4"), api_name="/load_url")
        assert frames_zip is None and Path(video).read_bytes() == clip
        video, frames_zip = client.predict(server.url("/x"), api_name="/load_url")
        assert video is None and Path(frames_zip).name == "x_html"
        downloads = [p for p in (tmp_path / "work").rglob("*") if p.is_file()]
        assert "x_html" in [p.name for p in downloads]
        for download in downloads:
            assert http.get(f"{url}gradio_api/file={download}").status_code == 403, download.name


def test_load_over_the_api_and_a_page_link_refused(site, tmp_path):
    """Run after Load goes through the browser (tests/test_app_browser.py): the input player's file is Gradio's
    copy of the download, which Run reads."""
    server, clip = site
    settings = AppSettings(work_root=tmp_path / "work", url_allow_private=True)
    with launched(lambda preset, sam: None, settings) as url:
        client = Client(url, verbose=False)
        video, frames = client.predict(server.url("/media/street.mp4"), api_name="/load_url")
        # Gradio's copy, served to the client
        assert frames is None and Path(video).read_bytes() == clip
        with pytest.raises(
            Exception, match="youtube.com page link, not a video file: use a direct link"
        ):
            client.predict("https://www.youtube.com/watch?v=abc", api_name="/load_url")


def _ids(demo: gr.Blocks) -> set[str]:
    return {c["props"].get("elem_id") for c in demo.get_config_file()["components"]}


def test_a_host_can_switch_the_link_input_off(tmp_path):
    on = app_module.build_demo(lambda preset, sam: None, settings=AppSettings(work_root=tmp_path))
    assert {"url", "load-url"} <= _ids(on) and "/load_url" in on.get_api_info()["named_endpoints"]
    settings = AppSettings.from_env({"UVOSAM_URL_INPUT": "0", "UVOSAM_WORK_DIR": str(tmp_path)})
    off = app_module.build_demo(lambda preset, sam: None, settings=settings)
    assert (
        not {"url", "load-url"} & _ids(off)
        and "/load_url" not in off.get_api_info()["named_endpoints"]
    )
    with pytest.raises(gr.Error, match="takes no links"):
        app_handlers.App(lambda preset, sam: None, settings).links.load_url(
            "https://example.com/a.mp4", None
        )
    assert AppSettings.from_env({}).url_allow_private is False
    assert AppSettings.from_env({"UVOSAM_URL_ALLOW_PRIVATE": "1"}).url_allow_private is True
    with pytest.raises(ValueError, match="UVOSAM_URL_INPUT must be 1 or 0 .*got 'sometimes'"):
        AppSettings.from_env({"UVOSAM_URL_INPUT": "sometimes"})


def tiny_pipeline(tiny_sam_model):
    pipe = UVOSAM(MovingBoxTracker(num_objects=2), BoxPromptSegmenter(tiny_sam_model))
    return lambda preset, sam: pipe


def test_a_link_the_player_would_reencode_is_kept_as_downloaded_and_run(
    site, tmp_path, tiny_sam_model
):
    """MPEG-4 in .avi: Gradio's player would re-encode it (lossy, slow), so Load keeps the download as the
    session's linked video; Run reads that file, held while a new folder is made; an upload replaces it."""
    server, _ = site
    settings = AppSettings(work_root=tmp_path, url_allow_private=True, status_interval_s=0.1)
    app = app_handlers.App(tiny_pipeline(tiny_sam_model), settings)
    video, frames, linked = app.links.load_url(
        server.url("/media/old.avi"), None, request=PAGE, progress=no_progress
    )
    assert video is None and frames is None and Path(linked).read_bytes() == server.avi
    about = app.describe(None, "idol-ytvis19-r50", "vit_b", 1, 900, None, linked)
    assert about.startswith(
        "**old.avi** (MPEG-4 Part 2) loaded from the link: browsers cannot play"
    )
    assert "no preview" in about and "**old.avi**: 96x64, 12 frames" in about
    assert app.links.linked_frame(linked).shape == (64, 96, 3)
    args = ("idol-ytvis19-r50", "vit_b", 0.0, 10, 1, 900, 0, True, True, "overlay", None, False)
    for _ in range(2):  # a Run's new folder deletes the session's idle ones: not the linked file
        *_, last = stepped(app.segment(None, *args, None, linked))
        assert last[0].startswith("done: 12 frames") and Path(linked).is_file()
    assert run_json(last[4])["video"]["name"] == "old"  # the file as downloaded
    redo = stepped(app.rerenders.rerender([1], True, True, 0, "overlay", "", False, 0.0, last[-1], None,
                                linked))  # fmt: skip
    assert list(redo)[-1][0].startswith("done") and Path(linked).is_file()
    # a later upload or zip replaces it; their clearing (the linked Load clears them) leaves it
    # and its first frame goes from *Latest frame* (it stayed beside the upload that replaced it)
    skip = gr.skip()
    assert (
        app.links.input_changed("upload.mp4", None, linked)
        == app.links.input_changed(None, "f.zip", linked)
        == (None, None)
    )
    assert app.links.input_changed(None, None, linked) == (skip, skip)
    # no linked file: Latest frame (a run's, of another input) goes
    assert app.links.input_changed("upload.mp4", None, None) == (skip, None)
    assert app.links.linked_frame(None) is None  # a Load that replaces it (a State change)
    # a later Load of a playable file clears it
    assert (
        app.links.load_url(
            server.url("/media/street.mp4"), None, linked, request=PAGE, progress=no_progress
        )[2]
        is None
    )
    app.unload(None)
    with pytest.raises(gr.Error, match="no longer kept on the server"):
        list(stepped(app.segment(None, *args, None, linked)))


def test_an_upload_browsers_cannot_play_is_described_and_its_first_frame_shown(site, tmp_path):
    """An MPEG-4 .avi upload: Gradio shows it unconverted, and the player said only "Video not playable" while the
    description called the file fine. Now the description says browsers cannot play it and Run reads it, and its
    first frame goes under *Latest frame*, as a linked file's does (replacing a linked file's). An H.264 .mp4
    uploaded next clears it (the .avi's frame stayed beside the new video), as clearing the upload does."""
    server, clip = site
    app = app_handlers.App(lambda preset, sam: None, AppSettings(work_root=tmp_path))
    avi = tmp_path / "old.avi"
    avi.write_bytes(server.avi)
    about = app.describe(str(avi), "idol-ytvis19-r50", "vit_b", 1, 900)
    assert about.startswith(
        '**old.avi** (MPEG-4 Part 2 in .avi): most browsers cannot play this file ("Video not playable"), so the '
        "player shows no picture: its first frame is under *Latest frame*. Run reads it as uploaded.\n\n"
        "**old.avi**: 96x64, 12 frames"
    )
    skip = gr.skip()
    unlinked, frame = app.links.input_changed(str(avi), None, None)
    assert unlinked == skip and frame.shape == (64, 96, 3) and frame.dtype == np.uint8
    assert app.links.input_changed(str(avi), None, "linked.avi")[0] is None
    # over the app's frame limit (Max frames covers less of it): still its first frame
    short = app_handlers.App(
        lambda preset, sam: None, AppSettings(work_root=tmp_path, max_frames=4)
    )
    assert short.links.input_changed(str(avi), None, None)[1].shape == (64, 96, 3)
    mp4 = tmp_path / "clip.mp4"
    mp4.write_bytes(clip)
    assert app.links.input_changed(str(mp4), None, None) == (skip, None)
    assert app.links.input_changed(None, None, None) == (skip, None)
    assert "browsers" not in app.describe(str(mp4), "idol-ytvis19-r50", "vit_b", 1, 900)


def test_a_linked_load_over_the_api_is_run_by_segment_in_the_same_session(
    site, tmp_path, tiny_sam_model
):
    """/segment with no video and no zip runs the session's last /load_url download, whichever output it came back
    as: a browser-playable link's (returned as the video) was refused with "Upload a video", an .avi's ran."""
    server, _ = site
    settings = AppSettings(work_root=tmp_path / "work", url_allow_private=True)
    with launched(tiny_pipeline(tiny_sam_model), settings) as url:
        client = Client(url, verbose=False)
        assert client.predict(server.url("/media/old.avi"), api_name="/load_url") == (None, None)
        status, *_, zip_path, _, _ = client.predict(None, api_name="/segment")  # video: None
        assert status.startswith("done: 12 frames") and run_json(zip_path)["video"]["name"] == "old"
        video, frames = client.predict(server.url("/media/street.mp4"), api_name="/load_url")
        assert video and frames is None
        status, *_, zip_path, _, _ = client.predict(None, api_name="/segment")
        assert (
            status.startswith("done: 12 frames") and run_json(zip_path)["video"]["name"] == "street"
        )
        video, frames = client.predict(server.url("/media/frames.zip"), api_name="/load_url")
        assert video is None and frames
        status, *_ = client.predict(None, api_name="/segment")
        assert status.startswith("done: 3 frames")
        # another session has no linked video
        with pytest.raises(Exception, match="Upload a video"):
            Client(url, verbose=False).predict(None, api_name="/segment")


def test_each_session_loads_into_its_own_folder_and_keeps_its_linked_video(
    site, tmp_path, tiny_sam_model
):
    """Gradio hands Load its session (gr.Request) only when it can resolve the handler's annotations: without it
    every session's download went to one shared folder, and one user's Load deleted another's linked video."""
    server, _ = site
    work = tmp_path / "work"
    settings = AppSettings(work_root=work, url_allow_private=True)
    with launched(tiny_pipeline(tiny_sam_model), settings) as url:
        first, second = Client(url, verbose=False), Client(url, verbose=False)
        first.predict(server.url("/media/old.avi"), api_name="/load_url")
        second.predict(server.url("/media/old.avi"), api_name="/load_url")
        links = sorted(work.glob("*/link-*/old.avi"))
        assert len(links) == 2 and links[0].parent.parent != links[1].parent.parent
        assert not (work / "anonymous").exists()
        status, *_ = first.predict(None, api_name="/segment")
        assert status.startswith("done: 12 frames")


def unannounced(size: int) -> Route:
    """A route sending ``size`` bytes as an mp4 without a Content-Length (the closed connection ends it): a download
    learns its size only by counting, so part of it is on disk when the cap stops it."""

    def route(h) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "video/mp4")
        h.send_header("Connection", "close")
        h.end_headers()
        for _ in range(size >> 13):
            h.wfile.write(b"v" * 8192)

    return route


def test_a_file_given_as_a_link_is_bounded_over_the_api(site, tmp_path, tiny_sam_model):
    """A file input sent as a link (``handle_file("https://...")``) is fetched by ``uvosam_app.file_links`` with
    Load's limits, not by Gradio's unbounded download (which also refuses 127.0.0.1: neither call below would pass
    there); this pins the Gradio internal that module hooks."""
    server, _ = site
    server.routes["/media/endless.mp4"] = unannounced(3 << 20)
    settings = AppSettings(work_root=tmp_path / "work", url_allow_private=True, max_upload_mb=1)
    with launched(tiny_pipeline(tiny_sam_model), settings) as url:
        client = Client(url, verbose=False)
        status, *_ = client.predict(
            handle_file(server.url("/media/street.mp4")), api_name="/segment"
        )
        assert status.startswith("done: 12 frames")
        cached = set(Path(get_upload_folder()).rglob("*"))
        with pytest.raises(
            Exception,
            match=r"endless\.mp4 goes on past the limit .*at most 1\.0 MiB are accepted here",
        ):
            client.predict(handle_file(server.url("/media/endless.mp4")), api_name="/segment")
        assert set(Path(get_upload_folder()).rglob("*")) == cached  # no part file, no folder


def session_copy(block: gr.components.Component) -> gr.components.Component:
    """``block`` as Gradio 6.31 builds a session's own copy of it, on any update of its props (``gr.skip()`` too):
    ``Blocks.postprocess_data``."""
    return type(block)(**{**block.constructor_args, "render": False})


def test_every_file_input_of_the_api_takes_links_as_load_does(site, tmp_path):
    """The video, the zip of frames (/segment), the ground truth and the masks zip (/score), and a session's copy
    of each: a link to an address inside the server's network is refused unless the host allows it, every link
    when the app takes none; a path (an upload) takes Gradio's way. A copy's download is the app's component's file
    (Gradio's sweep deletes those). Over the API after a run: tests/test_app_session_copies.py."""
    server, clip = site
    link = server.url("/media/street.mp4")

    def file_inputs(settings: AppSettings) -> list:
        demo = app_module.build_demo(lambda preset, sam: None, settings=settings)
        return [
            block
            for fn in demo.fns.values()
            if fn.api_visibility == "public"
            for block in fn.inputs
            if isinstance(block, (gr.Video, gr.File))
        ]

    blocks = file_inputs(AppSettings(work_root=tmp_path))
    assert sorted(b.elem_id for b in blocks) == ["frames", "gt", "inp", "zip"]
    seen = len(server.seen)
    for block in blocks + [session_copy(b) for b in blocks]:
        with pytest.raises(gr.Error, match=r"inside this server's network .*refused here"):
            asyncio.run(block.async_move_resource_to_block_cache(link))
    assert len(server.seen) == seen  # nothing reached the server
    upload = tmp_path / "up.mp4"
    upload.write_bytes(clip)
    cached = asyncio.run(session_copy(blocks[0]).async_move_resource_to_block_cache(upload))
    assert (
        Path(cached).parent.parent == Path(get_upload_folder())
        and Path(cached).read_bytes() == clip
    )
    env = {
        "UVOSAM_URL_INPUT": "0",
        "UVOSAM_URL_ALLOW_PRIVATE": "1",
        "UVOSAM_WORK_DIR": str(tmp_path),
    }
    off = file_inputs(AppSettings.from_env(env))
    assert len(off) == 4
    for block in off + [session_copy(b) for b in off]:
        with pytest.raises(gr.Error, match=r"takes no links .*download the file and upload it"):
            asyncio.run(block.async_move_resource_to_block_cache(link))
    assert len(server.seen) == seen
    masks_zip = next(b for b in file_inputs(AppSettings(work_root=tmp_path, url_allow_private=True))
                     if b.elem_id == "zip")  # fmt: skip
    fetched = asyncio.run(session_copy(masks_zip).async_move_resource_to_block_cache(link))
    assert fetched in masks_zip.temp_files and Path(fetched).read_bytes() == clip


def test_a_link_download_cancelled_over_the_api_leaves_no_file(site, tmp_path):
    """A request cancelled while a file given as a link downloads (gradio_client's ``job.cancel()``): the download
    goes on in its thread, which cannot be cut, and the file it leaves is deleted, not kept in Gradio's cache
    unlisted (its sweep deletes only the files it lists)."""
    server, clip = site
    sent = threading.Event()
    part = len(clip) // 4 + 1

    def slow(h) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "video/mp4")
        h.send_header("Content-Length", str(len(clip)))
        h.end_headers()
        for start in range(0, len(clip), part):
            time.sleep(0.1)
            h.wfile.write(clip[start : start + part])
        sent.set()

    server.routes["/media/slow.mp4"] = slow
    settings = AppSettings(work_root=tmp_path, url_allow_private=True)
    demo = app_module.build_demo(lambda preset, sam: None, settings=settings)
    video = next(b for b in demo.blocks.values() if getattr(b, "elem_id", None) == "inp")
    cache = Path(get_upload_folder())
    before = set(cache.rglob("*"))

    async def cancel_it() -> set[Path]:
        move = asyncio.create_task(
            video.async_move_resource_to_block_cache(server.url("/media/slow.mp4"))
        )
        await asyncio.sleep(0.15)
        move.cancel()
        with pytest.raises(asyncio.CancelledError):
            await move
        assert not sent.is_set()  # cancelled mid-download
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:  # the loop runs on, as a server's does
            left = set(cache.rglob("*")) - before  # noqa: ASYNC240 - a test's tmp folder: quick
            if sent.is_set() and not left:
                break
            await asyncio.sleep(0.05)
        return left

    assert asyncio.run(cancel_it()) == set() and sent.is_set()
