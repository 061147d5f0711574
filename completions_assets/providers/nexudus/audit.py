"""Which stored Nexudus days no longer match the API, found with one-record pages.

Nexudus deletes leave no tombstone, but the list endpoint reports `TotalItems`
for any `CreatedOn` span and sorts by `CreatedOn` or `UpdatedOn`. A probe of a
span is three one-record pages over the span's widened request window: the
first and the last record by `CreatedOn` (with `TotalItems`) and the latest by
`UpdatedOn`. The filter's zone is unknown, so which records near the window's
edges it holds is unknown too; the served first and last records pin it down:
the stored rows between them must be exactly `TotalItems` many, no stored row
of the span may lie outside them, and none served may be newer than the newest
stored. A span that fails is halved until single days remain: those are the
days to fetch again.
"""

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from completions_assets.days import PartitionDay
from completions_assets.http.pagination import fetch_page
from completions_assets.http.session import RequestStats
from completions_assets.providers.client import ProviderClient
from completions_assets.providers.nexudus.lessons import NEXUDUS
from completions_assets.providers.records import RecordLocator

# A stored day's ids and times (id, created_on, updated_on), or None when it was never written.
StoredDay = Callable[[dt.date], pa.Table | None]


@dataclass(frozen=True)
class ProbeAnswer:
    total: int
    first_created: dt.datetime | None
    last_created: dt.datetime | None
    latest_updated: dt.datetime | None


def probe(client: ProviderClient, start: dt.datetime, end: dt.datetime, stats: RequestStats) -> ProbeAnswer:
    """Three one-record pages over [start, end) widened as a fetch widens it."""
    query = {"page": "1", "size": "1", **NEXUDUS.time_filter.params(start, end, NEXUDUS.widening(client.settings))}
    first, total = _one(client, {**query, "orderBy": "CreatedOn", "dir": "1"}, stats)
    last, _ = _one(client, {**query, "orderBy": "CreatedOn", "dir": "-1"}, stats)
    latest, _ = _one(client, {**query, "orderBy": "UpdatedOn", "dir": "-1"}, stats)
    return ProbeAnswer(
        total,
        None if first is None else first["created_on"],
        None if last is None else last["created_on"],
        None if latest is None else latest["updated_on"],
    )


def _one(client: ProviderClient, params: dict[str, str], stats: RequestStats) -> tuple[dict | None, int]:
    page = fetch_page(client.session, NEXUDUS.path, params, 1, NEXUDUS.paginator(NEXUDUS.name), stats)
    locator = RecordLocator(NEXUDUS.name)
    locator.add_page(page.label, len(page.records))
    rows = client.parse(page.records, locator).select(["created_on", "updated_on"]).to_pylist()
    total = page.payload.get("TotalItems")
    return (rows[0] if rows else None), int(total) if isinstance(total, int) else len(rows)


def matches(answer: ProbeAnswer, stored: pa.Table, start: dt.datetime, end: dt.datetime) -> bool:
    """Whether the stored rows (every day the widened window can reach) agree with the probe of [start, end)."""
    created = stored["created_on"]
    inside = pc.and_(pc.greater_equal(created, _at(start, created)), pc.less(created, _at(end, created)))
    if answer.first_created is None or answer.last_created is None:
        return answer.total == 0 and not pc.any(inside).as_py()
    lo, hi = _at(answer.first_created, created), _at(answer.last_created, created)
    between = pc.and_(pc.greater_equal(created, lo), pc.less_equal(created, hi))
    outside = pc.and_(inside, pc.invert(between))
    if pc.any(outside).as_py() or pc.sum(between).as_py() != answer.total:
        return False
    newest = pc.max(stored.filter(between)["updated_on"]).as_py()
    return answer.latest_updated is None or (newest is not None and answer.latest_updated <= newest)


def _at(moment: dt.datetime, like: pa.ChunkedArray) -> pa.Scalar:
    return pa.scalar(moment, like.type)


def changed_days(
    client: ProviderClient,
    days: Sequence[PartitionDay],
    stored_between: Callable[[dt.datetime, dt.datetime], pa.Table | None],
    stats: RequestStats,
) -> list[PartitionDay]:
    """The contiguous `days` whose stored rows no longer match, by halving the spans that fail.

    `stored_between(lo, hi)` gives the stored rows of every day overlapping [lo, hi), or None
    when one of them was never written: such a single day is taken as changed (fetched again).
    """
    if not days:
        return []
    start, end = days[0].start, days[-1].end
    reach = dt.timedelta(minutes=2 * client.settings.margin_minutes + 2)
    stored = stored_between(start - reach, end + reach)
    if stored is not None and matches(probe(client, start, end, stats), stored, start, end):
        return []
    if len(days) == 1:
        return list(days)
    half = len(days) // 2
    return changed_days(client, days[:half], stored_between, stats) + changed_days(
        client, days[half:], stored_between, stats
    )


def audit_spans(
    client: ProviderClient,
    spans: Sequence[Sequence[PartitionDay]],
    stored_between: Callable[[dt.datetime, dt.datetime], pa.Table | None],
    refetch: Callable[[PartitionDay], bool],
    stats: RequestStats,
) -> None:
    """Every span (contiguous stored days) probed, and each day found changed passed to `refetch`,
    which fetches it again and says whether it changed (then `stored_between` must see the new rows).

    A change near a day's edge also shows in its neighbours' probes (their windows are widened):
    once a changed day is written, the days still suspected are probed again against it.
    """
    suspects = [day for span in spans for day in changed_days(client, span, stored_between, stats)]
    while suspects:
        if refetch(suspects.pop(0)):
            suspects = [day for day in suspects for _ in changed_days(client, [day], stored_between, stats)]
