"""A step's claims on its connections' pools, against a real (SQLite) instance: limits read once
when the step starts, the instance's default given to new pools, a limit set by hand kept, and one
holder per slot across steps."""

from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from completions_assets.turns import PoolSlots

pytestmark = pytest.mark.unit

POOLS = [f"bindbee-c{n}" for n in range(30)]


def _instance(home: Path, default_limit: int | None) -> dg.DagsterInstance:
    pools = f"concurrency:\n  pools:\n    default_limit: {default_limit}\n" if default_limit is not None else ""
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n" + pools)
    return dg.DagsterInstance.from_config(str(home))


@pytest.fixture
def limited(tmp_path: Path) -> Iterator[dg.DagsterInstance]:
    with _instance(tmp_path, 1) as instance:
        yield instance


def test_new_pools_get_the_default_limit_and_one_step_holds_each_slot(limited):
    first = PoolSlots(limited, "run-1", "bindbee_completions", POOLS)
    second = PoolSlots(limited, "run-2", "bindbee_completions", POOLS)

    assert {p: limited.event_log_storage.get_concurrency_info(p).slot_count for p in POOLS} == dict.fromkeys(POOLS, 1)
    assert all(first.claim(p) for p in POOLS)
    assert not any(second.claim(p) for p in POOLS)
    first.free(POOLS[0])
    assert second.claim(POOLS[0])
    first.free_all()
    second.free_all()
    assert not any(limited.event_log_storage.get_concurrency_info(p).claimed_slots for p in POOLS)


def test_a_limit_set_by_hand_is_kept(limited):
    limited.event_log_storage.set_concurrency_slots(POOLS[0], 3)

    PoolSlots(limited, "run-1", "bindbee_completions", POOLS)

    assert limited.event_log_storage.get_concurrency_info(POOLS[0]).slot_count == 3


def test_claims_read_no_pool_limits_whatever_the_number_of_pools(limited, monkeypatch):
    slots = PoolSlots(limited, "run-1", "bindbee_completions", POOLS)
    reads: list[str] = []
    storage = type(limited.event_log_storage)
    for name in ("get_pool_limits", "get_concurrency_keys", "get_concurrency_infos"):
        original = getattr(storage, name)
        monkeypatch.setattr(
            storage, name, lambda self, *a, _o=original, _n=name, **k: reads.append(_n) or _o(self, *a, **k)
        )

    assert all(slots.claim(p) for p in POOLS)
    assert reads == []


def test_without_a_default_limit_unlimited_pools_are_claimed_without_the_storage(tmp_path, monkeypatch):
    with _instance(tmp_path, None) as instance:
        slots = PoolSlots(instance, "run-1", "bindbee_completions", POOLS)
        monkeypatch.setattr(type(instance.event_log_storage), "claim_concurrency_slot", pytest.fail)

        assert all(slots.claim(p) for p in POOLS)
        assert instance.event_log_storage.get_concurrency_keys() == set()
