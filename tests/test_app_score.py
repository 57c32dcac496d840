"""Score: J&F of a run's masks against a zip of ground-truth PNGs (over the API), and what clears the scores
shown. Tiny models on CPU."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("gradio")
from app_helpers import client, zip_of
from gradio_client import handle_file

from uvosam_app.settings import AppSettings


def test_score_against_uploaded_ground_truth(server, clips, tmp_path):
    """The run's own DAVIS PNGs as ground truth (labels swapped, one PNG per SOURCE frame while the run
    took every 2nd): J&F 1 for both objects, each matched to its track."""
    c = client(server)
    fake = tmp_path / "fake.zip"
    fake.write_bytes(b"not a zip at all")
    with pytest.raises(Exception, match="Run a video first"):
        c.predict(handle_file(str(fake)), None, api_name="/score")
    masks_zip = c.predict(handle_file(str(clips["a"])), stride=2, api_name="/segment")[4]
    with zipfile.ZipFile(masks_zip) as zf:
        ours = {n.rsplit("/", 1)[1]: zf.read(n) for n in zf.namelist()
                if n.startswith("davis/clip_a/")}  # fmt: skip
    assert sorted(ours) == [f"{i:05d}.png" for i in range(0, 16, 2)]
    swap = np.array([0, 2, 1] + list(range(3, 256)), np.uint8)
    files = {}
    for i in range(16):  # odd source frames are not processed: any content
        ids = np.asarray(Image.open(io.BytesIO(ours[f"{i - i % 2:05d}.png"])))
        buffer = io.BytesIO()
        Image.fromarray(swap[ids]).save(buffer, format="PNG")
        files[f"gt/frame_{i}.png"] = buffer.getvalue()  # natural order: frame_2 before frame_10
    gt = zip_of(
        tmp_path / "gt.zip", {**files, "__MACOSX/gt/._frame_0.png": b"junk", "gt/notes.txt": b"hi"}
    )
    text = c.predict(handle_file(str(gt)), handle_file(masks_zip), api_name="/score")
    assert text.startswith("**J&F 1.000** (J 1.000, F 1.000) over 2 objects and 8 frames")
    assert (
        "| 1 | 2 | 1.000 | 1.000 | 1.000 |" in text and "| 2 | 1 | 1.000 | 1.000 | 1.000 |" in text
    )
    # key frames only, named as the frames: those frames are scored
    keys = {f"k/{i:05d}.png": files[f"gt/frame_{i}.png"] for i in (0, 4, 8)}
    text = c.predict(handle_file(str(zip_of(tmp_path / "keys.zip", keys))), handle_file(masks_zip),
                     api_name="/score")  # fmt: skip
    assert text.startswith(
        "**J&F 1.000** (J 1.000, F 1.000) over 2 objects and 3 of the 8 frames (those the ground truth annotates)"
    )
    short = zip_of(tmp_path / "short.zip", dict(list(files.items())[:5]))
    with pytest.raises(
        Exception, match=r"5 PNGs, but the run processed 8 of the video's 16 frames"
    ):
        c.predict(handle_file(str(short)), handle_file(masks_zip), api_name="/score")
    two = zip_of(tmp_path / "two.zip", {"a/0.png": files["gt/frame_0.png"], "b/0.png": b""})
    with pytest.raises(
        Exception, match=r"\.png files in 2 folders \(a, b\); zip the one folder"
    ) as err:
        c.predict(handle_file(str(two)), handle_file(masks_zip), api_name="/score")
    assert "..." not in str(err.value)  # every folder is listed
    with pytest.raises(Exception, match="fake.zip is not a readable zip file"):
        c.predict(handle_file(str(fake)), handle_file(masks_zip), api_name="/score")
    bare = zip_of(tmp_path / "bare.zip", {f"davis/clip_a/{n}": data for n, data in ours.items()})
    with pytest.raises(
        Exception, match="bare.zip has no tracks.csv: score the zip that Run or Re-render made"
    ):
        c.predict(handle_file(str(gt)), handle_file(str(bare)), api_name="/score")


def test_a_davis_sequence_zip_is_scored_by_name_with_its_annotations(server, tmp_path):
    """The researcher's story: JPEGImages/480p/bmx-trees zipped, run (every frame, Frame stride 2,
    stride 2 with Max frames), each scored against a zip like Annotations_unsupervised/480p/bmx-trees
    (one PNG per SOURCE frame, 00000.png ...): the run's own masks with labels swapped at the frames
    it processed, empty masks at the others. Only a match by name gives J&F 1."""
    from uvosam.testing import moving_shapes

    c = client(server)
    files = {}
    for i, frame in enumerate(moving_shapes(12, height=64, width=96, seed=4).frames):
        buffer = io.BytesIO()
        Image.fromarray(frame).save(buffer, format="JPEG", quality=95)
        files[f"bmx-trees/{i:05d}.jpg"] = buffer.getvalue()
    frames = zip_of(tmp_path / "bmx-trees.zip", files)
    swap = np.array([0, 2, 1] + list(range(3, 256)), np.uint8)
    for settings, covered in (({}, range(12)), ({"stride": 2}, range(0, 12, 2)),
                              ({"stride": 2, "max_frames": 4}, range(0, 8, 2))):  # fmt: skip
        run = c.predict(None, frames_zip=handle_file(str(frames)), api_name="/segment", **settings)
        assert run[0].startswith(f"done: {len(covered)} frames"), (settings, run[0])
        with zipfile.ZipFile(run[4]) as zf:
            ours = {
                n.rsplit("/", 1)[1]: zf.read(n)
                for n in zf.namelist()
                if n.startswith("davis/bmx-trees/")
            }
        assert sorted(ours) == [f"{i:05d}.png" for i in covered], settings
        annotations = {}
        for i in range(12):
            ids = (
                np.asarray(Image.open(io.BytesIO(ours[f"{i:05d}.png"])))
                if i in covered
                else np.zeros((64, 96))
            )
            buffer = io.BytesIO()
            Image.fromarray(swap[ids.astype(np.uint8)]).save(buffer, format="PNG")
            annotations[f"bmx-trees/{i:05d}.png"] = buffer.getvalue()
        gt = zip_of(tmp_path / "bmx-trees-gt.zip", annotations)
        text = c.predict(handle_file(str(gt)), handle_file(run[4]), api_name="/score")
        head = f"**J&F 1.000** (J 1.000, F 1.000) over 2 objects and {len(covered)} frames"
        assert text.startswith(head), (settings, text)


def test_score_after_gradio_dropped_the_masks_zip_says_to_run_again(tmp_path):
    import gradio as gr

    from uvosam_app import handlers as app_handlers

    app = app_handlers.App(lambda preset, sam: None, AppSettings(work_root=tmp_path))
    gt = zip_of(tmp_path / "gt.zip", {"gt/0.png": b""})
    with pytest.raises(gr.Error, match="no longer kept on the server .*run the video again"):
        app.views.score(str(gt), str(tmp_path / "gone" / "masks.zip"))


def test_the_zip_shown_has_one_listener_which_also_clears_the_scores(tmp_path):
    """Gradio 6.31's page fires the change of a File that a generator sets again and again while two or more
    listeners watch it: the timeline and the merge hints, two listeners, were read from each run's zip dozens of
    times (the same cached image rewritten while the browser read it), and a third never let it stop. One listener
    shows both, and clears the scores shown (of other masks; they went under a failed Score too, "Error" over
    "J&F 1.000"), as a new ground truth does."""
    import app as app_module

    demo = app_module.build_demo(lambda preset, sam: None, settings=AppSettings(work_root=tmp_path))
    config = demo.get_config_file()
    ids = {c["props"].get("elem_id"): c["id"] for c in config["components"]}
    deps = config["dependencies"]
    on_zip = [d for d in deps if [ids["zip"], "change"] in [list(t) for t in d["targets"]]]
    assert len(on_zip) == 1 and on_zip[0]["queue"] is False
    assert on_zip[0]["outputs"] == [
        ids["timeline"],
        ids["timeline-narrow"],
        ids["hints"],
        ids["scores"],
    ]
    on_gt = [d for d in deps if [ids["gt"], "change"] in [list(t) for t in d["targets"]]]
    assert [d["outputs"] for d in on_gt] == [[ids["scores"]]]
    # a run starts: all cleared
    assert demo.fns[on_zip[0]["id"]].fn(None, "") == (None, None, "", "")
    assert demo.fns[on_gt[0]["id"]].fn() == ""


def test_a_masks_zips_records_are_read_only_within_their_bound(tmp_path):
    """/score takes any masks zip, whose tracks.csv and run.json it reads whole: one declaring 64 MiB of spaces
    in either (64 KiB zipped) is refused, without reading it into memory (a run.json skipped instead would have
    scored a stride's masks as one per frame)."""
    import tracemalloc

    from uvosam_app.results import MAX_RECORD_BYTES
    from uvosam_app.scoring import score_masks_zip

    ids = np.zeros((8, 8), np.uint8)
    ids[2:6, 2:6] = 1
    buffer = io.BytesIO()
    Image.fromarray(ids).save(buffer, format="PNG")
    gt = zip_of(tmp_path / "gt.zip", {"gt/00000.png": buffer.getvalue()})
    tracks, spaces = b"track_id,class_name,davis_label\n1,o,1\n", b" " * (64 << 20)

    def masks_zip(name: str, records: dict[str, bytes]) -> str:
        with zipfile.ZipFile(tmp_path / name, "w", zipfile.ZIP_DEFLATED) as zf:
            zf.writestr("davis/v/00000.png", buffer.getvalue())
            for member, data in records.items():
                zf.writestr(member, data)
        return str(tmp_path / name)

    with pytest.raises(
        ValueError,
        match=rf"csv.zip: its tracks.csv is {len(tracks) + len(spaces)} bytes, over the {MAX_RECORD_BYTES} an "
        "export's can be; score the zip that Run or Re-render made",
    ):
        score_masks_zip(
            gt,
            masks_zip("csv.zip", {"tracks.csv": tracks + spaces}),
            max_files=9,
            work_dir=tmp_path,
        )
    big_json = masks_zip("json.zip", {"tracks.csv": tracks, "run.json": b"{" + spaces + b"}"})
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match=r"json.zip: its run.json is \d+ bytes, over the"):
            score_masks_zip(gt, big_json, max_files=9, work_dir=tmp_path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 << 20, peak


def _ids_png(*objects: int) -> bytes:
    """An 8x8 PNG of object ids: each of ``objects`` (1..2) a 2x4 block of its own rows."""
    ids = np.zeros((8, 8), np.uint8)
    for k in objects:
        ids[1 + 3 * (k - 1) : 3 + 3 * (k - 1), 2:6] = k
    buffer = io.BytesIO()
    Image.fromarray(ids).save(buffer, format="PNG")
    return buffer.getvalue()


def _masks_zip(path, frames: list[tuple[int, ...]], tracks: bytes) -> str:
    files = {f"davis/v/{i:05d}.png": _ids_png(*objects) for i, objects in enumerate(frames)}
    return zip_of(path, {**files, "tracks.csv": tracks})


def test_score_notes_the_ground_truth_objects_it_left_out_naming_their_files_once(tmp_path):
    """Object 2 enters the ground truth at its second frame, object 3 at its third: Score scores object 1 (the DAVIS
    protocol's objects are the first frame's) and a note under the table names objects 2 and 3 and where they
    entered. Each object's file was named with its zip and folder ("2 (from gt.zip: gt/00001.png), 3 (from gt.zip:
    gt/00002.png)"): the zip and folder are named once."""
    from uvosam_app.scoring import score_masks_zip

    def png3(*objects):
        ids = np.asarray(Image.open(io.BytesIO(_ids_png(*[k for k in objects if k < 3])))).copy()
        if 3 in objects:
            ids[7, 0] = 3
        buffer = io.BytesIO()
        Image.fromarray(ids).save(buffer, format="PNG")
        return buffer.getvalue()

    gt = zip_of(
        tmp_path / "gt.zip",
        {"gt/00000.png": png3(1), "gt/00001.png": png3(1, 2), "gt/00002.png": png3(1, 2, 3)},
    )
    masks = _masks_zip(
        tmp_path / "masks.zip",
        [(1,), (1, 2), (1, 2)],
        b"track_id,class_name,davis_label\n1,o,1\n4,o,2\n",
    )
    text = score_masks_zip(gt, masks, max_files=9, work_dir=tmp_path)
    assert text.startswith("**J&F 1.000** (J 1.000, F 1.000) over 1 object and 3 frames")
    assert text.endswith(
        "**Note:** not scored: ground-truth objects 2 (from 00001.png), 3 (from 00002.png), not in the first "
        "ground-truth frame (00000.png): the DAVIS protocol scores that frame's objects, 1..1, as the official "
        "scorer does. (files in gt.zip: gt/)"
    )
    assert text.count("gt.zip") == 1 and "Missed" not in text
    root = zip_of(
        tmp_path / "root.zip", {"00000.png": png3(1), "00001.png": png3(1, 2), "00002.png": png3(1)}
    )
    text = score_masks_zip(root, masks, max_files=9, work_dir=tmp_path)
    assert text.endswith("as the official scorer does. (files in root.zip)")


def test_an_object_the_run_missed_is_told_why_it_scores_over_zero(tmp_path):
    """An object no mask has scored 0.500 with no word why (DAVIS counts a frame where the object is in neither the
    ground truth nor the masks as perfect): a line under the table says so, with the frames that count, and only
    then (not for an object the run found, nor for a missed one in every frame); the scores are DAVIS's."""
    from uvosam_app.scoring import score_masks_zip

    gt = zip_of(
        tmp_path / "gt.zip",
        {f"gt/{i:05d}.png": _ids_png(1, 2) if i < 2 else _ids_png(1) for i in range(4)},
    )
    tracks = b"track_id,class_name,davis_label\n1,o,1\n"
    missed = _masks_zip(tmp_path / "m.zip", [(1,)] * 4, tracks)
    text = score_masks_zip(gt, missed, max_files=9, work_dir=tmp_path)
    assert (
        "| 2 | none | 0.500 | 0.500 | 0.500 |" in text
    )  # as DAVIS scores it: 2 of its 4 frames are perfect
    assert text.endswith(
        "**Missed:** object 2 is in none of the run's masks, yet scores 0.500: the ground truth does not have it in "
        "2 of the 4 frames scored, and DAVIS counts a frame where neither the ground truth nor the masks have an "
        "object as perfect (J = F = 1)."
    )
    found = _masks_zip(tmp_path / "f.zip", [(1, 2), (1, 2), (1,), (1,)], tracks + b"2,o,2\n")
    assert "Missed" not in score_masks_zip(gt, found, max_files=9, work_dir=tmp_path)
    always = zip_of(tmp_path / "always.zip", {f"gt/{i:05d}.png": _ids_png(1, 2) for i in range(4)})
    text = score_masks_zip(always, missed, max_files=9, work_dir=tmp_path)
    assert "| 2 | none | 0.000 | 0.000 | 0.000 |" in text and "Missed" not in text


def test_a_ground_truth_zip_of_several_folders_is_told_to_hold_the_ground_truth_pngs(tmp_path):
    """It was told to "zip the one folder of this clip's frames", as a zip of frames is."""
    from uvosam_app.scoring import score_masks_zip

    buffer = io.BytesIO()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(buffer, format="PNG")
    gt = zip_of(
        tmp_path / "gt.zip", {"a/00000.png": buffer.getvalue(), "b/00000.png": buffer.getvalue()}
    )
    masks = zip_of(tmp_path / "masks.zip", {"davis/v/00000.png": buffer.getvalue()})
    with pytest.raises(
        ValueError,
        match=r"^gt\.zip has \.png files in 2 folders \(a, b\); zip the one folder of this clip's ground-truth PNGs\.$",
    ):
        score_masks_zip(gt, masks, max_files=9, work_dir=tmp_path)


def test_a_masks_zip_of_this_app_is_ground_truth_and_an_empty_zip_is_told_empty(
    server, clips, tmp_path
):
    """A researcher scoring one run against another gives a run's masks zip as ground truth: it was refused ("has
    .png files in 5 folders (., cutouts/...)"); its DAVIS palette PNGs are ground truth's format. A 0-byte zip was
    "not a readable zip file (File is not a zip file)", with no final period."""
    c = client(server)
    masks_zip = c.predict(handle_file(str(clips["a"])), stride=2, api_name="/segment")[4]
    other = c.predict([2], api_name="/rerender")[4]  # the same run, track 1 dropped
    text = c.predict(handle_file(masks_zip), handle_file(masks_zip), api_name="/score")
    assert text.startswith("**J&F 1.000** (J 1.000, F 1.000) over 2 objects and 8 frames"), text
    text = c.predict(handle_file(masks_zip), handle_file(other), api_name="/score")
    assert "| 2 | 2 | 1.000 | 1.000 | 1.000 |" in text, text
    empty = tmp_path / "empty.zip"
    empty.write_bytes(b"")
    for gt, masks in ((empty, masks_zip), (masks_zip, empty)):
        with pytest.raises(Exception) as err:
            c.predict(handle_file(str(gt)), handle_file(str(masks)), api_name="/score")
        assert str(err.value) == "empty.zip is empty (0 bytes); upload a .zip of .png files."


def test_score_names_the_ground_truth_frames_after_the_runs_last(tmp_path):
    """A run with a frame limit (3 of 6 frames): its 3 are scored and a note names the 3 ground-truth frames after
    them, so its score does not read as the whole clip's. A whole stride-2 run (frames 0, 2, 4 of 6) gets none."""
    from uvosam_app.scoring import score_masks_zip

    gt = zip_of(tmp_path / "gt.zip", {f"gt/{i:05d}.png": _ids_png(1) for i in range(6)})
    masks = _masks_zip(
        tmp_path / "masks.zip", [(1,)] * 3, b"track_id,class_name,davis_label\n1,o,1\n"
    )
    text = score_masks_zip(gt, masks, max_files=9, work_dir=tmp_path)
    assert text.startswith("**J&F 1.000** (J 1.000, F 1.000) over 1 object and 3 frames")
    assert (
        "not scored: 3 ground-truth frames after the last one scored, 00002.png (00003.png ... 00005.png): the "
        "results stop there" in text
    )
    strided = zip_of(
        tmp_path / "strided.zip",
        {
            **{f"davis/v/{i:05d}.png": _ids_png(1) for i in (0, 2, 4)},
            "tracks.csv": b"track_id,class_name,davis_label\n1,o,1\n",
            "run.json": b'{"settings": {"stride": 2}, "video": {"source_frames": 6}}',
        },
    )
    text = score_masks_zip(gt, strided, max_files=9, work_dir=tmp_path)
    assert "over 1 object and 3 frames" in text and "not scored" not in text
