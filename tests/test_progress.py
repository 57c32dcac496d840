"""Progress in a log (stderr not a terminal): plain lines, at most one every 30 s and one at the end, never tqdm's
``\\r`` redraws glued onto one line (``uvosam.progress``), for the commands and ``train``."""

import io

from doubles import MovingBoxTracker
from run_helpers import run_clip
from tqdm import tqdm

import uvosam_cli
import uvosam_cli.segment
from uvosam.pipeline import UVOSAM
from uvosam.progress import LogProgress, progress_bar
from uvosam.segmenter import BoxPromptSegmenter


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_log_gets_a_line_at_most_every_n_seconds_and_one_at_the_end():
    now = [0.0]
    log = io.StringIO()
    bar = LogProgress(desc="clip.mp4", unit="frame", file=log, every_s=30, clock=lambda: now[0])
    bar.total = 100  # as segment sets it once the first update says
    for _ in range(70):
        now[0] += 1.0
        bar.update(1)
        bar.set_postfix(objects=2, tracks=5, refresh=False)
    bar.close()
    bar.close()  # closed once
    assert log.getvalue().splitlines() == [
        "clip.mp4: frame 30/100 (1.00 fps, objects=2, tracks=5)",
        "clip.mp4: frame 60/100 (1.00 fps, objects=2, tracks=5)",
        "clip.mp4: frame 70/100 (1.00 fps, objects=2, tracks=5)",
    ]


def test_a_log_of_a_download_and_of_iterations():
    now = [0.0]
    log = io.StringIO()
    with LogProgress(desc="download", unit="B", file=log, clock=lambda: now[0]) as bar:
        bar.total = 40 * 2**20
        now[0] = 4.0
        bar.update(8 * 2**20)
    for _ in LogProgress(
        range(3), desc="train", unit="iteration", total=3, file=log, clock=lambda: now[0]
    ):
        now[0] += 0.5
    assert log.getvalue().splitlines() == [
        "download: 8.0 MiB of 40.0 MiB (2.0 MiB/s)",
        "train: iteration 3/3 (2.00 iterations/s)",
    ]


def test_nothing_done_says_nothing_at_the_end():
    log = io.StringIO()
    LogProgress(desc="clip.mp4", unit="frame", file=log).close()
    assert log.getvalue() == ""


def test_a_terminal_gets_tqdms_bar():
    bar = progress_bar(desc="clip.mp4", unit="frame", file=Terminal())
    assert isinstance(bar, tqdm)
    bar.close()
    assert isinstance(progress_bar(desc="x", unit="frame", file=io.StringIO()), LogProgress)


def test_a_jupyter_kernel_gets_tqdms_bar_though_its_stderr_is_no_terminal(monkeypatch):
    """Jupyter and Colab give no terminal for stderr, but show tqdm's bar: they got a line every 30 s."""
    import sys
    import types

    assert not sys.stderr.isatty()  # pytest's capture
    assert isinstance(progress_bar(desc="clip.mp4", unit="frame"), LogProgress)
    monkeypatch.setitem(sys.modules, "ipykernel", types.ModuleType("ipykernel"))
    bar = progress_bar(desc="clip.mp4", unit="frame")
    assert isinstance(bar, tqdm)
    bar.close()
    assert isinstance(progress_bar(desc="x", unit="frame", file=io.StringIO()), LogProgress)


def test_segment_into_a_log_writes_lines_not_redraws(tmp_path, monkeypatch, capsys, tiny_sam_model):
    """In a log (nohup, CI) tqdm's redraws were glued on one line ("\\r" updates), a log record went on the end of
    the bar ("...tracks=2]INFO uvosam.job: ...") and the final bar was there twice."""
    pipe = UVOSAM(MovingBoxTracker(num_objects=2), BoxPromptSegmenter(tiny_sam_model))
    monkeypatch.setattr(uvosam_cli.segment, "load_pipeline", lambda args: pipe)
    source = run_clip(tmp_path / "clip.mp4")
    assert (
        uvosam_cli.main(["segment", str(source), "--out", str(tmp_path / "out"), "--sam", "vit_b"])
        == 0
    )
    err = capsys.readouterr().err
    assert "\r" not in err
    progress = [line for line in err.splitlines() if line.startswith("clip.mp4: ")]
    assert len(progress) == 1 and progress[0].startswith("clip.mp4: frame 8/8 (")
    assert progress[0].endswith(", objects=2, tracks=2)")


def test_train_into_a_log_writes_lines_not_redraws(tmp_path, capsys):
    from train_helpers import synthetic_videos

    from uvosam.train.config import TrainConfig
    from uvosam.train.loop import train

    cfg = TrainConfig.tiny().replace(
        clips_per_batch=2, max_iter=2, log_period=1, checkpoint_period=2
    )
    train(cfg, [synthetic_videos(4, num_frames=8)], [1.0], tmp_path, device="cpu")
    err = capsys.readouterr().err
    assert "\r" not in err
    lines = [line for line in err.splitlines() if line.startswith("train: ")]
    assert len(lines) == 1 and lines[0].startswith("train: iteration 2/2 (") and "loss=" in lines[0]
