"""The app's job worker (``uvosam_app.work.JobPump``): its end runs whatever the job does."""

import logging
import threading

from app_helpers import wait_for

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
    # the worker ended (it leaves the jobs under way before its clean-up): nothing for the server's end to stop
    assert pump not in work._RUNNING.values()
    assert "closing the job failed" in caplog.text and "simulated" in caplog.text


def test_a_run_pressed_right_after_stop_leaves_the_stopped_runs_folders_to_its_worker(tmp_path):
    """Stop released the job's folders as the UI let go, while the worker still wrote its frame there (and read the
    folder it holds: a re-render reads the run's); a Run pressed right after in the same session deleted the
    session's idle folders, those too: the worker's write failed (FileNotFoundError, logged as the run's failure).
    The folders are the worker's until it is done; then its own goes and the one it read is idle again."""
    from uvosam_app.handlers import App
    from uvosam_app.settings import AppSettings

    app = App(lambda preset, sam: None, AppSettings(work_root=tmp_path / "work"))
    read = app.work.new_dir("session", "run")  # the last run's folder, which the job reads
    app.work.release(read)
    in_frame, finish, wrote = threading.Event(), threading.Event(), []

    def job(folder):
        yield JobProgress(frames_done=0, frames_total=2, elapsed_s=0.0)
        in_frame.set()
        assert finish.wait(10)
        (folder / "frame_0000001.jpg").write_bytes((read / "kept").read_bytes())
        wrote.append(folder)
        yield JobProgress(frames_done=1, frames_total=2, elapsed_s=0.0)

    (read / "kept").write_bytes(b"the masks it reads")
    stopped = app._start("session", "rerender", job, app.rerenders.slots, read)
    assert stopped.pump.poll(10)[0].step is not None
    assert in_frame.wait(10)
    stopped.close()  # Stop: the UI lets go while the worker is in its frame
    app.work.new_dir("session", "run")  # the next Run: the session's idle folders go
    assert stopped.folder.is_dir() and read.is_dir()
    finish.set()
    # once done, the stopped job's folder went (``on_abort``)
    assert wait_for(lambda: not stopped.folder.exists())
    assert wrote == [stopped.folder]  # its frame written, no error
    # and then (``on_end``) the folder it read was released: idle, the session's clean-up deletes it
    session = app.work.session_dir("session")
    assert wait_for(lambda: app.work.remove_idle(session, kinds=("run",)) or not read.exists())


def test_a_failing_clean_up_callback_is_logged_and_the_worker_still_ends(caplog):
    """An ``on_abort`` that raised in the worker's end skipped ``on_end`` (the folders stayed held), left the dead
    thread among the jobs under way, and printed a bare traceback instead of a line of the app's log."""
    ended = threading.Event()

    def job():
        yield JobProgress(frames_done=0, frames_total=9, elapsed_s=0.0)
        raise RuntimeError("the model failed (simulated)")

    def abort():
        raise OSError("could not delete the folder (simulated)")

    with caplog.at_level(logging.ERROR, logger="uvosam.app"):
        pump = work.JobPump(
            job, threading.BoundedSemaphore(1), on_abort=abort, on_end=ended.set
        ).start()
        pump.cancel()  # the UI is done first: the worker's end is the last
        assert ended.wait(10)
        assert pump not in work._RUNNING.values()  # left before the callbacks ran
    assert "deleting the folder of a job that ended without its result failed" in caplog.text
