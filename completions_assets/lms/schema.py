"""The unified schema of `lms_completions` (docs/contract.md, "Columns"): every provider's rows in one shape."""

import pyarrow as pa

from completions_assets.providers.records import UTC_TIMESTAMP

LMS_SCHEMA = pa.schema(
    [
        pa.field("provider", pa.string(), nullable=False),
        pa.field("connection", pa.string(), nullable=False),
        pa.field("completion_id", pa.string(), nullable=False),
        ("user_id", pa.string()),
        ("user_name", pa.string()),
        ("course_id", pa.string()),
        ("content_id", pa.string()),
        ("content_title", pa.string()),
        ("started_at", UTC_TIMESTAMP),
        ("completed_at", UTC_TIMESTAMP),
        ("duration_seconds", pa.int64()),
        ("score", pa.float64()),
        ("grade", pa.string()),
        ("modified_at", UTC_TIMESTAMP),
        ("completion_date", pa.date32()),
        # Who and which course: Bindbee's expanded relations, Nexudus's enrolment snapshot.
        ("person_id", pa.string()),
        ("course_title", pa.string()),
        ("user_email", pa.string()),  # Bindbee only, and only with include_email
        ("company_name", pa.string()),
        ("team_names", pa.string()),
    ]
)
# What identifies a merged row; the merge keeps one row per key.
LMS_KEY = ["provider", "connection", "completion_id"]
