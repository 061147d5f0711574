"""The code location: assets, checks, job, schedule and resources, wired together."""

import warnings

import dagster as dg

from completions_assets.connections import load_connections
from completions_assets.defs.assets import build_assets
from completions_assets.defs.resources import build_resources
from completions_assets.defs.schedules import build_job, build_rebuild_sensor, build_schedule
from completions_assets.partitions import daily_partitions
from completions_assets.providers import PROVIDERS
from completions_assets.settings import load_settings

settings = load_settings()
partitions_def = daily_partitions(settings)
connections = load_connections(PROVIDERS)
completions_job = build_job()

# Partitioned check specs (preview) and single-run backfill policies (beta) are
# what record one check result per day in range runs; say so once, here.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", dg.PreviewWarning)
    warnings.simplefilter("ignore", dg.BetaWarning)
    assets = build_assets(partitions_def, connections)

defs = dg.Definitions(
    assets=assets,
    jobs=[completions_job],
    schedules=[build_schedule(completions_job, settings)],
    sensors=[build_rebuild_sensor()],
    resources=build_resources(connections, settings),
)
