"""Deterministic fault injection: which request fails, and how it looks on the wire."""

import datetime as dt
import enum
import json
import threading
from collections.abc import Sequence
from http import HTTPStatus

from .config import ProviderFaults
from .reply import Reply, json_reply
from .timeutil import iso_z, to_us

_GATEWAY_PAGE = (
    "<html><head><title>{status} {phrase}</title></head><body>"
    "<center><h1>{status} {phrase}</h1></center>{echo}<hr><center>nginx</center></body></html>"
)
# How an `echo_credentials` body quotes them: plain text next to no sensitive name, so only
# masking by value can hide them (masking by name would catch `"token": "..."` or `Bearer ...`).
ECHO_PREFIX = "Credentials received:"
_RETRY_AFTER_STATUSES = (429, 409, 503)
# How much later a `duplicate_newer` repeat was modified, and in which field.
NEWER_BY = dt.timedelta(hours=1)
_MODIFIED_FIELD = {"items": "modified_at", "Records": "UpdatedOn"}


class Fault(enum.Enum):
    STATUS = "status"
    HTML = "html"
    TRUNCATE = "truncate"
    DISCONNECT = "disconnect"
    UNSUCCESSFUL = "unsuccessful"
    DUPLICATE = "duplicate"
    DUPLICATE_NEWER = "duplicate_newer"


def _status_due(faults: ProviderFaults, n: int) -> bool:
    if faults.fail_status is None:
        return False
    if faults.fail_on is None and faults.fail_every is None:
        return True  # a status without a position is an outage: every request fails
    return faults.fail_on == n or (faults.fail_every is not None and n % faults.fail_every == 0)


def planned(faults: ProviderFaults, n: int, provider: str) -> Fault | None:
    """The fault request number `n` (1-based) gets; the first matching knob wins."""
    if faults.disconnect_on == n:
        return Fault.DISCONNECT
    if _status_due(faults, n):
        return Fault.STATUS
    if faults.html_on == n:
        return Fault.HTML
    if faults.truncate_on == n:
        return Fault.TRUNCATE
    if faults.unsuccessful_on == n and provider == "nexudus":
        return Fault.UNSUCCESSFUL
    if faults.duplicate_on == n:
        return Fault.DUPLICATE_NEWER if faults.duplicate_newer else Fault.DUPLICATE
    return None


class FaultCounter:
    """Counts one provider's data requests; replacing its knobs restarts the count."""

    def __init__(self, faults: ProviderFaults) -> None:
        self._faults = faults
        self._count = 0
        self._lock = threading.Lock()

    @property
    def faults(self) -> ProviderFaults:
        return self._faults

    def set(self, faults: ProviderFaults) -> None:
        with self._lock:
            self._faults, self._count = faults, 0

    def next(self) -> tuple[int, ProviderFaults]:
        with self._lock:
            self._count += 1
            return self._count, self._faults


def echo_text(echoed: Sequence[str]) -> str:
    """` Credentials received: a, b.` (empty without credentials), appended to an error message."""
    return f" {ECHO_PREFIX} {', '.join(echoed)}." if echoed else ""


def status_phrase(status: int) -> str:
    """`Service Unavailable` for 503; `Error` for a status the standard library does not name."""
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def html_reply(status: int, echoed: Sequence[str] = ()) -> Reply:
    phrase = status_phrase(status)
    echo = f"<p>{echo_text(echoed).strip()}</p>" if echoed else ""
    body = _GATEWAY_PAGE.format(status=status, phrase=phrase, echo=echo).encode()
    return Reply(status, body, {"Content-Type": "text/html"})


def status_reply(provider: str, faults: ProviderFaults, echoed: Sequence[str] = ()) -> Reply:
    """The answer of a status fault; `echoed` credentials are quoted in its body (a throttling
    answer of Nexudus, which has no body, stays empty)."""
    status = faults.fail_status or 503
    phrase = status_phrase(status)
    echo = echo_text(echoed)
    if status == 502:
        reply = html_reply(502, echoed)
    elif provider == "nexudus" and status in (409, 429):
        reply = Reply(status)  # Nexudus throttling answers carry no body
    elif provider == "nexudus":
        reply = json_reply(
            status, {"Message": f"An error has occurred.{echo}"}, content_type="application/json; charset=utf-8"
        )
    elif status == 500:
        body = f"Internal Server Error{echo}".encode()
        reply = Reply(500, body, {"Content-Type": "text/plain; charset=utf-8"})
    else:
        reply = json_reply(status, {"detail": f"{phrase}{echo}"})
    if status in _RETRY_AFTER_STATUSES and faults.retry_after is not None:
        reply.headers["Retry-After"] = faults.retry_after
    return reply


def unsuccessful_reply() -> Reply:
    body = {
        "Value": None,
        "WasSuccessful": False,
        "Message": "The request could not be completed.",
        "Errors": [{"AttemptedValue": None, "Message": "Temporary database timeout", "PropertyName": None}],
    }
    return json_reply(200, body, content_type="application/json; charset=utf-8")


def damage(reply: Reply, fault: Fault | None) -> Reply:
    """Truncate a body (valid HTTP, invalid JSON), cut the connection mid-body, or
    serve a page's first record twice (the repeat last, possibly modified later)."""
    if fault in (Fault.DUPLICATE, Fault.DUPLICATE_NEWER) and reply.status == 200:
        reply.body = _repeat_first_record(reply.body, newer=fault is Fault.DUPLICATE_NEWER)
    elif fault is Fault.TRUNCATE:
        reply.body = reply.body[: max(1, len(reply.body) // 2)]
    elif fault is Fault.DISCONNECT:
        reply.cut_at = len(reply.body) // 2
    return reply


def _repeat_first_record(body: bytes, *, newer: bool = False) -> bytes:
    page = json.loads(body)
    key = "items" if "items" in page else "Records"
    records = page[key]
    if records:
        # Appended, so the older copy is served first: "keep the first seen" is wrong.
        repeat = dict(records[0])
        field = _MODIFIED_FIELD[key]
        if newer and repeat.get(field) is not None:  # a dropped or null time cannot be made later
            repeat[field] = _later(repeat[field])
        records.append(repeat)
        if "page_size" in page:
            page["page_size"] = len(records)
    return json.dumps(page).encode()


def _later(text: str) -> str:
    """`text` moved NEWER_BY later, in the same form: `...Z`, or naive wall time."""
    moment = dt.datetime.fromisoformat(text)
    later = moment + NEWER_BY
    if moment.tzinfo is not None:
        return iso_z(to_us(later) // 1000)
    # Naive (nexudus_naive_timestamps): wall time, as timeutil.iso_local writes it.
    base = later.strftime("%Y-%m-%dT%H:%M:%S")
    return f"{base}.{later.microsecond // 1000:03d}" if later.microsecond else base
