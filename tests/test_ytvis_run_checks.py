"""ytvis-run writes the dataset's category ids (matched by class name) and checks the whole split before any work:
a tracker whose classes are not the dataset's, a missing frame or a bad video id is refused before a model loads."""

import json
import random

import pytest
import torch
from ytvis_helpers import YTVIS19, YTVIS21, categories, tracked_videos, ytvis_root

import uvosam_cli
import uvosam_cli.benchmark_runs as runs_cli
from uvosam.eval.runner import run_ytvis
from uvosam.pipeline import UVOSAM
from uvosam.segmenter import BoxPromptSegmenter
from uvosam.testing import tiny_idol_tracker
from uvosam.tracker import loading


class Segmented(Exception):
    pass


class NoFrames(UVOSAM):
    """A pipeline that fails on its first frame: a check meant to come first must fail before it."""

    def __call__(self, frames):
        raise Segmented("a frame was read")


def _pipe(tiny_sam_model, class_names):
    return UVOSAM(tiny_idol_tracker(class_names=class_names), BoxPromptSegmenter(tiny_sam_model))


def _no_models(args):
    pytest.fail("models loaded")


def test_the_results_carry_the_datasets_category_ids_matched_by_name(tmp_path, tiny_sam_model):
    """2019's names, listed in another order under non-contiguous ids (one name in capitals): each (track, class)
    entry is written under the id the file gives its class's name, not under class index + 1."""
    order = random.Random(0).sample(range(40), 40)
    ids = [100 + 3 * k for k in range(40)]
    names = [YTVIS19[i].upper() if i == 0 else YTVIS19[i] for i in order]
    root = ytvis_root(tmp_path, categories(names, ids))
    id_of = {YTVIS19[i]: cid for i, cid in zip(order, ids)}
    pipe = _pipe(tiny_sam_model, YTVIS19)
    run_ytvis(pipe, root, tmp_path / "r.json")
    entries = json.loads((tmp_path / "r.json").read_text())
    want = tracked_videos(pipe.tracker, root)
    assert len({t.label for _, t in want}) > 1  # several classes, so the mapping is exercised
    assert [(e["video_id"], e["category_id"], e["score"]) for e in entries] == [
        (vid, id_of[YTVIS19[t.label]], pytest.approx(t.score, abs=1e-6)) for vid, t in want
    ]


@pytest.mark.parametrize(
    ("layout", "names", "tracker", "missing", "fits"),
    [
        ("2021", YTVIS21, "idol-ytvis19-r50", "ape", "idol-ytvis21-r50"),
        ("2019", YTVIS19, "idol-ytvis21-r50", "bird", "idol-ytvis19-r50"),
    ],
)
def test_a_tracker_of_the_other_release_is_refused_before_the_models_load(
    tmp_path, monkeypatch, capsys, layout, names, tracker, missing, fits
):
    """The two releases number their classes differently: a 2019 tracker on the 2021 set scored every mask under
    another class. Its names are not the dataset's, and the message names them and the preset that fits."""
    root = ytvis_root(tmp_path, categories(names), layout=layout)
    monkeypatch.setattr(runs_cli, "load_pipeline", _no_models)
    out = tmp_path / "sub" / "results.json"
    argv = ["ytvis-run", "--ytvis-root", str(root), "--out", str(out), "--tracker", tracker]
    assert uvosam_cli.main(argv) == 2
    err = capsys.readouterr().err
    assert f"--tracker {tracker}'s classes are not the dataset's: " in err
    assert missing in err.split("are none of the 40 categories (")[1].split(")")[0]
    assert f"pass --tracker {fits}" in err and not out.parent.exists()


def test_the_library_refuses_a_tracker_of_other_classes_before_reading_a_frame(
    tmp_path, tiny_sam_model
):
    root = ytvis_root(tmp_path, categories(YTVIS21), layout="2021")
    pipe = _pipe(tiny_sam_model, YTVIS19)
    with pytest.raises(ValueError, match="pass --tracker idol-ytvis21-r50"):
        run_ytvis(NoFrames(pipe.tracker, pipe.segmenter), root, tmp_path / "s" / "r.json")
    assert not (tmp_path / "s").exists()


def test_a_one_class_tracker_is_refused_unless_class_agnostic_results_are_asked_for(
    tmp_path, tiny_sam_model, monkeypatch, capsys
):
    """uvosam-davis-r50 and `uvosam train` checkpoints have one class, "object": their results went under category
    1 (person in 2019) without a word. They are refused with the presets that have the classes; --class-agnostic
    writes them under the lowest category id, said on stderr and in run.json."""
    ids = [5, 2 * 40 + 5, *range(11, 49)]  # non-contiguous, the lowest (5) first
    root = ytvis_root(tmp_path, categories(YTVIS19, ids))
    checkpoint = tmp_path / "model_final.pth"
    torch.save({"model": tiny_idol_tracker().detector.state_dict()}, checkpoint)
    monkeypatch.setattr(runs_cli, "load_pipeline", _no_models)
    out = tmp_path / "sub" / "results.json"
    argv = ["ytvis-run", "--ytvis-root", str(root), "--out", str(out)]
    for tracker in ("uvosam-davis-r50", str(checkpoint)):
        assert uvosam_cli.main([*argv, "--tracker", tracker]) == 2
        err = capsys.readouterr().err
        assert (
            f"--tracker {tracker} has one class ('object'), which is none of the dataset's 40"
            in err
        )
        assert "pass --tracker idol-ytvis19-r50" in err
        assert "--class-agnostic to write every result under category 5 ('person')" in err
    assert uvosam_cli.main([*argv, "--class-agnostic"]) == 2  # the default tracker has 40 classes
    assert "class-agnostic results are for a one-class tracker" in capsys.readouterr().err
    assert not out.parent.exists()

    monkeypatch.setattr(runs_cli, "load_pipeline", lambda args: _pipe(tiny_sam_model, ("object",)))
    assert uvosam_cli.main([*argv, "--tracker", str(checkpoint), "--class-agnostic"]) == 0
    assert (
        "note: class-agnostic: every result under category 5 ('person')" in capsys.readouterr().err
    )
    entries = json.loads(out.read_text())
    assert entries and {e["category_id"] for e in entries} == {5}
    record = json.loads((out.parent / "results.run.json").read_text())
    assert record["benchmark"]["category_ids"].startswith(
        "class-agnostic: every result under category 5"
    )


def test_every_frame_is_checked_before_the_models_load(
    tmp_path, tiny_sam_model, monkeypatch, capsys
):
    """A frame missing from the last video was found only when that video's turn came, after hours of the others
    (and the run does not resume): every listed frame is looked for first, and the message counts them all."""
    root = ytvis_root(tmp_path)
    frames = root / "valid" / "JPEGImages"
    (frames / "vid9" / "00005.jpg").unlink()
    (frames / "vid9" / "00010.jpg").unlink()
    monkeypatch.setattr(runs_cli, "load_pipeline", _no_models)
    out = tmp_path / "sub" / "results.json"
    assert uvosam_cli.main(["ytvis-run", "--ytvis-root", str(root), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert (
        f"2 of the 7 frames that {root / 'valid.json'} lists are missing, in 1 video (ids 9); e.g. "
        f"{frames / 'vid9' / '00005.jpg'} of video 9" in err
    )
    assert "--ytvis-root" in err and len(err.strip().splitlines()) == 1 and not out.parent.exists()
    pipe = _pipe(tiny_sam_model, YTVIS19)
    done = []
    with pytest.raises(
        FileNotFoundError, match="2 of the 7 frames"
    ):  # the library checks first too
        run_ytvis(NoFrames(pipe.tracker, pipe.segmenter), root, out, progress=done.append)
    assert not done and not out.parent.exists()


def test_categories_that_no_class_of_the_tracker_has_get_a_note(
    tmp_path, tiny_sam_model, monkeypatch, capsys
):
    """A tracker of some of the dataset's classes is scored (its classes' ids are right); the categories it cannot
    produce get AP 0, which the run says before it starts."""
    root = ytvis_root(tmp_path)
    monkeypatch.setattr(loading, "tracker_class_names", lambda weights: ("Dog", "person"))
    monkeypatch.setattr(
        runs_cli, "load_pipeline", lambda args: _pipe(tiny_sam_model, ("Dog", "person"))
    )
    out = tmp_path / "results.json"
    assert uvosam_cli.main(["ytvis-run", "--ytvis-root", str(root), "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert (
        f"note: 38 categories of {root / 'valid.json'} are none of --tracker idol-ytvis19-r50's classes"
        in err
    )
    assert (
        "(giant_panda, lizard, parrot," in err and "no result will have them (AP 0 for each)" in err
    )
    entries = json.loads(out.read_text())
    assert entries and {e["category_id"] for e in entries} <= {1, 8}  # person, dog


@pytest.mark.parametrize("can", ["symlink", "hard link", "copy"])
def test_a_videos_frames_are_linked_or_copied_where_symlinks_are_not_allowed(
    tmp_path, monkeypatch, can
):
    """A video whose folder holds other frames too is read from a folder of its frames only, made of symlinks:
    Windows refuses them without admin rights or Developer Mode (OSError), and the run failed. Then hard links,
    then copies (another drive)."""
    import os
    from pathlib import Path

    from uvosam.eval import runner

    images = tmp_path / "JPEGImages"
    (images / "v").mkdir(parents=True)
    for i in range(3):
        (images / "v" / f"{i}.jpg").write_bytes(bytes([i]) * 10)

    def refused(*args):
        raise OSError(1314, "A required privilege is not held by the client")  # Windows' refusal

    if can != "symlink":
        monkeypatch.setattr(Path, "symlink_to", refused)
    if can == "copy":
        monkeypatch.setattr(os, "link", refused)
    video = {"file_names": ["v/2.jpg", "v/0.jpg"]}  # 1.jpg left out
    folder = runner._video_frames(images, video, tmp_path / "links")
    made = sorted(folder.iterdir())
    assert [p.name for p in made] == ["00000.jpg", "00001.jpg"]
    assert [p.read_bytes() for p in made] == [bytes([2]) * 10, bytes([0]) * 10]
    assert [p.is_symlink() for p in made] == [can == "symlink"] * 2
    assert [os.path.samefile(p, images / name) for p, name in zip(made, video["file_names"])] == [
        can != "copy"
    ] * 2
