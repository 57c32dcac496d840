"""Command-line argument checks: bad numbers and paths are reported (exit code 2, a one-line message) before any
model is loaded, and never as a traceback."""

import pytest

import uvosam_cli
import uvosam_cli.segment as segment_cli


def _track_argv(frames_dir, out) -> list[str]:
    """``uvosam track`` of ``frames_dir`` with the COCO preset's weights, its results to ``out``."""
    return ["track", str(frames_dir), "--weights", "idol-coco-r50", "--out", str(out)]


@pytest.mark.parametrize(
    ("command", "extra", "message"),
    [
        ("segment", ["--max-objects", "0"], "argument --max-objects: must be a positive integer"),
        ("segment", ["--min-score", "2"], "argument --min-score: must be a number in [0, 1]"),
        ("segment", ["--min-score", "nan"], "argument --min-score: must be a number in [0, 1]"),
        ("segment", ["--stride", "0"], "argument --stride: must be a positive integer"),
        ("segment", ["--max-frames", "0"], "argument --max-frames: must be a positive integer"),
        ("segment", ["--max-frames", "x"], "argument --max-frames: must be an integer; got 'x'"),
        # was "JobOptions: output_max_side must be at least 2 ..."
        (
            "segment",
            ["--output-max-side", "1"],
            "argument --output-max-side: must be a longest side of at least",
        ),
        (
            "track",
            ["--video-id", ""],
            "argument --video-id: must not be empty",
        ),  # an empty id was written
        ("rerender", ["--min-score", "-1"], "argument --min-score: must be a number in [0, 1]"),
        # the option named once (not "Split tracks: " too), the syntax given
        (
            "rerender",
            ["--split", "3@1", "3@x"],
            "argument --split: expected 'track@frame' separated by commas, e.g. '3@120, 5@40'",
        ),
        ("track", ["--stride", "0"], "argument --stride: must be a positive integer"),
        ("track", ["--max-frames", "0"], "argument --max-frames: must be a positive integer"),
        ("train", ["--iters", "0"], "argument --iters: must be a positive integer"),
        ("train", ["--workers", "-1"], "argument --workers: must be an integer >= 0"),
        ("davis-score", ["--workers", "0"], "argument --workers: must be a positive integer"),
    ],
)
def test_bad_numbers_name_the_option_not_the_config_field(
    frames_dir, tmp_path, no_models, capsys, command, extra, message
):
    """`--min-score 2` said "PipelineConfig.min_score must be in [0, 1]; got 2.0", `--max-frames 0` "max_frames
    must be None (all frames) ...": a user of the command line knows the option, not the field."""
    required = {
        "segment": [str(frames_dir), "--out", str(tmp_path / "o")],
        "rerender": [str(tmp_path)],
        "track": [str(frames_dir), "--weights", "idol-coco-r50", "--out", str(tmp_path / "r.json")],
        "train": ["--data", f"folder:{tmp_path}", "--out", str(tmp_path / "run")],
        "davis-score": ["--davis-root", str(tmp_path), "--results", str(tmp_path)],
    }[command]
    with pytest.raises(SystemExit) as exc:
        uvosam_cli.main([command, *required, *extra])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and message in err, err
    assert "Config" not in err and "None" not in err


def test_segment_output_max_side_must_be_positive(frames_dir, tmp_path, no_models, capsys):
    with pytest.raises(SystemExit) as exc:  # 0 used to give a 2x2-pixel overlay video
        uvosam_cli.main(
            ["segment", str(frames_dir), "--out", str(tmp_path / "o"), "--output-max-side", "0"]
        )
    assert exc.value.code == 2 and "--output-max-side" in capsys.readouterr().err


def test_segment_bad_paths_fail_before_loading(frames_dir, tmp_path, no_models, capsys):
    assert (
        uvosam_cli.main(["segment", str(tmp_path / "missing.mp4"), "--out", str(tmp_path / "o")])
        == 2
    )
    assert "missing.mp4" in capsys.readouterr().err
    a_file = tmp_path / "taken"
    a_file.write_text("")
    assert uvosam_cli.main(["segment", str(frames_dir), "--out", str(a_file)]) == 2
    assert "taken" in capsys.readouterr().err


def test_track_out_that_is_a_folder_fails_before_loading(frames_dir, tmp_path, no_models, capsys):
    code = uvosam_cli.main(
        ["track", str(frames_dir), "--weights", "idol-coco-r50", "--out", str(tmp_path)]
    )
    assert code == 2 and str(tmp_path) in capsys.readouterr().err


def test_track_fit_side_tracks_the_frames_scaled_down(frames_dir, tmp_path, monkeypatch, capsys):
    """``track --fit-side N``: the tracker gets the frames scaled down to N (the 48x32 folder at 24: 24x16), the
    boxes asked for in the source's pixels (``test_track_fit_side_boxes_are_in_the_sources_pixels``)."""
    from uvosam.tracker import loading, session

    seen = []

    def track_video(tracker, frames, *, height, width, boxes_hw):
        seen.append((height, width, [f.shape for f in frames], boxes_hw))
        return []

    monkeypatch.setattr(loading, "load_tracker", lambda *args, **kwargs: object())
    monkeypatch.setattr(session, "track_video", track_video)
    argv = _track_argv(frames_dir, tmp_path / "r.json")
    assert uvosam_cli.main([*argv, "--fit-side", "24"]) == 0
    assert uvosam_cli.main(argv) == 0  # without it: the source's size
    assert seen == [(16, 24, [(16, 24, 3)] * 2, (32, 48)), (32, 48, [(32, 48, 3)] * 2, (32, 48))]
    with pytest.raises(SystemExit) as exc:
        uvosam_cli.main([*argv, "--fit-side", "1"])
    assert exc.value.code == 2 and "argument --fit-side: must be a longest side of at least 2" in (
        capsys.readouterr().err
    )


def test_a_name_the_output_encoding_lacks_is_printed_escaped_and_the_command_succeeds(
    frames_dir, tmp_path, monkeypatch
):
    """Windows gives a redirected stdout its ANSI code page with strict errors: a finished command whose summary
    named a file ``動画`` exited 2 ("'charmap' codec can't encode"), its files written. As
    ``PYTHONIOENCODING=cp1252`` on Linux: the summary is printed, the name escaped, exit status 0."""
    import io

    from uvosam.tracker import loading, session

    monkeypatch.setattr(loading, "load_tracker", lambda *args, **kwargs: object())
    monkeypatch.setattr(session, "track_video", lambda *args, **kwargs: [])
    stdout = io.TextIOWrapper(
        io.BytesIO(), encoding="cp1252"
    )  # strict, as Windows' redirected stdout
    monkeypatch.setattr("sys.stdout", stdout)
    out = tmp_path / "動画.json"
    assert uvosam_cli.main(_track_argv(frames_dir, out)) == 0 and out.is_file()
    stdout.flush()
    assert (
        stdout.buffer.getvalue()
        .decode("cp1252")
        .startswith(str(tmp_path / "\\u52d5\\u753b.json: 0 results"))
    )


def test_track_fit_side_boxes_are_in_the_sources_pixels(tmp_path, monkeypatch):
    """``track --fit-side``'s results.json gave no size and its boxes were in the scaled frames' pixels: they are
    the source's, as without it (the tracker keeps boxes normalised to the frame: twice the scaled frames')."""
    import json

    import numpy as np
    from model_helpers import use_tiny_tracker
    from PIL import Image

    from uvosam.testing import moving_shapes, tiny_idol_tracker
    from uvosam.tracker.session import track_video
    from uvosam.video import iter_frames

    folder = tmp_path / "clip"
    folder.mkdir()
    for i, frame in enumerate(moving_shapes(3, height=48, width=64, num_objects=2, seed=1).frames):
        Image.fromarray(frame).save(folder / f"{i:05d}.png")
    use_tiny_tracker(tmp_path / "ckpt", monkeypatch)
    out = tmp_path / "r.json"
    argv = ["track", str(folder), "--weights", "idol-ytvis19-r50", "--out", str(out)]
    assert uvosam_cli.main([*argv, "--fit-side", "32"]) == 0
    scaled = track_video(tiny_idol_tracker(), iter_frames(folder, fit_side=32), height=24, width=32)
    got = [b for r in json.loads(out.read_text()) for b in r["boxes"] if b is not None]
    want = [b * 2 for t in scaled for b in t.boxes_xyxy if b is not None]
    assert len(got) == len(want) > 0
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)
    assert max(b[2] for b in got) > 32  # past the scaled frame's width


def test_benchmark_runs_check_the_dataset_root_before_loading(tmp_path, monkeypatch, capsys):
    import uvosam_cli.benchmark_runs as runs_cli

    def refuse(args):
        raise AssertionError("the models were loaded for a dataset root that does not exist")

    monkeypatch.setattr(runs_cli, "load_pipeline", refuse)
    missing = str(tmp_path / "nowhere")
    assert (
        uvosam_cli.main(["davis-run", "--davis-root", missing, "--out", str(tmp_path / "r")]) == 2
    )
    assert "nowhere" in capsys.readouterr().err
    assert (
        uvosam_cli.main(["ytvis-run", "--ytvis-root", missing, "--out", str(tmp_path / "r.json")])
        == 2
    )
    assert "nowhere" in capsys.readouterr().err


def test_segment_help_names_the_inputs_and_styles_the_readme_lists(capsys):
    with pytest.raises(SystemExit):
        uvosam_cli.main(["segment", "--help"])
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps to the terminal's width
    assert (
        ".gif or .apng" in text
        and "folder of .jpg/.jpeg/.png frames (in natural name order)" in text
    )
    assert "shrink the output video (any --style)" in text


@pytest.mark.parametrize(
    ("model_type", "device", "noted"),
    [("vit_h", "cpu", True), ("vit_l", "cpu", True), ("vit_b", "cpu", False),
     ("sam2.1_tiny", "cpu", False), ("vit_h", "cuda:0", False), (None, "cpu", False)],
)  # fmt: skip
def test_a_heavy_sam_on_the_cpu_gets_a_note_naming_lighter_models(model_type, device, noted):
    note = segment_cli.slow_on_cpu_note({"model_type": model_type, "device": device})
    assert (note is not None) == noted
    if noted:
        assert f"SAM {model_type} runs on the CPU" in note and "--sam sam2.1_tiny" in note


@pytest.fixture()
def a_file(tmp_path):
    path = tmp_path / "afile"
    path.write_text("")
    return path


def test_output_paths_under_a_file_fail_before_loading(
    frames_dir, tmp_path, a_file, no_models, monkeypatch, capsys
):
    """Every command says so before its models load or its data is read, not after the whole run."""
    import uvosam_cli.benchmark_runs as runs_cli
    import uvosam_cli.clip_score as clip_cli
    import uvosam_cli.davis as davis_cli
    from uvosam.eval.synthetic import make_synthetic_davis

    root = tmp_path / "DAVIS"
    make_synthetic_davis(root, sequences=1, frames=2)
    slow = ((runs_cli, "load_pipeline"), (davis_cli, "evaluate"), (clip_cli, "score_clip"),
            (clip_cli, "_result_names"))  # fmt: skip
    for module, name in slow:
        monkeypatch.setattr(module, name, lambda *a, _name=name, **k: pytest.fail(f"{_name} ran"))
    davis = ["davis-run", "--davis-root", str(root), "--out"]
    score = ["davis-score", "--davis-root", str(root), "--results", str(tmp_path), "--json"]
    for argv, out in (
        (["segment", str(frames_dir), "--out"], a_file / "sub"),
        (["track", str(frames_dir), "--weights", "idol-coco-r50", "--out"], a_file / "r.json"),
        (davis, a_file / "sub"),
        (score, a_file / "s.json"),
        (["clip-score", str(tmp_path), str(tmp_path), "--json"], a_file / "s.json"),
    ):
        assert uvosam_cli.main([*argv, str(out)]) == 2
        err = capsys.readouterr().err
        assert f"{a_file} is a file, not a folder" in err and "outside it" in err, err
    assert uvosam_cli.main([*davis, str(a_file)]) == 2  # a folder output that is a file
    assert f"--out {a_file} is a file; expected an output folder" in capsys.readouterr().err
    assert uvosam_cli.main([*score, str(tmp_path)]) == 2  # a file output that is a folder
    assert f"pass e.g. --json {tmp_path / 'scores.json'}" in capsys.readouterr().err


def test_sam_and_device_are_checked_before_loading(
    frames_dir, tmp_path, no_models, monkeypatch, capsys
):
    import torch

    base = ["segment", str(frames_dir), "--out", str(tmp_path / "o")]
    assert uvosam_cli.main([*base, "--sam", "vit_x"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("uvosam segment: error: --sam vit_x is neither a SAM / SAM 2.1 model")
    assert "expected one of vit_b, vit_l, vit_h, sam2.1_tiny, sam2.1_small" in err
    assert uvosam_cli.main([*base, "--device", "gpu"]) == 2
    err = capsys.readouterr().err
    assert "--device gpu: that is not a device name; expected one of auto, cpu" in err
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # a machine without a GPU
    track = _track_argv(frames_dir, tmp_path / "t.json")
    for argv in (base, track):
        assert uvosam_cli.main([*argv, "--device", "cuda"]) == 2
        assert "--device cuda: torch finds no CUDA GPU on this machine" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_a_sam_file_of_no_size_uvosam_builds_is_refused_before_any_model_loads(
    frames_dir, tmp_path, no_models, capsys
):
    """A SAM whose encoder width is none of vit_b / vit_l / vit_h, or a file with no SAM encoder at all: no model
    type could fit it, so it is said at once (it was: "assuming vit_h", the tracker loaded, then a load error that
    asked for a model type the command line could not give, as a tuple repr)."""
    import torch

    from uvosam.testing import tiny_sam

    tiny = tmp_path / "tiny_sam.pth"
    torch.save(tiny_sam().state_dict(), tiny)
    other = tmp_path / "other.pth"
    torch.save({"backbone.weight": torch.zeros(2, 2)}, other)
    base = ["segment", str(frames_dir), "--out", str(tmp_path / "o")]
    assert uvosam_cli.main([*base, "--sam", str(tiny)]) == 2
    err = capsys.readouterr().err
    assert (
        f"error: {tiny} holds a SAM image encoder 32 wide; uvosam builds SAM of the released widths only "
        in err
    )
    assert "(vit_b 768 / vit_l 1024 / vit_h 1280), so no model type fits it" in err
    assert "('vit_b'" not in err and "assuming" not in err
    assert uvosam_cli.main([*base, "--sam", str(other)]) == 2
    err = capsys.readouterr().err
    assert (
        f"error: {other} holds no SAM image encoder (no image_encoder.patch_embed.proj.weight)"
        in err
    )
    assert not (tmp_path / "o").exists()


def test_device_check_accepts_what_torch_can_use_here(monkeypatch):
    import torch

    from uvosam_cli.checks import check_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    for device in ("auto", "cpu"):
        check_device(device)
    for device in ("cuda", "cuda:0", "mps"):
        with pytest.raises(ValueError, match=f"--device {device}: torch finds no") as err:
            check_device(device)
        assert "expected one of auto, cpu (those usable here)" in str(err.value)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    for device in ("cuda", "cuda:0", "cuda:1"):
        check_device(device)
    with pytest.raises(ValueError, match=r"has 2 CUDA GPU\(s\) \(cuda:0, cuda:1\)"):
        check_device("cuda:2")


def test_sam_check_takes_model_types_table_names_and_checkpoint_files(tmp_path):
    from uvosam_cli.checks import check_sam

    checkpoint = tmp_path / "mine.pth"
    checkpoint.write_bytes(b"x")
    for sam in ("vit_h", "sam_vit_b", "sam2.1_large", str(checkpoint), "w/sam_vit_b_01ec64.pth",
                "w/sam2.1_hiera_tiny.pt"):  # fmt: skip
        check_sam(sam)  # a released file name is looked up by that name, wherever it is said to be
    for sam, found in (("sam_vit_x", "no file at sam_vit_x"), ("idol-ytvis19-r50", "no file at"),
                       (str(tmp_path / "none.pth"), "no file at"), (str(tmp_path), "is a folder")):  # fmt: skip
        with pytest.raises(ValueError, match="neither a SAM / SAM 2.1 model") as err:
            check_sam(sam)
        assert found in str(err.value) and "(also as sam_vit_b, sam_vit_l, sam_vit_h)" in str(
            err.value
        )


@pytest.fixture()
def no_training(monkeypatch):
    """``uvosam train`` may neither read a dataset nor build a model or train."""
    from uvosam.train import datasets, loop

    monkeypatch.setattr(datasets, "load_spec", lambda *a, **k: pytest.fail("a dataset was read"))
    monkeypatch.setattr(loop, "train", lambda *a, **k: pytest.fail("training started"))


def _train_argv(tmp_path):
    videos = tmp_path / "videos"
    videos.mkdir(exist_ok=True)
    return [
        "train",
        "--config",
        "tiny",
        "--data",
        f"folder:{videos}",
        "--out",
        str(tmp_path / "run"),
    ]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--out", "{a_file}"], "--out {a_file} is a file; expected an output folder (created if missing)"),
        (["--out", "{a_file}/run"], "{a_file} is a file, not a folder, so nothing can be created under it"),
        (["--out", "{locked}/run"], "no permission to write in {locked}; pass a --out path in a folder"),
        (["--config", "davis_r5"], ("--config davis_r5 is neither a preset nor a YAML file (no file at "
                                    "davis_r5); expected one of davis_r50, tiny, or the path of a training YAML")),
        (["--config", "{tmp}"], "--config {tmp} is neither a preset nor a YAML file ({tmp} is a folder)"),
        (["--device", "gpu"], "--device gpu: that is not a device name; expected one of auto, cpu"),
        (["--data", "davis:{tmp}/nowhere"], ("DAVIS root {tmp}/nowhere: {tmp}/nowhere/Annotations/480p and "
                                             "{tmp}/nowhere/JPEGImages/480p not found; expected the DAVIS-2017")),
        (["--data", "ytvis:{tmp}:{tmp}"], ("--data ytvis:{tmp}:{tmp}: {tmp} is a folder; expected the "
                                           "YouTube-VIS / OVIS annotation JSON file")),
        (["--data", "ytvis:{a_file}:{a_file}"], "{a_file} is a file; expected the image root folder"),
        (["--data", "folder:{tmp}/nowhere"], ("--data folder:{tmp}/nowhere: nothing at {tmp}/nowhere; "
                                              "expected a video folder (frames/ + boxes.json) or a folder of them")),
        (["--init", "sam_vit_h"], ("--init sam_vit_h is neither a tracker weight name nor a checkpoint file "
                                   "(sam_vit_h is a SAM model, not a tracker); expected one of none, idol-")),
        (["--init", "{tmp}/gone.pth"], ("--init {tmp}/gone.pth is neither a tracker weight name nor a "
                                        "checkpoint file (no file at {tmp}/gone.pth)")),
    ],
    ids=["out-a-file", "out-under-a-file", "out-unwritable", "config-unknown", "config-a-folder", "device",
         "davis-root", "ytvis-json-a-folder", "ytvis-images-a-file", "folder-missing", "init-sam", "init-missing"],
)  # fmt: skip
def test_train_checks_its_arguments_before_reading_data_or_building_a_model(
    tmp_path, a_file, no_training, monkeypatch, capsys, extra, message
):
    """A wrong --out, --data, --config, --init or --device (--workers: an argparse type) used to surface only after
    the datasets were read and the model built (or the starting weights downloaded)."""
    import os

    from uvosam_cli import checks

    locked = tmp_path / "locked"
    locked.mkdir()
    access = os.access  # root may write anywhere: make ``locked`` read-only for the check alone
    monkeypatch.setattr(
        checks.os,
        "access",
        lambda path, mode, **kw: os.fspath(path) != str(locked) and access(path, mode, **kw),
    )
    names = {"a_file": a_file, "locked": locked, "tmp": tmp_path}
    extra = [arg.format(**names) for arg in extra]
    assert uvosam_cli.main([*_train_argv(tmp_path), *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith("uvosam train: error: ") and err.count("\n") == 1, err
    assert message.format(**names) in err
    assert not (tmp_path / "run").exists()


def test_train_checks_every_data_spec_and_the_init_of_a_yaml_config_first(
    tmp_path, no_training, capsys
):
    argv = _train_argv(tmp_path)
    missing = (
        tmp_path / "missing.json"
    )  # the second dataset: the first must not be read before this
    assert uvosam_cli.main([*argv, "--data", f"ytvis:{missing}:{tmp_path}"]) == 2
    assert f"nothing at {missing}; expected the YouTube-VIS" in capsys.readouterr().err
    config = tmp_path / "mine.yaml"
    config.write_text("max_iter: 2\ninit: idol-cocoo-r50\n")
    assert uvosam_cli.main([*argv, "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert f"--config {config}: init idol-cocoo-r50 is neither a tracker weight name" in err


def test_tracker_weights_check_takes_table_names_and_checkpoint_files(tmp_path):
    from uvosam import weight_table
    from uvosam_cli.checks import check_tracker_weights

    checkpoint = tmp_path / "model_final.pth"
    checkpoint.write_bytes(b"x")
    for weights in ("idol-coco-r50", "uvosam-davis-r50", str(checkpoint), "w/cocopretrain_R50.pth"):
        check_tracker_weights(weights, "--init")  # a released file name is looked up by that name
    check_tracker_weights("None", "--init", also=("none",))
    for weights, found in (("none", "no file at none"), ("vit_h", "vit_h is a SAM model"),
                           ("w/sam_vit_b_01ec64.pth", "no file at"), (str(tmp_path), "is a folder")):  # fmt: skip
        with pytest.raises(ValueError, match="neither a tracker weight name nor") as err:
            check_tracker_weights(weights, "--init")
        assert found in str(err.value) and "idol-coco-r50" in str(err.value)
    with pytest.raises(ValueError, match="sam2.1_tiny is a SAM model") as err:  # nor a SAM 2.1 name
        check_tracker_weights("sam2.1_tiny", "--init")
    listed = str(err.value).split("expected one of ")[1].split(", or the path")[0]
    assert listed == ", ".join(
        weight_table.TRACKERS
    )  # the tracker entries of the table, no mask model's
    assert weight_table.TRACKERS == (
        "idol-ytvis19-r50", "idol-ytvis21-r50", "idol-ovis-r50", "idol-coco-r50", "uvosam-davis-r50"
    )  # fmt: skip


def test_train_resuming_from_a_checkpoint_does_not_check_the_unused_init(
    tmp_path, monkeypatch, capsys
):
    from uvosam.train import datasets

    def reached(spec):
        raise RuntimeError("the data is read")

    monkeypatch.setattr(datasets, "load_spec", reached)
    argv = [*_train_argv(tmp_path), "--init", str(tmp_path / "gone.pth")]
    assert (
        uvosam_cli.main([*argv, "--resume"]) == 2
    )  # nothing to resume from: a new run, which needs the init
    assert "--init" in capsys.readouterr().err
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "model_0000009.pth").write_bytes(b"")
    assert uvosam_cli.main([*argv, "--resume"]) == 1  # the stand-in's RuntimeError: no refusal
    assert "error: the data is read" in capsys.readouterr().err


def test_tracker_weights_are_checked_before_loading(frames_dir, tmp_path, no_models, capsys):
    """A mistyped --tracker / --weights names the option and lists only tracker weights (no SAM names)."""
    out = tmp_path / "o"
    cases = (
        (
            ["segment", str(frames_dir), "--out", str(out), "--tracker", "idol-ytvis19-r5"],
            "--tracker",
        ),
        (
            [
                "track",
                str(frames_dir),
                "--weights",
                "idol-ytvis19-r5",
                "--out",
                str(out / "r.json"),
            ],
            "--weights",
        ),
    )
    for argv, option in cases:
        assert uvosam_cli.main(argv) == 2
        err = capsys.readouterr().err
        assert (
            f"{option} idol-ytvis19-r5 is neither a tracker weight name nor a checkpoint file"
            in err
        ), err
        assert "idol-ytvis19-r50" in err and "sam_vit_h" not in err
    assert (
        uvosam_cli.main(["segment", str(frames_dir), "--out", str(out), "--tracker", "sam_vit_b"])
        == 2
    )
    assert "sam_vit_b is a SAM model, not a tracker" in capsys.readouterr().err
    assert not out.exists()


def test_a_bad_config_yaml_is_reported_before_any_weight_is_looked_for(
    frames_dir, tmp_path, no_models, monkeypatch, capsys
):
    """A malformed --config-yaml was a yaml traceback, and only after the weights were found (for a link: after
    SAM's download too)."""
    from uvosam import pipeline

    monkeypatch.setattr(
        pipeline, "locate_weights", lambda *a, **k: pytest.fail("weights looked for")
    )
    broken = tmp_path / "broken.yaml"
    broken.write_text("MODEL: [unclosed\n")
    out = tmp_path / "o"
    for source in (str(frames_dir), "https://example.com/clip.mp4"):
        argv = ["segment", source, "--out", str(out), "--config-yaml"]
        assert uvosam_cli.main([*argv, str(broken)]) == 2
        err = capsys.readouterr().err
        assert (
            err.startswith(f"uvosam segment: error: {broken} is not valid YAML (")
            and "\n" == err[-1:]
        ), err
        assert uvosam_cli.main([*argv, str(tmp_path / "none.yaml")]) == 2
        assert (
            f"error: --config-yaml {tmp_path / 'none.yaml'} does not exist; expected a detectron2-style IDOL "
            "YAML file (e.g. the release's configs/*.yaml)"
        ) in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.parametrize("command", ["segment", "track"])
def test_a_config_yaml_that_is_no_file_is_named_so(
    frames_dir, tmp_path, no_models, capsys, command
):
    """A folder or /dev/null said "IDOL config not found" (track: only once the models were loading)."""
    required = {
        "segment": ["--out", str(tmp_path / "o")],
        "track": ["--weights", "idol-coco-r50", "--out", str(tmp_path / "r.json")],
    }[command]
    for yaml, what in ((tmp_path, "is a folder"), ("/dev/null", "is not a regular file")):
        code = uvosam_cli.main([command, str(frames_dir), *required, "--config-yaml", str(yaml)])
        err = capsys.readouterr().err
        assert (
            code == 2 and f"error: --config-yaml {yaml} {what}; expected a detectron2-style" in err
        ), err


@pytest.mark.parametrize("command", ["segment", "track"])
def test_an_input_without_read_permission_is_named_so(
    frames_dir, tmp_path, no_models, monkeypatch, capsys, command
):
    """A bare "[Errno 13] Permission denied: 'p/unr.mp4'" (tests run as root: os.access says no)."""
    import os

    import uvosam_cli.checks

    access = os.access
    monkeypatch.setattr(
        uvosam_cli.checks.os, "access", lambda p, mode: p != frames_dir and access(p, mode)
    )
    required = {
        "segment": ["--out", str(tmp_path / "o")],
        "track": ["--weights", "idol-coco-r50", "--out", str(tmp_path / "r.json")],
    }[command]
    assert uvosam_cli.main([command, str(frames_dir), *required]) == 2
    err = capsys.readouterr().err
    assert f"error: {frames_dir} cannot be read: no permission to read this folder" in err, err


def test_track_batch_size_zero_is_a_usage_error(frames_dir, tmp_path, no_models, capsys):
    argv = _track_argv(frames_dir, tmp_path / "r.json")
    with pytest.raises(SystemExit) as exit_info:
        uvosam_cli.main([*argv, "--batch-size", "0"])
    assert exit_info.value.code == 2
    assert "--batch-size: must be a positive integer; got 0" in capsys.readouterr().err


def _options(parser):
    """(subcommand, option) for every option of every subcommand (not --help)."""
    import argparse

    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, command in sub.choices.items():
        for action in command._actions:
            if action.option_strings and not isinstance(action, argparse._HelpAction):
                yield name, action


def test_every_option_has_help_and_says_its_default():
    """`segment --help` showed no default for --tracker / --sam, `ytvis-run --split` hid its default and
    `davis-run --set` had no help at all; nor what --max-frames, --max-objects, --output-max-side, --config-yaml
    (segment), --max-frames, --batch-size (track) or --sequences (davis-score) do when not given (docs/cli.md: "lists
    every option with its default"). A flag, or a required option, has none to say."""
    missing = []
    for name, action in _options(uvosam_cli.build_parser()):
        if action.help is None:
            missing.append(f"{name} {action.option_strings[0]}: no help")
        elif action.nargs != 0 and not action.required and "default" not in action.help:
            missing.append(
                f"{name} {action.option_strings[0]}: default {action.default!r} not said"
            )
        if action.dest == "output_max_side" and "the source's unless" not in action.help:
            missing.append(
                f"{name} --output-max-side: says the source's size (the frames' with --fit-side)"
            )
        if action.dest == "device" and "any device name torch takes" not in action.help:
            missing.append(
                f"{name} --device: lists only some devices"
            )  # xpu and the rest are taken too
    assert not missing, "\n".join(missing)


def test_an_unknown_option_after_a_command_shows_that_commands_usage(capsys):
    """`uvosam davis-run ... --max-objects 2` showed the top-level usage ("uvosam [-h] [-v] {segment,...}")."""
    with pytest.raises(SystemExit) as ended:
        uvosam_cli.main(["davis-run", "--davis-root", "D", "--out", "o", "--max-objects", "2"])
    err = capsys.readouterr().err
    assert ended.value.code == 2 and err.startswith("usage: uvosam davis-run [-h] --davis-root")
    assert (
        err.splitlines()[-1] == "uvosam davis-run: error: unrecognized arguments: --max-objects 2"
    )
    with pytest.raises(SystemExit):  # one before the command: the top level's
        uvosam_cli.main(["--bogus", "info"])
    assert (
        capsys.readouterr().err.splitlines()[-1] == "uvosam: error: unrecognized arguments: --bogus"
    )


def test_ytvis_run_without_annotations_names_both_layouts_as_plain_paths(tmp_path, capsys):
    """It said "annotations not found; looked for [PosixPath('DAVIS/valid.json'), ...]", and no next step."""
    root = tmp_path / "DAVIS"
    root.mkdir()
    code = uvosam_cli.main(
        ["ytvis-run", "--ytvis-root", str(root), "--out", str(tmp_path / "r.json")]
    )
    err = capsys.readouterr().err
    assert code == 2 and "PosixPath" not in err, err
    for path in (
        root / "valid.json",
        root / "valid" / "instances.json",
        root / "valid" / "JPEGImages",
    ):
        assert str(path) in err
    assert "--ytvis-root" in err and "--split" in err


def test_a_hugging_face_hub_warning_is_printed_once():
    """Offline, each of huggingface_hub's retry warnings came twice: plain (its own handler) and again as
    `WARNING huggingface_hub.utils._http: ...` (propagated to the handler the CLI puts on the root logger)."""
    import subprocess
    import sys

    script = (
        "import logging, uvosam_cli\n"
        "uvosam_cli.configure_logging(verbose=False)\n"
        "from huggingface_hub.utils import _http\n"  # as a download imports it: its handler comes with it
        "_http.logger.warning('Retrying in 1s [Retry 1/5].')\n"
        "logging.getLogger('uvosam.hub').warning('the Hub cannot be reached')\n"
    )
    err = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stderr
    assert err.count("Retrying in 1s") == 1, err
    assert "WARNING uvosam.hub: the Hub cannot be reached" in err  # ours as before


def test_train_refuses_a_config_the_cpu_has_not_the_memory_for(
    tmp_path, no_training, monkeypatch, capsys
):
    """`uvosam train --config davis_r50` on a 23 GB CPU machine was killed by the OOM killer at 23 GB, without a
    word and with nothing in --out: one iteration needs about 58 GiB there (uvosam.train.memory)."""
    from uvosam.train import memory
    from uvosam.train.config import TrainConfig

    monkeypatch.setattr(memory, "available_memory_bytes", lambda: 22 << 30)
    argv = [*_train_argv(tmp_path), "--config", "davis_r50", "--device", "cpu"]
    assert uvosam_cli.main(argv) == 2
    err = capsys.readouterr().err
    assert (
        "needs about 58.0 GiB of memory for one iteration on the CPU" in err
        and "22.0 GiB available" in err
    )
    assert "8 clips of 2 frames, up to 576x1024 pixels each" in err
    assert "Train on a GPU" in err and "`--config tiny` for a smoke test" in err
    assert not (tmp_path / "run").exists()
    memory.check_cpu_memory(
        TrainConfig.davis_r50(), available=64 << 30
    )  # a machine that has it trains
    memory.check_cpu_memory(TrainConfig.tiny(), available=22 << 30)


def test_train_memory_check_can_be_skipped_and_passes_a_resumed_run_with_nothing_left(
    tmp_path, no_training, monkeypatch
):
    """The estimate could not be overruled, and a --resume of a finished run was refused although it trains
    nothing."""
    import torch

    from uvosam.train import memory
    from uvosam.train.config import TrainConfig

    monkeypatch.setattr(memory, "available_memory_bytes", lambda: 1 << 30)
    argv = [*_train_argv(tmp_path), "--config", "davis_r50", "--device", "cpu"]
    assert uvosam_cli.main(argv) == 2
    with pytest.raises(pytest.fail.Exception, match="a dataset was read"):
        uvosam_cli.main([*argv, "--no-memory-check"])
    (tmp_path / "run").mkdir()
    done = {"model": {}, "optimizer": {}, "iteration": TrainConfig.davis_r50().max_iter}
    torch.save(done, tmp_path / "run" / "model_final.pth")
    with pytest.raises(pytest.fail.Exception, match="a dataset was read"):
        uvosam_cli.main([*argv, "--resume"])


@pytest.mark.parametrize(("rank", "saved", "said"), [
    ("0", True, "finished at iteration 2: {out}/model_final.pth"),
    ("1", False, "rank 1 finished at iteration 2 (rank 0 writes the checkpoints)"),
    ("0", False, "nothing to train: {out} had reached iteration 2 already"),
])  # fmt: skip
def test_train_ends_with_the_final_checkpoint_on_rank_0_only(
    tmp_path, monkeypatch, caplog, capsys, rank, saved, said
):
    """Under torchrun, rank 1 logged "finished at iteration 2: None" (only rank 0 saves)."""
    from uvosam.train import datasets, loop

    out = tmp_path / "run"
    final = out / "model_final.pth" if saved else None
    monkeypatch.setattr(datasets, "load_specs", lambda specs: [[] for _ in specs])
    monkeypatch.setattr(loop, "train", lambda *a, **k: loop.TrainResult(2, final, None, {}, None))
    monkeypatch.setenv("RANK", rank)
    with caplog.at_level("INFO", logger="uvosam_cli.train"):
        assert uvosam_cli.main(_train_argv(tmp_path)) == 0
    assert said.format(out=out) in caplog.text and "None" not in caplog.text
    # the result on stdout: the final checkpoint's path alone (it was only in a log record, on stderr)
    assert capsys.readouterr().out == (f"{final}\n" if saved else "")


def test_train_counts_its_videos_in_words(tmp_path, monkeypatch, caplog):
    """It logged "folder:...: 1 videos, ratio 1"."""
    from uvosam.train import datasets, loop

    monkeypatch.setattr(datasets, "load_specs", lambda specs: [[object()] for _ in specs])
    monkeypatch.setattr(loop, "train", lambda *a, **k: loop.TrainResult(2, None, None, {}, None))
    with caplog.at_level("INFO", logger="uvosam_cli.train"):
        assert uvosam_cli.main(_train_argv(tmp_path)) == 0
    assert f"folder {tmp_path / 'videos'}: 1 video, ratio 1" in caplog.text


def test_device_check_passes_what_torch_parses_and_checks_cuda_and_mps(monkeypatch):
    """The library's check refused "cpu:0", torch.device("cpu", 0), "mps:0" and "xpu" ("that is not a device
    name"), which resolve_device had passed to torch."""
    import torch

    from uvosam.devices import check_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    for device in ("cpu:0", torch.device("cpu", 0), "mps", "mps:0"):
        check_device(device)
    with pytest.raises(ValueError, match="device='cuda:0': torch finds no CUDA GPU"):
        check_device(torch.device("cuda", 0))
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    with pytest.raises(ValueError, match="device='mps:0': torch finds no Apple GPU"):
        check_device("mps:0")
    for bad in ("gpu", "cuda:x", ""):
        with pytest.raises(
            ValueError, match="that is not a device name; expected one of auto, cpu"
        ) as err:
            check_device(bad)
        # xpu was offered as an example where it is refused
        assert str(err.value).endswith(
            "(those usable here), or another name torch.device takes (cpu:0)"
        )


def test_a_deprecated_device_type_is_refused_without_torchs_warning():
    """``check_device("mkldnn")`` let torch's UserWarning ("'mkldnn' is no longer used as device type") through
    before its own refusal. Torch warns once a process: a fresh one, with warnings as errors."""
    import subprocess
    import sys
    from pathlib import Path

    code = (
        "from uvosam.devices import check_device\n"
        "try:\n    check_device('mkldnn')\nexcept ValueError as err:\n    print(err)\n"
    )
    ran = subprocess.run(
        [sys.executable, "-W", "error", "-c", code],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert ran.returncode == 0 and ran.stderr == "", ran.stderr
    assert ran.stdout.startswith("device='mkldnn': torch cannot use it here (")


def test_docs_cli_lists_every_option_of_every_command():
    """docs/cli.md's "Every option" lists each command's options; a new option must be added there too."""
    import argparse
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "docs" / "cli.md").read_text(encoding="utf-8")
    section = text[text.index("## Every option") :]
    parser = uvosam_cli.build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    for name, sub in commands.items():
        line = re.search(
            rf"^- `{re.escape(name)}\b.*?(?=^- `|^\n)", section, re.MULTILINE | re.DOTALL
        )
        assert line is not None, f"docs/cli.md lists no options of {name}"
        listed = set(re.findall(r"--[a-z][a-z0-9-]*", line.group(0)))
        options = {
            o
            for a in sub._actions
            for o in a.option_strings
            if o.startswith("--") and o != "--help"
        }
        assert options == listed, (name, options ^ listed)


def test_a_device_torch_cannot_use_is_refused_in_one_line_before_the_models_load(
    frames_dir, tmp_path, no_models, capsys
):
    """`--device xpu` (a torch built without XPU) passed the check: the weights were read and the tracker built,
    then a traceback ("AssertionError: Torch not compiled with XPU enabled") and exit 1; `--device meta` and
    `vulkan` were refused only after the models had loaded."""
    import torch

    devices = ["meta", "vulkan"] + ([] if torch.xpu.is_available() else ["xpu"])
    track = _track_argv(frames_dir, tmp_path / "t.json")
    segment = ["segment", str(frames_dir), "--out", str(tmp_path / "o")]
    for argv in (segment, track):
        for device in devices:
            assert uvosam_cli.main([*argv, "--device", device]) == 2
            err = capsys.readouterr().err
            assert (
                err.count("\n") == 1
                and f"error: --device {device}: torch cannot use it here (" in err
            )
    assert "(AssertionError: Torch not compiled with XPU enabled)" in err or "xpu" not in devices
    assert not (tmp_path / "o").exists()


def _unsearchable(monkeypatch, folder):
    """``folder`` loses its search permission (no ``x``) for ``os.stat`` and ``os.lstat``: tests run as root. As the
    kernel, the look-up of anything below it is refused (``noX/sub/deeper`` too), ``folder`` itself is not."""
    import errno
    import os

    for name in ("stat", "lstat"):
        real = getattr(os, name)

        def refused(path, *args, _real=real, **kwargs):
            if os.path.abspath(os.fspath(path)).startswith(f"{folder}{os.sep}"):
                raise PermissionError(errno.EACCES, "Permission denied", os.fspath(path))
            return _real(path, *args, **kwargs)

        monkeypatch.setattr(os, name, refused)


def _fake_run(tmp_path):
    """A RUN folder as far as rerender's first checks look (its cache's meta.json)."""
    run = tmp_path / "run"
    (run / "cache").mkdir(parents=True)
    (run / "cache" / "meta.json").write_text("{}")
    return run


@pytest.mark.parametrize("below", ["sub", "sub/deeper"])
@pytest.mark.parametrize("command", ["segment", "rerender"])
def test_an_out_under_a_folder_that_cannot_be_searched_is_one_line(
    tmp_path, no_models, monkeypatch, capsys, command, below
):
    """``--out noX/sub`` (noX without x) gave a PermissionError traceback and exit status 1: ``exists()`` raised,
    in the command's output folder (before its try) and in the check. ``--out noX/sub/deeper`` named the folder
    ``noX/sub`` (the refused path's parent, which does not exist)."""
    first = [str(tmp_path / "clip.mp4")] if command == "segment" else [str(_fake_run(tmp_path))]
    folder = tmp_path / "noX"
    folder.mkdir()
    _unsearchable(monkeypatch, folder)
    assert uvosam_cli.main([command, *first, "--out", str(folder / below)]) == 2
    err = capsys.readouterr().err
    assert err == (
        f"uvosam {command}: error: --out {folder / below} cannot be written: no permission to open the folder "
        f"{folder}; pass a --out path in a folder you can write to\n"
    )


def test_a_rerender_of_a_run_on_a_read_only_file_system_says_so_and_suggests_out(
    tmp_path, monkeypatch, capsys
):
    """It said "no permission to write in RUN; pass a RUN path in a folder you can write to": the way out is --out,
    and root gets no permission on a read-only mount either."""
    import os
    from types import SimpleNamespace

    from uvosam_cli import checks

    run = _fake_run(tmp_path)
    access, statvfs = os.access, os.statvfs
    monkeypatch.setattr(
        checks.os,
        "access",
        lambda path, mode, **kw: os.fspath(path) != str(run) and access(path, mode, **kw),
    )
    monkeypatch.setattr(
        checks.os,
        "statvfs",
        lambda path: (
            SimpleNamespace(f_flag=os.ST_RDONLY) if os.fspath(path) == str(run) else statvfs(path)
        ),
    )
    assert uvosam_cli.main(["rerender", str(run)]) == 2
    assert capsys.readouterr().err == (
        f"uvosam rerender: error: RUN {run} cannot be written: {run} is on a read-only file system; pass --out "
        "<a folder you can write to> (RUN is then only read)\n"
    )


def test_an_out_that_is_a_dangling_link_names_the_link_and_its_missing_target(
    tmp_path, no_models, capsys
):
    """It said "File exists (dangling)" once the models had run."""
    link = tmp_path / "dangling"
    link.symlink_to(tmp_path / "gone")
    assert uvosam_cli.main(["segment", str(tmp_path / "clip.mp4"), "--out", str(link)]) == 2
    assert capsys.readouterr().err == (
        f"uvosam segment: error: --out {link} is a link to {tmp_path / 'gone'}, which does not exist; create that "
        "folder, or pass another --out\n"
    )
    assert link.is_symlink()
