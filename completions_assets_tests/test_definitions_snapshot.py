"""The definitions as Dagster loads them, against a committed snapshot: asset keys and their
groups, kinds, tags and partitions, check names, jobs, schedules, sensors, resource keys, pools
and the executor. Asset and check keys, job, schedule and sensor names and resource keys are
a contract (the instance's history and the operators' run config refer to them), so a change
fails here until the snapshot is updated on purpose:

    COMPLETIONS_UPDATE_SNAPSHOT=1 .venv/bin/python -m pytest completions_assets_tests/test_definitions_snapshot.py

Built from the shipped example connections file under the default settings.
"""

import json
import os
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from completions_assets.connections import FILE_VARIABLE
from completions_assets.local.launch import EXAMPLE_CONNECTIONS

pytestmark = pytest.mark.unit

SNAPSHOT = Path(__file__).parent / "snapshots" / "definitions.json"
UPDATE = bool(os.environ.get("COMPLETIONS_UPDATE_SNAPSHOT"))  # read before the fixture clears COMPLETIONS_*


def _partitions(partitions_def: dg.PartitionsDefinition | None) -> str | None:
    if partitions_def is None:
        return None
    assert isinstance(partitions_def, dg.DailyPartitionsDefinition)
    return f"daily from {partitions_def.start.date().isoformat()} in {partitions_def.timezone}"


def describe(defs: dg.Definitions) -> dict[str, Any]:
    assets: dict[str, Any] = {}
    checks: dict[str, Any] = {}
    for assets_def in [*(defs.assets or []), *(defs.asset_checks or [])]:
        assert isinstance(assets_def, dg.AssetsDefinition)
        for spec in assets_def.specs:
            assets[spec.key.to_user_string()] = {
                "group": spec.group_name,
                "kinds": sorted(spec.kinds),
                "tags": {k: v for k, v in sorted(spec.tags.items()) if not k.startswith("dagster/kind/")},
                "partitions": _partitions(spec.partitions_def),
                "automation_condition": spec.automation_condition is not None,
            }
        for check in assets_def.check_specs:
            checks[check.key.to_user_string()] = {
                "blocking": check.blocking,
                "partitions": _partitions(check.partitions_def),
            }
    job = defs.resolve_implicit_global_asset_job_def()
    jobs = {}
    for unresolved in defs.jobs or []:
        resolved = defs.resolve_job_def(unresolved.name)
        jobs[unresolved.name] = sorted(op.name for op in resolved.graph.iterate_op_defs())
    ops = [op for name in jobs for op in defs.resolve_job_def(name).graph.iterate_op_defs()]
    return {
        "assets": dict(sorted(assets.items())),
        "checks": dict(sorted(checks.items())),
        "groups": sorted({a["group"] for a in assets.values()}),
        "kinds": sorted({kind for a in assets.values() for kind in a["kinds"]}),
        "jobs": dict(sorted(jobs.items())),
        "schedules": {
            s.name: {"cron": s.cron_schedule, "timezone": s.execution_timezone, "default": s.default_status.value}
            for s in sorted(defs.schedules or [], key=lambda s: s.name)
            if isinstance(s, dg.ScheduleDefinition)
        },
        "sensors": {
            s.name: {
                "type": type(s).__name__,
                "default": s.default_status.value,
                "interval": s.minimum_interval_seconds,
            }
            for s in sorted(defs.sensors or [], key=lambda s: s.name)
        },
        "resources": sorted(defs.resources or {}),
        "pools": sorted({op.pool for op in [*ops, *job.graph.iterate_op_defs()] if op.pool}),
        "executor": job.executor_def.name,
    }


@pytest.fixture
def example_environment(monkeypatch):
    for name in list(os.environ):
        if name.startswith(("COMPLETIONS_", "BINDBEE_", "NEXUDUS_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv(FILE_VARIABLE, str(EXAMPLE_CONNECTIONS))


def test_the_definitions_match_the_committed_snapshot(example_environment):
    from completions_assets.definitions import defs

    current = describe(defs())
    if UPDATE:
        SNAPSHOT.write_text(json.dumps(current, indent=2, ensure_ascii=False) + "\n")
    assert current == json.loads(SNAPSHOT.read_text()), f"the definitions changed: see {SNAPSHOT} (docstring above)"


def test_importing_the_definitions_reads_no_setting(monkeypatch):
    # Lazy: a bad setting fails when Dagster loads the definitions, not at import.
    import importlib

    import completions_assets.definitions as definitions

    monkeypatch.setenv("COMPLETIONS_TIMEZONE", "Nowhere/Else")
    importlib.reload(definitions)
    with pytest.raises(Exception, match="COMPLETIONS_TIMEZONE"):
        definitions.defs()


def test_a_process_builds_the_definitions_once_for_what_they_are_built_from(example_environment, tmp_path, monkeypatch):
    # Every step process of a run loads the code location; built once (in the run's forkserver),
    # they are not built again per step. A changed setting or connections file builds them anew.
    from completions_assets.definitions import defs

    first = defs()
    assert defs() is first
    monkeypatch.setenv("COMPLETIONS_TIMEZONE", "Asia/Tokyo")
    in_tokyo = defs()
    assert in_tokyo is not first
    assert {s.name: s.execution_timezone for s in in_tokyo.schedules or []}[
        "completions_daily_schedule"
    ] == "Asia/Tokyo"
    edited = tmp_path / "connections.yaml"
    edited.write_text(EXAMPLE_CONNECTIONS.read_text())
    monkeypatch.setenv(FILE_VARIABLE, str(edited))
    assert defs() is defs()
    edited.write_text(EXAMPLE_CONNECTIONS.read_text().replace("acme", "umbrella"))
    keys = {key.to_user_string() for key in defs().resolve_all_asset_keys()}
    assert "bindbee_completions/umbrella" in keys and "bindbee_completions/acme" not in keys
