"""Tests of :mod:`lunatic_mp.api.mapresults`: a map's items behave as the Futures they replace."""

from __future__ import annotations

import threading
from concurrent.futures import CancelledError

import pytest

from lunatic_mp.api.mapresults import MapResults


def test_an_item_gives_its_result_or_raises_its_error() -> None:
    results = MapResults()
    done, failed = results.item(), results.item()
    assert done.set_running_or_notify_cancel() and failed.set_running_or_notify_cancel()
    done.set_result(42)
    failed.set_exception(ValueError("bad job"))
    assert done.result() == 42 and done.result(0) == 42
    with pytest.raises(ValueError, match="bad job"):
        failed.result()


def test_a_cancelled_item_is_skipped_and_raises_cancelled() -> None:
    item = MapResults().item()
    assert item.cancel() and item.cancel()
    assert not item.set_running_or_notify_cancel()
    with pytest.raises(CancelledError):
        item.result()


def test_a_running_item_cannot_be_cancelled() -> None:
    item = MapResults().item()
    assert item.set_running_or_notify_cancel()
    assert not item.cancel()
    item.set_result(None)
    assert not item.cancel() and item.result() is None


def test_result_waits_for_its_item_and_times_out() -> None:
    results = MapResults()
    first, second = results.item(), results.item()
    with pytest.raises(TimeoutError):
        first.result(timeout=0.01)
    answered = threading.Event()

    def answer() -> None:
        answered.wait(30)
        second.set_result("two")  # another item: the reader is not woken for it
        first.set_result("one")

    thread = threading.Thread(target=answer)
    thread.start()
    answered.set()
    assert first.result(timeout=30) == "one"
    assert second.result(timeout=0) == "two"
    thread.join()
