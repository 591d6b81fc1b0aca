"""``lunatic-mp bench``: the one way every speed claim of this project is measured.

Why the runner lives in the package and the scenarios in the source tree's ``benchmarks/``: the
scenarios (their guests, their baselines) change with the code they measure and are not part of
what users install, while the command must work after ``pip install -e .``. The runner looks for
``benchmarks/`` beside the package (an editable install, or running from a clone) and then in the
current directory, and says what to do when neither has it.

A scenario is a module ``benchmarks/<name>.py`` with ``TITLE`` (one line), ``run(ctx)`` and
optionally ``unavailable() -> str | None`` (a reason to skip it). It reports through the
:class:`Context`: ``record`` a metric (its unit in its name, e.g. ``cross_worker_p50_us``), ``note``
what it could not measure (a baseline that is not installed), ``distribution`` and ``scaling``
for the plots. Baselines are measured in the same run, so a ratio against them survives a noisy
machine where an absolute figure does not.
"""

from __future__ import annotations

import datetime
import importlib
import json
import math
import os
import platform
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from types import ModuleType
from typing import IO, TYPE_CHECKING, Any, TypeVar

from lunatic_mp.cluster.hostenv import default_worker_count
from lunatic_mp.errors import BenchError

if TYPE_CHECKING:
    from lunatic_mp.api.runtime import Runtime

SCENARIOS = (
    "spawn", "pingpong", "stream", "ring", "fanout", "idle", "serve", "transport", "echo", "startup",
    "cluster",
)  # fmt: skip
"""Every scenario, in the order a full run takes them."""

PACKAGE = "benchmarks"
MARKER = "guests"
"""A directory is the benchmarks/ of this project when it holds guests/ and an __init__.py."""

UNITS = (
    ("_per_s", "/s"),
    ("_us", "µs"),
    ("_ns", "ns"),
    ("_s", "s"),
    ("_kib", "KiB"),
    ("_bytes", "B"),
    ("_percent", "%"),
    ("_x", "x"),
    ("_count", ""),
)
"""Metric names end with their unit (checked when recorded); longer suffixes first."""

T = TypeVar("T")


def unit_of(key: str) -> str:
    """The unit a metric's name ends with; BenchError when it names none."""
    for suffix, unit in UNITS:
        if key.endswith(suffix):
            return unit
    names = ", ".join(suffix for suffix, _ in UNITS)
    raise BenchError(f"metric {key!r} does not end with a unit ({names})")


@dataclass(frozen=True)
class Target:
    """A figure the issues ask for: at least or at most ``value``."""

    value: float
    at_least: bool

    def met(self, measured: float) -> bool:
        return measured >= self.value if self.at_least else measured <= self.value

    def __str__(self) -> str:
        return f"{'>=' if self.at_least else '<='} {format_value(self.value)}"


def at_least(value: float) -> Target:
    return Target(value, at_least=True)


def at_most(value: float) -> Target:
    return Target(value, at_least=False)


@dataclass
class Distribution:
    """Samples for a latency-distribution plot; one plot per ``plot`` name, one line per label."""

    plot: str
    label: str
    samples: list[float]
    unit: str


@dataclass
class Scaling:
    """Points (x, y) for a scaling plot; ``ideal`` draws y = ideal * x for comparison."""

    plot: str
    label: str
    points: list[tuple[float, float]]
    x_label: str
    y_label: str
    ideal: float | None = None


@dataclass
class ScenarioResult:
    name: str
    title: str
    metrics: dict[str, float] = field(default_factory=dict)
    targets: dict[str, Target] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    distributions: list[Distribution] = field(default_factory=list)
    scalings: list[Scaling] = field(default_factory=list)
    skipped: str | None = None
    failed: str | None = None
    seconds: float = 0.0
    load_average: float = 0.0
    """The 1-minute load average as the scenario started: other work on the machine slows it."""


class Progress:
    """What runs now: a bar on a terminal, one line per step otherwise (logs stay readable)."""

    def __init__(self, total: int, stream: IO[str]) -> None:
        self.stream = stream
        self.total = total
        self.done = 0
        self.scenario = ""
        self.bar: Any = None
        if stream.isatty():
            tqdm = importlib.import_module("tqdm").tqdm  # untyped: kept out of mypy's sight

            self.bar = tqdm(total=total, unit="scenario", file=stream, leave=False, dynamic_ncols=True)

    def start(self, scenario: str) -> None:
        self.scenario = scenario
        self.step("starting")

    def step(self, label: str) -> None:
        if self.bar is not None:
            self.bar.set_description(f"{self.scenario}: {label}", refresh=True)
        else:
            print(f"[{self.done + 1}/{self.total}] {self.scenario}: {label}", file=self.stream, flush=True)

    def finish(self, result: ScenarioResult) -> None:
        self.done += 1
        state = (result.skipped and f"skipped ({result.skipped})") or (result.failed and "FAILED") or "done"
        line = f"{result.name}: {state} in {result.seconds:.1f} s"
        if self.bar is not None:
            self.bar.write(line, file=self.stream)
            self.bar.update(1)
        else:
            print(line, file=self.stream, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class Context:
    """What a scenario gets: the run's options, a shared runtime, and where to report."""

    def __init__(self, *, quick: bool, workers: int, directory: Path, progress: Progress) -> None:
        self.quick = quick
        self.workers = workers
        self.directory = directory
        self._progress = progress
        self._runtime: Runtime | None = None
        self.result = ScenarioResult("", "")

    def pick(self, full: T, quick: T) -> T:
        """``quick`` in a --quick run (a smoke test: it runs, not how fast), else ``full``."""
        return quick if self.quick else full

    def guest(self, name: str) -> Path:
        """A guest module of benchmarks/guests, by file name."""
        return self.directory / MARKER / name

    def step(self, label: str) -> None:
        self._progress.step(label)

    def record(self, key: str, value: float, *, target: Target | None = None) -> None:
        """A figure, named with its unit; the issue's target for it, if it has one."""
        unit_of(key)
        if key in self.result.metrics:
            raise BenchError(f"{self.result.name}: metric {key!r} recorded twice")
        if not isinstance(value, int | float) or not math.isfinite(value):
            raise BenchError(f"{self.result.name}: metric {key!r} is not a number: {value!r}")
        self.result.metrics[key] = round(value, 3) if isinstance(value, float) else value
        if target is not None:
            self.result.targets[key] = target

    def note(self, text: str) -> None:
        """Something the reader of the figures must know (a baseline skipped, a cap applied)."""
        self.result.notes.append(text)

    def distribution(self, plot: str, label: str, samples: Sequence[float], unit: str = "µs") -> None:
        self.result.distributions.append(Distribution(plot, label, list(samples), unit))

    def scaling(
        self,
        plot: str,
        label: str,
        points: Sequence[tuple[float, float]],
        *,
        x_label: str,
        y_label: str,
        ideal: float | None = None,
    ) -> None:
        self.result.scalings.append(Scaling(plot, label, list(points), x_label, y_label, ideal))

    def runtime(self) -> Runtime:
        """A Runtime of ``workers`` workers, shared by the scenarios of this run (started once)."""
        if self._runtime is None:
            from lunatic_mp.api.runtime import Runtime

            self.step(f"starting a runtime of {self.workers} workers")
            self._runtime = Runtime(workers=self.workers)
        return self._runtime

    def close(self) -> None:
        if self._runtime is not None:
            self._runtime.close()
            self._runtime = None


# --- finding and running scenarios ----------------------------------------------------------------


def find_benchmarks(candidates: Sequence[Path] | None = None) -> Path:
    """The source tree's benchmarks/ directory: beside the package, else in the current directory."""
    if candidates is None:
        candidates = [Path(__file__).resolve().parents[2] / PACKAGE, Path.cwd() / PACKAGE]
    for candidate in candidates:
        if (candidate / "__init__.py").is_file() and (candidate / MARKER).is_dir():
            return candidate
    looked = ", ".join(str(c) for c in candidates)
    raise BenchError(
        "lunatic-mp bench runs the scenarios in the benchmarks/ directory of lunatic_mp's source "
        f"tree, and there is none here (looked in {looked}). Clone the repository and install it "
        "with `pip install -e .`, or run the command from the clone's root."
    )


def load_scenario(directory: Path, name: str) -> ModuleType:
    """Import ``benchmarks/<name>.py`` as ``benchmarks.<name>``.

    The directory's parent goes first on sys.path so that the scenarios can import each other and
    multiprocessing's spawned children (baselines run in pools) can import them by name.
    """
    root = str(directory.parent)
    if root not in sys.path:
        sys.path.insert(0, root)
    package = sys.modules.get(PACKAGE)
    if package is not None and Path(getattr(package, "__file__", "") or "").parent != directory:
        raise BenchError(
            f"another module named {PACKAGE!r} is loaded ({package.__file__}); cannot load {directory}"
        )
    module = importlib.import_module(f"{PACKAGE}.{name}")
    if not callable(getattr(module, "run", None)) or not isinstance(getattr(module, "TITLE", None), str):
        raise BenchError(f"{directory / name}.py is no scenario: it needs TITLE and run(ctx)")
    return module


def select(names: Sequence[str]) -> list[str]:
    """The scenarios asked for, in run order (all when none is named); BenchError for unknown names."""
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        raise BenchError(f"unknown scenario {', '.join(unknown)}: choose from {', '.join(SCENARIOS)}")
    return [s for s in SCENARIOS if not names or s in names]


def run_scenario(ctx: Context, module: ModuleType, name: str, err: IO[str]) -> ScenarioResult:
    result = ScenarioResult(name, module.TITLE, load_average=round(os.getloadavg()[0], 2))
    ctx.result = result
    start = time.perf_counter()
    unavailable: Callable[[], str | None] | None = getattr(module, "unavailable", None)
    reason = unavailable() if unavailable is not None else None
    if reason:
        result.skipped = reason
    else:
        try:
            module.run(ctx)
        except Exception as exc:  # noqa: BLE001 - one broken scenario must not hide the others' figures
            result.failed = f"{type(exc).__name__}: {exc}"
            print(f"scenario {name} failed:\n{traceback.format_exc()}", file=err, flush=True)
    result.seconds = time.perf_counter() - start
    return result


@dataclass
class Report:
    results: list[ScenarioResult]
    meta: dict[str, Any]

    @property
    def ok(self) -> bool:
        return not any(r.failed for r in self.results)

    def document(self) -> dict[str, Any]:
        """``{"scenario": {"metric_unit": value}}`` for every scenario that ran, plus ``meta``."""
        doc: dict[str, Any] = {r.name: dict(r.metrics) for r in self.results if not (r.skipped or r.failed)}
        doc["meta"] = {
            **self.meta,
            "targets": {r.name: {k: str(t) for k, t in r.targets.items()} for r in self.results if r.targets},
            "notes": {r.name: r.notes for r in self.results if r.notes},
            "skipped": {r.name: r.skipped for r in self.results if r.skipped},
            "failed": {r.name: r.failed for r in self.results if r.failed},
            "seconds": {r.name: round(r.seconds, 1) for r in self.results},
            "load_average": {r.name: r.load_average for r in self.results},
        }
        return doc


def run(
    names: Sequence[str] = (),
    *,
    quick: bool = False,
    workers: int | None = None,
    json_path: Path | None = None,
    plot_dir: Path | None = None,
    out: IO[str] | None = None,
    err: IO[str] | None = None,
    directory: Path | None = None,
    command: str | None = None,
) -> Report:
    """Run the scenarios, print the table to ``out``, write the JSON and the plots; the report."""
    out = out or sys.stdout
    err = err or sys.stderr
    chosen = select(names)
    if workers is not None and workers < 1:
        raise BenchError("--workers must be at least 1")
    if plot_dir is not None:
        require_matplotlib()
    directory = directory or find_benchmarks()
    modules = {name: load_scenario(directory, name) for name in chosen}
    workers = workers or default_worker_count()
    meta = describe(directory, quick=quick, workers=workers, command=command)
    progress = Progress(len(chosen), err)
    ctx = Context(quick=quick, workers=workers, directory=directory, progress=progress)
    results = []
    started = time.perf_counter()
    try:
        for name in chosen:
            progress.start(name)
            result = run_scenario(ctx, modules[name], name, err)
            results.append(result)
            progress.finish(result)
    finally:
        ctx.close()
        progress.close()
    meta["duration_s"] = round(time.perf_counter() - started, 1)
    meta["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    report = Report(results, meta)
    print(format_table(report), file=out, flush=True)
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(report.document(), indent=2, ensure_ascii=False) + "\n")
    if plot_dir is not None:
        for path in plot(report, plot_dir):
            print(f"wrote {path}", file=err)
    return report


# --- machine and versions -------------------------------------------------------------------------


def describe(directory: Path, *, quick: bool, workers: int, command: str | None) -> dict[str, Any]:
    """What the figures were measured on and with: they mean little without it."""
    return {
        "command": command or "lunatic-mp bench",
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "quick": quick,
        "workers": workers,
        "machine": {
            "cpu": _cpu_model(),
            "cpus": os.cpu_count(),
            "cpus_usable": len(os.sched_getaffinity(0)),
            "memory_gib": round(_memory_bytes() / 2**30, 1),
            "platform": platform.platform(),
            "load_average_before": [round(x, 2) for x in os.getloadavg()],
        },
        "versions": {
            "lunatic_mp": _version("lunatic-mp"),
            "git": _git_revision(directory.parent),
            "python": platform.python_version(),
            "wasmtime": _version("wasmtime"),
        },
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_bytes() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        return 0


def _version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def _git_revision(root: Path) -> str | None:
    """The commit the scenarios ran at, with ``-dirty`` when the tree has changes."""
    try:
        revision = subprocess.run(
            ["git", "describe", "--always", "--dirty"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if revision.returncode != 0:
        return None
    return revision.stdout.strip() or None


# --- the table ------------------------------------------------------------------------------------


def format_value(value: float) -> str:
    if isinstance(value, int) or abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}" if value else "0"


def format_table(report: Report) -> str:
    """One row per metric, under its scenario: value, unit, and the target with met or short."""
    rows: list[tuple[str, str, str, str]] = []
    for result in report.results:
        took = "" if result.skipped else f"  ({result.seconds:.1f} s, load average {result.load_average})"
        rows.append((f"{result.name}: {result.title}{took}", "", "", ""))
        if result.skipped:
            rows.append(("  skipped: " + result.skipped, "", "", ""))
        if result.failed:
            rows.append(("  FAILED: " + result.failed, "", "", ""))
        for key, value in result.metrics.items():
            target = result.targets.get(key)
            verdict = "" if target is None else f"{target}  {'met' if target.met(value) else 'short'}"
            rows.append(("  " + key, format_value(value), unit_of(key), verdict))
        rows.extend(("  note: " + note, "", "", "") for note in result.notes)
    width = max((len(r[0]) for r in rows if r[1]), default=20)
    value_width = max((len(r[1]) for r in rows), default=8)
    lines = []
    for name, shown, unit, verdict in rows:
        if not shown:
            lines.append(name)
        else:
            lines.append(f"{name:<{width}}  {shown:>{value_width}} {unit:<4} {verdict}".rstrip())
    meta = report.meta
    workers = f"{meta['workers']} worker{'s' * (meta['workers'] != 1)}"
    lines.append(
        f"({workers}{', --quick' if meta['quick'] else ''}; load average "
        f"{meta['machine']['load_average_before'][0]} before, {meta['load_average_after'][0]} after; "
        f"{meta['duration_s']} s)"
    )
    return "\n".join(lines)


# --- plots ----------------------------------------------------------------------------------------

PLOT_EXTRA = "pip install 'lunatic-mp[bench]'  (or: pip install matplotlib)"


def require_matplotlib() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise BenchError(f"--plot needs matplotlib, which is not installed: {PLOT_EXTRA}") from None


@contextmanager
def _figure() -> Iterator[Any]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4.5), layout="constrained")
    try:
        yield figure, axes
    finally:
        plt.close(figure)


def plot(report: Report, directory: Path) -> list[Path]:
    """PNGs: each scenario's latency distributions (one plot per group, cumulative, log time) and
    its scaling curves (with the ideal line where one is given). Returns the files written."""
    require_matplotlib()
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for result in report.results:
        groups: dict[str, list[Any]] = {}
        every: list[Distribution | Scaling] = [*result.distributions, *result.scalings]
        for item in every:
            groups.setdefault(item.plot, []).append(item)
        for group, items in groups.items():
            path = directory / f"{result.name}-{_slug(group)}.png"
            with _figure() as (figure, axes):
                if isinstance(items[0], Distribution):
                    _draw_distributions(axes, items)
                else:
                    _draw_scaling(axes, items)
                axes.set_title(f"{result.name}: {group}")
                figure.savefig(path, dpi=110)
            written.append(path)
    return written


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text.lower()).strip("-")


def _draw_distributions(axes: Any, items: list[Distribution]) -> None:
    for item in items:
        samples = sorted(item.samples)
        if not samples:
            continue
        fractions = [(i + 1) / len(samples) for i in range(len(samples))]
        p50, p99 = samples[len(samples) // 2], samples[min(len(samples) - 1, int(len(samples) * 0.99))]
        axes.plot(samples, fractions, label=f"{item.label} (p50 {p50:.3g}, p99 {p99:.3g} {item.unit})")
    axes.set_xscale("log")
    axes.set_xlabel(f"latency ({items[0].unit}, log scale)")
    axes.set_ylabel("fraction of samples at most this")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize="small")


def _draw_scaling(axes: Any, items: list[Scaling]) -> None:
    for item in items:
        xs = [x for x, _ in item.points]
        axes.plot(xs, [y for _, y in item.points], marker="o", label=item.label)
        if item.ideal is not None:
            axes.plot(
                xs, [item.ideal * x for x in xs], linestyle="--", alpha=0.6, label=f"{item.label}, linear"
            )
    axes.set_xticks(sorted({x for item in items for x, _ in item.points}))
    axes.set_xlabel(items[0].x_label)
    axes.set_ylabel(items[0].y_label)
    axes.set_ylim(bottom=0)
    axes.grid(True, alpha=0.3)
    axes.legend(fontsize="small")
