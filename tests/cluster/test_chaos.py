"""Chaos: workers killed with SIGKILL again and again under a steady message load.

Streams of sequence numbers (``tests/guests/chaos.wat``) run between every ordered pair of
workers, each stream a producer and a consumer that checks every value arrives exactly once and in
order. Parked processes on every worker are watched from every other worker (a link that traps
deaths, a link that dies with its target, a monitor) and by the host program, and registered by
name. Then, round after round, a random worker is killed with SIGKILL while all of that runs. Each
round checks what the runtime promises (docs/reliability.md):

- streams between surviving processes keep going; at the end each consumer has received exactly
  the values its producer sent, in order (a stream cut by a loss has delivered an unbroken prefix);
- every link and monitor to a process of the lost worker fires (LinkDied, a death, ProcessDied,
  the host program's ProcessDied), and no other;
- the lost worker's registry names are gone; the others stay;
- the supervisor starts a replacement and keeps a full set of workers;
- the RSS of the supervisor and of the registry process stays bounded over the kills.

``python tests/cluster/test_chaos.py`` runs the same with figures (time to replace a worker, RSS by round).
"""

from __future__ import annotations

import os
import random
import signal
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from lunatic_mp import EnvConfig, Finished, Module, Outcome
from lunatic_mp.api.runtime import Runtime
from lunatic_mp.pids import worker_of
from lunatic_mp.vm.mailbox import Kind, Message

GUESTS = Path(__file__).parents[1] / "guests"
PERMISSIVE = EnvConfig.permissive()
DEADLINE = 30.0
WORKERS = 3
KILLS = 20
EVERY = 8
"""A producer pauses up to 1 ms for a stop message after every 8 values: a few thousand a second."""
WARM_UP = 4
"""Rounds after which memory figures are taken as the baseline."""
RSS_GROWTH_LIMIT = 24 * 1024 * 1024
"""How much the supervisor's or the registry's RSS may grow from the baseline over the kills."""
JITTER_S = 0.05
"""A kill comes up to 50 ms after the load was topped up, at a random moment."""
STOP = 9
READY = 4
CONSUMING = 5


@dataclass
class Stream:
    producer: int
    consumer: int


@dataclass
class Watched:
    """A parked process and who watches it: (watcher pid, kind) on other workers."""

    pid: int
    name: str
    watchers: dict[int, str] = field(default_factory=dict)  # pid -> "link", "link_park", "monitor"


@dataclass
class Figures:
    replace_s: list[float] = field(default_factory=list)
    supervisor_rss: list[int] = field(default_factory=list)
    registry_rss: list[int] = field(default_factory=list)
    delivered: int = 0


def value_of(message: Message) -> int:
    return int.from_bytes(bytes(message.data[:8]), "little", signed=True)


def reports(runtime: Runtime, tag: int, count: int) -> set[int]:
    """The values of ``count`` reports with ``tag`` in the host program's mailbox."""
    values = set()
    for _ in range(count):
        message = runtime.receive([tag], timeout=DEADLINE)
        assert message is not None, f"no report with tag {tag} within {DEADLINE:.0f} s"
        values.add(value_of(message))
    return values


def joined(runtime: Runtime, pid: int) -> Finished:
    finished = runtime.join(pid, timeout=DEADLINE)
    assert finished is not None, f"process {pid} did not end within {DEADLINE:.0f} s"
    return finished


def joined_ok(runtime: Runtime, pid: int) -> tuple[object, ...]:
    finished = joined(runtime, pid)
    assert finished.outcome is Outcome.NORMAL, f"process {pid}: {finished}"
    return finished.result


def assert_lost(runtime: Runtime, pid: int, worker: int) -> None:
    finished = joined(runtime, pid)
    assert finished.outcome is Outcome.FAILED and f"worker {worker} lost" in finished.message, finished


class Chaos:
    """The load, the watchers, and the checks of one round after a kill."""

    def __init__(self, runtime: Runtime, seed: int) -> None:
        self.runtime = runtime
        self.random = random.Random(seed)
        self.streams: dict[tuple[int, int], Stream] = {}
        self.watched: dict[int, Watched] = {}  # worker -> its parked process
        self.stream_module = runtime.load_module(GUESTS / "chaos.wat")
        self.links: Module = runtime.load_module(GUESTS / "fail_links.wat")
        self.figures = Figures()
        self.names = 0

    def spawn(self, module: Module, function: str, *params: int, worker: int) -> int:
        return self.runtime.spawn(module, function, params, PERMISSIVE, worker=worker)

    def top_up(self) -> None:
        """A stream between every ordered pair of workers, and a watched process on every
        worker watched from every other worker, where the last kill took them away."""
        runtime = self.runtime
        workers = runtime.worker_ids
        started = []
        for source in workers:
            for destination in workers:
                if (source, destination) not in self.streams:
                    consumer = self.spawn(self.stream_module, "consume", runtime.pid, worker=destination)
                    producer = self.spawn(self.stream_module, "produce", consumer, EVERY, worker=source)
                    self.streams[source, destination] = Stream(producer, consumer)
                    started.append(consumer)
        new_watchers = 0
        for worker in workers:
            watched = self.watched.get(worker)
            if watched is None:
                self.names += 1
                pid = self.spawn(self.stream_module, "park", worker=worker)
                watched = self.watched[worker] = Watched(pid, f"chaos-{self.names}")
                runtime.registry_put(watched.name, pid)
                runtime.monitor(pid)
            have = {worker_of(w) for w in watched.watchers}
            for other in workers:
                if other != worker and other not in have:
                    for kind, function in (("link", "watch_link"), ("link_park", "link_park"),
                                           ("monitor", "watch_monitor")):  # fmt: skip
                        watcher = self.spawn(self.links, function, watched.pid, runtime.pid, worker=other)
                        watched.watchers[watcher] = kind
                        new_watchers += 1
        assert reports(runtime, CONSUMING, len(started)) == set(started)
        reports(runtime, READY, new_watchers)

    def kill_one(self) -> int:
        """SIGKILL a random worker; its id, once a replacement has started."""
        runtime = self.runtime
        victim = self.random.choice(runtime.worker_ids)
        losses = runtime.workers_lost
        time.sleep(self.random.uniform(0, JITTER_S))  # not a wait: a kill at a random moment
        started = time.monotonic()
        os.kill(runtime.worker_pids()[victim], signal.SIGKILL)
        assert runtime.wait_for_workers(DEADLINE, losses=losses + 1), "no full set of workers after a kill"
        assert runtime.workers_lost == losses + 1
        self.figures.replace_s.append(time.monotonic() - started)
        assert victim not in runtime.worker_ids and len(runtime.worker_ids) == WORKERS
        return victim

    def check_loss(self, lost: int) -> None:
        """Everything the loss of worker ``lost`` must have done, and nothing more."""
        runtime = self.runtime
        for (source, destination), stream in list(self.streams.items()):
            if lost not in (source, destination):
                continue
            del self.streams[source, destination]
            if source == lost:
                assert_lost(runtime, stream.producer, lost)
            if destination == lost:
                assert_lost(runtime, stream.consumer, lost)
            if source != lost:  # its consumer is gone: stop it, it has sent into the void
                runtime.send(stream.producer, tag=STOP)
                joined_ok(runtime, stream.producer)
            if destination != lost:  # an unbroken prefix arrived, then the producer's death
                count, out_of_order = joined_ok(runtime, stream.consumer)
                assert out_of_order == 0 and isinstance(count, int) and count >= 1, (count, out_of_order)
                self.figures.delivered += count
        watched = self.watched.pop(lost, None)
        if watched is not None:  # everything watching it fires
            for watcher, kind in watched.watchers.items():
                if worker_of(watcher) == lost:
                    assert_lost(runtime, watcher, lost)
                elif kind == "link":
                    assert joined_ok(runtime, watcher) == (int(Kind.LINK_DIED), 13, watched.pid)
                elif kind == "monitor":
                    assert joined_ok(runtime, watcher) == (int(Kind.PROCESS_DIED), watched.pid)
                else:
                    finished = joined(runtime, watcher)
                    assert finished.outcome is Outcome.KILLED, finished
                    assert f"linked process {watched.pid} died (worker {lost} lost)" in finished.message
            assert_lost(runtime, watched.pid, lost)
            died = runtime.receive([0], timeout=DEADLINE)
            assert died is not None and (died.kind, died.pid) == (Kind.PROCESS_DIED, watched.pid), died
            assert runtime.registry_get(watched.name) is None
        for other in self.watched.values():  # watchers on the lost worker die; the rest wait on
            for watcher in [w for w in other.watchers if worker_of(w) == lost]:
                del other.watchers[watcher]
                assert_lost(runtime, watcher, lost)
            assert runtime.registry_get(other.name) == other.pid
        assert runtime.receive([0], timeout=0) is None, "a ProcessDied for a process that lives"

    def measure(self) -> None:
        registry = self.runtime.registry_os_pid()
        assert registry is not None
        self.figures.supervisor_rss.append(psutil.Process().memory_info().rss)
        self.figures.registry_rss.append(psutil.Process(registry).memory_info().rss)

    def finish(self) -> None:
        """Stop every stream: each consumer got exactly what its producer sent, in order."""
        runtime = self.runtime
        for stream in self.streams.values():
            runtime.send(stream.producer, tag=STOP)
        for stream in self.streams.values():
            (sent,) = joined_ok(runtime, stream.producer)
            assert joined_ok(runtime, stream.consumer) == (sent, 0)
            assert isinstance(sent, int)
            self.figures.delivered += sent
        for watched in self.watched.values():
            assert runtime.registry_get(watched.name) == watched.pid
            runtime.kill(watched.pid)
            assert joined(runtime, watched.pid).outcome is Outcome.KILLED
            for watcher in watched.watchers:
                assert joined(runtime, watcher).outcome in (Outcome.NORMAL, Outcome.KILLED)


def run_chaos(kills: int, seed: int) -> Figures:
    with Runtime(workers=WORKERS) as runtime:
        chaos = Chaos(runtime, seed)
        for _ in range(kills):
            chaos.top_up()
            lost = chaos.kill_one()
            chaos.check_loss(lost)
            chaos.measure()
        chaos.top_up()
        chaos.finish()
        assert runtime.workers_lost == kills
        return chaos.figures


def test_kill_9_again_and_again_under_load() -> None:
    """20 SIGKILLs of random workers under load lose nothing between survivors, fire every link
    and monitor to the lost processes, keep a full set of workers and bounded memory."""
    seed = int(os.environ.get("CHAOS_SEED", random.randrange(2**32)))
    print(f"chaos seed {seed} (CHAOS_SEED={seed} repeats this run)")
    figures = run_chaos(KILLS, seed)
    assert len(figures.replace_s) == KILLS
    median_ms, max_ms = statistics.median(figures.replace_s) * 1000, max(figures.replace_s) * 1000
    print(f"replacement ready after: median {median_ms:.0f} ms, max {max_ms:.0f} ms ({KILLS} kills)")
    for rss in (figures.supervisor_rss, figures.registry_rss):
        growth = max(rss[WARM_UP:]) - rss[WARM_UP - 1]
        assert growth < RSS_GROWTH_LIMIT, f"RSS grew by {growth / 2**20:.1f} MiB over the kills: {rss}"


def main() -> None:
    """Figures: how long a replacement takes, RSS over the kills, messages checked."""
    kills = int(sys.argv[1]) if len(sys.argv) > 1 else KILLS
    seed = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    started = time.monotonic()
    figures = run_chaos(kills, seed)
    mib = 2**20
    print(f"{kills} kills of {WORKERS} workers in {time.monotonic() - started:.1f} s (seed {seed})")
    median_ms, max_ms = statistics.median(figures.replace_s) * 1000, max(figures.replace_s) * 1000
    print(f"replacement ready after: median {median_ms:.0f} ms, max {max_ms:.0f} ms")
    for what, rss in (("supervisor", figures.supervisor_rss), ("registry", figures.registry_rss)):
        print(f"{what} RSS by round (MiB): " + " ".join(f"{r / mib:.1f}" for r in rss))
    print(f"values checked in order, exactly once: {figures.delivered}")


if __name__ == "__main__":
    main()
