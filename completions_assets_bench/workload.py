"""The fixed workloads of `make bench` and the request windows both fetch paths walk.

Everything here is plain data: the sandbox's arguments, the date ranges, how a
range is split into sweeps (the pipeline's `sweep_days`), and the exact query
windows of each sweep, so the bare ceiling asks the sandbox for exactly what
the pipeline asks for.
"""

import datetime as dt
import math
from dataclasses import dataclass

PROVIDERS = ("bindbee", "nexudus")
PAGE_SIZE = 100
SEED = 7  # with seed 7 about one day in nine is empty per provider (the sandbox's design)
# The pipeline's defaults (ProviderResource fields, nexudus DEFAULT_MARGIN_MINUTES), repeated
# here so the bare ceiling imports no Dagster; pipeline.check_same_requests verifies them.
SWEEP_DAYS = 8
CONCURRENT_SWEEPS = 4
NEXUDUS_MARGIN = dt.timedelta(minutes=14 * 60 + 1)
_MICROSECOND = dt.timedelta(microseconds=1)
_MINUTE = dt.timedelta(minutes=1)
UTC = dt.timezone.utc


@dataclass(frozen=True)
class Range:
    """Days `first`..`last` (both included) served at `density` records per day."""

    first: dt.date
    days: int

    @property
    def last(self) -> dt.date:
        return self.first + dt.timedelta(days=self.days - 1)

    @property
    def cli(self) -> str:
        return f"{self.first.isoformat()}...{self.last.isoformat()}"

    def sweeps(self) -> list[tuple[dt.datetime, dt.datetime]]:
        """[start, end) of each sweep, split as ProviderClient.fetch_days splits a range (UTC days)."""
        out = []
        for offset in range(0, self.days, SWEEP_DAYS):
            first = self.first + dt.timedelta(days=offset)
            count = min(SWEEP_DAYS, self.days - offset)
            start = dt.datetime.combine(first, dt.time(), tzinfo=UTC)
            out.append((start, start + dt.timedelta(days=count)))
        return out


@dataclass(frozen=True)
class Workload:
    name: str
    sandbox_first: dt.date
    sandbox_days: int
    density: int  # records per day per provider (empty days aside)


# One sandbox serves the throughput runs (30 days) and the memory runs (7 and 90
# days) at 2,000 records/day, with data beyond every range for Nexudus's margins.
MAIN = Workload("main", dt.date(2024, 1, 1), 100, 2_000)
THROUGHPUT = Range(dt.date(2024, 2, 1), 30)
MEMORY_SHORT = Range(dt.date(2024, 2, 1), 7)
MEMORY_LONG = Range(dt.date(2024, 1, 4), 90)
# Rate limits on: one sandbox per provider, as the two densities differ. With seed 7
# none of these days is empty for its provider.
RATE_BINDBEE = Workload("rate-bindbee", dt.date(2024, 1, 1), 5, 5_000)
RATE_NEXUDUS = Workload("rate-nexudus", dt.date(2024, 1, 1), 2, 2_000)
RATE_BINDBEE_RANGE = Range(RATE_BINDBEE.sandbox_first, RATE_BINDBEE.sandbox_days)
RATE_NEXUDUS_RANGE = Range(RATE_NEXUDUS.sandbox_first, RATE_NEXUDUS.sandbox_days)
LATENCIES_MS = (0, 20)


def sandbox_args(workload: Workload, *, rate_limits: bool = False) -> list[str]:
    args = [
        "--seed",
        str(SEED),
        "--start-date",
        workload.sandbox_first.isoformat(),
        "--days",
        str(workload.sandbox_days),
        "--records-per-day",
        str(workload.density),
    ]
    return args + ["--rate-limits"] if rate_limits else args


def bindbee_params(start: dt.datetime, end: dt.datetime) -> dict[str, str]:
    """The pipeline's sweep query: inclusive bounds, so the end is minus 1 µs."""

    def fmt(moment: dt.datetime) -> str:
        return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")

    return {"page_size": str(PAGE_SIZE), "completed_at_from": fmt(start), "completed_at_to": fmt(end - _MICROSECOND)}


def nexudus_params(start: dt.datetime, end: dt.datetime) -> dict[str, str]:
    """The pipeline's sweep query: the window widened by the margin, whole minutes."""
    low = (start - NEXUDUS_MARGIN).replace(second=0, microsecond=0)
    high = end + NEXUDUS_MARGIN
    if high.second or high.microsecond:
        high = high.replace(second=0, microsecond=0) + _MINUTE
    return {
        "page": "1",
        "size": str(PAGE_SIZE),
        "orderBy": "CreatedOn",
        "dir": "1",
        "from_CourseCompletedLesson_CreatedOn": low.strftime("%Y-%m-%dT%H:%M"),
        "to_CourseCompletedLesson_CreatedOn": high.strftime("%Y-%m-%dT%H:%M"),
    }


def minimum_requests(records_per_sweep: list[int]) -> int:
    """ceil(records the sweep window returns / page size) per sweep; an empty window still costs one."""
    return sum(max(1, math.ceil(n / PAGE_SIZE)) for n in records_per_sweep)
