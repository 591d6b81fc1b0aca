"""``lunatic::version``: the lunatic ABI version this runtime implements."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lunatic_mp.vm.host._common import HostEngine

NAMESPACE = "lunatic::version"
ABI_VERSION = (0, 13, 2)


def register(engine: HostEngine) -> None:
    for name, value in zip(("major", "minor", "patch"), ABI_VERSION, strict=True):
        engine.linker.define(NAMESPACE, name, "", "i", lambda value=value: value)
