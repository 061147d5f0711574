"""The fixed workloads of `make bench`, the ceiling's request windows, and the minimum requests.

Everything here is plain data (no Dagster): the sandboxes' arguments, the date
ranges, and the query windows the bare ceiling asks for. The pipeline chooses
its own windows; the benchmark reads them back from the sandbox's query log
(`requested_windows`) and computes the minimum for exactly those windows.
"""

import datetime as dt
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

PROVIDERS = ("bindbee", "nexudus")
PAGE_SIZE = 100  # the ceiling's page size: the largest Bindbee allows
SEED = 7  # with seed 7 about one day in nine is empty per provider (the sandbox's design)
# A Nexudus window is widened by 14 h 1 min on each side (the filter's zone is undocumented).
NEXUDUS_MARGIN = dt.timedelta(minutes=14 * 60 + 1)
_MICROSECOND = dt.timedelta(microseconds=1)
_MILLISECOND = dt.timedelta(milliseconds=1)
_MINUTE = dt.timedelta(minutes=1)
UTC = dt.timezone.utc


@dataclass(frozen=True)
class Range:
    """Days `first`..`last` (both included)."""

    first: dt.date
    days: int

    @property
    def last(self) -> dt.date:
        return self.first + dt.timedelta(days=self.days - 1)

    @property
    def cli(self) -> str:
        return f"{self.first.isoformat()}...{self.last.isoformat()}"

    @property
    def start(self) -> dt.datetime:
        return dt.datetime.combine(self.first, dt.time(), tzinfo=UTC)

    @property
    def end(self) -> dt.datetime:
        return self.start + dt.timedelta(days=self.days)

    def day_bounds(self) -> list[tuple[dt.datetime, dt.datetime]]:
        """[start, end) of each UTC day."""
        return [(self.start + dt.timedelta(days=i), self.start + dt.timedelta(days=i + 1)) for i in range(self.days)]


@dataclass(frozen=True)
class Workload:
    name: str
    sandbox_first: dt.date
    sandbox_days: int
    density: int  # records per day per provider (empty days aside)

    def serves(self, days: Range) -> bool:
        """Whether the sandbox holds a day on each side of `days` (Nexudus's widened windows reach into them)."""
        return self.sandbox_first < days.first and days.last < self.sandbox_first + dt.timedelta(
            days=self.sandbox_days - 1
        )


# The 600,000-record workload (30 days x 10,000 records/day per provider) and the 10,000/day
# memory points (7, 8 and 90 days) share one sandbox, with a day beyond every range.
DENSE = Workload("dense", dt.date(2024, 1, 1), 92, 10_000)
THROUGHPUT = Range(dt.date(2024, 2, 1), 30)
MEMORY_7 = Range(dt.date(2024, 2, 1), 7)
MEMORY_8 = Range(dt.date(2024, 2, 1), 8)
MEMORY_90 = Range(dt.date(2024, 1, 2), 90)
# The throughput range at 100 records a day: what a Dagster run costs with next to nothing to fetch.
FLOOR = Workload("floor", dt.date(2024, 1, 31), 32, 100)
# The other densities of the 8-day memory point, one small sandbox each.
SPARSE = Workload("sparse", dt.date(2024, 1, 31), 10, 2_000)
DENSEST = Workload("densest", dt.date(2024, 1, 31), 10, 50_000)
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


def _fmt_bindbee(moment: dt.datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def bindbee_params(start: dt.datetime, end: dt.datetime) -> dict[str, str]:
    """An exact Bindbee window: inclusive bounds, so the end is minus 1 µs."""
    return {
        "page_size": str(PAGE_SIZE),
        "completed_at_from": _fmt_bindbee(start),
        "completed_at_to": _fmt_bindbee(end - _MICROSECOND),
    }


def nexudus_params(start: dt.datetime, end: dt.datetime) -> dict[str, str]:
    """A Nexudus window widened by the margin, in whole minutes (page 1)."""
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


# ----- the windows a run requested, read back from the sandbox's query log -----


@dataclass(frozen=True)
class Window:
    """One request window as the sandbox reads it: records with event time in [start, end) (UTC ISO 8601)."""

    provider: str
    start: str
    end: str
    page_size: int


def _parse(text: str) -> dt.datetime:
    moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)  # the bench's sandboxes filter Nexudus in UTC


def window_of(provider: str, params: Mapping[str, str]) -> Window | None:
    """The window a request (any page) reads; None if it names no time filter.

    Bindbee's bounds are inclusive at millisecond precision, Nexudus's `to` is inclusive through
    its minute (the sandbox's own reading of both filters)."""
    if provider == "bindbee":
        if "completed_at_from" not in params or "completed_at_to" not in params:
            return None
        low = _parse(params["completed_at_from"])
        high = _parse(params["completed_at_to"])
        high = high.replace(microsecond=high.microsecond // 1000 * 1000) + _MILLISECOND
        return Window(provider, low.isoformat(), high.isoformat(), int(params.get("page_size") or 100))
    names = ("from_CourseCompletedLesson_CreatedOn", "to_CourseCompletedLesson_CreatedOn")
    if not all(name in params for name in names):
        return None
    low = _parse(params[names[0]])
    high = _parse(params[names[1]]) + _MINUTE
    return Window(provider, low.isoformat(), high.isoformat(), int(params.get("size") or 25))


def first_page_window(provider: str, params: Mapping[str, str]) -> Window | None:
    """The window of a first-page request (Bindbee without `cursor`, Nexudus page 1); None for a later page."""
    later = bool(params.get("cursor")) if provider == "bindbee" else int(params.get("page") or 1) != 1
    return None if later else window_of(provider, params)


def requested_windows(queries: Iterable[Mapping]) -> dict[str, list[Window]]:
    """Per provider, the windows of the first-page requests in `queries` (the sandbox's /_sandbox/queries)."""
    out: dict[str, list[Window]] = {p: [] for p in PROVIDERS}
    for query in queries:
        window = first_page_window(query["provider"], query["params"])
        if window is not None:
            out[window.provider].append(window)
    return out


def requests_per_window(queries: Iterable[Mapping]) -> dict[str, dict[Window | None, int]]:
    """Per provider, the requests (every page) made for each window, in the order first asked for."""
    out: dict[str, dict[Window | None, int]] = {p: {} for p in PROVIDERS}
    for query in queries:
        window = window_of(query["provider"], query["params"])
        counts = out[query["provider"]]
        counts[window] = counts.get(window, 0) + 1
    return out


def needed(records: int, page_size: int) -> int:
    """Requests a full walk of a window needs: ceil(records / page size), an empty window one."""
    return max(1, math.ceil(records / page_size))


def minimum_requests(window_records: Iterable[tuple[int, int]]) -> int:
    """Sum over windows of max(1, ceil(records / page size)) for (records, page size) pairs."""
    return sum(max(1, math.ceil(n / size)) for n, size in window_records)
