"""`python -m completions_assets_bench [--repeats N] [--output PATH] [--no-write] [--only connections|expand]`: run
the benchmark, print and write it. `--only` runs that section alone and prints it; it writes only to an
--output given (docs/benchmarks.md holds the whole benchmark)."""

import argparse
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from completions_assets.local.launch import REPO
from completions_assets_bench import expand_cost, report, workload
from completions_assets_bench.experiments import MEMORY_EXPERIMENTS, measure_experiments
from completions_assets_bench.findings import findings
from completions_assets_bench.machine import machine_facts
from completions_assets_bench.many_connections import measure_connections
from completions_assets_bench.ratelimited import measure_rate_limits
from completions_assets_bench.report import SandboxFacts
from completions_assets_bench.sandbox import Sandbox, serving
from completions_assets_bench.throughput import MemoryRun, Runner, measure_floor, measure_memory, measure_throughput

SANDBOX_START_TIMEOUT_S = 600.0


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _started(sandbox: Sandbox, work: workload.Workload, began: float) -> SandboxFacts:
    sandbox.wait_idle(timeout_s=SANDBOX_START_TIMEOUT_S)
    facts = SandboxFacts(work, time.monotonic() - began, sandbox.peak_rss_mb(), sandbox.cpu_s())
    log(f"  sandbox idle after {facts.start_s:.0f} s, {facts.idle_rss_mb:.0f} MB, {facts.idle_cpu_s:.0f} CPU s")
    return facts


def _nexudus_range_minimum(sandbox: Sandbox, days: workload.Range) -> int:
    """Requests one Nexudus window over the whole range (widened once) needs."""
    window = workload.first_page_window("nexudus", workload.nexudus_params(days.start, days.end))
    assert window is not None
    return sandbox.minimum([window])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m completions_assets_bench", description=__doc__)
    parser.add_argument("--repeats", type=int, default=3, help="repeats of each throughput variant (medians)")
    parser.add_argument("--output", type=Path, default=None, help="default: docs/benchmarks.md (whole runs only)")
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument("--only", choices=("connections", "expand"), help="run one section alone")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    if args.only == "connections":
        return _only_connections(None if args.no_write else args.output)
    if args.only == "expand":
        return _only_expand(None if args.no_write else args.output, args.repeats)
    output = args.output or REPO / "docs" / "benchmarks.md"
    began = time.monotonic()
    sandboxes: list[SandboxFacts] = []
    memory: list[MemoryRun] = []
    with tempfile.TemporaryDirectory(prefix="completions-bench-") as scratch:
        dense = workload.DENSE
        log(f"starting the sandbox ({dense.sandbox_days} days x {dense.density:,} records/day per provider)")
        started = time.monotonic()
        with serving(dense) as sandbox:
            sandboxes.append(_started(sandbox, dense, started))
            runner = Runner(sandbox, Path(scratch), workload.THROUGHPUT)
            log(
                f"throughput: {workload.THROUGHPUT.days} days, latencies {workload.LATENCIES_MS} ms, {args.repeats} repeats"
            )
            throughput = measure_throughput(runner, repeats=args.repeats, log=log)
            nexudus_range_minimum = _nexudus_range_minimum(sandbox, workload.THROUGHPUT)
            log(f"memory: 7-, 8- and 90-day ranges at {dense.density:,}/day")
            memory += measure_memory(
                sandbox,
                Path(scratch),
                repeats=args.repeats,
                ranges=(workload.MEMORY_7, workload.MEMORY_8, workload.MEMORY_90),
            )
            log("experiments: the Dagster run with earlier settings or code put back")
            experiments = measure_experiments(runner, Path(scratch), repeats=args.repeats, log=log)
        log(f"fixed cost: the Dagster run at {workload.FLOOR.density:,} records/day")
        started = time.monotonic()
        with serving(workload.FLOOR) as sandbox:
            sandboxes.append(_started(sandbox, workload.FLOOR, started))
            floor = measure_floor(
                Runner(sandbox, Path(scratch) / "floor", workload.THROUGHPUT), repeats=args.repeats, log=log
            )
        for work in (workload.SPARSE, workload.DENSEST):
            log(f"memory: 8 days at {work.density:,}/day (sandbox {work.sandbox_days} days)")
            started = time.monotonic()
            with serving(work) as sandbox:
                sandboxes.append(_started(sandbox, work, started))
                memory += measure_memory(sandbox, Path(scratch), repeats=args.repeats, ranges=(workload.MEMORY_8,))
                if work is workload.DENSEST:
                    for experiment in MEMORY_EXPERIMENTS:
                        log(f"  put back: {experiment.label}")
                        (run,) = measure_memory(
                            sandbox,
                            Path(scratch),
                            repeats=args.repeats,
                            ranges=(workload.MEMORY_8,),
                            env=experiment.env,
                        )
                        experiments.memory.append((experiment, run))
        memory.sort(key=lambda m: (m.range.days != 8, m.density, m.range.days))
        log("rate limits on: Bindbee 5 days x 5,000, Nexudus 2 days x 2,000 (about 65 s)")
        rates, experiments.nexudus_old_margin = measure_rate_limits()
        log("connections at scale: the shipped code and the code before issue 19 (20 to 30 minutes)")
        connections = measure_connections(Path(scratch), log=log)
        log(f"expand: Bindbee {expand_cost.DAYS.days} days x {expand_cost.SANDBOX.density:,}, on and off")
        expand = expand_cost.measure_expand(Path(scratch), repeats=args.repeats, log=log)
    text = report.render(
        facts=machine_facts(),
        t=throughput,
        floor=floor,
        memory=memory,
        sandboxes=sandboxes,
        rates=rates,
        experiments=experiments,
        connections=connections,
        expand=expand,
        nexudus_range_minimum=nexudus_range_minimum,
        repeats=args.repeats,
        duration_s=time.monotonic() - began,
        analysis=findings(throughput, floor, memory, rates, experiments, nexudus_range_minimum),
    )
    print(text)
    if not args.no_write:
        _write(output, text)
    return 0


def _only_connections(output: Path | None) -> int:
    log("connections at scale: the shipped code and the code before issue 19 (20 to 30 minutes)")
    with tempfile.TemporaryDirectory(prefix="completions-bench-") as scratch:
        text = report.connections_section(measure_connections(Path(scratch), log=log)) + "\n"
    print(text)
    if output is not None:
        _write(output, text)
    return 0


def _only_expand(output: Path | None, repeats: int) -> int:
    log(f"expand: Bindbee {expand_cost.DAYS.days} days x {expand_cost.SANDBOX.density:,}, on and off")
    with tempfile.TemporaryDirectory(prefix="completions-bench-") as scratch:
        text = expand_cost.expand_section(expand_cost.measure_expand(Path(scratch), repeats=repeats, log=log)) + "\n"
    print(text)
    if output is not None:
        _write(output, text)
    return 0


def _write(output: Path, text: str) -> None:
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text)
    log(f"written to {output}")


if __name__ == "__main__":
    sys.exit(main())
