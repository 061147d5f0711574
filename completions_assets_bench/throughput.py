"""The measurements on one sandbox: (a) ceiling, (b) fetch-to-Parquet, (c) Dagster, and memory.

All three read the same range from one sandbox, at each added latency, in
interleaved repeats (a, b, c, a, b, c, ...) so that drift on a shared machine
hits every variant alike. Requests are counted by the sandbox itself, and the
windows each run asked for are read back from its query log, so the minimum is
computed for the windows the run actually chose.
"""

import os
import statistics
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from completions_assets.connections import Connection
from completions_assets.local.launch import prepare_dagster_home, sandbox_environment
from completions_assets_bench import dagster_run, run_config
from completions_assets_bench.earlier_code import instance_config
from completions_assets_bench.procs import Measured, run_workers
from completions_assets_bench.sandbox import CREDENTIALS, Sandbox
from completions_assets_bench.workload import PROVIDERS, Range

VARIANTS = {
    "a": "bare async httpx fetch (ceiling)",
    "b": "fetch to Parquet (provider resources)",
    "c": "Dagster range run, three assets",
}
WORKER_TIMEOUT_S = 600.0
DAGSTER_TIMEOUT_S = 900.0


@dataclass
class Sample:
    """One measured run of one variant."""

    variant: str
    latency_ms: int
    wall_s: float
    cpu_s: float  # the variant's processes (not the sandbox)
    rss_mb: dict[str, float]  # peak RSS per process
    requests: dict[str, int]  # per provider, as the sandbox counted them
    failed: dict[str, int]  # responses other than 200, per provider
    sandbox_cpu_s: float
    detail: dict[str, Any] = field(default_factory=dict)
    windows: dict[str, int] = field(default_factory=dict)  # request windows walked to their end, per provider
    minimum: dict[str, int] = field(default_factory=dict)  # minimum requests for those windows, per provider
    probes: dict[str, int] = field(default_factory=dict)  # windows given up before their end, per provider


@dataclass
class Throughput:
    range: Range
    density: int
    records: dict[str, int]  # in the range, per provider (sandbox ground truth)
    samples: list[Sample]

    @property
    def total(self) -> int:
        return sum(self.records.values())

    def of(self, variant: str, latency_ms: int) -> list[Sample]:
        return [s for s in self.samples if s.variant == variant and s.latency_ms == latency_ms]

    def median(self, variant: str, latency_ms: int, value: Callable[[Sample], float]) -> float:
        return statistics.median(value(s) for s in self.of(variant, latency_ms))

    def records_per_s(self, variant: str, latency_ms: int) -> float:
        return self.total / self.median(variant, latency_ms, lambda s: s.wall_s)

    def cpu_per_million(self, variant: str, latency_ms: int) -> float:
        return self.median(variant, latency_ms, lambda s: s.cpu_s) / self.total * 1e6


def _window(days: Range) -> tuple[str, str]:
    return days.start.isoformat(), days.end.isoformat()


def range_records(sandbox: Sandbox, days: Range) -> dict[str, int]:
    start, end = _window(days)
    return {p: sandbox.count(p, start, end) for p in PROVIDERS}


def _measure(sandbox: Sandbox, variant: str, latency_ms: int, run: Callable[[], tuple]) -> Sample:
    before, cpu_before, mark = sandbox.stats(), sandbox.cpu_s(), sandbox.next_query()
    wall, cpu, rss, detail = run()
    after, cpu_after = sandbox.stats(), sandbox.cpu_s()
    per_window = sandbox.requests_since(mark)
    walked = {p: sandbox.walked(per_window[p]) for p in PROVIDERS}
    requests = {p: after[p]["requests"] - before[p]["requests"] for p in PROVIDERS}
    failed = {
        p: sum(
            n - before[p]["statuses"].get(status, 0) for status, n in after[p]["statuses"].items() if status != "200"
        )
        for p in PROVIDERS
    }
    return Sample(
        variant,
        latency_ms,
        wall,
        cpu,
        rss,
        requests,
        failed,
        cpu_after - cpu_before,
        detail,
        windows={p: len(walked[p][0]) for p in PROVIDERS},
        minimum={p: sandbox.minimum(walked[p][0]) for p in PROVIDERS},
        probes={p: len(walked[p][1]) for p in PROVIDERS},
    )


def _roles(sandbox: Sandbox, days: Range, **extra: object) -> dict[str, dict[str, object]]:
    """Each provider's worker arguments: where the sandbox is, which days, and `extra`."""
    base = {"base_url": sandbox.base_url, "credentials": CREDENTIALS, "first": days.first.isoformat()}
    return {p: {"provider": p, **base, "days": days.days, **extra} for p in PROVIDERS}


def ceiling(sandbox: Sandbox, days: Range) -> Measured:
    return run_workers("ceiling", _roles(sandbox, days), timeout_s=WORKER_TIMEOUT_S)


def fetch_to_parquet(sandbox: Sandbox, days: Range, root: Path, *, env: Mapping[str, str] | None = None) -> Measured:
    roles = _roles(sandbox, days, root=str(root), pacing=False)
    return run_workers("pipeline", roles, timeout_s=WORKER_TIMEOUT_S, env=None if env is None else os.environ | env)


def dagster_environment(sandbox: Sandbox, connections: Sequence[Connection] = ()) -> dict[str, str]:
    """The environment of a Dagster run against `sandbox` (and its credentials for `connections`);
    DAGSTER_HOME and the data root are the caller's."""
    assert sandbox.workload is not None, "serving() records the workload"
    return sandbox_environment(sandbox.base_url, connections=connections) | {
        "COMPLETIONS_START_DATE": sandbox.workload.sandbox_first.isoformat(),
        "COMPLETIONS_TIMEZONE": "UTC",
        # The workload's days are long past: their freshness checks would only say so.
        "COMPLETIONS_FRESHNESS_HOUR": "off",
    }


class Runner:
    """Runs and records the variants against one sandbox; files go to a scratch directory."""

    def __init__(self, sandbox: Sandbox, scratch: Path, days: Range) -> None:
        self.sandbox, self.scratch, self.days = sandbox, scratch, days
        self.home = prepare_dagster_home(scratch / "dagster_home")
        self.env = dagster_environment(sandbox) | {"DAGSTER_HOME": str(self.home)}
        self.run_config = run_config.write(scratch, "pacing-off", self.env | {"COMPLETIONS_DATA_ROOT": str(scratch)})
        self.runs = 0

    def _home(self, code: Path) -> Path:
        """The instance `code` runs with, one per earlier package."""
        home = code / "dagster_home"
        return home if home.exists() else prepare_dagster_home(home, instance_config(code))

    def _fresh(self, name: str) -> Path:
        self.runs += 1
        return Path(tempfile.mkdtemp(prefix=f"{name}-{self.runs}-", dir=self.scratch))

    def a(self, latency_ms: int) -> Sample:
        def run() -> tuple:
            done = ceiling(self.sandbox, self.days)
            windows = {p: r["window_records"] for p, r in done.results.items()}
            return done.wall_s, done.cpu_s, done.peak_rss_mb, {"window_records": windows}

        return _measure(self.sandbox, "a", latency_ms, run)

    def b(self, latency_ms: int) -> Sample:
        def run() -> tuple:
            done = fetch_to_parquet(self.sandbox, self.days, self._fresh("b"))
            rows = {p: r["rows"] for p, r in done.results.items()}
            return done.wall_s, done.cpu_s, done.peak_rss_mb, {"rows": rows}

        return _measure(self.sandbox, "b", latency_ms, run)

    def c(
        self,
        latency_ms: int,
        *,
        extra_env: Mapping[str, str] | None = None,
        config: Path | None = None,
        code: Path | None = None,
    ) -> Sample:
        """(c); `code` is a directory holding an earlier commit's product package to run instead."""

        def run() -> tuple:
            root = self._fresh("c")
            env = self.env | dict(extra_env or {}) | {"COMPLETIONS_DATA_ROOT": str(root / "data")}
            if code is not None:  # its own instance: this one's event log may be newer than its package
                env["DAGSTER_HOME"] = str(self._home(code))
            done = dagster_run.materialize(
                self.days,
                env=env,
                run_config=config or self.run_config,
                log=root / "run.log",
                timeout_s=DAGSTER_TIMEOUT_S,
                code=code,
            )
            detail = {
                "step_s": done.step_s,
                "startup_s": done.startup_s,
                "events": done.events,
                "cpu_s": done.cpu_s_by_process,
            }
            return done.wall_s, done.cpu_s, done.peak_rss_mb, detail

        return _measure(self.sandbox, "c", latency_ms, run)


def measure_throughput(runner: Runner, *, repeats: int, log: Callable[[str], None]) -> Throughput:
    sandbox, days = runner.sandbox, runner.days
    assert sandbox.workload is not None and sandbox.workload.serves(days)
    records = range_records(sandbox, days)
    sandbox.set_latency(0)
    # Unmeasured passes of (a) and (b) fill the sandbox's per-query caches for both kinds of window.
    for variant in ("a", "b"):
        warm = getattr(runner, variant)(0)
        _check(warm, records)
        log(f"  warm-up ({variant}) {warm.wall_s:6.2f} s wall")
    samples = []
    for repeat in range(1, repeats + 1):
        for latency in (0, 20):
            sandbox.set_latency(latency)
            for variant in ("a", "b", "c"):
                sample = getattr(runner, variant)(latency)
                _check(sample, records)
                samples.append(sample)
                log(
                    f"  repeat {repeat}/{repeats}, {latency:>2} ms, ({variant}) {sample.wall_s:6.2f} s wall, "
                    f"{sample.cpu_s:6.2f} s CPU, requests {sample.requests} vs minimum {sample.minimum}"
                )
    sandbox.set_latency(0)
    return Throughput(days, sandbox.workload.density, records, samples)


def measure_floor(runner: Runner, *, repeats: int, log: Callable[[str], None]) -> Throughput:
    """(c) over the throughput range of a sandbox with next to no records: the run's fixed cost."""
    sandbox = runner.sandbox
    assert sandbox.workload is not None and sandbox.workload.serves(runner.days)
    records = range_records(sandbox, runner.days)
    samples = []
    for repeat in range(1, repeats + 1):
        sample = runner.c(0)
        _check(sample, records)
        samples.append(sample)
        log(f"  repeat {repeat}/{repeats}, (c) {sample.wall_s:6.2f} s wall, {sample.cpu_s:6.2f} s CPU")
    return Throughput(runner.days, sandbox.workload.density, records, samples)


def _check(sample: Sample, records: dict[str, int]) -> None:
    """Every run must have fetched everything (requests are reported, not asserted)."""
    if any(sample.failed.values()):
        raise RuntimeError(f"({sample.variant}) at {sample.latency_ms} ms got failed responses: {sample.failed}")
    rows = sample.detail.get("rows")
    if sample.variant == "a":  # Nexudus's widened window reads beyond the range
        rows = {p: sum(n) for p, n in sample.detail["window_records"].items()}
        if rows["bindbee"] != records["bindbee"] or rows["nexudus"] < records["nexudus"]:
            raise RuntimeError(f"(a) read {rows} records, the range holds {records}")
    elif rows is not None and rows != records:
        raise RuntimeError(f"({sample.variant}) wrote {rows} rows, the sandbox holds {records}")


@dataclass
class MemoryRun:
    range: Range
    density: int
    rss_mb: dict[str, float]  # median peak RSS per provider process
    wall_s: float
    rows: dict[str, int]
    requests: dict[str, int]
    minimum: dict[str, int]
    windows: dict[str, int]
    probes: dict[str, int]
    sandbox_rss_mb: float = 0.0  # the sandbox's peak so far (VmHWM) after the run
    sandbox_cpu_s: float = 0.0  # the sandbox's CPU during the run(s)

    @property
    def label(self) -> str:
        return f"{self.range.days} days × {self.density:,}/day"


def measure_memory(
    sandbox: Sandbox,
    scratch: Path,
    *,
    repeats: int,
    ranges: tuple[Range, ...],
    env: Mapping[str, str] | None = None,
) -> list[MemoryRun]:
    """(b) at no added latency: peak RSS per provider process, per range of this sandbox's density."""
    assert sandbox.workload is not None
    sandbox.set_latency(0)
    out = []
    for days in ranges:
        assert sandbox.workload.serves(days), (sandbox.workload, days)
        records = range_records(sandbox, days)
        samples = []
        for repeat in range(repeats):
            root = Path(tempfile.mkdtemp(prefix=f"memory-{days.days}-{repeat}-", dir=scratch))

            def run(root: Path = root, days: Range = days) -> tuple:
                done = fetch_to_parquet(sandbox, days, root, env=env)
                rows = {p: r["rows"] for p, r in done.results.items()}
                return done.wall_s, done.cpu_s, done.peak_rss_mb, {"rows": rows}

            sample = _measure(sandbox, "b", 0, run)
            _check(sample, records)
            samples.append(sample)
        rss = {p: statistics.median(s.rss_mb[p] for s in samples) for p in PROVIDERS}
        out.append(
            MemoryRun(
                range=days,
                density=sandbox.workload.density,
                rss_mb=rss,
                wall_s=statistics.median(s.wall_s for s in samples),
                rows=records,
                requests=samples[0].requests,
                minimum=samples[0].minimum,
                windows=samples[0].windows,
                probes=samples[0].probes,
                sandbox_rss_mb=sandbox.peak_rss_mb(),
                sandbox_cpu_s=sum(s.sandbox_cpu_s for s in samples),
            )
        )
    return out
