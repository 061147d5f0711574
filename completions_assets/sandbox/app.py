"""Routes, per-provider fault handling, stats and runtime control of the sandbox."""

import collections
import datetime as dt
import json
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from . import bindbee_api, drift, faults, nexudus_api, nexudus_auth, nexudus_members
from .config import DEFAULT_CONNECTION, PROVIDERS, ProviderFaults, SandboxConfig, load_credentials
from .connections import Credentials, Revocations
from .data import Dataset
from .reply import Reply, json_reply
from .timeutil import parse_iso

UNSET: Any = object()  # "leave unchanged" for update(now=...), where None means the real clock
_CONTROL_KEYS = ("delete", "modify", "rate_limits", "expire_tokens", "revoke", "revoke_after")
Deletions = Mapping[str, Iterable[str] | Mapping[str, Iterable[str]]]


REQUEST_LOG_LIMIT = 200_000  # entries kept (oldest dropped): bounded memory on long runs
QUERY_LOG_LIMIT = 100_000  # data requests' query parameters kept (oldest dropped)


@dataclass(frozen=True)
class LoggedRequest:
    """One data or token request as the sandbox saw it: when it arrived and was answered (epoch
    seconds), for whom, and the client's User-Agent (the project's names its process)."""

    arrived: float
    answered: float
    bucket: str
    connection: str | None
    status: int
    user_agent: str


def _per_connection(ids: Iterable[str] | Mapping[str, Iterable[str]]) -> Mapping[str, Iterable[str]]:
    return ids if isinstance(ids, Mapping) else {DEFAULT_CONNECTION: ids}


def _counts(counter: collections.Counter[str]) -> dict[str, Any]:
    return {"requests": sum(counter.values()), "statuses": dict(counter)}


class SandboxApp:
    """Everything behind the socket: maps one request to one Reply."""

    def __init__(self, config: SandboxConfig, environ: Mapping[str, str] | None = None) -> None:
        self.config = config
        self.credentials = load_credentials(environ)  # the "default" connection's, by the product's variable name
        self.connection_creds = Credentials(config, environ)
        self.dataset = Dataset(config)
        self.rate_limits = config.rate_limits
        self.counters = {p: faults.FaultCounter(config.faults(p)) for p in PROVIDERS}
        self.revocations = Revocations(config.connections)
        self.tokens = nexudus_auth.TokenStore(
            self.connection_creds.accounts,
            config.token_lifetime_s,
            revoked=lambda name: self.revocations.is_revoked("nexudus", name),
        )
        self._bindbee = bindbee_api.BindbeeApi(
            self.dataset,
            self.connection_creds.api_key,
            self.connection_creds.connectors,
            ignore_expand=config.bindbee_ignore_expand,
        )
        self._nexudus = nexudus_api.NexudusApi(self.dataset, self.tokens, config.nexudus_filter_tz)
        self._stats: dict[str, collections.Counter[str]] = {k: collections.Counter() for k in (*PROVIDERS, "token")}
        self._by_connection = {
            p: {name: collections.Counter[str]() for name in names} for p, names in config.connections.items()
        }
        self._lock = threading.Lock()
        self.request_log: collections.deque[LoggedRequest] = collections.deque(maxlen=REQUEST_LOG_LIMIT)
        # (sequence number, provider, query parameters) of each data request, for GET /_sandbox/queries
        self.query_log: collections.deque[tuple[int, str, dict[str, str]]] = collections.deque(maxlen=QUERY_LOG_LIMIT)
        self._queries = 0
        self._accounts = {account.connection: account for account in self.connection_creds.accounts}
        self._by_username = {account.username: account.connection for account in self.connection_creds.accounts}
        # For `echo_credentials`: connection -> the refresh token last granted to it, and the
        # owner of each granted refresh token not yet spent (they are single use).
        self._refresh_tokens: dict[str, str] = {}
        self._refresh_owners: dict[str, str] = {}
        # (kind, value) of every credential an error body quoted (the newest QUERY_LOG_LIMIT)
        self._echoed: collections.deque[tuple[str, str]] = collections.deque(maxlen=QUERY_LOG_LIMIT)

    def handle(
        self, method: str, path: str, params: Mapping[str, str], headers: Mapping[str, str], body: bytes
    ) -> tuple[str | None, Reply]:
        """Returns the stats bucket of the request (None for test-only routes) and its reply."""
        routes = {
            ("GET", bindbee_api.PATH): ("bindbee", lambda: self._data_request("bindbee", params, headers)),
            ("GET", nexudus_api.PATH): ("nexudus", lambda: self._data_request("nexudus", params, headers)),
            ("GET", nexudus_members.PATH): ("nexudus", lambda: self._members_request(params, headers)),
            ("POST", nexudus_auth.TOKEN_PATH): ("token", lambda: self._token_request(body, headers)),
            ("GET", "/_sandbox/ground_truth"): (None, lambda: self._ground_truth(params)),
            ("GET", "/_sandbox/stats"): (None, lambda: json_reply(200, self.stats())),
            ("GET", "/_sandbox/queries"): (None, lambda: self._query_log(params)),
            ("POST", "/_sandbox/control"): (None, lambda: self._control(body)),
        }
        route = routes.get((method, path))
        if route is not None:
            return route[0], route[1]()
        if any(p == path for _, p in routes):
            return None, json_reply(405, {"detail": "Method Not Allowed"})
        return None, json_reply(404, {"detail": "Not Found"})

    def _data_request(self, provider: str, params: Mapping[str, str], headers: Mapping[str, str]) -> Reply:
        with self._lock:
            self.query_log.append((self._queries, provider, dict(params)))
            self._queries += 1
        number, knobs = self.counters[provider].next()
        connection = (self._bindbee if provider == "bindbee" else self._nexudus).identify(headers)
        # Counted whatever the answer (a fault too): revoke_after counts the connection's requests.
        revoked = connection is not None and not self.revocations.admit(provider, connection)
        reply = self._serve(provider, connection, revoked, number, knobs, params, headers)
        reply.connection = connection
        return reply

    def _members_request(self, params: Mapping[str, str], headers: Mapping[str, str]) -> Reply:
        """Enrolments: the account's auth, revocation and rate budget, but neither the fault knobs
        nor `revoke_after`, which count the completions' requests (a run fetches both at once, in
        either order)."""
        connection = self._nexudus.identify(headers)
        revoked = connection is not None and self.revocations.is_revoked("nexudus", connection)
        reply = self._nexudus.handle(
            connection, params, enforce=self.rate_limits, repeat_page=False, revoked=revoked, members=True
        )
        reply.connection = connection
        return reply

    def _serve(
        self,
        provider: str,
        connection: str | None,
        revoked: bool,
        number: int,
        knobs: ProviderFaults,
        params: Mapping[str, str],
        headers: Mapping[str, str],
    ) -> Reply:
        if knobs.latency_ms:
            time.sleep(knobs.latency_ms / 1000)
        fault = faults.planned(knobs, number, provider)
        if fault is faults.Fault.STATUS:
            echoed = self._credentials_held(provider, connection, headers) if knobs.echo_credentials else []
            with self._lock:
                self._echoed.extend(echoed)
            return faults.status_reply(provider, knobs, [value for _, value in echoed])
        if fault is faults.Fault.HTML:
            return faults.html_reply(knobs.html_status)
        withheld = frozenset[int]()
        if connection is not None and knobs.withhold_days:
            withheld = self.dataset.withheld(provider, knobs.withhold_days, knobs.withhold_share, connection)
        if provider == "bindbee":
            reply = self._bindbee.handle(
                connection,
                params,
                headers,
                enforce=self.rate_limits,
                repeat_cursor=knobs.repeat_cursor,
                revoked=revoked,
                withheld=withheld,
            )
        else:
            reply = self._nexudus.handle(
                connection,
                params,
                enforce=self.rate_limits,
                repeat_page=knobs.repeat_cursor,
                revoked=revoked,
                withheld=withheld,
            )
        if fault is faults.Fault.UNSUCCESSFUL and reply.status == 200:
            return faults.unsuccessful_reply()
        if knobs.drift is not None and reply.status == 200:
            reply.body = drift.apply(reply.body, provider, knobs.drift)
        return faults.damage(reply, fault)

    def _token_request(self, body: bytes, headers: Mapping[str, str]) -> Reply:
        """The token endpoint's answer; a grant's refresh token is remembered for `echo_credentials`
        (read from the request's form: asking the store whose token it is would spend one of its uses)."""
        reply = self.tokens.token_endpoint(body, headers)
        if reply.status != 200:
            return reply
        form = {k: v[-1] for k, v in parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True).items()}
        refresh = json.loads(reply.body)["refresh_token"]
        with self._lock:
            if form.get("grant_type") == "refresh_token":
                connection = self._refresh_owners.pop(form.get("refresh_token", ""), None)
            else:
                connection = self._by_username.get(form.get("username", ""))
            if connection is not None:
                self._refresh_tokens[connection] = refresh
                self._refresh_owners[refresh] = connection
        return reply

    def _credentials_held(
        self, provider: str, connection: str | None, headers: Mapping[str, str]
    ) -> list[tuple[str, str]]:
        """(kind, value) of the credentials the client of this request holds, as far as the sandbox
        can tell: what the request carries and, for a Nexudus token it was granted, the password it
        was granted with and the refresh token that came with it (kinds: api_key, connector_token,
        access_token, password, refresh_token)."""
        bearer = (headers.get("Authorization") or "").partition(" ")[2].strip()
        if provider == "bindbee":
            held = [("api_key", bearer), ("connector_token", headers.get("x-connector-token") or "")]
        else:
            held = [("access_token", bearer)]
            account = self._accounts.get(connection) if connection is not None else None
            if account is not None and bearer != account.access_token:  # a granted token, not the static one
                with self._lock:
                    refresh = self._refresh_tokens.get(account.connection, "")
                held += [("password", account.password), ("refresh_token", refresh)]
        return [(kind, value) for kind, value in held if value]

    def echoed_credentials(self) -> list[tuple[str, str]]:
        """(kind, value) of the credentials `echo_credentials` error bodies quoted so far, in order."""
        with self._lock:
            return list(self._echoed)

    def record(
        self, bucket: str, status: int, connection: str | None = None, timing: tuple[float, float, str] | None = None
    ) -> None:
        """Counts one answered request; `timing` is (arrived, answered, user agent) for the log."""
        with self._lock:
            if timing is not None:
                self.request_log.append(LoggedRequest(timing[0], timing[1], bucket, connection, status, timing[2]))
            self._stats[bucket][str(status)] += 1
            if connection is not None and bucket in self._by_connection:
                self._by_connection[bucket][connection][str(status)] += 1

    def logged_requests(self) -> list[LoggedRequest]:
        """Every answered request so far (the newest REQUEST_LOG_LIMIT), in answer order."""
        with self._lock:
            return list(self.request_log)

    def stats(self) -> dict[str, dict[str, Any]]:
        """Per provider (and token endpoint); with connections configured, also per connection."""
        with self._lock:
            out = {k: _counts(c) for k, c in self._stats.items()}
            if self.config.many_connections:  # default-only keeps today's shape
                out["connections"] = {
                    p: {name: _counts(c) for name, c in names.items()} for p, names in self._by_connection.items()
                }
            return out

    def update(
        self,
        *,
        now: dt.datetime | None = UNSET,
        bindbee: ProviderFaults | None = None,
        nexudus: ProviderFaults | None = None,
        delete: Deletions | None = None,
        modify: Deletions | None = None,
        rate_limits: bool | None = None,
        expire_tokens: bool = False,
        revoke: Mapping[str, Iterable[str]] | None = None,
        revoke_after: Mapping[str, Mapping[str, int]] | None = None,
    ) -> None:
        """Change the running sandbox; new fault knobs restart that provider's request count.

        `delete` maps a provider to ids of its "default" connection, or to {connection: ids}; `modify`
        likewise corrects records at the source (Dataset.modify).
        `revoke` replaces the revoked connections of each provider it names; `revoke_after`
        {provider: {connection: N}} refuses a connection from its (N+1)-th data request on.
        """
        if revoke is not None:
            self.revocations.revoke(revoke)
        if revoke_after is not None:
            self.revocations.revoke_after(revoke_after)
        if now is not UNSET:
            self.dataset.set_now(now)
        for provider, knobs in (("bindbee", bindbee), ("nexudus", nexudus)):
            if knobs is not None:
                self.counters[provider].set(knobs)
        for provider, ids in (delete or {}).items():
            for connection, some in _per_connection(ids).items():
                self.dataset.delete(provider, some, connection)
        for provider, ids in (modify or {}).items():
            for connection, some in _per_connection(ids).items():
                self.dataset.modify(provider, some, connection)
        if rate_limits is not None:
            self.rate_limits = rate_limits
        if expire_tokens:
            self.tokens.expire_all()

    def _control(self, body: bytes) -> Reply:
        try:
            values = json.loads(body or b"{}")
            kwargs: dict[str, Any] = {k: values[k] for k in _CONTROL_KEYS if k in values}
            if "now" in values:
                kwargs["now"] = None if values["now"] is None else parse_iso(values["now"])
            for provider in PROVIDERS:
                if provider in values:
                    kwargs[provider] = ProviderFaults.from_dict(values[provider])
            self.update(**kwargs)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            return json_reply(400, {"detail": str(exc)})
        return json_reply(200, {"ok": True})

    def _query_log(self, params: Mapping[str, str]) -> Reply:
        """Read-only: the query parameters of data requests numbered `since` (default 0) and later, as they
        arrived, and `next`, the number the next request will get (the newest QUERY_LOG_LIMIT are kept)."""
        try:
            since = int(params.get("since") or 0)
        except ValueError as exc:
            return json_reply(400, {"detail": f"bad since: {exc}"})
        with self._lock:
            entries = [{"seq": n, "provider": p, "params": q} for n, p, q in self.query_log if n >= since]
            return json_reply(200, {"next": self._queries, "queries": entries})

    def _ground_truth(self, params: Mapping[str, str]) -> Reply:
        try:
            provider = params["provider"]
            if provider not in PROVIDERS:
                raise ValueError(f"provider must be one of {PROVIDERS}")
            connection = params.get("connection") or DEFAULT_CONNECTION
            ids = self.dataset.ground_truth(provider, parse_iso(params["start"]), parse_iso(params["end"]), connection)
        except (KeyError, ValueError) as exc:
            return json_reply(400, {"detail": f"bad ground_truth query: {exc}"})
        return json_reply(200, {"ids": ids})
