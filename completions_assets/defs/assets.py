"""The daily-partitioned assets of group `lms` (SPEC section 7), built from the provider declarations.

Each asset is a subsettable `multi_asset` so that its checks can be yielded as
one `AssetCheckEvaluation` per partition, also in range runs; a plain `@asset`
would demand a single, unpartitioned check result per run.
"""

from collections.abc import Iterator, Sequence

import dagster as dg
import pyarrow as pa

from completions_assets.defs.lms_checks import Day, evaluate_day, lms_check_specs
from completions_assets.defs.metadata import fetch_metadata, row_changes, table_metadata
from completions_assets.lms.merge import distinct_ids, merge_day
from completions_assets.lms.schema import LMS_KEY, LMS_SCHEMA
from completions_assets.partitions import DayWindow, windows_for
from completions_assets.providers import PROVIDERS
from completions_assets.providers.declaration import Provider
from completions_assets.providers.resource import ProviderResource
from completions_assets.providers.sweeps import DayBatch
from completions_assets.storage import ParquetStorage

GROUP = "lms"
LMS = dg.AssetKey("lms_completions")
DayFile = tuple[DayWindow, pa.Table, dict[str, object]]  # a day, its rows, and its metadata


def partition_windows(context: dg.AssetExecutionContext) -> list[DayWindow]:
    """The run's days (one or a range) as half-open UTC windows."""
    return windows_for(context.assets_def.partitions_def, context.partition_keys)


def write_days(
    context: dg.AssetExecutionContext,
    asset_key: dg.AssetKey,
    days: Iterator[DayFile],
    schema: pa.Schema,
    storage: ParquetStorage,
    row_key: list[str],
) -> Iterator[dg.MaterializeResult]:
    """Write each day's file as it arrives, then report the range as materialized.

    If a later day fails, the days already replaced are still reported, each as
    its own materialization, so the event log matches the files on disk.
    """
    name = asset_key.path[-1]
    written: list[tuple[str, dict[str, object]]] = []
    try:
        for window, table, facts in days:
            previous = storage.read(name, window.day, columns=row_key)
            path = storage.write(name, window.day, table, schema)
            metadata = {**table_metadata(table, path), **row_changes(previous, table, row_key), **facts}
            key = window.day.isoformat()
            context.add_asset_metadata(metadata, asset_key=asset_key, partition_key=key)
            written.append((key, metadata))
    except Exception:
        for key, metadata in written:
            context.log_event(dg.AssetMaterialization(asset_key, partition=key, metadata=metadata))
        raise
    yield dg.MaterializeResult(asset_key=asset_key)


def _common(partitions_def: dg.PartitionsDefinition) -> dict[str, object]:
    return dict(partitions_def=partitions_def, backfill_policy=dg.BackfillPolicy.single_run(), can_subset=True)


def provider_asset(provider: Provider, partitions_def: dg.PartitionsDefinition) -> dg.AssetsDefinition:
    """`{provider}_completions`: the provider's records of each day, as its API serves them."""
    key = dg.AssetKey(provider.asset_name)
    check_specs = [
        dg.AssetCheckSpec(c.name, asset=key, description=c.description, blocking=c.blocking, partitions_def=partitions_def)
        for c in provider.checks
    ]

    @dg.multi_asset(
        name=provider.asset_name,
        specs=[dg.AssetSpec(key, group_name=GROUP, description=provider.description, partitions_def=partitions_def)],
        check_specs=check_specs,
        pool=provider.name,
        required_resource_keys={provider.name, "storage"},
        **_common(partitions_def),
    )
    def fetch(context: dg.AssetExecutionContext):
        resource: ProviderResource = getattr(context.resources, provider.name)
        storage: ParquetStorage = context.resources.storage
        selected = {check.name for check in context.selected_asset_check_keys}
        evaluations: list[dg.AssetCheckEvaluation] = []

        def days() -> Iterator[DayFile]:
            for batch in resource.fetch_days(partition_windows(context)):
                evaluations.extend(_provider_checks(provider, key, batch, selected))
                yield batch.window, batch.table, fetch_metadata(batch.stats)

        yield from write_days(context, key, days(), provider.schema, storage, [provider.id_column])
        yield from evaluations

    return fetch


def _provider_checks(
    provider: Provider, key: dg.AssetKey, batch: DayBatch, selected: set[str]
) -> Iterator[dg.AssetCheckEvaluation]:
    for check in provider.checks:
        if check.name in selected:
            outcome = check.evaluate(batch, provider.id_column)
            yield dg.AssetCheckEvaluation(
                asset_key=key, check_name=check.name, passed=outcome.passed, metadata=outcome.metadata(),
                blocking=check.blocking, partition=batch.window.day.isoformat(),
            )


def lms_asset(partitions_def: dg.PartitionsDefinition, providers: Sequence[Provider]) -> dg.AssetsDefinition:
    spec = dg.AssetSpec(
        LMS,
        group_name=GROUP,
        description="Completions of every provider in one schema, one row per (provider, completion_id).",
        deps=[dg.AssetKey(provider.asset_name) for provider in providers],
        partitions_def=partitions_def,
    )

    @dg.multi_asset(
        name=LMS.path[-1],
        specs=[spec],
        check_specs=lms_check_specs(LMS, partitions_def),
        required_resource_keys={"storage"},
        **_common(partitions_def),
    )
    def lms_completions(context: dg.AssetExecutionContext):
        storage: ParquetStorage = context.resources.storage
        selected = {check.name for check in context.selected_asset_check_keys}
        windows = partition_windows(context)
        if LMS not in context.selected_asset_keys:  # the checks alone, re-run from the UI
            for window in windows:
                yield from evaluate_day(LMS, window, _stored_day(storage, providers, window), selected,
                                        missing=f"no file at {storage.path(LMS.path[-1], window.day)}")
            return
        evaluations: list[dg.AssetCheckEvaluation] = []

        def days() -> Iterator[DayFile]:
            for window in windows:
                merged = merge_day({p: _required(storage, p.asset_name, window) for p in providers}, window.day)
                evaluations.extend(evaluate_day(LMS, window, Day(window, merged.table, merged.source_ids), selected))
                sources = {f"{name}_source_rows": len(ids) for name, ids in merged.source_ids.items()}
                yield window, merged.table, {**sources, **merged.facts}

        yield from write_days(context, LMS, days(), LMS_SCHEMA, storage, LMS_KEY)
        yield from evaluations

    return lms_completions


def _stored_day(storage: ParquetStorage, providers: Sequence[Provider], window: DayWindow) -> Day | None:
    table = storage.read(LMS.path[-1], window.day)
    if table is None:
        return None
    ids = {}
    for provider in providers:
        raw = storage.read(provider.asset_name, window.day, columns=[provider.id_column])
        ids[provider.name] = pa.array([], pa.string()) if raw is None else distinct_ids(provider, raw)
    return Day(window, table, ids)


def _required(storage: ParquetStorage, asset: str, window: DayWindow) -> pa.Table:
    table = storage.read(asset, window.day)
    if table is None:
        raise FileNotFoundError(
            f"{asset} has no file for {window.day.isoformat()} at {storage.path(asset, window.day)}; materialize it first"
        )
    return table


def build_assets(
    partitions_def: dg.PartitionsDefinition, providers: Sequence[Provider] = PROVIDERS
) -> list[dg.AssetsDefinition]:
    """One asset per provider, and `lms_completions` over all of them."""
    return [*(provider_asset(p, partitions_def) for p in providers), lms_asset(partitions_def, providers)]
