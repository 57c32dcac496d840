"""An animated GIF in the box of a zip of frames: Gradio's video upload refuses it (an ``image/gif``), so that box
takes it, as the video: described, previewed by its first frame and run as an upload is. Tiny models on CPU."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("gradio")
import gradio as gr
from app_helpers import client, run_json, zip_of_frames
from gradio_client import handle_file
from proc import pattern_clip

from uvosam.video import probe
from uvosam_app import handlers as app_handlers
from uvosam_app.settings import AppSettings

ARGS = ("idol-ytvis19-r50", "vit_b", 1, 900)


@pytest.fixture(scope="module")
def gif(tmp_path_factory) -> Path:
    """8 frames of a 96x64 test pattern at 10 fps, as an animated GIF (as ``ffmpeg -c:v gif`` writes one)."""
    path = tmp_path_factory.mktemp("gif") / "Anim.GIF"
    return pattern_clip(path, "-c:v", "gif", "-f", "gif", size="96x64", frames=8)


def test_a_gif_in_the_frames_box_is_described_as_the_video(gif, tmp_path):
    app = app_handlers.App(lambda preset, sam: None, AppSettings(work_root=tmp_path))
    text = app.describe(None, *ARGS, str(gif))
    assert text.startswith(
        "**Anim.GIF** (GIF) is taken as the video. The player has no preview of it: its first frame is under "
        "*Latest frame*, below Run. Run reads it as uploaded.\n\n**Anim.GIF**: 96x64, 8 frames"
    )
    both = app.describe(str(gif), *ARGS, str(gif))
    assert both.startswith(
        "**Both a video and an animated GIF are loaded:** clear one of them (its ✕), then Run."
    )
    # a zip is still a zip of frames
    frames = zip_of_frames(tmp_path / "f.zip", "f", 2)
    assert app.describe(str(gif), *ARGS, str(frames)).startswith(
        "**Both a video and a zip of frames are loaded:**"
    )


def test_a_gif_in_the_frames_box_shows_its_first_frame(gif, tmp_path):
    app = app_handlers.App(lambda preset, sam: None, AppSettings(work_root=tmp_path))
    unlinked, frame = app.links.input_changed(None, str(gif), None)
    assert unlinked == gr.skip() and frame.shape == (64, 96, 3) and frame.dtype == np.uint8
    assert (
        app.links.input_changed(None, str(gif), "linked.mp4")[0] is None
    )  # it replaces a linked Load
    # a zip of frames has no first frame there
    assert (
        app.links.input_changed(None, str(zip_of_frames(tmp_path / "f.zip", "f", 2)), None)[1]
        is None
    )


def test_a_gif_given_as_frames_zip_runs_as_the_video(server, clips, gif, caplog):
    caplog.set_level(logging.INFO, logger="uvosam.app")
    c = client(server)
    status, _, _, mp4, masks_zip, _, _ = c.predict(
        None, frames_zip=handle_file(str(gif)), api_name="/segment"
    )
    assert status.startswith("done: 8 frames, 2 tracks")
    # the server log's start line names it as the run takes it ("frames_zip=Anim.GIF" before)
    starts = [r.getMessage() for r in caplog.records if r.getMessage().startswith("start /segment")]
    assert len(starts) == 1 and "video=Anim.GIF " in starts[0] and "frames_zip" not in starts[0], (
        starts
    )
    assert Path(mp4).name == "Anim_overlay.mp4" and probe(mp4).num_frames == 8
    video = run_json(masks_zip)["video"]
    assert (
        video["name"],
        video["source"],
        video["width"],
        video["height"],
        video["source_frames"],
    ) == ("Anim", "Anim.GIF", 96, 64, 8)
    with pytest.raises(
        Exception, match="Both a video and an animated GIF are loaded: clear one of them"
    ):
        c.predict(
            handle_file(str(clips["a"])), frames_zip=handle_file(str(gif)), api_name="/segment"
        )


@pytest.mark.parametrize(
    ("name", "codec", "args", "called"),
    [
        ("Anim.webp", "WebP", ["-c:v", "libwebp_anim", "-loop", "0"], "an animated WebP"),
        ("Anim.apng", "APNG", ["-plays", "0", "-f", "apng"], "an APNG"),
        ("Anim.png", "APNG", ["-plays", "0", "-f", "apng"], "a PNG"),  # an APNG as often named
    ],
)
def test_an_animated_webp_or_png_in_the_frames_box_is_the_video_too(
    name, codec, args, called, tmp_path
):
    """Gradio's video upload refuses them as it refuses a GIF (``image/*``); the box of a zip of frames said "is not
    a readable zip file"."""
    path = tmp_path / name
    pattern_clip(path, *args, size="96x64", frames=5)
    app = app_handlers.App(lambda preset, sam: None, AppSettings(work_root=tmp_path))
    text = app.describe(None, *ARGS, str(path))
    assert (
        text.startswith(f"**{name}** ({codec}) is taken as the video")
        and f"**{name}**: 96x64, 5 frames" in text
    )
    assert app.links.input_changed(None, str(path), None)[1].shape == (64, 96, 3)
    # named as the box names them ("an animated WEBP", "an animated APNG" before)
    assert app.describe(str(path), *ARGS, str(path)).startswith(
        f"**Both a video and {called} are loaded:**"
    )


@pytest.mark.parametrize("name", ["Still.png", "Still.webp"])
def test_a_still_png_or_webp_in_the_frames_box_is_refused_in_the_apps_words(name, tmp_path):
    """The library's "put them in a folder as frames": the app has no folder input, and its zips take no WebP."""
    path = tmp_path / name
    Image.fromarray(np.full((64, 96, 3), 90, np.uint8)).save(path)
    app = app_handlers.App(lambda preset, sam: None, AppSettings(work_root=tmp_path))
    text = app.describe(None, *ARGS, str(path))
    kind = Path(name).suffix[1:]
    assert (
        f"**Run would refuse this input:** {name} is a single still image ({kind}), not a video. To segment "
        "images, zip them as .jpg/.jpeg/.png frames and give the zip as a zip of frames." in text
    ), text
    assert "folder" not in text
