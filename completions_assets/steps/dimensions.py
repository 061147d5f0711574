"""Per-connection snapshot assets a provider declares as its `dimension` (Nexudus: the
enrolments, `nexudus_course_members/<connection>`): their keys and files, and what the merge
says about them (missing, or taken before the day it merges ended)."""

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

import dagster as dg
import pyarrow as pa

from completions_assets.connections import Connection
from completions_assets.keys import dimension_key
from completions_assets.partitions import PartitionDay
from completions_assets.storage import ParquetStorage


def dimension_dir(connection: Connection) -> str:
    """Where a connection's snapshot lives under the storage root."""
    return f"{connection.provider.dimension}/connection={connection.name}"


def read_dimensions(storage: ParquetStorage, connections: Sequence[Connection]) -> dict[Connection, pa.Table | None]:
    """Each connection's dimension snapshot (None: never written), for connections whose provider has one."""
    return {c: storage.read(dimension_dir(c), None) for c in connections if c.provider.dimension is not None}


def snapshot_times(
    instance: dg.DagsterInstance, snapshots: Mapping[Connection, pa.Table | None]
) -> dict[Connection, dt.datetime | None]:
    """When each snapshot was last materialized (None: unknown), read from the instance (the
    files hold no time, so a re-run writes the same bytes)."""
    taken: dict[Connection, dt.datetime | None] = {}
    for connection in snapshots:
        key = dimension_key(connection)
        event = instance.get_latest_materialization_event(key) if key is not None else None
        taken[connection] = None if event is None else dt.datetime.fromtimestamp(event.timestamp, dt.timezone.utc)
    return taken


def snapshot_facts(
    snapshots: Mapping[Connection, pa.Table | None],
    taken: Mapping[Connection, dt.datetime | None],
    day: PartitionDay,
) -> dict[str, Any]:
    """Merge metadata: the snapshots missing, or taken before the day ended (later enrolments not in them)."""
    facts: dict[str, list[str]] = {}
    for connection, table in snapshots.items():
        when = taken.get(connection)
        if table is None:
            facts.setdefault(f"{connection.provider.dimension}_missing", []).append(connection.label)
        elif when is not None and when < day.end:
            facts.setdefault(f"{connection.provider.dimension}_older_than_day", []).append(connection.label)
    return dict(facts)
