"""`lms_completions`: every connection's day merged into one schema, and its checks.

The checks run in the merge step on the tables it has just built; run alone
(re-run from the UI) they read the day's files. A failed connection does not keep
the others out of the run's merge; only when a whole provider's step fails is the
merge skipped, and the automation condition then merges the days the other
provider changed.
"""

from collections.abc import Iterator, Mapping, Sequence

import dagster as dg
import pyarrow as pa

from completions_assets.connections import Connection
from completions_assets.defs.dimensions import dimension_key, read_dimensions, snapshot_facts, snapshot_times
from completions_assets.defs.lms_checks import Day, evaluate_day, lms_check_specs
from completions_assets.defs.writing import SINGLE_RUN, DayFile, partition_windows, write_days
from completions_assets.lms.merge import distinct_ids, merge_day
from completions_assets.lms.schema import LMS_KEY, LMS_SCHEMA
from completions_assets.partitions import DayWindow, windows_for
from completions_assets.providers import PROVIDERS
from completions_assets.settings import load_settings
from completions_assets.storage import ParquetStorage

GROUP = "lms"
LMS = dg.AssetKey("lms_completions")
OUTPUT = "lms_completions"
ALL_CONNECTIONS_PRESENT = dg.AssetCheckKey(LMS, "all_connections_present")
FAILED_RUN_STATUSES = (dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED)
# A day of a connection that changed without the merge that normally follows it
# in the same run (a provider's step failed, every connection of it having failed,
# so the merge was skipped): merge that day again once nothing upstream is still running.
# A new snapshot of a dimension (enrolments) is unpartitioned: it would mark every day.
REBUILD_AFTER_SOURCES_CHANGE = (
    dg.AutomationCondition.any_deps_updated()
    .ignore(dg.AssetSelection.key_prefixes(*([p.dimension] for p in PROVIDERS if p.dimension)))
    .since_last_handled()
    & ~dg.AutomationCondition.any_deps_in_progress()
    & ~dg.AutomationCondition.in_progress()
).with_label("a connection's day changed since the last merge")


def connection_key(connection: Connection) -> dg.AssetKey:
    return dg.AssetKey([connection.provider.asset_name, connection.name])


def lms_asset(partitions_def: dg.PartitionsDefinition, connections: Sequence[Connection]) -> dg.AssetsDefinition:
    """`lms_completions`: a graph of one op, `merge_days`, whose one input fans in every connection.

    A fan-in is skipped only when all of its sources are missing, so a connection that
    failed (its step yields nothing for it) does not keep the others out of the merge, as
    one input per connection would. Its checks are a definition of their own
    (`lms_checks`): Dagster cannot subset a graph whose inputs fan in, as running the
    checks alone would need.
    """
    inputs = {f"source_{n}": connection_key(c) for n, c in enumerate(connections)}
    # Snapshots are read if present: they join the same fan-in, so one that failed does not skip the merge.
    dimensions = [key for key in map(dimension_key, connections) if key is not None]
    inputs.update({f"dimension_{n}": key for n, key in enumerate(dimensions)})
    merge_days = _merge_op(connections)

    @dg.graph(name=LMS.path[-1], ins={name: dg.GraphIn() for name in inputs}, out={OUTPUT: dg.GraphOut()})
    def merge_graph(**sources):
        return {OUTPUT: merge_days(sources=list(sources.values()))}

    return dg.AssetsDefinition.from_graph(
        merge_graph,
        keys_by_input_name=inputs,
        keys_by_output_name={OUTPUT: LMS},
        group_names_by_output_name={OUTPUT: GROUP},
        descriptions_by_output_name={
            OUTPUT: "Completions of every connection in one schema, one row per (provider, connection, completion_id)."
        },
        tags_by_output_name={OUTPUT: {"provider": "all"}},
        automation_conditions_by_output_name={OUTPUT: REBUILD_AFTER_SOURCES_CHANGE},
        partitions_def=partitions_def,
        backfill_policy=SINGLE_RUN,
    )


def _merge_op(connections: Sequence[Connection]) -> dg.OpDefinition:
    @dg.op(
        name="merge_days",
        ins={"sources": dg.In(dg.Nothing)},
        out={OUTPUT: dg.Out(dg.Nothing)},
        required_resource_keys={"storage"},
    )
    def merge_days(context: dg.AssetExecutionContext):
        storage: ParquetStorage = context.resources.storage
        windows = partition_windows(context)
        # The checks of this run are evaluated here, on the tables just built, rather than read back.
        checked = _checks_in_run(context)
        failed = _failed(context, connections, windows)[0] if checked else {}
        evaluations: list[dg.AssetCheckEvaluation] = []
        days = merged_days(context.instance, storage, connections, windows, checked, failed, evaluations)
        yield from write_days(context, LMS, LMS.path[-1], days, LMS_SCHEMA, storage, LMS_KEY)
        yield from evaluations

    return merge_days


def merged_days(
    instance: dg.DagsterInstance,
    storage: ParquetStorage,
    connections: Sequence[Connection],
    windows: Sequence[DayWindow],
    checked: set[str],
    failed: Mapping[str, tuple[str, ...]],
    evaluations: list[dg.AssetCheckEvaluation],
) -> Iterator[DayFile]:
    """Each day merged from the connections' files, with its metadata; the `checked` checks'
    evaluations of each day are added to `evaluations`."""
    snapshots = read_dimensions(storage, connections)
    taken = snapshot_times(instance, snapshots)
    names_min = load_settings().names_resolved_min
    for window in windows:
        raws, absent = _sources(storage, connections, window)
        merged = merge_day(raws, window.day, snapshots)
        if checked:
            gaps = failed.get(window.day.isoformat(), ())
            day = Day(window, merged.table, merged.source_ids, absent, gaps, names_min)
            evaluations.extend(evaluate_day(LMS, window, day, checked))
        sources = {label: len(ids) for label, ids in merged.source_ids.items()}
        facts = {**merged.facts, **snapshot_facts(snapshots, taken, window)}
        yield window, merged.table, {"source_rows": dg.MetadataValue.json(sources), **facts}


def lms_checks(partitions_def: dg.PartitionsDefinition, connections: Sequence[Connection]) -> dg.AssetChecksDefinition:
    """The checks of `lms_completions`. With the merge in the run, the merge evaluates them on the
    tables it has built, and this step fails the run if a connection's fetch failed in it, naming
    it; alone (UI: the asset's checks, Execute), they read the day's files."""

    @dg.multi_asset_check(
        name="lms_completions_checks",
        specs=lms_check_specs(LMS, partitions_def),
        required_resource_keys={"storage"},
        can_subset=True,
    )
    def lms_completions_checks(context: dg.AssetCheckExecutionContext):
        storage: ParquetStorage = context.resources.storage
        windows = windows_for(partitions_def, context.op_execution_context.partition_keys)
        failed, failed_here = _failed(context, connections, windows)
        if LMS not in _run_assets(context):  # the checks alone: read what the files hold
            names_min = load_settings().names_resolved_min
            selected = {check.name for check in context.selected_asset_check_keys}
            for window in windows:
                day = _stored_day(storage, connections, window, failed.get(window.day.isoformat(), ()), names_min)
                missing = f"no file at {storage.path(LMS.path[-1], window.day)}"
                yield from evaluate_day(LMS, window, day, selected, missing=missing)
        if failed_here:
            raise dg.Failure(
                f"merged without {', '.join(failed_here)}: their fetch failed in this run, or a day of theirs was kept "
                "because the fetch would remove too much of it (no_mass_removal; see the provider step's "
                "log); their previous files are kept and all_connections_present fails for their days"
            )

    return lms_completions_checks


def _run_assets(context: dg.AssetExecutionContext | dg.AssetCheckExecutionContext) -> set[dg.AssetKey]:
    """The assets this run materializes (its job, subset to the run's selection)."""
    return set(context.op_execution_context.job_def.asset_layer.executable_asset_keys)


def _checks_in_run(context: dg.AssetExecutionContext) -> set[str]:
    """The checks of `lms_completions` this run evaluates."""
    keys = context.op_execution_context.job_def.asset_layer.asset_graph.asset_check_keys
    return {key.name for key in keys if key.asset_key == LMS}


def _failed(
    context: dg.AssetExecutionContext | dg.AssetCheckExecutionContext,
    connections: Sequence[Connection],
    windows: Sequence[DayWindow],
) -> tuple[dict[str, tuple[str, ...]], tuple[str, ...]]:
    days = [w.day.isoformat() for w in windows]
    return failed_attempts(context.instance, connections, days, this_run=context.run.run_id)


def _sources(
    storage: ParquetStorage, connections: Sequence[Connection], window: DayWindow, *, ids_only: bool = False
) -> tuple[dict[Connection, pa.Table], tuple[str, ...]]:
    """Each connection's file of the day (or its id column); a connection without one is left out (and named)."""
    raws, absent = {}, []
    for connection in connections:
        columns = [connection.provider.id_column] if ids_only else None
        table = storage.read(connection.storage_dir, window.day, columns=columns)
        if table is None:
            absent.append(connection.label)
        else:
            raws[connection] = table
    return raws, tuple(absent)


def _stored_day(
    storage: ParquetStorage,
    connections: Sequence[Connection],
    window: DayWindow,
    failed: tuple[str, ...],
    names_min: float,
) -> Day | None:
    table = storage.read(LMS.path[-1], window.day)
    if table is None:
        return None
    raws, absent = _sources(storage, connections, window, ids_only=True)
    ids = {connection.label: distinct_ids(connection.provider, raw) for connection, raw in raws.items()}
    return Day(window, table, ids, absent, failed, names_min)


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
