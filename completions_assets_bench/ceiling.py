"""(a) The ceiling: a bare async fetch of one provider's range with plain httpx.

Every page the range needs, with as much concurrency as the provider's paging
allows: Bindbee is walked as one exact window per UTC day (its windows are
exact, so splitting costs at most a partial page per day), all days' cursor
walks at once; Nexudus as one window over the whole range, widened by the
margin once (SPEC section 6), page 1 first and then pages 2..TotalPages all at
once. Each page is decoded with `json.loads` and dropped: no parsing into
Arrow, no pacing, no retries, no files. What is left is the cost of asking the
sandbox and reading its answers, which the pipeline cannot beat.

Worker: `python -m completions_assets_bench.ceiling '{"provider": ..., ...}'`.
"""

import asyncio
import datetime as dt
import json
from typing import Any

import httpx

from completions_assets_bench.procs import child_main
from completions_assets_bench.workload import Range, bindbee_params, nexudus_params

BINDBEE_PATH = "/api/lms/v1/completions"
NEXUDUS_PATH = "/api/content/coursecompletedlessons"
MAX_PAGES = 100_000  # a bound on every walk
IN_FLIGHT = 32  # requests at once per provider process (connections in the pool)


def _client(base_url: str, headers: dict[str, str]) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=IN_FLIGHT, max_keepalive_connections=IN_FLIGHT)
    return httpx.AsyncClient(
        base_url=base_url,
        headers={"Accept": "application/json", **headers},
        timeout=httpx.Timeout(120.0, connect=10.0, pool=None),
        limits=limits,
    )


async def _get(client: httpx.AsyncClient, path: str, params: dict[str, str]) -> dict[str, Any]:
    response = await client.get(path, params=params)
    response.raise_for_status()
    return json.loads(response.content)


async def walk_bindbee(client: httpx.AsyncClient, start: dt.datetime, end: dt.datetime) -> tuple[int, int]:
    """(records, requests) of one window, following `cursor` until null."""
    params, records = bindbee_params(start, end), 0
    for requests in range(1, MAX_PAGES + 1):
        payload = await _get(client, BINDBEE_PATH, params)
        records += len(payload["items"])
        if payload["cursor"] is None:
            return records, requests
        params = {**params, "cursor": payload["cursor"]}
    raise RuntimeError("bindbee: too many pages")


async def fetch_nexudus(client: httpx.AsyncClient, start: dt.datetime, end: dt.datetime) -> tuple[int, int]:
    """(records, requests) of one widened window: page 1, then every other page concurrently."""
    params = nexudus_params(start, end)
    first = await _get(client, NEXUDUS_PATH, params)
    pages = int(first["TotalPages"])
    if pages > MAX_PAGES:
        raise RuntimeError(f"nexudus: {pages} pages")
    rest = await asyncio.gather(
        *(_get(client, NEXUDUS_PATH, {**params, "page": str(page)}) for page in range(2, pages + 1))
    )
    records = len(first["Records"]) + sum(len(payload["Records"]) for payload in rest)
    return records, max(1, pages)


async def _nexudus_token(base_url: str, username: str, password: str) -> str:
    async with httpx.AsyncClient(base_url=base_url, timeout=30.0) as client:
        response = await client.post(
            "/api/token", data={"grant_type": "password", "username": username, "password": password}
        )
        response.raise_for_status()
        return response.json()["access_token"]


async def _fetch(args: dict[str, Any]) -> dict[str, Any]:
    credentials = args["credentials"]
    days = Range(dt.date.fromisoformat(args["first"]), args["days"])
    if args["provider"] == "bindbee":
        headers = {
            "Authorization": f"Bearer {credentials['BINDBEE_API_KEY']}",
            "x-connector-token": credentials["BINDBEE_CONNECTOR_TOKEN"],
        }
        async with _client(args["base_url"], headers) as client:
            done = await asyncio.gather(*(walk_bindbee(client, *day) for day in days.day_windows()))
    else:  # the password grant, as the pipeline authenticates against the sandbox
        token = await _nexudus_token(args["base_url"], credentials["NEXUDUS_USERNAME"], credentials["NEXUDUS_PASSWORD"])
        async with _client(args["base_url"], {"Authorization": f"Bearer {token}"}) as client:
            done = [await fetch_nexudus(client, days.start, days.end)]
    return {"window_records": [records for records, _ in done], "requests": sum(requests for _, requests in done)}


def fetch(args: dict[str, Any]) -> dict[str, Any]:
    return asyncio.run(_fetch(args))


if __name__ == "__main__":
    child_main(fetch)
