"""``lunatic::wasi``: WASI arguments, environment and directories of configs for children.

The ``wasi_snapshot_preview1`` functions themselves come from wasmtime, given each process's own
arguments, environment and preopened directories when it is spawned.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lunatic_mp.config import EnvConfig
from lunatic_mp.host._common import current, lookup, memory_of

if TYPE_CHECKING:
    from lunatic_mp.engine import Engine

NAMESPACE = "lunatic::wasi"


def register(engine: Engine) -> None:
    def config_and_text(config_id: int, *spans: tuple[int, int]) -> tuple[EnvConfig, list[str]]:
        process = current(engine)
        config = lookup(process.resources.configs, config_id, "config")
        memory = memory_of(process, engine)
        return config, [memory.read_str(ptr, length) for ptr, length in spans]

    def add_environment_variable(
        config_id: int, key_ptr: int, key_len: int, value_ptr: int, value_len: int
    ) -> None:
        config, (key, value) = config_and_text(config_id, (key_ptr, key_len), (value_ptr, value_len))
        config.env[key] = value

    def add_command_line_argument(config_id: int, ptr: int, length: int) -> None:
        config, (argument,) = config_and_text(config_id, (ptr, length))
        config.args.append(argument)

    def preopen_dir(config_id: int, ptr: int, length: int) -> None:
        config, (path,) = config_and_text(config_id, (ptr, length))
        config.preopened_dirs[path] = path

    engine.linker.define(NAMESPACE, "config_add_environment_variable", "Iiiii", "", add_environment_variable)
    engine.linker.define(NAMESPACE, "config_add_command_line_argument", "Iii", "", add_command_line_argument)
    engine.linker.define(NAMESPACE, "config_preopen_dir", "Iii", "", preopen_dir)
