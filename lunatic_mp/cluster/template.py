"""A forkserver of our own: the template process a runtime's workers and registry are forked from.

A spawned child pays for a fresh interpreter and for importing the worker (asyncio, wasmtime, the
VM): 0.2-0.4 s of CPU each, all at once on start-up, and again for every replacement. So the
supervisor starts one *template* process early (a fresh interpreter, ``python -c``: never a fork of
the host program, which may have compiled Wasm); it imports what a child needs once and then forks
the children on request, over a Unix socket (``SCM_RIGHTS`` carries the child's log pipe one way
and a pidfd of the new child the other way). The template never compiles Wasm, nor makes a
wasmtime engine: a child forked after a compile hangs on its first compile (DESIGN.md).

Stages, all before the first request: the registry process's modules (no wasmtime), then a spare
child forked for the registry process (so it never has wasmtime in it), then the host program's
main module, imported as multiprocessing's ``spawn`` does (an unguarded main still gets
``UnguardedMainError``), then the worker. From then on the template keeps one *spare* child forked
in advance, waiting on a socket for its spec, and making its engine once the runtime has started:
a replacement worker is a message away, not a fork and an engine away.

Lifetime: the template dies with the supervisor (``PR_SET_PDEATHSIG`` from its launcher thread, and
the end of its socket), its children die with it (``PR_SET_PDEATHSIG``) and also watch the
supervisor's sentinel pipe, inherited from the template (:meth:`Hub.orphaned`). It reaps its
children and reports each exit code to the supervisor, which watches each child through its pidfd.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import multiprocessing
import os
import pickle
import select
import signal
import socket
import struct
import subprocess
import sys
import threading
import traceback
import weakref
from dataclasses import dataclass
from multiprocessing import spawn, util
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, NoReturn

from lunatic_mp.cluster import lifecycle
from lunatic_mp.cluster.child import die_with_parent, ignore_stop_signals
from lunatic_mp.cluster.launcher import Launcher
from lunatic_mp.cluster.logs import send_logs_to
from lunatic_mp.errors import LunaticError

log = logging.getLogger(__name__)

REGISTRY_KIND = "registry"
WORKER_KIND = "worker"
WARM_KIND = "warm"
"""Not a child: the runtime has started, spares may make their engines now."""
NAME = "lunatic-mp-template"
_HEADER = struct.Struct("<I")
_MAX_FDS = 4
BOOT = "import sys; sys.path.insert(0, sys.argv[1]); from lunatic_mp.cluster.template import boot; boot()"
"""The template's command line: a fresh interpreter that imports nothing of the host program's yet."""
EXIT_REPORT_TIMEOUT_S = 1.0
"""How long the exit code of a child that has exited may take to come from the template."""


class TemplateGone(LunaticError):
    """The template process exited: children are started with ``spawn`` instead."""


def available() -> bool:
    """Whether this kernel and Python have pidfds (Linux 5.3), which the supervisor watches."""
    if not hasattr(os, "pidfd_open") or not hasattr(signal, "pidfd_send_signal"):
        return False
    try:
        os.close(os.pidfd_open(os.getpid()))
    except OSError:
        return False
    return True


# --- messages: a length, a pickle, descriptors beside the first bytes ------------------------------


def send_message(sock: socket.socket, payload: object, fds: list[int] | tuple[int, ...] = ()) -> None:
    data = pickle.dumps(payload)
    buffer = _HEADER.pack(len(data)) + data
    sent = socket.send_fds(sock, [buffer], list(fds))
    if sent < len(buffer):
        sock.sendall(buffer[sent:])


def _receive_exactly(sock: socket.socket, size: int, start: bytes = b"") -> bytes | None:
    data = bytearray(start)
    while len(data) < size:
        more = sock.recv(size - len(data))
        if not more:
            return None
        data += more
    return bytes(data)


def receive_message(sock: socket.socket) -> tuple[Any, list[int]] | None:
    """The next message and the descriptors sent with it; None at the end of the socket."""
    first, fds, _flags, _address = socket.recv_fds(sock, _HEADER.size, _MAX_FDS)
    header = _receive_exactly(sock, _HEADER.size, first) if first else None
    body = None if header is None else _receive_exactly(sock, _HEADER.unpack(header)[0])
    if body is None:
        for fd in fds:
            os.close(fd)
        return None
    return pickle.loads(body), fds  # noqa: S301 - from the other end of our own socketpair


# --- the template process ------------------------------------------------------------------------


@dataclass
class _Spare:
    pid: int
    pidfd: int
    sock: socket.socket


class _Template:
    """The template's loop: fork on request, reap, report."""

    def __init__(self, control: socket.socket, preparation: dict[str, Any]) -> None:
        self.control = control
        self.preparation = preparation
        self.pid = os.getpid()
        self.children: dict[int, int] = {}  # pidfd -> pid
        self.spares: dict[str, _Spare] = {}
        """Children forked ahead, by the kind they become: the registry process's is forked before
        wasmtime is imported; a worker's is always there (it becomes a registry process too)."""
        self.engine_options: dict[str, Any] | None = None
        """A worker's (the same for every worker of a runtime), from the first worker's spec."""
        self.warm = False
        """Whether the runtime has started: from then on a spare makes its engine at once (before,
        it would take the CPU from the workers starting)."""

    def serve(self) -> None:
        try:
            self._stages()
            while True:
                if WORKER_KIND not in self.spares:
                    spare = self.spares[WORKER_KIND] = self._fork_spare()
                    send_message(self.control, ("spare", 0, spare.pid))
                watched = [self.control.fileno(), *self.children, *(s.pidfd for s in self.spares.values())]
                ready, _, _ = select.select(watched, [], [])
                for fd in ready:
                    if fd != self.control.fileno():
                        self._reap(fd)
                if self.control.fileno() in ready:
                    message = receive_message(self.control)
                    if message is None:
                        return  # the supervisor closed the socket, or died
                    self._fork(*message)
        finally:
            for spare in self.spares.values():
                spare.sock.close()  # it exits at the end of its socket
                with contextlib.suppress(OSError):
                    signal.pidfd_send_signal(spare.pidfd, signal.SIGKILL)
                    os.waitpid(spare.pid, 0)  # gone before the supervisor's close() returns

    def _stages(self) -> None:
        """Everything a child needs, imported before the first request: the registry process's
        spare is forked before the main module and the worker bring wasmtime in."""
        self.spares[REGISTRY_KIND] = self._fork_spare()
        self._main_stage()
        from lunatic_mp.cluster import worker  # noqa: F401 - the worker stage: wasmtime and the VM

    def _fork(self, request: tuple[int, str, str, bytes], fds: list[int]) -> None:
        request_id, kind, name, spec = request
        if kind == WARM_KIND:
            self.warm = True
            spare = self.spares.get(WORKER_KIND)
            if spare is not None and self.engine_options is not None:
                send_message(spare.sock, (WARM_KIND, "", pickle.dumps(self.engine_options)))
            return
        if kind == WORKER_KIND and self.engine_options is None:
            self.engine_options = pickle.loads(spec).engine_options  # noqa: S301 - the supervisor's
        spare = self.spares.pop(REGISTRY_KIND, None) if kind == REGISTRY_KIND else None
        if spare is None:
            spare = self.spares.pop(WORKER_KIND)
        send_message(spare.sock, (kind, name, spec), fds)
        spare.sock.close()
        for fd in fds:
            os.close(fd)
        self.children[spare.pidfd] = spare.pid
        theirs = os.dup(spare.pidfd)
        try:
            send_message(self.control, ("forked", request_id, spare.pid), [theirs])
        finally:
            os.close(theirs)

    def _main_stage(self) -> None:
        """Import the host program's main module as a spawned child does (``__mp_main__``), after
        the registry process's spare was forked: what the workers inherit. A main module that
        starts a runtime when imported ends this process with ``UNGUARDED_MAIN_EXIT``."""
        process: Any = multiprocessing.current_process()
        process._inheriting = True  # what lifecycle.check_not_bootstrapping looks at
        try:
            spawn.prepare(self.preparation)
        finally:
            process._inheriting = False
        if threading.active_count() > 1:  # a fork copies only this thread, not the locks' holders
            log.warning(
                "the main module started %d threads when imported; the workers forked after it "
                'have none of them (start them under `if __name__ == "__main__":`)',
                threading.active_count() - 1,
            )

    def _fork_spare(self) -> _Spare:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        pid = os.fork()
        if pid == 0:
            ours.close()
            self._in_child()
            _spare_main(theirs, self.pid, self.engine_options if self.warm else None)
        theirs.close()
        return _Spare(pid, os.pidfd_open(pid), ours)

    def _in_child(self) -> None:
        """In a new child: drop the template's descriptors (its socket, its children's pidfds)."""
        self.control.close()
        for pidfd in self.children:
            os.close(pidfd)
        for spare in self.spares.values():
            os.close(spare.pidfd)
            spare.sock.close()

    def _reap(self, pidfd: int) -> None:
        for kind, spare in list(self.spares.items()):
            if spare.pidfd == pidfd:  # a spare that died unused
                del self.spares[kind]
                spare.sock.close()
                os.close(spare.pidfd)
                os.waitpid(spare.pid, 0)
                return
        pid = self.children.pop(pidfd)
        os.close(pidfd)
        _, status = os.waitpid(pid, 0)
        with contextlib.suppress(OSError):
            send_message(self.control, ("exited", pid, os.waitstatus_to_exitcode(status)))


def _spare_main(sock: socket.socket, template_pid: int, engine_options: dict[str, Any] | None) -> NoReturn:
    """A spare child: ready to become a worker (or the registry process) the moment a spec comes,
    its engine made once the runtime has started (:attr:`_Template.warm`)."""
    die_with_parent(template_pid, deathsig=True)
    while True:
        if engine_options is not None:
            from lunatic_mp.cluster import worker

            worker.prepare_engine(engine_options)
        try:
            message = receive_message(sock)
        except OSError:
            message = None
        if message is None:  # the template has gone
            os._exit(0)
        (kind, name, spec), fds = message
        if kind != WARM_KIND:
            break
        engine_options = pickle.loads(spec)  # noqa: S301 - from the template
    sock.close()
    _child_main(kind, name, spec, fds[0], template_pid)


def _child_main(kind: str, name: str, spec_data: bytes, log_fd: int, template_pid: int) -> NoReturn:
    """Run the worker's or the registry process's entry point, then exit without the template's
    exit handlers (they belong to the template)."""
    code = 1
    try:
        multiprocessing.current_process().name = name
        spec = pickle.loads(spec_data)  # noqa: S301 - from the supervisor
        spec.log_pipe = Connection(log_fd, readable=False)
        spec.supervisor_pid = template_pid  # the parent whose death it dies with
        if kind == REGISTRY_KIND:
            from lunatic_mp.cluster import registry_process

            registry_process.main(spec)
        else:
            from lunatic_mp.cluster import worker

            worker.main(spec)
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:  # noqa: BLE001 - reported, then the process ends
        traceback.print_exc()
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def boot() -> None:
    """Entry point of the template process (``python -c``, see :class:`Template`): its arguments
    are the descriptors of its socket, its log pipe and the supervisor's sentinel pipe, and the
    supervisor's pid; the first message, its log level and how to import the main module."""
    control_fd, log_fd, sentinel_fd, supervisor_pid = (int(arg) for arg in sys.argv[2:6])
    die_with_parent(supervisor_pid, deathsig=True)
    ignore_stop_signals()
    # The children's Hub watches the supervisor's sentinel as a spawned child's does.
    mp_process: Any = multiprocessing.process
    mp_process._parent_process = mp_process._ParentProcess("MainProcess", supervisor_pid, sentinel_fd)
    with socket.socket(fileno=control_fd) as control:
        first = receive_message(control)
        if first is None:
            os._exit(0)
        (log_level, preparation), _ = first
        send_logs_to(Connection(log_fd, readable=False), log_level)
        from lunatic_mp.cluster import registry_process  # noqa: F401 - the registry stage

        _Template(control, preparation).serve()
    logging.shutdown()
    os._exit(0)  # without the interpreter's teardown of everything it imported: 50 ms and more


# --- the supervisor's side -----------------------------------------------------------------------


class ForkedProcess:
    """A child forked by the template, with what the supervisor uses of ``multiprocessing.Process``:
    its pidfd is the sentinel, its exit code comes from the template."""

    def __init__(self, template: Template, name: str, pid: int, pidfd: int) -> None:
        self._template = template
        self.name = name
        self.pid = pid
        self.sentinel = pidfd
        self._finalizer = weakref.finalize(self, os.close, pidfd)

    @property
    def exitcode(self) -> int | None:
        """How it exited, once the template has said (it is asked for after :meth:`join`: the
        template's word comes a moment after the pidfd says it has exited)."""
        if not self.is_alive():
            self._template.wait_exit(self.pid, EXIT_REPORT_TIMEOUT_S)
        return self._template.exitcode(self.pid)

    def is_alive(self) -> bool:
        if self._finalizer.alive:
            return not select.select([self.sentinel], [], [], 0)[0]
        return False

    def join(self, timeout: float | None = None) -> None:
        """Wait until it has exited."""
        if self._finalizer.alive:
            select.select([self.sentinel], [], [], timeout)

    def kill(self) -> None:
        if self._finalizer.alive:
            with contextlib.suppress(OSError):
                signal.pidfd_send_signal(self.sentinel, signal.SIGKILL)

    def __repr__(self) -> str:
        return f"<ForkedProcess {self.name} pid={self.pid} exitcode={self.exitcode}>"


class Template:
    """The supervisor's handle on its template process: fork requests and their answers.

    It may be started before the supervisor, to boot while the host program imports the rest
    (``lunatic-mp run --workers``: ``Runtime(template=...)``). It has a launcher thread of its
    own, which lives until it is closed: the template's ``PR_SET_PDEATHSIG`` follows that thread.
    Its log records come through :attr:`log_reader` (the supervisor's log receiver reads it).
    """

    def __init__(self, log_level: int, *, import_main: bool = True) -> None:
        self._closed = False
        self._launcher = launcher = Launcher()
        self._sock, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        log_reader, log_writer = multiprocessing.Pipe(duplex=False)
        sentinel_reader, self._sentinel = os.pipe()  # ends when the supervisor does
        root = str(Path(__file__).resolve().parents[2])  # where lunatic_mp is imported from
        fds = (theirs.fileno(), log_writer.fileno(), sentinel_reader)
        command = [
            spawn.get_executable(),
            *util._args_from_interpreter_flags(),  # type: ignore[attr-defined]
            "-c",
            BOOT,
            root,
            *(str(fd) for fd in fds),
            str(os.getpid()),
        ]
        started: list[subprocess.Popen[bytes]] = []
        try:  # its PR_SET_PDEATHSIG follows the launcher's thread
            launcher.run(lambda: started.append(subprocess.Popen(command, pass_fds=fds)))
        finally:
            theirs.close()
            log_writer.close()
            os.close(sentinel_reader)
        self.process = started[0]
        self.log_reader: Connection = log_reader
        # What a spawned child imports its main module with (multiprocessing's own recipe).
        preparation = spawn.get_preparation_data(NAME)
        preparation["authkey"] = bytes(preparation["authkey"])  # an AuthenticationString refuses pickle
        if not import_main:
            preparation.pop("init_main_from_path", None)
            preparation.pop("init_main_from_name", None)
        send_message(self._sock, (log_level, preparation))
        self._send_lock = threading.Lock()
        self._changed = threading.Condition()
        self._ids = itertools.count(1)
        self._forked: dict[int, tuple[int, int]] = {}  # request -> (pid, pidfd)
        self._exits: dict[int, int] = {}  # pid -> exit code
        self.gone = False
        self.spare_pid: int | None = None
        """The child forked in advance, which the next request gets."""
        self._reader = threading.Thread(target=self._read, name="lunatic-mp-template", daemon=True)
        self._reader.start()

    def request(self, kind: str, name: str, spec: Any, log_fd: int) -> int:
        """Ask for a child (``spec`` is pickled here; its ``log_pipe`` must be None); the request's
        id, for :meth:`result`. Raises :class:`TemplateGone` if the template has exited."""
        request = next(self._ids)
        self._send((request, kind, name, pickle.dumps(spec)), [log_fd])
        return request

    def _send(self, message: tuple[int, str, str, bytes], fds: list[int]) -> None:
        with self._send_lock:
            if self.gone:
                raise TemplateGone("the template process has exited")
            try:
                send_message(self._sock, message, fds)
            except OSError as exc:
                raise TemplateGone(f"the template process cannot be reached: {exc}") from None

    def result(self, request: int, name: str, timeout: float) -> ForkedProcess:
        """The child of ``request``, once forked. Raises the unguarded-main error if the template
        exited because of it, :class:`TemplateGone` if it exited otherwise."""
        with self._changed:
            self._changed.wait_for(lambda: request in self._forked or self.gone, timeout)
            forked = self._forked.pop(request, None)
        if forked is None:
            if self.gone:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.process.wait(1)
                unguarded = lifecycle.start_failure(self.process.returncode)
                if unguarded is not None:
                    raise unguarded
                raise TemplateGone(f"the template process exited with code {self.process.returncode}")
            raise TemplateGone(f"the template process did not fork {name} within {timeout:.0f} s")
        return ForkedProcess(self, name, *forked)

    def wait_spare(self, timeout: float) -> int | None:
        """The pid of the spare child once there is one (None on timeout)."""
        with self._changed:
            self._changed.wait_for(lambda: self.spare_pid is not None or self.gone, timeout)
            return self.spare_pid

    def exitcode(self, pid: int) -> int | None:
        with self._changed:
            return self._exits.get(pid)

    def wait_exit(self, pid: int, timeout: float | None) -> None:
        with self._changed:
            self._changed.wait_for(lambda: pid in self._exits or self.gone, timeout)

    def _read(self) -> None:
        while True:
            try:
                message = receive_message(self._sock)
            except OSError:
                message = None
            with self._changed:
                if message is None:
                    self.gone = True
                    self._changed.notify_all()
                    return
                (what, key, value), fds = message
                if what == "forked":
                    self._forked[key] = (value, fds[0])
                    if value == self.spare_pid:
                        self.spare_pid = None
                elif what == "spare":
                    self.spare_pid = value
                else:
                    self._exits[key] = value
                self._changed.notify_all()

    def close(self, timeout: float) -> None:
        """End the template (the end of its socket): call once its children have exited."""
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._reader.join(timeout)
        self._sock.close()
        with self._changed:
            for _, pidfd in self._forked.values():
                os.close(pidfd)
            self._forked.clear()
        os.close(self._sentinel)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            log.warning("the template process did not stop; killing it")
            self.process.kill()
            self.process.wait(timeout)
        self._launcher.close()

    def warm(self) -> None:
        """The runtime has started: spares may make their engines now."""
        with contextlib.suppress(TemplateGone):
            self._send((0, WARM_KIND, "", b""), [])


__all__ = ["ForkedProcess", "Template", "TemplateGone", "available"]
