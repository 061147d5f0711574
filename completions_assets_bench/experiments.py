"""What each change bought: the Dagster run again with an old setting put back, in the same invocation.

Each experiment is a label, resource run-config overrides, environment
overrides and an added latency; it runs as (c) on the throughput workload right
after a run of the shipped code at the same latency, and the report sets the
two side by side (a pair run back to back shares the machine's state, which a
median taken minutes earlier does not). An
experiment whose fields no provider resource declares any more is reported as
skipped (with the reason), so the list outlives the settings it names.

Rate limits: the Nexudus rate-limited run again with the old `rate_margin_ms`
(taken by ratelimited.measure_rate_limits, which owns the rate-limited
sandboxes).
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from completions_assets_bench import run_config
from completions_assets_bench.ratelimited import RateResult
from completions_assets_bench.throughput import Runner, Sample


@dataclass(frozen=True)
class Experiment:
    label: str  # what is put back
    run_config: Mapping[str, Any] = field(default_factory=dict)  # provider resource fields
    env: Mapping[str, str] = field(default_factory=dict)
    latency_ms: int = 0


UNBOUNDED = 10**9  # a window size or budget no workload here reaches
# The fetch before issue 12, emulated with its replacement's fields: 8-day windows whatever the
# density, four requests in flight (the four sweeps), no budget of records in flight.
OLD_FETCH = {
    "window_records": UNBOUNDED,
    "max_window_days": 8,
    "max_concurrent_requests": 4,
    "max_records_in_flight": UNBOUNDED,
}
EXPERIMENTS = (
    # pyarrow's own default pool; the package sets ARROW_DEFAULT_MEMORY_POOL=system when it is unset.
    Experiment(
        "pyarrow's mimalloc pool (ARROW_DEFAULT_MEMORY_POOL=mimalloc)", env={"ARROW_DEFAULT_MEMORY_POOL": "mimalloc"}
    ),
    # glibc's malloc untuned: the package sets two heaps and a fixed 1 MiB trim threshold when these
    # are unset; 8 heaps per core is glibc's default and 32 MiB where its sliding threshold ends up.
    Experiment(
        "glibc's malloc untuned (MALLOC_ARENA_MAX=16, MALLOC_TRIM_THRESHOLD_=32 MiB)",
        env={"MALLOC_ARENA_MAX": "16", "MALLOC_TRIM_THRESHOLD_": str(32 << 20)},
    ),
    Experiment("old fetch: 8-day windows, 4 in flight, no records budget", run_config=OLD_FETCH),
    Experiment("old fetch: 8-day windows, 4 in flight, no records budget", run_config=OLD_FETCH, latency_ms=20),
    Experiment("windows not sized by records (8-day windows)", run_config={"window_records": UNBOUNDED}),
    Experiment("no budget of records in flight", run_config={"max_records_in_flight": UNBOUNDED}),
)


@dataclass
class ExperimentResult:
    experiment: Experiment
    sample: Sample | None  # None: skipped
    shipped: Sample | None = None  # the shipped code at the same latency, run just before
    skipped: str = ""
    unknown: dict[str, list[str]] = field(default_factory=dict)  # fields some resources do not declare


@dataclass
class Experiments:
    results: list[ExperimentResult]
    nexudus_old_margin: RateResult | None = None  # rate limits on, the old 10 ms pacing margin


def measure_experiments(
    runner: Runner, scratch: Path, experiments: tuple[Experiment, ...] = EXPERIMENTS
) -> Experiments:
    out = []
    for number, experiment in enumerate(experiments, 1):
        config = None
        unknown: dict[str, list[str]] = {}
        if experiment.run_config:
            env = runner.env | dict(experiment.env) | {"COMPLETIONS_DATA_ROOT": str(scratch)}
            derived = run_config.derive(env, experiment.run_config)
            unknown = {key: r["unknown"] for key, r in derived["resources"].items() if r["unknown"]}
            if len(unknown) == len(derived["resources"]):
                names = sorted({n for names in unknown.values() for n in names})
                out.append(
                    ExperimentResult(experiment, None, skipped=f"no provider resource declares {', '.join(names)}")
                )
                continue
            config = run_config.write(scratch, f"experiment-{number}", env, experiment.run_config)
        runner.sandbox.set_latency(experiment.latency_ms)
        shipped = runner.c(experiment.latency_ms)
        sample = runner.c(experiment.latency_ms, extra_env=experiment.env, config=config)
        out.append(ExperimentResult(experiment, sample, shipped, unknown=unknown))
    runner.sandbox.set_latency(0)
    return Experiments(out)
