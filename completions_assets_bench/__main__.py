"""`python -m completions_assets_bench [--repeats N] [--output PATH]`: run the benchmark, print and write it."""

import argparse
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from completions_assets.local.launch import REPO
from completions_assets_bench import report, workload
from completions_assets_bench.experiments import measure_experiments
from completions_assets_bench.findings import findings
from completions_assets_bench.machine import machine_facts
from completions_assets_bench.pipeline import check_same_requests
from completions_assets_bench.ratelimited import measure_rate_limits
from completions_assets_bench.sandbox import serving
from completions_assets_bench.throughput import Runner, measure_memory, measure_throughput

MEMORY_RANGES = (workload.MEMORY_SHORT, workload.THROUGHPUT, workload.MEMORY_LONG)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m completions_assets_bench", description=__doc__)
    parser.add_argument("--repeats", type=int, default=3, help="repeats of each throughput variant (medians)")
    parser.add_argument("--output", type=Path, default=REPO / "docs" / "benchmarks.md")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    check_same_requests()
    began = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="completions-bench-") as scratch:
        log(
            f"starting the sandbox ({workload.MAIN.sandbox_days} days x {workload.MAIN.density:,} records/day per provider)"
        )
        with serving(workload.MAIN) as sandbox:
            sandbox.wait_idle()
            runner = Runner(sandbox, Path(scratch), workload.THROUGHPUT)
            log(
                f"throughput: {workload.THROUGHPUT.days} days, latencies {workload.LATENCIES_MS} ms, {args.repeats} repeats"
            )
            throughput = measure_throughput(runner, repeats=args.repeats, log=log)
            log("memory: 7-, 30- and 90-day ranges")
            memory = measure_memory(sandbox, Path(scratch), repeats=args.repeats, ranges=MEMORY_RANGES)
            log("experiments: the old settings (Arrow's mimalloc pool)")
            experiments = measure_experiments(runner, Path(scratch))
        log("rate limits on: Bindbee 5 days x 5,000, Nexudus 2 days x 2,000 (about 65 s)")
        rates, experiments.nexudus_old_margin = measure_rate_limits()
    text = report.render(
        facts=machine_facts(),
        t=throughput,
        memory=memory,
        rates=rates,
        experiments=experiments,
        repeats=args.repeats,
        duration_s=time.monotonic() - began,
        analysis=findings(throughput, memory, rates, experiments),
    )
    print(text)
    if not args.no_write:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(text)
        log(f"written to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
