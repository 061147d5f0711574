"""Bundled provider sandbox: Bindbee and Nexudus completions APIs on loopback.

    with start_sandbox(SandboxConfig(seed=7, days=30)) as sb:
        sb.base_url, sb.dataset.ground_truth("bindbee", start, end), sb.stats()
"""

from .config import DEFAULT_CREDENTIALS, PROVIDERS, ProviderFaults, SandboxConfig, load_credentials
from .data import Dataset
from .server import Sandbox, start_sandbox

__all__ = [
    "DEFAULT_CREDENTIALS",
    "PROVIDERS",
    "Dataset",
    "ProviderFaults",
    "Sandbox",
    "SandboxConfig",
    "load_credentials",
    "start_sandbox",
]
