"""Connections' pools on the production instance (deploy/dagster.yaml on a real PostgreSQL): steps
starting at the same moment on different machines each create a new connection's pool from the
instance's default limit; none fails and the pool keeps one slot, so no manual step is needed."""

import threading
from collections.abc import Iterator
from contextlib import ExitStack

import dagster as dg
import pytest

from completions_assets.local.launch import REPO, prepare_dagster_home
from completions_assets.turns import PoolSlots

pytestmark = pytest.mark.e2e

STEPS = 6
POOLS = [f"nexudus-new{n}" for n in range(8)]


@pytest.fixture
def homes(postgres_server, tmp_path, monkeypatch) -> Iterator[list[dg.DagsterInstance]]:
    """One instance per step, as on separate machines, all on one fresh database."""
    for name, value in postgres_server.fresh_database("pools_at_once").items():
        monkeypatch.setenv(name, value)
    config = REPO / "deploy" / "dagster.yaml"
    prepare_dagster_home(tmp_path / "first", config, environ={})  # the schema, as the first process makes it
    with ExitStack() as stack:
        yield [
            stack.enter_context(
                dg.DagsterInstance.from_config(str(prepare_dagster_home(tmp_path / f"{n}", config, environ={})))
            )
            for n in range(STEPS)
        ]


def test_steps_starting_at_once_create_each_new_pool_once_with_one_slot(homes):
    start = threading.Barrier(STEPS)
    slots: dict[int, PoolSlots] = {}
    errors: list[BaseException] = []

    def step(n: int) -> None:
        start.wait()
        try:
            slots[n] = PoolSlots(homes[n], f"run-{n}", "nexudus_completions", POOLS)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=step, args=(n,)) for n in range(STEPS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    storage = homes[0].event_log_storage
    assert {p: storage.get_concurrency_info(p).slot_count for p in POOLS} == dict.fromkeys(POOLS, 1)
    for pool in POOLS:
        assert sum(slots[n].claim(pool) for n in range(STEPS)) == 1  # one holder at a time
    for n in range(STEPS):
        slots[n].free_all()
