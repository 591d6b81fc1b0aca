"""The lunatic::registry host namespace and get_or_spawn, end to end from guests.

Guest: tests/guests/reg_names.wat. Its scenarios return what they observed; the tests also check
the engine's registry from the host side.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from conftest import finish, start

from lunatic_mp import Engine, Module, Outcome
from lunatic_mp.vm.registry import exact

OK = 0
NOT_FOUND = 1
ERROR = 1
ALREADY_REGISTERED = 2


@pytest.fixture
def names(load: Callable[[str], Module]) -> Module:
    return load("reg_names.wat")


def call(engine: Engine, module: Module, function: str, *params: object) -> tuple[int | float, ...]:
    """Run an export to its end and return its results; it must end normally."""
    finished = finish(engine, start(engine, module, function, *params))
    assert finished.ok, finished
    return finished.result


# --- put / get / remove ---------------------------------------------------------------------------


def test_versions_put_get_remove(engine: Engine, names: Module) -> None:
    """Versioned names: a requirement picks the newest matching version, a plain name the newest,
    a bare version means ^, a missing name is not found (1), and removes take effect."""
    missing, caret, caret_node, plain, bare, after_remove, after_remove_all = call(engine, names, "versions")
    assert missing == NOT_FOUND
    assert caret == 103  # counter@^1.1 -> 1.5.3, not 1.0.0, 1.2.0 or 2.0.0
    assert caret_node == 3  # the node given to put comes back
    assert plain == 104  # counter -> 2.0.0
    assert bare == 103  # counter@1.2 means ^1.2
    assert after_remove == 102  # 1.5.3 removed: ^1.1 -> 1.2.0
    assert after_remove_all == NOT_FOUND  # remove("counter") removed every version
    assert len(engine.registry) == 0


def test_host_registration_visible_to_guest(engine: Engine, names: Module) -> None:
    """A name put from the host is found by a guest, node and pid included."""
    engine.registry.put("svc", 7, 4242)
    assert call(engine, names, "lookup_svc") == (OK, 7, 4242)


def test_guest_lookup_of_missing_name(engine: Engine, names: Module) -> None:
    """get of a name nobody registered returns 1 and writes nothing."""
    assert call(engine, names, "lookup_svc") == (NOT_FOUND, -1, -1)


def test_guest_registration_visible_to_host(engine: Engine, names: Module) -> None:
    """What a guest puts is in the engine's registry, under its version and unversioned."""
    process = start(engine, names, "register_and_park")
    engine.run(timeout=30)
    assert process.alive
    assert engine.registry.get("svc@^1") == (0, process.pid)
    assert engine.registry.get("svc") == (0, process.pid)
    assert engine.registry.names() == [("svc", None, 0, process.pid), ("svc", "1.0.0", 0, process.pid)]


def test_invalid_requirement_traps(engine: Engine, names: Module) -> None:
    """get with a requirement that does not parse traps the guest with a clear reason."""
    finished = finish(engine, start(engine, names, "get_invalid"))
    assert finished.outcome is Outcome.FAILED
    assert "not a version" in finished.message


# --- names of processes that die ------------------------------------------------------------------


def test_names_removed_when_process_is_killed(engine: Engine, names: Module) -> None:
    """Every name a process registered goes when it is killed; guests then cannot find it."""
    process = start(engine, names, "register_and_park")
    engine.run(timeout=30)
    assert len(engine.registry) == 2
    assert engine.kill(process.pid)
    assert len(engine.registry) == 0
    assert call(engine, names, "lookup_svc") == (NOT_FOUND, -1, -1)


def test_names_removed_on_normal_exit(engine: Engine, names: Module) -> None:
    """A process that registered itself and returned leaves no name behind."""
    process = start(engine, names, "register_and_return")
    finished = finish(engine, process)
    assert finished.result == (process.pid,)
    assert engine.registry.get("svc") is None
    assert len(engine.registry) == 0


def test_names_removed_on_failure(engine: Engine, names: Module) -> None:
    """A process that registered itself and trapped leaves no name behind."""
    finished = finish(engine, start(engine, names, "register_and_trap"))
    assert finished.outcome is Outcome.FAILED
    assert engine.registry.get("svc") is None


def test_name_follows_the_registered_process(engine: Engine, names: Module) -> None:
    """A name belongs to the pid registered, not to the process that called put: it outlives
    the registrar and goes when the registered process dies."""
    target = start(engine, names, "park")
    engine.run(timeout=30)
    registrar = start(engine, names, "register_other", target.pid)
    assert finish(engine, registrar).ok
    assert engine.registry.get("svc") == (0, target.pid)
    assert call(engine, names, "lookup_svc") == (OK, 0, target.pid)
    engine.kill(target.pid)
    assert engine.registry.get("svc") is None


# --- get_or_spawn ---------------------------------------------------------------------------------


def test_get_or_spawn_spawns_then_finds(engine: Engine, names: Module) -> None:
    """get_or_spawn returns 0 the first time (spawned and registered), then 2 with the same pid."""
    first_code, first, second_code, second, node, first_exists = call(engine, names, "get_or_spawn_twice")
    assert first_code == OK
    assert second_code == ALREADY_REGISTERED
    assert second == first
    assert node == engine.node_id
    assert first_exists == 1
    worker = engine.processes[int(first)]
    assert worker.function == "park"
    assert engine.registry.get("worker") == (engine.node_id, first)


def test_get_or_spawn_after_the_registered_process_died(engine: Engine, names: Module) -> None:
    """Once the registered process is dead its name is free: get_or_spawn spawns a new one."""
    first_code, first, second_code, second = call(engine, names, "get_or_spawn_after_death")
    assert (first_code, second_code) == (OK, OK)
    assert second != first
    assert first not in engine.processes
    assert second in engine.processes
    assert engine.registry.get("worker") == (engine.node_id, second)


def test_get_or_spawn_error(engine: Engine, names: Module) -> None:
    """get_or_spawn of a missing export returns 1 with an error id, and registers nothing."""
    code, error_size, lookup = call(engine, names, "get_or_spawn_error")
    assert code == ERROR
    assert error_size > 0
    assert lookup == NOT_FOUND
    assert len(engine.registry) == 0
    assert not engine.processes


def test_get_or_spawn_takes_the_name_as_it_is(engine: Engine, names: Module) -> None:
    """A lunatic-rs process name (``crate@version::module::Ident``) is no version: get_or_spawn
    registers it as it is, and an opaque get finds it."""
    code, child, get_code, found = call(engine, names, "get_or_spawn_lunatic_rs_name")
    assert (code, get_code, found) == (OK, OK, child)
    assert engine.registry.get(exact("crate@0.1.0::mod::Ident")) == (engine.node_id, child)
    assert engine.registry.get("crate") is None


# --- opaque names (lunatic's own put/get/remove) ----------------------------------------------------


def test_opaque_names_next_to_versioned_ones(engine: Engine, names: Module) -> None:
    """put/get/remove take names as they are; the _versioned functions parse versions. A plain
    name without `@` is one entry for both; a versioned entry is invisible to an opaque get."""
    lrs, crate, versioned_counter, opaque_counter, svc, svc_versioned, removed = call(
        engine, names, "opaque_names"
    )
    assert lrs == 201  # "crate@0.1.0::mod::Ident" put and found as it is (no "invalid version")
    assert crate == NOT_FOUND  # ... and not as a version of "crate"
    assert versioned_counter == NOT_FOUND  # an opaque "counter@1.0.0" is no version of counter
    assert opaque_counter == 202
    assert svc == NOT_FOUND  # an opaque get("svc") does not pick the version svc@1.0.0
    assert svc_versioned == 204  # the opaque "svc" is the unversioned entry the versioned get sees
    assert removed == NOT_FOUND
    assert engine.registry.get(exact("counter@1.0.0")) == (0, 202)
    assert engine.registry.get("svc") == (0, 204)


def test_opaque_name_from_the_host_side() -> None:
    """The registry's exact keys: `@` and `::` kept, whitespace kept, the empty name allowed."""
    from lunatic_mp.vm.registry import Registry

    registry = Registry()
    for name in ("a@b::c", " spaced ", "", "counter@not a version", "x@1.0.0"):
        registry.put(exact(name), 0, 7)
        assert registry.get(exact(name)) == (0, 7)
    assert registry.get("x@1.0.0") is None  # the host's versioned lookup is another entry
    registry.remove(exact("a@b::c"))
    assert registry.get(exact("a@b::c")) is None
    registry.remove_process(7)
    assert len(registry) == 0


# --- ordering around get_or_spawn (docs/abi.md, "Ordering") ---------------------------------------


def test_get_or_spawn_spawner_message_comes_first(engine: Engine, load: Callable[[str], Module]) -> None:
    """On one engine the message a spawner sends right after get_or_spawn is its child's first,
    even when another process is polling the registry for the name meanwhile: the spawner's
    turn does not end between the call and its send."""
    from lunatic_mp.vm.mailbox import Kind

    order = load("reg_order.wat")
    probe = start(engine, order, "park")
    intruder = start(engine, order, "intruder")  # runs first, finds nothing, polls again
    spawner = start(engine, order, "spawner", probe.pid)
    assert finish(engine, spawner).ok
    assert finish(engine, intruder).ok
    engine.run(timeout=30)  # until the child has reported
    reports = [message.tag for message in probe.mailbox if message.kind is Kind.DATA]
    assert reports == [1]  # the spawner's message (1), not the intruder's (2)
