"""Helpers shared by the end-to-end tests: the shared sandbox's shape, resources pointed at it,
and Dagster runs into `tmp_path` with a real (ephemeral or on-disk) instance."""

import datetime as dt
import itertools
from collections import defaultdict
from collections.abc import Mapping, Sequence
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

import dagster as dg

from completions_assets.connections import default_connection
from completions_assets.defs.assets import build_assets
from completions_assets.defs.members_asset import dimension_assets
from completions_assets.local.launch import INSTANCE_CONFIG, prepare_dagster_home, sandbox_environment
from completions_assets.partitions import daily_partitions
from completions_assets.providers import PROVIDERS
from completions_assets.providers.provider import Provider
from completions_assets.providers.resource import BindbeeResource, NexudusResource
from completions_assets.sandbox import SandboxConfig
from completions_assets.sandbox.app import LoggedRequest
from completions_assets.sandbox.config import DEFAULT_CREDENTIALS
from completions_assets.settings import Settings
from completions_assets.storage import ParquetStorage

# What a run must record for `lms_completions` (docs/contract.md, "Checks"), written out here
# rather than read from the product, so a check that goes missing fails the tests.
LMS_CHECK_NAMES = {
    "unique_completion_ids",
    "required_fields_present",
    "completed_within_partition",
    "reconciles_with_sources",
    "started_before_completed",
    "score_in_range",
    "grade_in_allowed_set",
    "all_connections_present",
    "names_resolved",
}
# What a run records for each `nexudus_course_members` snapshot (unpartitioned).
MEMBERS_CHECK_NAMES = {"member_ids_unique", "member_count_matches_total_items"}
SANDBOX_START = dt.date(2024, 3, 1)
SANDBOX = SandboxConfig(seed=11, start_date=SANDBOX_START, days=20, records_per_day=60)


def resources(base_url: str, root: str, zone: str = "UTC", **overrides: Mapping[str, Any]) -> dict[str, object]:
    return {
        "bindbee": BindbeeResource(
            base_url=base_url,
            api_key=DEFAULT_CREDENTIALS["BINDBEE_API_KEY"],
            connector_token=DEFAULT_CREDENTIALS["BINDBEE_CONNECTOR_TOKEN"],
            **overrides.get("bindbee", {}),
        ),
        "nexudus": NexudusResource(
            base_url=base_url,
            username=DEFAULT_CREDENTIALS["NEXUDUS_USERNAME"],
            password=DEFAULT_CREDENTIALS["NEXUDUS_PASSWORD"],
            timezone=zone,
            **overrides.get("nexudus", {}),
        ),
        "storage": ParquetStorage(root=root),
    }


def definitions_for(
    zone: str = "UTC", providers: Sequence[Provider] = PROVIDERS
) -> list[dg.AssetsDefinition | dg.AssetChecksDefinition]:
    """The code location's assets, one `default` connection per provider (as without a connections file)."""
    settings = Settings(start_date=dt.date(2024, 1, 1), timezone=zone, lookback_days=3, data_root="")
    partitions_def = daily_partitions(settings)
    connections = [default_connection(p, {}) for p in providers]
    return [*build_assets(partitions_def, connections), *dimension_assets(connections)]


def materialize_range(
    first: str,
    last: str,
    resources_: dict[str, object],
    instance: dg.DagsterInstance,
    zone: str = "UTC",
    selection: dg.AssetSelection | None = None,
    providers: Sequence[Provider] = PROVIDERS,
) -> dg.ExecuteInProcessResult:
    """One run over `first`...`last`, as a UI backfill or the schedule launches it."""
    assets = definitions_for(zone, providers)
    tags = {"dagster/asset_partition_range_start": first, "dagster/asset_partition_range_end": last}
    return dg.materialize(
        assets,
        resources=resources_,
        instance=instance,
        tags=tags,
        selection=selection,
        raise_on_error=False,
    )


def location_env(base_url: str, tmp_path: Path, instance_config: Traversable = INSTANCE_CONFIG) -> dict[str, str]:
    """Environment for a CLI or `dagster dev` process: the code location pointed at
    the sandbox, a data root and a DAGSTER_HOME (by default the local instance
    configuration, completions_assets/local/dagster.yaml) in `tmp_path`."""
    home = prepare_dagster_home(tmp_path / "home", instance_config)
    return sandbox_environment(base_url) | {
        "DAGSTER_HOME": str(home),
        "COMPLETIONS_DATA_ROOT": str(tmp_path / "data"),
        "COMPLETIONS_START_DATE": "2024-01-01",
        "COMPLETIONS_TIMEZONE": "UTC",
        # These runs fetch 2024 days: the freshness checks (tested on their own) would be overdue.
        "COMPLETIONS_FRESHNESS_HOUR": "off",
    }


def source_dir(provider: str, connection: str = "default") -> str:
    """Where a connection's raw files live under the data root."""
    return f"{provider}_completions/connection={connection}"


def source_key(provider: str, connection: str = "default") -> dg.AssetKey:
    return dg.AssetKey([f"{provider}_completions", connection])


def overlaps(requests: list[LoggedRequest]) -> list[str]:
    """Per provider, the spans of each client process (by its User-Agent) that intersect."""
    spans: dict[tuple[str, str], list[float]] = defaultdict(list)
    for request in requests:
        bucket = "nexudus" if request.bucket == "token" else request.bucket
        spans[(bucket, request.user_agent)] += [request.arrived, request.answered]
    found = []
    for provider in ("bindbee", "nexudus"):
        mine = sorted((min(t), max(t), agent) for (p, agent), t in spans.items() if p == provider)
        for (_, end, first), (start, _, second) in itertools.pairwise(mine):
            if start < end:
                found.append(f"{provider}: {second} started {end - start:.3f} s before {first} ended")
    return found
