"""``lunatic-mp bench``: the runner; the scenarios live in the source tree's ``benchmarks/``."""
