"""The local instance's event log (completions_assets/local/event_log.py): Dagster's SQLite event
log where Dagster keeps it, with one connection per database instead of one per event, a bounded
number of runs' connections, none used across a fork or kept over a wipe, every event read back,
and a home made with Dagster's own event log read on."""

import multiprocessing
import sys
import time
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy
from dagster._core.events import DagsterEvent, DagsterEventType, StepMaterializationData
from dagster._core.events.log import EventLogEntry

from completions_assets.local.event_log import KEPT_RUN_CONNECTIONS, KeptConnectionSqliteEventLogStorage
from completions_assets.local.launch import prepare_dagster_home

pytestmark = pytest.mark.unit


def _materialize(instance: dg.DagsterInstance, run_id: str, asset: str, partition: str) -> None:
    event = DagsterEvent(
        DagsterEventType.ASSET_MATERIALIZATION.value,
        "job",
        event_specific_data=StepMaterializationData(dg.AssetMaterialization(dg.AssetKey(asset), partition=partition)),
    )
    entry = EventLogEntry(
        error_info=None,
        level=20,
        user_message="",
        run_id=run_id,
        timestamp=time.time(),
        dagster_event=event,
        job_name="job",
    )
    instance.store_event(entry)


def _kept(instance: dg.DagsterInstance) -> KeptConnectionSqliteEventLogStorage:
    storage = instance.event_log_storage
    assert isinstance(storage, KeptConnectionSqliteEventLogStorage)
    return storage


def test_the_local_instance_keeps_one_connection_per_database_where_dagster_keeps_its_event_log(tmp_path: Path):
    home = prepare_dagster_home(tmp_path / "home")
    with dg.DagsterInstance.from_config(str(home)) as instance:
        storage = _kept(instance)
        days = [f"2024-01-{day:02d}" for day in range(1, 11)]
        for day in days:
            _materialize(instance, "run-1", "a", day)
        engines = dict(storage._engines)
        opened: list[str] = []
        for name, engine in engines.items():
            sqlalchemy.event.listen(engine, "connect", lambda *_, name=name: opened.append(name))
        for day in days:
            _materialize(instance, "run-1", "b", day)
        assert set(storage.kept_connections()) == {"index", "run-1"}
        assert all(storage._engines[name] is engine for name, engine in engines.items())  # the same engines
        assert opened == []  # and the same SQLite connections: none opened for 10 more events
        assert instance.get_materialized_partitions(dg.AssetKey("b")) == set(days)
        assert len(instance.all_logs("run-1")) == 2 * len(days)
    assert (home / "history" / "runs" / "index.db").exists() and (home / "history" / "runs" / "run-1.db").exists()


def test_only_the_last_runs_keep_their_connections_and_no_event_is_lost(tmp_path: Path):
    home = prepare_dagster_home(tmp_path / "home")
    runs = [f"run-{n}" for n in range(KEPT_RUN_CONNECTIONS + 5)]
    with dg.DagsterInstance.from_config(str(home)) as instance:
        for run in runs:
            _materialize(instance, run, "a", "2024-01-01")
        storage = _kept(instance)
        assert set(storage.kept_connections()) == {"index", *runs[-KEPT_RUN_CONNECTIONS:]}
        assert [len(instance.all_logs(run)) for run in runs] == [1] * len(runs)  # evicted runs read again
        assert len(storage.kept_connections()) == KEPT_RUN_CONNECTIONS + 1


def _store_with(instance: dg.DagsterInstance, run_id: str) -> None:
    """In a forked child: store an event; exit 3 if it went through a connection the parent opened."""
    storage = _kept(instance)
    inherited = {id(engine) for engine in storage._engines.values()}
    _materialize(instance, run_id, "forked", "2024-01-02")
    sys.exit(3 if inherited & {id(engine) for engine in storage._engines.values()} else 0)


def test_a_forked_process_opens_its_own_connections_and_a_wipe_closes_them(tmp_path: Path):
    home = prepare_dagster_home(tmp_path / "home")
    with dg.DagsterInstance.from_config(str(home)) as instance:
        _materialize(instance, "run-1", "parent", "2024-01-01")
        storage = _kept(instance)
        kept = dict(storage._engines)
        child = multiprocessing.get_context("fork").Process(target=_store_with, args=(instance, "run-1"))
        child.start()
        child.join(timeout=60)
        assert child.exitcode == 0  # 3: the child stored through its parent's connection
        assert all(storage._engines[name] is engine for name, engine in kept.items())  # the parent's, untouched
        _materialize(instance, "run-1", "parent", "2024-01-02")
        assert {record.asset_key.path[0] for record in _materializations(instance)} == {"parent", "forked"}
        assert len(instance.all_logs("run-1")) == 3

        instance.wipe()
        assert storage.kept_connections() == ("index",)  # reopened by the wipe itself, on the new index
        assert instance.all_logs("run-1") == []
        _materialize(instance, "run-2", "after", "2024-01-01")
        assert len(instance.all_logs("run-2")) == 1
        assert (home / "history" / "runs" / "run-2.db").exists()


def _materializations(instance: dg.DagsterInstance) -> list:
    return [
        record for key in instance.get_asset_keys() for record in instance.fetch_materializations(key, limit=10).records
    ]


def test_a_home_made_before_keeps_its_history(tmp_path: Path):
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")  # Dagster's own event log
    with dg.DagsterInstance.from_config(str(home)) as before:
        assert not isinstance(before.event_log_storage, KeptConnectionSqliteEventLogStorage)
        _materialize(before, "run-1", "a", "2024-01-01")
    prepare_dagster_home(home)  # what `make dev` does on start
    with dg.DagsterInstance.from_config(str(home)) as after:
        _kept(after)
        assert after.get_materialized_partitions(dg.AssetKey("a")) == {"2024-01-01"}
        assert len(after.all_logs("run-1")) == 1
