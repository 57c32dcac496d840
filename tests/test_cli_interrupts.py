"""How `uvosam segment` / `rerender` end when stopped (Ctrl-C, SIGTERM) or failing, in a fresh `--out` or one that
holds an earlier result: one line, the exit code a shell expects, the earlier result as it was."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from doubles import MovingBoxTracker
from run_helpers import run_clip, snapshot

import uvosam_cli
import uvosam_cli.segment
from uvosam.pipeline import UVOSAM
from uvosam.segmenter import BoxPromptSegmenter

TESTS = Path(__file__).parent


@pytest.fixture()
def tiny_models(monkeypatch, tiny_sam_model):
    def tracker(fail_at=None, error=None):
        kwargs = {"fail_at": fail_at} if error is None else {"fail_at": fail_at, "error": error}
        pipe = UVOSAM(MovingBoxTracker(num_objects=2, **kwargs), BoxPromptSegmenter(tiny_sam_model))
        monkeypatch.setattr(uvosam_cli.segment, "load_pipeline", lambda args: pipe)

    tracker()
    return tracker


def _segment(source, out, *extra):
    return uvosam_cli.main(["segment", str(source), "--out", str(out), "--sam", "vit_b", *extra])


def _ctrl_c():
    raise KeyboardInterrupt


def test_ctrl_c_mid_run_keeps_the_earlier_result_and_says_so_in_one_line(
    tmp_path, tiny_models, capsys
):
    out = tmp_path / "out"
    assert _segment(run_clip(tmp_path / "clip.mp4"), out, "--cache") == 0
    before = snapshot(out)
    capsys.readouterr()
    tiny_models(fail_at=3, error=_ctrl_c)  # the same stem, another clip: Ctrl-C at its 4th frame
    code = _segment(run_clip(tmp_path / "b" / "clip.mp4", num_frames=12, seed=9), out)
    err = capsys.readouterr().err
    assert code == 130 and snapshot(out) == before
    assert err.splitlines()[-1] == (
        f"uvosam segment: interrupted; nothing was written: {out} is as it was (an earlier result there is kept)"
    )
    assert "Traceback" not in err and "KeyboardInterrupt" not in err


def test_ctrl_c_in_a_fresh_out_removes_the_folder_it_made(tmp_path, tiny_models, capsys):
    out = tmp_path / "new" / "out"
    tiny_models(fail_at=2, error=_ctrl_c)
    code = _segment(run_clip(tmp_path / "clip.mp4"), out)
    err = capsys.readouterr().err
    assert code == 130 and not (tmp_path / "new").exists()
    assert err.strip().splitlines()[-1] == "uvosam segment: interrupted; nothing was written"
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # main put back the handler it set
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # Ctrl-C's too


def test_an_error_gives_its_traceback_with_v_only(tmp_path, tiny_models, capsys):
    """An internal error (a RuntimeError of the model here) was one line even with -v."""
    tiny_models(fail_at=1)
    source = run_clip(tmp_path / "clip.mp4")
    assert _segment(source, tmp_path / "out") == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "error: MovingBoxTracker failure" in err
    assert not (tmp_path / "out").exists()  # made by the run, left empty: gone
    assert uvosam_cli.main(["-v", "segment", str(source), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert (
        "Traceback (most recent call last)" in err
        and "RuntimeError: MovingBoxTracker failure" in err
    )
    assert err.splitlines()[-1] == "uvosam segment: error: MovingBoxTracker failure"


def test_a_run_of_another_source_says_it_replaces_that_result(tmp_path, tiny_models, capsys):
    out = tmp_path / "out"
    assert _segment(run_clip(tmp_path / "clip.mov"), out) == 0
    capsys.readouterr()
    assert _segment(run_clip(tmp_path / "clip.mp4", num_frames=5), out) == 0
    err = capsys.readouterr().err
    assert f"note: {out} holds the results of clip.mov; this run of clip.mp4 replaces them" in err


def test_an_output_that_is_the_input_is_refused_before_the_models_load(tmp_path, no_models, capsys):
    source = run_clip(tmp_path / ("A" * 80 + "_overlay.mp4"))
    before = source.read_bytes()
    assert _segment(source, tmp_path) == 2
    err = capsys.readouterr().err
    assert f"would replace {source}, which is the input {source}" in err
    assert source.read_bytes() == before


SCRIPT = """
import sys
sys.path.insert(0, {tests!r})
from doubles import MovingBoxTracker
import uvosam_cli, uvosam_cli.segment
from uvosam.pipeline import UVOSAM
from uvosam.segmenter import BoxPromptSegmenter
from uvosam.testing import tiny_sam
pipe = UVOSAM(MovingBoxTracker(num_objects=2, delay_s={delay}), BoxPromptSegmenter(tiny_sam()))
uvosam_cli.segment.load_pipeline = lambda args: pipe
sys.exit(uvosam_cli.main(["segment", {source!r}, "--out", {out!r}, "--sam", "vit_b"]))
"""


def test_a_real_sigterm_to_the_command_keeps_the_earlier_result(tmp_path, tiny_models):
    """The command as a process, stopped by `kill` while it writes frames; a rerun's staging folder goes with it."""
    out = tmp_path / "out"
    assert _segment(run_clip(tmp_path / "clip.mp4"), out) == 0
    before = snapshot(out)
    source = run_clip(tmp_path / "b" / "clip.mp4", num_frames=60, seed=9)
    script = SCRIPT.format(tests=str(TESTS), delay=0.1, source=str(source), out=str(out))
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(TESTS.parent), os.environ.get("PYTHONPATH", "")]),
    }
    proc = subprocess.Popen(
        [sys.executable, "-c", script], stderr=subprocess.PIPE, text=True, env=env
    )
    deadline = time.monotonic() + 60
    while not any(p.name.startswith(".uvosam-run-") for p in out.iterdir()):
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    time.sleep(1.0)  # some frames into the staging folder
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert err.splitlines()[-1].startswith("uvosam segment: interrupted; nothing was written: ")
    assert snapshot(out) == before


def test_a_full_disk_names_the_folder_and_what_is_left(tmp_path, tiny_models, capsys):
    """It said only "[Errno 28] No space left on device" (PIL saving a DAVIS PNG: no file name)."""
    out = tmp_path / "out"
    assert _segment(run_clip(tmp_path / "clip.mp4"), out) == 0
    before = snapshot(out)
    capsys.readouterr()
    tiny_models(fail_at=2, error=lambda: OSError(28, "No space left on device"))
    assert _segment(run_clip(tmp_path / "b" / "clip.mp4", seed=9), out) == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"uvosam segment: error: No space left on device ({out}) (free some space, or pass another --out); "
        f"nothing was written: {out} is as it was (an earlier result there is kept)"
    )
    assert snapshot(out) == before


def test_a_run_of_another_video_says_what_it_replaces_and_keeps_the_rest(
    tmp_path, tiny_models, capsys
):
    out = tmp_path / "out"
    assert _segment(run_clip(tmp_path / "a.mp4"), out, "--cache") == 0
    capsys.readouterr()
    assert _segment(run_clip(tmp_path / "b.mp4", num_frames=5), out) == 0
    err = capsys.readouterr().err
    assert (
        f"note: {out} holds the results of a.mp4; this run of b.mp4 keeps its videos, zip and per-video "
        f"exports, and replaces the files at the root of {out / 'export'} (README.txt, run.json, the tables "
        "and the timeline: they describe the folder's last run) and its mask cache (cache/) when it has finished"
    ) in err
    for name in ("a_overlay.mp4", "a_uvosam.zip", "b_overlay.mp4", "b_uvosam.zip"):
        assert (out / name).is_file(), name
    assert len(list((out / "export" / "davis" / "a").glob("*.png"))) == 8
    assert not (out / "cache").exists()


def test_a_segment_into_an_out_another_run_writes_to_is_refused_before_the_models_load(
    tmp_path, no_models, capsys
):
    from uvosam.job_locks import FolderLock

    out = tmp_path / "out"
    held = FolderLock(out)  # as another run's, in this process or another
    try:
        assert _segment(run_clip(tmp_path / "clip.mp4"), out) == 2
    finally:
        held.release()
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"uvosam segment: error: another uvosam run is writing to {out}; wait for it or pass another folder"
    )
    assert list(out.iterdir()) == []


def _stopped_in_renames(monkeypatch, *, fail_moving_in):
    """``os.replace`` sending this process a SIGTERM at the promotion's first rename (moving the earlier result's
    first entry aside); with ``fail_moving_in``, failing (EIO) on the first new entry moved in instead, and sending
    a SIGTERM at each rename that puts the earlier result back."""
    replace, sent = os.replace, []

    def renamed(src, dst):
        src, dst = Path(src), Path(dst)
        into_staging = any(p.startswith(".uvosam-run-") for p in dst.parts)
        from_staging = any(p.startswith(".uvosam-run-") for p in src.parts)
        if fail_moving_in and from_staging and not into_staging and src.parent.name != ".replaced":
            raise OSError(5, "Input/output error (simulated)")
        replace(src, dst)
        putting_back = src.parent.name == ".replaced"
        if putting_back if fail_moving_in else dst.parent.name == ".replaced" and not sent:
            sent.append(dst)
            os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(os, "replace", renamed)
    return sent


def test_a_sigterm_during_the_renames_waits_for_them(tmp_path, tiny_models, monkeypatch, capsys):
    """A stop landing in the renames that replace the earlier result lets them end: the new result is whole."""
    out = tmp_path / "out"
    assert _segment(run_clip(tmp_path / "clip.mp4"), out, "--cache") == 0
    sent = _stopped_in_renames(monkeypatch, fail_moving_in=False)
    assert (
        _segment(run_clip(tmp_path / "b" / "clip.mp4", num_frames=5, seed=9), out)
        == 128 + signal.SIGTERM
    )
    monkeypatch.undo()
    said = capsys.readouterr().err
    assert len(sent) == 1 and "Traceback" not in said
    # it said "nothing was written: out is as it was" of the new result it had moved in
    assert (
        said.splitlines()[-1]
        == f"uvosam segment: interrupted once it had finished: its result is in {out}"
    )
    assert len(list((out / "export" / "davis" / "clip").glob("*.png"))) == 5
    assert (out / "clip_overlay.mp4").is_file() and (out / "clip_uvosam.zip").is_file()
    assert sorted(p.name for p in out.iterdir()) == [
        "clip_overlay.mp4",
        "clip_uvosam.zip",
        "export",
    ]


def test_a_sigterm_while_the_earlier_result_is_put_back_waits_for_it(
    tmp_path, tiny_models, monkeypatch, capsys
):
    """A second stop in the renames that put the earlier result back cut them, and the job's end deleted the
    staging folder with the earlier result's files still in it."""
    out = tmp_path / "out"
    assert _segment(run_clip(tmp_path / "clip.mp4"), out, "--cache") == 0
    before = snapshot(out)
    capsys.readouterr()
    sent = _stopped_in_renames(monkeypatch, fail_moving_in=True)
    assert (
        _segment(run_clip(tmp_path / "b" / "clip.mp4", num_frames=5, seed=9), out)
        == 128 + signal.SIGTERM
    )
    monkeypatch.undo()
    assert len(sent) > 1 and snapshot(out) == before
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"uvosam segment: interrupted; nothing was written: {out} is as it was (an earlier result there is kept)"
    )
