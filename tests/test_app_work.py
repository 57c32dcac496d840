"""The app's job worker (``uvosam_app.work.JobPump``): its end runs whatever the job does."""

import logging
import threading
import time

from uvosam.job_types import JobProgress
from uvosam_app import work


def test_a_job_whose_clean_up_fails_still_ends_its_worker(caplog):
    """A close() that raised skipped the rest: the stopped run's folder stayed until the session ended, the UI was
    never told the job was done, and the exception went to threading.excepthook."""
    aborted = threading.Event()

    def job():
        try:
            while True:
                yield JobProgress(frames_done=0, frames_total=9, elapsed_s=0.0)
        finally:
            raise OSError("could not delete the run's files (simulated)")

    pump = work.JobPump(job, threading.BoundedSemaphore(1), on_abort=aborted.set).start()
    assert pump.poll(10)[0].step is not None
    with caplog.at_level(logging.ERROR, logger="uvosam.app"):
        pump.cancel()  # Stop: the worker closes the job after its step
        assert aborted.wait(10)  # the stopped run's folder goes
        deadline = time.monotonic() + 10
        while pump in work._RUNNING.values() and time.monotonic() < deadline:
            time.sleep(0.01)
    # the worker ended: nothing for the server's end to stop
    assert pump not in work._RUNNING.values()
    assert "closing the job failed" in caplog.text and "simulated" in caplog.text


def test_a_run_pressed_right_after_stop_leaves_the_stopped_runs_folder_to_its_worker(tmp_path):
    """Stop released the run's folder as the UI let go, while the worker still wrote its frame there; a Run pressed
    right after in the same session deleted the session's idle folders, that one too: the worker's write failed
    (FileNotFoundError, logged as the run's failure). The folder is the worker's until it is done, then it goes."""
    from uvosam_app.handlers import App
    from uvosam_app.settings import AppSettings

    app = App(lambda preset, sam: None, AppSettings(work_root=tmp_path / "work"))
    in_frame, finish, wrote = threading.Event(), threading.Event(), []

    def job(folder):
        yield JobProgress(frames_done=0, frames_total=2, elapsed_s=0.0)
        in_frame.set()
        assert finish.wait(10)
        (folder / "frame_0000001.jpg").write_bytes(b"the frame it was on")
        wrote.append(folder)
        yield JobProgress(frames_done=1, frames_total=2, elapsed_s=0.0)

    stopped = app._start("session", "run", job, app.gpu_slots)
    assert stopped.pump.poll(10)[0].step is not None
    assert in_frame.wait(10)
    stopped.close()  # Stop: the UI lets go while the worker is in its frame
    app.work.new_dir("session", "run")  # the next Run: the session's idle folders go
    assert stopped.folder.is_dir()
    finish.set()
    deadline = time.monotonic() + 10
    while stopped.folder.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert wrote == [stopped.folder]  # its frame written, no error
    assert not stopped.folder.exists()  # then the stopped run's folder went (``on_abort``)
