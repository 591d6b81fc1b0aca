"""Bad inputs a newcomer tries get one clear error naming the input and the fix, the same from
every call: module files, str where bytes go, a path where a Module goes, one argument where a
tuple of them goes."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from lunatic_mp import Context, Engine, EnvConfig, LunaticError, ModuleError, Runtime, examples
from lunatic_mp.errors import ArgumentTypeError

PING_PONG = examples.path("ping_pong.wat")


def echo(ctx: Context, value: int) -> int:
    return value


@pytest.fixture(scope="module")
def runtime() -> Iterator[Runtime]:
    with Runtime(workers=1) as runtime:
        yield runtime


def test_a_missing_file_is_named_with_its_directory(engine: Engine, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "app.wat"
    with pytest.raises(ModuleError, match=f"^cannot read module {missing}: No such file or directory$"):
        engine.load_module(str(missing))


@pytest.mark.parametrize("content", [b"(module)", b"garbage", b""])
def test_a_wasm_file_that_is_not_wasm_is_not_parsed_as_wat(
    engine: Engine, tmp_path: Path, content: bytes
) -> None:
    """It used to get the WAT parser's messages (``expected `(` ``)."""
    path = tmp_path / "app.wasm"
    path.write_bytes(content)
    with pytest.raises(ModuleError) as raised:
        engine.load_module(path)
    message = str(raised.value)
    assert message.startswith(f"{path} is not a valid Wasm module: a Wasm binary starts with \\0asm")
    assert "expected" not in message


def test_bytes_that_are_neither_wasm_nor_wat(engine: Engine) -> None:
    with pytest.raises(ModuleError, match=r"starts with \\0asm, this starts with b'garbage'"):
        engine.load_module(b"garbage")
    assert engine.load_module(b'(module (memory (export "memory") 1))')  # WAT as bytes still works


def test_a_module_of_another_type(engine: Engine) -> None:
    with pytest.raises(ModuleError, match="a path, Wasm bytes or WAT text, not int"):
        engine.load_module(5)  # type: ignore[arg-type]


STR_DATA = "message data must be bytes, not str 'hello': encode it ('hello'.encode())"


def test_str_data_gives_one_error_from_every_send(engine: Engine, runtime: Runtime) -> None:
    """Five calls used to give five different errors (or none)."""
    server = engine.spawn(engine.load_module(PING_PONG), "main", [1], EnvConfig.permissive())
    process = runtime.environment(EnvConfig.permissive()).spawn(runtime.load_module(PING_PONG), "main", [1])
    calls: list[Callable[[], Any]] = [
        lambda: engine.send(server.pid, "hello"),  # type: ignore[arg-type]
        lambda: runtime.send(process.id, "hello"),  # type: ignore[arg-type]
        lambda: process.send("hello"),  # type: ignore[arg-type]
        lambda: process.request("hello", timeout=1),  # type: ignore[arg-type]
    ]
    for call in calls:
        with pytest.raises(ArgumentTypeError) as raised:
            call()
        assert str(raised.value) == STR_DATA
        assert isinstance(raised.value, TypeError) and isinstance(raised.value, LunaticError)
    native = runtime.environment(EnvConfig.permissive()).spawn_native(_send_text)
    assert native.join(timeout=30).result == (STR_DATA,)
    process.kill()


def _send_text(ctx: Context) -> str:
    try:
        ctx.send(ctx.id, "hello")  # type: ignore[arg-type]
    except ArgumentTypeError as error:
        return str(error)
    return "sent"


def test_spawn_with_a_path_says_to_load_it(engine: Engine, runtime: Runtime) -> None:
    """It used to be an AttributeError ('str' object has no attribute 'exports')."""
    environment = runtime.environment(EnvConfig.permissive())
    for spawn in (
        lambda: engine.spawn("app.wat", "main", [1]),  # type: ignore[arg-type]
        lambda: runtime.spawn("app.wat", "main", [1]),  # type: ignore[arg-type]
        lambda: environment.spawn("app.wat", "main", [1]),  # type: ignore[arg-type]
    ):
        with pytest.raises(ArgumentTypeError) as raised:
            spawn()
        assert str(raised.value) == (
            "spawn takes a Module, not str 'app.wat': load it first, module = runtime.load_module('app.wat')"
        )


def test_spawn_native_with_a_bare_argument_says_to_make_a_tuple(engine: Engine, runtime: Runtime) -> None:
    """It used to say "cannot pickle <function echo> ...: 'int' object is not iterable"."""
    expected = "spawn_native takes the arguments of echo as a tuple, not int 5: spawn_native(echo, (5,))"
    environment = runtime.environment(EnvConfig.permissive())
    for spawn in (
        lambda: engine.spawn_native(echo, 5),  # type: ignore[arg-type]
        lambda: runtime.spawn_native(echo, 5),  # type: ignore[arg-type]
        lambda: environment.spawn_native(echo, 5),  # type: ignore[arg-type]
    ):
        with pytest.raises(ArgumentTypeError) as raised:
            spawn()
        assert str(raised.value) == expected
    assert environment.spawn_native(echo, (5,)).join(timeout=30).result == (5,)
