"""The benchmark's reading of request windows: the sandbox's query log and the minimum per window.

The benchmark counts the minimum requests of a run from the windows it asked
for (first pages in GET /_sandbox/queries) and the sandbox's ground truth for
each window; this holds only if a window's ground truth is exactly what the
window's walk returns, which is checked here for both providers.
"""

import datetime as dt

import httpx
import pytest

from completions_assets.sandbox import Sandbox
from completions_assets_bench.workload import bindbee_params, nexudus_params, requested_windows

pytestmark = pytest.mark.integration

UTC = dt.timezone.utc


def _walk(client: httpx.Client, provider: str, start: dt.datetime, end: dt.datetime) -> int:
    """Records a full walk of one window returns (20 per page, so several pages)."""
    records = 0
    if provider == "bindbee":
        params = bindbee_params(start, end) | {"page_size": "20"}
        for _ in range(1000):
            body = client.get("/api/lms/v1/completions", params=params).json()
            records += len(body["items"])
            if body["cursor"] is None:
                return records
            params = {**params, "cursor": body["cursor"]}
    else:
        params = nexudus_params(start, end) | {"size": "20"}
        for page in range(1, 1000):
            body = client.get("/api/content/coursecompletedlessons", params={**params, "page": str(page)}).json()
            records += len(body["Records"])
            if not body["HasNextPage"]:
                return records
    raise AssertionError("walk did not end")


def test_first_page_windows_count_what_their_walks_return(sandbox: Sandbox) -> None:
    credentials = sandbox.credentials
    headers = {
        "bindbee": {
            "Authorization": f"Bearer {credentials['BINDBEE_API_KEY']}",
            "x-connector-token": credentials["BINDBEE_CONNECTOR_TOKEN"],
        },
        "nexudus": {"Authorization": f"Bearer {credentials['NEXUDUS_ACCESS_TOKEN']}"},
    }
    with httpx.Client(base_url=sandbox.base_url) as control:
        since = control.get("/_sandbox/queries", params={"since": 1 << 62}).json()["next"]
    first = sandbox.config.start_date + dt.timedelta(days=2)
    start = dt.datetime.combine(first, dt.time(), tzinfo=UTC)
    spans = [(start, start + dt.timedelta(days=1)), (start + dt.timedelta(hours=30), start + dt.timedelta(days=3))]
    walked = {}
    for provider in ("bindbee", "nexudus"):
        with httpx.Client(base_url=sandbox.base_url, headers=headers[provider]) as client:
            walked[provider] = [_walk(client, provider, *span) for span in spans]
    with httpx.Client(base_url=sandbox.base_url) as control:
        log = control.get("/_sandbox/queries", params={"since": since}).json()
        assert log["next"] >= since + len(log["queries"])
        windows = requested_windows(log["queries"])
        for provider in ("bindbee", "nexudus"):
            assert len(windows[provider]) == len(spans)  # one first page per walk, later pages are no window
            counts = [
                len(
                    control.get(
                        "/_sandbox/ground_truth", params={"provider": provider, "start": w.start, "end": w.end}
                    ).json()["ids"]
                )
                for w in windows[provider]
            ]
            assert counts == walked[provider], provider
            assert sum(counts) > 0, provider
            assert {w.page_size for w in windows[provider]} == {20}
