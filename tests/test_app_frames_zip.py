"""A zip of frames as Run's input: run like a video, described before Run as Run sees it, unpacked and deleted
by the run, and refused with the frame's name in the zip. Tiny models on CPU."""

from __future__ import annotations

import io
import re
import threading
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("gradio")
from app_helpers import client, run_json, stepped, wait_for, zip_names, zip_of, zip_of_frames
from gradio_client import handle_file

from uvosam.video import probe
from uvosam_app.settings import AppSettings


def _jpeg(size=(96, 64), orientation: int | None = None, seed: int = 0) -> bytes:
    """A noise JPEG of ``size`` (w, h) as stored; ``orientation`` sets its EXIF Orientation tag."""
    pixels = np.random.default_rng(seed).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    buffer, exif = io.BytesIO(), Image.Exif()
    if orientation is not None:
        exif[0x0112] = orientation
    Image.fromarray(pixels).save(buffer, format="JPEG", exif=exif)
    return buffer.getvalue()


def test_a_zip_of_frames_runs_like_a_video_and_keeps_their_names(server, clips, tmp_path):
    c = client(server)
    frames = zip_of_frames(tmp_path / "upload.zip", "bmx-trees", 12)
    status, _, _, mp4, masks_zip, _, _ = c.predict(
        None, frames_zip=handle_file(str(frames)), api_name="/segment")  # fmt: skip
    assert status.startswith("done: 12 frames, 2 tracks")
    assert Path(mp4).name == "bmx-trees_overlay.mp4" and probe(mp4).num_frames == 12
    pngs = sorted(n for n in zip_names(masks_zip) if n.startswith("davis/bmx-trees/"))
    assert pngs == sorted(f"davis/bmx-trees/{i}.png" for i in range(12))  # named as the frames
    with pytest.raises(Exception, match="Both a video and a zip of frames are loaded"):
        c.predict(
            handle_file(str(clips["a"])), frames_zip=handle_file(str(frames)), api_name="/segment"
        )
    # over max_side=150: its frames are processed scaled down to 150 px, even sides
    wide = zip_of_frames(tmp_path / "wide.zip", "w", 3, size=(161, 49))
    status, *_, wide_zip, _, _ = c.predict(
        None, frames_zip=handle_file(str(wide)), api_name="/segment"
    )
    assert status.startswith("done: 3 frames") and run_json(wide_zip)["video"]["width"] == 150
    with zipfile.ZipFile(wide_zip) as zf, zf.open("davis/w/0.png") as png:
        assert Image.open(png).size == (150, 46)
    huge = zip_of_frames(
        tmp_path / "huge.zip", "h", 1, size=(4112, 16)
    )  # over the sanity limit, 4096 px
    with pytest.raises(Exception, match=r"longest side 4112 px, over this app's limit of 4096 px"):
        c.predict(None, frames_zip=handle_file(str(huge)), api_name="/segment")
    empty = zip_of(tmp_path / "empty.zip", {"notes.txt": b"hi"})
    with pytest.raises(Exception, match=r"empty\.zip holds no \.jpg/\.jpeg/\.png file"):
        c.predict(None, frames_zip=handle_file(str(empty)), api_name="/segment")
    session = server[1] / c.session_hash
    assert wait_for(lambda: not any(session.glob("run-*")))  # the failed runs left no folder


def test_a_zip_of_frames_is_described_before_run(tmp_path):
    from uvosam_app import handlers as app_handlers

    app = app_handlers.App(lambda preset, sam: None, AppSettings(work_root=tmp_path, max_side=150))
    frames = zip_of_frames(tmp_path / "upload.zip", "bmx-trees", 30)
    text = app.describe(None, "idol-ytvis19-r50", "vit_b", 2, 10, str(frames))
    assert text.startswith("**upload.zip**: 96x64, 30 frames. Run covers 10 frames, every 2nd of the first 19 "
                           "(Max frames is 10).")  # fmt: skip
    wide = zip_of_frames(tmp_path / "wide.zip", "w", 2, size=(160, 48))
    assert app.describe(None, "idol-ytvis19-r50", "vit_b", 1, 900, str(wide)).startswith(
        "**wide.zip**: 160x48, will be processed at 150x44 (scaled down to this app's largest size"
    )
    huge = zip_of_frames(tmp_path / "huge.zip", "h", 1, size=(4112, 16))
    assert "over this app's limit of 4096 px" in app.describe(
        None, "idol-ytvis19-r50", "vit_b", 1, 900, str(huge)
    )
    both = app.describe(str(frames), "idol-ytvis19-r50", "vit_b", 1, 900, str(frames))
    assert both.startswith("**Both a video and a zip of frames are loaded:**")


def test_a_zip_of_frames_is_described_as_run_sees_it(tmp_path):
    """Describe says what Run would do with the zip: EXIF-rotated size, and the refusals Run makes
    (frames of mixed sizes, two files for one frame, more files than Run unpacks)."""
    from uvosam_app import handlers as app_handlers

    app = app_handlers.App(lambda preset, sam: None, AppSettings(work_root=tmp_path, max_frames=3))
    args = ("idol-ytvis19-r50", "vit_b", 1, 3)
    rotated = zip_of(
        tmp_path / "rot.zip", {f"s/{i:05d}.jpg": _jpeg(orientation=6) for i in range(2)}
    )
    # as decoded
    assert app.describe(None, *args, str(rotated)).startswith("**rot.zip**: 64x96, 2 frames.")
    from test_video import _png_with_exif_after_pixels

    image = Image.new("RGB", (96, 64))
    exif = image.getexif()
    exif[0x0112] = 6
    png = _png_with_exif_after_pixels(tmp_path / "late.png", image, exif).read_bytes()
    late = zip_of(tmp_path / "late.zip", {f"s/{i:05d}.png": png for i in range(2)})
    # EXIF after pixels
    assert app.describe(None, *args, str(late)).startswith("**late.zip**: 64x96, 2 frames.")
    mixed = zip_of(tmp_path / "mixed.zip", {"s/00000.jpg": _jpeg(), "s/00001.jpg": _jpeg((64, 96))})
    text = app.describe(None, *args, str(mixed))
    assert text.startswith("**Run would refuse this input:** mixed.zip: frames differ in size: "
                           "s/00000.jpg is 96x64 but s/00001.jpg is 64x96")  # fmt: skip
    dup = zip_of(
        tmp_path / "dup.zip", {"s/00000.jpg": _jpeg(), "s/00000.png": _jpeg(), "s/1.jpg": _jpeg()}
    )
    assert "dup.zip has 2 files for frame '00000': 00000.jpg, 00000.png; keep one" in app.describe(
        None, *args, str(dup)
    )
    # named as written too (the frame is a_b)
    dup = zip_of(tmp_path / "dup2.zip", {"s/a:b.jpg": _jpeg(), "s/a_b.png": _jpeg()})
    assert (
        "dup2.zip has 2 files for frame 'a_b': a:b.jpg (written a_b.jpg), a_b.png; keep one"
        in app.describe(None, *args, str(dup))
    )
    # Run unpacks <= 30
    many = zip_of(tmp_path / "many.zip", {f"s/{i:05d}.jpg": _jpeg() for i in range(31)})
    assert "many.zip holds 31 .jpg/.jpeg/.png files" in app.describe(None, *args, str(many))


def test_a_zip_of_frames_keeps_a_non_ascii_folder_name(tmp_path):
    from uvosam_app import uploads

    files = {"велосипед/00000.jpg": _jpeg()}
    out = uploads.FramesZip(str(zip_of(tmp_path / "u.zip", files))).extract(
        tmp_path / "f", AppSettings()
    )
    assert out.name == "велосипед"
    root = uploads.FramesZip(str(zip_of(tmp_path / "мой клип.zip", {"00000.jpg": _jpeg()})))
    assert root.extract(tmp_path / "g", AppSettings()).name == "мой_клип"


def test_zipped_frames_are_unpacked_under_names_windows_can_write(tmp_path):
    """``12:00:01.jpg`` was written as it was (on NTFS: a stream of a file ``12``), a folder ``CON`` too: the
    characters Windows refuses become ``_``, a device name gets one, and the description names the frames so."""
    from uvosam_app import uploads

    files = {"CON/12:00:01.jpg": _jpeg(), "CON/12:00:02.jpg": _jpeg(), "CON/aux.jpg": _jpeg()}
    frames = uploads.FramesZip(str(zip_of(tmp_path / "u.zip", files)))
    out = frames.extract(tmp_path / "f", AppSettings())
    assert out.name == "CON_"
    assert sorted(p.name for p in out.iterdir()) == ["12_00_01.jpg", "12_00_02.jpg", "aux_.jpg"]
    info = frames.info(AppSettings(), stride=1, max_frames=10)
    assert info.frame_names == ("12_00_01", "12_00_02", "aux_") and info.num_frames == 3


_CASE = "would be one file on Windows and macOS, whose file names ignore case"
_NORMALISATION = (
    "Unicode normalisation (an accented letter as one character or as a letter and an accent)"
)
_RENAMED = '(the app writes each character Windows refuses in file names, <>:"|?* or a non-printing character, as _)'
_DEVICE = "(the app adds _ to a name Windows keeps for a device, such as CON, NUL or COM1)"


@pytest.mark.parametrize(
    ("first", "second", "said"),
    [
        ("A.jpg", "a.jpg", f"A.jpg and a.jpg {_CASE}"),
        # one file once made portable: the app's renaming
        ("a:b.jpg", "a_b.jpg", f"a:b.jpg (written a_b.jpg) and a_b.jpg would be written as one file {_RENAMED}"),
        # one on macOS only, which decomposes names (NFD); NTFS keeps the two
        ("\u00e9.jpg", "e\u0301.jpg",
         f"\u00e9.jpg and e\u0301.jpg would be one file on macOS, whose file names ignore {_NORMALISATION}"),
        ("\u00c9.jpg", "e\u0301.jpg",
         f"\u00c9.jpg and e\u0301.jpg would be one file on macOS, whose file names ignore case and {_NORMALISATION}"),
        # NUL is written NUL_: one name but for case then
        ("NUL.jpg", "nul_.jpg", f"NUL.jpg (written NUL_.jpg) and nul_.jpg {_CASE} {_DEVICE}"),
    ],
)  # fmt: skip
def test_zipped_frames_that_would_be_one_file_on_windows_or_macos_are_refused(
    tmp_path, first, second, said
):
    """``A.jpg`` and ``a.jpg`` were both counted as frames, and on Windows or macOS the second overwrote the
    first: refused, naming both as written, where and why they would be one file (every pair was "one file on
    Windows and macOS, whose file names ignore case": also ``é`` and ``e`` + accent, one on macOS only, and
    ``NUL.jpg`` and ``nul_.jpg``, one as the app writes NUL as NUL_), before anything is written, in the
    description as at Run."""
    from uvosam_app import uploads

    frames = uploads.FramesZip(
        str(zip_of(tmp_path / "twins.zip", {f"s/{first}": _jpeg(), f"s/{second}": _jpeg(seed=1)}))
    )
    said = f"twins.zip: {said}; rename one"
    with pytest.raises(ValueError, match="^" + re.escape(said) + r".* zip the files again\.$"):
        frames.extract(tmp_path / "f", AppSettings())
    assert not (tmp_path / "f").exists()
    with pytest.raises(ValueError, match=re.escape(said)):
        frames.info(AppSettings(), stride=1, max_frames=10)


def test_zipped_frames_whose_names_differ_in_a_letter_whose_upper_case_is_two_are_two_files(
    tmp_path,
):
    """``straße.jpg`` and ``strasse.jpg`` were refused as one file where names ignore case (``casefold`` makes ß
    ss); NTFS upper-cases a character at a time, and ß has no one-character upper case: they are two files."""
    from uvosam_app import uploads

    files = {"s/stra\u00dfe.jpg": _jpeg(), "s/strasse.jpg": _jpeg(seed=1)}
    frames = uploads.FramesZip(str(zip_of(tmp_path / "sz.zip", files)))
    assert sorted(frames.info(AppSettings(), stride=1, max_frames=10).frame_names) == [
        "strasse",
        "stra\u00dfe",
    ]
    # upper case: still one file
    files = {"s/STRA\u00dfE.jpg": _jpeg(), "s/stra\u00dfe.jpg": _jpeg(seed=1)}
    with pytest.raises(ValueError, match="whose file names ignore case"):
        uploads.FramesZip(str(zip_of(tmp_path / "up.zip", files))).info(
            AppSettings(), stride=1, max_frames=10
        )


def test_stop_while_a_zip_of_frames_unpacks_starts_no_model(tmp_path, monkeypatch):
    """Stop pressed while the run unpacks its zip: no model is loaded or run afterwards."""
    from uvosam_app import handlers as app_handlers
    from uvosam_app import uploads

    unpacking, go_on, loaded = threading.Event(), threading.Event(), []
    real_extract = uploads.FramesZip.extract

    def slow_extract(self, parent, settings):
        unpacking.set()
        go_on.wait(10)
        return real_extract(self, parent, settings)

    monkeypatch.setattr(uploads.FramesZip, "extract", slow_extract)
    app = app_handlers.App(
        lambda preset, sam: loaded.append(preset), AppSettings(work_root=tmp_path)
    )
    frames = zip_of_frames(tmp_path / "upload.zip", "seq", 4)
    steps = stepped(app.segment(None, "idol-ytvis19-r50", "vit_b", 0.0, 10, 1, 900, 0, True, True, "overlay",
                                str(frames), False, None))  # fmt: skip
    next(steps)
    assert unpacking.wait(10)
    steps.close()  # Stop
    go_on.set()
    assert wait_for(lambda: not any(tmp_path.glob("*/run-*")))  # the run's folder went
    time.sleep(0.3)
    assert loaded == []  # the models were not asked for


def test_the_unpacked_frames_are_gone_before_the_run_says_done(tmp_path, monkeypatch):
    """Not after: a client that looks as soon as it hears "done" finds no frames left (seen once in CI)."""
    from uvosam.job_types import JobOptions, JobProgress
    from uvosam_app import handlers as app_handlers
    from uvosam_app import uploads

    app = app_handlers.App(lambda preset, sam: None, AppSettings(work_root=tmp_path))
    unpacked = []

    def models(tracker, sam, changes, source, run_dir, options):
        unpacked.append(Path(source))
        yield JobProgress(frames_done=1, frames_total=2, elapsed_s=0.1)
        yield JobProgress(frames_done=2, frames_total=2, elapsed_s=0.2, result="the result")

    monkeypatch.setattr(app, "_run_models", models)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    source = uploads.FramesZip(str(zip_of_frames(tmp_path / "seq.zip", "seq", 2)))
    results = []
    for step in app._job("idol-ytvis19-r50", "vit_b", {}, source, run_dir, JobOptions()):
        results.append(step.result)
        # the models run on the unpacked frames; they are deleted once the models are done
        if unpacked:
            assert unpacked[0].is_dir() == (step.result is None), step
    assert results == [None, None, "the result"] and unpacked == [run_dir / "frames" / "seq"]


def test_a_run_of_frames_names_no_server_path_and_keeps_no_frames(server, tmp_path):
    """A damaged frame is named by its place in the zip, not by the server's run folder; after a
    run the unpacked frames are gone (the mask cache feeds Re-render) and Re-render works."""
    c = client(server)
    files = {f"seq/{i:05d}.jpg": _jpeg(seed=i) for i in range(4)}
    # cut: its header reads, its pixels do not
    files["seq/00002.jpg"] = files["seq/00002.jpg"][:-600]
    cut = zip_of(tmp_path / "cut.zip", files)
    with pytest.raises(Exception) as refused:
        c.predict(None, frames_zip=handle_file(str(cut)), api_name="/segment")
    message = str(refused.value)
    assert "cut.zip/seq/00002.jpg" in message and str(server[1]) not in message, message
    ok = zip_of_frames(tmp_path / "ok.zip", "seq", 6)
    assert c.predict(None, frames_zip=handle_file(str(ok)), api_name="/segment")[0].startswith(
        "done: 6 frames"
    )
    runs = list((server[1] / c.session_hash).glob("run-*"))
    assert len(runs) == 1 and not (runs[0] / "frames").exists(), sorted(
        p.name for p in runs[0].iterdir()
    )
    status = c.predict([1], api_name="/rerender")[0]
    assert status.startswith("done: 6 frames, 1 track "), status


def test_a_zipped_frame_with_a_broken_exif_is_refused_clearly(tmp_path):
    from test_video import _before_iend, _png_chunk

    from uvosam_app import handlers as app_handlers

    buffer = io.BytesIO()
    Image.new("RGB", (32, 24)).save(buffer, format="PNG")
    broken = _before_iend(buffer.getvalue(), _png_chunk(b"eXIf", b"garbage!!"))
    frames = zip_of(tmp_path / "bad.zip", {"s/00000.png": broken, "s/00001.png": broken})
    app = app_handlers.App(lambda preset, sam: None, AppSettings(work_root=tmp_path))
    text = app.describe(None, "idol-ytvis19-r50", "vit_b", 1, 900, str(frames))
    assert text.startswith(
        "**Run would refuse this input:** bad.zip: s/00000.png is not a readable image"
    )
