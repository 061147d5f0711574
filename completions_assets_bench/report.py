"""Machine facts, the measured tables and the target verdicts, as Markdown."""

import statistics
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from completions_assets_bench import workload
from completions_assets_bench.ceiling import IN_FLIGHT
from completions_assets_bench.dagster_run import DagsterRun
from completions_assets_bench.expand_cost import ExpandRun, expand_section
from completions_assets_bench.experiments import SHIPPED_AFTER_BASELINES, Experiments
from completions_assets_bench.many_connections import (
    BEFORE_ISSUE,
    CODES,
    DAY,
    DAY_SANDBOX,
    DAY_SETS,
    DENSE_SANDBOX,
    DENSE_SET,
    LOAD_SET,
    RATE_SANDBOX,
    RATE_SIZES,
    YEAR,
    YEAR_SANDBOX,
    ConnectionsResult,
    Outcome,
)
from completions_assets_bench.ratelimited import RateResult
from completions_assets_bench.throughput import VARIANTS, MemoryRun, Sample, Throughput
from completions_assets_bench.workload import LATENCIES_MS, PAGE_SIZE, PROVIDERS

RSS_LIMIT_MB = 300.0
RATIO_FLOOR = 0.7  # (c)/(a), issue 12
CPU_LIMIT_PER_M = 25.0  # CPU s per million records, the whole Dagster run
FLAT_LIMIT = 0.10  # 90-day peak RSS over 7-day
NEXUDUS_OVER_LIMIT = 0.01  # Nexudus requests over the minimum of its windows


@dataclass(frozen=True)
class Verdict:
    target: str
    measured: str
    met: bool


@dataclass
class SandboxFacts:
    workload: workload.Workload
    start_s: float  # process start to idle (every record encoded)
    idle_rss_mb: float
    idle_cpu_s: float


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def provider_steps(keys: Iterable[str]) -> list[str]:
    """The step keys of the provider assets (whatever the connections), in provider order."""
    keys = list(keys)
    return [k for p in PROVIDERS for k in keys if k.startswith(f"{p}_completions")]


def _step_name(key: str) -> str:
    return key.replace("_completions", "").replace("__default", "")


def _rss(values: dict[str, float]) -> str:
    first = [k for k in ("cli", *PROVIDERS) if k in values]
    rest = [k for k in values if k not in first]
    return ", ".join(f"{'CLI' if k == 'cli' else _step_name(k)} {values[k]:.0f}" for k in first + rest)


def _median_per_key(samples: list[Sample], values: Callable[[Sample], dict[str, float]]) -> dict[str, float]:
    """The median of each key's values over the samples that have it."""
    keys = dict.fromkeys(k for s in samples for k in values(s))
    return {k: statistics.median(values(s)[k] for s in samples if k in values(s)) for k in keys}


def median_rss(samples: list[Sample]) -> dict[str, float]:
    return _median_per_key(samples, lambda s: s.rss_mb)


def steps_peak(samples: list[Sample]) -> float:
    """The largest provider step's median peak RSS."""
    rss = median_rss(samples)
    return max(rss[key] for key in provider_steps(rss))


def _requests(samples: list[Sample]) -> str:
    """Requests made / minimum for the windows the run chose, per provider (the worst run)."""
    parts = []
    for p in PROVIDERS:
        worst = max(samples, key=lambda s: s.requests[p] - s.minimum[p])
        parts.append(f"{worst.requests[p]:,} / {worst.minimum[p]:,} ({_windows(worst, p)})")
    return "; ".join(parts)


def _windows(s: Sample | MemoryRun, provider: str) -> str:
    n, given_up = s.windows[provider], s.probes.get(provider, 0)
    text = f"{n} window" if n == 1 else f"{n} windows"
    return text + (f" + {given_up} given up" if given_up else "")


def over(s: Sample | MemoryRun, provider: str) -> float:
    return s.requests[provider] / s.minimum[provider] - 1 if s.minimum[provider] else 0.0


def throughput_table(t: Throughput) -> str:
    rows = []
    for latency in LATENCIES_MS:
        ceiling = t.records_per_s("a", latency)
        for variant in ("a", "b", "c"):
            samples = t.of(variant, latency)
            failed = sum(sum(s.failed.values()) for s in samples)
            rate = t.records_per_s(variant, latency)
            rows.append(
                [
                    f"({variant}) {VARIANTS[variant]}",
                    f"{latency} ms",
                    f"{t.median(variant, latency, lambda s: s.wall_s):.2f}",
                    f"{rate:,.0f}",
                    "1.00" if variant == "a" else f"{rate / ceiling:.2f}",
                    f"{t.median(variant, latency, lambda s: s.cpu_s):.1f}",
                    f"{t.cpu_per_million(variant, latency):.1f}",
                    _rss(median_rss(samples)),
                    _requests(samples) + (f" ({failed} failed)" if failed else ""),
                    f"{t.median(variant, latency, lambda s: s.sandbox_cpu_s):.1f}",
                ]
            )
    header = [
        "path",
        "added latency",
        "wall s",
        "records/s",
        "vs (a)",
        "CPU s",
        "CPU s per M records",
        "peak RSS MB per process / step",
        "requests made / minimum bindbee; nexudus",
        "sandbox CPU s",
    ]
    return _table(header, rows)


def dagster_breakdown(t: Throughput) -> str:
    rows = []
    keys = list(dict.fromkeys(k for s in t.of("c", LATENCIES_MS[0]) for k in s.detail["step_s"]))
    processes = ["cli", *keys, "other"]
    for latency in sorted({s.latency_ms for s in t.samples if s.variant == "c"}):  # the fixed-cost run: 0 ms only
        samples = t.of("c", latency)
        steps = {k: statistics.median(s.detail["step_s"].get(k, 0.0) for s in samples) for k in keys}
        cpu = {k: statistics.median(s.detail["cpu_s"].get(k, 0.0) for s in samples) for k in processes}
        startup = statistics.median(s.detail["startup_s"] for s in samples)
        events = statistics.median(s.detail["events"] for s in samples)
        rows.append(
            [
                f"{latency} ms",
                f"{t.median('c', latency, lambda s: s.wall_s):.1f}",
                f"{startup:.1f}",
                *(f"{steps[k]:.1f}" for k in keys),
                " / ".join(f"{cpu[k]:.1f}" for k in processes),
                f"{events:.0f}",
            ]
        )
    header = [
        "added latency",
        "wall s",
        "start to first step s",
        *(f"step {k} s" for k in keys),
        f"CPU s: {' / '.join(processes)}",
        "events stored",
    ]
    return _table(header, rows)


def memory_table(runs: list[MemoryRun]) -> str:
    rows = [
        [
            f"{run.label} ({run.range.first} … {run.range.last})",
            " / ".join(f"{run.rows[p]:,}" for p in PROVIDERS),
            " / ".join(f"{run.rss_mb[p]:.0f}" for p in PROVIDERS),
            f"{run.wall_s:.1f}",
            " / ".join(f"{run.requests[p]:,} vs {run.minimum[p]:,} ({_windows(run, p)})" for p in PROVIDERS),
            f"{run.sandbox_rss_mb:.0f} MB, {run.sandbox_cpu_s:.1f} s",
        ]
        for run in runs
    ]
    header = [
        "range × density",
        "rows bindbee / nexudus",
        "peak RSS MB bindbee / nexudus process",
        "wall s",
        "requests vs minimum bindbee / nexudus",
        "sandbox peak RSS, CPU in the run",
    ]
    return _table(header, rows)


def sandbox_table(facts: list[SandboxFacts]) -> str:
    rows = [
        [
            f.workload.name,
            f"{f.workload.sandbox_days} days × {f.workload.density:,}",
            f"{f.start_s:.1f}",
            f"{f.idle_cpu_s:.1f}",
            f"{f.idle_rss_mb:.0f}",
        ]
        for f in facts
    ]
    return _table(["sandbox", "serves per provider", "start to idle s", "CPU s to idle", "RSS MB at idle"], rows)


def requests_table(t: Throughput, nexudus_range_minimum: int) -> str:
    rows = []
    for variant in ("a", "b", "c"):
        for latency in LATENCIES_MS:
            for s in t.of(variant, latency):
                rows.append(
                    [
                        f"({variant}) {latency} ms",
                        *(
                            f"{_windows(s, p)}: {s.requests[p]:,} made, {s.minimum[p]:,} minimum ({over(s, p):+.1%})"
                            for p in PROVIDERS
                        ),
                        f"{s.requests['nexudus'] / nexudus_range_minimum - 1:+.1%}",
                    ]
                )
    header = ["run", "bindbee", "nexudus", "nexudus vs one widened window over the range"]
    return _table(header, rows)


def rate_table(results: list[RateResult], *, names: list[str] | None = None) -> str:
    rows = []
    for r, name in zip(results, names or [r.provider for r in results], strict=True):
        status = "429" if r.provider == "bindbee" else "409"
        busiest = "; ".join(f"{use.label}: busiest {use.busiest}" for use in r.limits)
        rows.append(
            [
                name,
                f"{r.days} days × {r.density:,}",
                f"{r.rows:,}",
                f"{r.requests}",
                f"{r.throttled} × {status}",
                f"{r.span_s:.2f}",
                f"{r.minimum_span_s:.2f}",
                r.binding.label,
                f"{r.achieved_per_minute:,.0f}/min = {r.share_of_limit:.0%}",
                busiest,
            ]
        )
    header = [
        "provider",
        "workload",
        "rows",
        "requests",
        "throttled",
        "first to last send s",
        "least span the limit allows s",
        "binding limit",
        "achieved rate",
        "busiest window per limit",
    ]
    return _table(header, rows)


def _dense_point(memory: list[MemoryRun], days: int, density: int) -> MemoryRun | None:
    return next((m for m in memory if m.range.days == days and m.density == density), None)


def verdicts(t: Throughput, memory: list[MemoryRun], rates: list[RateResult]) -> list[Verdict]:
    out = []
    for latency in LATENCIES_MS:
        ratio = t.records_per_s("c", latency) / t.records_per_s("a", latency)
        out.append(
            Verdict(
                f"(c)/(a) ≥ {RATIO_FLOOR} at {latency} ms, {t.total:,} records", f"{ratio:.2f}", ratio >= RATIO_FLOOR
            )
        )
    cpu = {latency: t.cpu_per_million("c", latency) for latency in LATENCIES_MS}
    out.append(
        Verdict(
            f"end-to-end CPU ≤ {CPU_LIMIT_PER_M:.0f} s per million records (Dagster run, all its processes)",
            ", ".join(f"{v:.1f} s at {k} ms" for k, v in cpu.items()),
            max(cpu.values()) <= CPU_LIMIT_PER_M,
        )
    )
    for run in sorted((m for m in memory if m.range.days == 8), key=lambda m: m.density):
        worst = max(run.rss_mb.values())
        out.append(
            Verdict(
                f"provider-process peak RSS ≤ {RSS_LIMIT_MB:.0f} MB, (b) {run.label}",
                " / ".join(f"{run.rss_mb[p]:.0f}" for p in PROVIDERS) + " MB",
                worst <= RSS_LIMIT_MB,
            )
        )
    steps = median_rss([s for s in t.samples if s.variant == "c"])
    keys = provider_steps(steps)
    out.append(
        Verdict(
            f"provider-step peak RSS ≤ {RSS_LIMIT_MB:.0f} MB, (c) {t.range.days} days × {t.density:,}/day",
            ", ".join(f"{_step_name(k)} {steps[k]:.0f} MB" for k in keys),
            bool(keys) and max(steps[k] for k in keys) <= RSS_LIMIT_MB,
        )
    )
    short, long = _dense_point(memory, 7, t.density), _dense_point(memory, 90, t.density)
    if short and long:
        growth = {p: long.rss_mb[p] / short.rss_mb[p] - 1 for p in PROVIDERS}
        out.append(
            Verdict(
                f"90-day peak RSS within {FLAT_LIMIT:.0%} of 7-day at {t.density:,}/day",
                ", ".join(f"{p} {g:+.0%}" for p, g in growth.items()),
                all(g <= FLAT_LIMIT for g in growth.values()),
            )
        )
    runs: list[Sample | MemoryRun] = [s for s in t.samples if s.variant in ("b", "c")] + list(memory)
    bindbee = [s for s in runs if s.requests["bindbee"] != s.minimum["bindbee"]]
    out.append(
        Verdict(
            "Bindbee requests == minimum (every run of (b), (c) and the memory points)",
            "all equal"
            if not bindbee
            else "; ".join(f"{s.requests['bindbee']} vs {s.minimum['bindbee']}" for s in bindbee[:4]),
            not bindbee,
        )
    )
    worst = max(over(s, "nexudus") for s in runs)
    out.append(
        Verdict(
            f"Nexudus requests within {NEXUDUS_OVER_LIMIT:.0%} of the minimum of its windows (every such run)",
            f"at most {worst:+.1%}",
            worst <= NEXUDUS_OVER_LIMIT,
        )
    )
    for r in rates:
        out.append(
            Verdict(
                f"rate-limited {r.provider}: ≥ 95% of the documented rate ({r.binding.label})",
                f"{r.share_of_limit:.0%}",
                r.share_of_limit >= 0.95,
            )
        )
        out.append(Verdict(f"rate-limited {r.provider}: zero 429/409", f"{r.throttled}", r.throttled == 0))
    return out


def verdict_table(items: list[Verdict]) -> str:
    return _table(["target", "measured", "met"], [[v.target, v.measured, "yes" if v.met else "**no**"] for v in items])


# The "connections" section's targets (issue 19); the 365-day figures are the code's before the issue.
DAY_WALL_RATIO = 3.0  # 220 connections' day run over 22's
EVENTS_PER_CONNECTION_DAY = 8.0
LOAD_LIMIT_S = 5.0
RATE_RATIO = 1.3  # 10 rate-limited connections' wall over one's
YEAR_S_PER_ASSET_PARTITION = 0.067
YEAR_EVENTS_PER_ASSET_PARTITION = 5.4
Cell = tuple[float, str] | str  # (the value a target is checked on, its text), or why there is none


def _cells(
    outcomes: Mapping[str, Outcome], text: Callable[[DagsterRun, Outcome], tuple[float, str]]
) -> dict[str, Cell]:
    """Each code's cell: `text` of its run, or why it has none."""
    cells: dict[str, Cell] = {}
    for code in CODES:
        outcome = outcomes[code]
        cells[code] = f"failed: {outcome.error}" if outcome.run is None else text(outcome.run, outcome)
    return cells


def _wall(run: DagsterRun, _: Outcome) -> tuple[float, str]:
    return run.wall_s, f"{run.wall_s:.1f}"


def _events_per(count: int) -> Callable[[DagsterRun, Outcome], tuple[float, str]]:
    def text(run: DagsterRun, _: Outcome) -> tuple[float, str]:
        return run.events / count, f"{run.events / count:.1f}"

    return text


def _seconds_per_partition(run: DagsterRun, _: Outcome) -> tuple[float, str]:
    value = run.wall_s / run.materializations
    return value, f"{value:.3f} ({run.wall_s:.1f} s / {run.materializations:,})"


def _events_per_partition(run: DagsterRun, _: Outcome) -> tuple[float, str]:
    value = run.events / run.materializations
    return value, f"{value:.2f} ({run.events:,} / {run.materializations:,})"


def _events_beyond_floor(run: DagsterRun, _: Outcome) -> tuple[float, str]:
    # Dagster stores at least a planned event and a materialization per asset-partition and an
    # evaluation per check result; what is left is the run's and the steps' own.
    floor = 2 * run.materializations + run.check_results
    value = (run.events - floor) / run.materializations
    return value, f"{value:.2f} ({run.events:,} − {floor:,}, of which {run.check_results:,} check results)"


def _paced_wall(run: DagsterRun, outcome: Outcome) -> tuple[float, str]:
    return run.wall_s, f"{run.wall_s:.1f} ({outcome.requests:,} requests, {outcome.throttled} × 429)"


def _ratio(top: dict[str, Cell], bottom: dict[str, Cell]) -> dict[str, Cell]:
    out: dict[str, Cell] = {}
    for code in CODES:
        a, b = top[code], bottom[code]
        out[code] = (a[0] / b[0], f"{a[0] / b[0]:.2f}×") if isinstance(a, tuple) and isinstance(b, tuple) else "—"
    return out


def _row(measure: str, cells: dict[str, Cell], target: str = "—", limit: float | None = None) -> list[str]:
    texts = [cell[1] if isinstance(cell, tuple) else cell for cell in (cells[code] for code in CODES)]
    shipped = cells["shipped"]
    met = "—" if limit is None else "yes" if isinstance(shipped, tuple) and shipped[0] <= limit else "**no**"
    return [measure, *texts, target, met]


def _step_peaks(run: DagsterRun, _: Outcome) -> tuple[float, str]:
    """The largest provider step's peak RSS, and per provider the largest and how many steps."""
    parts, peak = [], 0.0
    for p in PROVIDERS:
        steps = [run.peak_rss_mb[k] for k in provider_steps(run.peak_rss_mb) if k.startswith(f"{p}_completions")]
        if steps:
            peak = max(peak, *steps)
            parts.append(f"{p} {max(steps):.0f}" + (f" (largest of {len(steps)} steps)" if len(steps) > 1 else ""))
    return peak, ", ".join(parts)


def connections_table(c: ConnectionsResult) -> str:
    rows = []
    walls = {}
    day_runs = {sizes: {code: c.day_runs[sizes, code] for code in CODES} for sizes in DAY_SETS}
    for sizes in DAY_SETS:
        walls[sizes] = _cells(day_runs[sizes], _wall)
        rows.append(_row(f"(a) day run, {sizes.label}: wall s", walls[sizes]))
    small, large = DAY_SETS[-2], DAY_SETS[-1]
    rows.append(
        _row(
            f"(a) wall at {large.total} connections over {small.total}",
            _ratio(walls[large], walls[small]),
            f"≤ {DAY_WALL_RATIO:g}×",
            DAY_WALL_RATIO,
        )
    )
    for sizes in DAY_SETS:
        # At scale only: a run's own events (its start, its steps, the merge) are shared by few connections below it.
        limit = EVENTS_PER_CONNECTION_DAY if sizes is large else None
        events = _cells(day_runs[sizes], _events_per(sizes.total * DAY.days))
        target = "—" if limit is None else f"≤ {limit:g}"
        rows.append(_row(f"(a) events stored per connection-day, {sizes.label}", events, target, limit))
    loads = {code: c.load[code] for code in CODES}
    for label, name, limit in (
        ("definitions loaded s (import + resolved repository)", "load_s", LOAD_LIMIT_S),
        ("of which the import of `completions_assets.definitions` s", "import_s", None),
        ("then the repository snapshot a code server sends the UI s", "snapshot_s", None),
    ):
        cells: dict[str, Cell] = {
            code: load if isinstance(load, str) else (getattr(load, name), f"{getattr(load, name):.2f}")
            for code, load in loads.items()
        }
        target = "—" if limit is None else f"≤ {limit:g} s"
        rows.append(_row(f"(b) {LOAD_SET.label} declared: {label}", cells, target, limit))
    rates = {}
    for size in RATE_SIZES:
        rates[size] = _cells({code: c.rate[size, code] for code in CODES}, _paced_wall)
        name = "1 Bindbee connection" if size == 1 else f"{size} Bindbee connections"
        rows.append(_row(f"(c) rate limits on, {name} × {RATE_SANDBOX.density:,} records: wall s", rates[size]))
    rows.append(
        _row(
            f"(c) wall of {RATE_SIZES[-1]} rate-limited connections over 1",
            _ratio(rates[RATE_SIZES[-1]], rates[1]),
            f"≤ {RATE_RATIO:g}×",
            RATE_RATIO,
        )
    )
    year = f"(d) {YEAR.days}-day range run, default connections, {YEAR_SANDBOX.density:,}/day"
    rows.append(
        _row(
            f"{year}: s per asset-partition",
            _cells(c.year, _seconds_per_partition),
            f"≤ {YEAR_S_PER_ASSET_PARTITION:g}",
            YEAR_S_PER_ASSET_PARTITION,
        )
    )
    rows.append(
        _row(
            f"{year}: events per asset-partition",
            _cells(c.year, _events_per_partition),
            f"≤ {YEAR_EVENTS_PER_ASSET_PARTITION:g}",
            YEAR_EVENTS_PER_ASSET_PARTITION,
        )
    )
    rows.append(
        _row(
            f"{year}: events per asset-partition beyond Dagster's floor (a planned event and a "
            "materialization per asset-partition, an evaluation per check result)",
            _cells(c.year, _events_beyond_floor),
        )
    )
    for label, outcomes in (
        (f"{large.label} × {DAY_SANDBOX.density:,}/day (the day run of a)", day_runs[large]),
        (f"{DENSE_SET.label} × {DENSE_SANDBOX.density:,}/day", c.dense),
    ):
        rows.append(
            _row(
                f"(e) provider steps' peak RSS MB, {label}",
                _cells(outcomes, _step_peaks),
                f"≤ {RSS_LIMIT_MB:g} MB each",
                RSS_LIMIT_MB,
            )
        )
    return _table(["measure", "shipped", f"before issue 19 ({BEFORE_ISSUE})", "target", "met"], rows)


def connections_section(c: ConnectionsResult) -> str:
    return (
        "## Connections at scale\n\n"
        f"The shipped `completions_assets` beside the package as of {BEFORE_ISSUE}, the commit before issue 19 "
        "(`git archive`, run from a directory of its own, as in the commit-by-commit table), in one invocation "
        f"that took {c.duration_s / 60:.1f} minutes; one run per point (not medians), every run a fresh process with "
        "a fresh DAGSTER_HOME (the local instance configuration; the earlier package's with Dagster's own SQLite "
        "event log, as it shipped, its package having no `local/event_log.py`) and data root. Connections are "
        "declared in a file named by `COMPLETIONS_CONNECTIONS_FILE`, each entry naming the variables the sandbox "
        "reads for it, "
        "and the sandbox serves exactly those connections with their own data and credentials; every connection "
        "has data on the measured day (`completions_assets_bench/connection_sets.py`). Run config, where a run "
        "has any, is derived from each package's own definitions.\n\n"
        f"- **(a)** `dg launch --job completions_job --partition {DAY.first} -m completions_assets.definitions` "
        f"with the resources' default pacing, against one sandbox of {DAY_SANDBOX.density:,} records a day per "
        "connection. Events are every entry the run stored in the instance's event log, over connections × days; "
        "their target is checked at the largest point, as below it a run's own events are shared by few connections.\n"
        f"- **(b)** {LOAD_SET.label} connections declared, no sandbox: a fresh process times `import "
        "completions_assets.definitions` and `defs.get_repository_def()` (the resolved repository every Dagster "
        "entry point builds first: the load a user waits for), and after it the repository snapshot; medians of "
        "3 processes after one unmeasured, with bytecode written as an installed package has it.\n"
        f"- **(c)** the day run of (a) for Bindbee connections only, against a sandbox with `--rate-limits` "
        f"(200 requests a minute per connector token) serving {RATE_SANDBOX.density:,} records a day per connection "
        f"(about {RATE_SANDBOX.density // PAGE_SIZE:,} pages of {PAGE_SIZE}), the resources' default pacing; each run has connector tokens no earlier run "
        "used, so none starts in a window another filled. Requests and 429 answers are the sandbox's count.\n"
        f"- **(d)** `--partition-range {YEAR.cli}` of the default connections (no connections file), pacing off; "
        "an asset-partition is one materialization in the run's event log. The targets are the before-issue "
        "figures the issue quotes.\n"
        f"- **(e)** peak RSS (VmHWM, sampled every 0.1 s) of each provider step's process, the largest per "
        f"provider; the second point is the day run of (a) at {DENSE_SANDBOX.density:,} records a day per "
        "connection, pacing off.\n\n" + connections_table(c)
    )


def _pair(shipped: float, back: float) -> str:
    return f"{shipped:,.1f} → {back:,.1f} ({back / shipped - 1:+.0%})"


def median(samples: list[Sample], value: Callable[[Sample], float]) -> float:
    return statistics.median(value(s) for s in samples)


def experiments_table(t: Throughput, e: Experiments) -> str:
    rows = []
    for result in e.settings():
        experiment = result.experiment
        if result.skipped:
            rows.append([f"{experiment.label}: skipped, {result.skipped}", "", "", "", "", ""])
            continue
        note = "".join(f" ({key} lacks {', '.join(names)})" for key, names in result.unknown.items())
        shipped, back = result.shipped, result.samples
        rss_shipped, rss_back = median_rss(shipped), median_rss(back)
        rows.append(
            [
                experiment.label + note,
                f"{experiment.latency_ms} ms",
                _pair(median(shipped, lambda s: s.wall_s), median(back, lambda s: s.wall_s)),
                _pair(median(shipped, lambda s: s.cpu_s), median(back, lambda s: s.cpu_s)),
                ", ".join(
                    f"{_step_name(k)} {rss_shipped.get(k, 0.0):.0f} → {rss_back.get(k, 0.0):.0f}"
                    for k in provider_steps(rss_back)
                ),
                _requests(back),
            ]
        )
    header = [
        f"(c), {t.range.days} days × {t.density:,}/day: put back",
        "added latency",
        "wall s, shipped → put back",
        "CPU s, shipped → put back",
        "provider-step peak RSS MB, shipped → put back",
        "requests made / minimum bindbee; nexudus (put back)",
    ]
    return _table(header, rows)


def memory_experiments_table(memory: list[MemoryRun], e: Experiments) -> str:
    rows = []
    for experiment, run in e.memory:
        shipped = next(m for m in memory if m.range == run.range and m.density == run.density)
        rows.append(
            [
                experiment.label,
                run.label,
                " / ".join(f"{shipped.rss_mb[p]:.0f} → {run.rss_mb[p]:.0f}" for p in PROVIDERS),
                f"{shipped.wall_s:.1f} → {run.wall_s:.1f}",
            ]
        )
    header = ["path (b): put back", "range × density", "peak RSS MB bindbee / nexudus, shipped → put back", "wall s"]
    return _table(header, rows)


def baselines_table(t: Throughput, e: Experiments) -> str:
    """Each earlier commit, then the shipped code, each beside the row above it (same latency)."""
    rows = []
    for latency in sorted({r.experiment.latency_ms for r in e.baselines()}):
        chain = [r for r in e.baselines() if r.experiment.latency_ms == latency]
        steps: list[tuple[str, str, list[Sample]]] = []
        for result in chain:
            if result.skipped:
                skipped = [f"`{result.experiment.commit}`", result.experiment.label, f"skipped: {result.skipped}"]
                rows.append(skipped + [""] * 6)
                continue
            steps.append((f"`{result.experiment.commit}`", result.experiment.label, result.samples))
        shipped = next((r.shipped for r in chain if r.shipped), [])
        if shipped:
            steps.append(("shipped", SHIPPED_AFTER_BASELINES, shipped))
        before: list[Sample] = []
        for code, label, samples in steps:
            wall, cpu = median(samples, lambda s: s.wall_s), median(samples, lambda s: s.cpu_s)
            by_process, rss = _median_per_key(samples, lambda s: s.detail["cpu_s"]), median_rss(samples)
            rows.append(
                [
                    code,
                    label,
                    f"{latency} ms",
                    f"{wall:.1f}" + (f" ({wall / median(before, lambda s: s.wall_s) - 1:+.0%})" if before else ""),
                    f"{cpu / t.total * 1e6:.1f}"
                    + (f" ({cpu / median(before, lambda s: s.cpu_s) - 1:+.0%})" if before else ""),
                    ", ".join(f"{_step_name(k)} {by_process[k]:.1f}" for k in _process_order(by_process)),
                    ", ".join(f"{_step_name(k)} {rss[k]:.0f}" for k in _process_order(rss) if k != "cli"),
                    f"{median(samples, lambda s: s.detail['events']):.0f}",
                    _requests(samples),
                ]
            )
            before = samples
    header = [
        "code",
        "what it adds to the row above",
        "added latency",
        "wall s (vs row above)",
        "CPU s per M records (vs row above)",
        "CPU s per process",
        "step peak RSS MB",
        "events stored",
        "requests made / minimum bindbee; nexudus",
    ]
    return _table(header, rows)


def _process_order(values: dict[str, float]) -> list[str]:
    """The CLI, the provider steps, the other steps, then the rest of the process tree."""
    steps = provider_steps(values)
    first = [k for k in ("cli", *steps) if k in values]
    return first + sorted(k for k in values if k not in first and k != "other") + [k for k in ("other",) if k in values]


def render(
    *,
    facts: list[tuple[str, str]],
    t: Throughput,
    floor: Throughput,
    memory: list[MemoryRun],
    sandboxes: list[SandboxFacts],
    rates: list[RateResult],
    experiments: Experiments,
    connections: ConnectionsResult,
    expand: list[ExpandRun],
    nexudus_range_minimum: int,
    repeats: int,
    duration_s: float,
    analysis: str,
) -> str:
    old_margin = experiments.nexudus_old_margin
    assert old_margin is not None, "measure_rate_limits() sets it before the report"
    dense = workload.DENSE
    return (
        "\n\n".join(
            [
                "# Benchmarks",
                f"Written by `make bench` (`python -m completions_assets_bench`), which took {duration_s / 60:.1f} minutes. "
                f"Every table comes from that one invocation (medians of {repeats} interleaved repeats unless noted).",
                "## Machine\n\n" + _table(["", ""], [[k, v] for k, v in facts]),
                "## Workload\n\n"
                f"One sandbox (`python -m completions_assets.sandbox {' '.join(workload.sandbox_args(dense))}`) serves both "
                f"providers at {dense.density:,} records per day each. The throughput range is {t.range.days} days, "
                f"{t.range.first} … {t.range.last}; by the sandbox's design about one day in nine is empty for each provider, so "
                "the range holds "
                + " and ".join(f"{t.records[p]:,} {p}" for p in PROVIDERS)
                + f" records ({t.total:,} in all). records/s is always {t.total:,} divided by the wall time, so the ratios are "
                "wall-time ratios; CPU s per M records is the variant's CPU (all its processes, the sandbox's apart) per "
                "million of those records.\n\n"
                "- **(a)** the ceiling: one process per provider, `httpx.AsyncClient`, each page `json.loads`-ed and dropped; "
                "no Arrow, no files, no pacing. Bindbee as one exact window per UTC day, all days' cursor walks at once; "
                "Nexudus as one window over the whole range widened once by 14 h 1 min on each side, page 1 and then pages "
                f"2..TotalPages at once; at most {IN_FLIGHT} requests in flight per process.\n"
                "- **(b)** one process per provider: the provider resource's `fetch_days` (pacing off) and `ParquetStorage.write` "
                "for each day, without Dagster — the provider asset's fetch-to-Parquet path.\n"
                "- **(c)** `dg launch --job completions_job --partition-range "
                f"{t.range.cli} -m completions_assets.definitions -c pacing-off.yaml`: one run of all three assets and their checks, as a user launches it, timed "
                "from process start to exit (Dagster's start-up included); a fresh data root per run, one instance (the local "
                "`completions_assets/local/dagster.yaml`) per invocation. Run config for a resource replaces its configured "
                "values as a whole, so the benchmark derives the file from the code location itself: it loads "
                "`completions_assets.definitions` in the run's environment, restates each provider resource's explicitly set "
                "fields, sets every pacing field the class declares to 0 and checks the resource then reports no rate limit.\n\n"
                "(a) and (b) start their two processes together after imports (both ready, then go) and time from go to the last "
                "one done. Peak RSS is each process's VmHWM (for (c), sampled every 0.1 s for the CLI and each step process, "
                "found by the pids in the run's step events). Unmeasured (a) and (b) passes first fill the sandbox's per-query "
                "caches.\n\n"
                "**Minimum requests**: the windows a run chose are read back from the sandbox's query log (`GET "
                "/_sandbox/queries`): every page request carries its window's filter (Bindbee `completed_at_from`/`_to`, "
                "Nexudus `from_`/`to_CourseCompletedLesson_CreatedOn`). The minimum is the sum over the windows walked to their "
                "end of max(1, ceil(records the window returns / page size)), with the records counted by the sandbox's ground "
                "truth (for Nexudus, of the widened window); a window given up before its end (a first page read to size "
                "smaller windows, say) adds its requests to those made and nothing to the minimum. Requests are counted by "
                "the sandbox (data endpoints only; the Nexudus token requests are not included).",
                f"## Throughput ({t.range.days} days × {t.density:,} records/day per provider)\n\n"
                + throughput_table(t),
                "### Where the Dagster run's time goes (medians)\n\n"
                "CPU per process is sampled every 0.1 s (a process's last tenth may be missing); `other` is the rest of "
                "the run's process tree: the forkserver the steps are forked from and Dagster's compute-log capture.\n\n"
                + dagster_breakdown(t),
                "### The run's fixed cost\n\n"
                f"The same (c) run over the same {floor.range.days} days, against a sandbox holding "
                f"{floor.density:,} records a day per provider ({floor.total:,} in the range): what a run costs with "
                "next to nothing to fetch. Its events are the same in number (one materialization per asset and day, one "
                "result per check and day).\n\n" + dagster_breakdown(floor),
                "### Requests against the minimum, per run\n\n"
                "Made and minimum for the windows each run asked for. The last column compares Nexudus's requests with "
                f"the {nexudus_range_minimum:,} one window over the whole range (widened once) would need: the cost of "
                "widening each window.\n\n" + requests_table(t, nexudus_range_minimum),
                "## Memory\n\n"
                "Path (b), one process per provider, no added latency, pacing off: an 8-day range at 2,000, 10,000 and "
                "50,000 records per day (one sandbox per density, with a day beyond the range on each side), and 7- and "
                f"90-day ranges at {dense.density:,} per day (the throughput sandbox). The provider steps of (c) are in the "
                "throughput table.\n\n" + memory_table(memory) + "\n\nThe sandboxes themselves (their own process, "
                "measured apart; every record is encoded once after start):\n\n" + sandbox_table(sandboxes),
                "## Rate limits on\n\n"
                "Two sandboxes with `--rate-limits` (one per provider, as the densities differ), path (b) with the resources' "
                "default pacing (Bindbee 200/minute; Nexudus 1 per 100 ms, 120/minute, 5,000/hour; 1 ms margin), both at once. "
                "Under a sliding-window limit of L requests per W seconds, N requests cannot span less than floor((N−1)/L)·W "
                "seconds from first to last send; **achieved rate** = that least span over the measured span, times the binding "
                "limit's rate.\n\n" + rate_table(rates),
                connections_section(connections),
                expand_section(expand),
                "## Targets\n\n" + verdict_table(verdicts(t, memory, rates)),
                "## What each change bought\n\n"
                "The Dagster run of the throughput workload with one earlier setting or the code of an earlier commit put "
                "back (`completions_assets_bench/experiments.py`: a list of (label, run-config overrides, environment, "
                "added latency, commit)). Each round runs the shipped code and then every experiment at that latency, the "
                f"order turning each round, {repeats} rounds; the medians are set beside the shipped code's from the same "
                "rounds. An experiment naming fields no resource declares any more, or a commit this checkout cannot read, "
                "is shown as skipped.\n\n"
                "**The code, commit by commit.** The `completions_assets` package as of each commit (`git archive`), run "
                "from a directory of its own with everything else unchanged (the sandbox, the instance, the run config "
                "derived from that package's own definitions): each row is the product after the changes its label names, "
                "and its difference from the row above is what they bought.\n\n"
                + baselines_table(t, experiments)
                + "\n\n**Settings put back** through run config or the environment.\n\n"
                + experiments_table(t, experiments)
                + "\n\nThe allocator settings are for memory, so they are also put back on the densest memory "
                f"point ({repeats} repeats each, medians; the shipped figures are the memory table's).\n\n"
                + memory_experiments_table(memory, experiments)
                + "\n\n"
                "The pacing margin: the Nexudus rate-limited run again, right after the one above (40 more requests stay "
                "within 120 per minute), with the old `rate_margin_ms=10`.\n\n"
                + rate_table(
                    [old_margin, next(r for r in rates if r.provider == "nexudus")],
                    names=["nexudus, margin 10 ms (before)", "nexudus, margin 1 ms (shipped)"],
                ),
                analysis,
            ]
        )
        + "\n"
    )
