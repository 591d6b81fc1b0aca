"""The old home of :class:`Runtime`, kept so that ``from lunatic_mp.runtime import Runtime`` works.

The runtime lives in :mod:`lunatic_mp.api.runtime`; new code imports it from ``lunatic_mp``.
"""

from lunatic_mp.api.runtime import Runtime

__all__ = ["Runtime"]
