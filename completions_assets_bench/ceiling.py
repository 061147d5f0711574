"""(a) The ceiling: a bare concurrent fetch of one provider with plain httpx.

Same sweeps, same query windows, same thread count and connection pool size
as the pipeline; each page is decoded with `json.loads` and dropped. No
parsing into Arrow, no pacing, no retries, no files: what is left is the cost
of asking the sandbox and reading its answers, which the pipeline cannot beat.

Worker: `python -m completions_assets_bench.ceiling '{"provider": ..., ...}'`.
"""

import datetime as dt
import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from completions_assets_bench.procs import child_main
from completions_assets_bench.workload import CONCURRENT_SWEEPS, bindbee_params, nexudus_params

BINDBEE_PATH = "/api/lms/v1/completions"
NEXUDUS_PATH = "/api/content/coursecompletedlessons"
MAX_PAGES = 10_000  # a bound on every walk


def _client(base_url: str, headers: dict[str, str]) -> httpx.Client:
    limits = httpx.Limits(max_connections=CONCURRENT_SWEEPS + 1, max_keepalive_connections=CONCURRENT_SWEEPS + 1)
    return httpx.Client(
        base_url=base_url,
        headers={"Accept": "application/json", **headers},
        timeout=httpx.Timeout(60.0, connect=10.0),
        limits=limits,
    )


def _get(client: httpx.Client, path: str, params: dict[str, str]) -> dict[str, Any]:
    response = client.get(path, params=params)
    response.raise_for_status()
    return json.loads(response.content)


def walk_bindbee(client: httpx.Client, start: dt.datetime, end: dt.datetime) -> tuple[int, int]:
    """(records, requests) of one sweep, following `cursor` until null."""
    params, records = bindbee_params(start, end), 0
    for requests in range(1, MAX_PAGES + 1):
        payload = _get(client, BINDBEE_PATH, params)
        records += len(payload["items"])
        if payload["cursor"] is None:
            return records, requests
        params = {**params, "cursor": payload["cursor"]}
    raise RuntimeError("bindbee: too many pages")


def walk_nexudus(client: httpx.Client, start: dt.datetime, end: dt.datetime) -> tuple[int, int]:
    """(records, requests) of one sweep, following `page` while HasNextPage."""
    params, records = nexudus_params(start, end), 0
    for requests in range(1, MAX_PAGES + 1):
        payload = _get(client, NEXUDUS_PATH, params)
        records += len(payload["Records"])
        if not payload["HasNextPage"]:
            return records, requests
        params = {**params, "page": str(requests + 1)}
    raise RuntimeError("nexudus: too many pages")


def _nexudus_token(base_url: str, username: str, password: str) -> str:
    with httpx.Client(base_url=base_url, timeout=30.0) as client:
        response = client.post(
            "/api/token", data={"grant_type": "password", "username": username, "password": password}
        )
        response.raise_for_status()
        return response.json()["access_token"]


def fetch(args: dict[str, Any]) -> dict[str, Any]:
    """Every sweep of the range, `CONCURRENT_SWEEPS` at a time; per-sweep records and requests."""
    credentials = args["credentials"]
    if args["provider"] == "bindbee":
        headers = {
            "Authorization": f"Bearer {credentials['BINDBEE_API_KEY']}",
            "x-connector-token": credentials["BINDBEE_CONNECTOR_TOKEN"],
        }
        walk = walk_bindbee
    else:  # the password grant, as the pipeline authenticates against the sandbox
        token = _nexudus_token(args["base_url"], credentials["NEXUDUS_USERNAME"], credentials["NEXUDUS_PASSWORD"])
        headers = {"Authorization": f"Bearer {token}"}
        walk = walk_nexudus
    sweeps = [(dt.datetime.fromisoformat(a), dt.datetime.fromisoformat(b)) for a, b in args["sweeps"]]
    with _client(args["base_url"], headers) as client, ThreadPoolExecutor(CONCURRENT_SWEEPS) as pool:
        done = list(pool.map(lambda sweep: walk(client, *sweep), sweeps))
    return {"sweep_records": [records for records, _ in done], "requests": sum(requests for _, requests in done)}


if __name__ == "__main__":
    child_main(fetch)
