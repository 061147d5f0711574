"""Dagster assets keeping a validated record of LMS course completions."""

import ctypes
import os

# Why: pyarrow's mimalloc pool keeps freed pages per thread; malloc keeps provider steps under 300 MB (docs/benchmarks.md).
os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")

_M_TRIM_THRESHOLD, _M_ARENA_MAX = -1, -8  # glibc's mallopt parameters


def _return_freed_memory() -> None:
    """Why: with malloc under Arrow, glibc keeps what fetching threads free, in a heap per thread
    and above a threshold that grows with every large block freed; two heaps and a fixed 1 MiB
    threshold cut a dense provider step's peak by a sixth (docs/benchmarks.md). The MALLOC_*
    variables, when set, win; elsewhere than glibc this does nothing."""
    try:
        libc = ctypes.CDLL(None)
        if "MALLOC_ARENA_MAX" not in os.environ:
            libc.mallopt(_M_ARENA_MAX, 2)
        if "MALLOC_TRIM_THRESHOLD_" not in os.environ:
            libc.mallopt(_M_TRIM_THRESHOLD, 1 << 20)
    except (OSError, AttributeError):
        pass


_return_freed_memory()
