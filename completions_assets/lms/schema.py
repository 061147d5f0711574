"""Arrow schemas of the three assets' Parquet files (SPEC section 7).

Every file is written with exactly one of these schemas, so a hive reader sees
one dataset whatever the day or the provider's payload.
"""

import pyarrow as pa

UTC_TIMESTAMP = pa.timestamp("us", tz="UTC")

BINDBEE_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("remote_id", pa.string()),
        ("modified_at", UTC_TIMESTAMP),
        ("user", pa.string()),
        ("course", pa.string()),
        ("content", pa.string()),
        ("score", pa.float64()),
        ("grade", pa.string()),
        ("started_at", UTC_TIMESTAMP),
        ("completed_at", UTC_TIMESTAMP),
        ("time_duration", pa.string()),
        # JSON text; null unless the resource asks for them (include_raw_data /
        # include_custom_fields), so the schema never changes with configuration.
        ("raw_data", pa.string()),
        ("custom_fields", pa.string()),
    ]
)

NEXUDUS_SCHEMA = pa.schema(
    [
        ("id", pa.int64()),
        ("unique_id", pa.string()),
        ("course_lesson_id", pa.int64()),
        ("course_lesson_title", pa.string()),
        ("course_member_id", pa.int64()),
        ("course_member_coworker_full_name", pa.string()),
        ("course_member_coworker_company_name", pa.string()),
        ("course_member_coworker_team_names", pa.string()),
        ("created_on", UTC_TIMESTAMP),
        ("updated_on", UTC_TIMESTAMP),
        ("updated_by", pa.string()),
        ("is_new", pa.bool_()),
        ("system_id", pa.string()),
        ("to_string_text", pa.string()),
        ("custom_fields", pa.string()),
    ]
)

LMS_SCHEMA = pa.schema(
    [
        pa.field("provider", pa.string(), nullable=False),
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
    ]
)

# Event-time column per raw schema: a record belongs to the day this falls in.
EVENT_TIME = {"bindbee": "completed_at", "nexudus": "created_on"}
