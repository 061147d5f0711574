"""Session fixtures: one read-only sandbox, and the S3/PostgreSQL servers of the
production tests (started only when a test asks for them)."""

from collections.abc import Iterator

import pytest

from completions_assets.sandbox import Sandbox, start_sandbox
from completions_assets_tests.support import SANDBOX

pytest_plugins = ["completions_assets_tests.servers"]
TIERS = ("unit", "integration", "e2e")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test has exactly one tier (its module's `pytestmark`), so `make test-fast` misses none by mistake."""
    for item in items:
        tiers = {mark.name for mark in item.iter_markers() if mark.name in TIERS}
        if len(tiers) != 1:
            raise pytest.UsageError(f"{item.nodeid}: needs exactly one of the markers {', '.join(TIERS)}, has {tiers}")


@pytest.fixture(scope="session")
def sandbox() -> Iterator[Sandbox]:
    """One read-only sandbox for tests that inject no faults."""
    with start_sandbox(SANDBOX) as running:
        yield running
