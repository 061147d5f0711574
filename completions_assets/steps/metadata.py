"""Materialization metadata: what the file holds and what fetching it cost."""

import dagster as dg
import pyarrow as pa

from completions_assets.providers.ranges import FetchStats


def column_schema(schema: pa.Schema) -> dg.TableSchema:
    return dg.TableSchema(columns=[dg.TableColumn(field.name, str(field.type)) for field in schema])


def table_metadata(table: pa.Table, path: str) -> dict[str, object]:
    return {
        "dagster/row_count": table.num_rows,
        "dagster/column_schema": column_schema(table.schema),
        "path": dg.MetadataValue.path(path),
    }


def fetch_metadata(stats: FetchStats) -> dict[str, object]:
    """Cost of the request windows that fetched the day (shared by the days they covered)."""
    facts: dict[str, object] = {
        "requests": stats.requests,
        "pages": stats.pages,
        "retries": stats.retries,
        "rate_limit_wait_seconds": round(stats.rate_wait_seconds, 3),
    }
    if stats.reported_total is not None:
        facts["total_items_reported"] = stats.reported_total
    if stats.unknown_fields:
        # The provider sent fields the schema does not keep: worth a look, never a failure.
        facts["unknown_fields"] = list(stats.unknown_fields)
    return facts


def row_changes(previous: pa.Table | None, current: pa.Table, keys: list[str]) -> dict[str, int]:
    """Rows added and removed (by `keys`) since the file this write replaces."""
    after = _distinct(current, keys)
    if previous is None:
        return {"rows_added": after.num_rows, "rows_removed": 0}
    before = _distinct(previous, keys)
    return {
        "rows_added": after.join(before, keys, join_type="left anti").num_rows,
        "rows_removed": before.join(after, keys, join_type="left anti").num_rows,
    }


def _distinct(table: pa.Table, keys: list[str]) -> pa.Table:
    return table.select(keys).group_by(keys, use_threads=False).aggregate([])


def changed_rows(previous: pa.Table, current: pa.Table, id_column: str, examples: int = 5) -> dict[str, object]:
    """What a re-read found against the stored day: rows added, removed and changed (by id), with a few ids."""
    before = {str(row[id_column]): row for row in previous.to_pylist()}
    after = {str(row[id_column]): row for row in current.to_pylist()}
    added = sorted(after.keys() - before.keys())
    removed = sorted(before.keys() - after.keys())
    changed = sorted(i for i in after.keys() & before.keys() if after[i] != before[i])
    return {
        "rows_added": len(added),
        "rows_removed": len(removed),
        "rows_changed": len(changed),
        "added_ids": added[:examples],
        "removed_ids": removed[:examples],
        "changed_ids": changed[:examples],
    }
