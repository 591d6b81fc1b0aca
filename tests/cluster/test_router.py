"""FrameRouter: each call of an engine's Router becomes one frame, for the right process, that
decodes to what the call said; replies find the request that waits for them."""

from __future__ import annotations

from typing import Any

from lunatic_mp.cluster import frames
from lunatic_mp.cluster.router import FrameRouter
from lunatic_mp.config import EnvConfig
from lunatic_mp.pids import REGISTRY, SUPERVISOR, destination, make_pid
from lunatic_mp.vm import wasm
from lunatic_mp.vm.finished import Finished, Outcome
from lunatic_mp.vm.mailbox import DeathReason, Message
from lunatic_mp.vm.module import Module

A = make_pid(0, 3, 7)  # a process on worker 3
B = make_pid(0, 4, 9)  # one on worker 4
HOST = make_pid(0, SUPERVISOR, 1)


class Wire:
    """A worker's queues, recording what goes where (each frame through the real codec)."""

    def __init__(self) -> None:
        self.sent: list[tuple[int, frames.Frame]] = []
        self.live = {3, 4, REGISTRY, SUPERVISOR}

    def send(self, worker: int, frame: frames.Frame) -> None:
        self.sent.append((worker, frames.decode(frames.encode(frame))))

    def send_encoded(self, worker: int, data: bytes) -> None:
        self.sent.append((worker, frames.decode(data)))

    names_at = REGISTRY

    def route(self, pid: int) -> int:
        return destination(pid, 0)

    def place(self) -> int:
        return 4

    def is_live(self, worker: int) -> bool:
        return worker in self.live

    def publish_module(self, module: Module) -> bytes:
        return b"d" * 32

    def send_streams(self, worker: int, fds: list[int]) -> tuple[int, ...]:
        raise AssertionError("no streams in these messages")


def test_signals_become_frames_for_the_addressee() -> None:
    wire = Wire()
    router = FrameRouter(wire)
    router.send_message(B, Message(5, b"hi", pid=A))
    router.link(B, A, 11)
    router.unlink(B, A)
    router.monitor(B, A)
    router.stop_monitoring(B, A)
    router.kill(B, "why")
    router.link_died(B, A, 11, DeathReason.FAILURE, "trap")
    router.process_died(B, A)
    router.mailbox_full(B, A, True)
    assert wire.sent == [
        (4, frames.Message(B, A, 5, b"hi", ())),
        (4, frames.Link(B, A, 11)),
        (4, frames.Unlink(B, A)),
        (4, frames.Monitor(B, A)),
        (4, frames.StopMonitoring(B, A)),
        (4, frames.Kill(B, "why")),
        (4, frames.LinkDied(B, A, 11, int(DeathReason.FAILURE), "trap")),
        (4, frames.ProcessDied(B, A)),
        (4, frames.MailboxFull(B, A, True)),
    ]


def test_the_host_program_gets_every_detail_of_an_end() -> None:
    wire = Wire()
    FrameRouter(wire).process_finished(HOST, A, Finished(Outcome.FAILED, (), "boom", ("f", "g"), 3))
    [(worker, frame)] = wire.sent
    assert worker == SUPERVISOR
    assert isinstance(frame, frames.ProcessFinished)
    assert (frame.to, frame.pid, frame.outcome, frame.message, frame.exit_code) == (HOST, A, 2, "boom", 3)
    assert frame.backtrace == "f\ng"


def test_requests_carry_an_id_whose_reply_reaches_the_caller() -> None:
    wire = Wire()
    router = FrameRouter(wire)
    answers: list[Any] = []
    router.registry_get(A, "counter", True, answers.append)
    router.exists(A, B, answers.append)
    (registry, get), (worker, exists) = wire.sent
    assert registry == REGISTRY and isinstance(get, frames.RegistryGet)
    assert (get.reply_to, get.name, get.lock) == (A, "counter", True)
    assert worker == 4 and isinstance(exists, frames.Exists) and exists.pid == B
    router.requests.complete(exists.request, "exists-reply")
    router.requests.complete(get.request, "registry-reply")
    assert answers == ["exists-reply", "registry-reply"]
    router.registry_put(A, "counter", 0, B, answers.append)
    router.requests.worker_lost(REGISTRY)  # the registry process was lost before it answered
    assert answers[-1] is None


def test_a_spawn_sends_the_module_by_digest_with_typed_parameters() -> None:
    wire = Wire()
    engine = wasm.new_engine(
        async_stack_size=2 * 1024 * 1024, max_wasm_stack=1024 * 1024, max_instances=1, max_memory=1 << 20
    )
    module = Module.load(engine, '(module (memory (export "memory") 1) (func (export "f") (param i32 i64)))')
    router = FrameRouter(wire)
    params = [(wasm.I32, 7), (wasm.I64, -1)]
    router.spawn(4, A, module, "f", params, EnvConfig(max_fuel=5), (A, 2), lambda reply: None)
    [(worker, spawn)] = wire.sent
    assert worker == 4 and isinstance(spawn, frames.Spawn)
    assert (spawn.reply_to, spawn.module, spawn.function, tuple(spawn.params)) == (A, b"d" * 32, "f", (7, -1))
    assert bytes(spawn.param_kinds) == bytes([0x7F, 0x7E])
    assert frames.decode_config(spawn.config).max_fuel == 5
    assert (spawn.link_pid, spawn.link_tag) == (A, 2)
