"""Schema drift (the `drift` fault knob): data pages whose records stray from the documents.

    unknown_fields     every record gains fields the documents do not name
    omit_optional      every record lacks its optional (nullable) fields
    number_as_string   numeric fields arrive as JSON strings: score "95.5", Id "87000001"
    bad_type           the first record of each page has its event time as epoch milliseconds

Only the wire form changes: ground truth and every other knob are unaffected.
"""

import json
from typing import Any

from .timeutil import parse_iso, to_us

RECORDS_KEY = {"bindbee": "items", "nexudus": "Records"}
UNKNOWN_FIELDS: dict[str, dict[str, Any]] = {
    "bindbee": {"completion_source": "mobile", "attempt_count": 2},
    "nexudus": {"CourseLessonDurationMinutes": 12, "CertificateUrl": None},
}
OPTIONAL_FIELDS = {
    "bindbee": (
        "remote_id",
        "modified_at",
        "raw_data",
        "custom_fields",
        "score",
        "grade",
        "started_at",
        "time_duration",
    ),
    "nexudus": (
        "CourseLessonTitle",
        "CourseMemberCoworkerFullName",
        "CourseMemberCoworkerCompanyName",
        "CourseMemberCoworkerTeamNames",
        "UpdatedOn",
        "UniqueId",
        "UpdatedBy",
        "IsNew",
        "SystemId",
        "ToStringText",
        "LocalizationDetails",
        "CustomFields",
    ),
}
NUMERIC_FIELDS = {"bindbee": ("score",), "nexudus": ("Id", "CourseLessonId", "CourseMemberId")}
EVENT_TIME = {"bindbee": "completed_at", "nexudus": "CreatedOn"}


def apply(body: bytes, provider: str, mode: str) -> bytes:
    """The page `body` with every record drifted by `mode`."""
    page = json.loads(body)
    for index, record in enumerate(page[RECORDS_KEY[provider]]):
        _drift(record, provider, mode, first=index == 0)
    return json.dumps(page, ensure_ascii=False, separators=(",", ":")).encode()


def _drift(record: dict[str, Any], provider: str, mode: str, *, first: bool) -> None:
    if mode == "unknown_fields":
        record.update(UNKNOWN_FIELDS[provider])
    elif mode == "omit_optional":
        for name in OPTIONAL_FIELDS[provider]:
            record.pop(name, None)
    elif mode == "number_as_string":
        for name in NUMERIC_FIELDS[provider]:
            if record.get(name) is not None:
                record[name] = str(record[name])
    elif mode == "bad_type" and first:
        # Seconds or milliseconds? A reader cannot tell, so it must refuse.
        name = EVENT_TIME[provider]
        record[name] = to_us(parse_iso(record[name])) // 1000
