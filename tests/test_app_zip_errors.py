"""Uploaded zips that Python's zipfile or PIL cannot read (a password, Deflate64 compression, a frame of hundreds of
megapixels) and ground truth that cannot be scored (RGB PNGs, damaged ones): each ends in a message that names the
file as it is in the user's zip and says what to do, never in "Something went wrong" or the server's temp path."""

from __future__ import annotations

import io
import shutil
import struct
import types
import zipfile
from pathlib import Path

import gradio as gr
import numpy as np
import pytest
from app_helpers import stepped, wait_for
from doubles import MovingBoxTracker
from PIL import Image

from uvosam.pipeline import UVOSAM
from uvosam.segmenter import BoxPromptSegmenter
from uvosam_app import handlers as app_handlers
from uvosam_app import uploads
from uvosam_app.settings import AppSettings
from uvosam_app.text import GROUND_TRUTH_FRAMES, GROUND_TRUTH_HELP, GROUND_TRUTH_ZIP

ARGS = ("idol-ytvis19-r50", "vit_b")  # tracker, mask model
PASSWORD = (
    "seq/00000.png is password-protected (encrypted), which this app cannot open; save the zip "
    "without a password"
)
DEFLATE64 = (
    "seq/00000.png is compressed with Deflate64, which this app cannot unpack; re-zip the files with standard "
    "Deflate compression"
)


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _zip_of(path: Path, files: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return path


def _patched(
    path: Path, *, flags: int = 0, method: int | None = None, only: str | None = None
) -> Path:
    """The zip with ``flags`` set and its compression ``method`` changed in the local and central headers of every
    member (or of the member ``only``): how a zip with a password (flag bit 0) or a Deflate64 one (method 9) looks
    to ``zipfile``, which can write neither."""
    data = bytearray(path.read_bytes())
    # signature, then offsets of: flags, method, name length, name
    for sig, at_flags, at_method, at_len, at_name in (
        (b"PK\x03\x04", 6, 8, 26, 30),
        (b"PK\x01\x02", 8, 10, 28, 46),
    ):
        i = data.find(sig)
        while i >= 0:
            length = struct.unpack_from("<H", data, i + at_len)[0]
            name = bytes(data[i + at_name : i + at_name + length]).decode("utf-8", "replace")
            if only is None or name == only:
                data[i + at_flags] |= flags
                if method is not None:
                    struct.pack_into("<H", data, i + at_method, method)
            i = data.find(sig, i + 4)
    path.write_bytes(bytes(data))
    return path


def _frames(path: Path, frame: bytes, count: int = 3) -> Path:
    return _zip_of(path, {f"seq/{i:05d}.png": frame for i in range(count)})


@pytest.fixture(scope="module")
def small_frame() -> bytes:
    return _png(Image.new("L", (96, 64), 1))


@pytest.fixture(scope="module")
def huge_frame() -> bytes:
    """A 20000x10000 PNG of 24 KB: 200 megapixels, over what PIL opens (twice ``Image.MAX_IMAGE_PIXELS``)."""
    return _png(Image.new("1", (20000, 10000)))


def _unreadable_zip(case: str, folder: Path, small: bytes, huge: bytes) -> tuple[Path, str]:
    """(a zip of frames, the refusal expected for it, after its name)."""
    if case == "password":
        return _patched(_frames(folder / "locked.zip", small), flags=0x1), PASSWORD
    if case == "deflate64":
        return _patched(_frames(folder / "d64.zip", small), method=9), DEFLATE64
    if (
        case == "garbled"
    ):  # the first member's deflate stream garbled: zlib fails before the CRC is checked
        noise = np.random.default_rng(0).integers(0, 255, (64, 96), dtype=np.uint8)
        data = bytearray(_frames(folder / "garbled.zip", _png(Image.fromarray(noise))).read_bytes())
        start = 30 + len("seq/00000.png")  # the first member's data
        data[start + 2 : start + 40] = bytes(b ^ 0x5A for b in data[start + 2 : start + 40])
        (folder / "garbled.zip").write_bytes(bytes(data))
        return folder / "garbled.zip", "seq/00000.png is damaged (Error -3 while decompressing data"
    too_many = f"seq/00000.png has over {2 * Image.MAX_IMAGE_PIXELS} pixels, too many to open: resize the frames"
    return _frames(
        folder / "huge.zip", huge
    ), too_many + " to at most 4096 px a side and zip them again"


@pytest.mark.parametrize("case", ["password", "deflate64", "garbled", "huge"])
def test_describe_says_what_is_wrong_with_a_zip_of_frames_it_cannot_read(
    case, tmp_path, small_frame, huge_frame
):
    app = app_handlers.App(lambda preset, sam: None, AppSettings(work_root=tmp_path))
    frames, refusal = _unreadable_zip(case, tmp_path, small_frame, huge_frame)
    text = app.describe(None, *ARGS, 1, 900, str(frames))
    assert text.startswith(f"**Run would refuse this input:** {frames.name}: {refusal}"), text


@pytest.mark.parametrize("case", ["password", "deflate64", "garbled", "huge"])
def test_run_says_what_is_wrong_with_a_zip_of_frames_it_cannot_read(
    case, tmp_path, small_frame, huge_frame
):
    """Refused before anything is unpacked: no model is asked for, no run folder is left."""
    asked = []
    app = app_handlers.App(
        lambda preset, sam: asked.append(preset),
        AppSettings(work_root=tmp_path / "work", status_interval_s=0.1),
    )
    frames, refusal = _unreadable_zip(case, tmp_path, small_frame, huge_frame)
    steps = stepped(app.segment(None, *ARGS, 0.0, 10, 1, 900, 0, True, True, "overlay", str(frames), False,
                                types.SimpleNamespace(session_hash="s")))  # fmt: skip
    with pytest.raises(gr.Error) as refused:
        list(steps)
    assert refused.value.message.startswith(f"{frames.name}: {refusal}"), refused.value.message
    assert asked == []
    # the job's worker deletes its folder as it ends, which may be just after the handler raised
    assert wait_for(lambda: not any((tmp_path / "work").glob("*/run-*")), timeout=5)


def test_a_zipped_frame_over_the_side_limit_is_refused_from_its_header(tmp_path, monkeypatch):
    """Before its EXIF is looked for (a PNG whose orientation may sit after its pixels is decoded for it)."""
    looked = []
    monkeypatch.setattr(uploads, "image_display_size", lambda *a: looked.append(a))
    app = app_handlers.App(lambda preset, sam: None, AppSettings(work_root=tmp_path, max_side=150))
    frames = _frames(tmp_path / "big.zip", _png(Image.new("L", (4112, 100))))
    text = app.describe(None, *ARGS, 1, 900, str(frames))
    assert text.startswith(
        "**Run would refuse this input:** big.zip: seq/00000.png is 4112x100: its longest side 4112 px, over this "
        "app's limit of 4096 px. To use it, scale it down (e.g. to 1920x1080: the app scales larger frames down "
        "itself) and upload it again. (The app's host can raise it by setting UVOSAM_MAX_SIDE over 4096.)"
    ), text
    assert looked == []


# ------------------------------------------------------------------------------------------------------- Score
@pytest.fixture(scope="module")
def finished(tmp_path_factory, tiny_sam_model):
    """(app, masks zip) of a 6-frame 96x64 run; its masks zip is copied (Score reads it only)."""
    work = tmp_path_factory.mktemp("work")
    pipe = UVOSAM(MovingBoxTracker(num_objects=2), BoxPromptSegmenter(tiny_sam_model))
    app = app_handlers.App(
        lambda preset, sam: pipe, AppSettings(work_root=work, status_interval_s=0.1)
    )
    frames = _zip_of(
        work.parent / "clip.zip",
        {f"clip/{i:05d}.png": _png(Image.new("RGB", (96, 64), (40 * i, 0, 0))) for i in range(6)},
    )
    last = list(stepped(app.segment(None, *ARGS, 0.0, 10, 1, 900, 0, True, True, "overlay", str(frames), False,
                                    types.SimpleNamespace(session_hash="s"))))[-1]  # fmt: skip
    assert last[0].startswith("done: 6 frames"), last[0]
    masks = shutil.copy(last[4], work.parent / "masks.zip")
    return app, masks


def _annotations(path: Path, pngs: list[bytes]) -> Path:
    return _zip_of(path, {f"annot/{i:05d}.png": png for i, png in enumerate(pngs)})


def _ids_png(mode: str = "P") -> bytes:
    """A 96x64 id map (object 1 in a box) as a PNG: palette ("P"), grayscale ("L") or a colour rendering ("RGB")."""
    ids = np.zeros((64, 96), np.uint8)
    ids[10:30, 10:40] = 1
    image = Image.frombytes("P", (96, 64), ids.tobytes())  # the ids as palette indices
    return _png(image if mode == "P" else Image.fromarray(ids).convert(mode))


def _score_refusal(app, gt: Path, masks: str) -> str:
    with pytest.raises(gr.Error) as refused:
        app.views.score(str(gt), masks)
    return refused.value.message


def test_score_lists_the_uploaded_zip_once(finished, tmp_path, monkeypatch):
    """Score listed the ground-truth zip twice (``zipfile`` parses a zip's whole listing when it opens it: up to
    ``MAX_ZIP_ENTRIES`` entries): once to unpack its PNGs, once more to name their folder in its messages. The
    masks zip is listed to unpack its PNGs and to read its tracks.csv."""
    app, masks = finished
    gt = _annotations(tmp_path / "gt.zip", [_ids_png()] * 6)
    listed = []

    class Listing(zipfile.ZipFile):
        def __init__(self, file, *args, **kwargs):
            listed.append(Path(file).name)
            super().__init__(file, *args, **kwargs)

    monkeypatch.setattr(zipfile, "ZipFile", Listing)
    assert app.views.score(str(gt), masks).startswith("**J&F ")
    assert listed.count("gt.zip") == 1 and listed.count(Path(masks).name) == 2, listed


def test_score_refuses_a_ground_truth_zip_it_cannot_unpack(finished, tmp_path):
    app, masks = finished
    pngs = [_ids_png()] * 6
    locked = _patched(_annotations(tmp_path / "locked.zip", pngs), flags=0x1)
    message = _score_refusal(app, locked, masks)
    assert message.startswith(
        "locked.zip: annot/00000.png is password-protected (encrypted), which this app cannot open; save the zip "
        "without a password"
    ), message
    d64 = _patched(_annotations(tmp_path / "d64.zip", pngs), method=9)
    assert _score_refusal(app, d64, masks).startswith(
        "d64.zip: annot/00000.png is compressed with Deflate64, which this app cannot unpack; re-zip the files "
        "with standard Deflate compression"
    )


def test_score_refuses_a_masks_zip_whose_tracks_it_cannot_unpack(finished, tmp_path):
    """The masks zip is an upload too over the API (/score takes any file)."""
    app, masks = finished
    gt = _annotations(tmp_path / "gt.zip", [_ids_png()] * 6)
    locked = _patched(Path(shutil.copy(masks, tmp_path / "m.zip")), flags=0x1, only="tracks.csv")
    assert _score_refusal(app, gt, str(locked)).startswith(
        "m.zip: tracks.csv is password-protected (encrypted)"
    )


def test_score_names_an_rgb_ground_truth_png_as_it_is_in_the_zip(finished, tmp_path):
    """The most common mistake: the annotations saved as colour images. No server path, no Python to call."""
    app, masks = finished
    gt = _annotations(tmp_path / "gt.zip", [_ids_png("RGB")] * 6)
    message = _score_refusal(app, gt, masks)
    assert message == (
        "gt.zip: annot/00000.png is an RGB PNG; expected one object id per pixel (a colour rendering of the "
        "masks cannot be scored): save the annotations as 8-bit palette (indexed) or grayscale PNGs whose pixel "
        "values are the object ids (0 background, 1..K objects, 255 void), as DAVIS Annotations are"
    )
    grayscale = _annotations(tmp_path / "ok.zip", [_ids_png("L")] * 6)  # one id per pixel: scored
    assert app.views.score(str(grayscale), masks).startswith("**J&F ")


def test_score_names_a_huge_ground_truth_png_as_it_is_in_the_zip(finished, tmp_path, huge_frame):
    app, masks = finished
    gt = _annotations(tmp_path / "gt.zip", [huge_frame] * 6)
    assert _score_refusal(app, gt, masks) == (
        "gt.zip: annot/00000.png has too many pixels to open, but the masks are 96x64 (the video's size): give "
        "the ground truth at that size (resized with nearest-neighbour sampling, so that ids stay ids)"
    )


def test_score_names_a_damaged_ground_truth_png_as_it_is_in_the_zip(finished, tmp_path):
    """Its header reads, its pixels do not: the library's refusal, with the file named as in the zip and no
    Python function to call."""
    app, masks = finished
    good = _ids_png()
    cut = good[: good.index(b"IDAT") + 12]  # the pixel data cut short
    gt = _annotations(tmp_path / "gt.zip", [good, cut, *[good] * 4])
    message = _score_refusal(app, gt, masks)
    assert message.startswith("gt.zip/annot/00001.png: not a readable PNG image"), message
    assert message.endswith(
        "save it as an 8-bit palette (indexed) or grayscale PNG of object ids"
    ), message
    assert str(app.work.root) not in message and "write_index_png" not in message


def test_a_zipped_frame_that_is_no_image_is_named_without_the_servers_file_object(tmp_path):
    """PIL's "cannot identify image file <zipfile.ZipExtFile name='seq/00000.jpg' mode='r'>" told the user nothing,
    and in the error toast (which renders HTML) its "<...>" swallowed the rest of the message."""
    frames = _zip_of(tmp_path / "bad.zip", {"seq/00000.jpg": b"not a jpeg", "seq/00001.jpg": b"no"})
    app = app_handlers.App(lambda preset, sam: None, AppSettings(work_root=tmp_path))
    text = app.describe(None, *ARGS, 1, 900, str(frames))
    assert text == (
        "**Run would refuse this input:** bad.zip: seq/00000.jpg is not a readable image (not a JPEG or PNG "
        "inside); replace or remove it"
    )


def test_score_names_a_ground_truth_file_that_is_no_png_without_the_servers_path(
    finished, tmp_path
):
    """PIL's "cannot identify image file '/tmp/.../score-x/gt/annot/00000.png'" showed the user the server's folder;
    so did a masks zip whose PNGs are not images (over the API, /score takes any file)."""
    app, masks = finished
    gt = _annotations(tmp_path / "gt.zip", [b"not a png"] * 6)
    message = _score_refusal(app, gt, masks)
    assert message.startswith(
        "gt.zip: annot/00000.png is not a readable PNG image (no image inside); save the "
    )
    broken = tmp_path / "m.zip"
    with zipfile.ZipFile(masks) as source, zipfile.ZipFile(broken, "w") as target:
        for item in source.infolist():
            is_mask = item.filename.startswith("davis/") and item.filename.endswith(".png")
            target.writestr(item, b"not a png" if is_mask else source.read(item))
    good = _annotations(tmp_path / "ok.zip", [_ids_png()] * 6)
    message = _score_refusal(app, good, str(broken))
    assert message.startswith(
        "m.zip: davis/clip/00000.png is not a readable mask PNG (no image inside); "
    ), message
    assert str(app.work.root) not in message


def test_score_notes_ground_truth_ids_that_are_not_1_to_k(finished, tmp_path):
    """An object with id 3 alone: the protocol scores objects 1..3, two of them empty everywhere (official, and
    so scored); the note under the table names the file as it is in the zip and says what to do."""
    app, masks = finished
    ids = np.zeros((64, 96), np.uint8)
    ids[10:30, 10:40] = 3
    # grayscale: ids as written
    gt = _annotations(tmp_path / "gt.zip", [_png(Image.fromarray(ids))] * 6)
    text = app.views.score(str(gt), masks)
    assert "over 3 objects" in text
    assert text.endswith(
        "**Note:** the first ground-truth frame (00000.png) has the ids 3, not 1..3: the DAVIS protocol scores "
        "the 3 objects 1..3, and any of 1, 2 counts as perfect (J = F = 1) on every frame where neither the ground "
        "truth nor the masks have it. If those ids are in no ground-truth frame, give the object the id 1 for a "
        "mean over the real ones. (files in gt.zip: annot/)"
    ), text
    plain = _annotations(tmp_path / "plain.zip", [_ids_png()] * 6)
    assert "Note" not in app.views.score(str(plain), masks)


def test_scores_refusals_say_what_a_ground_truth_holds_as_its_help_does(finished, tmp_path):
    """No ground truth, or a zip without PNGs, was told "one per frame of the video": a ground truth of key frames
    only, named as those frames, is scored too (the help, ``GROUND_TRUTH_HELP``, says so)."""
    app, masks = finished
    with pytest.raises(gr.Error) as refused:
        app.views.score(None, masks)
    assert refused.value.message == f"Upload the ground truth first: {GROUND_TRUTH_ZIP}."
    assert GROUND_TRUTH_HELP == f"The ground truth: {GROUND_TRUTH_ZIP}."
    no_pngs = _zip_of(tmp_path / "notes.zip", {"notes.txt": b"no annotations here\n"})
    message = _score_refusal(app, no_pngs, masks)
    assert f"in a .zip: {GROUND_TRUTH_FRAMES}." in message and "key frames" in message, message


def test_score_pairs_a_masks_zip_by_its_own_runs_stride(tmp_path, tiny_sam_model):
    """Over the API, /score takes any masks zip the client has, yet the video frames its masks are came from the
    session's last run: a stride-2 run's zip scored in a session whose last run had stride 1 was paired with
    ground-truth frames 0, 1, 2 instead of 0, 2, 4. The zip's run.json says its stride; Score needs no session."""
    pipe = UVOSAM(MovingBoxTracker(num_objects=2), BoxPromptSegmenter(tiny_sam_model))
    work = tmp_path / "work"
    app = app_handlers.App(lambda preset, sam: pipe, AppSettings(work_root=work))
    frames = _zip_of(
        tmp_path / "clip.zip",
        {f"clip/{i:05d}.png": _png(Image.new("RGB", (96, 64), (40 * i, 0, 0))) for i in range(6)},
    )
    last = list(stepped(app.segment(None, *ARGS, 0.0, 10, 2, 900, 0, True, True, "overlay", str(frames), False,
                                    types.SimpleNamespace(session_hash="t"))))[-1]  # fmt: skip
    masks = shutil.copy(last[4], tmp_path / "stride2.zip")
    with zipfile.ZipFile(masks) as zf:
        shown = {n[-9:-4]: zf.read(n) for n in zf.namelist() if n.startswith("davis/")}
    assert sorted(shown) == ["00000", "00002", "00004"]
    # one PNG per source frame, not named as the frames: the stride picks g0, g2, g4 (the masks themselves)
    empty = _png(Image.frombytes("P", (96, 64), bytes(96 * 64)))
    gt = _zip_of(
        tmp_path / "gt.zip", {f"gt/g{i}.png": shown.get(f"{i:05d}", empty) for i in range(6)}
    )
    assert app.views.score(str(gt), masks).startswith("**J&F 1.000** (J 1.000, F 1.000)")


def test_score_takes_a_masks_zip_whose_run_json_was_edited_by_hand(finished, tmp_path):
    """A run.json that is no JSON was reported as "its tracks.csv has no readable davis_label ..."; one whose
    "settings" is no object raised an AttributeError (an internal-error id). The masks are then taken as one per
    frame of the video, their names matched to the ground truth's."""
    app, masks = finished
    gt = _annotations(tmp_path / "gt.zip", [_ids_png()] * 6)
    for text in (
        b"{not json",
        b'{"settings": "x", "video": [1]}',
        b'{"settings": {"stride": true}}',
    ):
        edited = tmp_path / "edited.zip"
        with zipfile.ZipFile(masks) as src, zipfile.ZipFile(edited, "w") as dst:
            for item in src.infolist():
                dst.writestr(item, text if item.filename == "run.json" else src.read(item))
        assert app.views.score(str(gt), str(edited)).startswith("**J&F "), text
