"""Which days an audit re-reads in full when the provider reports no count (Bindbee).

The audit range is re-read in rotation under a request budget: day D is read by
the audit of date A when `D.toordinal() % period == A.toordinal() % period`, with
the period the fewest audits whose share of the range fits the budget (at most
the range's length, so every day is read at least once while it is in range).
The position comes from the dates alone: nothing is stored between audits.
"""

import datetime as dt
import math
from collections.abc import Mapping, Sequence


def rotation_period(costs: Mapping[dt.date, int], budget: int, audit_days: int) -> int:
    """Audits per full rotation of the range: its cost in requests spread under `budget` per audit."""
    total = sum(costs.values())
    if budget <= 0:
        return max(1, audit_days)
    return max(1, min(audit_days, math.ceil(total / budget)))


def rotation_days(days: Sequence[dt.date], audit_date: dt.date, period: int) -> list[dt.date]:
    """The days the audit of `audit_date` re-reads."""
    position = audit_date.toordinal() % period
    return [day for day in days if day.toordinal() % period == position]


def day_cost(rows: int, page_size: int) -> int:
    """Requests of a cursor walk over a day of `rows` records (an empty day is one request)."""
    return max(1, math.ceil(rows / page_size))


def daily_budget(requests_per_minute: int, share: float) -> int:
    """`share` of a connection's daily rate budget, in requests."""
    return round(requests_per_minute * 60 * 24 * share)
