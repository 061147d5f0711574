"""Dagster assets keeping a validated record of LMS course completions."""
