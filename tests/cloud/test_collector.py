"""The cyclic collector's pause: nested and concurrent pauses count, an error inside still ends it, and a
collector that was off stays off."""

from __future__ import annotations

import gc
import threading

import pytest

from cloud.billing.collector import collector_paused


@pytest.fixture(autouse=True)
def collector_on():
    gc.enable()
    yield
    gc.enable()


def test_nested_pauses_enable_the_collector_only_when_the_last_ends():
    with collector_paused():
        assert not gc.isenabled()
        with collector_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()


def test_an_error_inside_still_ends_the_pause():
    with pytest.raises(RuntimeError), collector_paused():
        raise RuntimeError("the run failed")
    assert gc.isenabled()


def test_a_collector_that_was_off_stays_off():
    gc.disable()
    with collector_paused():
        pass
    assert not gc.isenabled()


def test_overlapping_pauses_in_two_threads():
    first_in, second_out = threading.Event(), threading.Event()
    seen = []

    def first():
        with collector_paused():
            first_in.set()
            second_out.wait(10)
            seen.append(gc.isenabled())  # the other thread's pause ended: still paused here

    thread = threading.Thread(target=first)
    thread.start()
    first_in.wait(10)
    with collector_paused():
        pass
    second_out.set()
    thread.join(10)
    assert seen == [False] and gc.isenabled()
