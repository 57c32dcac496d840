"""`uvosam track` end to end: the fixture's frames as PNGs + its weights + its YAML reproduce its tracks.json."""

import json

import numpy as np
import pytest
import torch
from doubles import interrupt_text_writes
from model_helpers import idol_cli_inputs

import uvosam_cli


@pytest.fixture(scope="module")
def fixture_run(tmp_path_factory, fixtures_dir):
    src = fixtures_dir / "idol_small_seed0"
    root = tmp_path_factory.mktemp("track")
    yaml_path, frames_dir = idol_cli_inputs(src, root)
    return src, frames_dir, yaml_path, root


def test_track_reproduces_the_original_tracks_json(fixture_run, capsys):
    src, frames_dir, yaml_path, root = fixture_run
    out = root / "results.json"
    code = uvosam_cli.main(["track", str(frames_dir), "--weights", str(src / "weights.pth"),
                            "--config-yaml", str(yaml_path), "--out", str(out)])  # fmt: skip
    assert code == 0
    got = json.loads(out.read_text())
    want = json.loads((src / "tracks.json").read_text())["tracks"]
    assert len(got) == len(want) == 6
    for g, w in zip(got, want):
        assert g["video_id"] == "clip" and g["category_id"] == w["label"] + 1
        assert g["score"] == pytest.approx(w["score"], abs=1e-4)
        assert [b is None for b in g["boxes"]] == [b is None for b in w["boxes"]]
        for gb, wb in zip(g["boxes"], w["boxes"]):
            if wb is not None:
                np.testing.assert_allclose(gb, wb, atol=1e-2)


def test_track_with_nothing_ever_born_writes_an_empty_list(fixture_run, tmp_path):
    src, frames_dir, yaml_path, _ = fixture_run
    checkpoint = torch.load(src / "weights.pth", weights_only=True)
    for key, value in checkpoint["model"].items():
        if "class_embed" in key and key.endswith("bias"):
            value.fill_(-30.0)  # every score ~1e-13: no track is ever born (birth needs > 0.2)
    weights = tmp_path / "silent.pth"
    torch.save(checkpoint, weights)
    out = tmp_path / "r.json"
    assert uvosam_cli.main(["track", str(frames_dir), "--weights", str(weights),
                            "--config-yaml", str(yaml_path), "--out", str(out)]) == 0  # fmt: skip
    assert json.loads(out.read_text()) == []


def test_track_interrupted_while_writing_leaves_the_earlier_results(
    fixture_run, tmp_path, monkeypatch
):
    src, frames_dir, yaml_path, _ = fixture_run
    out = tmp_path / "r.json"
    out.write_text("[]")
    interrupt_text_writes(monkeypatch)
    assert uvosam_cli.main(["track", str(frames_dir), "--weights", str(src / "weights.pth"),
                            "--config-yaml", str(yaml_path), "--out", str(out)]) == 130  # fmt: skip
    monkeypatch.undo()
    assert [(p.name, p.read_text()) for p in tmp_path.iterdir()] == [("r.json", "[]")]


def test_load_tracker_rejects_batch_size_zero_instead_of_using_the_default(fixture_run):
    from uvosam.tracker.loading import load_tracker

    src, _, yaml_path, _ = fixture_run
    assert load_tracker(src / "weights.pth", yaml_path, batch_size=2).batch_size == 2
    on_cpu = load_tracker(src / "weights.pth", yaml_path, device="cpu")
    assert (
        on_cpu.batch_size == 1
    )  # not the YAML's BATCH_INFER_LEN: single frames are faster on a CPU
    assert on_cpu.detector.cfg.batch_infer_len > 1
    with pytest.raises(ValueError, match="batch_size must be a positive int; got 0"):
        load_tracker(src / "weights.pth", yaml_path, batch_size=0)
