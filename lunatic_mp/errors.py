"""Every error lunatic_mp raises, under one root so callers can catch them all.

::

    LunaticError
    ├── ModuleError            a module that does not compile, or lacks what it must export
    ├── SpawnError             a process could not be started
    │   ├── CapacityError      the engine holds as many processes as it safely can
    │   └── SignatureError     the export's parameters do not match the arguments given
    ├── PermissionDenied       the environment's config forbids the operation
    ├── InvalidNameError       a registry name or version requirement that does not parse
    │                          (also a ValueError)
    ├── FrameError             bytes between the runtime's processes that are no valid frame
    │                          (also a ValueError; lunatic_mp.cluster.frames)
    ├── WorkerLost             the worker process a request went to died before answering
    ├── ContextError           a native process's context used outside that process, or awaited
    │                          wrongly (lunatic_mp.vm.native)
    ├── PluginError            a plugin that cannot be loaded, or a name no plugin has
    ├── BenchError             lunatic-mp bench cannot run as asked: no benchmarks/ source tree,
    │                          an unknown scenario, --plot without matplotlib (lunatic_mp.bench.runner)
    ├── ServeConfigError       a serve config (TOML file or command line) that is invalid
    │                          (also a ValueError; lunatic_mp.serve.config)
    ├── ProtocolError          bytes on a control socket that are no valid msgpack-RPC message
    │                          (also a ValueError; lunatic_mp.serve.rpc)
    ├── RemoteError            a control-socket call the server answered with an error
    │                          (lunatic_mp.serve.client)
    ├── UntrustedServer        a control socket another user could have made or answers on
    │                          (also a ConnectionError; lunatic_mp.serve.peer)
    ├── ArgumentTypeError      an argument of the wrong type: str where bytes go, a path where a
    │                          Module goes (also a TypeError; lunatic_mp.vm.arguments)
    ├── UnguardedMainError     a Runtime started while a worker process imports the main module:
    │                          it needs an ``if __name__ == "__main__":`` guard
    ├── HttpMessageError       an HTTP request or reply in the guest convention's layout that
    │                          does not parse (also a ValueError; lunatic_mp.serve.http)
    ├── PlatformError          the machine cannot run the multi-worker runtime: not Linux on
    │                          x86-64, or too small a /dev/shm (lunatic_mp.cluster.hostenv)
    ├── ClusterError           a cluster that cannot be formed or joined: no Ray, a node that
    │                          does not prove the cluster's secret (lunatic_mp.cluster.gateway)
    ├── NativeCoreError        the C core (lunatic_mp.vm._core) is not built, or the wasmtime
    │                          library lacks a function it needs (lunatic_mp.vm.core)
    └── EngineClosed           the engine (or runtime) was shut down

A guest's own failures (traps, kills, running out of fuel) are not exceptions of the host: they end
that process, and its :class:`~lunatic_mp.vm.process.Finished` says why.
"""

from __future__ import annotations


class LunaticError(Exception):
    """Root of every lunatic_mp error."""


class ModuleError(LunaticError):
    """A Wasm module that cannot be compiled, or that lacks a required export."""


class SpawnError(LunaticError):
    """A process could not be started; nothing was left half-created."""


class CapacityError(SpawnError):
    """The engine is at its process capacity: wait for processes to exit, or add workers."""


class SignatureError(SpawnError):
    """The spawned export's parameter types do not match the parameters given."""


class PermissionDenied(LunaticError):
    """The environment's configuration forbids this operation."""


class InvalidNameError(LunaticError, ValueError):
    """A registry name, version or version requirement that does not parse."""


class WorkerLost(LunaticError):
    """The worker process that was asked died before it answered; a new one has replaced it."""


class ContextError(LunaticError):
    """A native process's context was used by another process or after the process ended, or a
    native coroutine awaited something other than its context's calls."""


class BenchError(LunaticError):
    """The benchmark harness cannot run as asked; the message says what to do instead."""


class ServeConfigError(LunaticError, ValueError):
    """A ``lunatic-mp serve`` configuration that cannot be used; the message names the key."""


class ProtocolError(LunaticError, ValueError):
    """Bytes on a control socket that are no valid msgpack-RPC message; ``code`` is the error
    code the server answers with (``MalformedMessage``, ``FrameTooLarge``)."""

    def __init__(self, message: str, code: str = "MalformedMessage") -> None:
        super().__init__(message)
        self.code = code


class RemoteError(LunaticError):
    """The server answered a control-socket call with an error: ``code`` says which kind
    (``BadParams``, ``NotFound``, ...), the message what went wrong."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class UntrustedServer(LunaticError, ConnectionError):
    """A unix control socket that another user owns, could have made or replaced, or whose
    listener runs as another user: the client refuses to send it anything (its token least of
    all). :mod:`lunatic_mp.serve.peer`."""


class HttpMessageError(LunaticError, ValueError):
    """An HTTP request or reply in the guest convention's binary layout that does not parse
    (:mod:`lunatic_mp.serve.http`)."""


class ArgumentTypeError(LunaticError, TypeError):
    """An argument of the wrong type; the message names it and says what to pass instead."""


class UnguardedMainError(LunaticError):
    """A runtime was started while its worker processes import the main module (the ``spawn``
    start method does): the code that starts it needs an ``if __name__ == "__main__":`` guard."""


class PluginError(LunaticError):
    """A plugin that cannot be loaded (bad module, bad name, failing register function), or a
    plugin asked for that the runtime does not have."""


class PlatformError(LunaticError):
    """The machine cannot run the multi-worker runtime as asked (an unsupported OS or CPU, or a
    /dev/shm too small for its rings); the message says what to do instead."""


class NativeCoreError(LunaticError):
    """The C core cannot run: not built (no C compiler at install), or wasmtime lacks a function."""


class ClusterError(LunaticError):
    """A cluster that cannot be formed, joined or reached (no Ray, a bad peer, an unknown node)."""


class EngineClosed(LunaticError):
    """The engine was closed; create a new one."""
