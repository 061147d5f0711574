"""Sections 1-3 of the benchmark: (a) ceiling, (b) fetch-to-Parquet, (c) Dagster, and memory.

All three read the same 30 days from one sandbox, at each added latency, in
interleaved repeats (a, b, c, a, b, c, ...) so that drift on a shared machine
hits every variant alike. Requests are counted by the sandbox itself.
"""

import datetime as dt
import os
import statistics
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from completions_assets.local.launch import prepare_dagster_home, sandbox_environment
from completions_assets_bench import dagster_run, workload
from completions_assets_bench.procs import Measured, run_workers
from completions_assets_bench.sandbox import CREDENTIALS, Sandbox
from completions_assets_bench.workload import PROVIDERS, Range

VARIANTS = {
    "a": "bare httpx fetch (ceiling)",
    "b": "fetch to Parquet (provider resources)",
    "c": "Dagster range run, three assets",
}
WORKER_TIMEOUT_S = 300.0
DAGSTER_TIMEOUT_S = 420.0


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


@dataclass
class Throughput:
    range: Range
    records: dict[str, int]  # in the range, per provider (sandbox ground truth)
    minimum: dict[str, int]  # minimum requests per provider for the pipeline's sweeps
    sweep_records: dict[str, list[int]]  # records each sweep window returns
    samples: list[Sample]

    def of(self, variant: str, latency_ms: int) -> list[Sample]:
        return [s for s in self.samples if s.variant == variant and s.latency_ms == latency_ms]

    def median(self, variant: str, latency_ms: int, value: Callable[[Sample], float]) -> float:
        return statistics.median(value(s) for s in self.of(variant, latency_ms))

    def records_per_s(self, variant: str, latency_ms: int) -> float:
        return sum(self.records.values()) / self.median(variant, latency_ms, lambda s: s.wall_s)


def _window(days: Range) -> tuple[str, str]:
    start = dt.datetime.combine(days.first, dt.time(), tzinfo=dt.timezone.utc)
    return start.isoformat(), (start + dt.timedelta(days=days.days)).isoformat()


def _measure(sandbox: Sandbox, variant: str, latency_ms: int, run: Callable[[], tuple]) -> Sample:
    before, cpu_before = sandbox.stats(), sandbox.cpu_s()
    wall, cpu, rss, detail = run()
    after, cpu_after = sandbox.stats(), sandbox.cpu_s()
    requests = {p: after[p]["requests"] - before[p]["requests"] for p in PROVIDERS}
    failed = {
        p: sum(
            n - before[p]["statuses"].get(status, 0) for status, n in after[p]["statuses"].items() if status != "200"
        )
        for p in PROVIDERS
    }
    return Sample(variant, latency_ms, wall, cpu, rss, requests, failed, cpu_after - cpu_before, detail)


def ceiling(sandbox: Sandbox, days: Range) -> Measured:
    sweeps = [(start.isoformat(), end.isoformat()) for start, end in days.sweeps()]
    roles = {
        p: {"provider": p, "base_url": sandbox.base_url, "credentials": CREDENTIALS, "sweeps": sweeps}
        for p in PROVIDERS
    }
    return run_workers("ceiling", roles, timeout_s=WORKER_TIMEOUT_S)


def fetch_to_parquet(sandbox: Sandbox, days: Range, root: Path, *, env: dict[str, str] | None = None) -> Measured:
    roles = {
        p: {
            "provider": p,
            "base_url": sandbox.base_url,
            "credentials": CREDENTIALS,
            "first": days.first.isoformat(),
            "days": days.days,
            "root": str(root),
            "pacing": False,
        }
        for p in PROVIDERS
    }
    return run_workers("pipeline", roles, timeout_s=WORKER_TIMEOUT_S, env=None if env is None else os.environ | env)


class Runner:
    """Runs and records the variants against one sandbox; files go to a scratch directory."""

    def __init__(self, sandbox: Sandbox, scratch: Path, days: Range) -> None:
        self.sandbox, self.scratch, self.days = sandbox, scratch, days
        self.home = prepare_dagster_home(scratch / "dagster_home")
        self.run_config = dagster_run.write_run_config(scratch)
        self.runs = 0

    def _fresh(self, name: str) -> Path:
        self.runs += 1
        return Path(tempfile.mkdtemp(prefix=f"{name}-{self.runs}-", dir=self.scratch))

    def a(self, latency_ms: int) -> Sample:
        def run() -> tuple:
            done = ceiling(self.sandbox, self.days)
            sweeps = {p: r["sweep_records"] for p, r in done.results.items()}
            return done.wall_s, done.cpu_s, done.peak_rss_mb, {"sweep_records": sweeps}

        return _measure(self.sandbox, "a", latency_ms, run)

    def b(self, latency_ms: int) -> Sample:
        def run() -> tuple:
            done = fetch_to_parquet(self.sandbox, self.days, self._fresh("b"))
            rows = {p: r["rows"] for p, r in done.results.items()}
            return done.wall_s, done.cpu_s, done.peak_rss_mb, {"rows": rows}

        return _measure(self.sandbox, "b", latency_ms, run)

    def c(self, latency_ms: int, *, extra_env: dict[str, str] | None = None) -> Sample:
        def run() -> tuple:
            root = self._fresh("c")
            env = (
                sandbox_environment(self.sandbox.base_url)
                | (extra_env or {})
                | {
                    "DAGSTER_HOME": str(self.home),
                    "COMPLETIONS_DATA_ROOT": str(root / "data"),
                    "COMPLETIONS_START_DATE": workload.MAIN.sandbox_first.isoformat(),
                    "COMPLETIONS_TIMEZONE": "UTC",
                    # The workload's days are long past: their freshness checks would only say so.
                    "COMPLETIONS_FRESHNESS_HOUR": "off",
                }
            )
            done = dagster_run.materialize(
                self.days, env=env, run_config=self.run_config, log=root / "run.log", timeout_s=DAGSTER_TIMEOUT_S
            )
            detail = {"step_s": done.step_s, "startup_s": done.startup_s, "events": done.events}
            return done.wall_s, done.cpu_s, done.peak_rss_mb, detail

        return _measure(self.sandbox, "c", latency_ms, run)


def measure_throughput(runner: Runner, *, repeats: int, log: Callable[[str], None]) -> Throughput:
    sandbox, days = runner.sandbox, runner.days
    start, end = _window(days)
    records = {p: sandbox.count(p, start, end) for p in PROVIDERS}
    sandbox.set_latency(0)
    warm = runner.a(0)  # fills the sandbox's per-query caches for these windows; not reported
    sweep_records = warm.detail["sweep_records"]
    minimum = {p: workload.minimum_requests(sweep_records[p]) for p in PROVIDERS}
    samples = []
    for repeat in range(1, repeats + 1):
        for latency in workload.LATENCIES_MS:
            sandbox.set_latency(latency)
            for variant in ("a", "b", "c"):
                sample = getattr(runner, variant)(latency)
                _check(sample, records)
                samples.append(sample)
                log(
                    f"  repeat {repeat}/{repeats}, {latency:>2} ms, ({variant}) {sample.wall_s:6.2f} s wall, "
                    f"{sample.cpu_s:6.2f} s CPU, requests {sum(sample.requests.values())}"
                )
    sandbox.set_latency(0)
    return Throughput(days, records, minimum, sweep_records, samples)


def _check(sample: Sample, records: dict[str, int]) -> None:
    """Every run must have fetched everything (requests are reported, not asserted)."""
    if any(sample.failed.values()):
        raise RuntimeError(f"({sample.variant}) at {sample.latency_ms} ms got failed responses: {sample.failed}")
    rows = sample.detail.get("rows")
    if rows is not None and rows != records:
        raise RuntimeError(f"(b) wrote {rows} rows, the sandbox holds {records}")


@dataclass
class MemoryRun:
    range: Range
    rss_mb: dict[str, float]  # median peak RSS per provider process
    wall_s: float
    rows: dict[str, int]


def measure_memory(
    sandbox: Sandbox, scratch: Path, *, repeats: int, ranges: tuple[Range, ...], env: dict[str, str] | None = None
) -> list[MemoryRun]:
    """(b) at the same density and no added latency: peak RSS per provider process, per range."""
    sandbox.set_latency(0)
    out = []
    for days in ranges:
        runs = []
        for repeat in range(repeats):
            root = Path(tempfile.mkdtemp(prefix=f"memory-{days.days}-{repeat}-", dir=scratch))
            runs.append(fetch_to_parquet(sandbox, days, root, env=env))
        rss = {role: statistics.median(r.peak_rss_mb[role] for r in runs) for role in PROVIDERS}
        rows = {p: r["rows"] for p, r in runs[0].results.items()}
        out.append(MemoryRun(days, rss, statistics.median(r.wall_s for r in runs), rows))
    return out
