"""Dagster assets keeping a validated record of LMS course completions."""

import ctypes
import os

# Why: pyarrow's mimalloc pool keeps freed pages per thread; malloc keeps provider steps under 300 MB (docs/benchmarks.md).
os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")

_M_TRIM_THRESHOLD, _M_ARENA_MAX = -1, -8  # glibc's mallopt parameters
_MALLOC_VARIABLES = ("MALLOC_ARENA_MAX", "MALLOC_TRIM_THRESHOLD_")


def _return_freed_memory() -> None:
    """Why: with malloc under Arrow, glibc keeps what fetching threads free, in a heap per thread
    and above a threshold that grows with every large block freed; two heaps and a fixed 1 MiB
    threshold keep a provider step at 50,000 records a day under 300 MB (docs/benchmarks.md).
    Either MALLOC_* variable, when set, leaves malloc as the environment configured it; elsewhere
    than glibc this does nothing."""
    if any(name in os.environ for name in _MALLOC_VARIABLES):
        return
    try:
        libc = ctypes.CDLL(None)
        libc.mallopt(_M_ARENA_MAX, 2)
        libc.mallopt(_M_TRIM_THRESHOLD, 1 << 20)
    except (OSError, AttributeError):
        pass


_return_freed_memory()
