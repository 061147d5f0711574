"""Writing a run's days: which days, assets and checks the run covers, one file per day as it
arrives, and its materialization metadata."""

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import dagster as dg
import pyarrow as pa

from completions_assets.partitions import PartitionDay, days_for
from completions_assets.steps.metadata import row_changes, table_metadata
from completions_assets.storage import ParquetStorage

DayFile = tuple[PartitionDay, pa.Table, dict[str, Any]]  # a day, its rows, and its metadata


def run_days(context: dg.AssetExecutionContext) -> list[PartitionDay]:
    """The run's days (one or a range) as half-open UTC intervals."""
    return days_for(context.assets_def.partitions_def, context.partition_keys)


def run_assets(context: dg.AssetExecutionContext | dg.AssetCheckExecutionContext) -> set[dg.AssetKey]:
    """The assets this run materializes (its job, subset to the run's selection)."""
    return set(context.op_execution_context.job_def.asset_layer.executable_asset_keys)


def run_checks(context: dg.AssetExecutionContext | dg.AssetCheckExecutionContext) -> set[dg.AssetCheckKey]:
    """The checks this run evaluates (its job, subset to the run's selection)."""
    return set(context.op_execution_context.job_def.asset_layer.asset_graph.asset_check_keys)


def write_day(
    storage: ParquetStorage, directory: str, day: PartitionDay, table: pa.Table, schema: pa.Schema, row_key: list[str]
) -> dict[str, Any]:
    """Replaces one day's file; its materialization metadata, changes against the file it replaced included."""
    previous = storage.read(directory, day.date, columns=row_key)
    return replace_day(storage, directory, day, table, schema, row_key, previous)


def replace_day(
    storage: ParquetStorage,
    directory: str,
    day: PartitionDay,
    table: pa.Table,
    schema: pa.Schema,
    row_key: list[str],
    previous: pa.Table | None,
) -> dict[str, Any]:
    """`write_day` with the replaced file's `row_key` columns already read (None: there was none)."""
    path = storage.write(directory, day.date, table, schema)
    return {**table_metadata(table, path), **row_changes(previous, table, row_key)}


def report_days(
    context: dg.AssetExecutionContext,
    asset_key: dg.AssetKey,
    written: Sequence[tuple[str, dict[str, Any]]],
    *,
    whole: bool,
) -> Iterator[dg.MaterializeResult]:
    """The days written, as materializations: one result (the asset's output) for the run's range when
    `whole`, else one event per day, so the event log matches the files on disk (also when a range
    failed part-way)."""
    if not whole:
        for key, metadata in written:
            context.log_event(dg.AssetMaterialization(asset_key, partition=key, metadata=metadata))
        return
    for key, metadata in written:
        context.add_asset_metadata(metadata, asset_key=asset_key, partition_key=key)
    yield dg.MaterializeResult(asset_key=asset_key)


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
    its own materialization.
    """
    written: list[tuple[str, dict[str, Any]]] = []
    try:
        for day, table, facts in days:
            metadata = write_day(storage, directory, day, table, schema, row_key)
            written.append((day.date.isoformat(), {**metadata, **facts}))
    except Exception:
        yield from report_days(context, asset_key, written, whole=False)
        raise
    yield from report_days(context, asset_key, written, whole=True)


def check_outputs(assets_def: dg.AssetsDefinition, reported: Iterable[dg.AssetCheckKey]) -> Iterator[dg.Output]:
    """The outputs of the checks whose results went out as one `AssetCheckEvaluation` per day.

    Dagster counts a check as reported by its output: an `AssetCheckResult` yields one for it,
    an evaluation does not, and a check without one is logged as "did not yield or return
    expected outputs" although its results are recorded. A check output holds no value.
    """
    wanted = set(reported)
    for name, spec in assets_def.check_specs_by_output_name.items():
        if spec.key in wanted:
            yield dg.Output(None, output_name=name)
