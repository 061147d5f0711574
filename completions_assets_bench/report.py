"""Machine facts, the measured tables and the target verdicts, as Markdown."""

import statistics
from dataclasses import dataclass

from completions_assets_bench import workload
from completions_assets_bench.experiments import Experiments
from completions_assets_bench.ratelimited import RateResult
from completions_assets_bench.throughput import VARIANTS, MemoryRun, Throughput
from completions_assets_bench.workload import LATENCIES_MS, PROVIDERS

RSS_LIMIT_MB = 300.0
STEP_ORDER = ("bindbee_completions__default", "nexudus_completions__default", "lms_completions")


@dataclass(frozen=True)
class Verdict:
    target: str
    measured: str
    met: bool


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _rss(values: dict[str, float]) -> str:
    names = {"cli": "CLI"} | {step: step.replace("_completions", "") for step in STEP_ORDER}
    order = [k for k in ("cli", *PROVIDERS, *STEP_ORDER) if k in values]
    return ", ".join(f"{names.get(k, k)} {values[k]:.0f}" for k in dict.fromkeys(order))


def _median_rss(samples) -> dict[str, float]:
    keys = dict.fromkeys(k for s in samples for k in s.rss_mb)
    return {k: statistics.median(s.rss_mb[k] for s in samples if k in s.rss_mb) for k in keys}


def throughput_table(t: Throughput) -> str:
    rows = []
    for latency in LATENCIES_MS:
        ceiling = t.records_per_s("a", latency)
        for variant in ("a", "b", "c"):
            samples = t.of(variant, latency)
            made = {p: max(s.requests[p] for s in samples) for p in PROVIDERS}
            failed = sum(sum(s.failed.values()) for s in samples)
            rate = t.records_per_s(variant, latency)
            rows.append(
                [
                    f"({variant}) {VARIANTS[variant]}",
                    f"{latency} ms",
                    f"{rate:,.0f}",
                    f"{t.median(variant, latency, lambda s: s.wall_s):.2f}",
                    f"{t.median(variant, latency, lambda s: s.cpu_s):.2f}",
                    _rss(_median_rss(samples)),
                    " / ".join(f"{made[p]:,}" for p in PROVIDERS)
                    + " vs "
                    + " / ".join(f"{t.minimum[p]:,}" for p in PROVIDERS)
                    + (f" ({failed} failed)" if failed else ""),
                    "1.00" if variant == "a" else f"{rate / ceiling:.2f}",
                    f"{t.median(variant, latency, lambda s: s.sandbox_cpu_s):.2f}",
                ]
            )
    header = [
        "path",
        "added latency",
        "records/s",
        "wall s",
        "CPU s",
        "peak RSS MB per process",
        "requests bindbee / nexudus vs minimum",
        "vs (a)",
        "sandbox CPU s",
    ]
    return _table(header, rows)


def dagster_breakdown(t: Throughput) -> str:
    rows = []
    for latency in LATENCIES_MS:
        samples = t.of("c", latency)
        steps = {step: statistics.median(s.detail["step_s"].get(step, 0.0) for s in samples) for step in STEP_ORDER}
        startup = statistics.median(s.detail["startup_s"] for s in samples)
        wall = t.median("c", latency, lambda s: s.wall_s)
        inside = max(steps[s] for s in STEP_ORDER[:2]) + steps[STEP_ORDER[2]]  # providers in parallel, then the merge
        events = statistics.median(s.detail["events"] for s in samples)
        rows.append(
            [
                f"{latency} ms",
                f"{wall:.1f}",
                f"{startup:.1f}",
                *(f"{steps[step]:.1f}" for step in STEP_ORDER),
                f"{wall - startup - inside:.1f}",
                f"{events:.0f}",
            ]
        )
    header = [
        "added latency",
        "wall s",
        "start to first step s",
        "bindbee step s",
        "nexudus step s",
        "lms step s (merge and checks)",
        "between and after steps s",
        "events stored",
    ]
    return _table(header, rows)


def memory_table(runs: list[MemoryRun]) -> str:
    rows = [
        [
            f"{run.range.days} days ({run.range.first} … {run.range.last})",
            " / ".join(f"{run.rows[p]:,}" for p in PROVIDERS),
            " / ".join(f"{run.rss_mb[p]:.0f}" for p in PROVIDERS),
            f"{run.wall_s:.1f}",
        ]
        for run in runs
    ]
    return _table(["range", "rows bindbee / nexudus", "peak RSS MB bindbee / nexudus process", "wall s"], rows)


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


def verdicts(t: Throughput, memory: list[MemoryRun], rates: list[RateResult]) -> list[Verdict]:
    out = []
    extra = [
        f"({s.variant}) {s.latency_ms} ms {p}: {s.requests[p]} vs {t.minimum[p]}"
        for s in t.samples
        for p in PROVIDERS
        if s.requests[p] != t.minimum[p]
    ]
    out.append(
        Verdict(
            "requests made == minimum (every run of a, b, c)",
            "all equal" if not extra else "; ".join(extra[:4]),
            not extra,
        )
    )
    for variant, floor in (("b", 0.7), ("c", 0.25)):
        for latency in LATENCIES_MS:
            ratio = t.records_per_s(variant, latency) / t.records_per_s("a", latency)
            out.append(Verdict(f"({variant})/(a) ≥ {floor} at {latency} ms", f"{ratio:.2f}", ratio >= floor))
    steps = {
        step: statistics.median(s.rss_mb.get(step, 0.0) for s in t.samples if s.variant == "c")
        for step in ("bindbee_completions__default", "nexudus_completions__default")
    }
    worst = max(steps, key=lambda step: steps[step])
    out.append(
        Verdict(
            f"provider-step peak RSS ≤ {RSS_LIMIT_MB:.0f} MB (Dagster step, 30 days)",
            ", ".join(f"{k.split('_')[0]} {v:.0f} MB" for k, v in steps.items()),
            steps[worst] <= RSS_LIMIT_MB,
        )
    )
    short, long = memory[0], memory[-1]
    growth = {p: long.rss_mb[p] / short.rss_mb[p] - 1 for p in PROVIDERS}
    out.append(
        Verdict(
            f"{long.range.days}-day peak RSS within 10% of {short.range.days}-day",
            ", ".join(f"{p} {g:+.0%}" for p, g in growth.items()),
            all(g <= 0.10 for g in growth.values()),
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


def experiments_table(t: Throughput, memory: list[MemoryRun], e: Experiments) -> str:
    shipped_c = _median_rss(t.of("c", 0))
    old_c = e.dagster_old_pool.rss_mb
    steps = ("bindbee_completions__default", "nexudus_completions__default", "lms_completions")
    rows = [
        [
            "(c) 30 days, 0 ms: step peak RSS MB " + " / ".join(s.split("_")[0] for s in steps),
            " / ".join(f"{old_c.get(s, 0):.0f}" for s in steps),
            " / ".join(f"{shipped_c.get(s, 0):.0f}" for s in steps),
        ]
    ]
    by_days = {run.range.days: run for run in memory}
    for run in e.memory_old_pool:
        shipped = by_days[run.range.days]
        rows.append(
            [
                f"(b) {run.range.days} days: peak RSS MB bindbee / nexudus process",
                " / ".join(f"{run.rss_mb[p]:.0f}" for p in PROVIDERS),
                " / ".join(f"{shipped.rss_mb[p]:.0f}" for p in PROVIDERS),
            ]
        )
    short, long = e.memory_old_pool[0], e.memory_old_pool[-1]
    rows.append(
        [
            f"(b) {long.range.days}-day over {short.range.days}-day peak RSS, bindbee / nexudus",
            " / ".join(f"{long.rss_mb[p] / short.rss_mb[p] - 1:+.0%}" for p in PROVIDERS),
            " / ".join(
                f"{by_days[long.range.days].rss_mb[p] / by_days[short.range.days].rss_mb[p] - 1:+.0%}"
                for p in PROVIDERS
            ),
        ]
    )
    return _table(["measure", "before: mimalloc (one run)", "shipped: system (medians above)"], rows)


def render(
    *,
    facts: list[tuple[str, str]],
    t: Throughput,
    memory: list[MemoryRun],
    rates: list[RateResult],
    experiments: Experiments,
    repeats: int,
    duration_s: float,
    analysis: str,
) -> str:
    old_margin = experiments.nexudus_old_margin
    assert old_margin is not None, "measure_rate_limits() sets it before the report"
    records = sum(t.records.values())
    fetched = {p: sum(t.sweep_records[p]) for p in PROVIDERS}
    sweeps = len(t.range.sweeps())
    return (
        "\n\n".join(
            [
                "# Benchmarks",
                f"Written by `make bench` (`python -m completions_assets_bench`), which took {duration_s / 60:.1f} minutes. "
                f"Every table comes from that one invocation (medians of {repeats} interleaved repeats unless noted); the "
                "findings also quote profiles and side tests run separately, with their date.",
                "## Machine\n\n" + _table(["", ""], [[k, v] for k, v in facts]),
                "## Workload\n\n"
                f"The sandbox (`python -m completions_assets.sandbox {' '.join(workload.sandbox_args(workload.MAIN))}`) serves "
                "both providers. The throughput range is "
                f"{t.range.days} days, {t.range.first} … {t.range.last}, at {workload.MAIN.density:,} records per day and provider; "
                "by the sandbox's design about one day in nine is empty for each provider, so the range holds "
                + " and ".join(f"{t.records[p]:,} {p}" for p in PROVIDERS)
                + f" records ({records:,} in all). "
                f"records/s is always {records:,} divided by the wall time, so the ratios are wall-time ratios.\n\n"
                f"All three paths fetch in the pipeline's {sweeps} sweeps of up to {workload.SWEEP_DAYS} days, "
                f"{workload.CONCURRENT_SWEEPS} at a time, pages of {workload.PAGE_SIZE}. A Bindbee sweep asks for exactly its days; a "
                "Nexudus sweep asks for its days widened by 14 h 1 min on each side (SPEC section 6), so its windows return "
                + " and ".join(f"{fetched[p]:,} {p}" for p in PROVIDERS)
                + " records. "
                "**Minimum requests** = the sum over sweeps of max(1, ceil(records the sweep's request window returns / 100)), "
                "per provider — for Bindbee that is ceil(records in the sweep's days / 100); for Nexudus it counts the records of the "
                "widened window, which the pipeline has to read to be correct in any time zone. Requests are counted by the sandbox "
                "(data endpoints only; the one Nexudus token request per process is not included).\n\n"
                "- **(a)** one process per provider, plain `httpx.Client` (same pool size), the same sweeps on the same number of "
                "threads; each page is `json.loads`-ed and dropped. No Arrow, no files, no pacing: the ceiling.\n"
                "- **(b)** one process per provider: the provider resource's `fetch_days` (pacing off) and `ParquetStorage.write` "
                "for each day, without Dagster — the provider asset's fetch-to-Parquet path.\n"
                "- **(c)** `python -m dagster asset materialize -m completions_assets.definitions --select '*' --partition-range "
                f"{t.range.cli} -c pacing-off.yaml`: one run of all three assets and their checks, as a user launches it, timed "
                "from process start to exit (Dagster's start-up included); a fresh data root per run, one instance (the local "
                "`completions_assets/local/dagster.yaml`) per invocation. The run config switches pacing off; it restates every resource field "
                "`definitions.py` sets, because run config for a resource replaces its configured values as a whole.\n\n"
                "(a) and (b) start their two processes together after imports (both ready, then go) and time from go to the last "
                "one done; CPU s is the sum over the variant's processes (not the sandbox's, shown apart). Peak RSS is each "
                "process's VmHWM (for (c), sampled every 0.1 s for the CLI and each step process, found by the pids in the run's "
                "step events). One unmeasured (a) pass first fills the sandbox's per-query caches.",
                "## Throughput (30 days)\n\n" + throughput_table(t),
                "### Where the Dagster run's time goes (medians)\n\n" + dagster_breakdown(t),
                "## Memory: 7-, 30- and 90-day ranges at the same density\n\n"
                "Path (b), one process per provider, no added latency, pacing off. A 7-day range is one sweep; 30 and 90 days "
                f"run {workload.CONCURRENT_SWEEPS} sweeps at a time.\n\n" + memory_table(memory),
                "## Rate limits on\n\n"
                "Two sandboxes with `--rate-limits` (one per provider, as the densities differ), path (b) with the resources' "
                "default pacing (Bindbee 200/minute; Nexudus 1 per 100 ms, 120/minute, 5,000/hour; 1 ms margin), both at once. "
                "Under a sliding-window limit of L requests per W seconds, N requests cannot span less than floor((N−1)/L)·W "
                "seconds from first to last send; **achieved rate** = that least span over the measured span, times the binding "
                "limit's rate.\n\n" + rate_table(rates),
                "## Targets\n\n" + verdict_table(verdicts(t, memory, rates)),
                "## What the shipped defaults bought: Arrow's memory pool\n\n"
                "The package sets `ARROW_DEFAULT_MEMORY_POOL=system` when it is unset (`completions_assets/__init__.py`, before "
                "anything imports pyarrow), so pyarrow allocates with the C library's malloc; the tables above measure that. "
                "Before this benchmark pyarrow used its bundled mimalloc; the same code with `ARROW_DEFAULT_MEMORY_POOL=mimalloc` "
                "in the environment puts it back, measured once each in this invocation.\n\n"
                + experiments_table(t, memory, experiments),
                "## What the shipped defaults bought: the pacing margin\n\n"
                "The shipped `rate_margin_ms` is 1 (10 before this benchmark). The Nexudus rate-limited run again, right after "
                "the one above (40 more requests stay within 120 per minute), with the old `rate_margin_ms=10`.\n\n"
                + rate_table(
                    [old_margin, next(r for r in rates if r.provider == "nexudus")],
                    names=["nexudus, margin 10 ms (before)", "nexudus, margin 1 ms (shipped)"],
                ),
                analysis,
            ]
        )
        + "\n"
    )
