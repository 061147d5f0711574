"""A provider's step: every selected connection fetched at once, each in its own turn.

Rate limits are per connector token or account, so connections fetch side by
side on threads (at most `max_concurrent_connections`), each with its own
client, pacer and turn. They share the step's budget of records in flight (`StepRecords`).
Only the step's own thread speaks to Dagster: workers hand it what they wrote
and what they have to say through one queue, in the order it happens.
`each_connection` is that runner for any per-connection work (the enrolment
snapshots use it too); `fetch_connections` is the work of a provider's step.
"""

import queue
import threading
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

import dagster as dg
import pyarrow as pa

from completions_assets.connections import Connection
from completions_assets.partitions import PartitionDay
from completions_assets.providers.checks import CheckOutcome
from completions_assets.providers.client import ProviderClient
from completions_assets.providers.planning import StepRecords
from completions_assets.providers.ranges import DayBatch, FetchStats
from completions_assets.providers.resource import ProviderResource
from completions_assets.steps.metadata import fetch_metadata
from completions_assets.steps.removals import NO_MASS_REMOVAL, Removal, RemovalGuard, judge
from completions_assets.steps.writing import replace_day
from completions_assets.storage import ParquetStorage
from completions_assets.turns import RECHECK_S, PoolSlots, file_turn

OutcomeT = TypeVar("OutcomeT", bound="Outcome")


@dataclass(frozen=True)
class WrittenDay:
    """A day's file as written (its table is not kept) and its checks' outcomes (by check name); a day
    whose removal was refused kept its previous file and is not written."""

    partition: PartitionDay
    metadata: dict[str, Any]
    checks: tuple[tuple[str, CheckOutcome], ...]
    refused: Removal | None = None

    def evaluations(self, key: dg.AssetKey) -> list[dg.AssetCheckEvaluation]:
        """Its checks' results, as the day's partition of `key` reports them."""
        partition = self.partition.date.isoformat()
        return [
            dg.AssetCheckEvaluation(
                asset_key=key, check_name=name, passed=result.passed, metadata=result.metadata(), partition=partition
            )
            for name, result in self.checks
        ]

    def refusal(self, connection: Connection) -> str:
        """What the log says of a day whose removal was refused."""
        assert self.refused is not None
        return (
            f"{connection.label} {self.partition.date}: kept the stored file; the fetch would remove "
            f"{self.refused.removed} of its {self.refused.previous_rows} rows (no_mass_removal; allow_removals applies it)"
        )


@dataclass
class Outcome:
    """What one connection's worker did, and how it ended."""

    connection: Connection
    error: Exception | None = None


@dataclass
class ConnectionFetch(Outcome):
    """A connection's days as written, in order."""

    days: list[WrittenDay] = field(default_factory=list)


@dataclass(frozen=True)
class StepFetch:
    """What every worker of one step shares."""

    days: Sequence[PartitionDay]
    storage: ParquetStorage
    records: StepRecords  # the step's budget of records fetched and not yet written
    checks: frozenset[str]  # names of the provider checks selected
    slots: PoolSlots
    guard: RemovalGuard
    stop: threading.Event = field(default_factory=threading.Event)


def selected_connections(
    context: dg.AssetExecutionContext, by_key: Mapping[dg.AssetKey, Connection]
) -> list[tuple[Connection, ProviderResource]]:
    """The connections whose assets this step materializes, each with its provider's resource as it
    configures it."""
    return [
        (connection, connection.configure(getattr(context.resources, connection.provider.name)))
        for key, connection in by_key.items()
        if key in context.selected_asset_keys
    ]


def fetch_connections(
    connections: Sequence[tuple[Connection, ProviderResource]],
    step: StepFetch,
    concurrency: int,
    log: Callable[[str], None],
) -> Iterator[ConnectionFetch]:
    """Each connection's days fetched and written, as soon as the connection is done (see each_connection)."""

    def fetch(client: ProviderClient, outcome: ConnectionFetch) -> None:
        client.step_records = step.records
        for batch, facts in _days(outcome.connection, client, step.days):
            outcome.days.append(write_fetched_day(outcome.connection, batch, facts, step))

    yield from each_connection(connections, step.slots, step.stop, concurrency, log, ConnectionFetch, fetch)


def each_connection(
    connections: Sequence[tuple[Connection, ProviderResource]],
    slots: PoolSlots,
    stop: threading.Event,
    concurrency: int,
    log: Callable[[str], None],
    outcome: Callable[[Connection], OutcomeT],
    work: Callable[[ProviderClient, OutcomeT], None],
) -> Iterator[OutcomeT]:
    """`work` done for each connection with its own client, in its turn, at most `concurrency` at
    once; each outcome as soon as it is done. `log` is called on this thread only.

    A connection starts once a worker is free and its pool slot is claimed; one
    whose slot another run or step holds waits (and says so) while the others go ahead.
    When the caller stops (the step is terminated), every worker stops at its
    next page or wait and requests in flight are cut.
    """
    said: queue.Queue[str | OutcomeT] = queue.Queue()
    clients: set[ProviderClient] = set()
    lock = threading.Lock()

    def run(connection: Connection, resource: ProviderResource) -> None:
        done = outcome(connection)
        try:
            client = resource.create_client()  # an unset credential fails here, before any request
        except Exception as exc:
            done.error = exc
            said.put(done)
            return
        with lock:
            clients.add(client)
        try:
            with client, file_turn(connection.pool, said.put, stop):
                work(client, done)
        except Exception as exc:  # one connection's failure never holds back the others
            done.error = exc
        finally:
            with lock:
                clients.discard(client)
            said.put(done)

    waiting = deque(connections)
    told: set[str] = set()
    running = 0
    concurrency = max(1, min(concurrency, len(connections)))
    pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="connection")
    try:
        while waiting or running:
            for _ in range(len(waiting)):
                if running >= concurrency:
                    break
                connection, resource = waiting.popleft()
                if slots.claim(connection.pool):
                    pool.submit(run, connection, resource)
                    running += 1
                    continue
                waiting.append((connection, resource))
                if connection.pool not in told:
                    told.add(connection.pool)
                    log(f"connection {connection.pool} waits for its turn: another run or step holds its pool slot")
            try:
                # Slots held by others are claimed again now and then; otherwise, wait for a worker.
                item = said.get(timeout=RECHECK_S if waiting and running < concurrency else None)
            except queue.Empty:
                continue
            if isinstance(item, str):
                log(item)
                continue
            running -= 1
            slots.free(item.connection.pool)
            yield item
    finally:
        stop.set()  # ends file-lock waits; a finished step has no worker left to stop
        with lock:
            for client in list(clients):
                client.interrupt()  # ends its waits and cuts its requests in flight
        pool.shutdown(wait=True, cancel_futures=True)
        slots.free_all()


def _days(
    connection: Connection, client: ProviderClient, days: Sequence[PartitionDay]
) -> Iterator[tuple[DayBatch, dict[str, Any]]]:
    """Fetched days; days before the connection's start date are empty and cost no request."""
    start = connection.start_date
    before = [day for day in days if start is not None and day.date < start]
    for day in before:
        empty = DayBatch(day, connection.provider.schema.empty_table(), FetchStats(0, 0, 0, 0.0, None))
        yield empty, {"before_connection_start": str(start)}
    for batch in client.fetch_days(days[len(before) :]):
        yield batch, fetch_metadata(batch.stats)


def write_fetched_day(connection: Connection, batch: DayBatch, facts: dict[str, Any], step: StepFetch) -> WrittenDay:
    """The day's file replaced by `batch`, unless that would remove too much of it (see removals.py)."""
    previous = step.storage.read(connection.storage_dir, batch.day.date, columns=[connection.provider.id_column])
    return replace_fetched_day(connection, batch, facts, step, previous)


def replace_fetched_day(
    connection: Connection, batch: DayBatch, facts: dict[str, Any], step: StepFetch, previous: pa.Table | None
) -> WrittenDay:
    """`write_fetched_day` with the stored day already read (None: there is none); only its id column is used."""
    provider, key = connection.provider, [connection.provider.id_column]
    removal = judge(previous, batch.table, provider.id_column, step.guard)
    checks = tuple((c.name, c.evaluate(batch, provider.id_column)) for c in provider.checks if c.name in step.checks)
    if NO_MASS_REMOVAL in step.checks:
        checks += ((NO_MASS_REMOVAL, removal.outcome()),)
    if removal.refused:
        return WrittenDay(batch.day, {}, checks, refused=removal)
    metadata = replace_day(step.storage, connection.storage_dir, batch.day, batch.table, provider.schema, key, previous)
    return WrittenDay(batch.day, {**metadata, **facts, **removal.metadata()}, checks)
