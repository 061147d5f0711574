"""`nexudus_course_members` over real HTTP: the snapshot record by record against the sandbox's
enrolments, paged and paced with the Nexudus client's session; and the join the merge makes."""

import datetime as dt
from typing import Any

import pyarrow as pa
import pytest

from completions_assets.connections import default_connection
from completions_assets.http.pacing import SystemClock
from completions_assets.http.session import RequestStats
from completions_assets.partitions import PartitionDay
from completions_assets.providers.nexudus import NEXUDUS
from completions_assets.providers.nexudus.enrolments import with_enrolments
from completions_assets.providers.nexudus.members import MEMBERS_SCHEMA, MembersSnapshot, fetch_members
from completions_assets.sandbox import Sandbox
from completions_assets.steps.dimensions import snapshot_facts
from completions_assets.steps.members import evaluate
from completions_assets_tests.clients_support import nexudus_client, running_sandbox
from completions_assets_tests.support import SANDBOX

pytestmark = pytest.mark.integration

UTC = dt.timezone.utc


def truth(sandbox: Sandbox) -> list[dict]:
    return [
        {
            "id": m["Id"],
            "coworker_id": m["CoworkerId"],
            "course_id": m["CourseId"],
            "course_title": m["CourseTitle"],
            "coworker_full_name": m["CoworkerFullName"],
        }
        for m in sandbox.dataset.course_members()
    ]


def test_the_snapshot_is_every_enrolment_paged_and_paced() -> None:
    with running_sandbox(days=2, rate_limits=True, nexudus_member_removed=True) as sb:
        # Real pacing (one request per 100 ms) under the sandbox's enforced limits: no 409.
        paced: dict[str, Any] = {"page_size": 40, "min_interval_ms": 100, "requests_per_minute": 120}
        with nexudus_client(sb, clock=SystemClock(), **paced) as client:
            snapshot = fetch_members(client)
        assert snapshot.table.schema == MEMBERS_SCHEMA
        assert snapshot.table.to_pylist() == truth(sb)
        assert snapshot.reported_total == snapshot.table.num_rows == 399  # the removed enrolment is not listed
        assert snapshot.stats.pages == 10
        assert sb.stats()["nexudus"]["statuses"] == {"200": 10}
        # Named apart from the completions the same process may fetch in another turn of the account.
        assert {r.user_agent.endswith(") course members") for r in sb.request_log()} == {True}
        assert all(outcome.passed for outcome in evaluate(snapshot).values())


def test_the_checks_fail_on_a_repeated_id_or_a_short_snapshot() -> None:
    rows = [{"id": 1, "coworker_id": 5}, {"id": 1, "coworker_id": 5}, {"id": 2, "coworker_id": 6}]
    table = pa.Table.from_pylist(rows, schema=MEMBERS_SCHEMA)
    outcomes = evaluate(MembersSnapshot(table, 4, RequestStats()))
    assert outcomes["member_ids_unique"].failed_rows == 2 and outcomes["member_ids_unique"].examples == ("1",)
    assert outcomes["member_count_matches_total_items"].failed_rows == 1


def test_every_completed_lesson_finds_its_person_and_course() -> None:
    with running_sandbox(**{**SANDBOX.__dict__, "nexudus_member_removed": False}) as sb:
        with nexudus_client(sb, static=True) as client:
            members = fetch_members(client).table
            records = sb.dataset.records("nexudus")
        by_member = {m["Id"]: m for m in sb.dataset.course_members()}
        raw = pa.table({"course_member_id": pa.array([r["CourseMemberId"] for r in records], pa.int64())})
        enriched = with_enrolments(raw, members).to_pylist()
        for record, row in zip(records, enriched, strict=True):
            member = by_member[record["CourseMemberId"]]
            assert (row["member_coworker_id"], row["member_course_id"], row["member_course_title"]) == (
                member["CoworkerId"],
                member["CourseId"],
                member["CourseTitle"],
            )


def test_a_missing_or_older_snapshot_is_named_in_the_days_metadata() -> None:
    connection = default_connection(NEXUDUS, {})
    day = PartitionDay(dt.date(2024, 3, 1), dt.datetime(2024, 3, 1, tzinfo=UTC), dt.datetime(2024, 3, 2, tzinfo=UTC))
    snapshot = MEMBERS_SCHEMA.empty_table()
    assert snapshot_facts({connection: None}, {}, day) == {"nexudus_course_members_missing": ["nexudus:default"]}
    before = {connection: dt.datetime(2024, 3, 1, 23, tzinfo=UTC)}
    assert snapshot_facts({connection: snapshot}, before, day) == {
        "nexudus_course_members_older_than_day": ["nexudus:default"]
    }
    after = {connection: dt.datetime(2024, 3, 2, 0, 5, tzinfo=UTC)}
    assert snapshot_facts({connection: snapshot}, after, day) == {}
