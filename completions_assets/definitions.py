"""The code location: assets, checks, jobs, schedules, sensors and resources, wired together.

Loaded lazily (`@dg.definitions`): importing this module reads no setting and no connections
file; Dagster calls `defs()` when it loads the code location (the CLI, `dg dev`, a step
process), so a bad setting is reported as the code location's load error, and a test can
build the definitions under settings of its own.

A process builds them once for what they are built from (the environment and the connections
file as it is on disk): every step process of a run loads the code location, and at hundreds of
connections building the definitions costs about a second. A run's forkserver builds them
before it forks its steps (steps/forkserver_preload.py), so the steps inherit them.
"""

import functools
import os
import warnings

import dagster as dg

from completions_assets.connections import FILE_VARIABLE, load_connections
from completions_assets.defs.assets import build_assets
from completions_assets.defs.audit import build_audit_job, build_audit_schedule
from completions_assets.defs.executor import select_executor
from completions_assets.defs.freshness import build_freshness_checks, build_freshness_sensors
from completions_assets.defs.members_asset import dimension_assets
from completions_assets.defs.resources import build_resources
from completions_assets.defs.schedules import build_job, build_rebuild_sensor, build_schedule
from completions_assets.partitions import daily_partitions
from completions_assets.providers import PROVIDERS
from completions_assets.settings import load_settings


@dg.definitions
def defs() -> dg.Definitions:
    return _built(_built_from())


def _built_from() -> tuple[object, ...]:
    """What the definitions depend on: the environment, and which connections file, as changed last."""
    path = os.environ.get(FILE_VARIABLE)
    try:
        found = os.stat(path) if path else None
        file = (found.st_ino, found.st_size, found.st_mtime_ns) if found else None
    except OSError:
        file = None  # load_connections reports why it cannot read it
    return tuple(sorted(os.environ.items())), file


@functools.lru_cache(maxsize=1)
def _built(_: tuple[object, ...]) -> dg.Definitions:
    settings = load_settings()
    connections = load_connections(PROVIDERS)
    partitions_def = daily_partitions(settings)
    # Partitioned check specs (preview) and single-run backfill policies (beta) are what
    # record one check result per day in one run per range; say so once, here.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.PreviewWarning)
        warnings.simplefilter("ignore", dg.BetaWarning)
        assets = [*build_assets(partitions_def, connections), *dimension_assets(connections)]
    return dg.Definitions(
        assets=assets,
        asset_checks=build_freshness_checks(settings),
        jobs=[build_job(), build_audit_job(connections)],
        schedules=[build_schedule(settings), build_audit_schedule(settings, connections)],
        sensors=[build_rebuild_sensor(), *build_freshness_sensors(settings)],
        resources=build_resources(connections, settings),
        executor=select_executor(),
    )
