"""The audit's rules alone: the Bindbee rotation, the removal guard, and how a Nexudus probe is
compared with the stored rows."""

import datetime as dt

import dagster as dg
import pyarrow as pa
import pytest

from completions_assets.connections import default_connection
from completions_assets.defs.audit import build_audit_schedule
from completions_assets.providers import PROVIDERS
from completions_assets.providers.nexudus.audit import ProbeAnswer, matches
from completions_assets.providers.rotation import daily_budget, day_cost, rotation_days, rotation_period
from completions_assets.settings import Settings
from completions_assets.steps.audit import audit_days
from completions_assets.steps.removals import RemovalGuard, judge, removals_allowed_by

pytestmark = pytest.mark.unit

UTC = dt.timezone.utc
SETTINGS = Settings(start_date=dt.date(2024, 1, 1), timezone="UTC", lookback_days=3, data_root="", audit_days=90)


def test_every_day_of_the_range_is_read_once_per_turn_and_each_audit_stays_in_budget():
    audit = dt.date(2024, 6, 1)
    days = audit_days(audit, SETTINGS, None)
    assert (days[0], days[-1], len(days)) == (dt.date(2024, 3, 3), dt.date(2024, 5, 27), 86)
    costs = {day: day_cost(1_000, 100) for day in days}  # ten pages a day
    period = rotation_period(costs, budget=100, audit_days=90)
    assert period == 9
    read: dict[dt.date, int] = {}
    for n in range(period):
        chosen = rotation_days(days, audit + dt.timedelta(days=n), period)
        assert sum(costs[day] for day in chosen) <= 100
        for day in chosen:
            read[day] = read.get(day, 0) + 1
    assert read == dict.fromkeys(days, 1)


def test_a_budget_too_small_still_reads_every_day_within_the_audit_days():
    days = [dt.date(2024, 1, 1) + dt.timedelta(days=n) for n in range(90)]
    assert rotation_period(dict.fromkeys(days, 100), budget=1, audit_days=90) == 90
    assert daily_budget(200, 0.1) == 28_800 and day_cost(0, 100) == 1 and day_cost(10_000, 100) == 100


def _ids(*ids: str) -> pa.Table:
    return pa.table({"id": pa.array(ids, pa.string())})


@pytest.mark.parametrize(
    ("before", "after", "refused", "removed"),
    [
        (("a", "b", "c", "d", "e"), ("a", "b", "c", "d"), False, 1),  # 20 %: allowed
        (("a", "b", "c", "d", "e"), ("a", "b", "c"), True, 2),  # 40 %
        (("a",), (), True, 1),  # emptied
        ((), (), False, 0),  # an empty day stays empty
        (("a", "b"), ("a", "b", "c"), False, 0),
    ],
)
def test_the_guard_refuses_removing_more_than_the_share_or_emptying_a_day(before, after, refused, removed):
    removal = judge(_ids(*before), _ids(*after), "id", RemovalGuard(0.2))
    assert (removal.refused, removal.removed) == (refused, removed)
    assert removal.outcome().passed is not refused
    allowed = judge(_ids(*before), _ids(*after), "id", RemovalGuard(0.2, "run tag"))
    assert not allowed.refused
    applied = {"removals_applied_by": "run tag"} if refused else {}
    assert allowed.metadata() == applied
    assert {k: v for k, v in allowed.outcome().metadata().items() if k == "removals_applied_by"} == applied


def test_removals_are_allowed_by_run_config_or_run_tag_only():
    assert removals_allowed_by(True, {}) == "run config"
    assert removals_allowed_by(False, {"completions/allow_removals": "true"}) == "run tag"
    assert removals_allowed_by(False, {"completions/allow_removals": "false"}) is None
    assert removals_allowed_by(False, {}) is None


def _at(hour: int, day: int = 2) -> dt.datetime:
    return dt.datetime(2024, 3, day, hour, tzinfo=UTC)


STORED = pa.table(
    {
        "id": pa.array([1, 2, 3, 4, 5], pa.int64()),
        "created_on": pa.array([_at(20, 1), _at(1), _at(12), _at(23), _at(5, 3)], pa.timestamp("us", tz="UTC")),
        "updated_on": pa.array([_at(20, 1), _at(1), _at(13), _at(23), _at(5, 3)], pa.timestamp("us", tz="UTC")),
    }
)


@pytest.mark.parametrize(
    ("answer", "same"),
    [
        (ProbeAnswer(4, _at(20, 1), _at(23), _at(23)), True),  # the window reached into the day before
        (ProbeAnswer(3, _at(1), _at(23), _at(23)), True),
        (ProbeAnswer(2, _at(1), _at(23), _at(23)), False),  # a record between them was deleted
        (ProbeAnswer(2, _at(12), _at(23), _at(23)), False),  # the day's first record was deleted
        (ProbeAnswer(3, _at(1), _at(23), _at(23, 3)), False),  # one was corrected since
        (ProbeAnswer(0, None, None, None), False),
    ],
)
def test_a_probe_matches_only_when_the_stored_rows_between_its_ends_are_exactly_its_total(answer, same):
    assert matches(answer, STORED, _at(0), _at(0, 3)) is same


def test_the_audit_schedule_is_off_by_default_and_audits_on_its_tick_date():
    schedule = build_audit_schedule(SETTINGS, [default_connection(p, {}) for p in PROVIDERS])
    assert schedule.default_status == dg.DefaultScheduleStatus.STOPPED
    assert (schedule.cron_schedule, schedule.job_name) == ("35 3 * * *", "completions_audit_job")
    tick = dt.datetime(2025, 3, 4, 3, 35, tzinfo=UTC)
    requests = schedule.evaluate_tick(dg.build_schedule_context(scheduled_execution_time=tick)).run_requests
    assert requests is not None and len(requests) == 1
    assert requests[0].run_config == {
        "ops": {
            "audit_bindbee_completions": {"config": {"audit_date": "2025-03-04"}},
            "audit_nexudus_completions": {"config": {"audit_date": "2025-03-04"}},
        }
    }
