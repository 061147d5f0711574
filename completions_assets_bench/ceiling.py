"""(a) The ceiling: a bare async fetch of one provider's range with plain httpx.

Every page the range needs, with as much concurrency as the provider's paging
allows: Bindbee is walked as one exact window per UTC day (its windows are
exact, so splitting costs at most a partial page per day), all days' cursor
walks at once; Nexudus as one window over the whole range, widened by the
margin once (docs/contract.md, "Days"), page 1 first and then pages 2..TotalPages all at
once. Each page is decoded with `json.loads` and dropped: no parsing into
Arrow, no pacing, no retries, no files. What is left is the cost of asking the
sandbox and reading its answers, which the pipeline cannot beat.

Worker: `python -m completions_assets_bench.ceiling '{"provider": ..., ...}'`.
"""

import asyncio
import datetime as dt
import json
import sys
from typing import Any

import httpx

from completions_assets_bench.procs import child_main
from completions_assets_bench.workload import Range, bindbee_params, nexudus_params

BINDBEE_PATH = "/api/lms/v1/completions"
NEXUDUS_PATH = "/api/content/coursecompletedlessons"
MAX_PAGES = 100_000  # a bound on every walk
IN_FLIGHT = 32  # requests at once per provider process, one connection each


class Pages:
    """GETs decoded with `json.loads`, at most IN_FLIGHT at once, each on a client of its own.

    One single-connection client per slot, lent out through a queue: httpcore's pool scans its
    connections and queued requests whenever a request ends, which with 30 connections and
    thousands of pages in one pool costs more CPU than the requests themselves."""

    def __init__(self, base_url: str, headers: dict[str, str]) -> None:
        self.clients = [
            httpx.AsyncClient(
                base_url=base_url,
                headers={"Accept": "application/json", **headers},
                timeout=httpx.Timeout(120.0, connect=10.0),
                limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
            )
            for _ in range(IN_FLIGHT)
        ]
        self.idle: asyncio.Queue[httpx.AsyncClient] = asyncio.Queue()
        for client in self.clients:
            self.idle.put_nowait(client)

    async def get(self, path: str, params: dict[str, str]) -> dict[str, Any]:
        client = await self.idle.get()
        try:
            response = await client.get(path, params=params)
        finally:
            self.idle.put_nowait(client)
        response.raise_for_status()
        return json.loads(response.content)

    async def count(self, path: str, params: dict[str, str], key: str) -> int:
        """Records on one page; the page itself is dropped at once."""
        return len((await self.get(path, params))[key])

    async def aclose(self) -> None:
        for client in self.clients:
            await client.aclose()


async def walk_bindbee(pages: Pages, start: dt.datetime, end: dt.datetime) -> tuple[int, int]:
    """(records, requests) of one window, following `cursor` until null."""
    params, records = bindbee_params(start, end), 0
    for requests in range(1, MAX_PAGES + 1):
        payload = await pages.get(BINDBEE_PATH, params)
        records += len(payload["items"])
        if payload["cursor"] is None:
            return records, requests
        params = {**params, "cursor": payload["cursor"]}
    raise RuntimeError("bindbee: too many pages")


async def fetch_nexudus(pages: Pages, start: dt.datetime, end: dt.datetime) -> tuple[int, int]:
    """(records, requests) of one widened window: page 1, then every other page concurrently."""
    params = nexudus_params(start, end)
    first = await pages.get(NEXUDUS_PATH, params)
    total = int(first["TotalPages"])
    if total > MAX_PAGES:
        raise RuntimeError(f"nexudus: {total} pages")
    rest = await asyncio.gather(
        *(pages.count(NEXUDUS_PATH, {**params, "page": str(page)}, "Records") for page in range(2, total + 1))
    )
    return len(first["Records"]) + sum(rest), max(1, total)


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
    else:  # the password grant, as the pipeline authenticates against the sandbox
        token = await _nexudus_token(args["base_url"], credentials["NEXUDUS_USERNAME"], credentials["NEXUDUS_PASSWORD"])
        headers = {"Authorization": f"Bearer {token}"}
    pages = Pages(args["base_url"], headers)
    try:
        if args["provider"] == "bindbee":
            done = await asyncio.gather(*(walk_bindbee(pages, *day) for day in days.day_bounds()))
        else:
            done = [await fetch_nexudus(pages, days.start, days.end)]
    finally:
        await pages.aclose()
    return {"window_records": [records for records, _ in done], "requests": sum(requests for _, requests in done)}


def fetch(args: dict[str, Any]) -> dict[str, Any]:
    return asyncio.run(_fetch(args))


def skip_sniffio() -> None:
    """httpcore imports sniffio on every request and uses asyncio when it is missing (as in this
    venv); a failed import searches sys.path each time. None in sys.modules fails it at once."""
    sys.modules.setdefault("sniffio", None)  # type: ignore[arg-type]


if __name__ == "__main__":
    skip_sniffio()
    child_main(fetch)
