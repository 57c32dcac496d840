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
