"""The app as a Space host meets it: its settings read from the environment (and refused), its start-up (the models
loaded at start, the banner, the page built from the settings) and its work folders across restarts. Fast: no
server, but one ``python app.py`` stopped with SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

pytest.importorskip("gradio")

from uvosam.job_locks import lock_file
from uvosam_app.settings import AppSettings


@pytest.mark.parametrize(
    ("name", "raw"),
    [
        ("UVOSAM_MAX_SECONDS", "nan"),
        ("UVOSAM_MAX_SECONDS", "NaN"),
        ("UVOSAM_MAX_SECONDS", "inf"),
        ("UVOSAM_MAX_SECONDS", "-inf"),
        ("UVOSAM_MAX_FRAMES", "abc"),
        ("UVOSAM_MAX_SIDE", "0"),
    ],
)
def test_a_limit_that_is_no_number_is_refused_naming_its_variable(name, raw):
    """nan passed the ``<= 0`` check and then disabled the duration limit (every comparison with nan is False)."""
    with pytest.raises(
        ValueError, match=rf"^{name} must be a .*positive \w+; got '{raw}'\. Unset it"
    ):
        AppSettings.from_env({name: raw})


def test_an_unknown_tracker_is_refused_naming_its_variable():
    # the host sets the variable: it comes first
    with pytest.raises(
        ValueError,
        match=r"^UVOSAM_TRACKER \(AppSettings.default_preset\) must be one of \('idol-ytvis19-r50'",
    ):
        AppSettings.from_env({"UVOSAM_TRACKER": "foo"})


@pytest.mark.parametrize(
    ("env", "reason"),
    [
        ({"UVOSAM_MAX_FRAMES": "abc"}, "UVOSAM_MAX_FRAMES must be a positive int; got 'abc'. "),
        ({"UVOSAM_TRACKER": "foo"}, "UVOSAM_TRACKER (AppSettings.default_preset) must be one of "),
        (
            {"UVOSAM_WORK_DIR": "/proc/nope"},
            "UVOSAM_WORK_DIR=/proc/nope cannot be used: the folder cannot be",
        ),
        (
            {"UVOSAM_LOG_LEVEL": "verbose"},
            "UVOSAM_LOG_LEVEL (AppSettings.log_level) must be one of DEBUG, INFO, WARNING, ERROR; got 'verbose'",
        ),
        (
            {"UVOSAM_DEVICE": "mps"},
            "UVOSAM_DEVICE mps: torch finds no Apple GPU (MPS) on this machine; expected ",
        ),
    ],
)
def test_python_app_py_with_a_bad_setting_exits_with_one_line(env, reason, monkeypatch):
    """It exited with a 15-line traceback whose last line said why, before any model loaded; now that line alone
    (a Space's log shows it: Python prints the message of a ``SystemExit`` on stderr), exit status 1."""
    import app as app_module

    loads = []
    monkeypatch.setattr(app_module, "make_loader", loads.append)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit) as ended:
        app_module.main()
    message = ended.value.code
    assert isinstance(message, str) and message.startswith(f"The app did not start: {reason}")
    assert "\n" not in message and not loads


def test_the_device_is_the_hosts_choice_checked_at_start(monkeypatch):
    """UVOSAM_DEVICE: a Mac's GPU (``mps``, which ``auto`` never picks), a second GPU or the CPU on a GPU machine;
    before, the app took CUDA wherever torch found it and the CPU elsewhere, whatever the host wanted."""
    import torch

    import app as app_module

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # a GPU machine
    assert AppSettings.from_env({}).run_device() == "cuda"
    chosen = AppSettings.from_env({"UVOSAM_DEVICE": " CPU "})
    assert chosen.device == chosen.run_device() == "cpu"
    assert app_module.make_loader(chosen).device == "cpu"
    # the CPU by its index too: the description's and the footer's CPU notes compare with "cpu"
    assert AppSettings.from_env({"UVOSAM_DEVICE": "cpu:0"}).run_device() == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    refused = {
        "cuda": r"^UVOSAM_DEVICE cuda: torch finds no CUDA GPU on this machine .*\(those usable here\)\. Unset it "
        r"\(AppSettings\.device\) for auto\.$",
        "gpu": r"^UVOSAM_DEVICE gpu: that is not a device name; expected one of auto, cpu \(those usable here\)",
    }
    for device, message in refused.items():
        with pytest.raises(ValueError, match=message):
            AppSettings.from_env({"UVOSAM_DEVICE": device})
    from uvosam_app import settings as app_settings

    monkeypatch.setattr(app_settings, "zero_gpu", lambda: True)
    with pytest.raises(
        ValueError, match=r"must be auto or cuda on ZeroGPU \(its GPU is CUDA\); got 'cpu'"
    ):
        AppSettings.from_env({"UVOSAM_DEVICE": "cpu"})
    assert AppSettings.from_env({"UVOSAM_DEVICE": "cuda"}).device == "cuda"


def test_a_work_folder_that_cannot_be_used_is_refused_when_the_settings_are_read(tmp_path):
    """UVOSAM_WORK_DIR=/proc/nope failed with a bare FileNotFoundError from the first session's folder, after the
    models had loaded."""
    a_file = tmp_path / "a_file"
    a_file.write_text("")
    cases = {
        "/proc/nope": r"the folder cannot be made \(No such file or directory\)",
        str(a_file / "work"): r"the folder cannot be made \(Not a directory\)",
        str(a_file): "it is a file, not a folder",
        "/proc/self": r"nothing can be written in it \(",
    }
    for raw, why in cases.items():
        with pytest.raises(
            ValueError, match=rf"^UVOSAM_WORK_DIR={raw} cannot be used: {why}.*\. Set it to a"
        ):
            AppSettings.from_env({"UVOSAM_WORK_DIR": raw})
    made = AppSettings.from_env({"UVOSAM_WORK_DIR": str(tmp_path / "new" / "work")}).work_root
    assert made == tmp_path / "new" / "work" and made.is_dir() and not any(made.iterdir())


def test_a_limit_of_one_frame_builds_the_page_and_runs_one_frame(tmp_path, tiny_sam_model):
    """UVOSAM_MAX_FRAMES=1 made Max frames a slider from 1 to 1, which Gradio refuses ("Slider minimum must be less
    than maximum."): the app stopped after loading the models (a Space restarted in a loop). Now the page shows 1,
    which it cannot change, and a client asking for more gets 1 frame."""
    from app_helpers import stepped, write_clip
    from doubles import MovingBoxTracker

    import app as app_module
    from uvosam.pipeline import UVOSAM
    from uvosam.segmenter import BoxPromptSegmenter
    from uvosam_app import handlers as app_handlers

    settings = AppSettings.from_env(
        {"UVOSAM_MAX_FRAMES": "1", "UVOSAM_WORK_DIR": str(tmp_path / "w")}
    )
    demo = app_module.build_demo(lambda preset, sam: None, settings=settings)
    box = next(c for c in demo.config["components"] if c["props"].get("elem_id") == "max-frames")
    assert box["type"] == "number" and box["props"]["value"] == 1
    assert box["props"]["interactive"] is False and "1 only" in box["props"]["info"]
    demo.close()

    pipe = UVOSAM(MovingBoxTracker(num_objects=2), BoxPromptSegmenter(tiny_sam_model))
    app = app_handlers.App(lambda preset, sam: pipe, settings)
    clip = str(write_clip(tmp_path / "clip.mp4", 4, 64, 48))
    assert "Run covers the first frame" in app.describe(clip, "idol-ytvis19-r50", "vit_b", 1, 1)
    *_, last = stepped(app.segment(clip, "idol-ytvis19-r50", "vit_b", 0.0, 10, 1, 2, 0, True, True, "overlay",
                                   None, False, None))  # fmt: skip
    assert last[0].startswith("done: 1 frame,")


def _missing(name: str) -> FileNotFoundError:
    """A missing-weights error as the library words it: server paths and the host's commands."""
    return FileNotFoundError(
        f"Weight file '{name}' was not found.\nLooked in:\n  - /srv/ckpt/{name} (checkpoints folder)\n"
        f"  - Hugging Face cache /root/.cache/huggingface/hub\nTo get it, run `hf download some/repo {name}`"
    )


def _page(demo) -> tuple[dict, dict]:
    """(the banner's props, each component's props by label)."""
    components = demo.config["components"]
    banner = next(c["props"] for c in components if c["props"].get("elem_id") == "banner")
    return banner, {c["props"].get("label"): c["props"] for c in components}


def test_an_extra_model_that_did_not_load_gets_no_banner_but_a_note_on_its_choice(tmp_path, caplog):
    """UVOSAM_PRELOAD=vit_l,idol-ovis-r50 without their files: the banner said "Models not loaded" to every visitor
    while the default pair loaded and runs worked. Now the log tells the host; the two choices say it."""
    import app as app_module
    from uvosam.errors import WeightsError

    def get_pipeline(preset, sam):
        if sam == "vit_l":
            raise _missing("sam_vit_l_0b3195.pth")
        if sam == "vit_h":
            raise WeightsError("/srv/ckpt/sam_vit_h_4b8939.pth is not a good copy")
        if preset == "idol-ovis-r50":
            raise RuntimeError("CUDA driver too old")
        return object()

    settings = AppSettings(work_root=tmp_path, preload=("vit_l", "idol-ovis-r50", "vit_h"))
    with caplog.at_level("INFO", logger="uvosam.app"):
        demo = app_module.build_demo(get_pipeline, settings=settings)
    banner, props = _page(demo)
    assert not banner["visible"] and banner["value"] == ""
    assert [label for label, _ in props["Mask model"]["choices"]][:3] == [
        "SAM ViT-B",
        "SAM ViT-L (not installed)",
        "SAM ViT-H (weights unusable)",
    ]
    trackers = {v: label for label, v in props["Tracker preset"]["choices"]}
    assert trackers["idol-ovis-r50"] == "idol-ovis-r50 (failed to load)"
    assert trackers["idol-ytvis19-r50"] == "idol-ytvis19-r50"
    assert "/root/.cache/huggingface/hub" in caplog.text and "CUDA driver too old" in caplog.text
    assert "not a good copy" in caplog.text
    served = "the app serves the default models; not loaded at start (their choices say so)"
    assert f"{served}: vit_l, idol-ovis-r50, vit_h" in caplog.text
    demo.close()


@pytest.mark.parametrize("zero_gpu", [False, True])
def test_the_banner_of_missing_default_weights_tells_visitors_what_is_true_here(
    zero_gpu, tmp_path, caplog
):
    """It showed every visitor server paths and the host's `hf download ...`, and on ZeroGPU said "Run looks for them
    again each time", which it does not there (models load only at start)."""
    import app as app_module

    def get_pipeline(preset, sam):
        raise _missing("sam_vit_b_01ec64.pth")

    settings = AppSettings(work_root=tmp_path, start_models_only=zero_gpu)
    with caplog.at_level("INFO", logger="uvosam.app"):
        demo = app_module.build_demo(get_pipeline, settings=settings)
    banner, props = _page(demo)
    text = banner["value"]
    assert banner["visible"] and text.startswith("### ⚠️ Models not loaded\n")
    assert (
        "This app's host has not installed the weights of its models (idol-ytvis19-r50 + SAM ViT-B) yet"
        in text
    )
    assert "For the host: the server log names the missing files and how to get them." in text
    assert "/srv/ckpt" not in text and ".cache" not in text and "hf download" not in text
    assert "/srv/ckpt/sam_vit_b_01ec64.pth" in caplog.text and "hf download" in caplog.text
    if zero_gpu:
        assert (
            "until the host fixes this and restarts the Space (on ZeroGPU models load only at start)"
            in text
        )
        assert "again" not in text
    else:
        assert "Run answers with an error until they load (it tries again each time)" in text
    assert "(not installed)" not in str(props["Mask model"]["choices"])  # the banner says it
    demo.close()


def test_on_zerogpu_the_footer_lists_as_loaded_only_the_extra_models_that_loaded():
    from uvosam_app.footer import footer_markdown
    from uvosam_app.models import WEIGHTS_MISSING, StartModels

    settings = AppSettings(start_models_only=True, preload=("vit_h", "vit_l"))
    start = StartModels(object(), None, {"vit_l": WEIGHTS_MISSING})
    footer = footer_markdown(lambda preset, sam: None, start, settings)
    assert "(also loaded at start: SAM ViT-H)" in footer


def _dead_pid() -> int:
    """The pid of a process that has ended."""
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def _marked(folder: Path, **changes) -> Path:
    """``folder`` made and marked as the app marks its process's folder: as this process's, but for ``changes``."""
    from uvosam_app import process_folders

    folder.mkdir()
    (folder / process_folders.MARKER).write_text(
        json.dumps({**process_folders._identity(os.getpid()), **changes})
    )
    (folder / "session" / "run-1234").mkdir(parents=True)
    return folder


def test_at_start_only_the_folders_of_earlier_app_processes_now_gone_are_removed(tmp_path):
    """A process killed mid-run left its folder in UVOSAM_WORK_DIR for good (nothing swept earlier processes'
    folders). Now the next start removes them, and only them: not a live server's, not one of another machine
    sharing the folder, not anything the app did not make."""
    from uvosam_app import process_folders

    parent = tmp_path / "work"
    parent.mkdir()
    pid = os.getpid()
    gone = [
        _marked(parent / "uvosam-app-dead", pid=_dead_pid()),
        _marked(parent / "uvosam-app-reused", started=(process_folders._start_time(pid) or 1) - 1),
    ]
    if process_folders._boot_id() is not None:
        gone.append(_marked(parent / "uvosam-app-lastboot", boot="an earlier boot"))
    kept = [
        _marked(parent / "uvosam-app-elsewhere", pid=_dead_pid(), host="another-machine"),
        _marked(parent / "uvosam-app-alive"),  # this process's, as another server's would be
        _marked(
            parent / "uvosam-app-locked", pid=_dead_pid()
        ),  # a pid not seen here (another pid namespace)
        _marked(parent / "my-dead", pid=_dead_pid()),  # not the app's name
        parent / "uvosam-app-unmarked",
        parent / "uvosam-app-garbled",
        parent / "uvosam-app-file",
        parent / "uvosam-app-link",
    ]
    kept[4].mkdir()
    kept[5].mkdir()
    (kept[5] / process_folders.MARKER).write_text("{not json")
    kept[6].write_text("")
    target = _marked(tmp_path / "elsewhere", pid=_dead_pid())
    kept[7].symlink_to(target)
    holder = lock_file(kept[2] / process_folders.MARKER)  # as a live process holds its marker
    try:
        mine = process_folders.process_dir(parent)
        assert sorted(p.name for p in parent.iterdir()) == sorted(p.name for p in [*kept, mine])
        assert (
            mine.name.startswith("uvosam-app-")
            and json.loads((mine / process_folders.MARKER).read_text())["pid"] == pid
        )
        assert process_folders.remove_stale(parent) == [] and mine.is_dir() and target.is_dir()
    finally:
        os.close(holder)
    assert process_folders.remove_stale(parent) == [kept[2]]  # no longer locked, its pid gone


def test_on_windows_no_signal_is_sent_to_tell_a_folders_process_gone_and_the_folder_stays(
    tmp_path, monkeypatch
):
    """Windows' signal 0 is Ctrl-C's (``os.kill(pid, 0)`` sent it to the whole console, the app included) and a pid
    no process has raises no ``ProcessLookupError`` there: the start sends nothing and removes no folder."""
    from uvosam_app import process_folders

    parent = tmp_path / "work"
    parent.mkdir()
    left = _marked(parent / "uvosam-app-dead", pid=_dead_pid())
    monkeypatch.setattr(process_folders.sys, "platform", "win32")
    monkeypatch.setattr(os, "kill", lambda *args: pytest.fail(f"os.kill{args} on Windows"))
    assert process_folders.remove_stale(parent) == [] and left.is_dir()


def test_when_the_server_ends_the_jobs_under_way_stop_after_their_step_and_their_threads_end():
    """After SIGTERM (or Ctrl-C) stopped the server, a run's threads went on inside torch while the interpreter
    exited, which aborted the process ("terminate called without an active exception", exit status 134)."""
    import threading

    from uvosam.job_types import JobProgress
    from uvosam_app import work

    closed = []

    def job():
        model = threading.Thread(target=time.sleep, args=(0.5,), daemon=True, name="uvosam-models")
        model.start()  # a model call under way in the library's thread
        try:
            while True:
                time.sleep(0.05)
                yield JobProgress(frames_done=0, frames_total=1, elapsed_s=0.0)
        finally:
            closed.append(model)

    pump = work.JobPump(job, threading.Semaphore(1)).start()
    assert pump.poll(5)
    started = time.monotonic()
    assert work.stop_jobs(timeout=10) == []
    assert closed and not closed[0].is_alive() and time.monotonic() - started < 5
    assert work.stop_jobs(timeout=10) == []  # none left: returns at once


def test_python_app_py_stopped_by_sigterm_removes_its_folder_and_the_next_start_removes_left_ones(
    tmp_path,
):
    """SIGTERM (a Space's restart) killed the server without its clean-up: its folder, with the runs of its
    sessions, stayed (/tmp/uvosam-app-*, or in UVOSAM_WORK_DIR). Now SIGTERM ends it as Ctrl-C does; and a folder
    left by a process killed outright (SIGKILL) is removed at the next start. No weights: the page is served with
    its banner."""
    from app_helpers import app_process, app_process_env, free_port, wait_for_config

    work_dir = tmp_path / "work"
    work_dir.mkdir()
    left = _marked(work_dir / "uvosam-app-killed", pid=_dead_pid())
    hosts = work_dir / "hosts-notes.txt"
    hosts.write_text("the host's own file")
    port = free_port()
    env = app_process_env(tmp_path, port, work_dir)
    log_path = tmp_path / "app.log"
    with app_process(env, log_path) as proc:
        wait_for_config(f"http://127.0.0.1:{port}", proc, log_path, timeout=120.0)
        assert not left.exists() and hosts.read_text() == "the host's own file"
        (mine,) = work_dir.glob("uvosam-app-*")
        assert json.loads((mine / ".uvosam-app.json").read_text())["pid"] == proc.pid
        (mine / "session" / "run-1234").mkdir(parents=True)  # a run under way
        (mine / "session" / "run-1234" / "part.mp4").write_bytes(b"...")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    assert not mine.exists() and sorted(work_dir.iterdir()) == [hosts]
    log = log_path.read_text(errors="replace")
    assert "Traceback" not in log
    # at the default level (INFO) httpx's line of each request Gradio made to itself at start is left out
    assert " httpx: " not in log and " INFO uvosam.app: removing " in log


def test_an_app_built_without_a_work_folder_removes_the_one_it_made():
    """``App(get_pipeline, AppSettings())`` (no work_root: an embedding program's, the tests') made a temp folder
    that nothing removed: empty ``/tmp/uvosam-app-*`` folders piled up."""
    import gc

    from uvosam_app.handlers import App

    app = App(lambda preset, sam: None, AppSettings())
    root = app.work.root
    assert root.is_dir()
    del app
    gc.collect()
    assert not root.exists()


def test_a_stop_before_gradios_wait_ends_main_as_a_stop_in_it_does(tmp_path, monkeypatch):
    """SIGTERM (or Ctrl-C) that landed while ``launch`` was still starting, before Gradio's own wait caught it
    ("closing server"), escaped ``main``: the process died of SIGINT (exit status -2), not 0 (1 CI run in 2)."""
    import signal

    import gradio as gr

    import app as app_module

    def stopped(*args, **kwargs):
        raise KeyboardInterrupt

    empty = tmp_path / "checkpoints"
    empty.mkdir()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("UVOSAM_CHECKPOINTS", str(empty))
    monkeypatch.setenv("UVOSAM_WORK_DIR", str(tmp_path / "work"))
    monkeypatch.delenv("SPACES_ZERO_GPU", raising=False)
    monkeypatch.setattr(gr.Blocks, "launch", stopped)
    before = signal.getsignal(signal.SIGTERM)
    try:
        app_module.main()
    except (
        KeyboardInterrupt
    ):  # caught here: pytest takes one for the user's Ctrl-C and stops the session
        pytest.fail("a stop while launch was starting escaped main()")
    finally:
        signal.signal(signal.SIGTERM, before)
