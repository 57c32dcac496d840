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
