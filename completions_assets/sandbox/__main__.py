"""`python -m completions_assets.sandbox`: serve both provider APIs on 127.0.0.1.

The first stdout line is the base URL; SIGINT or SIGTERM stops the server (exit 0).
"""

import argparse
import dataclasses
import datetime as dt
import signal
import sys
import threading
from collections.abc import Sequence
from typing import Any

from .config import DRIFT_MODES, PROVIDERS, ProviderFaults, SandboxConfig, check_connection_name
from .server import start_sandbox
from .timeutil import parse_iso


def _optional_int(text: str) -> int | None:
    return None if text.lower() in ("", "none") else int(text)


def _optional_str(text: str) -> str | None:
    return None if text.lower() in ("", "none") else text


def _names(text: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    try:
        for name in names:
            check_connection_name(name)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return names


def _revoke(text: str) -> tuple[str, str]:
    """`bindbee:acme` (--revoke)."""
    provider, _, name = text.partition(":")
    if provider not in PROVIDERS or not name or ":" in name:
        raise argparse.ArgumentTypeError(f"expected PROVIDER:CONNECTION, got {text!r}")
    return provider, name


def _revoke_after(text: str) -> tuple[str, str, int]:
    """`bindbee:acme:3` (--revoke-after)."""
    head, _, count = text.rpartition(":")
    if not count.isdigit():
        raise argparse.ArgumentTypeError(f"expected PROVIDER:CONNECTION:N, got {text!r}")
    return (*_revoke(head), int(count))


def _add_fault_flags(parser: argparse.ArgumentParser, provider: str) -> None:
    group = parser.add_argument_group(f"{provider} faults")
    for f in dataclasses.fields(ProviderFaults):
        flag = f"--{provider}-{f.name.replace('_', '-')}"
        dest = f"{provider}__{f.name}"
        if f.type is bool or f.type == "bool":
            group.add_argument(flag, dest=dest, action="store_true")
        elif f.name == "latency_ms":
            group.add_argument(flag, dest=dest, type=float, default=f.default, metavar="MS")
        elif f.name == "retry_after":
            group.add_argument(flag, dest=dest, type=_optional_str, default=f.default, metavar="SECONDS|none")
        elif f.name == "drift":
            group.add_argument(
                flag,
                dest=dest,
                type=_optional_str,
                default=f.default,
                choices=(*DRIFT_MODES, None),
                metavar="|".join(DRIFT_MODES),
            )
        else:
            group.add_argument(flag, dest=dest, type=_optional_int, default=f.default, metavar="N")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m completions_assets.sandbox", description=__doc__)
    defaults = SandboxConfig()
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--start-date", type=dt.date.fromisoformat, default=defaults.start_date)
    parser.add_argument("--days", type=int, default=defaults.days)
    parser.add_argument("--records-per-day", type=int, default=defaults.records_per_day)
    parser.add_argument("--late-fraction", type=float, default=defaults.late_fraction)
    parser.add_argument("--rate-limits", action="store_true", help="enforce 429 (Bindbee) / 409 (Nexudus)")
    parser.add_argument("--nexudus-filter-tz", default=defaults.nexudus_filter_tz)
    parser.add_argument("--nexudus-naive-timestamps", action="store_true")
    parser.add_argument("--token-lifetime", type=float, default=defaults.token_lifetime_s, metavar="SECONDS")
    parser.add_argument(
        "--now", type=parse_iso, default=None, help="fixed visibility clock (ISO 8601); default: real clock"
    )
    for provider in PROVIDERS:
        parser.add_argument(
            f"--{provider}-connections",
            dest=f"{provider}_connections",
            type=_names,
            default=defaults.connections[provider],
            metavar="NAME[,NAME...]",
            help="connections served, each with its own data and credentials (default: default)",
        )
    parser.add_argument(
        "--bindbee-ignore-expand",
        type=_names,
        default=(),
        metavar="NAME[,NAME...]",
        help="Bindbee connections whose LMS ignores `expand` (relations stay ids)",
    )
    parser.add_argument(
        "--nexudus-member-removed",
        action="store_true",
        help="one enrolment leaves its course after completing lessons (its completions stay)",
    )
    parser.add_argument(
        "--revoke",
        type=_revoke,
        action="append",
        default=[],
        metavar="PROVIDER:CONNECTION",
        help="refuse that connection's credentials (repeatable)",
    )
    parser.add_argument(
        "--revoke-after",
        type=_revoke_after,
        action="append",
        default=[],
        metavar="PROVIDER:CONNECTION:N",
        help="refuse that connection's credentials from its (N+1)-th data request (repeatable)",
    )
    for provider in PROVIDERS:
        _add_fault_flags(parser, provider)
    return parser


def config_from_args(args: argparse.Namespace) -> SandboxConfig:
    faults: dict[str, Any] = {p: {} for p in PROVIDERS}
    for key, value in vars(args).items():
        if "__" in key:
            provider, name = key.split("__", 1)
            faults[provider][name] = value
    return SandboxConfig(
        seed=args.seed,
        start_date=args.start_date,
        days=args.days,
        records_per_day=args.records_per_day,
        rate_limits=args.rate_limits,
        nexudus_filter_tz=args.nexudus_filter_tz,
        nexudus_naive_timestamps=args.nexudus_naive_timestamps,
        token_lifetime_s=args.token_lifetime,
        now=args.now,
        late_fraction=args.late_fraction,
        connections={p: getattr(args, f"{p}_connections") for p in PROVIDERS},
        bindbee_ignore_expand=args.bindbee_ignore_expand,
        nexudus_member_removed=args.nexudus_member_removed,
        **{p: ProviderFaults(**faults[p]) for p in PROVIDERS},
    )


def revocations_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """`Sandbox.update` keyword arguments of --revoke and --revoke-after."""
    revoke: dict[str, list[str]] = {}
    for provider, name in args.revoke:
        revoke.setdefault(provider, []).append(name)
    after: dict[str, dict[str, int]] = {}
    for provider, name, count in args.revoke_after:
        after.setdefault(provider, {})[name] = count
    return {"revoke": revoke, "revoke_after": after}


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    try:
        sandbox = start_sandbox(config_from_args(args), port=args.port)
    except ValueError as exc:  # a connection named twice, two connections with one token
        parser.error(str(exc))
    try:
        # Before the URL is printed, so no request can see the credentials still valid.
        sandbox.update(**revocations_from_args(args))
        print(sandbox.base_url, flush=True)
        stop.wait()
    except ValueError as exc:  # --revoke of a connection that is not served
        parser.error(str(exc))
    finally:
        sandbox.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
