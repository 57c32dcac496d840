"""davis-run (resumable, scorer-ready) and ytvis-run (submission JSON + zip) with tiny random models."""

import json
import shutil
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image
from pycocotools import mask as mask_utils
from ytvis_helpers import YTVIS19, categories, tracked_videos, ytvis_root

import uvosam_cli
import uvosam_cli.benchmark_runs as runs_cli
from uvosam.eval import runner
from uvosam.eval.davis import evaluate
from uvosam.eval.layout import read_imageset
from uvosam.eval.runner import run_davis, run_ytvis
from uvosam.eval.synthetic import make_synthetic_davis
from uvosam.pipeline import UVOSAM
from uvosam.segmenter import BoxPromptSegmenter
from uvosam.testing import tiny_idol_tracker


class Interrupted(Exception):
    pass


class FailingAfter(UVOSAM):
    """A pipeline that dies after ``limit`` frames (like a killed run)."""

    def __init__(self, pipe, limit):
        super().__init__(pipe.tracker, pipe.segmenter, pipe.config)
        self.left = limit

    def __call__(self, frames):
        for result in super().__call__(frames):
            if self.left == 0:
                raise Interrupted("simulated kill")
            self.left -= 1
            yield result


@pytest.fixture()
def pipe(tiny_sam_model):
    return UVOSAM(tiny_idol_tracker(), BoxPromptSegmenter(tiny_sam_model))


def test_davis_run_resumes_and_writes_what_the_scorer_accepts(tmp_path, pipe):
    root = tmp_path / "DAVIS"
    seqs = make_synthetic_davis(root, sequences=3, frames=6)
    out = tmp_path / "res"
    with pytest.raises(Interrupted):
        list(run_davis(FailingAfter(pipe, 9), root, out))  # dies inside the second sequence
    assert (out / seqs[0]).is_dir() and not (out / seqs[1]).exists()
    assert (out / ".partial" / seqs[1]).is_dir()
    done = list(run_davis(pipe, root, out))
    assert [(d.name, d.skipped) for d in done] == [
        (seqs[0], True),
        (seqs[1], False),
        (seqs[2], False),
    ]
    assert not (out / ".partial").exists()
    for seq in seqs:
        pngs = sorted((out / seq).glob("*.png"))
        assert [p.stem for p in pngs] == [f"{i:05d}" for i in range(6)]
        image = Image.open(pngs[0])
        assert image.mode == "P" and image.size == (64, 48) and np.array(image).max() <= 20
    scores = evaluate(root, out)
    assert 0.0 <= scores.global_dict()["J&F-Mean"] <= 1.0


def test_davis_run_writes_its_masks_and_score_before_stdout(tmp_path, pipe, monkeypatch):
    """Its progress lines went to stdout, and the tables before the score was recorded: with stdout's reader gone
    (`| head -1`), the run ended at its first line, after one sequence and with no score in run.json."""
    import sys

    from proc import GoneStdout

    root = tmp_path / "DAVIS"
    make_synthetic_davis(root, sequences=2, frames=3)
    monkeypatch.setattr(runs_cli, "load_pipeline", lambda args: pipe)
    monkeypatch.setattr(sys, "stdout", GoneStdout())
    out = tmp_path / "r"
    uvosam_cli.main(["davis-run", "--davis-root", str(root), "--out", str(out)])
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == [
        "run.json",
        "synth-000",
        "synth-001",
    ]
    assert json.loads((out / "run.json").read_text())["scores"]["J&F-Mean"] >= 0


def test_davis_run_cli_scores_and_prints_the_paper_numbers(tmp_path, pipe, monkeypatch, capsys):
    root = tmp_path / "DAVIS"
    make_synthetic_davis(root, sequences=2, frames=5)
    monkeypatch.setattr(runs_cli, "load_pipeline", lambda args: pipe)
    assert (
        uvosam_cli.main(["davis-run", "--davis-root", str(root), "--out", str(tmp_path / "r")]) == 0
    )
    out, err = capsys.readouterr()
    assert "[1/2] synth-000: 5 frames" in err and "Global results for val" in out
    assert "[1/2]" not in out  # progress goes to stderr: stdout holds the results
    assert "J&F-Mean" in out and "0.809" in out
    # the default tracker is not the paper's: the comparison says which models each side used
    assert "ours: idol-ytvis19-r50 + vit_h; paper (UVOSAM README): uvosam-davis-r50 + vit_h" in out
    # what made the masks, and their score
    record = json.loads((tmp_path / "r" / "run.json").read_text())
    assert (
        record["format"] == "uvosam-benchmark-run/1"
        and record["models"]["mask_model"]["family"] == "SAM"
    )
    assert record["benchmark"] == {
        "dataset": "DAVIS-2017 unsupervised",
        "split": "val",
        "videos": 2,
        "sequences": None,
    }
    # run.json does not disturb the scorer
    score = evaluate(root, tmp_path / "r").global_dict()["J&F-Mean"]
    assert record["scores"]["J&F-Mean"] == pytest.approx(score) and f"{score:.3f}" in out


@pytest.fixture()
def ytvis_pipe(tiny_sam_model):
    """A tiny tracker with YouTube-VIS 2019's 40 classes (the default tracker's)."""
    return UVOSAM(tiny_idol_tracker(class_names=YTVIS19), BoxPromptSegmenter(tiny_sam_model))


def test_ytvis_run_writes_a_submission(tmp_path, ytvis_pipe):
    root = ytvis_root(tmp_path)
    zip_path = run_ytvis(ytvis_pipe, root, tmp_path / "out" / "results.json")
    entries = json.loads((tmp_path / "out" / "results.json").read_text())
    assert entries and {e["video_id"] for e in entries} <= {7, 9}
    for e in entries:
        frames = 4 if e["video_id"] == 7 else 3
        assert (
            len(e["segmentations"]) == frames
            and e["category_id"] in range(1, 41)
            and 0 <= e["score"] <= 1
        )
        for rle in e["segmentations"]:
            if rle is not None:
                assert mask_utils.decode(
                    {"size": rle["size"], "counts": rle["counts"].encode()}
                ).shape == (40, 56)
    assert zipfile.ZipFile(zip_path).namelist() == ["results.json"]


def test_ytvis_run_emits_the_original_idols_per_class_entries(tmp_path, tiny_sam_model):
    """A 3-class tracker: the submission holds IDOL's (trajectory, class) results of each video, in its order."""
    tracker = tiny_idol_tracker(class_names=("a", "b", "c"))
    root = ytvis_root(tmp_path, categories(("a", "b", "c")))
    run_ytvis(UVOSAM(tracker, BoxPromptSegmenter(tiny_sam_model)), root, tmp_path / "r.json")
    entries = json.loads((tmp_path / "r.json").read_text())
    want = tracked_videos(tracker, root)
    assert len({(vid, t.track_id) for vid, t in want}) < len(want)  # tracks under several classes
    assert [(e["video_id"], e["category_id"], e["score"]) for e in entries] == [
        (vid, t.label + 1, pytest.approx(t.score, abs=1e-6)) for vid, t in want
    ]


def test_ytvis_run_writes_a_video_at_a_time_and_replaces_the_submission_at_the_end(
    tmp_path, tiny_sam_model
):
    """results.json.tmp holds the videos done so far (memory holds one video's entries) and replaces results.json
    once all are in, as json.dumps of the whole list; a run that dies leaves the earlier submission, zip and all."""
    pipe = UVOSAM(
        tiny_idol_tracker(class_names=("a", "b", "c")), BoxPromptSegmenter(tiny_sam_model)
    )
    root = ytvis_root(tmp_path, categories(("a", "b", "c")))
    out = tmp_path / "sub" / "results.json"
    out.parent.mkdir()
    out.write_text("an earlier submission")
    partial = []

    def progress(done):
        partial.append(json.loads((out.parent / "results.json.tmp").read_text() + "]"))
        assert out.read_text() == "an earlier submission"

    zip_path = run_ytvis(pipe, root, out, progress=progress)
    text = out.read_text()
    entries = json.loads(text)
    assert text == json.dumps(entries)
    assert partial[0] and partial[0] == [e for e in entries if e["video_id"] == 7]
    assert partial[1] == entries and len(entries) > len(partial[0])
    before = {p.name: p.read_bytes() for p in out.parent.iterdir()}
    assert sorted(before) == ["results.json", "results.zip"] and zip_path.name == "results.zip"
    with pytest.raises(Interrupted):
        run_ytvis(FailingAfter(pipe, limit=5), root, out)  # dies in the second video
    assert {p.name: p.read_bytes() for p in out.parent.iterdir()} == before


def test_davis_run_refuses_to_resume_with_other_models(tmp_path, pipe, monkeypatch, capsys):
    """A resumed run must not mix sequences segmented by two models into one score; the same models resume."""
    root = tmp_path / "DAVIS"
    seqs = make_synthetic_davis(root, sequences=2, frames=3)
    out = tmp_path / "r"
    loaded = []
    monkeypatch.setattr(runs_cli, "load_pipeline", lambda args: loaded.append(args.sam) or pipe)
    base = ["davis-run", "--davis-root", str(root), "--out", str(out), "--no-score"]
    # the first, unfinished run
    assert uvosam_cli.main(base + ["--sequences", seqs[0], "--sam", "vit_b"]) == 0
    capsys.readouterr()
    assert uvosam_cli.main(base + ["--sam", "vit_h"]) == 2
    err = capsys.readouterr().err
    assert "vit_b" in err and "vit_h" in err and "--out" in err
    # the settings that differ, each with its two values (not two dicts to compare by eye)
    assert (
        f"{out} holds results of a run with other settings (sam: 'vit_b' there, 'vit_h' here); "
        in err
    )
    assert "{" not in err
    assert loaded == ["vit_b"]  # refused before the models load
    assert not (out / seqs[1]).exists()
    first = json.loads((out / "run.json").read_text())
    assert first["benchmark"]["sequences"] == [seqs[0]] and first["scores"] is None  # --no-score
    first["created_utc"] = "2020-01-01T00:00:00Z"  # as if the first run had been long ago
    (out / "run.json").write_text(json.dumps(first))
    assert uvosam_cli.main(base + ["--sam", "vit_b"]) == 0
    assert "already done, skipped" in capsys.readouterr().err and (out / seqs[1]).is_dir()
    resumed = json.loads((out / "run.json").read_text())
    assert resumed["created_utc"] == "2020-01-01T00:00:00Z"  # the folder's first run, kept
    assert (
        resumed["started_utc"] != resumed["created_utc"]
        and resumed["benchmark"]["sequences"] is None
    )


def test_davis_run_refuses_to_resume_with_a_checkpoint_replaced_at_the_same_path(
    tmp_path, pipe, monkeypatch, capsys
):
    """Retraining into the same --out rewrites model_final.pth: the same --tracker path is then another model, and
    resuming would silently keep (and score) the old model's sequences."""
    root = tmp_path / "DAVIS"
    seqs = make_synthetic_davis(root, sequences=2, frames=3)
    ckpt = tmp_path / "runs" / "model_final.pth"
    ckpt.parent.mkdir()
    torch.save({"model": {"w": torch.zeros(2)}}, ckpt)
    loaded = []
    monkeypatch.setattr(runs_cli, "load_pipeline", lambda args: loaded.append(1) or pipe)
    base = ["davis-run", "--davis-root", str(root), "--out", str(tmp_path / "r"), "--no-score"]
    assert uvosam_cli.main([*base, "--tracker", str(ckpt), "--sequences", seqs[0]]) == 0
    torch.save({"model": {"w": torch.ones(2)}}, ckpt)  # retrained
    capsys.readouterr()
    assert uvosam_cli.main([*base, "--tracker", str(ckpt)]) == 2
    assert "tracker_sha256" in capsys.readouterr().err and len(loaded) == 1
    assert not (tmp_path / "r" / seqs[1]).exists()
    torch.save({"model": {"w": torch.zeros(2)}}, ckpt)  # the same model again: resumes
    assert (
        uvosam_cli.main([*base, "--tracker", str(ckpt)]) == 0
        and (tmp_path / "r" / seqs[1]).is_dir()
    )


def test_davis_run_without_ground_truth_says_no_score_before_segmenting(
    tmp_path, pipe, monkeypatch, capsys
):
    """A test-dev sequence has frames but no public annotations: a scored run is refused before the models load
    (not after segmenting the whole set), and --no-score writes its PNGs."""
    root = tmp_path / "DAVIS"
    seqs = make_synthetic_davis(root, sequences=1, frames=3)
    (root / "ImageSets" / "2019").mkdir(parents=True)
    (root / "ImageSets" / "2019" / "test-dev.txt").write_text("td-000\n")
    shutil.copytree(root / "JPEGImages" / "480p" / seqs[0], root / "JPEGImages" / "480p" / "td-000")
    loaded = []
    monkeypatch.setattr(runs_cli, "load_pipeline", lambda args: loaded.append(1) or pipe)
    argv = [
        "davis-run",
        "--davis-root",
        str(root),
        "--out",
        str(tmp_path / "r"),
        "--set",
        "test-dev",
    ]
    assert uvosam_cli.main(argv) == 2
    assert "--no-score" in capsys.readouterr().err and not loaded and not (tmp_path / "r").exists()
    assert uvosam_cli.main([*argv, "--no-score"]) == 0 and (tmp_path / "r" / "td-000").is_dir()


def test_ytvis_run_cli_records_what_made_the_submission_beside_it(
    tmp_path, ytvis_pipe, monkeypatch, capsys
):
    root = ytvis_root(tmp_path)
    pipe = ytvis_pipe
    monkeypatch.setattr(runs_cli, "load_pipeline", lambda args: pipe)
    out = tmp_path / "sub" / "results.json"
    assert uvosam_cli.main(["ytvis-run", "--ytvis-root", str(root), "--out", str(out)]) == 0
    record = json.loads((tmp_path / "sub" / "results.run.json").read_text())
    assert record["benchmark"]["dataset"] == "YouTube-VIS" and record["benchmark"]["videos"] == 2
    assert record["models"]["tracker"]["class"] == type(pipe.tracker).__name__
    assert record["uvosam_code"] == runner.code_identity()
    assert (
        record["benchmark"]["category_ids"] == "the ids valid.json gives the tracker's class names"
    )
    assert "results.run.json" in capsys.readouterr().out
    # the server's zip
    assert zipfile.ZipFile(tmp_path / "sub" / "results.zip").namelist() == ["results.json"]


@pytest.mark.parametrize(
    ("annotations", "message"),
    [
        ({"info": {}, "annotations": []}, 'has no "videos" key (its keys: annotations, info)'),
        ({"videos": {}}, 'has "videos" as a dict, not a list'),
        ([], "holds a JSON list, not an object"),
        ({"videos": [{"id": 1}]}, 'video 0 of "videos" has no file_names'),
        (  # the results name videos by it: found mid-run, after the videos before it
            {"videos": [{"id": "7", "file_names": ["vid7/00000.jpg"]}]},
            "video 0 of \"videos\" has the id '7', not an integer",
        ),
        (
            {"videos": [{"id": 7, "file_names": ["vid7/00000.jpg"]}] * 2},
            'video 1 of "videos" has the id 7 of video 0 too',
        ),
        (
            {"videos": [{"id": 7, "file_names": ["vid7/00000.jpg"]}]},
            'has no "categories" key (its keys: videos): the results are written under the dataset\'s category',
        ),
        (
            {"videos": [], "categories": [{"id": "1", "name": "person"}]},
            'category 0 of "categories" is {"id": "1", "name": "person"}, not an integer "id" and a "name"',
        ),
    ],
)
def test_ytvis_run_names_a_malformed_annotation_file(
    tmp_path, monkeypatch, capsys, annotations, message
):
    root = ytvis_root(tmp_path)
    (root / "valid.json").write_text(json.dumps(annotations))
    monkeypatch.setattr(runs_cli, "load_pipeline", lambda args: pytest.fail("models loaded"))
    argv = ["ytvis-run", "--ytvis-root", str(root), "--out", str(tmp_path / "s" / "r.json")]
    assert uvosam_cli.main(argv) == 2
    err = capsys.readouterr().err
    assert (
        f"{root / 'valid.json'} {message}" in err or f"{root / 'valid.json'}: {message}" in err
    ), err
    assert 'expected a YouTube-VIS annotation file: a JSON object with a "videos" list' in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_ytvis_run_into_a_folder_fails_before_loading_and_leaves_nothing(
    tmp_path, monkeypatch, capsys
):
    root = ytvis_root(tmp_path)
    monkeypatch.setattr(runs_cli, "load_pipeline", lambda args: pytest.fail("models loaded"))
    folder = tmp_path / "submission"
    folder.mkdir()
    argv = ["ytvis-run", "--ytvis-root", str(root), "--out"]
    assert uvosam_cli.main([*argv, str(folder)]) == 2
    err = capsys.readouterr().err
    assert f"--out {folder} is a folder" in err and str(folder / "results.json") in err
    # what is written beside results.json must not be a folder either
    (folder / "results.zip").mkdir()
    assert uvosam_cli.main([*argv, str(folder / "results.json")]) == 2
    assert "results.zip is written beside it" in capsys.readouterr().err
    assert not (tmp_path / "submission.run.json").exists()
    assert sorted(p.name for p in folder.iterdir()) == ["results.zip"]


@pytest.mark.parametrize("sam_or_device", [["--sam", "vit_x"], ["--device", "gpu"]])
def test_benchmark_runs_check_sam_and_device_before_loading(
    tmp_path, monkeypatch, capsys, sam_or_device
):
    root = tmp_path / "DAVIS"
    make_synthetic_davis(root, sequences=1, frames=2)
    monkeypatch.setattr(runs_cli, "load_pipeline", lambda args: pytest.fail("models loaded"))
    davis = ["davis-run", "--davis-root", str(root), "--out", str(tmp_path / "r")]
    ytvis = [
        "ytvis-run",
        "--ytvis-root",
        str(ytvis_root(tmp_path)),
        "--out",
        str(tmp_path / "s.json"),
    ]
    for argv in (davis, ytvis):
        assert uvosam_cli.main([*argv, *sam_or_device]) == 2
        err = capsys.readouterr().err
        assert f"{' '.join(sam_or_device)}" in err and "expected one of" in err
    assert not (tmp_path / "r").exists() and not (tmp_path / "s.run.json").exists()


def test_davis_run_checks_every_sequence_name_before_any_is_segmented(
    tmp_path, pipe, monkeypatch, capsys
):
    root = tmp_path / "DAVIS"
    seqs = make_synthetic_davis(root, sequences=2, frames=3)
    out = tmp_path / "r"
    monkeypatch.setattr(runs_cli, "load_pipeline", lambda args: pytest.fail("models loaded"))
    argv = ["davis-run", "--davis-root", str(root), "--out", str(out)]
    assert uvosam_cli.main([*argv, "--sequences", seqs[0], "bogus", "nope"]) == 2
    err = capsys.readouterr().err
    assert "unknown sequence(s) bogus, nope: not in" in err and "val.txt" in err
    assert f"2 sequences: {seqs[0]}, {seqs[1]}" in err
    with pytest.raises(ValueError, match="unknown sequence"):  # the library checks them first too
        next(run_davis(pipe, root, out, sequences=[seqs[0], "bogus"]))
    assert not out.exists()


def test_davis_run_checks_the_frame_folders_before_loading_and_the_library_too(
    tmp_path, pipe, monkeypatch, capsys
):
    root = tmp_path / "DAVIS"
    seqs = make_synthetic_davis(root, sequences=2, frames=2)
    shutil.rmtree(root / "JPEGImages" / "480p" / seqs[1])
    out = tmp_path / "r"
    monkeypatch.setattr(runs_cli, "load_pipeline", lambda args: pytest.fail("models loaded"))
    assert uvosam_cli.main(["davis-run", "--davis-root", str(root), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"error: frames of sequence '{seqs[1]}' not found: {root / 'JPEGImages'}" in err
    with pytest.raises(FileNotFoundError, match=f"frames of sequence '{seqs[1]}' not found"):
        next(run_davis(pipe, root, out))  # a library caller gets the check before any sequence
    assert not out.exists()


def test_davis_run_reads_the_sequence_list_and_checks_each_frame_folder_once(
    tmp_path, pipe, monkeypatch
):
    root = tmp_path / "DAVIS"
    seqs = make_synthetic_davis(root, sequences=3, frames=2)
    monkeypatch.setattr(runs_cli, "load_pipeline", lambda args: pipe)
    calls = {"list": 0, "frames": []}

    def read_list(path):
        calls["list"] += 1
        return read_imageset(path)

    def frames_dir(davis_root, seq):
        calls["frames"].append(seq)
        return real_frames_dir(davis_root, seq)

    real_frames_dir = runner._frames_dir
    monkeypatch.setattr(runner, "read_imageset", read_list)
    monkeypatch.setattr(runner, "_frames_dir", frames_dir)
    argv = ["davis-run", "--davis-root", str(root), "--out", str(tmp_path / "r"), "--no-score"]
    assert uvosam_cli.main([*argv, "--sequences", seqs[2], seqs[0]]) == 0
    assert calls == {"list": 1, "frames": [seqs[2], seqs[0]]}
    assert sorted(p.name for p in (tmp_path / "r").iterdir() if p.is_dir()) == [seqs[0], seqs[2]]


def _davis_record(out):
    record = json.loads((out / "run.json").read_text())
    return record["benchmark"], record["scores"]


def test_davis_run_of_some_sequences_keeps_the_record_of_the_whole_folder(
    tmp_path, pipe, monkeypatch, capsys
):
    """A one-sequence run into a folder holding the full set must not record (or score) that sequence alone."""
    root = tmp_path / "DAVIS"
    seqs = make_synthetic_davis(root, sequences=3, frames=3)
    monkeypatch.setattr(runs_cli, "load_pipeline", lambda args: pipe)
    out = tmp_path / "r"
    base = ["davis-run", "--davis-root", str(root), "--out", str(out)]
    assert uvosam_cli.main([*base, "--sequences", seqs[0]]) == 0
    assert _davis_record(out)[0]["sequences"] == [seqs[0]]
    # adds to the folder, in the set's order
    assert uvosam_cli.main([*base, "--sequences", seqs[2], seqs[0]]) == 0
    benchmark, scores = _davis_record(out)
    assert benchmark["sequences"] == [seqs[0], seqs[2]] and benchmark["videos"] == 2
    both = evaluate(root, out, sequences=[seqs[0], seqs[2]]).global_dict()
    assert scores == pytest.approx(both)
    assert uvosam_cli.main(base) == 0  # the rest: the whole set
    full = evaluate(root, out).global_dict()
    capsys.readouterr()
    assert uvosam_cli.main([*base, "--sequences", seqs[1]]) == 0
    benchmark, scores = _davis_record(out)
    assert benchmark["sequences"] is None and benchmark["videos"] == 3
    assert scores == pytest.approx(full)
    printed = capsys.readouterr().out
    assert "scored all 3 sequences" in printed and "the 1 asked for here" in printed
    assert "paper (UVOSAM README)" in printed  # the whole val set: comparable with the paper


def test_davis_run_refuses_another_set_into_a_folder_of_one(tmp_path, pipe, monkeypatch, capsys):
    root = tmp_path / "DAVIS"
    seqs = make_synthetic_davis(root, sequences=2, frames=3)
    make_synthetic_davis(root, sequences=2, frames=3, subset="train")
    loaded = []
    monkeypatch.setattr(runs_cli, "load_pipeline", lambda args: loaded.append(args) or pipe)
    base = ["davis-run", "--davis-root", str(root), "--out", str(tmp_path / "r"), "--no-score"]
    assert uvosam_cli.main([*base, "--sequences", seqs[0]]) == 0
    assert uvosam_cli.main([*base, "--set", "train"]) == 2
    err = capsys.readouterr().err
    assert "holds a davis-run of the 'val' set" in err and "Use another --out" in err
    assert len(loaded) == 1


def test_davis_run_into_a_finished_folder_loads_no_model(tmp_path, pipe, monkeypatch, capsys):
    """Re-running a finished davis-run loaded both models (~10 s with the real ones) only to skip every sequence:
    what is left to do is decided first, and a run with nothing left scores the folder without them."""
    root = tmp_path / "DAVIS"
    seqs = make_synthetic_davis(root, sequences=2, frames=1)
    loaded = []
    monkeypatch.setattr(runs_cli, "load_pipeline", lambda args: loaded.append(1) or pipe)
    argv = ["davis-run", "--davis-root", str(root), "--out", str(tmp_path / "r")]
    assert uvosam_cli.main(argv) == 0 and loaded == [1]
    first = capsys.readouterr().err
    assert f"[1/2] {seqs[0]}: 1 frame\n" in first  # not "1 frames"
    record = json.loads((tmp_path / "r" / "run.json").read_text())
    assert uvosam_cli.main(argv) == 0 and loaded == [1]
    out, err = capsys.readouterr()
    assert f"[2/2] {seqs[1]}: already done, skipped" in err and "no model loaded" in out
    assert "Global results for val" in out
    again = json.loads((tmp_path / "r" / "run.json").read_text())
    assert again == record  # the same record and score
    # a finished part of it too
    assert uvosam_cli.main([*argv, "--sequences", seqs[0]]) == 0 and loaded == [1]
    shutil.rmtree(tmp_path / "r" / seqs[1])  # one left to do: the models load
    assert uvosam_cli.main(argv) == 0 and loaded == [1, 1]


def test_davis_run_segments_again_a_sequence_folder_that_lost_a_png(
    tmp_path, pipe, monkeypatch, capsys
):
    """A finished sequence's folder with a PNG deleted since was "already done, skipped", and then the score
    stopped at "result frame missing", with no word of how to get it back: it is segmented again."""
    root = tmp_path / "DAVIS"
    seqs = make_synthetic_davis(root, sequences=2, frames=4)
    loaded = []
    monkeypatch.setattr(runs_cli, "load_pipeline", lambda args: loaded.append(1) or pipe)
    argv = ["davis-run", "--davis-root", str(root), "--out", str(tmp_path / "r")]
    assert uvosam_cli.main(argv) == 0
    capsys.readouterr()
    first = json.loads((tmp_path / "r" / "run.json").read_text())["scores"]
    kept = (tmp_path / "r" / seqs[0] / "00000.png").read_bytes()
    (tmp_path / "r" / seqs[1] / "00002.png").unlink()
    assert uvosam_cli.main(argv) == 0 and loaded == [1, 1]
    err = capsys.readouterr().err
    assert f"[1/2] {seqs[0]}: already done, skipped" in err and f"[2/2] {seqs[1]}: 4 frames" in err
    assert (tmp_path / "r" / seqs[1] / "00002.png").is_file()
    assert (tmp_path / "r" / seqs[0] / "00000.png").read_bytes() == kept
    assert (
        json.loads((tmp_path / "r" / "run.json").read_text())["scores"] == first
    )  # the same masks again


def test_davis_run_of_other_sequences_names_a_folder_that_lost_a_png(
    tmp_path, pipe, monkeypatch, capsys
):
    """A run with --sequences left a damaged earlier sequence out of the record and the score without a word."""
    root = tmp_path / "DAVIS"
    seqs = make_synthetic_davis(root, sequences=3, frames=3)
    monkeypatch.setattr(runs_cli, "load_pipeline", lambda args: pipe)
    argv = ["davis-run", "--davis-root", str(root), "--out", str(tmp_path / "r")]
    assert uvosam_cli.main([*argv, "--sequences", seqs[0], seqs[1]]) == 0
    (tmp_path / "r" / seqs[1] / "00001.png").unlink()
    capsys.readouterr()
    assert uvosam_cli.main([*argv, "--sequences", seqs[2]]) == 0
    err = capsys.readouterr().err
    assert (
        f"note: {seqs[1]} in {tmp_path / 'r'} lacks the PNG of some frame (deleted since it was written?): not "
        f"scored; `--sequences {seqs[1]}` segments it again"
    ) in err


def test_davis_run_does_not_resume_results_without_a_record_of_their_models(
    tmp_path, pipe, monkeypatch
):
    """A folder of an earlier version (sequence PNGs, no .uvosam-run.json) was resumed with any models: its
    sequences were skipped as done, the rest made with the new models, one score printed for the mix, and the new
    record credited the new models with all of them."""
    root = tmp_path / "DAVIS"
    seqs = make_synthetic_davis(root, sequences=2, frames=3)
    monkeypatch.setattr(runs_cli, "load_pipeline", lambda args: pipe)
    out = tmp_path / "r"
    (out / seqs[0]).mkdir(parents=True)
    (out / seqs[0] / "00000.png").write_bytes(b"an earlier version's mask")
    argv = ["davis-run", "--davis-root", str(root), "--out", str(out)]
    with pytest.raises(ValueError, match="no record of the models that made them") as err:
        runner.check_run_settings(out, {"tracker": "idol-ytvis19-r50", "sam": "vit_b"})
    assert f"{out} holds results ({seqs[0]})" in str(err.value)
    assert uvosam_cli.main(argv) == 2
    assert not (out / runner.RUN_SETTINGS_FILE).exists() and not (out / seqs[1]).exists()
    (out / seqs[0] / "00000.png").unlink()  # a folder without PNGs (nothing to mix) is no refusal
    runner.check_run_settings(out, {"sam": "vit_b"})


def test_davis_run_does_not_resume_results_of_other_code(tmp_path, pipe, monkeypatch, capsys):
    """The version was 0.1.0 at every commit: a folder made by an earlier checkout with the same models was resumed
    and scored as one, its masks differing from this code's in 0.2-0.3% of their pixels. The folder records the code
    (``uvosam.code_identity``); other code, or none recorded (an earlier version), is refused where the folder holds
    results, before the models load."""
    root = tmp_path / "DAVIS"
    seqs = make_synthetic_davis(root, sequences=2, frames=3)
    loaded = []
    monkeypatch.setattr(runs_cli, "load_pipeline", lambda args: loaded.append(1) or pipe)
    out = tmp_path / "r"
    argv = ["davis-run", "--davis-root", str(root), "--out", str(out), "--no-score"]
    assert uvosam_cli.main([*argv, "--sequences", seqs[0]]) == 0
    made_by = runner.code_identity()
    assert json.loads((out / "run.json").read_text())["uvosam_code"] == made_by
    settings = json.loads((out / runner.RUN_SETTINGS_FILE).read_text())
    assert settings["uvosam_code"] == made_by
    capsys.readouterr()
    other = "0.1.0+src.000000000000"  # the next checkout
    monkeypatch.setattr(runner, "code_identity", lambda: other)
    # nothing left to segment: the folder is scored as it is (nothing mixed), its record of the code kept
    assert uvosam_cli.main([*argv, "--sequences", seqs[0]]) == 0 and loaded == [1]
    assert "nothing left to segment" in capsys.readouterr().out
    assert json.loads((out / runner.RUN_SETTINGS_FILE).read_text())["uvosam_code"] == made_by
    assert uvosam_cli.main(argv) == 2
    assert capsys.readouterr().err == (
        f"uvosam davis-run: error: {out} holds results ({seqs[0]}) made by uvosam {made_by}, and this is uvosam "
        f"{other}: other code makes slightly different masks with the same models, and resuming would mix the two "
        f"in one score. Use another --out, or delete {out} to start over (`uvosam davis-score` scores the folder "
        "as it is).\n"
    )
    del settings["uvosam_code"]  # a folder of a version before the code was recorded
    (out / runner.RUN_SETTINGS_FILE).write_text(json.dumps(settings))
    assert uvosam_cli.main(argv) == 2
    assert (
        "made by an earlier uvosam, which did not record its code, and" in capsys.readouterr().err
    )
    assert loaded == [1] and not (out / seqs[1]).exists()
    shutil.rmtree(
        out / seqs[0]
    )  # no results: nothing to mix, so the run goes on (and records this code)
    assert uvosam_cli.main(argv) == 0 and loaded == [1, 1]
    assert (
        json.loads((out / runner.RUN_SETTINGS_FILE).read_text())["uvosam_code"]
        == "0.1.0+src.000000000000"
    )


def test_a_damaged_run_settings_record_is_named(tmp_path):
    """A damaged .uvosam-run.json in --out gave the bare JSONDecodeError text, which named no file."""
    (tmp_path / runner.RUN_SETTINGS_FILE).write_text('{"sam": "vit_b"')
    with pytest.raises(ValueError) as err:
        runner.check_run_settings(tmp_path, {"sam": "vit_b"})
    assert str(err.value) == (
        f"{tmp_path / runner.RUN_SETTINGS_FILE} is not valid JSON (Expecting ',' delimiter at line 1, column 16); "
        f"it records the settings of the results in {tmp_path}: use another --out, or delete {tmp_path} to "
        "start over"
    )
