"""`python -m completions_assets_bench.audit_cost`: what the audit of older days costs in requests per
connection and day, at 10,000 records a day, measured with the product's clients against the sandbox.

A few days are fetched and kept in memory as the audit's stored rows; then the Nexudus probes run
over them unchanged, and once more after one record of a middle day is deleted; one Bindbee day is
re-read as the rotation re-reads it. The cost of a daily audit over the default range is derived
from those counts (the probes of an unchanged range cost the same whatever its length; Bindbee
re-reads as many days as the budget holds).
"""

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import pyarrow as pa

from completions_assets.http.session import RequestStats
from completions_assets.partitions import PartitionDay, partition_day
from completions_assets.providers.client import ProviderClient
from completions_assets.providers.nexudus.audit import audit_spans, changed_days
from completions_assets.providers.resource import BindbeeResource, NexudusResource
from completions_assets.providers.rotation import daily_budget, rotation_days, rotation_period
from completions_assets.sandbox import DEFAULT_CREDENTIALS, SandboxConfig, start_sandbox
from completions_assets.settings import Settings
from completions_assets.steps.audit import audit_days

RECORDS_PER_DAY = 10_000
START = dt.date(2024, 3, 1)
DAYS = 7
UNPACED = 0  # requests_per_minute: the sandbox sets no limits, and the count of requests is what is measured
ZONE = ZoneInfo("UTC")


@dataclass(frozen=True)
class AuditCost:
    nexudus_unchanged: int  # probe requests of an unchanged range
    nexudus_one_deletion_probes: int  # probe requests that found one deleted record
    nexudus_one_deletion_fetch: int  # requests of fetching that day again
    nexudus_days_fetched: int
    bindbee_day: int  # requests of re-reading one day
    range_days: int  # days of a default audit
    bindbee_budget: int  # requests per audit at the default share of 10 %

    @property
    def bindbee_per_audit(self) -> int:
        """Requests of one audit over the default range, re-reading the days the rotation picks."""
        days = _range()
        period = rotation_period(dict.fromkeys(days, self.bindbee_day), self.bindbee_budget, 90)
        return len(rotation_days(days, AUDIT_DATE, period)) * self.bindbee_day


AUDIT_DATE = dt.date(2024, 6, 1)


def _range() -> list[dt.date]:
    """The days of a default audit (90 days, lookback 3) far from the start date."""
    return audit_days(AUDIT_DATE, Settings(dt.date(2024, 1, 1), "UTC", 3, ""), None)


def measure() -> AuditCost:
    config = SandboxConfig(seed=5, start_date=START, days=DAYS, records_per_day=RECORDS_PER_DAY, late_fraction=0)
    days = [partition_day(START + dt.timedelta(days=n), ZONE) for n in range(DAYS)]
    with start_sandbox(config) as sb:
        nexudus = NexudusResource(
            base_url=sb.base_url,
            username=DEFAULT_CREDENTIALS["NEXUDUS_USERNAME"],
            password=DEFAULT_CREDENTIALS["NEXUDUS_PASSWORD"],
            min_interval_ms=0,
            requests_per_hour=0,
            requests_per_minute=UNPACED,
        ).create_client()
        bindbee = BindbeeResource(
            base_url=sb.base_url,
            api_key=DEFAULT_CREDENTIALS["BINDBEE_API_KEY"],
            connector_token=DEFAULT_CREDENTIALS["BINDBEE_CONNECTOR_TOKEN"],
            requests_per_minute=UNPACED,
        ).create_client()
        assert isinstance(nexudus, ProviderClient)
        with nexudus, bindbee:
            stored = {batch.day.date: batch.table.select(["id", "created_on", "updated_on"])
                      for batch in nexudus.fetch_days(days)}  # fmt: skip
            inner = days[2:-2]  # probes of these reach two days to each side at most, all kept

            def between(lo: dt.datetime, hi: dt.datetime) -> pa.Table | None:
                if lo < days[0].start or hi > days[-1].end:
                    return None
                return pa.concat_tables([stored[d.date] for d in days if d.end > lo and d.start < hi])

            unchanged = RequestStats()
            assert changed_days(nexudus, inner, between, unchanged) == []
            middle = inner[len(inner) // 2]
            sb.update(delete={"nexudus": [str(stored[middle.date]["id"][RECORDS_PER_DAY // 2].as_py())]})
            probing = RequestStats()
            fetched: list[dt.date] = []

            def refetch(day: PartitionDay) -> bool:
                fetched.append(day.date)
                new = list(nexudus.fetch_days([day]))[0].table.select(["id", "created_on", "updated_on"])
                changed = not new.equals(stored[day.date])
                stored[day.date] = new
                return changed

            before = sb.stats()["nexudus"]["requests"]
            audit_spans(nexudus, [inner], between, refetch, probing)
            everything = sb.stats()["nexudus"]["requests"] - before
            before = sb.stats()["bindbee"]["requests"]
            list(bindbee.fetch_days([middle]))
            bindbee_day = sb.stats()["bindbee"]["requests"] - before
    return AuditCost(
        unchanged.requests,
        probing.requests,
        everything - probing.requests,
        len(fetched),
        bindbee_day,
        len(_range()),
        daily_budget(200, 0.1),
    )


def main() -> None:
    cost = measure()
    print(f"| audit at {RECORDS_PER_DAY:,} records/day, per connection | requests |")
    print("| --- | ---: |")
    print(f"| Nexudus, an unchanged range (any length: one probe) | {cost.nexudus_unchanged} |")
    print(f"| Nexudus, probes that find one deleted record | {cost.nexudus_one_deletion_probes} |")
    print(
        f"| Nexudus, fetching again the {cost.nexudus_days_fetched} day(s) suspected | {cost.nexudus_one_deletion_fetch} |"
    )
    print(f"| Bindbee, re-reading one day | {cost.bindbee_day} |")
    print(f"| Bindbee, one audit at the default budget ({cost.bindbee_budget:,}) | {cost.bindbee_per_audit:,} |")


if __name__ == "__main__":
    main()
