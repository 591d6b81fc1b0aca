"""A worker process: one engine, queues to every other process of the runtime, and its loop.

The supervisor starts one worker per CPU (``multiprocessing``'s spawn start method: a worker
must never be forked from a process that has compiled Wasm). Each worker hosts the processes
whose pids name it, and reaches the others through frames: the engine calls :class:`Worker`
as its router, and the loop hands incoming frames back to the engine.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import itertools
import logging
import pickle
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from lunatic_mp.cluster import frames, introspection
from lunatic_mp.cluster.child import die_with_parent, ignore_stop_signals
from lunatic_mp.cluster.fdpass import FdPass, attach_streams
from lunatic_mp.cluster.hub import Endpoint, Hub, modules_of
from lunatic_mp.cluster.jobs import JobRunner
from lunatic_mp.cluster.logs import send_logs_to
from lunatic_mp.cluster.router import FrameRouter
from lunatic_mp.cluster.specs import WorkerSpec
from lunatic_mp.cluster.transport import SAFETY_TIMEOUT
from lunatic_mp.cluster.wire import frame_record
from lunatic_mp.errors import LunaticError
from lunatic_mp.pids import FIRST_WORKER, SUPERVISOR, is_foreign, node_of_place, worker_of
from lunatic_mp.vm import core
from lunatic_mp.vm.engine import Engine
from lunatic_mp.vm.host.process import PARAM_KINDS
from lunatic_mp.vm.mailbox import DeathReason, Message
from lunatic_mp.vm.module import Module, ModuleCache
from lunatic_mp.vm.native import unpickle_native
from lunatic_mp.vm.process import BaseProcess
from lunatic_mp.vm.scheduler import earliest

if TYPE_CHECKING:
    from lunatic_mp.serve.http import HttpFrontEnd

log = logging.getLogger(__name__)

SPIN_S = 0.0002
"""How long an idle loop keeps polling its rings before it sleeps: a frame that arrives in the
meantime costs no system call on either side (a kernel wake-up costs about 45 µs here)."""

BACKPRESSURE_BYTES = 8 * 1024 * 1024
"""Queued bytes to one destination past which a sending process is paused until they drain."""


class Worker(Hub):
    """The engine's router, and the loop that moves frames in and out of it."""

    def __init__(self, spec: WorkerSpec) -> None:
        super().__init__(spec.worker_id, spec.run_id, Path(spec.run_dir), node_id=spec.node_id)
        self.spec = spec
        self.cache = ModuleCache(self.run_dir / "modules")
        engine = _take_prepared(spec.engine_options)
        if engine is None:
            engine = _new_engine(spec.engine_options, spec.node_id, spec.worker_id)
        else:
            engine.assign(spec.node_id, spec.worker_id)
        self.engine = engine
        self.router = FrameRouter(self)
        self.engine.router = self.router
        self.fdpass = FdPass(self.run_dir, self.worker_id, self.engine.reactor)
        for peer in spec.peers:
            self.connect(peer)
        self.workers = sorted({self.worker_id, *(p for p in spec.peers if p >= FIRST_WORKER)})
        self._placement = itertools.count()
        # Link records for other nodes, by node, this step's: Python appends here, and a guest's
        # plain send appends in C to those offered in engine.link_batches (the same bytearrays)
        self._foreign: dict[int, bytearray] = {}
        self._foreign_modules: dict[int, set[bytes]] = {}  # the modules those records refer to
        # The same for the other workers of this node, by worker: a guest's plain send to one of
        # them is appended in C (engine.worker_batches, by place) and leaves as one Forward frame
        self._peers: dict[int, bytearray] = {}
        self._modules: dict[bytes, Module] = {}
        self.jobs = JobRunner(self.engine, self.module, self.reply)
        self.running = True
        self.handlers = self._frame_handlers()
        self.deliver_messages = functools.partial(core.deliver_messages, self.engine.message_hooks)
        self.engine.scheduler.runner.between = self._flush_during_round
        self.engine.scheduler.runner.listen = self._listen_while_running_on
        self._listening = False  # the doorbell is announced for this round's long slices or chain
        self.flushes_during_rounds = 0
        self.socket_rounds = 0  # rounds run asleep, on a socket's readiness (_on_sockets_ready)
        self.loop = new_event_loop()
        self._stopped: asyncio.Future[None] = self.loop.create_future()
        self._alarm: asyncio.Handle | None = None  # set while asleep: the wake-up at the latest
        self._alarm_at = 0.0  # when it falls due (loop time): uvloop makes a delay under 1 ms a call_soon
        self._last_activity = time.monotonic()
        self.http: HttpFrontEnd | None = None
        if spec.http:
            self._on_http_routes(frames.HttpRoutes(spec.http))

    # --- what the engine's router sends through -------------------------------------------------

    def send(self, worker: int, frame: frames.Frame) -> None:
        """Queue a frame; a process sending past the backpressure bound pauses until it drains."""
        if is_foreign(worker):
            self._send_foreign(worker, frames.encode(frame), modules_of(frame))
            return
        self.send_encoded(worker, frames.encode(frame))

    def send_encoded(self, worker: int, data: bytes) -> None:
        if is_foreign(worker):
            self._send_foreign(worker, data, ())
            return
        endpoint = self.endpoints.get(worker)
        if endpoint is None:
            return  # a lost worker: messages to its processes are dropped, like any to a dead pid
        if self._peers.get(worker):
            self._seal(worker, endpoint)  # what guests sent before this frame leaves before it
        endpoint.outbox.put(data)
        endpoint.queued += len(data)
        current = self.engine.current
        if current is not None and endpoint.queued > BACKPRESSURE_BYTES:
            endpoint.parked.add(current.pid)
            self.engine.park(current)

    def place(self) -> int:
        """Round robin over the live workers, this one included."""
        return self.workers[next(self._placement) % len(self.workers)]

    def publish_module(self, module: Module) -> bytes:
        digest = self.cache.store(module)
        self._modules.setdefault(digest, module)
        return digest

    def send_streams(self, worker: int, fds: list[int]) -> tuple[int, ...]:
        return self.fdpass.send(worker, fds)

    def module(self, digest: bytes) -> Module:
        module = self._modules.get(digest)
        if module is None:
            module = self.cache.load(self.engine.wasm_engine, digest)
            self.engine.link_module(module)
            self._modules[digest] = module
        return module

    # --- frames from other processes ------------------------------------------------------------

    def _frame_handlers(self) -> dict[type, Callable[[Any], None]]:
        engine = self.engine
        return {
            frames.Message: self._on_message,
            frames.MessageStreams: self._on_message,
            frames.Kill: self._on_kill,
            frames.Link: lambda f: engine.accept_link(f.to, f.other, f.tag),
            frames.Unlink: lambda f: engine.accept_unlink(f.to, f.other),
            frames.LinkDied: lambda f: engine.link_died(f.to, f.dead, DeathReason(f.reason), f.cause),
            frames.Monitor: lambda f: engine.accept_monitor(f.to, f.watcher),
            frames.StopMonitoring: lambda f: engine.accept_stop_monitoring(f.to, f.watcher),
            frames.ProcessDied: lambda f: engine.process_died(f.to, f.dead),
            frames.Spawn: self._on_spawn,
            frames.SpawnNative: self._on_spawn_native,
            frames.Jobs: self.jobs.start,
            frames.SpawnReply: lambda f: self.router.requests.complete(f.request, f),
            frames.Exists: self._on_exists,
            frames.ExistsReply: lambda f: self.router.requests.complete(f.request, f),
            frames.RegistryReply: lambda f: self.router.requests.complete(f.request, f),
            frames.RegistryWatch: self._on_registry_watch,
            frames.ProcessGone: lambda f: engine.names_released(f.pid),
            frames.MailboxFull: lambda f: engine.mailbox_full(f.to, f.target, f.full),
            frames.WorkerStarted: self._on_worker_started,
            frames.WorkerLost: self._on_worker_lost,
            frames.NodeTable: self._on_node_table,
            frames.NodeLost: self._on_node_lost,
            frames.Stats: self._on_stats,
            frames.ListProcesses: self._on_list_processes,
            frames.Shutdown: self._on_shutdown,
            frames.HttpRoutes: self._on_http_routes,
            frames.Forward: self._on_peer_batch,
        }  # fmt: skip

    def _on_stats(self, frame: frames.Stats) -> None:
        payload = introspection.worker_stats(self)
        self.reply(frame.reply_to, frames.StatsReply(frame.request, frame.reply_to, payload))

    def _on_list_processes(self, frame: frames.ListProcesses) -> None:
        payload = introspection.process_list(self.engine, frame.limit)
        self.reply(frame.reply_to, frames.StatsReply(frame.request, frame.reply_to, payload))

    def _on_kill(self, frame: frames.Kill) -> None:
        self.engine.kill(frame.to, frame.reason)

    def _on_exists(self, frame: frames.Exists) -> None:
        exists = frame.pid in self.engine.processes
        self.reply(frame.reply_to, frames.ExistsReply(frame.request, frame.reply_to, exists))

    def _on_message(self, frame: frames.Message | frames.MessageStreams) -> None:
        modules = self._attached_modules(frame) if frame.modules else None  # most carry none
        if isinstance(frame, frames.MessageStreams):  # TCP streams: descriptors come beside it
            message = Message(frame.tag, frame.data, pid=frame.sender, modules=modules, streams=[])
            attach_streams(self.fdpass, frame, message, lambda: self.engine.deliver(frame.to, message))
            return
        self.engine.deliver(frame.to, Message(frame.tag, frame.data, pid=frame.sender, modules=modules))

    def _attached_modules(self, frame: frames.Message | frames.MessageStreams) -> list[Any]:
        modules: list[Any] = []
        for digest in frame.modules:
            try:
                modules.append(self.module(digest))
            except LunaticError as exc:
                log.warning("module attached to a message for %d is lost: %s", frame.to, exc)
                modules.append(None)
        return modules

    def _on_spawn(self, frame: frames.Spawn) -> None:
        try:
            module = self.module(frame.module)
            config = frames.decode_shared_config(frame.config)
            params = [
                (PARAM_KINDS[kind], value)
                for kind, value in zip(frame.param_kinds, frame.params, strict=True)
            ]
            link = (frame.link_pid, frame.link_tag) if frame.link_pid else None
            child = self.engine.spawn(module, frame.function, params, config, link=link)
        except (LunaticError, KeyError, ValueError) as exc:
            self.reply(frame.reply_to, frames.SpawnReply(frame.request, frame.reply_to, 0, str(exc)))
            return
        self._spawned(frame, child)

    def _on_spawn_native(self, frame: frames.SpawnNative) -> None:
        try:
            function, args, kwargs = unpickle_native(frame.payload, self.module)
            config = frames.decode_config(frame.config)
            link = (frame.link_pid, frame.link_tag) if frame.link_pid else None
            child = self.engine.spawn_native(function, args, kwargs, config, link=link)
        except LunaticError as exc:
            error = str(exc)
        except Exception as exc:  # noqa: BLE001 - unpickling raises anything the pickled code does
            error = f"cannot load the native process's function here: {type(exc).__name__}: {exc}"
        else:
            self._spawned(frame, child)
            return
        self.reply(frame.reply_to, frames.SpawnReply(frame.request, frame.reply_to, 0, error))

    def _spawned(self, frame: frames.Spawn | frames.SpawnNative, child: BaseProcess) -> None:
        """Finish a spawn that another process asked for, and answer it."""
        if worker_of(frame.reply_to) == SUPERVISOR:  # the host program can always join what it spawns
            child.monitored_by.add(frame.reply_to)
        if frame.link_pid and frame.link_pid != frame.reply_to and not self.engine.is_local(frame.link_pid):
            # linked to a third process (the host program asked): link its side too; a guest
            # spawning a linked child links its own side when this reply arrives
            self.send(worker_of(frame.link_pid), frames.Link(frame.link_pid, child.pid, frame.link_tag))
        self.reply(frame.reply_to, frames.SpawnReply(frame.request, frame.reply_to, child.pid, ""))

    def _on_registry_watch(self, frame: frames.RegistryWatch) -> None:
        """The registry will hold a name of ``frame.to`` once we promise to report its death
        (the same frame back), or learns that it is dead already (ProcessGone)."""
        process = self.engine.processes.get(frame.to)
        if process is None:
            self.send(self.names_at, frames.ProcessGone(frame.to))
        else:
            process.registered = True
            self.send(self.names_at, frames.RegistryWatch(frame.to))

    def _on_worker_started(self, frame: frames.WorkerStarted) -> None:
        self.worker_started(frame.worker)
        if frame.worker >= FIRST_WORKER and frame.worker != self.worker_id:
            self.workers = sorted({*self.workers, frame.worker})

    def _on_worker_lost(self, frame: frames.WorkerLost) -> None:
        self.workers = [w for w in self.workers if w != frame.worker]
        endpoint = self.disconnect(frame.worker)
        self._peers.pop(frame.worker, None)  # messages to a lost worker's processes are dropped
        self.engine.worker_batches.pop(self.node_id << 16 | frame.worker, None)
        if endpoint is not None:
            for pid in endpoint.parked:
                self.engine.unpark(pid)
        self.fdpass.forget_worker(frame.worker)
        self.router.requests.worker_lost(frame.worker)
        self.engine.worker_lost(frame.worker)

    def _on_node_table(self, frame: frames.NodeTable) -> None:
        self.node_table(frame)
        self.engine.nodes = self.nodes
        self._forget_nodes()

    def _on_node_lost(self, frame: frames.NodeLost) -> None:
        """A node of the cluster (or one worker of it) is gone: requests to it fail; links and
        monitors into it fire."""
        node, worker = frame.node, frame.worker
        if worker:
            self.router.requests.places_lost(lambda target: target == (node << 16) | worker)
        else:
            self.router.requests.places_lost(lambda target: node_of_place(target) == node)
            self._forget_nodes(node)
        self.engine.node_lost(node, worker, frame.cause)

    def _on_shutdown(self, frame: frames.Shutdown) -> None:
        self.running = False

    def _on_peer_batch(self, frame: frames.Forward) -> None:
        """A Forward frame reaches a worker only as another worker's batch of its guests' plain
        messages, which core.deliver_messages takes before Python sees it: this one it refused."""
        self._dropped("malformed Forward frame (a batch of messages) for place %d dropped", frame.place)

    def _on_http_routes(self, frame: frames.HttpRoutes) -> None:
        """Serve HTTP routes (:mod:`lunatic_mp.serve.http`, imported only by workers that do)."""
        if self.http is None:
            if not frame.payload:
                return
            from lunatic_mp.serve.http import HttpFrontEnd

            self.http = HttpFrontEnd(self)
        self.http.configure(frame.payload)

    # --- the loop -------------------------------------------------------------------------------

    def _send_foreign(self, place: int, data: bytes, modules: tuple[bytes, ...]) -> None:
        """Queue a frame for another node: each step's frames for a node leave together, in one
        Forward frame to the supervisor, already in the form its link carries them. Most plain
        messages from guests are appended by C instead (:meth:`_offer_batches`)."""
        node = node_of_place(place)
        if node not in self.nodes:
            return  # a lost node: dropped, as frames for a lost worker are
        batch = self._foreign.get(node)
        if batch is None:
            batch = self._foreign[node] = bytearray()
        batch += frame_record(place, data)
        if modules:
            self._foreign_modules.setdefault(node, set()).update(modules)
        endpoint = self.endpoints.get(SUPERVISOR)
        current = self.engine.current
        if current is None or endpoint is None:
            return
        if self._to_supervisor(endpoint) > BACKPRESSURE_BYTES:
            endpoint.parked.add(current.pid)
            self.engine.park(current)

    def _to_supervisor(self, endpoint: Endpoint) -> int:
        """Bytes queued for the supervisor: in its outbox, and in this step's link records."""
        return endpoint.queued + sum(map(len, self._foreign.values()))

    def _offer_batches(self, endpoint: Endpoint | None) -> None:
        """Let C append guests' plain sends to each node's batch, unless the way to the
        supervisor is congested: then every send takes the Python path, which pauses the sender.
        (C stops by itself at 1 MiB in a batch, so it adds at most that in a step.)"""
        offered = self.engine.link_batches
        if endpoint is None or endpoint.queued > BACKPRESSURE_BYTES // 2:
            offered.clear()
        elif len(offered) != len(self._foreign):
            offered.update(self._foreign)

    def _forget_nodes(self, lost: int = 0) -> None:
        """Drop the batches for nodes that are no longer live, or ``lost`` (their frames would be
        dropped on the way)."""
        for node in [n for n in self._foreign if n not in self.nodes or n == lost]:
            del self._foreign[node]
            self._foreign_modules.pop(node, None)
            self.engine.link_batches.pop(node, None)

    def _seal(self, worker: int, endpoint: Endpoint) -> None:
        """Queue the records that guests' sends appended in C for ``worker`` as one frame."""
        batch = self._peers[worker]
        data = frames.encode(frames.Forward(self.node_id << 16 | worker, cast(bytes, batch), ()))
        batch.clear()
        endpoint.outbox.put(data)
        endpoint.queued += len(data)

    def _offer_peer_batches(self) -> None:
        """Let C append guests' plain sends for each other worker of this node to its batch,
        unless the way there is congested: then they take the Python path, which pauses the
        sender. (C leaves the send that finds 64 KiB in the batch to Python, which seals it and
        pauses the sender past the bound, as for any frame.)"""
        offered, batches = self.engine.worker_batches, self._peers
        for worker, endpoint in self.endpoints.items():
            if worker < FIRST_WORKER or worker == self.worker_id:
                continue
            place = self.node_id << 16 | worker
            if endpoint.queued > BACKPRESSURE_BYTES // 2:
                offered.pop(place, None)
            elif place not in offered:
                offered[place] = batches.setdefault(worker, bytearray())

    def _outbound(self) -> bool:
        """Whether frames wait to leave: queued for an endpoint, or records appended (in C too)
        to a batch for another worker or node."""
        return (
            any(e.queued for e in self.endpoints.values())
            or any(self._peers.values())
            or any(self._foreign.values())
        )

    def _flush_during_round(self, report: bool = False) -> None:
        """A scheduler round has run for a tick, with more processes to run, or a long slice or
        chain is about to begin: the frames queued so far leave now, so that a reply is not held
        behind the rest of the round. With ``report`` (before a long slice, and at the ticks of a
        long chain), the news of jobs too (not at every tick of any round: tiny jobs reported
        every millisecond instead of once a round took 13.5 µs each, not 10.5)."""
        if report:
            self.jobs.report()
        if self._outbound():
            self.flush()
            self.flushes_during_rounds += 1

    def flush(self) -> bool:
        """Write queued frames; let parked senders go on once their destination drains."""
        for worker, batch in self._peers.items():
            if batch and (peer := self.endpoints.get(worker)) is not None:
                self._seal(worker, peer)
        endpoint = self.endpoints.get(SUPERVISOR)
        for node, records in self._foreign.items():
            if records:
                modules = tuple(self._foreign_modules.pop(node, ()))
                if endpoint is not None:
                    payload = cast(bytes, records)  # msgspec encodes a bytearray as bytes: no copy first
                    data = frames.encode(frames.Forward(node << 16, payload, modules))
                    endpoint.outbox.put(data)
                    endpoint.queued += len(data)
                records.clear()
        empty = super().flush()
        if self._foreign:
            self._offer_batches(endpoint)
        self._offer_peer_batches()
        for endpoint in self.endpoints.values():
            if endpoint.parked and endpoint.queued <= BACKPRESSURE_BYTES // 2:
                for pid in endpoint.parked:
                    self.engine.unpark(pid)
                endpoint.parked.clear()
        return empty

    def run(self) -> None:
        """The worker's loop, until the supervisor says Shutdown (or dies).

        An asyncio event loop (uvloop where installed) drives :meth:`step`, so that HTTP routes
        and anything else asynchronous share the thread with the processes. Exactly one of two
        things holds at any time: a step is scheduled, or the worker is asleep, waiting for its
        doorbell, a socket a process waits on, the supervisor's death, or the next timer.
        """
        loop = self.loop
        assert self.doorbell is not None
        loop.add_reader(self.doorbell.fileno(), self._on_rung)
        loop.add_reader(self.engine.reactor.fileno(), self._on_sockets_ready)
        self.engine.preemption.ticker.watch(self.doorbell.fileno())  # a frame ends a long slice or chain
        self.engine.scheduler.polls_sockets = False  # _on_sockets_ready does, once per readiness
        if self._parent is not None:
            loop.add_reader(self._parent, self._on_orphaned)
            self.engine.preemption.ticker.watch(self._parent)  # the supervisor's death too
        loop.call_soon(self.step)
        try:
            loop.run_until_complete(self._stopped)
        finally:
            if self.http is not None:
                loop.run_until_complete(self.http.close())
            loop.remove_reader(self.doorbell.fileno())
            loop.remove_reader(self.engine.reactor.fileno())
            if self._parent is not None:
                loop.remove_reader(self._parent)

    def step(self) -> None:
        """One turn of the loop; schedules the next turn, or goes to sleep."""
        # 1. Frames from other processes: messages, signals, requests and replies.
        arrived = self.receive()
        # 2. One scheduler round: timers, ready sockets, then each ready process once (CPU-bound
        #    ones, while nothing else waits, for a long slice that a frame arriving ends).
        wait = self.engine.scheduler.run_round(self.engine.scheduler.long_slice_ns)
        if self._listening:
            assert self.doorbell is not None
            self.doorbell.cancel_sleep()
            self._listening = False
        # 3. Frames to other processes, batched per destination (with the news of job batches).
        self.jobs.report()
        self.flush()
        if not self.running or self.orphaned():
            if not self._stopped.done():
                self._stopped.set_result(None)
            return
        # 4. Busy: go round again, after the event loop's own callbacks (HTTP, sockets). Idle:
        #    poll the rings for a moment (a reply may be microseconds away, and waking from a
        #    sleep costs tens), then sleep until something happens. A worker with sockets to
        #    watch (HTTP routes, processes waiting on the network) does not spin: only a sleep
        #    watches them, and the time spun is taken from the clients, often on the same
        #    cores. Queued frames that did not fit keep the loop awake.
        now = time.monotonic()
        sweeping = self.engine.scheduler.hibernate(now)  # a sweep under way goes on next turn
        if arrived or wait == 0.0:
            self._last_activity = now
        elif not sweeping and not any(e.queued for e in self.endpoints.values()):
            spin_until = self._last_activity + SPIN_S
            if self.http is not None or self.engine.reactor.watching:
                spin_until = now
            elif wait is not None:
                spin_until = min(spin_until, now + wait)
            while now < spin_until and self.idle():
                now = time.monotonic()
            if now >= spin_until and self._sleep(wait):
                return
        self.loop.call_soon(self.step)

    def _listen_while_running_on(self) -> bool:
        """Runner.listen: a long slice (CPU-bound processes alone here) or a long chain (local
        messages that outlast the chain budget) is about to begin, and a frame that arrives
        meanwhile must end it. The doorbell is announced for the round as for a sleep, so that
        producers ring it, and the ticker watches it; unless a frame came already, what waits to
        leave goes first. Never with HTTP routes: their sockets are the event loop's, which the
        ticker cannot watch."""
        if self.http is not None:
            return False
        if not self._listening:
            assert self.doorbell is not None
            self.doorbell.prepare_sleep()
            self._listening = True
        if not self.idle() or not self.running:  # a frame came since the rings were read, or Shutdown
            return False
        self._flush_during_round(report=True)
        return True

    def _sleep(self, wait: float | None) -> bool:
        """Announce the sleep, then re-check the rings: no frame can slip by. False if one came,
        or if a hibernation sweep is due already (the next step runs it)."""
        assert self.doorbell is not None
        timeout = self._alarm_in(wait)
        if timeout <= 0:
            return False
        self.doorbell.prepare_sleep()
        if not self.idle():
            self.doorbell.cancel_sleep()
            return False
        self._set_alarm(timeout)
        return True

    def _set_alarm(self, timeout: float) -> None:
        self._alarm_at = self.loop.time() + timeout
        self._alarm = self.loop.call_later(timeout, self.wake)

    def _alarm_in(self, wait: float | None) -> float:
        """How long a sleep lasts unless woken: until the next timer (``wait``) or hibernation
        sweep, and no longer than :data:`SAFETY_TIMEOUT`."""
        wait = earliest(wait, self.engine.scheduler.sweep_due_in(time.monotonic()))
        return SAFETY_TIMEOUT if wait is None else min(wait, SAFETY_TIMEOUT)

    def wake(self) -> None:
        """Schedule a step if the worker sleeps (otherwise one is scheduled already). Whatever
        changes the engine from outside a step (an HTTP request, say) calls this."""
        if self._alarm is not None:
            self._alarm.cancel()
            self._alarm = None
            assert self.doorbell is not None
            self.doorbell.cancel_sleep()
            self.loop.call_soon(self.step)

    def _on_sockets_ready(self) -> None:
        """Wake the processes whose sockets are ready (the event loop polls between steps).

        A sleeping worker runs them at once and sleeps on when that was all there was to do (no
        process left ready, no frame to send): a server's wake-ups are mostly this, and a full
        step around each one (rings, flush, sleep announced again) cost a third of its CPU. The
        alarm still ends the sleep by the next hibernation sweep, so the periodic work of a step
        goes on; it only moves earlier, for a timer these processes set or a wait they began."""
        self.engine.reactor.dispatch(0.0)
        alarm = self._alarm
        if alarm is None:
            return  # a step is scheduled: it runs them
        wait = self.engine.scheduler.run_round()
        self.socket_rounds += 1
        self.jobs.report()
        timeout = self._alarm_in(wait)
        if timeout <= 0 or self._outbound():
            self.wake()
        elif self.loop.time() + timeout < self._alarm_at:
            alarm.cancel()
            self._set_alarm(timeout)

    def _on_rung(self) -> None:
        assert self.doorbell is not None
        self.doorbell.drain()
        self.wake()

    def _on_orphaned(self) -> None:
        self._orphaned = True
        self.wake()

    def close(self) -> None:
        self.fdpass.close()
        self.engine.close()
        super().close()
        self.loop.close()


def _new_engine(engine_options: dict[str, Any], node_id: int, worker_id: int) -> Engine:
    options = dict(engine_options)
    if "plugins" in options:  # cloudpickled by the supervisor (register functions may be closures)
        options["plugins"] = pickle.loads(options["plugins"])  # noqa: S301 - from the supervisor
    return Engine(node_id=node_id, worker_id=worker_id, **options)


_prepared: list[tuple[dict[str, Any], Engine]] = []
_kept: list[object] = []
"""The wasmtime engine of a worker that is stopping: deleting it unmaps its pool slot by slot
(about 17 ms), which the process's exit does at once."""


def prepare_engine(engine_options: dict[str, Any]) -> None:
    """In a spare child of the template, while it waits for its spec: the engine of a worker with
    these options (35-50 ms off a replacement's start), named once the spec comes. In the spare,
    not in the template: nothing is forked from a process that holds a wasmtime engine."""
    new_event_loop().close()  # imports uvloop
    if "plugins" in engine_options:  # a plugin's register() may look at its worker: made with it
        return
    _prepared[:] = [(engine_options, _new_engine(engine_options, 0, 0))]


def _take_prepared(engine_options: dict[str, Any]) -> Engine | None:
    prepared = _prepared.pop() if _prepared else None
    if prepared is None:
        return None
    if prepared[0] != engine_options:
        prepared[1].close()
        return None
    return prepared[1]


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop's event loop (a dependency; a step of the loop costs about half as much as with
    asyncio's), or asyncio's where uvloop cannot be installed."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()  # type: ignore[no-any-return]


def main(spec: WorkerSpec) -> None:
    """Entry point of a worker process."""
    die_with_parent(spec.supervisor_pid, deathsig=spec.deathsig)
    ignore_stop_signals()
    send_logs_to(spec.log_pipe, spec.log_level)
    worker = Worker(spec)
    # What exists now (the interpreter's modules, the engine, its linker and host functions) lives
    # as long as the worker: out of the collector's sight, a collection of the young processes'
    # objects no longer walks it (a spawn and exit makes a few containers each).
    gc.freeze()
    # A spawn and exit makes a few tracked containers, and a batch of live children survives
    # each young collection at the default 700: collecting every 10,000 allocations instead
    # walks them less often (bench spawn, three turns: all workers +1-4%, p99 latency unchanged).
    gc.set_threshold(10_000, 10, 10)
    try:
        worker.send(SUPERVISOR, frames.WorkerStarted(spec.worker_id, 0))
        worker.flush()
        worker.run()
    finally:
        _kept.append(worker.engine.wasm_engine)  # freed by the process's exit, at once
        worker.close()
