"""Live processes and reserved memory of limited environments (``EnvConfig.max_processes``,
``EnvConfig.max_env_memory``), per worker.

One table, kept by whoever counts: the registry process for a runtime (every worker's spawns
ask it first), an engine on its own for itself.
"""

from __future__ import annotations


class Environments:
    """For each limited environment, each worker's live processes and the memory they reserve."""

    def __init__(self) -> None:
        self._usage: dict[int, dict[int, list[int]]] = {}  # environment -> worker -> [live, bytes]

    def usage(self, environment: int) -> tuple[int, int]:
        """The environment's live processes and reserved bytes, on every worker together."""
        workers = self._usage.get(environment, {}).values()
        return sum(u[0] for u in workers), sum(u[1] for u in workers)

    def check(self, environment: int, limit: int, memory: int, memory_limit: int) -> str | None:
        """Why one more process taking ``memory`` bytes does not fit (None: it does)."""
        live, reserved = self.usage(environment)
        if limit and live >= limit:
            return (
                f"environment {environment} is at its limit of {limit} live processes (max_processes); "
                "wait for some to end"
            )
        if memory_limit and reserved + memory > memory_limit:
            return (
                f"environment {environment} has {reserved} of its {memory_limit} bytes of memory "
                f"(max_env_memory) reserved by {live} processes; one more needs {memory}: wait for "
                "some to end, or give it a smaller max_memory"
            )
        return None

    def acquire(
        self, environment: int, worker: int, limit: int, memory: int, memory_limit: int
    ) -> str | None:
        """Count one more process on ``worker`` if it fits; why not otherwise."""
        error = self.check(environment, limit, memory, memory_limit)
        if error is None:
            self.add(environment, worker, memory)
        return error

    def add(self, environment: int, worker: int, memory: int) -> None:
        usage = self._usage.setdefault(environment, {}).setdefault(worker, [0, 0])
        usage[0] += 1
        usage[1] += memory

    def release(self, environment: int, worker: int, memory: int) -> None:
        """A process of ``environment`` on ``worker`` ended (or never started)."""
        workers = self._usage.get(environment)
        usage = workers.get(worker) if workers is not None else None
        if workers is None or usage is None or usage[0] <= 0:
            return
        usage[0] -= 1
        usage[1] = max(usage[1] - memory, 0)
        if not usage[0]:
            del workers[worker]
            if not workers:
                del self._usage[environment]

    def forget_worker(self, worker: int) -> None:
        """A lost worker's processes died with it: their places and memory come back."""
        for environment, workers in list(self._usage.items()):
            workers.pop(worker, None)
            if not workers:
                del self._usage[environment]


__all__ = ["Environments"]
