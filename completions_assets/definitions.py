"""The code location: assets, checks, job, schedule and resources, wired together."""

import os
import warnings

import dagster as dg

from completions_assets.defs.assets import build_assets
from completions_assets.providers.bindbee import BindbeeResource
from completions_assets.defs.lms_checks import build_lms_checks
from completions_assets.settings import ConfigError, load_settings
from completions_assets.http.errors import ConfigurationError
from completions_assets.http.session import validate_base_url
from completions_assets.providers.nexudus.client import NexudusResource
from completions_assets.partitions import daily_partitions
from completions_assets.defs.schedules import build_job, build_schedule
from completions_assets.storage import ParquetStorage

settings = load_settings()
partitions_def = daily_partitions(settings)
completions_job = build_job()


def base_url(variable: str, provider: str, default: str) -> str:
    """A provider's base URL, refused when the code location loads unless https
    (or http to loopback), so no step of any provider starts with a bad one."""
    value = os.environ.get(variable, default)
    try:
        validate_base_url(provider, value)
    except ConfigurationError as exc:
        raise ConfigError(f"{variable}: {exc}") from None
    return value


def nexudus_resource() -> NexudusResource:
    url = base_url("NEXUDUS_BASE_URL", "nexudus", "https://spaces.nexudus.com")
    # Only the presence of a variable decides the auth flow; values stay in EnvVar.
    if "NEXUDUS_ACCESS_TOKEN" in os.environ:
        credentials = {"access_token": dg.EnvVar("NEXUDUS_ACCESS_TOKEN")}
    else:
        credentials = {
            "username": dg.EnvVar("NEXUDUS_USERNAME"),
            "password": dg.EnvVar("NEXUDUS_PASSWORD"),
        }
    return NexudusResource(base_url=url, timezone=settings.timezone, **credentials)


# Partitioned check specs (preview) and single-run backfill policies (beta) are
# what record one check result per day in range runs; say so once, here.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", dg.PreviewWarning)
    warnings.simplefilter("ignore", dg.BetaWarning)
    assets = build_assets(partitions_def)
    lms_checks = build_lms_checks(partitions_def)

defs = dg.Definitions(
    assets=assets,
    asset_checks=[lms_checks],
    jobs=[completions_job],
    schedules=[build_schedule(completions_job, settings)],
    resources={
        "bindbee": BindbeeResource(
            base_url=base_url("BINDBEE_BASE_URL", "bindbee", "https://api.bindbee.dev"),
            api_key=dg.EnvVar("BINDBEE_API_KEY"),
            connector_token=dg.EnvVar("BINDBEE_CONNECTOR_TOKEN"),
        ),
        "nexudus": nexudus_resource(),
        "storage": ParquetStorage(root=settings.data_root),
    },
)
