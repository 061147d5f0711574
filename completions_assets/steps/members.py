"""A Nexudus account's enrolment snapshot in its step: fetched, checked and written."""

from dataclasses import dataclass
from typing import Any

import dagster as dg

from completions_assets.connections import Connection
from completions_assets.providers.checks import CheckOutcome, duplicated_keys
from completions_assets.providers.client import ProviderClient
from completions_assets.providers.nexudus import NEXUDUS
from completions_assets.providers.nexudus.members import MEMBERS_SCHEMA, MembersSnapshot, fetch_members
from completions_assets.steps.dimensions import dimension_dir
from completions_assets.steps.fetching import Outcome
from completions_assets.steps.metadata import table_metadata
from completions_assets.storage import ParquetStorage

CHECKS = {
    "member_ids_unique": "No enrolment id occurs twice in the snapshot.",
    "member_count_matches_total_items": "The snapshot holds as many enrolments as the first page's TotalItems.",
}


def evaluate(snapshot: MembersSnapshot) -> dict[str, CheckOutcome]:
    """Each check's outcome on a fetched snapshot."""
    rows, total = snapshot.table.num_rows, snapshot.reported_total
    return {
        "member_ids_unique": duplicated_keys(snapshot.table, ["id"]),
        "member_count_matches_total_items": CheckOutcome(
            abs((total or 0) - rows) if total != rows else 0, details={"total_items": total, "rows": rows}
        ),
    }


@dataclass
class SnapshotFetch(Outcome):
    snapshot: MembersSnapshot | None = None


def fetch_snapshot(client: ProviderClient, outcome: SnapshotFetch) -> None:
    assert client.provider is NEXUDUS  # the connections of this step are Nexudus accounts
    outcome.snapshot = fetch_members(client)


def written_snapshot(
    context: dg.AssetExecutionContext,
    storage: ParquetStorage,
    key: dg.AssetKey,
    connection: Connection,
    snapshot: MembersSnapshot,
) -> dg.MaterializeResult:
    path = storage.write(dimension_dir(connection), None, snapshot.table, MEMBERS_SCHEMA)
    stats = snapshot.stats
    checks = [
        dg.AssetCheckResult(asset_key=key, check_name=name, passed=outcome.passed, metadata=outcome.metadata())
        for name, outcome in evaluate(snapshot).items()
        if dg.AssetCheckKey(key, name) in context.selected_asset_check_keys
    ]
    persons = snapshot.table["coworker_id"].unique()
    metadata: dict[str, Any] = {
        **table_metadata(snapshot.table, path),
        "people": len(persons),
        "total_items_reported": snapshot.reported_total,
        "requests": stats.requests,
        "pages": stats.pages,
        "retries": stats.retries,
    }
    return dg.MaterializeResult(asset_key=key, metadata=metadata, check_results=checks)
