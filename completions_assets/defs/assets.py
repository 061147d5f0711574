"""The three daily-partitioned assets of group `lms` (SPEC section 7).

Provider assets are `multi_asset`s only so that their checks can be yielded as
one `AssetCheckEvaluation` per partition (subsettable outputs are optional);
a plain `@asset` would demand a single, unpartitioned check result per run.
"""

import datetime as dt
from collections.abc import Callable, Iterator, Sequence

import dagster as dg
import pyarrow as pa

from completions_assets.defs.asset_keys import BINDBEE, LMS, NEXUDUS
from completions_assets.providers.bindbee import BindbeeResource
from completions_assets.providers.base import DayBatch
from completions_assets.defs.metadata import fetch_metadata, row_changes, table_metadata
from completions_assets.providers.nexudus.client import NexudusResource
from completions_assets.partitions import windows_for
from completions_assets.defs.provider_checks import matches_reported_total, no_duplicate_ids
from completions_assets.lms.schema import BINDBEE_SCHEMA, LMS_SCHEMA, NEXUDUS_SCHEMA
from completions_assets.storage import ParquetStorage
from completions_assets.lms.merge import merge_day
from completions_assets.partitions import DayWindow

GROUP = "lms"
# What identifies a row of each file, for the rows added/removed since the last write.
ROW_KEYS = {BINDBEE: ["id"], NEXUDUS: ["id"], LMS: ["provider", "completion_id"]}


def partition_windows(context: dg.AssetExecutionContext) -> list[DayWindow]:
    """The run's days (one or a range) as half-open UTC windows."""
    return windows_for(context.assets_def.partitions_def, context.partition_keys)


def write_days(
    context: dg.AssetExecutionContext,
    asset_key: dg.AssetKey,
    days: Iterator[tuple[DayWindow, pa.Table, dict[str, object]]],
    schema: pa.Schema,
    storage: ParquetStorage,
) -> Iterator[dg.MaterializeResult]:
    """Write each day's file as it arrives, then report the range as materialized.

    If a later day fails, the days already replaced are still reported, each as
    its own materialization, so the event log matches the files on disk.
    """
    name, keys = asset_key.path[-1], ROW_KEYS[asset_key]
    written: list[tuple[str, dict[str, object]]] = []
    try:
        for window, table, facts in days:
            previous = storage.read(name, window.day, columns=keys)
            path = storage.write(name, window.day, table, schema)
            metadata = {**table_metadata(table, path), **row_changes(previous, table, keys), **facts}
            key = window.day.isoformat()
            context.add_asset_metadata(metadata, asset_key=asset_key, partition_key=key)
            written.append((key, metadata))
    except Exception:
        for key, metadata in written:
            context.log_event(dg.AssetMaterialization(asset_key, partition=key, metadata=metadata))
        raise
    yield dg.MaterializeResult(asset_key=asset_key)


def _provider_days(batches: Iterator[DayBatch]) -> Iterator[tuple[DayWindow, pa.Table, dict]]:
    for batch in batches:
        yield batch.window, batch.table, fetch_metadata(batch.stats)


def _ingest(
    context: dg.AssetExecutionContext,
    asset_key: dg.AssetKey,
    batches: Iterator[DayBatch],
    schema: pa.Schema,
    storage: ParquetStorage,
    check: Callable[[DayBatch], dg.AssetCheckEvaluation],
) -> Iterator[dg.MaterializeResult | dg.AssetCheckEvaluation]:
    evaluations: list[dg.AssetCheckEvaluation] = []

    def checked(source: Iterator[DayBatch]) -> Iterator[DayBatch]:
        for batch in source:
            evaluations.append(check(batch))
            yield batch

    yield from write_days(context, asset_key, _provider_days(checked(batches)), schema, storage)
    yield from evaluations


def build_assets(partitions_def: dg.PartitionsDefinition) -> list[dg.AssetsDefinition]:
    common = dict(
        partitions_def=partitions_def,
        backfill_policy=dg.BackfillPolicy.single_run(),
        can_subset=True,
    )

    def spec(key: dg.AssetKey, description: str) -> dg.AssetSpec:
        return dg.AssetSpec(key, group_name=GROUP, description=description,
                            partitions_def=partitions_def)

    def check_spec(key: dg.AssetKey, name: str, description: str, blocking: bool) -> dg.AssetCheckSpec:
        return dg.AssetCheckSpec(name, asset=key, description=description, blocking=blocking,
                                 partitions_def=partitions_def)

    @dg.multi_asset(
        name="bindbee_completions",
        specs=[spec(BINDBEE, "Bindbee LMS completions of the day, as the API serves them.")],
        check_specs=[check_spec(BINDBEE, "no_duplicate_ids",
                                "No completion id occurs twice in the day's file.", True)],
        pool="bindbee",
        **common,
    )
    def bindbee_completions(
        context: dg.AssetExecutionContext, bindbee: BindbeeResource, storage: ParquetStorage
    ):
        batches = bindbee.fetch_days(partition_windows(context))
        yield from _ingest(context, BINDBEE, batches, BINDBEE_SCHEMA, storage, no_duplicate_ids)

    @dg.multi_asset(
        name="nexudus_completions",
        specs=[spec(NEXUDUS, "Nexudus course completed lessons of the day, as the API serves them.")],
        check_specs=[check_spec(NEXUDUS, "matches_reported_total",
                                "Every request window returned as many distinct records as its TotalItems.",
                                False)],
        pool="nexudus",
        **common,
    )
    def nexudus_completions(
        context: dg.AssetExecutionContext, nexudus: NexudusResource, storage: ParquetStorage
    ):
        batches = nexudus.fetch_days(partition_windows(context))
        yield from _ingest(context, NEXUDUS, batches, NEXUDUS_SCHEMA, storage, matches_reported_total)

    @dg.asset(
        key=LMS,
        group_name=GROUP,
        deps=[BINDBEE, NEXUDUS],
        partitions_def=partitions_def,
        backfill_policy=dg.BackfillPolicy.single_run(),
    )
    def lms_completions(context: dg.AssetExecutionContext, storage: ParquetStorage):
        """Completions of both providers in one schema, one row per (provider, completion_id)."""
        yield from write_days(context, LMS, _merged_days(partition_windows(context), storage),
                              LMS_SCHEMA, storage)

    return [bindbee_completions, nexudus_completions, lms_completions]


def _merged_days(windows: Sequence[DayWindow], storage: ParquetStorage) -> Iterator[tuple]:
    for window in windows:
        bindbee = _required(storage, BINDBEE, window.day)
        nexudus = _required(storage, NEXUDUS, window.day)
        yield window, merge_day(bindbee, nexudus, window.day), {}


def _required(storage: ParquetStorage, key: dg.AssetKey, day: dt.date) -> pa.Table:
    table = storage.read(key.path[-1], day)
    if table is None:
        raise FileNotFoundError(
            f"{key.path[-1]} has no file for {day.isoformat()} at {storage.path(key.path[-1], day)}; "
            "materialize it first"
        )
    return table
