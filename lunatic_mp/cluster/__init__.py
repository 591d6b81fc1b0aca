"""Many engines on one machine: the worker processes, the registry process, and what joins them.

Frames (:mod:`.frames`), shared-memory rings and doorbells (:mod:`.transport`, :mod:`.hub`),
descriptor passing (:mod:`.fdpass`), and the logs children send home (:mod:`.logs`).
"""
