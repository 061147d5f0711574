"""The daily-partitioned assets of group `lms`: one step per provider that fetches each of its
connections (one asset per connection, `[{provider}_completions, {connection}]`), and
`lms_completions` over all of them.

A provider's step is a subsettable `multi_asset` with one spec per connection, so a run
pays a step's fixed cost once per provider, not per connection, and its checks are yielded
as one `AssetCheckEvaluation` per partition, also in range runs (a plain `@asset` would
demand a single, unpartitioned check result per run).
"""

from collections.abc import Iterator, Sequence

import dagster as dg
from pydantic import Field

from completions_assets.connections import Connection
from completions_assets.defs.lms_asset import lms_asset, lms_checks
from completions_assets.keys import ALL_CONNECTIONS_PRESENT, GROUP, connection_key
from completions_assets.providers.planning import StepRecords
from completions_assets.providers.provider import Provider
from completions_assets.settings import load_settings
from completions_assets.steps.fetching import ConnectionFetch, StepFetch, fetch_connections, selected_connections
from completions_assets.steps.removals import RemovalGuard, check_spec, removals_allowed_by
from completions_assets.steps.writing import check_outputs, report_days, run_checks, run_days
from completions_assets.turns import PoolSlots


class FetchConfig(dg.Config):
    """Run config of a provider's step (Launchpad: `ops: {bindbee_completions: {config: …}}`)."""

    max_concurrent_connections: int = Field(
        default=32, ge=1, description="Connections fetched at once, each within its own rate limits."
    )
    max_records_in_flight: int = Field(
        default=10_000,
        ge=1,
        description="Records the step may hold in memory over all its connections (pages in flight, batches "
        "not yet written to disk, days being cut; each connection also within its resource's own "
        "max_records_in_flight); one connection at a time may exceed it by one day being cut, so that "
        "the step always progresses.",
    )
    allow_removals: bool = Field(
        default=False,
        description="Apply re-fetches that remove more than COMPLETIONS_MAX_REMOVED_SHARE of a stored day (or "
        "empty it); without it such a day keeps its file and fails no_mass_removal. The run tag "
        "completions/allow_removals=true does the same.",
    )


def provider_asset(
    provider: Provider, connections: Sequence[Connection], partitions_def: dg.PartitionsDefinition
) -> dg.AssetsDefinition:
    """Every connection of `provider`, fetched at once in one step."""
    by_key = {connection_key(c): c for c in connections}
    specs = [
        dg.AssetSpec(
            key,
            group_name=GROUP,
            description=f"{provider.description} Connection `{c.name}` of {provider.name}.",
            partitions_def=partitions_def,
            kinds={provider.name, "parquet"},
            tags={"provider": provider.name},
            # A failed connection yields nothing; the merge still runs for the others.
            skippable=True,
        )
        for key, c in by_key.items()
    ]
    check_specs = [
        # Not blocking: a provider's step serves all its connections, so a blocking check
        # would keep every connection of the run out of the merge for one connection's day.
        dg.AssetCheckSpec(check.name, asset=key, description=check.description, partitions_def=partitions_def)
        for key in by_key
        for check in provider.checks
    ] + [check_spec(key, partitions_def) for key in by_key]

    @dg.multi_asset(
        name=provider.asset_name,
        specs=specs,
        check_specs=check_specs,
        required_resource_keys={*(c.provider.name for c in connections), "storage"},
        partitions_def=partitions_def,
        backfill_policy=dg.BackfillPolicy.single_run(),  # a range is one run: each connection fetches it once
        can_subset=True,
    )
    def fetch(context: dg.AssetExecutionContext, config: FetchConfig):
        selected = selected_connections(context, by_key)
        concurrency = min(config.max_concurrent_connections, len(selected)) or 1
        step = StepFetch(
            days=run_days(context),
            storage=context.resources.storage,
            records=StepRecords(config.max_records_in_flight),
            slots=PoolSlots(context.instance, context.run.run_id, provider.asset_name, (c.pool for c, _ in selected)),
            checks=frozenset(check.name for check in context.selected_asset_check_keys),
            guard=RemovalGuard(
                load_settings().max_removed_share, removals_allowed_by(config.allow_removals, context.run.tags)
            ),
        )
        failed: list[ConnectionFetch] = []
        reported: set[dg.AssetCheckKey] = set()
        output_yielded = False
        for outcome in fetch_connections(selected, step, concurrency, context.log.info):
            # One output keeps the merge's fan-in alive; every other connection's days are reported as
            # materialization events alone. Dagster handles each output of an op by walking all of
            # its outputs, so one output per connection would cost in proportion to their number
            # squared (measured: 35 ms per output at 200 connections), and one event more each.
            # A connection with a day whose removal was refused reports its other days alone: the
            # output would record every day of the run's range as materialized.
            as_output = outcome.error is None and not output_yielded and not any(d.refused for d in outcome.days)
            output_yielded |= as_output
            for event in _report(context, outcome, as_output):
                if isinstance(event, dg.AssetCheckEvaluation):
                    reported.add(event.asset_check_key)
                yield event
            if outcome.error is not None:
                failed.append(outcome)
                context.log.error(f"{outcome.connection.label} failed: {outcome.error}")
        yield from check_outputs(context.assets_def, reported)
        # With lms_completions' checks in this run, the failure is named there, once the others are
        # merged. A step whose every connection failed fails here, or a run in which all of them
        # failed would skip the merge and its checks and end as a success; the merge of that run's
        # other steps is then left to the automation condition.
        if failed and (len(failed) == len(selected) or not _reported_later(context)):
            raise dg.Failure(
                f"{len(failed)} of {len(selected)} {provider.name} connections failed: "
                + "; ".join(f"{f.connection.label}: {f.error}" for f in failed)
            )

    return fetch


def _report(context: dg.AssetExecutionContext, outcome: ConnectionFetch, as_output: bool) -> Iterator[object]:
    key = connection_key(outcome.connection)
    written = [(day.partition.date.isoformat(), day.metadata) for day in outcome.days if day.refused is None]
    yield from report_days(context, key, written, whole=as_output)
    for day in outcome.days:
        if day.refused is not None:
            context.log.error(day.refusal(outcome.connection))
        yield from day.evaluations(key)


def _reported_later(context: dg.AssetExecutionContext) -> bool:
    """Whether this run also merges and checks that every connection is present: its job, subset to
    the run's selection, holds that check, which fails the run naming the failed connections."""
    return ALL_CONNECTIONS_PRESENT in run_checks(context)


def build_assets(
    partitions_def: dg.PartitionsDefinition, connections: Sequence[Connection]
) -> list[dg.AssetsDefinition | dg.AssetChecksDefinition]:
    """One step per provider, over its connections, and `lms_completions` over all of them."""
    providers = dict.fromkeys(c.provider for c in connections)
    steps = [provider_asset(p, [c for c in connections if c.provider is p], partitions_def) for p in providers]
    return [*steps, lms_asset(partitions_def, connections), lms_checks(partitions_def, connections)]
