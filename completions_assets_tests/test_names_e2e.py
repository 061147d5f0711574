"""Who completed what, through Dagster against the sandbox: names and ids of every merged row
checked against the sandbox's truth, the person joining one learner's courses, a missing
enrolment snapshot, a connector without expanded names, and no e-mail address anywhere."""

import dataclasses
import datetime as dt
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pyarrow.parquet as pq
import pytest

from completions_assets.local.run_report import check_results
from completions_assets.sandbox import Sandbox, start_sandbox
from completions_assets.sandbox.catalog import MEMBER_REMOVED
from completions_assets.sandbox.reply import json_reply
from completions_assets.storage import ParquetStorage
from completions_assets_tests.clients_support import NAME_FIELDS
from completions_assets_tests.support import SANDBOX, definitions_for, materialize_range, resources

pytestmark = pytest.mark.e2e

FIRST, LAST = "2024-03-06", "2024-03-08"  # the removed enrolment's last completions are on 2024-03-07
LMS = dg.AssetKey("lms_completions")
WITHOUT_MEMBERS = dg.AssetSelection.all() - dg.AssetSelection.key_prefixes("nexudus_course_members")


@pytest.fixture(scope="module")
def removed() -> Iterator[Sandbox]:
    with start_sandbox(dataclasses.replace(SANDBOX, nexudus_member_removed=True)) as sb:
        yield sb


def merged_rows(root: Path) -> list[dict[str, Any]]:
    storage = ParquetStorage(root=str(root))
    days = [dt.date.fromisoformat(FIRST) + dt.timedelta(days=n) for n in range(3)]
    tables = [storage.read("lms_completions", day) for day in days]
    return [row for table in tables if table is not None for row in table.to_pylist()]


def lms_metadata(instance: dg.DagsterInstance, day: str) -> dict[str, Any]:
    records = instance.fetch_materializations(dg.AssetRecordsFilter(asset_key=LMS, asset_partitions=[day]), limit=1)
    materialization = records.records[0].asset_materialization
    assert materialization is not None
    return {k: v.value for k, v in materialization.metadata.items()}


def names_check(instance: dg.DagsterInstance, run_id: str) -> dict[str, dg.AssetCheckEvaluation]:
    return {str(e.partition): e for e in check_results(instance, run_id) if e.check_name == "names_resolved"}


def expected_bindbee(sb: Sandbox) -> dict[str, dict[str, Any]]:
    def name(value: Any, *fields: str) -> str | None:
        return " ".join(value[f] for f in fields) if isinstance(value, dict) else None

    return {
        r["id"]: {
            "user_id": r["user"]["id"],
            "person_id": r["user"]["id"],
            "user_name": name(r["user"], "first_name", "last_name"),
            "course_id": r["course"] and r["course"]["id"],
            "course_title": name(r["course"], "name"),
            "content_title": name(r["content"], "title"),
            "user_email": None,
            "company_name": None,
            "team_names": None,
        }
        for r in sb.dataset.records("bindbee", expand=NAME_FIELDS)
    }


def expected_nexudus(sb: Sandbox, *, snapshot: bool = True) -> dict[str, dict[str, Any]]:
    members = {m["Id"]: m for m in sb.dataset.course_members()} if snapshot else {}
    rows = {}
    for r in sb.dataset.records("nexudus"):
        member = members.get(r["CourseMemberId"], {})
        rows[str(r["Id"])] = {
            "user_id": str(r["CourseMemberId"]),
            "person_id": str(member["CoworkerId"]) if member else None,
            "user_name": r["CourseMemberCoworkerFullName"],
            "course_id": str(member["CourseId"]) if member else None,
            "course_title": member.get("CourseTitle"),
            "content_title": r["CourseLessonTitle"],
            "user_email": None,
            "company_name": r["CourseMemberCoworkerCompanyName"],
            "team_names": r["CourseMemberCoworkerTeamNames"],
        }
    return rows


def test_every_row_names_its_person_and_course_as_the_sandbox_does(removed: Sandbox, tmp_path: Path) -> None:
    instance = dg.DagsterInstance.ephemeral()
    result = materialize_range(FIRST, LAST, resources(removed.base_url, str(tmp_path)), instance)
    assert result.success
    rows = merged_rows(tmp_path)
    want = {"bindbee": expected_bindbee(removed), "nexudus": expected_nexudus(removed)}
    columns = list(want["bindbee"][next(iter(want["bindbee"]))])
    for row in rows:
        assert {c: row[c] for c in columns} == want[row["provider"]][row["completion_id"]], row["completion_id"]
    assert {r["provider"] for r in rows} == {"bindbee", "nexudus"}
    # One person, several courses: person_id joins them (the enrolment id, user_id, does not).
    for provider in ("bindbee", "nexudus"):
        courses: dict[str, set[str]] = {}
        for row in rows:
            if row["provider"] == provider and row["person_id"] and row["course_title"]:
                courses.setdefault(row["person_id"], set()).add(row["course_title"])
        assert max(len(titles) for titles in courses.values()) >= 2, provider
    # The enrolment removed from its course: its completion stays, without a person or course.
    gone = str(removed.dataset.catalog.members[MEMBER_REMOVED].id)
    unresolved = [r for r in rows if r["provider"] == "nexudus" and r["person_id"] is None]
    assert unresolved and {r["user_id"] for r in unresolved} == {gone}
    assert lms_metadata(instance, "2024-03-07")["rows_without_nexudus_course_members"] == len(unresolved)
    checks = names_check(instance, result.run_id)
    assert checks["2024-03-06"].passed and checks["2024-03-08"].passed
    warned = checks["2024-03-07"]
    assert not warned.passed and warned.severity == dg.AssetCheckSeverity.WARN
    assert warned.metadata["unresolved_user_ids"].value == {"nexudus:default": [gone]}
    members = [e for e in check_results(instance, result.run_id) if e.asset_key.path[0] == "nexudus_course_members"]
    assert len(members) == 2 and all(e.passed for e in members)


def test_without_a_snapshot_or_expanded_names_the_merge_runs_and_counts_them(sandbox: Sandbox, tmp_path: Path) -> None:
    instance = dg.DagsterInstance.ephemeral()
    res = resources(sandbox.base_url, str(tmp_path), bindbee={"expand_relations": False})
    result = materialize_range(FIRST, LAST, res, instance, selection=WITHOUT_MEMBERS)
    assert result.success  # names are worth a warning, never a failed run
    rows = merged_rows(tmp_path)
    want = {"bindbee": expected_bindbee(sandbox), "nexudus": expected_nexudus(sandbox, snapshot=False)}
    for row in rows:
        expected = want[row["provider"]][row["completion_id"]]
        if row["provider"] == "bindbee":  # ids kept, names null
            expected = {**expected, "user_name": None, "course_title": None, "content_title": None}
        assert {c: row[c] for c in expected} == expected
    for day in (FIRST, LAST):
        metadata = lms_metadata(instance, day)
        counts = {p: sum(1 for r in rows if r["provider"] == p and str(r["completion_date"]) == day) for p in want}
        assert metadata["nexudus_course_members_missing"] == ["nexudus:default"]
        assert metadata["rows_without_nexudus_course_members"] == counts["nexudus"]
        assert metadata["bindbee_users_not_expanded"] == counts["bindbee"]
        check = names_check(instance, result.run_id)[day]
        assert not check.passed
        listed: Any = check.metadata["unresolved_user_ids"].value
        assert set(listed) == {"bindbee:default", "nexudus:default"} and all(len(ids) <= 20 for ids in listed.values())


def test_no_email_address_in_files_metadata_or_logs(removed: Sandbox, tmp_path: Path) -> None:
    instance = dg.DagsterInstance.ephemeral()
    result = materialize_range(FIRST, LAST, resources(removed.base_url, str(tmp_path)), instance)
    assert result.success
    emails = {person.email for person in removed.dataset.catalog.people}
    assert len(emails) == 300
    files = sorted(tmp_path.rglob("*.parquet"))
    assert any("nexudus_course_members" in str(f) for f in files) and len(files) >= 7
    for path in files:
        table = pq.read_table(path)
        for name in table.column_names:
            if str(table.schema.field(name).type) == "string":
                assert not emails.intersection(table[name].to_pylist()), (path, name)
                assert not any("@example.com" in (v or "") for v in table[name].to_pylist() if name != "updated_by")
    logged = " ".join(str(entry) for entry in instance.all_logs(result.run_id))
    assert "lms_completions" in logged and "@example.com" not in logged


def refuse_members(monkeypatch: pytest.MonkeyPatch, sb: Sandbox) -> None:
    """The enrolments endpoint answers 503 (as for an account without the role to list them)."""
    handle = sb.app.handle

    def handled(method, path, params, headers, body):
        if path == "/api/content/coursemembers":
            return "nexudus", json_reply(503, {"Message": "Service Unavailable"})
        return handle(method, path, params, headers, body)

    monkeypatch.setattr(sb.app, "handle", handled)  # the server calls it through the instance


def test_a_snapshot_that_cannot_be_fetched_does_not_keep_the_merge_from_running(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    with start_sandbox(SANDBOX) as sb:
        refuse_members(monkeypatch, sb)
        res = resources(sb.base_url, str(tmp_path), nexudus={"max_attempts": 1})
        instance = dg.DagsterInstance.ephemeral()
        result = materialize_range(FIRST, FIRST, res, instance)
        assert result.success
        assert lms_metadata(instance, FIRST)["nexudus_course_members_missing"] == ["nexudus:default"]
        assert instance.get_latest_materialization_event(dg.AssetKey(["nexudus_course_members", "default"])) is None
        errors = [e.user_message for e in instance.all_logs(result.run_id) if e.level == logging.ERROR]
        assert any("course members failed" in m and "503" in m for m in errors), errors
        # Alone, with no merge to carry on, the failure fails the run.
        alone = dg.AssetSelection.key_prefixes("nexudus_course_members")
        assert not materialize_range(FIRST, FIRST, res, instance, selection=alone).success


def test_a_connector_that_ignores_expand_merges_ids_without_names_and_the_run_succeeds(tmp_path: Path) -> None:
    with start_sandbox(dataclasses.replace(SANDBOX, bindbee_ignore_expand=("default",))) as sb:
        instance = dg.DagsterInstance.ephemeral()
        result = materialize_range(FIRST, FIRST, resources(sb.base_url, str(tmp_path)), instance)
        want = expected_bindbee(sb)
    assert result.success
    bindbee = [r for r in merged_rows(tmp_path) if r["provider"] == "bindbee"]
    assert bindbee
    for row in bindbee:
        expected = {**want[row["completion_id"]], "user_name": None, "course_title": None, "content_title": None}
        assert {c: row[c] for c in expected} == expected  # the ids as served, no name invented
    assert lms_metadata(instance, FIRST)["bindbee_users_not_expanded"] == len(bindbee)
    assert not names_check(instance, result.run_id)[FIRST].passed  # a warning, not a failed run


def test_include_email_fills_user_email_from_the_expanded_user(sandbox: Sandbox, tmp_path: Path) -> None:
    instance = dg.DagsterInstance.ephemeral()
    res = resources(sandbox.base_url, str(tmp_path), bindbee={"include_email": True})
    assert materialize_range(FIRST, FIRST, res, instance).success
    fields = {**NAME_FIELDS, "user": (*NAME_FIELDS["user"], "email_address")}
    emails = {r["id"]: r["user"]["email_address"] for r in sandbox.dataset.records("bindbee", expand=fields)}
    rows = merged_rows(tmp_path)
    assert {r["completion_id"]: r["user_email"] for r in rows if r["provider"] == "bindbee"}.items() <= emails.items()
    assert all(r["user_email"] for r in rows if r["provider"] == "bindbee")
    assert {r["user_email"] for r in rows if r["provider"] == "nexudus"} == {None}


def test_a_new_snapshot_alone_asks_for_no_re_merge_of_every_day(sandbox: Sandbox, tmp_path: Path) -> None:
    # The snapshot is unpartitioned: counted as a changed source, it would mark every day of
    # lms_completions for the rebuild sensor. A connection's changed day still is one.
    instance = dg.DagsterInstance.ephemeral()
    res = resources(sandbox.base_url, str(tmp_path))
    assert materialize_range(FIRST, FIRST, res, instance).success
    defs = dg.Definitions(assets=definitions_for(), resources=res)
    first = dg.evaluate_automation_conditions(defs=defs, instance=instance)
    snapshots = dg.AssetSelection.key_prefixes("nexudus_course_members")
    assert materialize_range(FIRST, FIRST, res, instance, selection=snapshots).success
    second = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=first.cursor)
    assert second.total_requested == 0
    bindbee = dg.AssetSelection.key_prefixes("bindbee_completions")
    assert materialize_range(FIRST, FIRST, res, instance, selection=bindbee).success
    third = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=second.cursor)
    assert third.total_requested == 1
