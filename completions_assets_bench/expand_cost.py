"""(f) What Bindbee's `expand` costs: the fetch-to-Parquet path (b) for Bindbee alone at
10,000 records a day, with `expand_relations` on (the default: the names of each
completion's user, course and content come inline) and off (ids only), against one
sandbox, the variants interleaved.

Bytes are the response bodies the client read (decompressed), counted by the
worker's transport; the Parquet bytes are the day files it wrote.
"""

import datetime as dt
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from completions_assets_bench.procs import run_workers
from completions_assets_bench.sandbox import CREDENTIALS, serving
from completions_assets_bench.workload import Range, Workload

DAYS = Range(dt.date(2024, 1, 2), 7)
SANDBOX = Workload("expand", dt.date(2024, 1, 1), DAYS.days + 2, 10_000)
VARIANTS = {"expand on (default)": True, "expand off": False}
WORKER_TIMEOUT_S = 600.0


@dataclass(frozen=True)
class ExpandRun:
    variant: str
    wall_s: float
    cpu_s: float
    peak_rss_mb: float
    response_bytes: int
    parquet_bytes: int
    rows: int
    requests: int


def measure_expand(scratch: Path, *, repeats: int, log: Callable[[str], None]) -> list[ExpandRun]:
    runs = []
    with serving(SANDBOX) as sandbox:
        began = time.monotonic()
        sandbox.wait_idle(timeout_s=600.0)
        log(f"  sandbox {SANDBOX.name}: idle after {time.monotonic() - began:.0f} s")
        for repeat in range(repeats):
            for variant, expand in VARIANTS.items():
                root = scratch / f"expand-{repeat}-{int(expand)}"
                role = {
                    "provider": "bindbee",
                    "base_url": sandbox.base_url,
                    "credentials": CREDENTIALS,
                    "first": DAYS.first.isoformat(),
                    "days": DAYS.days,
                    "root": str(root),
                    "pacing": False,
                    "timed": True,
                    "settings": {"expand_relations": expand},
                }
                measured = run_workers("pipeline", {"bindbee": role}, timeout_s=WORKER_TIMEOUT_S)
                result = measured.results["bindbee"]
                files = sum(path.stat().st_size for path in root.rglob("*.parquet"))
                run = ExpandRun(
                    variant,
                    measured.wall_s,
                    measured.cpu_s,
                    measured.peak_rss_mb["bindbee"],
                    result["response_bytes"],
                    files,
                    result["rows"],
                    int(result["requests"]),
                )
                log(
                    f"  {variant}: {run.wall_s:.1f} s, {run.response_bytes / 1e6:.1f} MB read, {run.peak_rss_mb:.0f} MB"
                )
                runs.append(run)
    return runs


def expand_section(runs: list[ExpandRun]) -> str:
    def median(variant: str, value: Callable[[ExpandRun], float]) -> float:
        return statistics.median(value(r) for r in runs if r.variant == variant)

    on, off = VARIANTS
    rows = []
    for label, value, unit in [
        ("wall s", lambda r: r.wall_s, "{:.2f}"),
        ("CPU s", lambda r: r.cpu_s, "{:.2f}"),
        ("peak RSS MB", lambda r: r.peak_rss_mb, "{:.0f}"),
        ("response bodies MB", lambda r: r.response_bytes / 1e6, "{:.1f}"),
        ("Parquet files MB", lambda r: r.parquet_bytes / 1e6, "{:.2f}"),
        ("rows", lambda r: r.rows, "{:,.0f}"),
        ("requests", lambda r: r.requests, "{:,.0f}"),
    ]:
        a, b = median(on, value), median(off, value)
        rows.append(
            f"| {label} | {unit.format(a)} | {unit.format(b)} | {a / b - 1:+.0%} |"
            if b
            else f"| {label} | {a} | {b} | — |"
        )
    repeats = len(runs) // len(VARIANTS)
    return (
        "## What Bindbee's expand costs\n\n"
        f"The fetch-to-Parquet path (b) for Bindbee alone, {DAYS.days} days × {SANDBOX.density:,} records a day "
        f"({DAYS.cli}), pacing off, with `expand_relations` on (the default: the request asks for "
        "`expand=user[first_name,last_name],course[name],content[title]` and the names are kept as raw columns) "
        f"and off (ids only); medians of {repeats} interleaved repeats, one sandbox. Response bytes are the bodies "
        "the client read, counted by its transport; Parquet bytes are the day files written "
        "(`completions_assets_bench/expand_cost.py`).\n\n"
        f"| measure | {on} | {off} | change |\n| --- | --- | --- | --- |\n" + "\n".join(rows)
    )
