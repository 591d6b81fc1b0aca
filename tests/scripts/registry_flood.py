"""A figure for docs/reliability.md: a guest floods a pid on the registry process's worker id
with N messages while the host program looks a name up again and again; the lookup times
(median and max) and what the registry counted.

    python tests/scripts/registry_flood.py [N] 2>/dev/null
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import msgpack

from lunatic_mp import EnvConfig
from lunatic_mp.api.runtime import Runtime
from lunatic_mp.cluster import frames
from lunatic_mp.pids import REGISTRY, make_pid

GUESTS = Path(__file__).resolve().parents[1] / "guests"


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
    with Runtime(workers=1) as runtime:  # warnings logged, as by default
        hostile = runtime.load_module(GUESTS / "hostile.wat")
        flood = runtime.spawn(hostile, "flood", [make_pid(0, REGISTRY, 5), count], EnvConfig())
        times: list[float] = []
        while runtime.join(flood, timeout=0) is None:
            started = time.perf_counter()
            runtime.registry_names()
            times.append(time.perf_counter() - started)
        reply = runtime._request(REGISTRY, lambda r: frames.Stats(r, runtime.pid), 600)
        dropped = msgpack.unpackb(reply.payload).get("malformed_frames", "?")
        print(
            f"{count} messages to a registry pid: {len(times)} lookups during the flood, "
            f"median {statistics.median(times) * 1000:.2f} ms, max {max(times) * 1000:.1f} ms; "
            f"frames the registry dropped: {dropped}"
        )


if __name__ == "__main__":
    main()
