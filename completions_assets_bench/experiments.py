"""What would close two of the gaps, measured in the same invocation, one change at a time.

Memory: Arrow's default memory pool (mimalloc) keeps freed pages in per-thread
heaps, so a process that parsed on several threads stays larger than the data
it holds. `ARROW_DEFAULT_MEMORY_POOL=system` switches pyarrow to the C
library's allocator for the whole process.

Pacing: the Nexudus run again with `rate_margin_ms=1` instead of 10 (taken by
ratelimited.measure_rate_limits, which owns the rate-limited sandboxes).
"""

from dataclasses import dataclass
from pathlib import Path

from completions_assets_bench import workload
from completions_assets_bench.ratelimited import RateResult
from completions_assets_bench.throughput import MemoryRun, Runner, Sample, measure_memory

SYSTEM_POOL = {"ARROW_DEFAULT_MEMORY_POOL": "system"}


@dataclass
class Experiments:
    dagster_system_pool: Sample  # (c), 30 days, no added latency
    memory_system_pool: list[MemoryRun]  # (b), 7 and 90 days
    nexudus_margin: RateResult | None = None  # rate limits on, 1 ms pacing margin


def measure_experiments(runner: Runner, scratch: Path) -> Experiments:
    runner.sandbox.set_latency(0)
    dagster = runner.c(0, extra_env=SYSTEM_POOL)
    memory = measure_memory(runner.sandbox, scratch, repeats=1, ranges=(workload.MEMORY_SHORT, workload.MEMORY_LONG),
                            env=SYSTEM_POOL)
    return Experiments(dagster, memory)
