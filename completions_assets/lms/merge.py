"""Every connection's raw rows of a day in the unified schema, deduplicated (docs/contract.md, "Columns").

Each provider's `lms_columns` says where a unified column comes from; a provider with a
`dimension` (Nexudus's enrolments) first has its snapshot's columns added to the raw day. The
merge also collects, once, what reconciliation needs: the distinct ids of each source.
"""

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from completions_assets.connections import Connection
from completions_assets.lms.dedupe import keep_latest
from completions_assets.lms.schema import LMS_KEY, LMS_SCHEMA
from completions_assets.providers.provider import Provider

FILLED_BY_MERGE = ("provider", "connection", "completion_date")


@dataclass(frozen=True)
class MergedDay:
    table: pa.Table  # LMS_SCHEMA, one row per LMS_KEY, in a stable order
    source_ids: dict[str, pa.Array]  # connection label -> distinct ids (as text) of its raw file of the day
    facts: dict[str, int]  # what the providers' `day_facts` counted


def to_lms(connection: Connection, raw: pa.Table, day: dt.date) -> pa.Table:
    """One connection's raw rows of `day` (enriched, if its provider has a dimension) in LMS_SCHEMA.

    A column a raw file lacks (written before the column existed) merges as null.
    """
    provider, rows = connection.provider, raw.num_rows
    columns: dict[str, pa.Array | pa.ChunkedArray] = {
        "provider": pa.array([provider.name] * rows, pa.string()),
        "connection": pa.array([connection.name] * rows, pa.string()),
        "completion_date": pa.array([day] * rows, pa.date32()),
    }
    for field in LMS_SCHEMA:
        if field.name in FILLED_BY_MERGE:
            continue
        source = provider.lms_columns.get(field.name)
        if source is None or (isinstance(source, str) and source not in raw.column_names):
            columns[field.name] = pa.nulls(rows, field.type)
        else:
            values = raw[source] if isinstance(source, str) else source(raw)
            columns[field.name] = values.cast(field.type)
    return pa.Table.from_pydict({name: columns[name] for name in LMS_SCHEMA.names}, schema=LMS_SCHEMA)


def merge_day(
    raws: Mapping[Connection, pa.Table],
    day: dt.date,
    dimensions: Mapping[Connection, pa.Table | None] | None = None,
) -> MergedDay:
    """The unified, deduplicated rows of `day` from each connection's raw file.

    `dimensions` holds the snapshot of each connection whose provider has one (None or absent:
    missing); rows it does not resolve keep those columns null and are counted in `facts`.
    """
    enriched = {c: _enriched(c, raw, (dimensions or {}).get(c)) for c, raw in raws.items()}
    unified_parts = {connection: to_lms(connection, raw, day) for connection, raw in enriched.items()}
    parts = list(unified_parts.values())
    unified = pa.concat_tables(parts) if parts else LMS_SCHEMA.empty_table()
    unique = keep_latest(unified, LMS_KEY, "modified_at")
    order = [(name, "ascending") for name in ("completed_at", *LMS_KEY)]
    facts: dict[str, int] = {}
    for connection, raw in raws.items():
        if connection.provider.dimension is not None:  # its person comes from the dimension alone
            name = f"rows_without_{connection.provider.dimension}"
            facts[name] = facts.get(name, 0) + unified_parts[connection]["person_id"].null_count
        if connection.provider.day_facts is not None:
            for name, count in connection.provider.day_facts(raw).items():
                facts[name] = facts.get(name, 0) + count
    return MergedDay(
        table=unique.take(pc.sort_indices(unique, sort_keys=order)),
        source_ids={c.label: distinct_ids(c.provider, raw) for c, raw in raws.items()},
        facts=facts,
    )


def _enriched(connection: Connection, raw: pa.Table, dimension: pa.Table | None) -> pa.Table:
    enrich = connection.provider.enrich
    return raw if enrich is None else enrich(raw, dimension)


def distinct_ids(provider: Provider, raw: pa.Table) -> pa.Array:
    """The distinct ids of a provider's raw day, as the unified `completion_id` text."""
    ids = pc.unique(raw[provider.id_column].cast(pa.string()))
    return ids.combine_chunks() if isinstance(ids, pa.ChunkedArray) else ids
