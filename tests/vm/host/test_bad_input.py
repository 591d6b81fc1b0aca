"""Bad input to host functions kills only the guest that passed it, with a clear reason.

Each case spawns a bystander first; after the bad guest has died, the bystander must still
receive a message and finish normally, and no host function may have raised (the ``engine``
fixture checks ``engine.host_errors``).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from lunatic_mp import Engine, EnvConfig, Module, Outcome

OOB = "out-of-bounds pointer"
UTF8 = "invalid UTF-8"

CASES = [
    ("write_oob", OOB, False),
    ("write_straddles_end", OOB, False),
    ("write_ptr_minus_one", OOB, False),
    ("read_oob", OOB, True),
    ("read_no_scratch", "no message in the scratch area", False),
    ("receive_tags_oob", OOB, False),
    ("receive_too_many_tags", "at most 4096 tags", False),
    ("registry_name_oob", OOB, False),
    ("registry_out_oob", OOB, False),
    ("registry_bad_utf8", UTF8, False),
    ("metrics_bad_utf8", UTF8, False),
    ("spawn_bad_utf8", UTF8, False),
    ("spawn_out_oob", OOB, False),
    ("spawn_unknown_config", "unknown config id 4242", False),
    ("spawn_unknown_module", "unknown module id 4242", False),
    ("compile_oob", OOB, False),
    ("drop_config_unknown", "unknown config id 12345", False),
    ("drop_module_unknown", "unknown module id 12345", False),
    ("config_get_unknown", "unknown config id 777", False),
    ("take_module_bad_index", "no module at index 3", True),
    ("error_text_unknown", "unknown error id 999", False),
    ("error_size_unknown", "unknown error id 999", False),
    ("error_text_oob", OOB, False),
]


@pytest.fixture
def guest(load: Callable[[str], Module]) -> Module:
    return load("bad_input.wat")


@pytest.mark.parametrize(("export", "reason", "needs_message"), CASES, ids=[case[0] for case in CASES])
def test_bad_input_kills_only_the_guest(
    engine: Engine, guest: Module, export: str, reason: str, needs_message: bool
) -> None:
    """The guest ends FAILED with a reason naming the problem; the bystander runs on."""
    survivor = engine.spawn(guest, "survivor", (), EnvConfig.permissive())
    victim = engine.spawn(guest, export, (), EnvConfig.permissive())
    if needs_message:
        engine.send(victim.pid, b"payload")
    finished = engine.run_until_finished(victim, timeout=10)
    assert finished is not None
    assert finished.outcome is Outcome.FAILED
    assert reason in finished.message, finished.message
    assert "host error" not in finished.message  # a deliberate trap, not a host function crashing

    assert survivor.alive
    engine.send(survivor.pid, b"still here")
    survived = engine.run_until_finished(survivor, timeout=10)
    assert survived is not None
    assert survived.ok, survived
    assert survived.result == (10,)


def test_dead_guest_leaves_no_registry_entry(engine: Engine, guest: Module) -> None:
    """The guest that registered a name and then trapped on an OOB out-pointer is unregistered."""
    victim = engine.spawn(guest, "registry_out_oob", (), EnvConfig.permissive())
    finished = engine.run_until_finished(victim, timeout=10)
    assert finished is not None
    assert finished.outcome is Outcome.FAILED
    assert engine.registry.get("name") is None


def test_many_bad_guests_in_a_row_do_not_disturb_the_engine(engine: Engine, guest: Module) -> None:
    """Every bad case one after another on one engine; a survivor spawned first still finishes."""
    survivor = engine.spawn(guest, "survivor", (), EnvConfig.permissive())
    for export, reason, needs_message in CASES:
        victim = engine.spawn(guest, export, (), EnvConfig.permissive())
        if needs_message:
            engine.send(victim.pid, b"payload")
        finished = engine.run_until_finished(victim, timeout=10)
        assert finished is not None
        assert reason in finished.message, (export, finished.message)
    assert list(engine.processes) == [survivor.pid]
    engine.send(survivor.pid, b"ok")
    survived = engine.run_until_finished(survivor, timeout=10)
    assert survived is not None
    assert survived.result == (2,)
