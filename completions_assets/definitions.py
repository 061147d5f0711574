"""The code location: assets, checks, job, schedule and resources, wired together."""

import warnings

import dagster as dg

from completions_assets.defs.assets import build_assets
from completions_assets.defs.schedules import build_job, build_schedule
from completions_assets.partitions import daily_partitions
from completions_assets.providers import PROVIDERS
from completions_assets.settings import load_settings
from completions_assets.storage import ParquetStorage

settings = load_settings()
partitions_def = daily_partitions(settings)
completions_job = build_job()

# Partitioned check specs (preview) and single-run backfill policies (beta) are
# what record one check result per day in range runs; say so once, here.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", dg.PreviewWarning)
    warnings.simplefilter("ignore", dg.BetaWarning)
    assets = build_assets(partitions_def, PROVIDERS)

defs = dg.Definitions(
    assets=assets,
    jobs=[completions_job],
    schedules=[build_schedule(completions_job, settings)],
    resources={
        **{provider.name: provider.resource_from_env(settings) for provider in PROVIDERS},
        "storage": ParquetStorage(root=settings.data_root),
    },
)
