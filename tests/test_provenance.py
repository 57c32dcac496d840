"""run.json and the README's "Made with" say which models and settings made an export: a run with models loaded by
name (a tiny SAM, a tiny SAM 2.1, the fixture's IDOL tracker), a re-render of its cached masks, a pipeline built from
objects, and an ExportWriter used on its own."""

from __future__ import annotations

import json
import os
import shutil
import zipfile
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest
import torch
from doubles import MovingBoxTracker
from model_helpers import idol_cli_inputs, use_tiny_sam2_checkpoints

import uvosam
import uvosam.segmenter as segmenter_module
from uvosam import sam2_segmenter
from uvosam.code_identity import code_identity
from uvosam.config import PipelineConfig, SegmenterConfig
from uvosam.export import ExportWriter
from uvosam.export_types import ExportOptions
from uvosam.job import rerender, run_job
from uvosam.job_types import JobOptions
from uvosam.pipeline import UVOSAM
from uvosam.sam2_segmenter import Sam2BoxSegmenter
from uvosam.segmenter import BoxPromptSegmenter
from uvosam.testing import tiny_sam, tiny_sam2
from uvosam.types import FrameResult
from uvosam.video import DEFAULT_FPS


def _parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _run_json(result) -> dict:
    """The run.json in a job's zip, checked to be the one beside the export's files."""
    with zipfile.ZipFile(result.zip_path) as archive:
        zipped = archive.read("run.json")
    assert zipped == result.export.run_json.read_bytes()
    return json.loads(zipped)


def _readme(result) -> str:
    return zipfile.ZipFile(result.zip_path).read("README.txt").decode()


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, fixtures_dir):
    """The IDOL fixture's weights (by a path) and its YAML, and a 4-frame folder of its frames."""
    src = fixtures_dir / "idol_small_seed0"
    yaml_path, frames = idol_cli_inputs(src, tmp_path_factory.mktemp("inputs"), num_frames=4)
    return src / "weights.pth", yaml_path, frames


@pytest.fixture(scope="module")
def sam_run(inputs, tmp_path_factory):
    """A cached run of ``from_pretrained`` models (a tiny SAM saved as my_sam.pth and loaded as vit_b), re-wrapped
    with another PipelineConfig the way the app and ``uvosam segment`` do."""
    weights, yaml_path, frames = inputs
    root = tmp_path_factory.mktemp("sam_run")
    torch.save(tiny_sam().state_dict(), root / "my_sam.pth")
    # vit_b at toy size: the loader and the file are the real ones
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(segmenter_module.sam_model_registry, "vit_b", lambda checkpoint=None: tiny_sam())
        # its encoder's width (32) read as vit_b's
        mp.setitem(segmenter_module._EMBED_DIMS, 32, "vit_b")
        loaded = UVOSAM.from_pretrained(
            weights, root / "my_sam.pth", device="cpu", tracker_yaml=yaml_path, tracker_precision="tf32",
            segmenter_config=SegmenterConfig(model_type="vit_b"),
        )  # fmt: skip
    pipe = UVOSAM(loaded.tracker, loaded.segmenter, PipelineConfig(min_score=0.05, max_objects=3))
    options = JobOptions(stride=2, max_frames=2, cache=True, output_max_side=64, style="cutout")
    started = datetime.now(timezone.utc).replace(microsecond=0)
    result = list(run_job(pipe, frames, root / "run", options))[-1].result
    return result, started, loaded


def test_a_run_records_its_models_settings_and_date(sam_run):
    result, started, loaded = sam_run
    record = _run_json(result)
    assert record["format"] == "uvosam-run/1" and record["uvosam_version"] == uvosam.__version__
    assert record["uvosam_code"] == code_identity()
    created = datetime.strptime(record["created_utc"], "%Y-%m-%dT%H:%M:%SZ").replace(
        tzinfo=timezone.utc
    )
    assert started <= created <= started + timedelta(minutes=5)
    assert record["video"] == {
        "name": "clip", "source": "clip", "width": 136, "height": 100, "source_width": 136,
        "source_height": 100, "fps": DEFAULT_FPS, "source_frames": 4,
    }  # fmt: skip
    assert record["settings"] == {
        "min_score": 0.05, "max_objects": 3, "stride": 2, "max_frames": 2, "fit_side": None,
    }  # fmt: skip
    assert record["output"] == {"style": "cutout", "output_max_side": 64}
    assert record["rerender"] is None and record["export"] == {
        "frames": 2,
        "tracks": len(result.tracks),
    }
    models = record["models"]
    assert models["device"] == "cpu"
    tracker = models["tracker"]
    assert (tracker["class"], tracker["weights"], tracker["config_yaml"]) == ("IDOLTracker", "weights.pth",
                                                                              "idol_small.yaml")  # fmt: skip
    assert (tracker["precision"], tracker["input_min_side"], tracker["num_classes"]) == (
        "tf32",
        100,
        1,
    )
    assert tracker["association"]["match_score_thr"] == loaded.tracker.association.match_score_thr
    assert tracker["parameters"] == _parameters(loaded.tracker.detector)
    mask = models["mask_model"]
    assert mask == {
        "class": "BoxPromptSegmenter", "family": "SAM", "model_type": "vit_b", "weights": "my_sam.pth",
        "parameters": _parameters(tiny_sam()), "device": "cpu", "fast": False, "sdpa_float32": False, "compile": False,
        "cuda_graph": False, "cuda_graph_fallback": None, "encoder_dtype": "float32", "mask_threshold": 0.0,
        "overlap": "score",
    }  # fmt: skip


def test_the_readme_says_what_made_the_export(sam_run):
    result, _, _ = sam_run
    readme = _readme(result)
    made_with = readme.split("Made with\n---------\n")[1].split("\n\n")[0]
    assert made_with.startswith(f"uvosam {code_identity()}, {_run_json(result)['created_utc']}.")
    assert "Tracker: weights.pth with idol_small.yaml (IDOLTracker, 1 class, tf32," in made_with
    assert "Mask model: SAM vit_b, weights my_sam.pth (BoxPromptSegmenter," in made_with
    assert "Settings: min_score 0.05, max_objects 3, stride 2, max_frames 2; masks at the frames' size, 136x100." in (
        made_with)  # fmt: skip
    assert "Re-rendered" not in made_with and "run.json" in made_with
    assert readme.index("Made with") < readme.index("Track ids")
    assert "\nrun.json\n    What made this export" in readme  # listed among the files


def test_a_rerender_carries_the_runs_models_and_adds_what_it_changed(sam_run, tmp_path):
    result, _, _ = sam_run
    run = _run_json(result)
    ids = [t.track_id for t in result.tracks]
    assert len(ids) >= 2, "the fixture's tracker should find several objects"
    again = rerender(result.cache_dir, tmp_path, keep_ids=ids[:2], merge={ids[1]: ids[0]}, min_score=0.25,
                     options=JobOptions(style="matte"))  # fmt: skip
    record = _run_json(again)
    assert record["models"] == run["models"] and record["settings"] == run["settings"]
    assert record["video"] == run["video"] and record["output"] == {
        "style": "matte",
        "output_max_side": None,
    }
    assert record["rerender"] == {
        "from_cached_masks": True, "keep_ids": sorted(ids[:2]), "merge": {str(ids[1]): ids[0]}, "min_score": 0.25,
        "run_created_utc": run["created_utc"], "run_uvosam_version": uvosam.__version__,
        "run_uvosam_code": code_identity(), "split": {}, "split_ids": {},
    }  # fmt: skip
    assert record["uvosam_code"] == code_identity()
    assert record["export"]["tracks"] == len(again.tracks)
    readme = " ".join(_readme(again).split())  # unwrapped
    assert "Mask model: SAM vit_b, weights my_sam.pth" in readme
    assert (f"Re-rendered from the run's cached masks (no model run) on {record['created_utc']}: keep tracks "
            f"{', '.join(map(str, sorted(ids[:2])))}; merge {ids[1]}>{ids[0]}; min_score 0.25. The masks come from the "
            f"run of {run['created_utc']} (uvosam {code_identity()}), with the models and settings above. All of "
            "this") in readme  # fmt: skip


@pytest.mark.parametrize(
    "run_code", ["0.1.0+src.000000000000", None], ids=["other code", "not recorded"]
)
def test_a_rerender_of_masks_that_other_code_made_says_so(sam_run, tmp_path, run_code):
    """A cache made by other code (or by a version that did not record its code) is re-rendered, not refused: the
    masks are re-used as they are, and run.json and the README name both codes."""
    result, _, _ = sam_run
    cache = shutil.copytree(result.cache_dir, tmp_path / "run" / result.cache_dir.name)
    meta = json.loads((cache / "meta.json").read_text())
    meta["meta"]["provenance"].pop("uvosam_code")
    if run_code is not None:
        meta["meta"]["provenance"]["uvosam_code"] = run_code
    (cache / "meta.json").write_text(json.dumps(meta))
    again = rerender(cache, tmp_path / "out")
    record = _run_json(again)
    assert (record["uvosam_code"], record["rerender"]["run_uvosam_code"]) == (
        code_identity(),
        run_code,
    )
    assert record["models"] == _run_json(result)["models"]
    readme = " ".join(_readme(again).split())
    made_by = run_code or f"{uvosam.__version__}, which did not record its code"
    assert (f"(uvosam {made_by}), with the models and settings above. This re-render ran other code (uvosam "
            f"{code_identity()}): the masks are as that run made them.") in readme  # fmt: skip


def test_a_split_is_recorded_in_the_order_given_with_its_new_ids():
    """run.json's ``rerender.split`` is what ``rerender(split=...)`` takes back (the same order: the same new ids),
    ``split_ids`` says which id each split made; README.txt's "Made with" names them before the ids kept."""
    from uvosam.provenance import made_with_text, rerender_record

    run = {
        "settings": {},
        "models": {},
        "created_utc": "2025-05-01T12:00:00Z",
        "uvosam_version": "0.1",
    }
    record = rerender_record(run, video={"name": "clip"}, keep_ids=[1, 9], merge={8: 1}, min_score=0.0, output={},
                             split={(3, 120): 8, (3, 300): 9, (5, 40): 10})  # fmt: skip
    assert record["rerender"]["split"] == {"3": [120, 300], "5": [40]}
    assert record["rerender"]["split_ids"] == {"3@120": 8, "3@300": 9, "5@40": 10}
    assert list(json.loads(json.dumps(record))["rerender"]["split_ids"]) == [
        "3@120",
        "3@300",
        "5@40",
    ]
    text = " ".join(made_with_text(record).split())
    assert (
        ": split 3@120 (new id 8), 3@300 (new id 9), 5@40 (new id 10); keep tracks 1, 9; merge 8>1;"
        in text
    )


def test_a_sam2_run_names_the_sam2_model(inputs, tmp_path, monkeypatch):
    weights, yaml_path, frames = inputs
    use_tiny_sam2_checkpoints(tmp_path / "checkpoints", monkeypatch)
    pipe = UVOSAM.from_pretrained(weights, "sam2.1_tiny", device="cpu", tracker_yaml=yaml_path)
    result = list(run_job(pipe, frames, tmp_path / "run", JobOptions(max_frames=2)))[-1].result
    mask = _run_json(result)["models"]["mask_model"]
    assert mask["class"] == "Sam2BoxSegmenter" and mask["family"] == "SAM 2.1"
    assert (mask["model_type"], mask["weights"]) == ("sam2.1_tiny", "sam2.1_tiny")
    assert mask["parameters"] == _parameters(tiny_sam2()) and (mask["fast"], mask["device"]) == (
        False,
        "cpu",
    )
    assert _run_json(result)["models"]["tracker"]["precision"] == "fp32"
    assert "Mask model: SAM 2.1 sam2.1_tiny, weights sam2.1_tiny (Sam2BoxSegmenter," in _readme(
        result
    )


def test_a_pipeline_built_from_objects_says_what_it_knows(inputs, tmp_path, tiny_sam_model):
    _, _, frames = inputs
    pipe = UVOSAM(MovingBoxTracker(num_objects=2), BoxPromptSegmenter(tiny_sam_model))
    result = list(run_job(pipe, frames, tmp_path / "run", JobOptions(max_frames=2)))[-1].result
    models = _run_json(result)["models"]
    assert models["tracker"] == {"class": "MovingBoxTracker"}
    # a toy size: no released model type (not the config's default, vit_h)
    mask = models["mask_model"]
    assert (mask["class"], mask["family"], mask["weights"], mask["model_type"]) == ("BoxPromptSegmenter", "SAM", None,
                                                                                   None)  # fmt: skip
    assert mask["parameters"] == _parameters(tiny_sam_model)
    readme = " ".join(_readme(result).split())
    assert "Tracker: MovingBoxTracker (built from objects: no weights name recorded)." in readme
    assert (
        "Mask model: SAM of no released size (BoxPromptSegmenter built from a model object: weights not recorded, "
        f"{_parameters(tiny_sam_model):,} parameters" in readme
    )
    assert "vit_h" not in readme


def test_a_mask_model_built_from_an_object_is_named_by_its_architecture_not_its_config(
    tiny_sam_model,
):
    """``SegmenterConfig.model_type`` is only informative for a model passed in: run.json names the released size
    whose image encoder (width, depth) the model has, else none, not the config's default (vit_h, sam2.1_large)."""
    with torch.device("meta"):  # SAM ViT-B's architecture without its memory
        vit_b = segmenter_module.sam_model_registry["vit_b"]()
    assert BoxPromptSegmenter(vit_b).describe()["model_type"] == "vit_b"
    assert (
        BoxPromptSegmenter(tiny_sam_model, SegmenterConfig(model_type="vit_l")).describe()[
            "model_type"
        ]
        is None
    )
    assert (
        Sam2BoxSegmenter(sam2_segmenter.build_sam2_model("sam2.1_tiny")).describe()["model_type"]
        == "sam2.1_tiny"
    )
    sam2 = Sam2BoxSegmenter(tiny_sam2()).describe()
    assert (sam2["family"], sam2["model_type"]) == ("SAM 2.1", None)


def test_an_export_writer_on_its_own_writes_a_run_json_that_says_what_it_does_not_know(tmp_path):
    writer = ExportWriter(tmp_path, video_name="vid", class_names=["object"], height=8, width=8,
                          options=ExportOptions(cutouts=False, timeline=False))  # fmt: skip
    mask = np.zeros((1, 8, 8), bool)
    mask[0, 2:5, 2:5] = True
    writer.add(FrameResult(frame_index=0, image=np.zeros((8, 8, 3), np.uint8), track_ids=np.array([1]),
                           boxes_xyxy=np.array([[2, 2, 5, 5]], np.float32), scores=np.array([0.9], np.float32),
                           labels=np.array([0]), masks=mask, mask_scores=np.array([1.0], np.float32)))  # fmt: skip
    export = writer.close()
    record = json.loads(export.run_json.read_text())
    assert record["video"] == {"name": "vid"} and record["export"] == {"frames": 1, "tracks": 1}
    assert record["models"] is None and record["settings"] is None and record["rerender"] is None
    assert record["uvosam_version"] == uvosam.__version__ and record["created_utc"].endswith("Z")
    assert "Models: not recorded" in export.readme.read_text()


def test_an_input_whose_name_is_not_utf8_still_gets_its_run_json(inputs, tmp_path, tiny_sam_model):
    """Linux file names are bytes: one that is not UTF-8 (Python holds it with surrogates) is kept in run.json as
    JSON escapes that give its bytes back, and in the README's "Made with", instead of failing the finished run."""
    name = os.fsdecode(b"clip\xff")
    try:
        frames = shutil.copytree(inputs[2], tmp_path / name)
    except (OSError, UnicodeEncodeError):
        pytest.skip("this file system does not take a name that is not UTF-8")
    pipe = UVOSAM(MovingBoxTracker(num_objects=1), BoxPromptSegmenter(tiny_sam_model))
    result = list(run_job(pipe, frames, tmp_path / "run", JobOptions(max_frames=2)))[-1].result
    assert os.fsencode(_run_json(result)["video"]["source"]) == b"clip\xff"
    # a tracker checkpoint named so, as the README shows it
    weights = os.fsdecode(b"my_idol\xff.pth")
    mask = {
        "class": "BoxPromptSegmenter",
        "family": "SAM",
        "model_type": "vit_b",
        "weights": "sam_vit_b",
    }
    record = {
        "models": {"tracker": {"class": "IDOLTracker", "weights": weights}, "mask_model": mask}
    }
    writer = ExportWriter(tmp_path / "own", video_name="vid", class_names=["object"], height=8, width=8,
                          provenance=record)  # fmt: skip
    export = writer.close()
    assert (
        json.loads(export.run_json.read_text(encoding="utf-8"))["models"]["tracker"]["weights"]
        == weights
    )
    assert "Tracker: my_idol\\udcff.pth (IDOLTracker" in export.readme.read_text(encoding="utf-8")


class _Described(MovingBoxTracker):
    """A tracker whose describe() returns ``value`` under one key."""

    def __init__(self, value: object) -> None:
        super().__init__(num_objects=1)
        self.value = value

    def describe(self) -> dict:
        return {"score_thr": self.value}


@pytest.mark.parametrize("value", [np.float32(0.5), float("nan")], ids=["numpy", "nan"])
def test_a_describe_that_json_cannot_hold_is_refused_before_the_first_frame(
    inputs, tmp_path, tiny_sam_model, value
):
    """run.json is written when the export closes: a describe() value JSON cannot hold (a NumPy scalar, NaN, which
    would make run.json invalid JSON) would fail the finished run there, deleting its outputs; it is refused at the
    start instead, naming the method and what to return."""
    pipe = UVOSAM(_Described(value), BoxPromptSegmenter(tiny_sam_model))
    steps = run_job(pipe, inputs[2], tmp_path / "run", JobOptions(max_frames=2))
    with pytest.raises(TypeError, match=r"_Described\.describe\(\) must return JSON values"):
        next(steps)
    assert not (tmp_path / "run").exists()


def test_segment_records_the_path_and_sha256_of_local_model_files(inputs, tmp_path, monkeypatch):
    """Two ``weights.pth`` were told apart by nothing in run.json (the name only): files given as paths now add the
    path as given and their SHA-256; a model named by its released name keeps what it recorded."""
    import hashlib

    import uvosam_cli

    weights, yaml_path, frames = inputs
    # a copy: the hash's sidecar is written beside the file, never into the fixtures
    local = shutil.copy(weights, tmp_path / "weights.pth")
    sam_file = (
        use_tiny_sam2_checkpoints(tmp_path / "checkpoints", monkeypatch) / "sam2.1_hiera_tiny.pt"
    )
    renamed = shutil.copy(sam_file, tmp_path / "my_sam2.pt")

    def sha256(path) -> str:
        return hashlib.sha256(open(path, "rb").read()).hexdigest()

    base = [
        "segment",
        str(frames),
        "--max-frames",
        "2",
        "--tracker",
        str(local),
        "--config-yaml",
        str(yaml_path),
    ]
    assert uvosam_cli.main([*base, "--out", str(tmp_path / "a"), "--sam", str(renamed),
                             "--sam-type", "sam2.1_tiny"]) == 0  # fmt: skip
    models = json.loads((tmp_path / "a" / "export" / "run.json").read_text())["models"]
    tracker, mask = models["tracker"], models["mask_model"]
    assert (tracker["weights"], tracker["weights_path"], tracker["weights_sha256"]) == (
        "weights.pth", str(local), sha256(weights))  # fmt: skip
    assert (tracker["config_yaml_path"], tracker["config_yaml_sha256"]) == (
        str(yaml_path),
        sha256(yaml_path),
    )
    assert (mask["weights"], mask["weights_path"], mask["weights_sha256"]) == (
        "my_sam2.pt", str(renamed), sha256(sam_file))  # fmt: skip
    assert uvosam_cli.main([*base, "--out", str(tmp_path / "b"), "--sam", "sam2.1_tiny"]) == 0
    mask = json.loads((tmp_path / "b" / "export" / "run.json").read_text())["models"]["mask_model"]
    assert mask["weights"] == "sam2.1_tiny" and not any(key.startswith("weights_") for key in mask)


def test_weight_files_record_skips_released_names():
    from uvosam.provenance import weight_files_record

    assert weight_files_record(tracker="idol-ytvis19-r50", sam="vit_h", config_yaml=None) == {}
    assert weight_files_record(sam="sam2.1_tiny") == {}
