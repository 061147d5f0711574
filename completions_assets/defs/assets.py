"""The daily-partitioned assets of group `lms` (SPEC section 7), built from the provider declarations.

Each asset is a subsettable `multi_asset` so that its checks can be yielded as
one `AssetCheckEvaluation` per partition, also in range runs; a plain `@asset`
would demand a single, unpartitioned check result per run.
"""

from collections.abc import Iterator, Sequence
from typing import Any

import dagster as dg
import pyarrow as pa

from completions_assets.connection_lock import connection_turn
from completions_assets.connections import Connection
from completions_assets.defs.lms_checks import Day, evaluate_day, lms_check_specs
from completions_assets.defs.metadata import fetch_metadata, row_changes, table_metadata
from completions_assets.lms.merge import distinct_ids, merge_day
from completions_assets.lms.schema import LMS_KEY, LMS_SCHEMA
from completions_assets.partitions import DayWindow, windows_for
from completions_assets.providers.declaration import Provider
from completions_assets.providers.resource import ProviderResource
from completions_assets.providers.sweeps import DayBatch, FetchStats
from completions_assets.storage import ParquetStorage

GROUP = "lms"
FAILED_RUN_STATUSES = (dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED)
SINGLE_RUN = dg.BackfillPolicy.single_run()  # a range is one run: one request sweep per connection, not one per day
LMS = dg.AssetKey("lms_completions")
# A day of a connection that changed without the merge that normally follows it
# in the same run (another connection's step failed, so the merge was skipped):
# merge that day again once nothing upstream is still running.
REBUILD_AFTER_SOURCES_CHANGE = (
    dg.AutomationCondition.any_deps_updated().since_last_handled()
    & ~dg.AutomationCondition.any_deps_in_progress()
    & ~dg.AutomationCondition.in_progress()
).with_label("a connection's day changed since the last merge")
DayFile = tuple[DayWindow, pa.Table, dict[str, Any]]  # a day, its rows, and its metadata


def partition_windows(context: dg.AssetExecutionContext) -> list[DayWindow]:
    """The run's days (one or a range) as half-open UTC windows."""
    return windows_for(context.assets_def.partitions_def, context.partition_keys)


def write_days(
    context: dg.AssetExecutionContext,
    asset_key: dg.AssetKey,
    directory: str,
    days: Iterator[DayFile],
    schema: pa.Schema,
    storage: ParquetStorage,
    row_key: list[str],
) -> Iterator[dg.MaterializeResult]:
    """Write each day's file as it arrives, then report the range as materialized.

    If a later day fails, the days already replaced are still reported, each as
    its own materialization, so the event log matches the files on disk.
    """
    written: list[tuple[str, dict[str, Any]]] = []
    try:
        for window, table, facts in days:
            previous = storage.read(directory, window.day, columns=row_key)
            path = storage.write(directory, window.day, table, schema)
            metadata = {**table_metadata(table, path), **row_changes(previous, table, row_key), **facts}
            key = window.day.isoformat()
            context.add_asset_metadata(metadata, asset_key=asset_key, partition_key=key)
            written.append((key, metadata))
    except Exception:
        for key, metadata in written:
            context.log_event(dg.AssetMaterialization(asset_key, partition=key, metadata=metadata))
        raise
    yield dg.MaterializeResult(asset_key=asset_key)


def connection_key(connection: Connection) -> dg.AssetKey:
    return dg.AssetKey([connection.provider.asset_name, connection.name])


def connection_asset(connection: Connection, partitions_def: dg.PartitionsDefinition) -> dg.AssetsDefinition:
    """`[{provider}_completions, {connection}]`: one connection's records of each day, as its API serves them."""
    provider, key = connection.provider, connection_key(connection)
    check_specs = [
        dg.AssetCheckSpec(
            c.name, asset=key, description=c.description, blocking=c.blocking, partitions_def=partitions_def
        )
        for c in provider.checks
    ]
    spec = dg.AssetSpec(
        key,
        group_name=GROUP,
        description=f"{provider.description} Connection `{connection.name}`.",
        partitions_def=partitions_def,
    )

    # One pool per connection: two steps never fetch for it at once, other connections run in parallel.
    @dg.multi_asset(
        name=f"{provider.asset_name}__{connection.name}",
        specs=[spec],
        check_specs=check_specs,
        pool=connection.pool,
        required_resource_keys={connection.resource_key, "storage"},
        partitions_def=partitions_def,
        backfill_policy=SINGLE_RUN,
        can_subset=True,
    )
    def fetch(context: dg.AssetExecutionContext):
        resource: ProviderResource = getattr(context.resources, connection.resource_key)
        storage: ParquetStorage = context.resources.storage
        selected = {check.name for check in context.selected_asset_check_keys}
        evaluations: list[dg.AssetCheckEvaluation] = []

        def days() -> Iterator[DayFile]:
            for batch, facts in _connection_days(connection, resource, partition_windows(context)):
                evaluations.extend(_provider_checks(provider, key, batch, selected))
                yield batch.window, batch.table, facts

        with connection_turn(connection.pool):  # also on SQLite, where pools can double-grant a slot
            yield from write_days(
                context, key, connection.storage_dir, days(), provider.schema, storage, [provider.id_column]
            )
        yield from evaluations

    return fetch


def _connection_days(
    connection: Connection, resource: ProviderResource, windows: Sequence[DayWindow]
) -> Iterator[tuple[DayBatch, dict[str, Any]]]:
    """Fetched days; days before the connection's start date are empty and cost no request."""
    start = connection.start_date
    before = [w for w in windows if start is not None and w.day < start]
    for window in before:
        empty = DayBatch(window, connection.provider.schema.empty_table(), FetchStats(0, 0, 0, 0.0, None))
        yield empty, {"before_connection_start": str(start)}
    for batch in resource.fetch_days(windows[len(before) :]):
        yield batch, fetch_metadata(batch.stats)


def _provider_checks(
    provider: Provider, key: dg.AssetKey, batch: DayBatch, selected: set[str]
) -> Iterator[dg.AssetCheckEvaluation]:
    for check in provider.checks:
        if check.name in selected:
            outcome = check.evaluate(batch, provider.id_column)
            yield dg.AssetCheckEvaluation(
                asset_key=key,
                check_name=check.name,
                passed=outcome.passed,
                metadata=outcome.metadata(),
                blocking=check.blocking,
                partition=batch.window.day.isoformat(),
            )


def lms_asset(partitions_def: dg.PartitionsDefinition, connections: Sequence[Connection]) -> dg.AssetsDefinition:
    spec = dg.AssetSpec(
        LMS,
        group_name=GROUP,
        description="Completions of every connection in one schema, one row per (provider, connection, completion_id).",
        deps=[connection_key(c) for c in connections],
        partitions_def=partitions_def,
        automation_condition=REBUILD_AFTER_SOURCES_CHANGE,
    )

    @dg.multi_asset(
        name=LMS.path[-1],
        specs=[spec],
        check_specs=lms_check_specs(LMS, partitions_def),
        required_resource_keys={"storage"},
        partitions_def=partitions_def,
        backfill_policy=SINGLE_RUN,
        can_subset=True,
    )
    def lms_completions(context: dg.AssetExecutionContext):
        storage: ParquetStorage = context.resources.storage
        selected = {check.name for check in context.selected_asset_check_keys}
        windows = partition_windows(context)
        failed = failed_attempts(context.instance, connections, [w.day.isoformat() for w in windows])
        merge = LMS in context.selected_asset_keys
        evaluations: list[dg.AssetCheckEvaluation] = []

        def days() -> Iterator[DayFile]:
            for window in windows:
                raws, absent = _sources(storage, connections, window)
                merged = merge_day(raws, window.day)
                day = Day(window, merged.table, merged.source_ids, absent, failed.get(window.day.isoformat(), ()))
                evaluations.extend(evaluate_day(LMS, window, day, selected))
                sources = {label: len(ids) for label, ids in merged.source_ids.items()}
                yield window, merged.table, {"source_rows": dg.MetadataValue.json(sources), **merged.facts}

        if merge:
            yield from write_days(context, LMS, LMS.path[-1], days(), LMS_SCHEMA, storage, LMS_KEY)
            yield from evaluations
            return
        for window in windows:  # the checks alone, re-run from the UI: read what the files hold
            day = _stored_day(storage, connections, window, failed.get(window.day.isoformat(), ()))
            yield from evaluate_day(
                LMS, window, day, selected, missing=f"no file at {storage.path(LMS.path[-1], window.day)}"
            )

    return lms_completions


def _sources(
    storage: ParquetStorage, connections: Sequence[Connection], window: DayWindow
) -> tuple[dict[Connection, pa.Table], tuple[str, ...]]:
    """Each connection's file of the day; a connection without one is left out (and named)."""
    raws, absent = {}, []
    for connection in connections:
        table = storage.read(connection.storage_dir, window.day)
        if table is None:
            absent.append(connection.label)
        else:
            raws[connection] = table
    return raws, tuple(absent)


def _stored_day(
    storage: ParquetStorage, connections: Sequence[Connection], window: DayWindow, failed: tuple[str, ...]
) -> Day | None:
    table = storage.read(LMS.path[-1], window.day)
    if table is None:
        return None
    ids, absent = {}, []
    for connection in connections:
        raw = storage.read(connection.storage_dir, window.day, columns=[connection.provider.id_column])
        if raw is None:
            absent.append(connection.label)
        else:
            ids[connection.label] = distinct_ids(connection.provider, raw)
    return Day(window, table, ids, tuple(absent), failed)


def failed_attempts(
    instance: dg.DagsterInstance, connections: Sequence[Connection], partitions: Sequence[str]
) -> dict[str, tuple[str, ...]]:
    """Per day, the connections whose latest attempt at it failed: planned by a run that ended
    in failure (or was canceled) and not materialized since."""
    wanted = set(partitions)
    failed: dict[str, list[str]] = {}
    status: dict[str, bool] = {}
    for connection in connections:
        attempts = (
            instance.event_log_storage.get_latest_asset_partition_materialization_attempts_without_materializations(
                connection_key(connection)
            )
        )
        for partition, (run_id, _) in attempts.items():
            if partition not in wanted:
                continue
            if run_id not in status:
                run = instance.get_run_by_id(run_id)
                status[run_id] = run is not None and run.status in FAILED_RUN_STATUSES
            if status[run_id]:
                failed.setdefault(partition, []).append(connection.label)
    return {partition: tuple(labels) for partition, labels in failed.items()}


def build_assets(
    partitions_def: dg.PartitionsDefinition, connections: Sequence[Connection]
) -> list[dg.AssetsDefinition]:
    """One asset per connection, and `lms_completions` over all of them."""
    return [*(connection_asset(c, partitions_def) for c in connections), lms_asset(partitions_def, connections)]
