"""Scoring one clip against its own ground truth (DAVIS unsupervised protocol, any video)."""

import logging

import numpy as np
import pytest
from doubles import interrupt_text_writes

from uvosam.eval.clip import align_ground_truth, ground_truth_files, score_clip
from uvosam.eval.davis import score_sequence
from uvosam.eval.layout import SequenceFiles
from uvosam.eval.masks_io import write_index_png
from uvosam.testing import moving_shapes


def _labels(masks: np.ndarray) -> np.ndarray:
    """(K, H, W) bool -> (H, W) ids 1..K (later objects on top)."""
    ids = np.zeros(masks.shape[1:], np.uint8)
    for k, mask in enumerate(masks, start=1):
        ids[mask] = k
    return ids


@pytest.fixture(scope="module")
def clip_gt(tmp_path_factory):
    """12 frames of 3 moving rectangles: ground truth ``gt/<i>.png`` (natural order 0..11, not zero-padded)."""
    d = tmp_path_factory.mktemp("clip")
    video = moving_shapes(12, height=40, width=56, num_objects=3, seed=2)
    for t, masks in enumerate(video.masks):
        write_index_png(d / "gt" / f"{t}.png", _labels(masks))
    return d, video


def _results(folder, video, frames, relabel=None, drop=None):
    names = []
    for t in frames:
        masks = video.masks[t]
        ids = _labels(masks)
        if drop is not None:
            ids[ids == drop] = 0
        if relabel is not None:
            ids = relabel[ids]
        names.append(f"{t:05d}")
        write_index_png(folder / f"{names[-1]}.png", ids)
    return names


def test_ground_truth_files_are_in_natural_order_and_must_exist(clip_gt, tmp_path):
    d, _ = clip_gt
    assert [p.name for p in ground_truth_files(d / "gt")][:3] == ["0.png", "1.png", "2.png"]
    assert ground_truth_files(d / "gt")[-1].name == "11.png"
    with pytest.raises(FileNotFoundError, match="holds no .png file"):
        ground_truth_files(tmp_path)
    with pytest.raises(FileNotFoundError, match="is not a folder"):
        ground_truth_files(tmp_path / "nope")


def test_perfect_results_score_1_whatever_their_ids(clip_gt, tmp_path):
    d, video = clip_gt
    gt = ground_truth_files(d / "gt")
    names = _results(
        tmp_path / "shapes", video, range(12), relabel=np.array([0, 3, 1, 2] + [0] * 252, np.uint8)
    )
    scores = score_clip(tmp_path / "shapes", gt, names)
    assert scores.jf_mean == pytest.approx(1.0) and len(scores.objects) == 3
    assert sorted((o.gt_id, o.result_id) for o in scores.objects) == [(1, 3), (2, 1), (3, 2)]
    assert scores.subset == "clip" and scores.task == "unsupervised"


def test_a_missed_object_scores_as_the_official_protocol_does(clip_gt, tmp_path):
    d, video = clip_gt
    gt = ground_truth_files(d / "gt")
    names = _results(tmp_path / "shapes", video, range(12), drop=2)
    scores = score_clip(tmp_path / "shapes", gt, names)
    official = score_sequence(SequenceFiles("shapes", tuple(names), tuple(gt)), tmp_path)
    assert [o.to_dict() for o in scores.objects] == [o.to_dict() for o in official]
    missed = next(o for o in scores.objects if o.gt_id == 2)
    assert missed.j_mean == 0.0 and scores.jf_mean < 0.7


def test_strided_run_takes_every_nth_ground_truth_frame(clip_gt, tmp_path):
    d, video = clip_gt
    gt = ground_truth_files(d / "gt")
    frames = range(0, 10, 3)  # stride 3, Max frames 4: source frames 0, 3, 6, 9
    names = _results(tmp_path / "shapes", video, frames)
    unnamed = ["a", "b", "c", "d"]  # names that match no PNG: aligned by order and stride
    aligned = align_ground_truth(gt, unnamed, list(frames), source_frames=12)
    assert [p.name for p in aligned] == ["0.png", "3.png", "6.png", "9.png"]
    assert score_clip(tmp_path / "shapes", aligned, names).jf_mean == pytest.approx(1.0)
    # one per frame
    assert align_ground_truth(aligned, unnamed, list(frames), source_frames=12) == aligned
    # by name: 00003 is 3.png
    assert align_ground_truth(gt, names, [0, 1, 2, 3], source_frames=12) == aligned
    with pytest.raises(
        ValueError, match=r"5 PNGs, but the run processed 4 of the video's 12 frames"
    ):
        align_ground_truth(gt[:5], unnamed, list(frames), source_frames=12)


def test_unusable_ground_truth_is_refused_clearly(clip_gt, tmp_path, caplog):
    _d, video = clip_gt
    names = _results(tmp_path / "shapes", video, range(2))
    empty = write_index_png(tmp_path / "gt0" / "0.png", np.zeros((40, 56), np.uint8))
    with pytest.raises(ValueError, match=r"first frame \(0\.png\) has no object"):
        score_clip(tmp_path / "shapes", [empty, empty], names)
    # the refusal says it all: no warning of the scorer besides (the app logged both, a user's error as a WARNING)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    small = write_index_png(tmp_path / "gt1" / "0.png", np.ones((20, 28), np.uint8))
    with pytest.raises(ValueError, match=r"ground truth is 28x20 \(WxH\) but the masks are 56x40"):
        score_clip(tmp_path / "shapes", [small, small], names)
    with pytest.raises(ValueError, match="1 ground-truth file for 2 result frames"):
        score_clip(tmp_path / "shapes", [empty], names)


def test_clip_score_cli_prints_the_tables_and_writes_json(clip_gt, tmp_path, capsys):
    import json

    import uvosam_cli

    d, video = clip_gt
    _results(tmp_path / "shapes", video, range(0, 12, 2), drop=3)  # stride 2, one object missed
    code = uvosam_cli.main(["clip-score", str(tmp_path / "shapes"), str(d / "gt"), "--stride", "2",
                            "--json", str(tmp_path / "s.json")])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0 and "Global results for clip (unsupervised)" in out
    data = json.loads((tmp_path / "s.json").read_text())
    assert len(data["sequences"]) == 3 and 0.6 < data["J&F-Mean"] < 0.7
    # by name: no --stride needed
    assert "6 result frames (00000 ...) scored against 0.png ... 10.png" in out
    assert uvosam_cli.main(["clip-score", str(tmp_path / "shapes"), str(d / "gt")]) == 0
    assert "  0.667  " in capsys.readouterr().out  # the same J&F (2 of 3 objects), by name
    # an output path that cannot be written (under a file): one line and exit 2, not a traceback
    blocked = [
        "clip-score",
        str(tmp_path / "shapes"),
        str(d / "gt"),
        "--json",
        str(tmp_path / "s.json" / "x"),
    ]
    assert uvosam_cli.main(blocked) == 2
    assert "uvosam clip-score: error: " in capsys.readouterr().err
    (tmp_path / "few").mkdir()
    for name in ("x.png", "y.png"):
        (tmp_path / "few" / name).write_bytes((d / "gt" / "0.png").read_bytes())
    assert uvosam_cli.main(["clip-score", str(tmp_path / "shapes"), str(tmp_path / "few")]) == 2
    assert "2 PNGs, but the run processed 6 of the video's 6 frames" in capsys.readouterr().err
    (
        tmp_path / "named"
    ).mkdir()  # 12 PNGs named unlike the 6 result frames: the stride is not guessed
    for i in range(12):
        (tmp_path / "named" / f"f{i}.png").write_bytes((d / "gt" / f"{i}.png").read_bytes())
    assert uvosam_cli.main(["clip-score", str(tmp_path / "shapes"), str(tmp_path / "named")]) == 2
    assert "pass --stride S" in capsys.readouterr().err
    args = ["clip-score", str(tmp_path / "shapes"), str(tmp_path / "named"), "--stride", "2"]
    assert uvosam_cli.main(args) == 0 and "  0.667  " in capsys.readouterr().out


def test_a_damaged_ground_truth_png_is_named_not_a_crash(clip_gt, tmp_path):
    d, video = clip_gt
    names = _results(tmp_path / "shapes", video, range(2))
    bad = tmp_path / "gt" / "1.png"
    bad.parent.mkdir()
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not really")  # a cut download, or a symlink entry of a zip
    with pytest.raises(ValueError, match=r"1\.png: not a readable PNG image"):
        score_clip(tmp_path / "shapes", [d / "gt" / "0.png", bad], names)


def test_two_files_naming_the_same_frame_are_refused_not_picked_at_random(clip_gt, tmp_path):
    d, _ = clip_gt
    gt = ground_truth_files(d / "gt")
    # 1.png and 01.png: both frame 1
    twice = sorted([*gt, tmp_path / "01.png"], key=lambda p: p.name)
    with pytest.raises(ValueError, match=r"01\.png and 1\.png both name frame 00001"):
        align_ground_truth(twice, ["00000", "00001"], [0, 1], source_frames=13)
    odd = [tmp_path / "\u00b2.png", *gt[:2]]  # '²' counts as a digit for str.isdigit, not for int()
    assert align_ground_truth(odd, ["00000", "00001"], [0, 1], source_frames=3) == gt[:2]


def test_ground_truth_of_another_size_says_the_masks_have_the_video_size(clip_gt, tmp_path):
    _d, video = clip_gt
    names = _results(tmp_path / "shapes", video, range(2))
    small = write_index_png(tmp_path / "gt1" / "0.png", np.ones((20, 28), np.uint8))
    with pytest.raises(
        ValueError, match=r"ground truth is 28x20 \(WxH\) but the masks are 56x40"
    ) as err:
        score_clip(tmp_path / "shapes", [small, small], names)
    assert "480p" not in str(err.value)


def test_masks_of_a_scaled_run_against_source_size_ground_truth_say_to_run_at_the_source_size(
    clip_gt, tmp_path
):
    """Masks of a run that scaled its frames down (``fit_side``; its export's run.json says so) against ground
    truth at the source's size: clip-score (``score_clip``) and davis-score (``read_result``) name the scaled run and
    say to run it at the source size, not just that the sizes differ."""
    import json

    from uvosam.eval.layout import read_result

    d, video = clip_gt  # 40x56 (HxW)
    export = tmp_path / "export"
    masks = export / "davis" / "shapes"
    for t in range(2):
        write_index_png(masks / f"{t:05d}.png", _labels(video.masks[t])[::2, ::2])  # 20x28
    gt = ground_truth_files(d / "gt")[:2]
    said = (
        "these masks are from a run that scaled shapes.mp4 down from its 56x40 to 28x20 (WxH; run.json's "
        "fit_side 28), the size its masks have. Run it again at its source size (`uvosam segment` without "
        "--fit-side) to score against ground truth of that size, or give the ground truth at 28x20"
    )
    with pytest.raises(
        ValueError, match=r"ground truth is 56x40 \(WxH\) but the masks are 28x20"
    ) as err:
        score_clip(masks, gt, ["00000", "00001"])
    assert said not in str(err.value)  # no run.json: nothing said of a scaled run
    video_record = {
        "name": "shapes",
        "source": "shapes.mp4",
        "width": 28,
        "height": 20,
        "source_width": 56,
        "source_height": 40,
    }
    (export / "run.json").write_text(
        json.dumps({"video": video_record, "settings": {"fit_side": 28}})
    )
    with pytest.raises(ValueError) as err:
        score_clip(masks, gt, ["00000", "00001"])
    assert str(err.value) == (
        "ground truth is 56x40 (WxH) but the masks are 28x20 (0.png vs 00000.png); "
        + said
        + " (resized with nearest-neighbour sampling)"
    )
    with pytest.raises(ValueError) as err:
        read_result(masks / "00000.png", (40, 56), gt[0])
    assert str(err.value).startswith(
        f"{masks / '00000.png'} is 28x20 (WxH) but the annotation {gt[0]} is 56x40; results must have the "
        "annotation size (480p): these masks"
    ) and said in str(err.value)


def test_a_scaled_run_of_another_video_in_the_folder_is_not_quoted(clip_gt, tmp_path):
    """Two videos in one --out, the last one scaled: its run.json (the folder's last run) is not that of the
    first video's masks, which are refused for their size with no word of a scaled run (it named the other
    video's sizes and said to run it again); nor is a run.json of this video whose size is not the masks'."""
    import json

    from uvosam.eval.layout import read_result

    _d, video = clip_gt  # 56x40 (WxH)
    export = tmp_path / "out" / "export"
    names = _results(export / "davis" / "shapes", video, range(2))  # shapes.mp4 at its source size
    write_index_png(export / "davis" / "other" / "00000.png", np.ones((40, 56), np.uint8))
    other = {"name": "other", "source": "other.mp4", "width": 56, "height": 40}
    other |= {"source_width": 112, "source_height": 80}  # other.mp4, 112x80, scaled to 56x40
    small = write_index_png(tmp_path / "gt" / "0.png", np.ones((20, 28), np.uint8))
    for record in (other, other | {"name": "shapes", "width": 28, "height": 20}):
        (export / "run.json").write_text(
            json.dumps({"video": record, "settings": {"fit_side": 56}})
        )
        with pytest.raises(ValueError) as err:
            score_clip(export / "davis" / "shapes", [small, small], names)
        assert str(err.value).startswith(
            "ground truth is 28x20 (WxH) but the masks are 56x40 (0.png vs 00000.png); a run's masks have"
        )
        with pytest.raises(ValueError) as err:
            read_result(export / "davis" / "shapes" / "00000.png", (20, 28), small)
        assert str(err.value).endswith("results must have the annotation size (480p)")


def _zip(path, entries):
    import zipfile

    with zipfile.ZipFile(path, "w") as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return path


def test_extract_images_reads_backslash_folders_and_names_a_damaged_member(clip_gt, tmp_path):
    from uvosam_app import zip_images

    d, _ = clip_gt
    png = (d / "gt" / "0.png").read_bytes()
    windows = _zip(tmp_path / "w.zip", {"gt\\00000.png": png, "gt\\00001.png": png})
    unpacked = zip_images.extract_images(windows, tmp_path / "w", max_files=10, max_bytes=1 << 20)
    out = unpacked.folder
    # the folder's name in the zip
    assert out == tmp_path / "w" / "gt" and str(unpacked.inside) == "gt"
    assert sorted(p.name for p in out.iterdir()) == [
        "00000.png",
        "00001.png",
    ]  # named as the frames
    two = _zip(tmp_path / "two.zip", {"gt\\0.png": png, "gt\\sub\\1.png": png})
    with pytest.raises(ValueError, match=r"\.png files in 2 folders"):
        zip_images.extract_images(two, tmp_path / "two", max_files=10, max_bytes=1 << 20)
    damaged = _zip(tmp_path / "bad.zip", {"gt/0.png": png})
    data = bytearray(damaged.read_bytes())
    data[data.index(png[:16]) + 20] ^= 0xFF  # one flipped byte: the member's CRC no longer matches
    damaged.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"bad\.zip: gt/0\.png is damaged"):
        zip_images.extract_images(damaged, tmp_path / "bad", max_files=10, max_bytes=1 << 20)


def test_extract_images_refuses_a_zip_bomb_and_names_root_files_after_the_zip(tmp_path):
    import zipfile

    from uvosam_app import zip_images

    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("gt/0.png", bytes(64 << 20))  # 64 MiB of zeros: ~64 KiB packed
    with pytest.raises(
        ValueError, match=r"bomb\.zip would unpack to 64 MiB from 0\.1 MiB, more than 20x"
    ):
        zip_images.extract_images(bomb, tmp_path / "out", max_files=10, max_bytes=1 << 30)
    assert not (tmp_path / "out").exists()  # refused before anything is written
    flat = _zip(
        tmp_path / "my clip.zip", {"b.jpg": b"x" * 100, "a.JPG": b"y" * 100, "notes.txt": b"hi"}
    )
    unpacked = zip_images.extract_images(flat, tmp_path / "f", suffixes=(".jpg", ".jpeg", ".png"), max_files=10,
                                 max_bytes=1 << 20)  # fmt: skip
    out = unpacked.folder
    assert str(unpacked.inside) == "."  # the zip's root
    assert out == tmp_path / "f" / "my_clip" and sorted(p.name for p in out.iterdir()) == [
        "a.JPG",
        "b.jpg",
    ]


def test_a_zip_listing_too_many_entries_is_refused_before_parsing(tmp_path, monkeypatch):
    import zipfile

    from uvosam_app import zip_images

    many = tmp_path / "many.zip"
    with zipfile.ZipFile(many, "w") as zf:
        for i in range(300):
            zf.writestr(f"gt/{i}.txt", b"")
    assert zip_images._zip_entry_count(many) == 300
    monkeypatch.setattr(zip_images, "MAX_ZIP_ENTRIES", 299)
    parsed = []
    monkeypatch.setattr(zip_images.zipfile, "ZipFile", lambda *a, **k: parsed.append(a))
    with pytest.raises(ValueError, match=r"many\.zip lists 300 entries; at most 299 are accepted"):
        zip_images.extract_images(many, tmp_path / "out", max_files=10, max_bytes=1 << 20)
    assert parsed == []  # refused from the end record, the listing was never parsed


def test_the_entry_count_of_a_zip64_archive_is_read_from_its_zip64_record(tmp_path):
    import zipfile

    from uvosam_app import zip_images

    big = tmp_path / "big.zip"
    with zipfile.ZipFile(big, "w") as zf:
        # over 65535: the classic record says 0xFFFF, the zip64 one the count
        for i in range(70_000):
            zf.writestr(f"g/{i}", b"")
    assert zip_images._zip_entry_count(big) == 70_000
    assert zip_images._zip_entry_count(tmp_path / "big.zip") == len(zipfile.ZipFile(big).infolist())
    not_zip = tmp_path / "no.zip"
    not_zip.write_bytes(b"hello")
    assert zip_images._zip_entry_count(not_zip) is None


def test_clip_score_cli_names_the_results_folder_when_it_is_the_wrong_one(
    clip_gt, tmp_path, capsys
):
    import uvosam_cli

    d, _ = clip_gt
    (tmp_path / "empty").mkdir()
    for results in (tmp_path / "missing", tmp_path / "empty"):
        assert uvosam_cli.main(["clip-score", str(results), str(d / "gt")]) == 2
        err = capsys.readouterr().err
        assert (
            f"results: {results} " in err
            and "export/davis/<video>" in err
            and "ground truth" not in err
        )


def test_clip_score_interrupted_while_writing_json_leaves_the_earlier_file(
    clip_gt, tmp_path, monkeypatch
):
    import uvosam_cli

    d, video = clip_gt
    _results(tmp_path / "shapes", video, range(12))
    out = tmp_path / "scores"
    out.mkdir()
    (out / "s.json").write_text("{}")
    interrupt_text_writes(monkeypatch)
    argv = ["clip-score", str(tmp_path / "shapes"), str(d / "gt"), "--json", str(out / "s.json")]
    assert uvosam_cli.main(argv) == 130  # Ctrl-C: one line, exit code 130
    monkeypatch.undo()
    assert [(p.name, p.read_text()) for p in out.iterdir()] == [("s.json", "{}")]


def test_ground_truth_ids_that_are_not_1_to_k_get_a_note_the_scores_stay_official(
    clip_gt, tmp_path, capsys
):
    """Ids 2 and 5 make K = 5: objects 1, 3 and 4 are empty everywhere and score 1 where the masks leave them empty
    (official), which lifts the mean; the note says so, and how to get a mean over the real objects."""
    import uvosam_cli
    from uvosam.eval.clip import id_gaps_note

    d, video = clip_gt
    relabel = np.array(
        [0, 2, 5, 0] + [0] * 252, np.uint8
    )  # objects 1, 2 -> ids 2, 5; object 3 dropped
    for t, masks in enumerate(video.masks):
        write_index_png(tmp_path / "gaps" / f"{t}.png", relabel[_labels(masks)])
    gt = ground_truth_files(tmp_path / "gaps")
    names = _results(tmp_path / "shapes", video, range(12), drop=3)
    scores = score_clip(tmp_path / "shapes", gt, names)
    assert len(scores.objects) == 5 and scores.jf_mean == pytest.approx(
        1.0
    )  # the official count and mean
    note = id_gaps_note(gt[0])
    assert note is not None and note.startswith(
        "the first ground-truth frame (0.png) has the ids 2, 5, not 1..5:"
    )
    assert (
        "any of 1, 3, 4 counts as perfect" in note
        and "renumber the objects 1..2 for a mean" in note
    )
    assert id_gaps_note(ground_truth_files(d / "gt")[0]) is None  # ids 1..3
    assert uvosam_cli.main(["clip-score", str(tmp_path / "shapes"), str(tmp_path / "gaps")]) == 0
    assert f"Note: {note}" in capsys.readouterr().out


def test_ground_truth_objects_that_first_appear_later_are_left_out_with_a_note(
    clip_gt, tmp_path, capsys
):
    """Object 3 enters the ground truth at frame 5: the protocol (and the official scorer) scores objects 1..2 of
    the first frame only; clip-score now says which objects it left out (it said nothing)."""
    import uvosam_cli
    from uvosam.eval.clip import late_objects_note

    _, video = clip_gt
    for t, masks in enumerate(video.masks):
        ids = _labels(masks)
        ids[ids == 3] = 3 if t >= 5 else 0
        write_index_png(tmp_path / "late" / f"{t}.png", ids)
    _results(tmp_path / "shapes", video, range(12))
    gt = ground_truth_files(tmp_path / "late")
    note = late_objects_note(gt)
    assert note == (
        "not scored: ground-truth object 3 (from 5.png), not in the first ground-truth frame (0.png): the DAVIS "
        "protocol scores that frame's objects, 1..2, as the official scorer does."
    )
    assert uvosam_cli.main(["clip-score", str(tmp_path / "shapes"), str(tmp_path / "late")]) == 0
    out = capsys.readouterr().out
    assert "shapes_2 " in out and "shapes_3" not in out  # the objects of frame 0 are scored
    assert f"Note: {note}" in out
    assert late_objects_note(gt[:5]) is None  # none enters later
    assert late_objects_note(gt, shown_as=lambda p: f"gt.zip: {p.name}").endswith(
        "(from gt.zip: 5.png), not in the first ground-truth frame (gt.zip: 0.png): the DAVIS protocol scores that "
        "frame's objects, 1..2, as the official scorer does."
    )


def test_clip_score_stride_decides_even_when_the_results_are_named_as_ground_truth_frames(
    clip_gt, tmp_path, capsys
):
    """Results of frames 0, 3, 6, 9 named 00000..00003 (another tool's sequential names) with --stride 3 were
    matched by name to ground-truth frames 0..3: a wrong J&F, said nowhere."""
    import shutil

    import uvosam_cli

    d, video = clip_gt
    names = _results(tmp_path / "strided", video, range(0, 12, 3))  # 00000, 00003, 00006, 00009
    (tmp_path / "shapes").mkdir()
    for i, name in enumerate(names):  # renamed 00000..00003
        shutil.copy(tmp_path / "strided" / f"{name}.png", tmp_path / "shapes" / f"{i:05d}.png")
    argv = ["clip-score", str(tmp_path / "shapes"), str(d / "gt"), "--stride", "3"]
    assert uvosam_cli.main(argv) == 0
    captured = capsys.readouterr()
    assert "scored against 0.png ... 9.png" in captured.out and "  1.000  " in captured.out
    assert "but --stride 3 takes 0.png, 3.png ...: scored by --stride" in captured.err
    # uvosam's own export (named after the source frames): the same frames either way, and no note
    strided = ["clip-score", str(tmp_path / "strided"), str(d / "gt")]
    for argv in (strided, [*strided, "--stride", "3"]):
        assert uvosam_cli.main(argv) == 0
        captured = capsys.readouterr()
        assert "  1.000  " in captured.out and captured.err == ""


def test_clip_score_writes_its_json_before_printing(clip_gt, tmp_path, monkeypatch):
    """Its first line was printed before the scoring: with stdout's reader gone, no JSON was written."""
    import json
    import sys

    from proc import GoneStdout

    import uvosam_cli

    d, video = clip_gt
    _results(tmp_path / "shapes", video, range(0, 12, 2))
    monkeypatch.setattr(sys, "stdout", GoneStdout())
    argv = [
        "clip-score",
        str(tmp_path / "shapes"),
        str(d / "gt"),
        "--json",
        str(tmp_path / "s.json"),
    ]
    assert uvosam_cli.main(argv) == 2  # in-process: no real pipe whose reader went, so an error
    assert json.loads((tmp_path / "s.json").read_text())["J&F-Mean"] == 1


def test_ground_truth_named_as_only_some_frames_says_which_lack_one(clip_gt, tmp_path):
    """A ground truth of 2 PNGs named as frames of the run was told to "name the PNGs as the frames"."""
    d, video = clip_gt
    names = _results(tmp_path / "shapes", video, range(6))
    some = [d / "gt" / "4.png", d / "gt" / "5.png"]
    with pytest.raises(ValueError) as err:
        align_ground_truth(some, names, range(6), source_frames=6)
    assert str(err.value) == (
        "ground truth: none for 4 frames the run processed (00000.png, 00001.png, 00002.png, ...): give a PNG for "
        "each"
    )  # through pair_ground_truth those 2 frames would be scored (next test)


def test_ground_truth_of_some_frames_scores_those_frames(clip_gt, tmp_path, capsys):
    """Annotations of key frames only (every 4th), named as the frames, were refused: the official scorer scores the
    frames its annotation folder holds, and so does the clip scorer now."""
    import uvosam_cli
    from uvosam.eval.clip import pair_ground_truth

    d, video = clip_gt
    names = _results(tmp_path / "shapes", video, range(12), drop=3)  # object 3 missed everywhere
    keys = tmp_path / "keys"
    keys.mkdir()
    for t in (0, 4, 8):
        (keys / f"{t:05d}.png").write_bytes((d / "gt" / f"{t}.png").read_bytes())
    gt = ground_truth_files(keys)
    scored, files = pair_ground_truth(gt, names, range(12), source_frames=12)
    assert scored == ["00000", "00004", "00008"] and files == gt
    expected = score_clip(tmp_path / "shapes", files, scored)
    assert expected.jf_mean == pytest.approx(2 / 3)  # 2 of 3 objects, on the annotated frames
    assert uvosam_cli.main(["clip-score", str(tmp_path / "shapes"), str(keys)]) == 0
    out = capsys.readouterr().out
    assert (
        "3 of 12 result frames (those the ground truth annotates) (00000 ...) scored against 00000.png"
        in out
    )
    assert "  0.667  " in out
    # one of them names a frame the run did not process: refused, saying so
    (keys / "00020.png").write_bytes((d / "gt" / "0.png").read_bytes())
    with pytest.raises(ValueError) as err:
        pair_ground_truth(ground_truth_files(keys), names, range(12), source_frames=12)
    assert str(
        err.value
    ) == (  # the cause first: a PNG of no processed frame (not the frames it may lack)
        "ground truth: 1 PNG named as no frame the run processed (00020.png): give only PNGs named as processed "
        "frames (00000.png, 00001.png, 00002.png, ...; those frames are then scored), or score a run that covers them"
    )
    # --stride never takes a subset: the same 3 key frames are too few PNGs for it, and it says so
    (keys / "00020.png").unlink()
    assert (
        uvosam_cli.main(["clip-score", str(tmp_path / "shapes"), str(keys), "--stride", "4"]) == 2
    )
    assert (
        "--stride 4 over 12 result frames takes one ground-truth PNG per source frame, 4 frames apart: at least 45 "
        "PNGs (or one per result frame, 12); the ground truth has 3" in capsys.readouterr().err
    )


def _printed_ids(out: str) -> dict[int, str]:
    """``{GT id: Result id}`` of the per-object table printed by clip-score."""
    rows = out.split("Result id  J-Mean  F-Mean\n", 1)[1].splitlines()
    return {int(r.split()[1]): r.split()[2] for r in rows if r.startswith("shapes_")}


def test_clip_score_says_none_for_an_object_matched_to_an_id_the_results_lack(
    clip_gt, tmp_path, capsys
):
    """All-zero results printed "Result id 1" (an empty padding proposal): the app's Score says "track none", the
    CLI says none too; so does an object matched to an id the results skip."""
    import uvosam_cli

    d, video = clip_gt
    # ids 1 and 3: object 2 matched to the empty 2
    _results(tmp_path / "shapes", video, range(12), drop=2)
    assert uvosam_cli.main(["clip-score", str(tmp_path / "shapes"), str(d / "gt")]) == 0
    assert _printed_ids(capsys.readouterr().out) == {1: "1", 2: "none", 3: "3"}
    zeros = np.array([0] * 256, np.uint8)
    _results(tmp_path / "empty" / "shapes", video, range(12), relabel=zeros)
    assert uvosam_cli.main(["clip-score", str(tmp_path / "empty" / "shapes"), str(d / "gt")]) == 0
    assert _printed_ids(capsys.readouterr().out) == {1: "none", 2: "none", 3: "none"}


def test_clip_score_names_the_ground_truth_frames_after_the_last_result(clip_gt, tmp_path, capsys):
    """A run stopped after 5 of 12 frames: its 5 are scored, and a note before the tables names the 7 after (a
    partial run must not read as the whole clip's score). A whole run with a stride leaves fewer than a stride
    after its last frame: no note."""
    import uvosam_cli

    d, video = clip_gt
    _results(tmp_path / "part", video, range(5))
    assert uvosam_cli.main(["clip-score", str(tmp_path / "part"), str(d / "gt")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "5 result frames (00000 ...) scored against 0.png ... 4.png"
    assert lines[1].startswith(
        "Note: not scored: 7 ground-truth frames after the last one scored, 4.png (5.png ... 11.png): the "
        "results stop there"
    )
    # stride 2, stopped after 3 frames (0, 2, 4): 5.png ... 11.png; by name and by --stride alike
    _results(tmp_path / "part2", video, range(0, 6, 2))
    for extra in ([], ["--stride", "2"]):
        assert uvosam_cli.main(["clip-score", str(tmp_path / "part2"), str(d / "gt"), *extra]) == 0
        assert (
            "not scored: 7 ground-truth frames after the last one scored, 4.png (5.png"
            in capsys.readouterr().out
        )
    # whole runs: stride 2 (0 ... 10; 11.png is between strides) and stride 3 (0 ... 9), and every frame
    for stride in (2, 3, 1):
        _results(tmp_path / f"whole{stride}", video, range(0, 12, stride))
        assert uvosam_cli.main(["clip-score", str(tmp_path / f"whole{stride}"), str(d / "gt")]) == 0
        assert "not scored" not in capsys.readouterr().out
