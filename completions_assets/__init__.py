"""Dagster assets keeping a validated record of LMS course completions."""

import os

# Why: pyarrow's mimalloc pool keeps freed pages per thread; malloc keeps provider steps under 300 MB (docs/benchmarks.md).
os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")
