"""Bundled provider sandbox: Bindbee and Nexudus completions APIs on loopback.

    with start_sandbox(SandboxConfig(seed=7, days=30)) as sb:
        sb.base_url, sb.dataset.ground_truth("bindbee", start, end), sb.stats()

Many connections (docs/contract.md, "Connections"): `SandboxConfig(connections={"bindbee": ("acme", "globex"),
"nexudus": ("london", "paris")})`, or `--bindbee-connections acme,globex --nexudus-connections
london,paris`, serves several Bindbee connector tokens (under the one shared `BINDBEE_API_KEY`)
and several Nexudus accounts, each with its own seeded data (derived from `--seed` and its name;
ids may repeat across connections), its own rate budget and its own credentials:
`connection_credentials(provider, name)` gives them by variable name, `BINDBEE_CONNECTOR_TOKEN_ACME`
(default `sandbox-connector-token-acme`), `NEXUDUS_USERNAME_LONDON` / `NEXUDUS_PASSWORD_LONDON` /
`NEXUDUS_ACCESS_TOKEN_LONDON` (`sandbox-london@example.com`, `sandbox-password-london`,
`sandbox-nexudus-token-london`); the connection `default` (the default set-up) keeps the section 4
names and values and today's data. Ground truth, records and deletions take a connection
(`GET /_sandbox/ground_truth?...&connection=acme`, control `{"delete": {"bindbee": {"acme": [ids]}}}`).
Revocation, mid-run: control `{"revoke": {"bindbee": ["acme"]}}` (a list replaces that provider's
set; `[]` restores) and `{"revoke_after": {"nexudus": {"paris": 3}}}` (refused from its 4th data
request, counted from then on), `--revoke bindbee:acme`, `--revoke-after nexudus:paris:3`. A revoked
connector token gets 401 `{"detail": "Invalid connector token"}`; a revoked account gets 401 on data
requests and 400 `invalid_grant` from `/api/token`. With connections configured, `stats()` adds
`["connections"][provider][name] = {"requests", "statuses"}` (data requests).

Names: Bindbee honours `expand=user[first_name,last_name],course[name],content[title]` except for the
connections in `bindbee_ignore_expand` (`--bindbee-ignore-expand acme`), which serve ids only; Nexudus
serves `GET /api/content/coursemembers` (one person enrolled in several courses, renamed courses and,
with `nexudus_member_removed` / `--nexudus-member-removed`, a member removed from its course after
completing lessons). `dataset.records("bindbee", expand=...)` and `dataset.course_members()` are their
ground truth.
"""

from .config import (
    DEFAULT_CREDENTIALS,
    PROVIDERS,
    ProviderFaults,
    SandboxConfig,
    connection_credentials,
    load_credentials,
)
from .data import Dataset
from .server import Sandbox, start_sandbox

__all__ = [
    "DEFAULT_CREDENTIALS",
    "PROVIDERS",
    "Dataset",
    "ProviderFaults",
    "Sandbox",
    "SandboxConfig",
    "connection_credentials",
    "load_credentials",
    "start_sandbox",
]
