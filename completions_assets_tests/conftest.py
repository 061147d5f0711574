"""Session fixtures: one read-only sandbox, and the S3/PostgreSQL servers of the
production tests (started only when a test asks for them)."""

from collections.abc import Iterator

import pytest

from completions_assets.sandbox import Sandbox, start_sandbox
from completions_assets_tests.support import SANDBOX

pytest_plugins = ["completions_assets_tests.servers"]


@pytest.fixture(scope="session")
def sandbox() -> Iterator[Sandbox]:
    """One read-only sandbox for tests that inject no faults."""
    with start_sandbox(SANDBOX) as running:
        yield running
