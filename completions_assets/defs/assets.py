"""The daily-partitioned assets of group `lms` (SPEC sections 7 and 12): one per connection,
built from its provider's declaration, and `lms_completions` over all of them.

Each asset is a subsettable `multi_asset` so that its checks can be yielded as
one `AssetCheckEvaluation` per partition, also in range runs; a plain `@asset`
would demand a single, unpartitioned check result per run.
"""

from collections.abc import Iterator, Sequence
from typing import Any

import dagster as dg

from completions_assets.connection_lock import connection_turn
from completions_assets.connections import Connection
from completions_assets.defs.lms_asset import GROUP, connection_key, lms_asset
from completions_assets.defs.metadata import fetch_metadata
from completions_assets.defs.writing import SINGLE_RUN, DayFile, partition_windows, write_days
from completions_assets.partitions import DayWindow
from completions_assets.providers.declaration import Provider
from completions_assets.providers.resource import ProviderResource
from completions_assets.providers.sweeps import DayBatch, FetchStats
from completions_assets.storage import ParquetStorage


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


def build_assets(
    partitions_def: dg.PartitionsDefinition, connections: Sequence[Connection]
) -> list[dg.AssetsDefinition]:
    """One asset per connection, and `lms_completions` over all of them."""
    return [*(connection_asset(c, partitions_def) for c in connections), lms_asset(partitions_def, connections)]
