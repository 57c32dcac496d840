import subprocess
import sys
import textwrap
import threading
import time

import pytest

from uvosam.prefetch import prefetch, producers


def test_order_and_bounded_read_ahead():
    produced = []

    def source():
        for i in range(20):
            produced.append(i)
            yield i

    out = []
    for item in prefetch(source(), depth=3):
        time.sleep(0.005)
        assert len(produced) - len(out) <= 3 + 2  # queue + one in hand on each side
        out.append(item)
    assert out == list(range(20))


def test_producer_error_is_raised_at_its_position():
    def source():
        yield 1
        yield 2
        raise ValueError("frame 2: decode failed")

    got = []
    with pytest.raises(ValueError, match="frame 2: decode failed"):
        for item in prefetch(source()):
            got.append(item)  # noqa: PERF402 - keeps the items before the error; list() would not
    assert got == [1, 2]


def test_closing_the_consumer_stops_and_closes_the_producer():
    closed = threading.Event()

    def source():
        try:
            i = 0
            while True:
                yield i
                i += 1
        finally:
            closed.set()

    gen = prefetch(source(), depth=2)
    assert next(gen) == 0
    gen.close()
    assert closed.wait(2)
    assert not any(t.name == "uvosam-prefetch" and t.is_alive() for t in threading.enumerate())


def test_producers_are_told_by_the_thread_they_work_for():
    """A run's models' thread reads its frames through a producer of its own: both work for the thread that runs
    the job (``producers``: what the CLI waits for when stopped), not for another thread."""
    frames = prefetch(iter(range(5)), depth=1)
    results = prefetch(
        frames, depth=1, name="uvosam-models"
    )  # ``frames`` read in the models' thread
    assert next(results) == 0
    mine = producers()
    assert sorted(t.name for t in mine) == ["uvosam-models", "uvosam-prefetch"]
    elsewhere = []
    other = threading.Thread(target=lambda: elsewhere.extend(producers()))
    other.start()
    other.join()
    assert elsewhere == []
    results.close()
    frames.close()
    assert producers() == [] and not any(t.is_alive() for t in mine)


def test_at_exit_a_producer_finishes_its_item_and_closes(tmp_path):
    """A program that ends (Ctrl-C, or just its end) while a producer makes an item: the interpreter's end killed
    the daemon thread where it was (inside torch that aborted the process, SIGABRT); now it is asked to stop and
    waited for, so the item under way is finished and the iterator closed (a consumer never closed too)."""
    script = tmp_path / "ends.py"
    script.write_text(
        textwrap.dedent(
            """
            import sys, time
            from pathlib import Path
            from uvosam.prefetch import prefetch

            marks = Path(sys.argv[1])

            def source():
                try:
                    yield 1
                    time.sleep(2.0)  # the item under way when the program ends
                    marks.joinpath("finished").touch()
                    yield 2
                finally:
                    marks.joinpath("closed").touch()

            items = prefetch(source(), depth=1)
            assert next(items) == 1
            time.sleep(0.2)  # the producer is making item 2; the program ends, ``items`` never closed
            """
        )
    )
    ended = subprocess.run(
        [sys.executable, str(script), str(tmp_path)],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert ended.returncode == 0, ended.stderr
    assert (tmp_path / "finished").exists() and (tmp_path / "closed").exists()
    # a wait over a second is said (a library user's program seemed to hang at its end)
    assert "waiting up to" in ended.stderr and "uvosam-prefetch to finish the item" in ended.stderr
