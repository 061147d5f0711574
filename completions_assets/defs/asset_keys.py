"""The three asset keys (SPEC section 7), named once for assets, checks and reports."""

import dagster as dg

BINDBEE = dg.AssetKey("bindbee_completions")
NEXUDUS = dg.AssetKey("nexudus_completions")
LMS = dg.AssetKey("lms_completions")
