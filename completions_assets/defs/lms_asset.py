"""`lms_completions`: every connection's day merged into one schema, and its checks.

The checks run in the merge step on the tables it has just built; run alone
(re-run from the UI) they read the day's files. A failed connection does not keep
the others out of the run's merge; only when a whole provider's step fails is the
merge skipped, and the automation condition then merges the days the other
provider changed.
"""

from collections.abc import Sequence

import dagster as dg

from completions_assets.connections import Connection
from completions_assets.keys import GROUP, LMS, connection_key, dimension_key
from completions_assets.lms.checks import evaluate_day, lms_check_specs
from completions_assets.lms.schema import LMS_KEY, LMS_SCHEMA
from completions_assets.partitions import PartitionDay, days_for
from completions_assets.providers import PROVIDERS
from completions_assets.settings import load_settings
from completions_assets.steps.merging import failed_attempts, merged_days, stored_day
from completions_assets.steps.writing import check_outputs, run_assets, run_checks, run_days, write_days
from completions_assets.storage import ParquetStorage

OUTPUT = "lms_completions"
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
        # from_graph takes no `kinds`; a kind is the tag Dagster's `kinds=` writes.
        tags_by_output_name={OUTPUT: {"provider": "all", "dagster/kind/parquet": ""}},
        automation_conditions_by_output_name={OUTPUT: REBUILD_AFTER_SOURCES_CHANGE},
        partitions_def=partitions_def,
        backfill_policy=dg.BackfillPolicy.single_run(),  # a range is one run
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
        partitions = run_days(context)
        # The checks of this run are evaluated here, on the tables just built, rather than read back.
        checked = _checks_in_run(context)
        failed = _failed(context, connections, partitions)[0] if checked else {}
        evaluations: list[dg.AssetCheckEvaluation] = []
        days = merged_days(context.instance, storage, connections, partitions, checked, failed, evaluations)
        yield from write_days(context, LMS, LMS.path[-1], days, LMS_SCHEMA, storage, LMS_KEY)
        yield from evaluations

    return merge_days


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
        partitions = days_for(partitions_def, context.op_execution_context.partition_keys)
        failed, failed_here = _failed(context, connections, partitions)
        if LMS not in run_assets(context):  # the checks alone: read what the files hold
            names_min = load_settings().names_resolved_min
            selected = {check.name for check in context.selected_asset_check_keys}
            for partition in partitions:
                key = partition.date.isoformat()
                day = stored_day(storage, connections, partition, failed.get(key, ()), names_min)
                missing = f"no file at {storage.path(LMS.path[-1], partition.date)}"
                yield from evaluate_day(LMS, partition, day, selected, missing=missing)
        # Reported: above, or by the merge of this run, on the tables it built.
        yield from check_outputs(context.op_execution_context.assets_def, context.selected_asset_check_keys)
        if failed_here:
            raise dg.Failure(
                f"merged without {', '.join(failed_here)}: their fetch failed in this run, or a day of theirs was kept "
                "because the fetch would remove too much of it (no_mass_removal; see the provider step's "
                "log); their previous files are kept and all_connections_present fails for their days"
            )

    return lms_completions_checks


def _checks_in_run(context: dg.AssetExecutionContext) -> set[str]:
    """The checks of `lms_completions` this run evaluates."""
    return {key.name for key in run_checks(context) if key.asset_key == LMS}


def _failed(
    context: dg.AssetExecutionContext | dg.AssetCheckExecutionContext,
    connections: Sequence[Connection],
    days: Sequence[PartitionDay],
) -> tuple[dict[str, tuple[str, ...]], tuple[str, ...]]:
    keys = [day.date.isoformat() for day in days]
    return failed_attempts(context.instance, connections, keys, this_run=context.run.run_id)
