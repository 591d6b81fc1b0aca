"""Tests for the name/version registry of well-known processes."""

from __future__ import annotations

import pytest

from lunatic_mp.errors import InvalidNameError, LunaticError
from lunatic_mp.vm.registry import Registry


def make(*versions: str, name: str = "counter") -> Registry:
    """A registry holding ``name@v`` for each version, pid = its index + 1 on node 0."""
    reg = Registry()
    for pid, version in enumerate(versions, start=1):
        reg.put(f"{name}@{version}", 0, pid)
    return reg


def test_put_get_exact() -> None:
    reg = Registry()
    reg.put("counter@1.2.0", 7, 42)
    assert reg.get("counter@=1.2.0") == (7, 42)
    assert reg.get("counter") == (7, 42)
    assert reg.get("other") is None
    assert len(reg) == 1


def test_overwrite_same_version() -> None:
    reg = Registry()
    reg.put("counter@1.2.0", 0, 1)
    reg.put("counter@1.2.0", 0, 2)
    assert reg.get("counter@1.2.0") == (0, 2)
    assert len(reg) == 1
    reg.remove_process(1)  # the replaced pid no longer owns the entry
    assert reg.get("counter") == (0, 2)


def test_plain_get_returns_newest() -> None:
    reg = make("1.0.0", "2.1.0", "1.10.0", "2.0.5")
    assert reg.get("counter") == (0, 2)


def test_newest_matching_is_chosen() -> None:
    reg = make("1.1.0", "1.4.2", "1.4.10", "2.0.0")
    assert reg.get("counter@^1.1") == (0, 3)
    assert reg.get("counter@^2") == (0, 4)
    assert reg.get("counter@^3") is None


@pytest.mark.parametrize(
    ("requirement", "matching", "not_matching"),
    [
        ("1.2", ["1.2.0", "1.9.0"], ["1.1.9", "2.0.0"]),
        ("^1.2", ["1.2.0", "1.9.0"], ["1.1.9", "2.0.0"]),
        ("^1.2.3", ["1.2.3", "1.9.0"], ["1.2.2", "2.0.0"]),
        ("^0.2", ["0.2.0", "0.2.5"], ["0.1.9", "0.3.0"]),
        ("0.2.3", ["0.2.3", "0.2.9"], ["0.2.2", "0.3.0"]),
        ("^0.0.3", ["0.0.3"], ["0.0.4", "0.1.0"]),
        ("~1.2", ["1.2.0", "1.2.9"], ["1.1.0", "1.3.0"]),
        ("~1.2.3", ["1.2.3", "1.2.9"], ["1.2.2", "1.3.0"]),
        ("~1", ["1.0.0", "1.9.0"], ["0.9.0", "2.0.0"]),
        ("=1.2.3", ["1.2.3"], ["1.2.4"]),
        (">=1.2", ["1.2.0", "3.0.0"], ["1.1.9"]),
        ("<2", ["1.9.9", "0.1.0"], ["2.0.0"]),
        ("*", ["0.0.1", "9.9.9"], []),
        (">=1.2, <1.5", ["1.2.0", "1.4.9"], ["1.1.0", "1.5.0"]),
        ("1.2,<1.4", ["1.2.0", "1.3.9"], ["1.4.0", "1.1.0"]),
    ],
)
def test_cargo_requirements(requirement: str, matching: list[str], not_matching: list[str]) -> None:
    for version in matching:
        assert make(version).get(f"counter@{requirement}") == (0, 1), version
    for version in not_matching:
        assert make(version).get(f"counter@{requirement}") is None, version


def test_prereleases_need_an_explicit_prerelease_requirement() -> None:
    reg = make("1.2.0", "1.3.0-alpha.1")
    assert reg.get("counter@^1.2") == (0, 1)
    assert reg.get("counter@>=1.3.0-alpha") == (0, 2)
    assert reg.get("counter@=1.3.0-alpha.1") == (0, 2)


def test_build_metadata_is_ignored() -> None:
    reg = make("1.0.0+a", "1.0.0+b")
    assert len(reg) == 1
    assert reg.get("counter@=1.0.0") == (0, 2)


def test_unversioned_entry() -> None:
    reg = Registry()
    reg.put("counter", 3, 9)
    assert reg.get("counter") == (3, 9)
    assert reg.get("counter@*") is None  # requirements only match versioned entries
    reg.put("counter@0.1.0", 0, 1)
    assert reg.get("counter") == (0, 1)  # any versioned entry ranks above the unversioned one
    assert len(reg) == 2
    reg.remove("counter@0.1.0")
    assert reg.get("counter") == (3, 9)


def test_remove_one_version() -> None:
    reg = make("1.0.0", "1.1.0")
    reg.remove("counter@1.1.0")
    assert reg.get("counter") == (0, 1)
    reg.remove("counter@1.1.0")  # already gone: no error
    assert len(reg) == 1


def test_remove_all_versions() -> None:
    reg = make("1.0.0", "2.0.0")
    reg.put("counter", 0, 3)
    reg.put("other@1.0.0", 0, 4)
    reg.remove("counter")
    assert reg.get("counter") is None
    assert reg.names() == [("other", "1.0.0", 0, 4)]
    reg.remove_process(1)  # the reverse index was cleaned too
    reg.remove("missing")
    assert len(reg) == 1


def test_remove_process() -> None:
    reg = Registry()
    reg.put("a@1.0.0", 0, 1)
    reg.put("a@2.0.0", 0, 2)
    reg.put("b", 0, 1)
    reg.put("c@0.1.0", 5, 1)
    reg.remove_process(1)
    assert reg.names() == [("a", "2.0.0", 0, 2)]
    reg.remove_process(1)
    reg.remove_process(99)
    reg.remove_process(2)
    assert len(reg) == 0
    assert reg.names() == []


def test_names_sorted() -> None:
    reg = Registry()
    reg.put("b@1.10.0", 1, 4)
    reg.put("b@1.2.0", 1, 3)
    reg.put("b", 1, 2)
    reg.put("a@0.1.0", 1, 1)
    assert reg.names() == [
        ("a", "0.1.0", 1, 1),
        ("b", None, 1, 2),
        ("b", "1.2.0", 1, 3),
        ("b", "1.10.0", 1, 4),
    ]


@pytest.mark.parametrize("name", ["", " ", "@1.0.0", "x@", "x@not-a-version", "x@1.2", "x@1.2.3.4", "x@^1"])
def test_put_rejects_invalid(name: str) -> None:
    reg = Registry()
    with pytest.raises(InvalidNameError):
        reg.put(name, 0, 1)
    assert len(reg) == 0


@pytest.mark.parametrize("name", ["", "@^1", "x@", "x@not-a-version", "x@^1.x.y", "x@>=1,,<2"])
def test_get_rejects_invalid(name: str) -> None:
    reg = make("1.0.0", name="x")
    with pytest.raises(InvalidNameError):
        reg.get(name)


@pytest.mark.parametrize("name", ["", "x@", "x@^1", "missing@bad"])
def test_remove_rejects_invalid(name: str) -> None:
    reg = make("1.0.0", name="x")
    with pytest.raises(InvalidNameError):
        reg.remove(name)
    assert len(reg) == 1


def test_error_hierarchy() -> None:
    with pytest.raises(ValueError):
        Registry().get("x@nope")
    with pytest.raises(LunaticError):
        Registry().get("x@nope")
