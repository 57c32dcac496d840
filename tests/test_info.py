import errno
import importlib.metadata
import os
import platform

from proc import run_with_gone_reader

import uvosam_cli
from uvosam import environment
from uvosam.code_identity import PACKAGE_DIR, code_identity


def test_info_lists_device_backend_versions_and_weights(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("UVOSAM_CHECKPOINTS", str(tmp_path))
    (tmp_path / "sam_vit_b_01ec64.pth").write_bytes(b"x")
    assert uvosam_cli.main(["info"]) == 0
    out = capsys.readouterr().out
    assert "\ndevice: cpu" in out and "msda: gather on CPU" in out
    assert f"\nuvosam code: {code_identity()} (from {PACKAGE_DIR})\n" in out
    assert f"sam_vit_b: {tmp_path / 'sam_vit_b_01ec64.pth'}" in out
    assert "idol-ytvis19-r50: not downloaded yet" in out
    assert environment.package_versions()["torch"].startswith("2.")


def test_info_prints_its_report_when_the_checkpoints_folder_cannot_be_searched(
    capsys, tmp_path, monkeypatch
):
    """It died with "Permission denied (.../sam_vit_b_01ec64.pth)" (``Path.is_file`` raises EACCES); tests run as
    root, who may search any folder: ``os.stat`` refuses it here."""
    ckdir = tmp_path / "checkpoints"
    ckdir.mkdir()
    monkeypatch.setenv("UVOSAM_CHECKPOINTS", str(ckdir))
    stat = os.stat

    def no_search(path, *args, **kwargs):
        if os.path.dirname(os.fspath(path)) == str(ckdir):
            raise PermissionError(errno.EACCES, "Permission denied", os.fspath(path))
        return stat(path, *args, **kwargs)

    monkeypatch.setattr(os, "stat", no_search)
    assert uvosam_cli.main(["info"]) == 0
    out = capsys.readouterr().out
    assert "\ndevice: cpu" in out
    assert (
        f"checkpoints folder: {ckdir} (cannot read: Permission denied; its weight files are not listed)\n"
        in out
    )
    assert "sam_vit_b: not downloaded yet" in out


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


def test_info_says_what_a_bug_report_needs_and_never_a_token(capsys, tmp_path, monkeypatch):
    """It lacked Python, the OS, the ffmpeg it runs, torch's CUDA build, huggingface_hub's and Pillow's versions and
    the settings (HF_HUB_OFFLINE, UVOSAM_*)."""
    from uvosam.ffmpeg_binary import ffmpeg_exe

    monkeypatch.setenv("UVOSAM_CHECKPOINTS", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("UVOSAM_MAX_SIDE", "640")
    monkeypatch.setenv("HF_TOKEN", "hf_secret_value")
    assert uvosam_cli.main(["info"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].startswith(f"python: {platform.python_version()} (")
    assert f"platform: {platform.platform()}" in lines
    assert any(line.startswith("torch CUDA build: ") for line in lines)
    assert f"ffmpeg: {ffmpeg_exe()} (version " in out
    for name in ("huggingface_hub", "Pillow"):
        assert f"{name}: {importlib.metadata.version(name)}" in lines
    settings = next(line for line in lines if line.startswith("settings: "))
    assert "HF_HUB_OFFLINE=1" in settings and "UVOSAM_MAX_SIDE=640" in settings
    assert f"UVOSAM_CHECKPOINTS={tmp_path}" in settings and "HF_TOKEN=(set, not shown)" in settings
    assert "hf_secret_value" not in out


def test_info_to_a_reader_that_went_ends_quietly_with_141():
    """`uvosam info | true`: "Exception ignored ... BrokenPipeError" at exit, status 120."""
    done = run_with_gone_reader(["-m", "uvosam_cli", "info"])
    assert (done.returncode, done.stderr) == (141, "")
