"""The Ray side of a cluster (lunatic_mp.cluster.nodes) that needs no Ray cluster: tags, the
error without Ray, and wasmtime's trap handlers kept through Ray's calls."""

from __future__ import annotations

import ctypes
import signal
import sys

import pytest

from lunatic_mp import Engine
from lunatic_mp.cluster.nodes import fault_handlers_kept, import_ray, node_tags
from lunatic_mp.errors import ClusterError
from lunatic_mp.vm.finished import Outcome

TRAP = '(module (memory (export "memory") 1) (func (export "trap") unreachable))'


def test_node_tags_are_ray_labels_without_rays_own() -> None:
    labels = {"region": "eu", "ray.io/node-id": "abc", "zone": "b"}
    assert node_tags(labels) == {"region": "eu", "zone": "b"}


def test_without_ray_a_cluster_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray now fails
    with pytest.raises(ClusterError, match=r"pip install 'lunatic-mp\[cluster\]'"):
        import_ray()


def test_a_guest_still_traps_cleanly_after_a_call_that_reset_the_fault_handlers() -> None:
    """ray.shutdown resets SIGILL's handler; around it, wasmtime's is put back, so a guest's trap
    in this process fails the guest instead of killing the process."""
    engine = Engine()  # wasmtime's handlers are installed by now
    try:
        libc = ctypes.CDLL(None)
        with fault_handlers_kept():
            libc.signal(int(signal.SIGILL), 0)  # SIG_DFL, as Ray's shutdown leaves it
        module = engine.load_module(TRAP)
        finished = engine.run_until_finished(engine.spawn(module, "trap"), timeout=30)
        assert finished is not None and finished.outcome is Outcome.FAILED
        assert "unreachable" in finished.message
    finally:
        engine.close()
