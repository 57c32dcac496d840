"""SAM 2.1 from the command line: every --sam takes its model types and checkpoints (a renamed one as the size it
holds, or --sam-type), a missing sam2 package is a one-line error (exit 2) before any model loads, and `uvosam info`
shows sam2 and the SAM 2.1 weights."""

from __future__ import annotations

import json
import sys

import pytest
import torch
from model_helpers import use_tiny_sam2_checkpoints, use_tiny_tracker

import uvosam_cli
import uvosam_cli.benchmark_runs as runs_cli
import uvosam_cli.segment as segment_cli
from uvosam import sam2_segmenter
from uvosam.config import SAM2_MODEL_TYPES
from uvosam.pipeline import UVOSAM
from uvosam.sam2_segmenter import Sam2BoxSegmenter
from uvosam.testing import tiny_sam2
from uvosam.tracker import loading
from uvosam_cli.arguments import segmenter_config


@pytest.fixture()
def no_tracker(monkeypatch):
    monkeypatch.setattr(
        loading, "load_tracker", lambda *a, **k: pytest.fail("the tracker was loaded")
    )


@pytest.fixture()
def no_sam2(monkeypatch):
    """The sam2 package as if it were not installed (``importlib.util.find_spec("sam2")`` is then None)."""
    monkeypatch.setitem(sys.modules, "sam2", None)
    assert sam2_segmenter.sam2_missing_message() is not None


@pytest.fixture()
def tiny_sam2_checkpoints(tmp_path, monkeypatch):
    """$UVOSAM_CHECKPOINTS holding a tiny SAM 2.1 under the released tiny file name; SAM 2.1 models are built at
    tiny size; the tracker is the tiny random IDOL."""
    use_tiny_tracker(tmp_path / "checkpoints", monkeypatch)
    return use_tiny_sam2_checkpoints(tmp_path / "checkpoints", monkeypatch)


def help_text(capsys, *argv: str) -> str:
    with pytest.raises(SystemExit):
        uvosam_cli.main([*argv, "--help"])
    return " ".join(capsys.readouterr().out.split())  # argparse wraps to the terminal's width


@pytest.mark.parametrize("command", ["segment", "davis-run", "ytvis-run"])
def test_every_sam_option_lists_the_sam2_types(capsys, command):
    text = help_text(capsys, command)
    assert all(model_type in text for model_type in ("vit_b", "vit_h", *SAM2_MODEL_TYPES)), text
    assert "needs the sam2 package" in text and "the tracker alone decides ids" in text
    assert "--sam-type {" + ",".join(SAM2_MODEL_TYPES) + "}" in text


def test_segment_with_sam2_but_no_sam2_package_is_a_one_line_error(
    frames_dir, tmp_path, no_tracker, no_sam2, capsys
):
    code = uvosam_cli.main(
        ["segment", str(frames_dir), "--out", str(tmp_path / "o"), "--sam", "sam2.1_small"]
    )
    err = capsys.readouterr().err
    assert code == 2, err
    assert (
        err.startswith("uvosam segment: error: SAM 2.1 models need the sam2 package")
        and "pip install sam2==1.1.0" in err
    )
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()


def _davis_run(tmp_path) -> list[str]:
    """davis-run of one sequence of a DAVIS root at ``tmp_path`` into ``tmp_path / "r"`` (no model arguments)."""
    return [
        "davis-run",
        "--davis-root",
        str(tmp_path),
        "--out",
        str(tmp_path / "r"),
        "--sequences",
        "bear",
    ]


def test_davis_run_with_a_sam2_file_but_no_sam2_package_fails_before_the_tracker(tmp_path, no_tracker, no_sam2,
                                                                                 capsys):  # fmt: skip
    checkpoint = tmp_path / "sam2.1_hiera_large.pt"  # a released name: SAM 2.1, whatever the folder
    argv = _davis_run(tmp_path)
    assert uvosam_cli.main([*argv, "--no-score", "--sam", str(checkpoint)]) == 2
    err = capsys.readouterr().err
    assert (
        err.startswith("uvosam davis-run: error: SAM 2.1 models need the sam2 package")
        and "Traceback" not in err
    )


def test_sam_type_with_a_model_name_is_refused_before_loading(
    frames_dir, tmp_path, no_tracker, monkeypatch, capsys
):
    monkeypatch.setattr(segment_cli, "load_pipeline", lambda args: pytest.fail("models loaded"))
    monkeypatch.setattr(runs_cli, "load_pipeline", lambda args: pytest.fail("models loaded"))
    bad = ["--sam", "sam2.1_small", "--sam-type", "sam2.1_tiny"]
    assert uvosam_cli.main(["segment", str(frames_dir), "--out", str(tmp_path / "o"), *bad]) == 2
    assert "--sam-type is for a --sam PATH" in capsys.readouterr().err
    davis = _davis_run(tmp_path)
    assert uvosam_cli.main([*davis, "--sam", "vit_b", "--sam-type", "sam2.1_tiny"]) == 2
    assert "--sam vit_b already names the model" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_sam_type_against_a_released_file_name_is_refused_not_ignored(frames_dir, tmp_path, no_tracker, monkeypatch,
                                                                     capsys):  # fmt: skip
    """A released file name decides the model; a --sam-type that says otherwise would be silently ignored."""
    monkeypatch.setattr(segment_cli, "load_pipeline", lambda args: pytest.fail("models loaded"))
    for sam, released in (
        ("w/sam_vit_b_01ec64.pth", "vit_b"),
        ("w/sam2.1_hiera_tiny.pt", "sam2.1_tiny"),
    ):
        argv = [
            "segment",
            str(frames_dir),
            "--out",
            str(tmp_path / "o"),
            "--sam",
            sam,
            "--sam-type",
            "sam2.1_large",
        ]
        assert uvosam_cli.main(argv) == 2
        err = capsys.readouterr().err
        assert f"--sam {sam} is the released {released} file" in err and "drop --sam-type" in err, (
            err
        )
    args = uvosam_cli.build_parser().parse_args(
        [
            "segment",
            "x.mp4",
            "--out",
            "o",
            "--sam",
            "w/sam2.1_hiera_large.pt",
            "--sam-type",
            "sam2.1_large",
        ]
    )
    assert segmenter_config(args).model_type == "sam2.1_large"  # the same model: nothing to refuse


def test_segment_runs_with_a_sam2_model_type_and_with_a_renamed_checkpoint(frames_dir, tmp_path,
                                                                           tiny_sam2_checkpoints, monkeypatch,
                                                                           capsys):  # fmt: skip
    """The real loading path (hub lookup in $UVOSAM_CHECKPOINTS, weights-only load, Sam2BoxSegmenter) at tiny size."""
    loaded = []
    real_load = segment_cli.load_pipeline
    monkeypatch.setattr(
        segment_cli, "load_pipeline", lambda args: loaded.append(real_load(args)) or loaded[-1]
    )
    assert (
        uvosam_cli.main(
            ["segment", str(frames_dir), "--out", str(tmp_path / "a"), "--sam", "sam2.1_tiny"]
        )
        == 0
    )
    renamed = tmp_path / "my_sam2.pt"
    renamed.write_bytes((tiny_sam2_checkpoints / "sam2.1_hiera_tiny.pt").read_bytes())

    def segment(out: str, *extra: str) -> int:
        return uvosam_cli.main(["segment", str(frames_dir), "--out", str(tmp_path / out), "--sam", str(renamed),
                                *extra])  # fmt: skip

    assert segment("b", "--sam-type", "sam2.1_tiny") == 0
    # without --sam-type: the size its Hiera trunk has (the toy counted as tiny's, a released size)
    toy = tiny_sam2().state_dict()["image_encoder.trunk.patch_embed.proj.weight"].shape[0]
    monkeypatch.setitem(sam2_segmenter._HIERA_SIZES, (toy, 5), "sam2.1_tiny")
    assert segment("c") == 0
    assert [type(p.segmenter) for p in loaded] == [Sam2BoxSegmenter] * 3
    assert [p.segmenter.config.model_type for p in loaded] == ["sam2.1_tiny"] * 3
    assert segment("d", "--sam-type", "sam2.1_small") == 2  # a --sam-type that says otherwise
    assert "holds SAM 2.1 sam2.1_tiny" in capsys.readouterr().err
    reference = tiny_sam2().state_dict()
    for pipe in loaded:
        assert all(
            torch.equal(v, reference[k]) for k, v in pipe.segmenter.model.state_dict().items()
        )
    for out, weights in (("a", "sam2.1_tiny"), ("b", "my_sam2.pt")):
        assert (tmp_path / out / "export" / "davis" / "clip" / "00001.png").is_file()
        mask = json.loads((tmp_path / out / "export" / "run.json").read_text())["models"][
            "mask_model"
        ]
        assert (mask["family"], mask["model_type"], mask["weights"]) == (
            "SAM 2.1",
            "sam2.1_tiny",
            weights,
        )


def test_segment_passes_sam_type_and_compile_to_the_segmenter_config(tmp_path, monkeypatch):
    seen = {}
    monkeypatch.setattr(
        UVOSAM, "from_pretrained", lambda tracker, sam, **kw: seen.update(sam=sam, **kw)
    )
    parser = uvosam_cli.build_parser()
    args = parser.parse_args(["segment", "x.mp4", "--out", "o", "--sam", "w.pt", "--sam-type", "sam2.1_large",
                              "--compile"])  # fmt: skip
    segment_cli.load_pipeline(args)
    assert seen["sam"] == "w.pt" and seen["segmenter_config"].model_type == "sam2.1_large"
    assert seen["segmenter_config"].compile is True and seen["segmenter_config"].cuda_graph is False
    args = parser.parse_args(["segment", "x.mp4", "--out", "o", "--cuda-graph"])
    segment_cli.load_pipeline(args)
    assert seen["segmenter_config"].cuda_graph is True and seen["segmenter_config"].compile is False
    args = parser.parse_args(["davis-run", "--davis-root", "d", "--out", "r", "--sam", "w.pt", "--sam-type",
                              "sam2.1_small"])  # fmt: skip
    runs_cli.load_pipeline(args)
    assert seen["sam"] == "w.pt" and seen["segmenter_config"].model_type == "sam2.1_small"


@pytest.mark.parametrize(("flag", "fast"), [([], None), (["--sam-precision", "bf16"], True),
                                            (["--sam-precision", "fp32"], False)])  # fmt: skip
def test_sam_precision_sets_the_fast_path_of_every_run_command(monkeypatch, flag, fast):
    seen = []
    monkeypatch.setattr(UVOSAM, "from_pretrained", lambda tracker, sam, **kw: seen.append(kw))
    parser = uvosam_cli.build_parser()
    segment_cli.load_pipeline(parser.parse_args(["segment", "x.mp4", "--out", "o", *flag]))
    for command in (["davis-run", "--davis-root", "d"], ["ytvis-run", "--ytvis-root", "y"]):
        runs_cli.load_pipeline(parser.parse_args([*command, "--out", "r", *flag]))
    assert [kw["segmenter_config"].fast for kw in seen] == [fast] * 3


def test_davis_run_records_sam_precision_only_when_given():
    parser = uvosam_cli.build_parser()
    base = ["davis-run", "--davis-root", "d", "--out", "r"]
    assert "sam_precision" not in runs_cli.model_settings(parser.parse_args(base))
    settings = runs_cli.model_settings(parser.parse_args([*base, "--sam-precision", "fp32"]))
    assert settings["sam_precision"] == "fp32"


def test_davis_run_records_sam_type_only_when_given(tmp_path):
    parser = uvosam_cli.build_parser()
    base = ["davis-run", "--davis-root", "d", "--out", "r", "--sam", "sam2.1_base_plus"]
    assert runs_cli.model_settings(parser.parse_args(base)) == {
        "tracker": "idol-ytvis19-r50",
        "sam": "sam2.1_base_plus",
        "config_yaml": None,
    }  # as before SAM 2.1: the folders of earlier runs still resume
    with_type = runs_cli.model_settings(
        parser.parse_args([*base[:-1], "w.pt", "--sam-type", "sam2.1_large"])
    )
    assert with_type["sam"] == "w.pt" and with_type["sam_type"] == "sam2.1_large"


def test_info_shows_sam2_and_the_sam2_weights(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("UVOSAM_CHECKPOINTS", str(tmp_path))
    (tmp_path / "sam2.1_hiera_small.pt").write_bytes(b"x")
    assert uvosam_cli.main(["info"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "sam2: 1." in "\n".join(lines)  # its version (sam2 is installed for the tests)
    assert f"  sam2.1_small: {tmp_path / 'sam2.1_hiera_small.pt'}" in lines
    for model_type in ("sam2.1_tiny", "sam2.1_base_plus", "sam2.1_large"):
        assert f"  {model_type}: not downloaded yet" in lines or any(
            line.startswith(f"  {model_type}: /")
            for line in lines  # already in this machine's HF cache
        )


def test_uses_sam2_decides_by_name_as_load_segmenter_does():
    from uvosam.config import SegmenterConfig
    from uvosam.segmenter import uses_sam2

    tiny = SegmenterConfig(model_type="sam2.1_tiny")
    assert (
        uses_sam2("sam2.1_large")
        and uses_sam2("/w/sam2.1_hiera_base_plus.pt")
        and uses_sam2("w.pt", tiny)
    )
    assert not uses_sam2("vit_h") and not uses_sam2("sam_vit_b") and not uses_sam2("w.pt")
    assert not uses_sam2("/w/sam_vit_b_01ec64.pth", tiny)  # a released SAM file stays SAM
    assert uses_sam2(None, tiny) and not uses_sam2(None)


def test_from_pretrained_names_the_missing_sam2_package_before_loading_the_tracker(
    no_tracker, no_sam2
):
    from uvosam.errors import MissingPackageError

    with pytest.raises(MissingPackageError, match="pip install sam2==1.1.0"):
        UVOSAM.from_pretrained("idol-ytvis19-r50", "sam2.1_tiny", device="cpu")
    with pytest.raises(ImportError):  # still an ImportError for callers that catch that
        UVOSAM.from_pretrained("idol-ytvis19-r50", "sam2.1_tiny", device="cpu")


def test_a_renamed_sam2_1_file_without_the_sam2_package_is_reported_before_the_tracker(
    tmp_path, no_tracker, no_sam2, capsys
):
    """The package check decided SAM vs SAM 2.1 by name only, so a renamed SAM 2.1 file without sam2 reached the
    tracker's load; it now decides as the loader does (the file's Hiera keys)."""
    from test_sam2_segmenter import hiera_state

    from uvosam.errors import MissingPackageError
    from uvosam.segmenter import sam2_model_type

    mine = tmp_path / "mine.pt"
    torch.save(hiera_state(144, 48), mine)  # Hiera-L's width and depth, under no released name
    assert sam2_model_type(mine) == "sam2.1_large"
    with pytest.raises(MissingPackageError, match="pip install sam2==1.1.0"):
        UVOSAM.from_pretrained("idol-ytvis19-r50", str(mine), device="cpu")
    assert uvosam_cli.main([*_davis_run(tmp_path), "--no-score", "--sam", str(mine)]) == 2
    assert capsys.readouterr().err.startswith(
        "uvosam davis-run: error: SAM 2.1 models need the sam2 package"
    )
