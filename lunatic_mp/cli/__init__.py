"""The ``lunatic-mp`` command line."""

from lunatic_mp.cli.app import main

__all__ = ["main"]
