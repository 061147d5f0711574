"""What the two defaults adopted from this benchmark bought, measured in the same invocation.

The main tables measure the package as shipped; these runs put back the old
setting, one change at a time, for comparison.

Memory: the package sets `ARROW_DEFAULT_MEMORY_POOL=system` (completions_assets
/__init__.py, only when unset), so pyarrow allocates with the C library's
malloc. The old setting is pyarrow's own default, mimalloc, which keeps freed
pages in per-thread heaps, so a process that parsed on several threads stays
larger than the data it holds; it is put back with
`ARROW_DEFAULT_MEMORY_POOL=mimalloc`.

Pacing: the shipped `rate_margin_ms` is 1; the Nexudus run again with the old
10 (taken by ratelimited.measure_rate_limits, which owns the rate-limited
sandboxes).
"""

from dataclasses import dataclass
from pathlib import Path

from completions_assets_bench import workload
from completions_assets_bench.ratelimited import RateResult
from completions_assets_bench.throughput import MemoryRun, Runner, Sample, measure_memory

OLD_POOL = {"ARROW_DEFAULT_MEMORY_POOL": "mimalloc"}


@dataclass
class Experiments:
    dagster_old_pool: Sample  # (c), 30 days, no added latency, mimalloc
    memory_old_pool: list[MemoryRun]  # (b), 7 and 90 days, mimalloc
    nexudus_old_margin: RateResult | None = None  # rate limits on, the old 10 ms pacing margin


def measure_experiments(runner: Runner, scratch: Path) -> Experiments:
    runner.sandbox.set_latency(0)
    dagster = runner.c(0, extra_env=OLD_POOL)
    memory = measure_memory(
        runner.sandbox, scratch, repeats=1, ranges=(workload.MEMORY_SHORT, workload.MEMORY_LONG), env=OLD_POOL
    )
    return Experiments(dagster, memory)
