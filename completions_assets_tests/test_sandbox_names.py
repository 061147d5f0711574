"""The sandbox's names and enrolments: Bindbee `expand` (and a connection whose LMS ignores it),
Nexudus `/api/content/coursemembers`, and ground truth that agrees with what is served."""

import datetime as dt
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from completions_assets.sandbox import Sandbox, SandboxConfig, start_sandbox
from completions_assets.sandbox.catalog import MEMBER_REMOVED

pytestmark = pytest.mark.integration

BINDBEE = "/api/lms/v1/completions"
MEMBERS = "/api/content/coursemembers"
NOW = dt.datetime(2030, 1, 1, tzinfo=dt.timezone.utc)
CONNECTIONS = {"bindbee": ("default", "acme"), "nexudus": ("default", "london")}
CONFIG = SandboxConfig(
    days=8,
    records_per_day=60,
    now=NOW,
    connections=CONNECTIONS,
    bindbee_ignore_expand=("acme",),
    nexudus_member_removed=True,
)
EXPAND = "user[first_name,last_name],course[name],content[title]"


@pytest.fixture(scope="module")
def sb() -> Iterator[Sandbox]:
    with start_sandbox(CONFIG) as sandbox:
        yield sandbox


def bindbee_items(sb: Sandbox, connection: str, params: dict[str, str]) -> list[dict[str, Any]]:
    creds = sb.connection_credentials("bindbee", connection)
    token = next(v for k, v in creds.items() if k.startswith("BINDBEE_CONNECTOR_TOKEN"))
    headers = {"Authorization": f"Bearer {sb.credentials['BINDBEE_API_KEY']}", "x-connector-token": token}
    items, cursor = [], None
    with httpx.Client(base_url=sb.base_url, headers=headers, timeout=10) as client:
        while True:
            page = client.get(BINDBEE, params={**params, "page_size": "100", **({"cursor": cursor} if cursor else {})})
            assert page.status_code == 200, page.text
            items += page.json()["items"]
            cursor = page.json()["cursor"]
            if cursor is None:
                return items


def member_pages(sb: Sandbox, connection: str, size: int) -> list[dict[str, Any]]:
    creds = sb.connection_credentials("nexudus", connection)
    token = next(v for k, v in creds.items() if k.startswith("NEXUDUS_ACCESS_TOKEN"))
    pages = []
    with httpx.Client(base_url=sb.base_url, headers={"Authorization": f"Bearer {token}"}, timeout=10) as client:
        for number in range(1, 100):
            reply = client.get(MEMBERS, params={"page": str(number), "size": str(size), "orderBy": "Id", "dir": "1"})
            assert reply.status_code == 200, reply.text
            pages.append(reply.json())
            if not pages[-1]["HasNextPage"]:
                return pages
    raise AssertionError("no last page")


def test_expand_with_field_lists_serves_the_names_of_the_ground_truth(sb: Sandbox) -> None:
    served = bindbee_items(sb, "default", {"expand": EXPAND})
    fields = {"user": ("first_name", "last_name"), "course": ("name",), "content": ("title",)}
    assert served == sb.dataset.records("bindbee", expand=fields)
    plain = sb.dataset.records("bindbee")
    catalog = sb.dataset.catalog
    for item, ids in zip(served, plain, strict=True):
        assert set(item["user"]) == {"id", "first_name", "last_name"} and item["user"]["id"] == ids["user"]
        person = catalog.people[catalog.user_ids.index(ids["user"])]
        assert (item["user"]["first_name"], item["user"]["last_name"]) == (person.first_name, person.last_name)
        for relation, name in (("course", "name"), ("content", "title")):
            if ids[relation] is None:
                assert item[relation] is None  # a null relation stays null
            else:
                assert item[relation]["id"] == ids[relation] and set(item[relation]) == {"id", name}


def test_a_connection_whose_lms_ignores_expand_serves_ids(sb: Sandbox) -> None:
    served = bindbee_items(sb, "acme", {"expand": EXPAND})
    assert served == sb.dataset.records("bindbee", "acme") and served
    assert all(isinstance(item["user"], str) for item in served)
    honoured = bindbee_items(sb, "default", {"expand": "user"})
    assert all(isinstance(item["user"], dict) for item in honoured)


def test_course_members_are_paged_and_agree_with_the_completions(sb: Sandbox) -> None:
    pages = member_pages(sb, "default", 70)
    listed = [record for page in pages for record in page["Records"]]
    assert listed == sb.dataset.course_members()
    assert {page["TotalItems"] for page in pages} == {len(listed)} and pages[-1]["TotalPages"] == len(pages)
    ids = [m["Id"] for m in listed]
    assert ids == sorted(set(ids))
    catalog = sb.dataset.catalog
    removed = catalog.members[MEMBER_REMOVED]
    assert removed.id not in ids  # removed from its course ...
    completed = {r["CourseMemberId"] for r in sb.dataset.records("nexudus")}
    assert removed.id in completed  # ... after completing lessons
    assert {m["CoworkerId"] for m in listed if m["CoworkerFullName"] == removed.person.full_name}  # still enrolled
    courses_of: dict[int, set[int]] = {}
    for member in listed:
        courses_of.setdefault(member["CoworkerId"], set()).add(member["CourseId"])
    assert max(len(c) for c in courses_of.values()) >= 2  # people enrolled in several courses


def test_every_lesson_completed_belongs_to_the_members_course_and_renamed_titles_differ(sb: Sandbox) -> None:
    catalog = sb.dataset.catalog
    lessons_of = {c.id: {catalog.lessons[p][0] for p in c.lessons} for c in catalog.nexudus_courses}
    member_course = {m.id: catalog.nexudus_courses[m.course].id for m in catalog.members}
    records = sb.dataset.records("nexudus")
    assert all(r["CourseLessonId"] in lessons_of[member_course[r["CourseMemberId"]]] for r in records)
    # A renamed course lists its new title; its lessons keep the old one.
    renamed = {c.id for c in catalog.nexudus_courses if not catalog.lessons[c.lessons[0]][1].startswith(c.title + ":")}
    listed = {m["CourseId"]: m["CourseTitle"] for m in sb.dataset.course_members()}
    assert renamed and {listed[c] for c in renamed} == {"Fire Safety and Evacuation", "First Aid at Work"}
    assert any(member_course[r["CourseMemberId"]] in renamed for r in records)


def test_each_account_lists_its_own_members_and_refuses_strangers(sb: Sandbox) -> None:
    london = [r for page in member_pages(sb, "london", 500) for r in page["Records"]]
    assert london == sb.dataset.course_members("london") != sb.dataset.course_members()
    with httpx.Client(base_url=sb.base_url, timeout=10) as client:
        assert client.get(MEMBERS).status_code == 401
        token = {"Authorization": f"Bearer {sb.credentials['NEXUDUS_ACCESS_TOKEN']}"}
        refused = client.get(MEMBERS, params={"orderBy": "CourseTitle"}, headers=token)
        assert refused.status_code == 400 and refused.json()["WasSuccessful"] is False


def test_course_members_share_the_accounts_rate_budget() -> None:
    config = SandboxConfig(days=1, records_per_day=5, rate_limits=True, now=NOW)
    with start_sandbox(config) as sb, httpx.Client(base_url=sb.base_url, timeout=10) as client:
        token = {"Authorization": f"Bearer {sb.credentials['NEXUDUS_ACCESS_TOKEN']}"}
        first, second = (client.get(MEMBERS, headers=token) for _ in range(2))  # within 100 ms
        assert first.status_code == 200 and second.status_code == 409 and second.headers["Retry-After"]


def test_ignore_expand_names_only_bindbee_connections() -> None:
    with pytest.raises(ValueError, match="unknown bindbee connections"):
        SandboxConfig(bindbee_ignore_expand=("nobody",))
