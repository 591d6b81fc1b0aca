"""serve: HTTP requests per second through ``lunatic-mp serve`` (issue 5), once it exists.

Until the command exists the scenario is skipped with the note "serve not available". When it
lands, this module is where its benchmark goes: requests per second through a trivial Wasm
handler with a load generator on this machine, against a plain aiohttp hello-world measured in
the same run (issue 5 asks for >= 0.6 of it).
"""

from __future__ import annotations

from lunatic_mp import cli
from lunatic_mp.bench import Context
from lunatic_mp.errors import BenchError

TITLE = "HTTP requests per second through lunatic-mp serve"


def unavailable() -> str | None:
    if "serve" not in cli.main.commands:
        return "serve not available"
    return None


def run(ctx: Context) -> None:
    raise BenchError(
        "`lunatic-mp serve` exists now, but benchmarks/serve.py does not measure it yet: write its "
        "scenario (see this module's docstring and docs/benchmarks.md)"
    )
