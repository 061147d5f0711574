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

import dagster as dg

from completions_assets.connections import Connection
from completions_assets.keys import GROUP, LMS, dimension_key
from completions_assets.providers.nexudus.enrolments import MEMBERS
from completions_assets.steps.fetching import each_connection, selected_connections
from completions_assets.steps.members import CHECKS, SnapshotFetch, fetch_snapshot, written_snapshot
from completions_assets.steps.writing import run_assets
from completions_assets.storage import ParquetStorage
from completions_assets.turns import PoolSlots

CONCURRENT_CONNECTIONS = 32  # as a provider step's default max_concurrent_connections


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
        backfill_policy=dg.BackfillPolicy.single_run(),
    )
    def nexudus_course_members(context: dg.AssetExecutionContext) -> Iterator[dg.MaterializeResult]:
        storage: ParquetStorage = context.resources.storage
        selected = selected_connections(context, by_key)
        slots = PoolSlots(context.instance, context.run.run_id, MEMBERS, (c.pool for c, _ in selected))
        failed: list[str] = []
        # Each account at once, in its turn (its rate limits are one budget with its completions).
        for outcome in each_connection(
            selected, slots, threading.Event(), CONCURRENT_CONNECTIONS, context.log.info, SnapshotFetch, fetch_snapshot
        ):
            if outcome.error is not None or outcome.snapshot is None:
                failed.append(f"{outcome.connection.label}: {outcome.error}")
                context.log.error(f"{outcome.connection.label} course members failed: {outcome.error}")
                continue
            yield written_snapshot(context, storage, key_of[outcome.connection], outcome.connection, outcome.snapshot)
        if failed and LMS not in run_assets(context):
            raise dg.Failure(f"course members of {len(failed)} connections failed: " + "; ".join(failed))

    return nexudus_course_members
