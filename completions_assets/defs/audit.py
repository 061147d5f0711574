"""The audit of older days: `completions_audit_job`, one run per audit, and its schedule.

Days past the daily lookback are never fetched again by the schedule, yet a
Nexudus record can be deleted and a Bindbee connector can correct (or lose) a
record long after its day was written. One audit run holds one step per
provider that finds, per connection, which stored days of the audit range no
longer match the provider, fetches only those again and replaces their files
(under the mass-removal guard), then a step that rebuilds `lms_completions` for
exactly those days. Everything it writes is reported as materializations and
check results of the same assets, so the UI shows each changed day with what
changed (`rows_added`, `rows_removed`, `rows_changed`, sample ids).

- Nexudus: one-record probes over spans, halved where they fail
  (providers/nexudus/audit.py).
- Bindbee reports no count: the range is re-read in rotation under a share of
  the connection's daily rate budget (providers/rotation.py).

The schedule is off by default: an audit spends request budget every night, which
the operator should decide to spend (and can size with `budget_share`).
"""

import datetime as dt
from collections.abc import Sequence

import dagster as dg
from pydantic import Field

from completions_assets.connections import Connection
from completions_assets.keys import LMS, connection_key
from completions_assets.lms.checks import LMS_CHECKS
from completions_assets.lms.schema import LMS_KEY, LMS_SCHEMA
from completions_assets.partitions import partition_day
from completions_assets.providers.client import ProviderClient
from completions_assets.providers.planning import StepRecords
from completions_assets.providers.provider import Provider
from completions_assets.settings import Settings, load_settings
from completions_assets.steps.audit import AuditOutcome, audit_connection
from completions_assets.steps.fetching import StepFetch, each_connection
from completions_assets.steps.merging import failed_attempts, merged_days
from completions_assets.steps.removals import NO_MASS_REMOVAL, RemovalGuard, removals_allowed_by
from completions_assets.steps.writing import write_day
from completions_assets.turns import PoolSlots

AUDIT_JOB = "completions_audit_job"
AUDIT_CRON = "35 3 * * *"  # after the daily schedule's run (00:05) has had hours to finish
MERGE_STEP = "merge_audited_days"


class AuditConfig(dg.Config):
    """Run config of an audit step (Launchpad: `ops: {audit_bindbee_completions: {config: …}}`)."""

    audit_date: str = Field(
        default="",
        description="The date the audit runs on (YYYY-MM-DD; default today in COMPLETIONS_TIMEZONE). It audits "
        "the COMPLETIONS_AUDIT_DAYS days before it that the daily schedule's lookback no longer re-reads.",
    )
    budget_share: float = Field(
        default=0.1,
        gt=0,
        le=1,
        description="Share of a connection's daily rate budget (requests_per_minute x 1440) that the re-reads of "
        "a provider without counts (Bindbee) may spend per audit.",
    )
    allow_removals: bool = Field(
        default=False,
        description="Apply re-fetches that remove more than COMPLETIONS_MAX_REMOVED_SHARE of a stored day (the run "
        "tag completions/allow_removals=true does the same).",
    )


def _audit_date(config: AuditConfig, settings: Settings) -> dt.date:
    if config.audit_date:
        return dt.date.fromisoformat(config.audit_date)
    return dt.datetime.now(settings.zone).date()


def audit_op(provider: Provider, connections: Sequence[Connection]) -> dg.OpDefinition:
    """The audit of every connection of `provider`, each in its own turn (its pool), side by side."""
    name = f"audit_{provider.asset_name}"

    @dg.op(name=name, required_resource_keys={provider.name, "storage"}, out=dg.Out(list))
    def audit(context: dg.OpExecutionContext, config: AuditConfig):
        settings = load_settings()
        pairs = [(c, c.configure(getattr(context.resources, provider.name))) for c in connections]
        step = StepFetch(
            days=(),
            storage=context.resources.storage,
            records=StepRecords(10_000),
            checks=frozenset({NO_MASS_REMOVAL, *(check.name for check in provider.checks)}),
            slots=PoolSlots(context.instance, context.run.run_id, name, (c.pool for c, _ in pairs)),
            guard=RemovalGuard(
                settings.max_removed_share, removals_allowed_by(config.allow_removals, context.run.tags)
            ),
        )

        audit_date = _audit_date(config, settings)

        def work(client: ProviderClient, outcome: AuditOutcome) -> None:
            audit_connection(client, outcome, step, settings, audit_date, config.budget_share)

        changed: set[str] = set()
        failed: list[str] = []
        evaluations: list[dg.AssetCheckEvaluation] = []
        for outcome in each_connection(pairs, step.slots, step.stop, len(pairs), context.log.info, AuditOutcome, work):
            changed |= _report(context, outcome, evaluations)
            if outcome.error is not None:
                failed.append(f"{outcome.connection.label}: {outcome.error}")
                context.log.error(f"audit of {outcome.connection.label} failed: {outcome.error}")
        yield from evaluations
        yield dg.Output(sorted(changed), metadata={"days_changed": len(changed)})
        if failed:
            raise dg.Failure(f"the audit of {len(failed)} {provider.name} connections failed: " + "; ".join(failed))

    return audit


def _report(
    context: dg.OpExecutionContext, outcome: AuditOutcome, evaluations: list[dg.AssetCheckEvaluation]
) -> set[str]:
    """The connection's rewritten days as materializations, their check results added to `evaluations`;
    returns the days written."""
    written: set[str] = set()
    key = connection_key(outcome.connection)
    context.log.info(
        f"audit of {outcome.connection.label}: {outcome.days_audited} stored days compared, "
        f"{outcome.probe_requests} probe requests, re-fetched {[d.isoformat() for d in outcome.days_fetched]}"
    )
    for day in outcome.days:
        partition = day.partition.date.isoformat()
        if day.refused is None:
            metadata = {**day.metadata, **outcome.changes[day.partition.date], "audit": True}
            context.log_event(dg.AssetMaterialization(key, partition=partition, metadata=metadata))
            written.add(partition)
        else:
            context.log.error(day.refusal(outcome.connection))
        evaluations.extend(day.evaluations(key))
    return written


def merge_op(connections: Sequence[Connection]) -> dg.OpDefinition:
    @dg.op(name=MERGE_STEP, ins={"changed": dg.In(list)}, out={}, required_resource_keys={"storage"})
    def merge_audited_days(context: dg.OpExecutionContext, changed: list):
        """`lms_completions` rebuilt, and checked, for the days the audit changed."""
        settings = load_settings()
        days = sorted({day for found in changed for day in found})
        partitions = [partition_day(dt.date.fromisoformat(day), settings.zone) for day in days]
        failed = failed_attempts(context.instance, connections, days, this_run=context.run.run_id)[0]
        evaluations: list[dg.AssetCheckEvaluation] = []
        checked = {check.name for check in LMS_CHECKS}
        storage = context.resources.storage
        for day, table, facts in merged_days(
            context.instance, storage, connections, partitions, checked, failed, evaluations
        ):
            metadata = write_day(storage, LMS.path[-1], day, table, LMS_SCHEMA, LMS_KEY)
            partition = day.date.isoformat()
            context.log_event(dg.AssetMaterialization(LMS, partition=partition, metadata={**metadata, **facts}))
        yield from evaluations

    return merge_audited_days


def build_audit_job(connections: Sequence[Connection]) -> dg.JobDefinition:
    providers = dict.fromkeys(c.provider for c in connections)
    audits = [audit_op(p, [c for c in connections if c.provider is p]) for p in providers]
    merge = merge_op(connections)

    @dg.job(
        name=AUDIT_JOB,
        description="Finds the stored days of the last COMPLETIONS_AUDIT_DAYS that no longer match the providers, "
        "fetches only those again and rebuilds their lms_completions.",
    )
    def completions_audit_job():
        merge([audit() for audit in audits])

    return completions_audit_job


def build_audit_schedule(settings: Settings, connections: Sequence[Connection]) -> dg.ScheduleDefinition:
    steps = [f"audit_{provider.asset_name}" for provider in dict.fromkeys(c.provider for c in connections)]

    @dg.schedule(
        name="completions_audit_schedule",
        cron_schedule=AUDIT_CRON,
        execution_timezone=settings.timezone,
        job_name=AUDIT_JOB,
        # Off by default: every audit spends request budget; the operator turns it on.
        default_status=dg.DefaultScheduleStatus.STOPPED,
    )
    def completions_audit_schedule(context: dg.ScheduleEvaluationContext):
        day = context.scheduled_execution_time.astimezone(settings.zone).date().isoformat()
        config = {"ops": {step: {"config": {"audit_date": day}} for step in steps}}
        return dg.RunRequest(run_key=f"audit-{day}", run_config=config)

    return completions_audit_schedule
