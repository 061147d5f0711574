"""The local instance's event log (completions_assets/local/event_log.py): Dagster's SQLite event
log where Dagster keeps it, with one engine per database instead of one per event, a bounded
number of runs' engines, and every event read back."""

import time
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.events import DagsterEvent, DagsterEventType, StepMaterializationData
from dagster._core.events.log import EventLogEntry

from completions_assets.local.event_log import KEPT_RUN_ENGINES, KeptEngineSqliteEventLogStorage
from completions_assets.local.launch import prepare_dagster_home

pytestmark = pytest.mark.unit


def _materialize(instance: dg.DagsterInstance, run_id: str, asset: str, partition: str) -> None:
    event = DagsterEvent(
        DagsterEventType.ASSET_MATERIALIZATION.value,
        "job",
        event_specific_data=StepMaterializationData(dg.AssetMaterialization(dg.AssetKey(asset), partition=partition)),
    )
    entry = EventLogEntry(
        error_info=None, level=20, user_message="", run_id=run_id, timestamp=time.time(), dagster_event=event, job_name="job"
    )
    instance.store_event(entry)


def test_the_local_instance_keeps_one_engine_per_database_where_dagster_keeps_its_event_log(tmp_path: Path):
    home = prepare_dagster_home(tmp_path / "home")
    with dg.DagsterInstance.from_config(str(home)) as instance:
        storage = instance.event_log_storage
        assert isinstance(storage, KeptEngineSqliteEventLogStorage)
        days = [f"2024-01-{day:02d}" for day in range(1, 11)]
        for day in days:
            _materialize(instance, "run-1", "a", day)
        engines = dict(storage._engines)
        for day in days:
            _materialize(instance, "run-1", "b", day)
        assert set(storage.kept_engines()) == {"index", "run-1"}
        assert all(storage._engines[name] is engine for name, engine in engines.items())  # the same engines
        assert instance.get_materialized_partitions(dg.AssetKey("b")) == set(days)
        assert len(instance.all_logs("run-1")) == 2 * len(days)
    assert (home / "history" / "runs" / "index.db").exists() and (home / "history" / "runs" / "run-1.db").exists()


def test_only_the_last_runs_keep_their_engines_and_no_event_is_lost(tmp_path: Path):
    home = prepare_dagster_home(tmp_path / "home")
    runs = [f"run-{n}" for n in range(KEPT_RUN_ENGINES + 5)]
    with dg.DagsterInstance.from_config(str(home)) as instance:
        for run in runs:
            _materialize(instance, run, "a", "2024-01-01")
        storage = instance.event_log_storage
        assert isinstance(storage, KeptEngineSqliteEventLogStorage)
        assert set(storage.kept_engines()) == {"index", *runs[-KEPT_RUN_ENGINES:]}
        assert [len(instance.all_logs(run)) for run in runs] == [1] * len(runs)  # evicted runs read again
        assert len(storage.kept_engines()) == KEPT_RUN_ENGINES + 1
