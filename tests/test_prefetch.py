"""backprop.data.Prefetcher and backprop.backend.Transfer: batches read ahead in a thread.

Checked: the batches come in order (with and without a thread, and moved to every backend);
an exception in the thread is raised at the batch it concerns, with its own type and its
traceback; closing early (explicitly, by ``with``, by dropping the prefetcher) stops the thread;
a slow producer and a consumer that stops early never hang. Every wait in these tests has a
timeout, so that a bug fails the test instead of hanging the suite.
"""

from __future__ import annotations

import gc
import threading
import time
import traceback

import numpy as np
import pytest

from backprop.backend import Transfer, uses_copy_stream
from backprop.data import Prefetcher

TIMEOUT = 10.0  # seconds; far above what any step here takes


def _wait_until_stopped(thread: threading.Thread) -> None:
    thread.join(TIMEOUT)
    assert not thread.is_alive(), "the prefetch thread is still running"


@pytest.mark.parametrize("depth", [0, 1, 2, 5])
def test_the_batches_come_in_order(depth):
    with Prefetcher(iter(range(50)), lambda i: (i, i * i), None, depth=depth) as batches:
        assert list(batches) == [(i, i * i) for i in range(50)]
        assert next(batches, "end") == "end"  # and stay finished
    if depth:
        _wait_until_stopped(batches.thread)
    else:
        assert batches.thread is None


def test_batches_are_moved_to_the_backend(backend):
    rows = np.arange(12.0).reshape(6, 2)
    convert = lambda i: (rows[2 * i : 2 * i + 2].astype(np.float32), None)  # noqa: E731
    with Prefetcher(iter(range(3)), convert, backend) as batches:
        got = list(batches)
    assert not uses_copy_stream(backend)  # the CPU backends of this machine
    for i, (x, y) in enumerate(got):
        assert backend.owns(x) and y is None
        np.testing.assert_array_equal(backend.to_numpy(x), rows[2 * i : 2 * i + 2])


def test_a_transfer_passes_device_arrays_and_none_through(backend):
    transfer = Transfer(backend)
    on_device = backend.asarray(np.ones(2, dtype=np.float32))
    x = transfer.ready(transfer.stage(np.zeros((1, 2), dtype=np.float32)))
    assert backend.owns(x)
    same, none = transfer.ready(transfer.stage((on_device, None)))
    assert same is on_device and none is None


class Boom(KeyError):
    pass


def _failing_at(k):
    def convert(i):
        if i == k:
            raise Boom(f"row {i} is unreadable")
        return i

    return convert


@pytest.mark.parametrize("depth", [0, 2])
def test_an_exception_is_raised_at_its_batch_with_its_type_and_traceback(depth):
    batches = Prefetcher(iter(range(10)), _failing_at(3), None, depth=depth)
    assert [next(batches) for _ in range(3)] == [0, 1, 2]
    with pytest.raises(Boom, match="row 3 is unreadable") as info:
        next(batches)
    # the traceback reaches into convert, where the error happened
    assert "convert" in [frame.name for frame in traceback.extract_tb(info.tb)]
    assert next(batches, "end") == "end"  # nothing after the error
    if depth:
        _wait_until_stopped(batches.thread)


def test_an_exception_from_the_batches_themselves_is_raised_too():
    def batches():
        yield 0
        raise OSError("the disk went away")

    with Prefetcher(batches(), lambda b: b, None) as prefetcher:
        assert next(prefetcher) == 0
        with pytest.raises(OSError, match="the disk went away"):
            next(prefetcher)


def test_closing_early_stops_the_thread():
    pulled = []

    def endless():
        i = 0
        while True:
            pulled.append(i)
            yield i
            i += 1

    prefetcher = Prefetcher(endless(), lambda i: i, None, depth=2)
    assert [next(prefetcher) for _ in range(3)] == [0, 1, 2]
    prefetcher.close()
    _wait_until_stopped(prefetcher.thread)
    assert len(pulled) <= 3 + 2 + 1  # never more than depth ahead (+ the one in hand)
    assert next(prefetcher, "end") == "end"
    prefetcher.close()  # twice is fine


def test_a_dropped_prefetcher_stops_its_thread():
    def endless():
        while True:
            yield 1

    before = threading.active_count()
    prefetcher = Prefetcher(endless(), lambda i: i, None, depth=2)
    next(prefetcher)
    thread = prefetcher.thread
    del prefetcher
    gc.collect()
    _wait_until_stopped(thread)
    assert threading.active_count() == before


def test_a_slow_producer_and_a_consumer_that_stops_early_never_hang():
    produced = []

    def slow():
        for i in range(1000):
            time.sleep(0.02)
            produced.append(i)
            yield i

    with Prefetcher(slow(), lambda i: i, None, depth=3) as batches:
        for i, batch in enumerate(batches):
            assert batch == i
            if i == 4:
                break
    _wait_until_stopped(batches.thread)
    # stopped with the consumer: the batches taken plus at most the queue's and the one in hand
    assert len(produced) <= 5 + 3 + 1


def test_a_consumer_slower_than_the_producer_gets_every_batch():
    with Prefetcher(iter(range(20)), lambda i: i, None, depth=1) as batches:
        got = []
        for batch in batches:
            time.sleep(0.002)
            got.append(batch)
    assert got == list(range(20))


def test_depth_must_be_a_count():
    with pytest.raises(ValueError, match="depth must be an integer >= 0, received -1"):
        Prefetcher(iter([]), lambda b: b, None, depth=-1)


class _Fail(Exception):
    pass


def test_an_error_in_the_with_block_does_not_wait_for_a_blocked_producer():
    """The error path abandons the thread (it may be stuck in user code): no join with a
    timeout; the thread ends when the user's call returns and converts nothing after it.
    The normal close still joins."""
    release, converted = threading.Event(), []

    def blocked():
        yield 0
        release.wait(TIMEOUT)
        yield 1

    def convert(i):
        converted.append(i)
        return i

    try:
        with pytest.raises(_Fail), Prefetcher(blocked(), convert, None, depth=2) as p:
            assert next(p) == 0
            raise _Fail
        assert p.alive  # not waited for: still in the user's next()
        p.close()  # a later close does not wait either
        assert p.alive
    finally:
        release.set()
    _wait_until_stopped(p.thread)
    assert converted == [0]  # the batch that came after the error was not converted
    with Prefetcher(iter(range(3)), convert, None, depth=2) as q:
        assert list(q) == [0, 1, 2]
    assert not q.alive  # the normal path joins the thread
