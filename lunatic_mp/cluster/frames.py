"""The wire format of the frames that the runtime's OS processes exchange.

The supervisor, the registry process and the workers talk only in frames; this module is the one
place that knows how a frame looks in bytes, so that a transport (pipe, shared-memory ring, Ray
actor call) moves opaque ``bytes`` and every other module handles typed, already validated values.

A frame is a msgpack array: a small integer :class:`Kind`, then that kind's fields in declaration
order, for example ``[1, to, sender, tag, data, modules]`` for a :class:`Message`. Each kind is a
frozen, array-like :class:`msgspec.Struct` tagged with its kind, so that msgspec's C code both
encodes it and decodes and type-checks it in one pass (:func:`encode`, :func:`decode`). A frame
comes from another process, which may be buggy or dying, and a bad frame must cost the receiver a
:class:`FrameError` naming the field at fault, never an arbitrary exception deep inside the
router: when msgspec rejects a frame, a slower checker over the plain msgpack value says why.

Integers are i64 (``decode`` rejects what does not fit), ``bytes`` fields are msgpack bin,
``str`` fields msgpack str (UTF-8), ``bool`` fields msgpack booleans (a bool is never accepted
where an int is declared, nor the reverse).

Versioning: every process of one runtime runs from the same installation, so there is no
negotiation. The format is identified by :data:`FORMAT_VERSION`; kinds are append-only, and
changing the fields of an existing kind means a new kind number (or a new ``FORMAT_VERSION``),
never a silent reinterpretation of the old one. :func:`decode` rejects unknown kinds and wrong
field counts, so a mismatch fails loudly at the first frame.
"""

from __future__ import annotations

import enum
import typing
from collections.abc import Callable, Iterator
from typing import Annotated, Any, TypeAlias

import msgpack
import msgspec

from lunatic_mp.cluster.envcodec import decode_config, decode_shared_config, encode_config
from lunatic_mp.cluster.wire import I64_MAX as _I64_MAX
from lunatic_mp.cluster.wire import I64_MIN as _I64_MIN
from lunatic_mp.cluster.wire import MAX_FRAME_SIZE, FrameError, field_code, field_problem
from lunatic_mp.cluster.wire import int_text as _int_text
from lunatic_mp.cluster.wire import type_name as _type_name
from lunatic_mp.vm.mailbox import DeathReason

__all__ = [
    "CLASS_OF", "FORMAT_VERSION", "KIND_OF", "MAX_FRAME_SIZE", "MAX_JOBS", "PARAM_I32", "PARAM_I64",
    "EnvAcquire", "EnvRelease", "Exists", "ExistsReply", "Forward", "Frame", "FrameError",
    "HttpRoutes", "Jobs", "JobsDone", "Kill", "Kind", "Link", "LinkDied", "ListProcesses",
    "MailboxFull", "Message", "MessageStreams", "Monitor", "NodeLost", "NodeTable", "ProcessDied",
    "ProcessFinished", "ProcessGone", "RegistryGet", "RegistryPut", "RegistryRemove",
    "RegistryReplica", "RegistryReply", "RegistryWatch", "Shutdown", "Spawn", "SpawnNative",
    "SpawnReply", "Stats", "StatsReply", "StopMonitoring", "Unlink", "WorkerLost", "WorkerStarted",
    "decode", "decode_config", "decode_shared_config", "encode", "encode_config", "validate",
]  # fmt: skip

FORMAT_VERSION = 1
"""Version of the frame format; bump it with any change that is not a new kind."""

PARAM_I32 = 0x7F
"""``Spawn.param_kinds`` byte of an i32 parameter (the Wasm value-type byte)."""
PARAM_I64 = 0x7E
"""``Spawn.param_kinds`` byte of an i64 parameter."""

_I32_MIN = -(2**31)
_I32_MAX = 2**31 - 1


class Kind(enum.IntEnum):
    """The first element of every frame. Append only: never renumber or reuse a value."""

    MESSAGE = 1
    KILL = 2
    LINK = 3
    UNLINK = 4
    LINK_DIED = 5
    MONITOR = 6
    STOP_MONITORING = 7
    PROCESS_DIED = 8
    SPAWN = 9
    SPAWN_REPLY = 10
    EXISTS = 11
    EXISTS_REPLY = 12
    REGISTRY_PUT = 13
    REGISTRY_GET = 14
    REGISTRY_REMOVE = 15
    REGISTRY_REPLY = 16
    REGISTRY_WATCH = 17
    PROCESS_GONE = 18
    WORKER_STARTED = 19
    WORKER_LOST = 20
    SHUTDOWN = 21
    STATS = 22
    STATS_REPLY = 23
    PROCESS_FINISHED = 24
    SPAWN_NATIVE = 25
    LIST_PROCESSES = 26
    MESSAGE_STREAMS = 27
    HTTP_ROUTES = 30
    MAILBOX_FULL = 40
    ENV_ACQUIRE = 41
    ENV_RELEASE = 42
    FORWARD = 43
    NODE_LOST = 44
    NODE_TABLE = 45
    REGISTRY_REPLICA = 46
    JOBS = 47
    JOBS_DONE = 48


# -- the frames ---------------------------------------------------------------------------------
# ``reply_to`` is the endpoint (pid) a reply goes to; ``request`` an id the reply echoes.

I64 = Annotated[int, msgspec.Meta(ge=_I64_MIN, le=_I64_MAX)]
"""An int field: msgspec rejects what does not fit i64 (``typing.get_type_hints`` sees ``int``)."""


class _Frame(msgspec.Struct, frozen=True, array_like=True, gc=False, forbid_unknown_fields=True):
    """The base of every frame: encoded as ``[kind, *fields]`` (the tag, then the fields in
    declaration order); iterable, with ``_fields`` and ``_replace`` as a NamedTuple has."""

    if typing.TYPE_CHECKING:
        _fields: typing.ClassVar[tuple[str, ...]]

    def __iter__(self) -> Iterator[Any]:
        return iter(msgspec.structs.astuple(self))

    def _replace(self, **changes: Any) -> typing.Self:
        return msgspec.structs.replace(self, **changes)


class Message(_Frame, frozen=True, tag=Kind.MESSAGE.value):
    """A message for process ``to``; ``modules`` are content hashes of attached modules."""

    to: I64
    sender: I64
    tag: I64
    data: bytes
    modules: tuple[bytes, ...]


class Kill(_Frame, frozen=True, tag=Kind.KILL.value):
    """Kill process ``to`` (it dies with a Failure, ``reason`` as its cause)."""

    to: I64
    reason: str


class Link(_Frame, frozen=True, tag=Kind.LINK.value):
    """Process ``other`` links to ``to``; ``to`` stores ``tag`` at its side of the link."""

    to: I64
    other: I64
    tag: I64


class Unlink(_Frame, frozen=True, tag=Kind.UNLINK.value):
    """Remove the link between ``to`` and ``other``."""

    to: I64
    other: I64


class LinkDied(_Frame, frozen=True, tag=Kind.LINK_DIED.value):
    """``dead``, linked to ``to`` with ``tag``, died; ``reason`` is a :class:`DeathReason` value
    (0 normal, 1 failure, 2 no process) and ``cause`` a human-readable why."""

    to: I64
    dead: I64
    tag: I64
    reason: I64
    cause: str


class Monitor(_Frame, frozen=True, tag=Kind.MONITOR.value):
    """``watcher`` starts monitoring ``to``."""

    to: I64
    watcher: I64


class StopMonitoring(_Frame, frozen=True, tag=Kind.STOP_MONITORING.value):
    """``watcher`` stops monitoring ``to``."""

    to: I64
    watcher: I64


class ProcessDied(_Frame, frozen=True, tag=Kind.PROCESS_DIED.value):
    """``dead``, monitored by ``to``, died."""

    to: I64
    dead: I64


class Spawn(_Frame, frozen=True, tag=Kind.SPAWN.value):
    """Spawn ``function`` of the module with content hash ``module`` on the receiving worker.

    ``params`` are the arguments as ints and ``param_kinds`` one byte per parameter
    (:data:`PARAM_I32` or :data:`PARAM_I64`); i32 values must fit a signed i32. ``config`` is an
    :func:`encode_config` blob. ``link_pid`` 0 means no link; otherwise the child is linked to
    ``link_pid`` with ``link_tag`` before any of its code runs.
    """

    request: I64
    reply_to: I64
    module: bytes
    function: str
    params: tuple[I64, ...]
    param_kinds: bytes
    config: bytes
    link_pid: I64
    link_tag: I64


class SpawnNative(_Frame, frozen=True, tag=Kind.SPAWN_NATIVE.value):
    """Spawn a native process (:mod:`lunatic_mp.vm.native`) on the receiving worker: ``payload`` is
    the cloudpickled ``(function, args, kwargs)``; the rest as in :class:`Spawn`, and the answer
    a :class:`SpawnReply`. Only the runtime's own processes send it (never a socket)."""

    request: I64
    reply_to: I64
    payload: bytes
    config: bytes
    link_pid: I64
    link_tag: I64


class SpawnReply(_Frame, frozen=True, tag=Kind.SPAWN_REPLY.value):
    """The answer to :class:`Spawn`: the new ``pid``, or pid 0 and the ``error`` text."""

    request: I64
    to: I64
    pid: I64
    error: str


class Exists(_Frame, frozen=True, tag=Kind.EXISTS.value):
    """Does process ``pid`` exist?"""

    request: I64
    reply_to: I64
    pid: I64


class ExistsReply(_Frame, frozen=True, tag=Kind.EXISTS_REPLY.value):
    """The answer to :class:`Exists`."""

    request: I64
    to: I64
    exists: bool


class RegistryPut(_Frame, frozen=True, tag=Kind.REGISTRY_PUT.value):
    """Register ``pid`` on ``node`` under ``name`` (``"name@version"``)."""

    request: I64
    reply_to: I64
    name: str
    node: I64
    pid: I64


class RegistryGet(_Frame, frozen=True, tag=Kind.REGISTRY_GET.value):
    """Look ``name`` up; ``lock`` reserves the name for a ``get_or_spawn`` when it is absent."""

    request: I64
    reply_to: I64
    name: str
    lock: bool


class RegistryRemove(_Frame, frozen=True, tag=Kind.REGISTRY_REMOVE.value):
    """Remove the registration ``name``."""

    request: I64
    reply_to: I64
    name: str


class RegistryReply(_Frame, frozen=True, tag=Kind.REGISTRY_REPLY.value):
    """The registry's answer: ``found`` with ``node`` and ``pid``, or an ``error`` text."""

    request: I64
    to: I64
    found: bool
    node: I64
    pid: I64
    error: str


class RegistryWatch(_Frame, frozen=True, tag=Kind.REGISTRY_WATCH.value):
    """Registry -> worker: send :class:`ProcessGone` when process ``to`` dies."""

    to: I64


class ProcessGone(_Frame, frozen=True, tag=Kind.PROCESS_GONE.value):
    """Worker -> registry: the watched process ``pid`` died."""

    pid: I64


class WorkerStarted(_Frame, frozen=True, tag=Kind.WORKER_STARTED.value):
    """Supervisor -> everyone: ``worker`` runs, with endpoint ``slot``."""

    worker: I64
    slot: I64


class WorkerLost(_Frame, frozen=True, tag=Kind.WORKER_LOST.value):
    """Supervisor -> everyone: ``worker`` died."""

    worker: I64


class Shutdown(_Frame, frozen=True, tag=Kind.SHUTDOWN.value):
    """Stop: the receiver ends its processes and exits."""


class Stats(_Frame, frozen=True, tag=Kind.STATS.value):
    """Ask for the receiver's statistics."""

    request: I64
    reply_to: I64


class StatsReply(_Frame, frozen=True, tag=Kind.STATS_REPLY.value):
    """The answer to :class:`Stats`; ``payload`` is a msgpack blob owned by the metrics module."""

    request: I64
    to: I64
    payload: bytes


class MessageStreams(_Frame, frozen=True, tag=Kind.MESSAGE_STREAMS.value):
    """A :class:`Message` with TCP streams attached (``lunatic::message::push_tcp_stream``).

    ``streams`` holds four ints per stream: the token under which its file descriptor went to
    the receiving worker's descriptor socket (:mod:`lunatic_mp.cluster.fdpass`), then its read, write
    and peek timeouts in milliseconds (-1: none).
    """

    to: I64
    sender: I64
    tag: I64
    data: bytes
    modules: tuple[bytes, ...]
    streams: tuple[I64, ...]


class ListProcesses(_Frame, frozen=True, tag=Kind.LIST_PROCESSES.value):
    """Ask a worker for its live processes, at most ``limit`` of them. The answer is a
    :class:`StatsReply` whose payload is a msgpack map: ``total``, how many live processes the
    worker holds, and ``processes``, a map per process (``Worker.process_list`` says which)."""

    request: I64
    reply_to: I64
    limit: I64


class HttpRoutes(_Frame, frozen=True, tag=Kind.HTTP_ROUTES.value):
    """Supervisor -> worker: the HTTP front end's table (routes, address, limits; a msgpack blob
    owned by :mod:`lunatic_mp.serve.http`), replacing the one it had."""

    payload: bytes


class MailboxFull(_Frame, frozen=True, tag=Kind.MAILBOX_FULL.value):
    """Worker -> worker: ``target``'s mailbox (``EnvConfig.max_mailbox``) is full (``full``):
    pause the sender ``to`` until a second frame says it has room again (``full`` false)."""

    to: I64
    target: I64
    full: bool


class EnvAcquire(_Frame, frozen=True, tag=Kind.ENV_ACQUIRE.value):
    """-> registry: count one more process of environment ``environment`` on ``worker``, taking
    ``memory`` bytes, unless it already has ``limit`` live processes (``EnvConfig.max_processes``;
    0: no limit) or they take more than ``memory_limit`` bytes with it
    (``EnvConfig.max_env_memory``; 0: no limit). The RegistryReply says ``found`` when granted,
    else ``error`` says why."""

    request: I64
    reply_to: I64
    environment: I64
    limit: I64
    worker: I64
    memory: I64
    memory_limit: I64


class EnvRelease(_Frame, frozen=True, tag=Kind.ENV_RELEASE.value):
    """-> registry: a process of ``environment`` on ``worker``, which took ``memory`` bytes,
    ended (or was never started)."""

    environment: I64
    worker: I64
    memory: I64


class ProcessFinished(_Frame, frozen=True, tag=Kind.PROCESS_FINISHED.value):
    """How a monitored process ended, for a monitor in the host program (richer than
    ProcessDied): ``outcome`` 0 normal, 1 killed, 2 failed; ``results`` a msgpack list of the
    export's results; ``exit_code`` -1 when there is none; ``backtrace`` the guest's frames,
    one a line."""

    to: I64
    pid: I64
    outcome: I64
    results: bytes
    message: str
    exit_code: I64
    backtrace: str


class Forward(_Frame, frozen=True, tag=Kind.FORWARD.value):
    """-> the node's gateway (its supervisor): frames for the node of ``place`` (a node and a
    worker, :func:`lunatic_mp.pids.place_of`) in another node of a cluster, as ``payload``: one or
    more records of :func:`lunatic_mp.cluster.gateway.frame_record`, each naming its own place
    (its worker ``ANY_WORKER``: whichever that node chooses, a spawn). ``modules`` are the digests
    of the modules the frames refer to, which the other node gets first if it has not yet got
    them. Worker -> worker of the same node: a step's plain messages from its guests to ``place``,
    batched in C (lunatic_mp/vm/inbox.c), no modules."""

    place: I64
    payload: bytes
    modules: tuple[bytes, ...]


class NodeLost(_Frame, frozen=True, tag=Kind.NODE_LOST.value):
    """Gateway -> everyone: ``node`` of the cluster was lost (``worker`` 0), or one worker of it;
    links and monitors into it fire with ``cause``, requests to it fail."""

    node: I64
    worker: I64
    cause: str


class NodeTable(_Frame, frozen=True, tag=Kind.NODE_TABLE.value):
    """Gateway -> everyone: the cluster's live nodes, ``payload`` a msgpack map of node id to its
    tags (a map of str to str), replacing the last table, and ``names_at``, the destination of
    registry frames (the registry process of node 1); sent at start and when a node joins or goes."""

    names_at: I64
    payload: bytes


class RegistryReplica(_Frame, frozen=True, tag=Kind.REGISTRY_REPLICA.value):
    """Node 1's registry -> the other nodes' registries, which answer lookups from a replica:
    ``name`` now names ``pid`` on ``node`` (``present``), or no longer names anything (not
    ``present``); not ``present`` and no ``name``: every name of ``pid`` is gone."""

    name: str
    node: I64
    pid: I64
    present: bool


MAX_JOBS = 4096
"""Most jobs in one :class:`Jobs` frame."""


class Jobs(_Frame, frozen=True, tag=Kind.JOBS.value):
    """The host program -> a worker: run ``count`` jobs, each a process of ``function`` of the
    module with content hash ``module`` and ``config`` (as in :class:`Spawn`), its arguments the
    next ``len(param_kinds)`` of ``params``. ``inputs`` is empty, or one message per job, which
    the job finds in its mailbox from ``reply_to`` with its entry of ``tags`` (the executor's
    bytes jobs). Answered by :class:`JobsDone` frames as the jobs start and end: a batch of jobs
    costs a frame each way, not two per job."""

    request: I64
    reply_to: I64
    module: bytes
    function: str
    count: I64
    params: tuple[I64, ...]
    param_kinds: bytes
    config: bytes
    inputs: tuple[bytes, ...]
    tags: tuple[I64, ...]


class JobsDone(_Frame, frozen=True, tag=Kind.JOBS_DONE.value):
    """A worker -> the host program, about the :class:`Jobs` batch ``request``: in the first
    answer, ``started`` is the pid of each job in order (0: its spawn failed), later empty; then
    the jobs that ended since the last answer: their indexes (``ended``), and for each its
    ``outcomes`` (0 normal, 1 killed, 2 failed), ``results`` (one msgpack list of each one's
    results), ``messages``, ``backtraces`` (frames one a line) and ``exit_codes`` (-1: none).
    ``remaining`` jobs of the batch have not ended; the last answer says 0."""

    request: I64
    to: I64
    started: tuple[I64, ...]
    ended: tuple[I64, ...]
    outcomes: tuple[I64, ...]
    results: bytes
    messages: tuple[str, ...]
    backtraces: tuple[str, ...]
    exit_codes: tuple[I64, ...]
    remaining: I64


Frame: TypeAlias = (
    Message | Kill | Link | Unlink | LinkDied | Monitor | StopMonitoring | ProcessDied | Spawn
    | SpawnReply | Exists | ExistsReply | RegistryPut | RegistryGet | RegistryRemove
    | RegistryReply | RegistryWatch | ProcessGone | WorkerStarted | WorkerLost | Shutdown | Stats
    | StatsReply | ProcessFinished | SpawnNative | ListProcesses | MessageStreams | HttpRoutes
    | MailboxFull | EnvAcquire | EnvRelease | Forward | NodeLost | NodeTable | RegistryReplica
    | Jobs | JobsDone
)  # fmt: skip
"""Any frame."""

CLASS_OF: dict[Kind, type[Frame]] = {Kind(cls.__struct_config__.tag): cls for cls in typing.get_args(Frame)}
"""The frame class of each kind."""

KIND_OF: dict[type[Frame], Kind] = {cls: kind for kind, cls in CLASS_OF.items()}
"""The kind of each frame class."""

for _cls in KIND_OF:
    _cls._fields = _cls.__struct_fields__


_FIELDS: dict[type[Frame], tuple[tuple[str, str], ...]] = {
    cls: tuple((name, field_code(tp)) for name, tp in typing.get_type_hints(cls).items()) for cls in KIND_OF
}
"""Each frame class's fields, as (name, type code) in declaration order."""


# -- checks beyond types ------------------------------------------------------------------------

_DEATH_REASONS = frozenset(int(reason) for reason in DeathReason)
_PARAM_RANGES = {PARAM_I32: (_I32_MIN, _I32_MAX), PARAM_I64: (_I64_MIN, _I64_MAX)}


def _link_died_problem(frame: Any) -> str | None:
    if frame.reason not in _DEATH_REASONS:
        return f"LinkDied.reason must be one of {sorted(_DEATH_REASONS)}, got {frame.reason}"
    return None


def _params_problem(name: str, params: tuple[int, ...], kinds: bytes) -> str | None:
    """What is wrong with ``params`` given their kinds, repeated as often as they fit."""
    for i, value in enumerate(params):
        kind = kinds[i % len(kinds)]
        bounds = _PARAM_RANGES.get(kind)
        if bounds is None:
            return f"{name}.param_kinds[{i % len(kinds)}] is 0x{kind:02x}, not 0x7f (i32) or 0x7e (i64)"
        if not bounds[0] <= value <= bounds[1]:
            width = "i32" if kind == PARAM_I32 else "i64"
            return f"{name}.params[{i}] = {_int_text(value)} does not fit {width}"
    return None


def _spawn_problem(frame: Any) -> str | None:
    params, kinds = frame.params, frame.param_kinds
    if len(params) != len(kinds):
        return f"Spawn has {len(params)} params but {len(kinds)} param kinds"
    return _params_problem("Spawn", params, kinds)


def _jobs_problem(frame: Any) -> str | None:
    count, params, kinds = frame.count, frame.params, frame.param_kinds
    if not 0 <= count <= MAX_JOBS:
        return f"Jobs.count must be 0..{MAX_JOBS}, got {_int_text(count)}"
    if len(params) != count * len(kinds):
        return f"Jobs has {len(params)} params for {count} jobs of {len(kinds)} params each"
    if len(frame.inputs) not in (0, count) or len(frame.tags) != len(frame.inputs):
        return f"Jobs has {len(frame.inputs)} inputs and {len(frame.tags)} tags for {count} jobs"
    return _params_problem("Jobs", params, kinds)


def _jobs_done_problem(frame: Any) -> str | None:
    ended = len(frame.ended)
    per_job = (frame.outcomes, frame.messages, frame.backtraces, frame.exit_codes)
    if any(len(field) != ended for field in per_job):
        return f"JobsDone must give an outcome, message, backtrace and exit code for each of its {ended} jobs"
    if any(outcome not in (0, 1, 2) for outcome in frame.outcomes):
        return "JobsDone.outcomes must be 0 (normal), 1 (killed) or 2 (failed)"
    if frame.remaining < 0:
        return f"JobsDone.remaining must not be negative, got {_int_text(frame.remaining)}"
    return None


_EXTRA: dict[type[Frame], Callable[[Any], str | None]] = {
    LinkDied: _link_died_problem,
    Spawn: _spawn_problem,
    Jobs: _jobs_problem,
    JobsDone: _jobs_done_problem,
}
"""Per-kind checks run on a frame whose field types are right; they return what is wrong."""


# -- the slow checker: complete, and says what is wrong -----------------------------------------


def _problem(obj: object) -> str | None:
    """What makes ``obj`` (decoded msgpack) not a valid frame, or None if it is one.

    Slow but thorough; :func:`decode` falls back on it to explain what msgspec rejected.
    """
    if type(obj) is not tuple:
        return f"a frame must be a msgpack array, got {_type_name(obj)}"
    if not obj:
        return "a frame must not be an empty array"
    kind = obj[0]
    if type(kind) is not int:
        return f"a frame's kind must be int, got {_type_name(kind)}"
    if kind not in _KIND_VALUES:
        return f"unknown frame kind {kind}"
    cls = CLASS_OF[Kind(kind)]
    fields = _FIELDS[cls]
    if len(obj) != len(fields) + 1:
        return f"{cls.__name__} takes {len(fields)} fields, got {len(obj) - 1}"
    for (name, code), value in zip(fields, obj[1:], strict=True):
        problem = field_problem(f"{cls.__name__}.{name}", code, value)
        if problem is not None:
            return problem
    extra = _EXTRA.get(cls)
    return None if extra is None else extra(cls(*obj[1:]))


# -- encoding and decoding ----------------------------------------------------------------------

_KIND_VALUES = frozenset(int(kind) for kind in Kind)
_KIND_INT: dict[type[Frame], int] = {cls: int(kind) for cls, kind in KIND_OF.items()}
# msgspec's encoder and decoder run in C without calling back into Python for these types, so one
# shared instance of each is safe across threads and saves the set-up per call.
_pack = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.Decoder(Frame).decode
_unpackb = msgpack.unpackb
_UNPACK_ERRORS = (ValueError, TypeError, msgpack.UnpackException, RecursionError)


def encode(frame: Frame) -> bytes:
    """``frame`` as bytes: the msgpack array ``[kind, *fields]``.

    Field values are not checked (that is :func:`validate`'s job, and :func:`decode` checks them
    on the other side); a value msgpack cannot pack, an object that is not a frame, or a result
    larger than :data:`MAX_FRAME_SIZE` raises :class:`FrameError`.
    """
    if type(frame) not in _KIND_INT:
        raise FrameError(f"not a frame: {type(frame).__name__}")
    try:
        data = _pack(frame)
    except (TypeError, ValueError, OverflowError) as exc:
        raise FrameError(f"cannot encode {type(frame).__name__}: {exc}") from exc
    if len(data) > MAX_FRAME_SIZE:
        raise FrameError(f"{type(frame).__name__} frame of {len(data)} bytes exceeds {MAX_FRAME_SIZE}")
    return data


def decode(data: bytes | bytearray | memoryview) -> Frame:
    """The frame encoded in ``data``, checked: raises :class:`FrameError`, and only that, on any
    input that is not exactly one valid frame (malformed or truncated msgpack, trailing bytes, an
    unknown kind, a wrong field count or type, an int beyond i64, more than
    :data:`MAX_FRAME_SIZE` bytes). ``bytes`` fields of the result are copies, never views of
    ``data``.
    """
    if len(data) > MAX_FRAME_SIZE:
        raise FrameError(f"frame of {len(data)} bytes exceeds {MAX_FRAME_SIZE}")
    try:
        frame: Frame = _decode(data)
    except (ValueError, RecursionError):
        raise _explain(data) from None
    extra = _EXTRA.get(type(frame))
    if extra is not None:
        problem = extra(frame)
        if problem is not None:
            raise FrameError(problem)
    return frame


def _explain(data: bytes | bytearray | memoryview) -> FrameError:
    """The error for bytes that msgspec rejected, from the slow checker."""
    try:
        obj = _unpackb(data, raw=False, strict_map_key=False, use_list=False)
    except _UNPACK_ERRORS as exc:
        return FrameError(f"malformed msgpack: {type(exc).__name__}: {exc}")
    return FrameError(_problem(obj) or "invalid frame")


def validate(frame: Frame) -> Frame:
    """``frame`` itself if :func:`decode` would accept its encoding; :class:`FrameError` if not.

    For tests and debugging: :func:`encode` does not check field types, to stay fast.
    """
    kind = _KIND_INT.get(type(frame))
    if kind is None:
        raise FrameError(f"not a frame: {type(frame).__name__}")
    problem = _problem((kind, *frame))
    if problem is not None:
        raise FrameError(problem)
    return frame
