"""The code location: assets, checks, job, schedule and resources, wired together."""

import os

import dagster as dg

from completions_assets.assets import build_assets
from completions_assets.bindbee import BindbeeResource
from completions_assets.checks import build_lms_checks
from completions_assets.config import load_settings
from completions_assets.nexudus import NexudusResource
from completions_assets.partitions import daily_partitions
from completions_assets.schedules import build_job, build_schedule
from completions_assets.storage import ParquetStorage

settings = load_settings()
partitions_def = daily_partitions(settings)
completions_job = build_job()


def nexudus_resource() -> NexudusResource:
    base_url = os.environ.get("NEXUDUS_BASE_URL", "https://spaces.nexudus.com")
    # Only the presence of a variable decides the auth flow; values stay in EnvVar.
    if "NEXUDUS_ACCESS_TOKEN" in os.environ:
        credentials = {"access_token": dg.EnvVar("NEXUDUS_ACCESS_TOKEN")}
    else:
        credentials = {
            "username": dg.EnvVar("NEXUDUS_USERNAME"),
            "password": dg.EnvVar("NEXUDUS_PASSWORD"),
        }
    return NexudusResource(base_url=base_url, timezone=settings.timezone, **credentials)


defs = dg.Definitions(
    assets=build_assets(partitions_def),
    asset_checks=[build_lms_checks(partitions_def)],
    jobs=[completions_job],
    schedules=[build_schedule(completions_job, settings)],
    resources={
        "bindbee": BindbeeResource(
            base_url=os.environ.get("BINDBEE_BASE_URL", "https://api.bindbee.dev"),
            api_key=dg.EnvVar("BINDBEE_API_KEY"),
            connector_token=dg.EnvVar("BINDBEE_CONNECTOR_TOKEN"),
        ),
        "nexudus": nexudus_resource(),
        "storage": ParquetStorage(root=settings.data_root),
    },
)
