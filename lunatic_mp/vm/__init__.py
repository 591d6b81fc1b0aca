"""One engine: Wasm processes as fibers on one thread.

The wasmtime layer (:mod:`.wasm`), modules, processes and their mailboxes, the scheduler, the
reactor for descriptors, the local name table, metrics, plugins, native Python processes, and the
host namespaces guests call (:mod:`.host`). Nothing here knows about other OS processes: an engine
reaches the rest of a runtime only through the :class:`~lunatic_mp.vm.router.Router` it is given.
"""
