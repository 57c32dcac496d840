"""How `uvosam segment` / `rerender` end when stopped (Ctrl-C, SIGTERM) or failing, in a fresh `--out` or one that
holds an earlier result: one line, the exit code a shell expects, the earlier result as it was."""

import errno
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from doubles import OUT_OF_MEMORY, MovingBoxTracker
from proc import run_with_gone_reader
from run_helpers import run_clip, snapshot

import uvosam_cli
import uvosam_cli.info
import uvosam_cli.segment
from uvosam.pipeline import UVOSAM
from uvosam.prefetch import MODELS_THREAD, prefetch
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


@pytest.fixture()
def terminal_sigint():
    """SIGINT handled as in a terminal (``signal.default_int_handler``) during the test, the old handler put back
    after: a shell that starts pytest as a background job (``pytest ... &``, ``nohup``) has SIGINT ignored, and
    then Python sets no handler of its own (which ``signals_as_interrupts`` rightly leaves alone)."""
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, before)


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


def test_ctrl_c_in_a_fresh_out_removes_the_folder_it_made(
    tmp_path, tiny_models, capsys, terminal_sigint
):
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
    """An internal error (a RuntimeError of the model here) was one line even with -v. It is one line without -v,
    which says how to get the traceback, and exit code 1: not one of uvosam's refusals (exit code 2)."""
    tiny_models(fail_at=1)
    source = run_clip(tmp_path / "clip.mp4")
    assert _segment(source, tmp_path / "out") == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and "error: MovingBoxTracker failure (run with -v" in err
    assert not (tmp_path / "out").exists()  # made by the run, left empty: gone
    assert uvosam_cli.main(["-v", "segment", str(source), "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert (
        "Traceback (most recent call last)" in err
        and "RuntimeError: MovingBoxTracker failure" in err
    )
    assert (
        err.splitlines()[-1]
        == f"uvosam segment: error: MovingBoxTracker failure {uvosam_cli.MAYBE_A_BUG}"
    )


@pytest.mark.parametrize(
    "error",
    list(OUT_OF_MEMORY.values()),
    ids=list(OUT_OF_MEMORY),
)
def test_out_of_memory_is_one_line_saying_what_to_lower(error, tmp_path, tiny_models, capsys):
    """torch's out-of-memory error is a RuntimeError: after the errors were typed it was told as a possible bug (exit
    1, "if this looks like a bug, please report it"), and numpy's MemoryError gave a traceback; it is the machine's
    limit: what to lower, exit 2."""
    tiny_models(fail_at=1, error=error)
    assert _segment(run_clip(tmp_path / "clip.mp4"), tmp_path / "out") == 2
    assert (
        capsys.readouterr().err == f"uvosam segment: error: {error()} {uvosam_cli.OUT_OF_MEMORY}\n"
    )


def test_a_set_up_that_cannot_do_it_is_a_refusal_not_a_bug(tmp_path, tiny_models, capsys):
    """An ffmpeg too old, ``UVOSAM_MSDA=triton`` where the kernel cannot run, a failed ``torch.compile``: the message
    says what to change (``uvosam.SetupError``); they were told as possible bugs, exit 1."""
    from uvosam.errors import SetupError

    tiny_models(
        fail_at=1, error=lambda: SetupError("ffmpeg 4.4.2 (/usr/bin/ffmpeg) is too old: ...")
    )
    assert _segment(run_clip(tmp_path / "clip.mp4"), tmp_path / "out") == 2
    assert (
        capsys.readouterr().err
        == "uvosam segment: error: ffmpeg 4.4.2 (/usr/bin/ffmpeg) is too old: ...\n"
    )


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
import signal, sys, time
sys.path.insert(0, {tests!r})
import torch
from doubles import MovingBoxSession, MovingBoxTracker
import uvosam_cli, uvosam_cli.segment
from uvosam.pipeline import UVOSAM
from uvosam.prefetch import MODELS_THREAD, prefetch
from uvosam.segmenter import BoxPromptSegmenter
from uvosam.testing import tiny_sam
signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal, also where this runs in the background
push = MovingBoxSession.push
def busy_push(self, frame):  # torch busy for busy_s in each push: a model in the middle of its frame
    end, a = time.monotonic() + {busy}, torch.ones(64, 64)
    while time.monotonic() < end:
        a = (a @ a).clamp(max=1)
    return push(self, frame)
MovingBoxSession.push = busy_push
pipe = UVOSAM(MovingBoxTracker(num_objects=2, delay_s={delay}), BoxPromptSegmenter(tiny_sam()))
uvosam_cli.segment.load_pipeline = lambda args: pipe
sys.exit(uvosam_cli.main(["segment", {source!r}, "--out", {out!r}, "--sam", "vit_b"]))
"""


def _command(script: str, **popen) -> subprocess.Popen:
    """``script`` in a fresh Python that imports this checkout."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(TESTS.parent), os.environ.get("PYTHONPATH", "")]),
        **popen.pop("env", {}),
    }
    return subprocess.Popen([sys.executable, "-c", script], text=True, env=env, **popen)


def _staging_started(proc: subprocess.Popen, out: Path) -> None:
    deadline = time.monotonic() + 60
    while not any(p.name.startswith(".uvosam-run-") for p in out.iterdir()):
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)


def test_a_real_sigterm_to_the_command_keeps_the_earlier_result(tmp_path, tiny_models):
    """The command as a process, stopped by `kill` while it writes frames; a rerun's staging folder goes with it."""
    out = tmp_path / "out"
    assert _segment(run_clip(tmp_path / "clip.mp4"), out) == 0
    before = snapshot(out)
    source = run_clip(tmp_path / "b" / "clip.mp4", num_frames=60, seed=9)
    script = SCRIPT.format(tests=str(TESTS), delay=0.1, busy=0, source=str(source), out=str(out))
    proc = _command(script, stderr=subprocess.PIPE)
    _staging_started(proc, out)
    time.sleep(1.0)  # some frames into the staging folder
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert err.splitlines()[-1].startswith("uvosam segment: interrupted; nothing was written: ")
    assert snapshot(out) == before


def test_a_second_signal_while_the_command_stops_only_says_so(tmp_path, tiny_models):
    """A second Ctrl-C while a stopped `segment` waited for its models' thread aborted it: "terminate called
    without an active exception", exit 134 (the thread was still in torch when the interpreter exited).

    Ctrl-C first, then SIGTERM: two signals that reach an interpreter busy in C code both wait for its next Python
    step, which runs their handlers in signal-number order (SIGINT, 2, first), whatever order they were sent in.
    Sent this way round, the first sent is the first handled however loaded the machine is (143 of a SIGTERM alone:
    ``test_a_real_sigterm_to_the_command_keeps_the_earlier_result``)."""
    out = tmp_path / "out"
    assert _segment(run_clip(tmp_path / "clip.mp4"), out, "--cache") == 0
    before = snapshot(out)
    source = run_clip(tmp_path / "b" / "clip.mp4", num_frames=30, seed=9)
    script = SCRIPT.format(tests=str(TESTS), delay=0, busy=1.5, source=str(source), out=str(out))
    proc = _command(script, stderr=subprocess.PIPE)
    _staging_started(proc, out)
    time.sleep(0.5)  # the models' thread is in a frame's torch work for most of each 1.5 s
    proc.send_signal(signal.SIGINT)
    time.sleep(0.3)
    proc.send_signal(signal.SIGTERM)  # while it stops
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGINT, err  # as the first signal said
    lines = err.splitlines()
    assert lines[-1] == (
        f"uvosam segment: interrupted; nothing was written: {out} is as it was (an earlier result there is kept)"
    )
    assert f"uvosam segment: still stopping (it cleans up first; kill -KILL {proc.pid}" in err
    assert "terminate called" not in err and "Traceback" not in err
    assert snapshot(out) == before  # and no staging folder left


def test_on_windows_a_second_signal_names_taskkill_to_end_the_command_at_once(monkeypatch, capfd):
    """Windows has no ``kill -KILL``: the line a second Ctrl-C prints names ``taskkill /F /PID`` there."""
    import uvosam_cli.interrupts

    monkeypatch.setattr("sys.platform", "win32")
    stops = uvosam_cli.interrupts._Stops("segment")
    stops.stopping = True  # a first signal came
    stops(signal.SIGINT, None)
    assert capfd.readouterr().err == (
        f"uvosam segment: still stopping (it cleans up first; taskkill /F /PID {os.getpid()} ends it at once, "
        "leaving any unfinished files)\n"
    )


ENDED: list[float] = []
"""When each ``_frames`` ended (closed)."""


def _frames(seconds: float) -> Iterator[int]:
    try:
        yield 0
        time.sleep(seconds)  # the frame under way when the run is stopped
        yield 1
    finally:
        ENDED.append(time.monotonic())


def _stopped_run(seconds: float) -> None:
    """A run's models' thread (``uvosam.prefetch``) closed by a stop (its 5 s wait for it cut to 0.1 s in these
    tests) while it makes a frame that takes ``seconds``."""
    items = prefetch(_frames(seconds), depth=1, name=MODELS_THREAD)
    assert next(items) == 0
    items.close()


@pytest.mark.parametrize(
    ("platform", "kill"), [("linux", "kill -KILL {pid}"), ("win32", "taskkill /F /PID {pid}")]
)
def test_a_stopped_command_ends_after_its_models_thread_and_says_it_waits(
    monkeypatch, capsys, platform, kill
):
    """A stop waited 5 s for the models' thread (``uvosam.prefetch``), then the command ended with the thread still
    in its frame (SAM ViT-H takes 17 s a frame on a CPU): in torch at exit, it aborted the interpreter (exit 134).
    The command waits for it, saying so when it takes over a second (here 0.2 s), and how to end it at once: on
    Windows, which has no ``kill``, with ``taskkill``."""
    import uvosam.prefetch
    import uvosam_cli.interrupts

    monkeypatch.setattr("sys.platform", platform)
    monkeypatch.setattr(uvosam.prefetch, "CLOSE_WAIT_S", 0.1)
    monkeypatch.setattr(uvosam_cli.interrupts, "SAY_WAIT_AFTER_S", 0.2)
    ENDED.clear()

    def command(args):
        _stopped_run(0.6)
        raise KeyboardInterrupt

    monkeypatch.setattr(uvosam_cli.info, "run", command)
    assert uvosam_cli.main(["info"]) == 130
    assert ENDED  # the thread had ended when main returned
    waits = (
        "uvosam info: stopping: waiting for the frame under way to finish (at most 300 s; "
        f"{kill.format(pid=os.getpid())} ends it at once)"
    )
    assert capsys.readouterr().err.splitlines()[-2:] == [waits, "uvosam info: interrupted"]


def test_a_stopped_command_waits_a_bounded_time_for_its_own_threads_only(monkeypatch, capsys):
    """The wait had no limit, and it took in any run thread started while the command ran: another caller's in
    this process (the app's jobs) too. Now only those this command's run started, up to ``EXIT_WAIT_S``."""
    import threading

    import uvosam.prefetch
    import uvosam_cli.interrupts

    monkeypatch.setattr(uvosam.prefetch, "CLOSE_WAIT_S", 0.1)
    monkeypatch.setattr(uvosam_cli.interrupts, "EXIT_WAIT_S", 0.5)
    ENDED.clear()
    others = threading.Thread(target=_stopped_run, args=(2.0,))

    def command(args):
        others.start()  # another caller's run, started while the command runs
        others.join()
        raise KeyboardInterrupt

    monkeypatch.setattr(uvosam_cli.info, "run", command)
    start = time.monotonic()
    assert uvosam_cli.main(["info"]) == 130
    assert time.monotonic() - start < 1.5 and not ENDED  # its frame under way: not waited for
    assert capsys.readouterr().err.splitlines()[-1] == "uvosam info: interrupted"

    def own(args):
        _stopped_run(2.0)
        raise KeyboardInterrupt

    monkeypatch.setattr(uvosam_cli.info, "run", own)
    start = time.monotonic()
    assert uvosam_cli.main(["info"]) == 130
    assert 0.5 <= time.monotonic() - start < 1.5 and not ENDED  # waited 0.5 s, no more
    assert capsys.readouterr().err.splitlines()[-1] == "uvosam info: interrupted"
    for thread in threading.enumerate():
        if thread.name == MODELS_THREAD:
            thread.join()  # not left to later tests


def test_a_full_disk_names_the_folder_and_what_is_left(tmp_path, tiny_models, capsys):
    """It said only "[Errno 28] No space left on device" (PIL saving a DAVIS PNG: no file name)."""
    out = tmp_path / "out"
    assert _segment(run_clip(tmp_path / "clip.mp4"), out) == 0
    before = snapshot(out)
    capsys.readouterr()
    tiny_models(fail_at=2, error=lambda: OSError(28, "No space left on device"))
    assert _segment(run_clip(tmp_path / "b" / "clip.mp4", seed=9), out) == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"uvosam segment: error: {out} is out of disk space (free some space, or pass another --out); "
        f"nothing was written: {out} is as it was (an earlier result there is kept)"
    )
    assert snapshot(out) == before


FAILED_WRITES = {
    "quota": (
        OSError(errno.EDQUOT, "Disk quota exceeded"),
        "the disk quota of {out} is used up (free some space, or pass another --out)",
    ),
    "read-only": (
        OSError(errno.EROFS, "Read-only file system"),
        "{out} is on a read-only file system (pass another --out)",
    ),
    "permission in the run's files": (
        PermissionError(errno.EACCES, "Permission denied", "{out}/.uvosam-run-1/a.png"),
        "no permission to write in {out} (pass another --out)",
    ),
    "full elsewhere": (
        OSError(errno.ENOSPC, "No space left on device", "{tmp}/cache/x"),
        "{tmp}/cache is out of disk space (free some space, or pass another --out)",
    ),
    # an input or a model's file, which is read: no write advice
    "permission to read": (
        PermissionError(errno.EACCES, "Permission denied", "{tmp}/sam.pth"),
        "Permission denied ({tmp}/sam.pth)",
    ),
}


@pytest.mark.parametrize("case", list(FAILED_WRITES))
def test_a_failed_write_is_worded_as_the_library_words_it_with_advice(tmp_path, case):
    """The command line had its own words for a full disk (``uvosam.errors.write_problem`` words the library's and
    the app's); a used-up quota, a read-only file system or a missing permission got none ("error: Read-only file
    system (out)")."""
    from uvosam_cli.interrupts import OutputFolder

    error, words = FAILED_WRITES[case]
    out = tmp_path / "out"
    if error.filename is not None:
        error.filename = error.filename.format(out=out, tmp=tmp_path)
    assert OutputFolder(out).error_line(error) == (
        f"error: {words.format(out=out, tmp=tmp_path)}; nothing was written"
    )


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


def test_a_reader_that_went_ends_the_command_as_sigpipe_does_and_keeps_its_result(tmp_path):
    """`uvosam segment ... | head -1` said "error: Broken pipe (out); nothing was written" (exit 2) of a run whose
    files were all written."""
    out = tmp_path / "out"
    source = run_clip(tmp_path / "clip.mp4", num_frames=4)
    script = SCRIPT.format(tests=str(TESTS), delay=0, busy=0, source=str(source), out=str(out))
    done = run_with_gone_reader(["-c", script], env={"PYTHONUNBUFFERED": "1"})
    assert done.returncode == 141, done.stderr  # 128 + SIGPIPE, as a shell shows `yes | head -1`
    assert "error" not in done.stderr and "Traceback" not in done.stderr
    assert "Exception ignored" not in done.stderr
    assert len(list((out / "export" / "davis" / "clip").glob("*.png"))) == 4
    assert (out / "clip_overlay.mp4").is_file() and (out / "clip_uvosam.zip").is_file()


def test_a_ctrl_c_while_the_command_starts_is_one_line(monkeypatch, capsys):
    """A Ctrl-C in the seconds the subcommands' imports take printed a 26-line traceback of the imports."""

    def imports(name):
        raise KeyboardInterrupt

    monkeypatch.setattr(uvosam_cli.importlib, "import_module", imports)
    try:
        code = uvosam_cli.main(["info"])
    except KeyboardInterrupt:
        code = "the KeyboardInterrupt went through"
    assert code == 130
    assert capsys.readouterr().err == "uvosam: interrupted\n"


def test_the_command_line_imports_no_torch_before_main():
    """`import uvosam_cli` (the console script's first step) imported torch, before main could catch a Ctrl-C."""
    done = subprocess.run(
        [sys.executable, "-c", "import sys, uvosam_cli; print(sorted({'torch', 'numpy'} & set(sys.modules)))"],
        capture_output=True, text=True, check=True, cwd=TESTS.parent,
    )  # fmt: skip
    assert done.stdout.strip() == "[]"


def test_a_ctrl_c_while_the_output_folder_is_looked_at_is_one_line(
    monkeypatch, tmp_path, no_models, capsys
):
    """The output folder was looked at before the command's ``try``: a Ctrl-C or SIGTERM in that moment (seen 3 times
    in 11 loaded runs) printed a traceback from ``made_folders``."""
    from uvosam import made_folders

    def interrupted(path):
        raise KeyboardInterrupt

    monkeypatch.setattr(made_folders, "exists", interrupted)
    try:
        code = uvosam_cli.main(
            ["segment", str(tmp_path / "clip.mp4"), "--out", str(tmp_path / "out")]
        )
    except KeyboardInterrupt:  # pytest would take it as the user's Ctrl-C and stop the whole run
        pytest.fail("the Ctrl-C went through main (a traceback)")
    assert code == 130
    assert capsys.readouterr().err == "uvosam segment: interrupted\n"
    assert not (tmp_path / "out").exists()
