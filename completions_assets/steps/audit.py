"""The audit of one connection in its step: which stored days no longer match the provider
(Nexudus: probes over spans; Bindbee: re-reads in rotation under a budget), fetched again and
written under the mass-removal guard."""

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field

import pyarrow as pa

from completions_assets.connections import Connection
from completions_assets.http.session import RequestStats
from completions_assets.partitions import PartitionDay, partition_day
from completions_assets.providers.client import ProviderClient
from completions_assets.providers.nexudus import NEXUDUS
from completions_assets.providers.nexudus.audit import audit_spans
from completions_assets.providers.rotation import daily_budget, day_cost, rotation_days, rotation_period
from completions_assets.settings import Settings
from completions_assets.steps.fetching import Outcome, StepFetch, WrittenDay, replace_fetched_day
from completions_assets.steps.metadata import changed_rows, fetch_metadata


@dataclass
class AuditOutcome(Outcome):
    """What the audit of one connection found and did."""

    days_audited: int = 0
    days_fetched: list[dt.date] = field(default_factory=list)
    days: list[WrittenDay] = field(default_factory=list)
    changes: dict[dt.date, dict[str, object]] = field(default_factory=dict)
    probe_requests: int = 0


def audit_days(audit_date: dt.date, settings: Settings, start: dt.date | None) -> list[dt.date]:
    """The days an audit on `audit_date` compares: COMPLETIONS_AUDIT_DAYS back, before the lookback."""
    first = max(audit_date - dt.timedelta(days=settings.audit_days), settings.start_date, start or settings.start_date)
    last = audit_date - dt.timedelta(days=settings.lookback_days + 2)
    return [first + dt.timedelta(days=n) for n in range((last - first).days + 1)]


class _Stored:
    """A connection's stored days, read once each (only the columns the audit compares)."""

    def __init__(self, step: StepFetch, connection: Connection, settings: Settings) -> None:
        self.step, self.connection, self.settings = step, connection, settings
        provider = connection.provider
        self.columns = [provider.id_column, provider.event_column, provider.version_column]
        self.cache: dict[dt.date, pa.Table | None] = {}

    def day(self, day: dt.date) -> pa.Table | None:
        if day not in self.cache:
            start = max(self.settings.start_date, self.connection.start_date or self.settings.start_date)
            if day < start:  # never a partition of this connection: nothing to hold
                self.cache[day] = self.connection.provider.schema.empty_table().select(self.columns)
            else:
                self.cache[day] = self.step.storage.read(self.connection.storage_dir, day, columns=self.columns)
        return self.cache[day]

    def forget(self, day: dt.date) -> None:
        """The day's file was replaced: read it again when next needed."""
        self.cache.pop(day, None)

    def between(self, lo: dt.datetime, hi: dt.datetime) -> pa.Table | None:
        zone = self.settings.zone
        first, last = lo.astimezone(zone).date(), hi.astimezone(zone).date()
        tables = [self.day(first + dt.timedelta(days=n)) for n in range((last - first).days + 1)]
        if any(t is None for t in tables):
            return None
        return pa.concat_tables([t for t in tables if t is not None])


def audit_connection(
    client: ProviderClient,
    outcome: AuditOutcome,
    step: StepFetch,
    settings: Settings,
    audit_date: dt.date,
    budget_share: float,
) -> None:
    """The stored days of `outcome`'s connection compared with its provider, and those that changed
    fetched again and written."""
    connection = outcome.connection
    stored = _Stored(step, connection, settings)
    days = [d for d in audit_days(audit_date, settings, connection.start_date) if stored.day(d) is not None]
    outcome.days_audited = len(days)
    partitions = [partition_day(d, settings.zone) for d in days]
    if client.provider is NEXUDUS:
        stats = RequestStats()
        audit_spans(
            client, _spans(partitions), stored.between, lambda p: _refetch(client, p, outcome, step, stored), stats
        )
        outcome.probe_requests = stats.requests
        return
    costs = {d: day_cost(_rows(stored.day(d)), client.settings.page_size) for d in days}
    rate = getattr(client.settings, "requests_per_minute", 0) or 200
    period = rotation_period(costs, daily_budget(rate, budget_share), settings.audit_days)
    chosen = set(rotation_days(days, audit_date, period))
    for partition in partitions:
        if partition.date in chosen:
            _refetch(client, partition, outcome, step, stored)


def _refetch(
    client: ProviderClient, partition: PartitionDay, outcome: AuditOutcome, step: StepFetch, stored: "_Stored"
) -> bool:
    """The day fetched again and, if it changed, written (under the removal guard); whether it was written."""
    connection = outcome.connection
    outcome.days_fetched.append(partition.date)
    written = False
    for batch in client.fetch_days([partition]):
        previous = step.storage.read(connection.storage_dir, partition.date)
        current = batch.table.cast(connection.provider.schema)
        if previous is not None and previous.equals(current):
            continue  # re-read, unchanged: nothing to write
        changes = changed_rows(
            previous if previous is not None else current.slice(0, 0), current, connection.provider.id_column
        )
        day = replace_fetched_day(connection, batch, fetch_metadata(batch.stats), step, previous)
        outcome.days.append(day)
        outcome.changes[partition.date] = changes
        written = day.refused is None
    if written:
        stored.forget(partition.date)
    return written


def _rows(table: pa.Table | None) -> int:
    return 0 if table is None else table.num_rows


def _spans(days: Sequence[PartitionDay]) -> list[list[PartitionDay]]:
    """`days` cut into spans of contiguous days."""
    spans: list[list[PartitionDay]] = []
    for day in days:
        if spans and spans[-1][-1].end == day.start:
            spans[-1].append(day)
        else:
            spans.append([day])
    return spans
