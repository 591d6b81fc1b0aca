"""The example modules the README and the guides use, shipped with the package so that they run
from ``pip install`` alone: ``runtime.load_module(lunatic_mp.examples.path("ping_pong.wat"))``.

==================  ===========================================================================
hello.wat           ``_start`` spawns four children that compute and message their parent
ping_pong.wat       ``main(n)``: n round trips with a child; returns n
exe_jobs.wat        jobs for ``runtime.executor``: ``square``, ``divmod``, ``fail``, bytes jobs
msg_request.wat     ``server``: answers ``(reply-to pid, x)`` with ``2 * x``
plugin_calc.wat     a Wasm plugin: ``add``, ``half``, ``bump``
plugin_guest.wat    a guest of the ``calc`` and ``greeter`` plugins
counter.wat         the counter ``lunatic-mp serve`` runs without a config
hello_http.wat      the HTTP handler ``lunatic-mp serve`` runs without a config
==================  ===========================================================================
"""

from __future__ import annotations

from pathlib import Path

DIRECTORY = Path(__file__).parent
"""Where the example modules are."""


def names() -> list[str]:
    """The file names of every example module."""
    return sorted(entry.name for entry in DIRECTORY.glob("*.wat"))


def path(name: str) -> Path:
    """The path of an example module, by file name (``"ping_pong.wat"``); a ``FileNotFoundError``
    lists the names there are."""
    found = DIRECTORY / name
    if Path(name).name != name or not found.is_file():
        raise FileNotFoundError(f"no example module {name!r}; there are: {', '.join(names())}")
    return found


__all__ = ["DIRECTORY", "names", "path"]
