"""What each change bought: the Dagster run again with a setting or the code put back, in the same invocation.

Each experiment is a label, resource run-config overrides, environment
overrides, an added latency, and optionally a commit whose product package
runs instead of the shipped one (earlier_code.py). Experiments and the shipped
code run as (c) on the throughput workload in interleaved repeats, one round
per added latency, the order turning each repeat, so drift on a shared machine
hits them all alike; the report sets each experiment's median beside the
shipped code's from the same rounds. An experiment whose fields no provider
resource declares any more, or whose commit cannot be read, is reported as
skipped (with the reason), so the list outlives what it names.

Rate limits: the Nexudus rate-limited run again with the old `rate_margin_ms`
(taken by ratelimited.measure_rate_limits, which owns the rate-limited
sandboxes).
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from completions_assets_bench import run_config
from completions_assets_bench.earlier_code import checkout
from completions_assets_bench.ratelimited import RateResult
from completions_assets_bench.throughput import MemoryRun, Runner, Sample


@dataclass(frozen=True)
class Experiment:
    label: str  # what is put back
    run_config: Mapping[str, Any] = field(default_factory=dict)  # provider resource fields
    env: Mapping[str, str] = field(default_factory=dict)
    latency_ms: int = 0
    commit: str = ""  # run this commit's product package instead of the shipped one


UNBOUNDED = 10**9  # a window size or budget no workload here reaches
# The fetch before issue 12, emulated with its replacement's fields: 8-day windows whatever the
# density, four requests in flight (four windows walked at once), no budget of records in flight.
OLD_FETCH = {
    "window_records": UNBOUNDED,
    "max_window_days": 8,
    "max_concurrent_requests": 4,
    "max_records_in_flight": UNBOUNDED,
}
# pyarrow's own default pool; the package sets ARROW_DEFAULT_MEMORY_POOL=system when it is unset.
MIMALLOC = Experiment(
    "pyarrow's mimalloc pool (ARROW_DEFAULT_MEMORY_POOL=mimalloc)", env={"ARROW_DEFAULT_MEMORY_POOL": "mimalloc"}
)
# glibc's malloc as it comes: the package sets two heaps and a fixed 1 MiB trim threshold unless
# a MALLOC_* variable is set; 16 heaps is glibc's own default on two cores.
MALLOC_DEFAULTS = Experiment(
    "glibc's malloc defaults (MALLOC_ARENA_MAX=16, no mallopt)", env={"MALLOC_ARENA_MAX": "16"}
)
# The allocator settings are for memory: they are also put back on the densest memory point (path b).
MEMORY_EXPERIMENTS = (MIMALLOC, MALLOC_DEFAULTS)
EXPERIMENTS = (
    MIMALLOC,
    MALLOC_DEFAULTS,
    Experiment("old fetch: 8-day windows, 4 in flight, no records budget", run_config=OLD_FETCH),
    Experiment("old fetch: 8-day windows, 4 in flight, no records budget", run_config=OLD_FETCH, latency_ms=20),
    Experiment("windows not sized by records (8-day windows)", run_config={"window_records": UNBOUNDED}),
    Experiment("no budget of records in flight", run_config={"max_records_in_flight": UNBOUNDED}),
)


# The product at earlier commits, oldest first; each label says what the commits up to the next
# one (or the shipped code) add, so the report can show each step's difference.
BASELINES = (
    Experiment("before issue 12: 8-day windows, 4 at a time, pages walked in turn", commit="6ae12e7"),
    Experiment("before issue 12: 8-day windows, 4 at a time, pages walked in turn", commit="6ae12e7", latency_ms=20),
    Experiment("+ windows sized by records, Nexudus pages at once, a budget of records in flight", commit="205982c"),
    Experiment("+ steps forked from a forkserver that imported the code location once", commit="7c1e592"),
    Experiment(
        "+ Nexudus widening dropped as pages arrive, Bindbee windows that fit the budget, malloc tuned",
        commit="a3e4dc0",
    ),
)
SHIPPED_AFTER_BASELINES = "+ Arrow row counts, one-file reads, pandas preloaded, each day its own copy (shipped)"


@dataclass
class ExperimentResult:
    experiment: Experiment
    samples: list[Sample] = field(default_factory=list)
    shipped: list[Sample] = field(default_factory=list)  # the shipped code at the same latency, same rounds
    skipped: str = ""
    unknown: dict[str, list[str]] = field(default_factory=dict)  # fields some resources do not declare


@dataclass
class Experiments:
    results: list[ExperimentResult]
    nexudus_old_margin: RateResult | None = None  # rate limits on, the old 10 ms pacing margin
    memory: list[tuple[Experiment, MemoryRun]] = field(default_factory=list)  # path (b), densest point

    def settings(self) -> list[ExperimentResult]:
        return [r for r in self.results if not r.experiment.commit]

    def baselines(self) -> list[ExperimentResult]:
        return [r for r in self.results if r.experiment.commit]


def _prepare(
    runner: Runner, scratch: Path, number: int, experiment: Experiment
) -> tuple[ExperimentResult, Path | None, Path | None]:
    """The experiment's result holder, its code directory and its run config (None: the shipped ones)."""
    result = ExperimentResult(experiment)
    code = config = None
    try:
        if experiment.commit:
            code = checkout(experiment.commit, scratch)
        if experiment.run_config or code is not None:
            env = runner.env | dict(experiment.env) | {"COMPLETIONS_DATA_ROOT": str(scratch)}
            derived = run_config.derive(env, experiment.run_config, code=code)
            result.unknown = run_config.unknown_fields(derived)
            if names := run_config.declared_by_none(derived):
                result.skipped = f"no provider resource declares {', '.join(names)}"
            else:
                config = run_config.save(scratch, f"experiment-{number}", derived)
    except RuntimeError as exc:
        result.skipped = str(exc).strip().splitlines()[-1]
    return result, code, config


def measure_experiments(
    runner: Runner,
    scratch: Path,
    *,
    repeats: int,
    log: Callable[[str], None],
    experiments: tuple[Experiment, ...] = EXPERIMENTS + BASELINES,
) -> Experiments:
    prepared = [_prepare(runner, scratch, number, e) for number, e in enumerate(experiments, 1)]
    for result, _, _ in prepared:
        if result.skipped:
            log(f"  skipped: {result.experiment.label}: {result.skipped}")
    runnable = [p for p in prepared if not p[0].skipped]
    for latency in sorted({r.experiment.latency_ms for r, _, _ in runnable}):
        runner.sandbox.set_latency(latency)
        here = [p for p in runnable if p[0].experiment.latency_ms == latency]
        for repeat in range(repeats):
            shipped = runner.c(latency)
            log(
                f"  {latency} ms, repeat {repeat + 1}/{repeats}, shipped: {shipped.wall_s:6.2f} s, {shipped.cpu_s:6.2f} CPU s"
            )
            turn = repeat % len(here)
            for result, code, config in here[turn:] + here[:turn]:
                extra = result.experiment.env
                sample = runner.c(latency, extra_env=extra, config=config, code=code)
                result.samples.append(sample)
                result.shipped.append(shipped)
                log(f"    {result.experiment.label}: {sample.wall_s:6.2f} s, {sample.cpu_s:6.2f} CPU s")
    runner.sandbox.set_latency(0)
    return Experiments([r for r, _, _ in prepared])
