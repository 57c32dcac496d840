import uvosam_cli
from uvosam import environment


def test_info_lists_device_backend_versions_and_weights(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("UVOSAM_CHECKPOINTS", str(tmp_path))
    (tmp_path / "sam_vit_b_01ec64.pth").write_bytes(b"x")
    assert uvosam_cli.main(["info"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("device: cpu") and "msda: gather on CPU" in out
    assert f"sam_vit_b: {tmp_path / 'sam_vit_b_01ec64.pth'}" in out
    assert "idol-ytvis19-r50: not downloaded yet" in out
    assert environment.package_versions()["torch"].startswith("2.")


def test_info_says_a_weight_file_of_the_wrong_size_is_not_the_released_one(
    capsys, tmp_path, monkeypatch
):
    """A wrong-size OVIS_R50_294AP.pth was listed as present, as a good one is, though the loader refuses it."""
    monkeypatch.setenv("UVOSAM_CHECKPOINTS", str(tmp_path))
    (tmp_path / "OVIS_R50_294AP.pth").write_bytes(b"x" * 1000)
    (tmp_path / "YTVIS19_R50_502AP.pth").write_bytes(b"x")  # no published size: nothing to compare
    assert uvosam_cli.main(["info"]) == 0
    out = capsys.readouterr().out
    assert (
        f"idol-ovis-r50: {tmp_path / 'OVIS_R50_294AP.pth'}: WRONG SIZE, 1,000 bytes where the released file has "
        "172,791,667, so loading it is refused" in out
    )
    assert f"idol-ytvis19-r50: {tmp_path / 'YTVIS19_R50_502AP.pth'}\n" in out


def test_info_says_a_wrong_size_hf_cache_copy_is_downloaded_again_not_refused(
    tmp_path, monkeypatch
):
    """It said "loading it is refused" of an HF-cache copy too, which hub.resolve deletes and downloads again."""
    monkeypatch.setenv("UVOSAM_CHECKPOINTS", str(tmp_path / "checkpoints"))
    cached = tmp_path / "hf" / "OVIS_R50_294AP.pth"
    cached.parent.mkdir()
    cached.write_bytes(b"x" * 1000)
    said = environment.weight_state("idol-ovis-r50", cached)
    assert said.startswith(f"{cached}: WRONG SIZE, 1,000 bytes") and "refused" not in said
    assert "a load deletes this Hugging Face cache copy and downloads it again" in said
