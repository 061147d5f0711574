"""`nexudus_course_members/<connection>`: each Nexudus account's enrolments, a full snapshot
replaced on every run, and its checks.

One step fetches every Nexudus connection's snapshot, all at once, each in the connection's turn
(`each_connection`, as a provider's step does). `lms_completions` reads them to name the
person and the course of each completed lesson; a snapshot that cannot be fetched does not keep
the merge from running (it resolves what it can), so a failure here fails the run only when the
run merges nothing.
"""

import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import dagster as dg

from completions_assets.connections import Connection
from completions_assets.defs.dimensions import dimension_dir, dimension_key
from completions_assets.defs.fetching import Outcome, each_connection, selected_connections
from completions_assets.defs.lms_asset import GROUP, LMS
from completions_assets.defs.metadata import table_metadata
from completions_assets.defs.writing import SINGLE_RUN
from completions_assets.providers.checks import CheckOutcome, duplicated_keys
from completions_assets.providers.client import ProviderClient
from completions_assets.providers.nexudus import NEXUDUS
from completions_assets.providers.nexudus.enrolments import MEMBERS
from completions_assets.providers.nexudus.members import MEMBERS_SCHEMA, MembersSnapshot, fetch_members
from completions_assets.storage import ParquetStorage
from completions_assets.turns import PoolSlots

CONCURRENT_CONNECTIONS = 32  # as a provider step's default max_concurrent_connections
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


def dimension_assets(connections: Sequence[Connection]) -> list[dg.AssetsDefinition]:
    """The snapshot assets of these connections: one step over every Nexudus connection, if any."""
    nexudus = [c for c in connections if c.provider.dimension == MEMBERS]
    return [members_asset(nexudus)] if nexudus else []


def members_asset(connections: Sequence[Connection]) -> dg.AssetsDefinition:
    """One unpartitioned asset per Nexudus connection, all fetched in one step."""
    by_key = {key: c for c in connections if (key := dimension_key(c)) is not None}
    key_of = {connection: key for key, connection in by_key.items()}
    specs = [
        dg.AssetSpec(
            key,
            group_name=GROUP,
            description=f"Enrolments (CourseMember) of Nexudus connection `{c.name}`: a full snapshot.",
            kinds={"nexudus", "parquet"},
            tags={"provider": "nexudus"},
            skippable=True,  # a failed connection yields nothing; the merge still runs
        )
        for key, c in by_key.items()
    ]
    check_specs = [
        dg.AssetCheckSpec(name, asset=key, description=text) for key in by_key for name, text in CHECKS.items()
    ]

    @dg.multi_asset(
        name=MEMBERS,
        specs=specs,
        check_specs=check_specs,
        required_resource_keys={*(c.provider.name for c in connections), "storage"},
        can_subset=True,
        # Unpartitioned, but a range run of the CLI (`--select '*' --partition-range`) needs every asset's policy single-run.
        backfill_policy=SINGLE_RUN,
    )
    def nexudus_course_members(context: dg.AssetExecutionContext) -> Iterator[dg.MaterializeResult]:
        storage: ParquetStorage = context.resources.storage
        selected = selected_connections(context, by_key)
        slots = PoolSlots(context.instance, context.run.run_id, MEMBERS, (c.pool for c, _ in selected))
        failed: list[str] = []
        # Each account at once, in its turn (its rate limits are one budget with its completions).
        for outcome in each_connection(
            selected, slots, threading.Event(), CONCURRENT_CONNECTIONS, context.log.info, SnapshotFetch, _fetch
        ):
            if outcome.error is not None or outcome.snapshot is None:
                failed.append(f"{outcome.connection.label}: {outcome.error}")
                context.log.error(f"{outcome.connection.label} course members failed: {outcome.error}")
                continue
            yield _written(context, storage, key_of[outcome.connection], outcome.connection, outcome.snapshot)
        if failed and LMS not in context.op_execution_context.job_def.asset_layer.executable_asset_keys:
            raise dg.Failure(f"course members of {len(failed)} connections failed: " + "; ".join(failed))

    return nexudus_course_members


@dataclass
class SnapshotFetch(Outcome):
    snapshot: MembersSnapshot | None = None


def _fetch(client: ProviderClient, outcome: SnapshotFetch) -> None:
    assert client.provider is NEXUDUS  # the connections of this step are Nexudus accounts
    outcome.snapshot = fetch_members(client)


def _written(
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
    context.log.info(f"{connection.label}: {snapshot.table.num_rows} course members, {stats.requests} requests")
    return dg.MaterializeResult(asset_key=key, metadata=metadata, check_results=checks)
