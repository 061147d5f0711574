"""The merge's reads: each connection's day merged, with its metadata and its checks'
evaluations, and which connections' latest attempt at a day failed."""

from collections.abc import Iterator, Mapping, Sequence

import dagster as dg
import pyarrow as pa

from completions_assets.connections import Connection
from completions_assets.keys import LMS, connection_key
from completions_assets.lms.checks import Day, evaluate_day
from completions_assets.lms.merge import distinct_ids, merge_day
from completions_assets.partitions import PartitionDay
from completions_assets.settings import load_settings
from completions_assets.steps.dimensions import read_dimensions, snapshot_facts, snapshot_times
from completions_assets.steps.writing import DayFile
from completions_assets.storage import ParquetStorage

FAILED_RUN_STATUSES = (dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED)


def merged_days(
    instance: dg.DagsterInstance,
    storage: ParquetStorage,
    connections: Sequence[Connection],
    days: Sequence[PartitionDay],
    checked: set[str],
    failed: Mapping[str, tuple[str, ...]],
    evaluations: list[dg.AssetCheckEvaluation],
) -> Iterator[DayFile]:
    """Each day merged from the connections' files, with its metadata; the `checked` checks'
    evaluations of each day are added to `evaluations`."""
    snapshots = read_dimensions(storage, connections)
    taken = snapshot_times(instance, snapshots)
    names_min = load_settings().names_resolved_min
    for day in days:
        raws, absent = day_sources(storage, connections, day)
        merged = merge_day(raws, day.date, snapshots)
        if checked:
            gaps = failed.get(day.date.isoformat(), ())
            rows = Day(day, merged.table, merged.source_ids, absent, gaps, names_min)
            evaluations.extend(evaluate_day(LMS, day, rows, checked))
        sources = {label: len(ids) for label, ids in merged.source_ids.items()}
        facts = {**merged.facts, **snapshot_facts(snapshots, taken, day)}
        yield day, merged.table, {"source_rows": dg.MetadataValue.json(sources), **facts}


def day_sources(
    storage: ParquetStorage, connections: Sequence[Connection], day: PartitionDay, *, ids_only: bool = False
) -> tuple[dict[Connection, pa.Table], tuple[str, ...]]:
    """Each connection's file of the day (or its id column); a connection without one is left out (and named)."""
    raws, absent = {}, []
    for connection in connections:
        columns = [connection.provider.id_column] if ids_only else None
        table = storage.read(connection.storage_dir, day.date, columns=columns)
        if table is None:
            absent.append(connection.label)
        else:
            raws[connection] = table
    return raws, tuple(absent)


def stored_day(
    storage: ParquetStorage,
    connections: Sequence[Connection],
    day: PartitionDay,
    failed: tuple[str, ...],
    names_min: float,
) -> Day | None:
    table = storage.read(LMS.path[-1], day.date)
    if table is None:
        return None
    raws, absent = day_sources(storage, connections, day, ids_only=True)
    ids = {connection.label: distinct_ids(connection.provider, raw) for connection, raw in raws.items()}
    return Day(day, table, ids, absent, failed, names_min)


def failed_attempts(
    instance: dg.DagsterInstance, connections: Sequence[Connection], partitions: Sequence[str], *, this_run: str
) -> tuple[dict[str, tuple[str, ...]], tuple[str, ...]]:
    """Per day, the connections whose latest attempt at it failed: planned by a run that ended
    in failure (or was canceled), or by this run, whose fetching is over, and not materialized
    since. Also the connections that failed in this run."""
    wanted = set(partitions)
    failed: dict[str, list[str]] = {}
    here: dict[str, None] = {}
    status: dict[str, bool] = {this_run: True}
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
            if run_id == this_run:
                here[connection.label] = None
    return {partition: tuple(labels) for partition, labels in failed.items()}, tuple(here)
