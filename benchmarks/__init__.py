"""The scenarios of ``lunatic-mp bench`` (see docs/benchmarks.md), one module each.

Each scenario module has ``TITLE``, ``run(ctx)`` (ctx: :class:`lunatic_mp.bench.runner.Context`) and
optionally ``unavailable()``; ``baselines`` holds what the scenarios compare against, and
``guests/`` the Wasm modules they run. Run them with ``lunatic-mp bench``, not directly.
"""
