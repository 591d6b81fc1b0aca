"""`lunatic-mp bench`: every scenario runs and reports every figure (how fast is for the harness to
say, not for tests), and the harness turns bad input into clear errors."""

from __future__ import annotations

import importlib.util
import io
import json
import math
import shutil
import subprocess
import sys
import types
from pathlib import Path

import pytest

from lunatic_mp.bench import runner as bench
from lunatic_mp.errors import BenchError

ROOT = Path(__file__).parents[2]
PNG = b"\x89PNG\r\n\x1a\n"
DIFFERENCES = {"engine_slice_yield_overhead_percent", "engine_fuel_metering_overhead_percent"}
"""Figures that are a difference of two timings: noise on a loaded machine can make them negative."""


def lunatic_mp() -> str:
    """The installed console script (the CLI package has no ``__main__``)."""
    beside_python = Path(sys.executable).parent / "lunatic-mp"
    if beside_python.exists():
        return str(beside_python)
    found = shutil.which("lunatic-mp")
    if found is None:
        pytest.skip("the lunatic-mp script is not installed")
    return found


def expected_metrics() -> dict[str, set[str]]:
    """Every figure a --quick run on 2 workers reports, by scenario (Erlang's and Ray's where installed)."""
    erlang = shutil.which("escript") is not None
    ray = importlib.util.find_spec("ray") is not None
    sizes = ("64b", "4kib")
    return {
        "spawn": {
            "engine_spawn_and_exit_us",
            "engine_guest_spawn_cpu_us",
            "one_worker_processes_per_s",
            "all_workers_processes_per_s",
            "all_workers_speedup_x",
            "plain_wasmtime_instances_per_s",
            "one_worker_vs_plain_wasmtime_x",
        }
        | ({"erlang_processes_per_s", "all_workers_vs_erlang_x"} if erlang else set()),
        "pingpong": {"engine_message_us", "cross_worker_p50_vs_pipe_x"}
        | {
            f"{who}_{stat}_us"
            for who in ("cross_worker", "same_worker", "pipe")
            for stat in ("p50", "p99", "mean")
        }
        | ({"erlang_p50_us", "erlang_p99_us"} if erlang else set()),
        "stream": {"engine_64b_message_us"}
        | {f"same_worker_{size}_msgs_per_s" for size in sizes}
        | {f"same_worker_{size}_message_us" for size in sizes}
        | {f"cross_worker_{size}_msgs_per_s" for size in sizes}
        | {f"cross_worker_{size}_all_pairs_msgs_per_s" for size in sizes}
        | {f"pipe_{size}_msgs_per_s" for size in sizes}
        | {f"cross_worker_{size}_vs_pipe_x" for size in sizes},
        "ring": {
            "one_worker_hops_per_s",
            "one_worker_hop_us",
            "all_workers_hops_per_s",
            "all_workers_hop_us",
            "engine_hop_us",
        }
        | ({"erlang_hops_per_s", "one_worker_vs_erlang_x"} if erlang else set()),
        "fanout": {
            "plain_wasmtime_job_s",
            "one_worker_job_s",
            "one_worker_vs_plain_wasmtime_x",
            "all_workers_speedup_x",
            "all_workers_efficiency_percent",
            "all_workers_vs_plain_wasmtime_ceiling_percent",
            "process_pool_s",
            "all_workers_vs_process_pool_x",
            "all_workers_no_long_slices_vs_process_pool_x",
            "tiny_job_overhead_us",
            "process_pool_tiny_job_us",
            "tiny_job_vs_process_pool_x",
            "plain_wasmtime_call_us",
            "engine_slice_yield_overhead_percent",
            "engine_fuel_metering_overhead_percent",
        }
        | ({"ray_s", "all_workers_vs_ray_x", "ray_tiny_job_us", "tiny_job_vs_ray_x"} if ray else set()),
        "idle": {
            "engine_rss_per_process_kib",
            "queued_message_overhead_bytes",
            "rss_per_process_awake_kib",
            "hibernated_count",
            "rss_per_process_kib",
            "idle_runtime_cpu_percent",
            "live_processes_count",
            "capacity_count",
            "plain_wasmtime_rss_per_instance_kib",
            "engine_spawn_empty_us",
            "engine_spawn_loaded_us",
            "engine_spawn_loaded_slowdown_x",
            "bounds_checks_overhead_percent",
            "pooling_bounds_checks_overhead_percent",
            "engine_hibernate_us",
            "engine_wake_us",
            "engine_wake_hibernated_us",
        }
        | ({"erlang_memory_per_process_kib", "erlang_process_limit_count"} if erlang else set()),
        "serve": {
            "control_round_trips_per_s",
            "control_round_trip_p50_us",
            "control_round_trip_p99_us",
            "control_pipelined_requests_per_s",
            "control_async_client_requests_per_s",
            "echo_round_trip_p50_us",
            "control_round_trip_p50_vs_echo_x",
            "http_requests_per_s",
            "http_named_process_requests_per_s",
            "http_named_process_vs_aiohttp_x",
            "http_aiohttp_hello_world_requests_per_s",
            "http_vs_aiohttp_x",
            "http_aiohttp_hello_world_2_processes_requests_per_s",
            "http_vs_aiohttp_same_processes_x",
        },
        "echo": {"guest_round_trips_per_s", "asyncio_round_trips_per_s", "guest_vs_asyncio_x"},
        "startup": {
            "import_s",
            "run_one_engine_s",
            "runtime_2_workers_ready_s",
            "runtime_2_workers_ready_and_closed_s",
            "run_2_workers_s",
            "worker_replaced_median_s",
            "worker_replaced_max_s",
        }
        | ({"erlang_start_and_halt_s", "run_2_workers_vs_erlang_x"} if shutil.which("erl") else set()),
        "transport": {
            "ring_outbox_batched_frames_per_s",
            "ring_outbox_batched_spin_50us_frames_per_s",
            "pipe_batched_frames_per_s",
            "pipe_one_per_send_frames_per_s",
            "ring_vs_pipe_batched_x",
            "full_fence_ns",
            "empty_call_ns",
            "ring_awake_consumer_ns",
        }
        | {
            f"{path}_round_trip_{stat}_us"
            for path in ("ring_spinning", "ring_doorbell", "ring_doorbell_spin_50us", "pipe")
            for stat in ("p50", "p99")
        },
        "cluster": {
            "cross_node_p50_us",
            "cross_node_p99_us",
            "cross_node_64b_msgs_per_s",
            "cross_node_64b_slowest_msgs_per_s",
            "ray_actor_p50_us",
            "cross_node_vs_ray_actor_x",
            "tcp_p50_us",
            "frozen_node_lost_s",
            "killed_node_lost_s",
        }
        if ray
        else set(),
    }


def test_quick_run_reports_every_scenario(tmp_path: Path) -> None:
    """`lunatic-mp bench --quick --workers 2` runs every scenario, prints the table, and writes
    the JSON (one key per figure, units in the names, machine and versions) and the plots."""
    out, plots = tmp_path / "figures.json", tmp_path / "plots"
    result = subprocess.run(
        [lunatic_mp(), "bench", "--quick", "--workers", "2", "--json", str(out), "--plot", str(plots)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,  # the scenarios are found beside the package, not in the current directory
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    figures = json.loads(out.read_text())
    meta = figures.pop("meta")
    expected = expected_metrics()
    assert set(figures) == set(expected)
    for scenario, keys in expected.items():
        assert set(figures[scenario]) == keys, scenario
        for key, value in figures[scenario].items():
            assert isinstance(value, int | float) and math.isfinite(value), (scenario, key, value)
            if key not in DIFFERENCES:
                assert value > 0, (scenario, key, value)
    assert meta["skipped"] == {}
    assert meta["failed"] == {}
    assert meta["quick"] is True and meta["workers"] == 2
    assert meta["versions"]["lunatic_mp"] and meta["versions"]["wasmtime"] and meta["versions"]["python"]
    assert meta["machine"]["cpus"] >= 1 and meta["machine"]["cpu"]
    assert meta["targets"]["pingpong"]["cross_worker_p50_us"] == "<= 15"
    assert meta["command"].startswith("lunatic-mp bench --quick")

    for scenario in expected:
        assert f"\n{scenario}: " in "\n" + result.stdout
    written = sorted(p.name for p in plots.iterdir())
    ray = importlib.util.find_spec("ray") is not None
    assert written == [
        *(["cluster-round-trips.png"] if ray else []),
        "fanout-speed-up.png",
        "pingpong-round-trips.png",
        "serve-round-trips.png",
        "spawn-throughput.png",
        "transport-round-trips.png",
    ]
    assert all((plots / name).read_bytes().startswith(PNG) for name in written)


def test_unknown_scenario_is_refused_with_the_choices() -> None:
    result = subprocess.run(
        [lunatic_mp(), "bench", "spawn", "pingpong-x"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "unknown scenario pingpong-x: choose from spawn, pingpong, stream, ring, fanout" in result.stderr


def test_help_names_every_scenario() -> None:
    result = subprocess.run(
        [lunatic_mp(), "bench", "--help"], capture_output=True, text=True, timeout=60, check=True
    )
    text = " ".join(result.stdout.split())
    for scenario in bench.SCENARIOS:
        assert scenario in text
    assert "--quick" in text and "--workers" in text and "--json" in text and "--plot" in text


def test_select_keeps_run_order() -> None:
    assert bench.select(["ring", "spawn"]) == ["spawn", "ring"]
    assert bench.select([]) == list(bench.SCENARIOS)


def test_benchmarks_directory_missing_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(BenchError, match=r"Clone the repository and install it with `pip install -e \.`"):
        bench.find_benchmarks([tmp_path / "benchmarks"])
    assert bench.find_benchmarks() == ROOT / "benchmarks"


def test_plot_without_matplotlib_says_how_to_get_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now raises ImportError
    with pytest.raises(BenchError, match=r"pip install 'lunatic-mp\[bench\]'"):
        bench.require_matplotlib()


def context() -> bench.Context:
    progress = bench.Progress(1, io.StringIO())
    ctx = bench.Context(quick=True, workers=2, directory=ROOT / "benchmarks", progress=progress)
    ctx.result = bench.ScenarioResult("demo", "a demonstration")
    return ctx


def test_metrics_need_a_unit_a_number_and_one_value() -> None:
    ctx = context()
    ctx.record("round_trip_us", 1.23456)
    assert ctx.result.metrics == {"round_trip_us": 1.235}
    with pytest.raises(BenchError, match="does not end with a unit"):
        ctx.record("round_trip", 1.0)
    with pytest.raises(BenchError, match="recorded twice"):
        ctx.record("round_trip_us", 2.0)
    with pytest.raises(BenchError, match="not a number"):
        ctx.record("lost_us", float("nan"))


def test_table_json_and_plots_of_a_report(tmp_path: Path) -> None:
    """A report's table shows each figure with its unit and the target met or short; its
    document is {scenario: {metric: value}} plus meta; its plots are PNG files."""
    ctx = context()
    ctx.record("messages_per_s", 250_000, target=bench.at_least(500_000))
    ctx.record("latency_us", 12.5, target=bench.at_most(20))
    ctx.note("a baseline was skipped")
    ctx.distribution("round trips", "demo", [1.0, 2.0, 3.0, 50.0])
    ctx.scaling("speed-up", "demo", [(1, 1.0), (2, 1.9)], x_label="workers", y_label="speed-up", ideal=1.0)
    skipped = bench.ScenarioResult("serve", "HTTP", skipped="serve not available")
    failed = bench.ScenarioResult("ring", "a ring", failed="AssertionError: lost token")
    meta = {
        "workers": 2,
        "quick": True,
        "machine": {"load_average_before": [0.5]},
        "load_average_after": [0.7],
        "duration_s": 1.0,
    }
    report = bench.Report([ctx.result, skipped, failed], meta)
    table = bench.format_table(report)
    assert "messages_per_s" in table and "250,000 /s" in table and ">= 500,000  short" in table
    assert "12.5 µs" in table and "<= 20  met" in table
    assert "note: a baseline was skipped" in table
    assert "skipped: serve not available" in table and "FAILED: AssertionError: lost token" in table
    assert not report.ok
    document = report.document()
    assert document["demo"] == {"messages_per_s": 250_000, "latency_us": 12.5}
    assert "serve" not in document and "ring" not in document
    assert document["meta"]["skipped"] == {"serve": "serve not available"}
    assert document["meta"]["failed"] == {"ring": "AssertionError: lost token"}
    assert document["meta"]["targets"] == {"demo": {"messages_per_s": ">= 500,000", "latency_us": "<= 20"}}
    paths = bench.plot(report, tmp_path / "plots")
    assert sorted(p.name for p in paths) == ["demo-round-trips.png", "demo-speed-up.png"]
    assert all(p.read_bytes().startswith(PNG) for p in paths)


def test_a_failing_scenario_is_reported_and_the_others_go_on() -> None:
    module = types.ModuleType("broken")
    module.TITLE = "always fails"  # type: ignore[attr-defined]

    def run(ctx: bench.Context) -> None:
        ctx.record("before_us", 1.0)
        raise AssertionError("the token was lost")

    module.run = run  # type: ignore[attr-defined]
    err = io.StringIO()
    result = bench.run_scenario(context(), module, "broken", err)
    assert result.failed == "AssertionError: the token was lost"
    assert "Traceback" in err.getvalue() and "the token was lost" in err.getvalue()


def test_an_unavailable_scenario_is_skipped_with_its_reason() -> None:
    module = types.ModuleType("absent")
    module.TITLE = "needs something missing"  # type: ignore[attr-defined]
    module.unavailable = lambda: "thing not available"  # type: ignore[attr-defined]
    module.run = lambda ctx: pytest.fail("an unavailable scenario must not run")  # type: ignore[attr-defined]
    result = bench.run_scenario(context(), module, "absent", io.StringIO())
    assert result.skipped == "thing not available" and result.failed is None
