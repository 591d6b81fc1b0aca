"""PendingRequests: every request gets exactly one answer, a reply or None when its worker is lost."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from lunatic_mp.cluster.requests import PendingRequests


def test_a_reply_reaches_its_request_once() -> None:
    pending = PendingRequests()
    got: list[Any] = []
    first = pending.new(3, got.append)
    second = pending.new(3, got.append)
    assert first != second and len(pending) == 2
    pending.complete(second, "two")
    pending.complete(first, "one")
    assert got == ["two", "one"] and len(pending) == 0


def test_a_stray_reply_is_logged_and_dropped(caplog: pytest.LogCaptureFixture) -> None:
    pending = PendingRequests()
    got: list[Any] = []
    request = pending.new(3, got.append)
    pending.complete(request, "answer")
    with caplog.at_level(logging.WARNING, logger="lunatic_mp.cluster.requests"):
        pending.complete(request, "again")
    assert got == ["answer"]
    assert f"reply to unknown request {request} dropped" in caplog.text


def test_a_lost_worker_answers_its_requests_with_none_and_no_others() -> None:
    pending = PendingRequests()
    lost: list[Any] = []
    kept: list[Any] = []
    pending.new(3, lost.append)
    pending.new(3, lost.append)
    survivor = pending.new(4, kept.append)
    pending.worker_lost(3)
    assert lost == [None, None] and kept == []
    pending.complete(survivor, "fine")
    assert kept == ["fine"]


def test_forget_and_close() -> None:
    pending = PendingRequests()
    forgotten: list[Any] = []
    closed: list[Any] = []
    on_reply = forgotten.append  # one bound method: forget finds the callback by identity
    request = pending.new(3, on_reply)
    pending.new(5, closed.append)
    pending.forget(on_reply)
    pending.complete(request, "late")  # logged as unknown: nobody waits any more
    pending.close()
    assert forgotten == [] and closed == [None] and len(pending) == 0
