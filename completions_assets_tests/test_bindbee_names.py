"""Bindbee's expanded relations over real HTTP: names record by record against the sandbox's
truth, e-mail addresses only on request, and a connector that ignores `expand`."""

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from completions_assets.providers.bindbee import BINDBEE
from completions_assets.providers.resource import BindbeeResource
from completions_assets.sandbox import Sandbox, connection_credentials
from completions_assets_tests.clients_support import (
    NAME_FIELDS,
    bindbee_client,
    bindbee_row,
    days_between,
    fast_settings,
    running_sandbox,
)

pytestmark = pytest.mark.integration

DAYS = ("2024-01-08", "2024-01-12")
CONNECTIONS = {"bindbee": ("default", "acme"), "nexudus": ("default",)}


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    with running_sandbox(days=14, connections=CONNECTIONS, bindbee_ignore_expand=("acme",)) as running:
        yield running


def fetched(client: Any) -> list[dict[str, Any]]:
    with client:
        return [row for batch in client.fetch_days(days_between(*DAYS)) for row in batch.table.to_pylist()]


def expected(
    sandbox: Sandbox, connection: str = "default", *, email: bool = False, expanded: bool = True
) -> list[dict[str, Any]]:
    """The raw rows of DAYS built from the records as the connection serves them (ids only if not `expanded`)."""
    fields = {**NAME_FIELDS, "user": (*NAME_FIELDS["user"], "email_address")} if email else NAME_FIELDS
    fields = fields if expanded else {}
    first, last = days_between(*DAYS)[0].start, days_between(*DAYS)[-1].end
    truth = set(sandbox.dataset.ground_truth("bindbee", first, last, connection))
    records = sandbox.dataset.records("bindbee", connection, expand=fields)
    rows = [bindbee_row(r, email=email) for r in records if r["id"] in truth]
    return sorted(rows, key=lambda row: (row["completed_at"], row["id"]))


def queries(sandbox: Sandbox, since: int) -> list[dict[str, str]]:
    reply = httpx.get(f"{sandbox.base_url}/_sandbox/queries", params={"since": since}, timeout=10).json()
    return [entry["params"] for entry in reply["queries"] if entry["provider"] == "bindbee"]


def next_query(sandbox: Sandbox) -> int:
    return httpx.get(f"{sandbox.base_url}/_sandbox/queries", timeout=10).json()["next"]


def test_names_match_the_truth_record_by_record_and_no_email_is_asked_or_kept(sandbox: Sandbox) -> None:
    since = next_query(sandbox)
    rows = fetched(bindbee_client(sandbox))
    assert rows == expected(sandbox) and len(rows) > 500
    assert all(row["user_name"] for row in rows)  # every user is expanded
    assert {row["user_email"] for row in rows} == {None}
    asked = queries(sandbox, since)
    assert asked and {q["expand"] for q in asked} == {"user[first_name,last_name],course[name],content[title]"}


def test_include_email_asks_for_and_keeps_the_address(sandbox: Sandbox) -> None:
    rows = fetched(bindbee_client(sandbox, include_email=True))
    assert rows == expected(sandbox, email=True)
    assert all("@" in row["user_email"] for row in rows)


def test_expansion_off_sends_no_expand_and_keeps_ids(sandbox: Sandbox) -> None:
    since = next_query(sandbox)
    rows = fetched(bindbee_client(sandbox, expand_relations=False))
    assert all("expand" not in q for q in queries(sandbox, since))
    want = [{**row, "user_name": None, "course_name": None, "content_title": None} for row in expected(sandbox)]
    assert rows == want


def test_a_connector_that_ignores_expand_leaves_names_null_and_does_not_fail(sandbox: Sandbox) -> None:
    creds = connection_credentials("bindbee", "acme")
    resource = BindbeeResource(
        base_url=sandbox.base_url,
        api_key=sandbox.credentials["BINDBEE_API_KEY"],
        connector_token=creds["BINDBEE_CONNECTOR_TOKEN_ACME"],
        **fast_settings("bindbee"),
    )
    with resource.create_client() as client:
        batches = list(client.fetch_days(days_between(*DAYS)))
    rows = [row for batch in batches for row in batch.table.to_pylist()]
    assert rows == expected(sandbox, "acme", expanded=False) and rows  # the ids as served; the names null
    assert all(row["user_name"] is None and row["course_name"] is None for row in rows)
    assert BINDBEE.day_facts is not None
    for batch in batches:
        facts = BINDBEE.day_facts(batch.table)
        assert facts["bindbee_users_not_expanded"] == batch.table.num_rows
