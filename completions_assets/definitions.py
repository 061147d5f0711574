"""The code location: assets, checks, job, schedule and resources, wired together."""

import warnings

import dagster as dg

from completions_assets.connections import load_connections
from completions_assets.defs.assets import build_assets
from completions_assets.defs.audit import build_audit_job, build_audit_schedule
from completions_assets.defs.executor import select_executor
from completions_assets.defs.freshness import build_freshness_checks, build_freshness_sensors
from completions_assets.defs.lms_asset import LMS
from completions_assets.defs.members_asset import dimension_assets
from completions_assets.defs.resources import build_resources
from completions_assets.defs.schedules import build_job, build_rebuild_sensor, build_schedule
from completions_assets.partitions import daily_partitions
from completions_assets.providers import PROVIDERS
from completions_assets.settings import load_settings

settings = load_settings()
partitions_def = daily_partitions(settings)
connections = load_connections(PROVIDERS)
completions_job = build_job()

# Partitioned check specs (preview), single-run backfill policies (beta) and the
# partition-aware freshness checks (superseded by the partition-blind
# FreshnessPolicy) are what this needs; say so once, here.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", dg.PreviewWarning)
    warnings.simplefilter("ignore", dg.BetaWarning)
    warnings.simplefilter("ignore", dg.SupersessionWarning)
    assets = [*build_assets(partitions_def, connections), *dimension_assets(connections)]
    freshness_checks = build_freshness_checks(next(a for a in assets if LMS in a.keys), settings)
    sensors = [build_rebuild_sensor(), *build_freshness_sensors(freshness_checks)]

defs = dg.Definitions(
    assets=assets,
    asset_checks=freshness_checks,
    jobs=[completions_job, build_audit_job(connections)],
    schedules=[build_schedule(settings), build_audit_schedule(settings, connections)],
    sensors=sensors,
    resources=build_resources(connections, settings),
    executor=select_executor(),
)
