"""What an API client and a page left open get from the app: the "Use via API" page's own call works, each public
endpoint has a short description and the page lists no internal event; refusals name an upload by its file name
(never the server's path), say what to do when Gradio's hourly cache sweep deleted it, and say what a ground truth
zip should hold. Tiny models on CPU."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("gradio")
import gradio as gr
from app_helpers import launched, stepped, write_clip
from doubles import MovingBoxTracker
from gradio_client import Client, handle_file
from proc import ffmpeg

import app as app_module
from uvosam.pipeline import UVOSAM
from uvosam.segmenter import BoxPromptSegmenter
from uvosam_app import handlers as app_handlers
from uvosam_app.scoring import score_masks_zip
from uvosam_app.settings import AppSettings
from uvosam_app.text import API_DESCRIPTIONS, SOUND_GONE, SOUND_REPLACED

PUBLIC = {"/segment", "/rerender", "/score", "/load_url"}


@pytest.fixture(scope="module")
def pipeline(tiny_sam_model):
    pipe = UVOSAM(MovingBoxTracker(num_objects=2), BoxPromptSegmenter(tiny_sam_model))
    return lambda preset, sam: pipe


@pytest.fixture(scope="module")
def server(tmp_path_factory, pipeline):
    settings = AppSettings(work_root=tmp_path_factory.mktemp("work"))
    with launched(pipeline, settings) as url:
        yield url


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return write_clip(tmp_path_factory.mktemp("clips") / "clip.mp4", 8, 96, 64)


def test_output_side_as_the_api_page_shows_it_and_as_an_int(server, clip):
    """The API page's sample had output_side="854" (Gradio lists a Dropdown's choices as strings), which the int
    choices refused ("Value: 854 is not in the list of choices"); the int keeps working."""
    client = Client(server, verbose=False)
    info = client.view_api(print_info=False, return_format="dict")
    side = next(p for p in info["named_endpoints"]["/segment"]["parameters"]
                if p["parameter_name"] == "output_side")  # fmt: skip
    assert side["parameter_default"] == "854" and side["type"]["enum"] == [
        "0",
        "1280",
        "854",
        "640",
        "480",
    ]
    status, *_ = client.predict(handle_file(str(clip)), output_side="854", api_name="/segment")
    assert status.startswith("done: 8 frames")
    status, *_ = client.predict([1], output_side=640, api_name="/rerender")
    assert status.startswith("done")
    with pytest.raises(Exception, match=r"output_side over the API\) takes one of 0, 1280, 854"):
        client.predict([1], output_side="1000", api_name="/rerender")


@pytest.mark.parametrize(
    ("setting", "value", "message"),
    [
        (
            "tracker",
            "foo",
            r"Tracker preset \(tracker over the API\) takes one of idol-ytvis19-r50, ",
        ),
        ("sam", "vit_x", r"Mask model \(sam over the API\) takes one of vit_b, vit_l, vit_h"),
        (
            "style",
            "nope",
            r"Video style \(style over the API\) takes one of overlay, cutout",
        ),
    ],
)
def test_a_value_none_of_a_settings_choices_is_refused_naming_the_setting(
    server, clip, capfd, setting, value, message
):
    """Gradio's own check said "Value: 'vit_x' (type: <class 'str'>) is not in the list of choices: [...]", naming
    no setting, and printed a traceback in the server log."""
    capfd.readouterr()
    with pytest.raises(Exception, match=rf"^{message}.*; got '{value}'\.$"):
        Client(server, verbose=False).predict(
            handle_file(str(clip)), api_name="/segment", **{setting: value}
        )
    assert "Traceback" not in capfd.readouterr().err


def test_output_side_none_is_refused_as_any_other_bad_value(server, clip):
    """None went through to ``int(None)``: "Something went wrong on our side" and a logged traceback."""
    client = Client(server, verbose=False)
    refused = r"takes one of 0, 1280, 854, 640, 480 .*; got None\.$"
    with pytest.raises(Exception, match=refused):
        client.predict(handle_file(str(clip)), output_side=None, api_name="/segment")
    status, *_ = client.predict(handle_file(str(clip)), api_name="/segment")
    assert status.startswith("done: 8 frames")
    with pytest.raises(Exception, match=refused):
        client.predict([1], output_side=None, api_name="/rerender")


def test_rerender_takes_split_last_and_calls_by_position_keep_their_meaning(server, clip):
    """``split`` was appended after /rerender's 8 values: a client that passes them by position (gradio_client
    fills the rest with the defaults) gets what it got before; docs/app.md lists them in the same order."""
    client = Client(server, verbose=False)
    info = client.view_api(print_info=False, return_format="dict")
    params = info["named_endpoints"]["/rerender"]["parameters"]
    names = [
        "keep",
        "show_boxes",
        "show_labels",
        "output_side",
        "style",
        "merge",
        "alpha_webm",
        "min_score",
        "split",
    ]
    assert [p["parameter_name"] for p in params] == names
    assert params[-1]["parameter_has_default"] and params[-1]["parameter_default"] == ""
    doc = " ".join((Path(app_module.__file__).parent / "docs" / "app.md").read_text().split())
    assert "9 values: " + ", ".join(f"`{n}`" for n in names) in doc
    status, *_ = client.predict(handle_file(str(clip)), api_name="/segment")
    assert status.startswith("done: 8 frames, 2 tracks")
    status, *_, table = client.predict(
        [1, 2], True, True, "0", "matte", "", False, 0.0, api_name="/rerender"
    )
    assert status.startswith("done: 8 frames, 2 tracks") and [r[0] for r in table["data"]] == [1, 2]
    status, *_, table = client.predict(
        [1, 2], True, True, "0", "matte", "", False, 0.0, "2@5", api_name="/rerender"
    )
    assert status.startswith("done: 8 frames, 3 tracks") and [r[0] for r in table["data"]] == [
        1,
        2,
        3,
    ]


def test_the_api_page_shows_a_short_description_of_each_public_endpoint_only(server):
    """It showed the handlers' docstrings ("An async generator: it waits for the job on the event loop...",
    "``links.needs_reencode``")."""
    info = Client(server, verbose=False).view_api(print_info=False, return_format="dict")
    assert set(info["named_endpoints"]) == PUBLIC and not info["unnamed_endpoints"]
    for name, endpoint in info["named_endpoints"].items():
        assert endpoint["description"] == API_DESCRIPTIONS[name.lstrip("/")]
        assert not any(word in endpoint["description"] for word in ("``", "generator", "handler"))


def test_an_upload_is_refused_by_its_name_never_by_the_servers_path(server, tmp_path):
    """A zero-byte upload's refusal read "failed: /tmp/gradio/72a2.../zero.mp4 is empty (0 bytes)"; a file that
    is not a video says what the upload box takes (it refuses an animated GIF, which Run would read)."""
    client = Client(server, verbose=False)
    (tmp_path / "zero.mp4").write_bytes(b"")
    (tmp_path / "notes.mp4").write_bytes(b"not a video\n" * 50)
    with pytest.raises(Exception, match=r"^zero\.mp4 is empty \(0 bytes\)") as empty:
        client.predict(handle_file(str(tmp_path / "zero.mp4")), api_name="/segment")
    with pytest.raises(Exception, match=r"^notes\.mp4 is not a video") as text:
        client.predict(handle_file(str(tmp_path / "notes.mp4")), api_name="/segment")
    for refusal in (empty, text):
        assert "/" not in str(refusal.value).split("Accepted:")[0]
    assert "an animated GIF, which the upload box refuses, in the box of a zip of frames" in str(
        text.value
    )


def _with_sound(path: Path) -> Path:
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=64x48:rate=10", "-f", "lavfi", "-i",
           "sine=frequency=440:duration=0.8", "-frames:v", 8, "-c:v", "libx264", "-c:a", "aac", path)  # fmt: skip
    return path


def test_after_the_cache_sweep_a_page_left_open_is_told_to_upload_again(tmp_path, pipeline):
    """Gradio deletes uploads after about an hour (app.py's delete_cache); Run on the video still shown said "No
    video or frame folder at /tmp/gradio/<hash>/x.mp4", a Re-render came back silent saying nothing."""
    app = app_handlers.App(
        pipeline, AppSettings(work_root=tmp_path / "work", status_interval_s=0.1)
    )
    upload = tmp_path / "gradio" / "0a1b2c" / "x.mp4"
    upload.parent.mkdir(parents=True)
    args = ("idol-ytvis19-r50", "vit_b", 0.0, 10, 1, 900, "0", True, True, "overlay")
    *_, last = stepped(app.segment(str(_with_sound(upload)), *args))
    assert last[0].startswith("done: 8 frames") and SOUND_GONE not in last[0]
    data = upload.read_bytes()
    upload.unlink()
    again = r"'x\.mp4 is no longer on the server \(uploads are deleted after about an hour\): upload it again"
    with pytest.raises(gr.Error, match=again + ", then Run"):
        list(stepped(app.segment(str(upload), *args)))
    assert "x.mp4 is no longer on the server" in app.describe(str(upload), *args[:2], 1, 900)
    zip_gone = str(tmp_path / "gradio" / "seq.zip")
    with pytest.raises(gr.Error, match=r"'seq\.zip is no longer on the server"):
        list(stepped(app.segment(None, *args, zip_gone)))
    redo = list(
        stepped(
            app.rerenders.rerender([1], True, True, "0", "overlay", "", False, 0.0, last[-1], None)
        )
    )
    assert redo[-1][0].startswith("done") and redo[-1][0].endswith(SOUND_GONE)
    # the library knows the file is gone, not why (a sweep, or a later Load that replaced a linked video)
    assert "hour" not in redo[-1][0]
    upload.write_bytes(data[:-1] + bytes([data[-1] ^ 0xFF]))  # another file at the run's path
    redo = list(
        stepped(
            app.rerenders.rerender([1], True, True, "0", "overlay", "", False, 0.0, last[-1], None)
        )
    )
    assert redo[-1][0].startswith("done") and redo[-1][0].endswith(SOUND_REPLACED)
    with pytest.raises(gr.Error, match=r"'gt\.zip is no longer on the server.*, then Score"):
        app.views.score(str(tmp_path / "gradio" / "gt.zip"), last[4])


def test_a_ground_truth_zip_of_jpgs_says_what_it_holds_and_what_is_expected(tmp_path):
    """It said "gt.zip holds no .png file under 'its root'"."""
    gt = tmp_path / "gt.zip"
    with zipfile.ZipFile(gt, "w") as zf:
        for i in range(3):
            image = io.BytesIO()
            Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(image, format="JPEG")
            zf.writestr(f"annot/{i:05d}.jpg", image.getvalue())
    with pytest.raises(ValueError) as refusal:
        score_masks_zip(str(gt), "unused.zip", max_files=10, work_dir=tmp_path)
    assert str(refusal.value).startswith(
        "gt.zip holds no .png file: it holds 3 .jpg files. The ground truth must be 8-bit palette (indexed) or "
        "grayscale PNGs whose pixel values are the object ids (0 background, 1..K objects, 255 void)"
    )


def test_rerender_before_any_run_says_to_run_first_over_the_api(server, clip):
    """Before any run /rerender([1, 3]) gave Gradio's "Value: 1 (type: <class 'int'>) is not in the list of
    choices: []", which said nothing of the missing run."""
    client = Client(server, verbose=False)
    with pytest.raises(Exception, match=r"^Run a video first"):
        client.predict([1, 3], api_name="/rerender")
    refused = r"^Tracks to keep \(keep over the API\) takes the track ids .*; got 'x'\."
    with pytest.raises(Exception, match=refused):
        client.predict([1, "x"], api_name="/rerender")
    status, *_ = client.predict(handle_file(str(clip)), api_name="/segment")
    assert status.startswith("done: 8 frames")
    with pytest.raises(Exception, match=r"^Tracks to keep .* of the last run \(1, 2\); got 99\."):
        client.predict([1, 99], api_name="/rerender")
    status, *_ = client.predict([1], api_name="/rerender")
    assert status.startswith("done:"), status


def test_a_refusal_an_api_client_meets_says_what_to_pass_too(server, clip, tmp_path):
    """Refusals worded for the page reached API clients: both inputs gave "clear one of them (its ✕), then Run",
    /score without masks "Run a video first", /rerender before a run the same, none naming what to pass."""
    from app_helpers import zip_of

    client = Client(server, verbose=False)
    frames = zip_of(tmp_path / "frames.zip", {"00000.jpg": b"x"})
    with pytest.raises(Exception) as both:
        client.predict(
            handle_file(str(clip)), frames_zip=handle_file(str(frames)), api_name="/segment"
        )
    assert str(both.value).endswith(
        "clear one of them (its ✕), then Run (over the API: pass only one of video and frames_zip)."
    )
    with pytest.raises(Exception) as no_masks:
        client.predict(handle_file(str(frames)), None, api_name="/score")
    assert str(no_masks.value).endswith(
        "(over the API: pass masks_zip, a zip that /segment or /rerender returned)."
    )
    with pytest.raises(Exception) as no_run:
        client.predict([1], api_name="/rerender")
    assert str(no_run.value).endswith(
        "(over the API: /segment first, with the same client or session_hash)."
    )


def test_the_outputs_names_on_the_api_page_are_short(server):
    """Gradio names an output after its label: the tracks table's long label ("Tracks (and below, a bar on every
    frame each one was seen in)") named it tracks_and_below_a_bar_on_every_frame_each_one_was_seen_in."""
    client = Client(server, verbose=False)
    info = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    names = [r["label"] for r in info["/segment"]["returns"]]
    assert names == [
        "Status",
        "Latest frame",
        "Masked video (live)",
        "Masked video (mp4)",
        "Masks (zip)",
        "Tracks",
        "Tracks to keep",
    ]
    assert [r["label"] for r in info["/rerender"]["returns"]] == names[:6]
