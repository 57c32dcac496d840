import threading
import time

import pytest

from uvosam.prefetch import prefetch


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
