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

from .config import DRIFT_MODES, PROVIDERS, ProviderFaults, SandboxConfig
from .server import start_sandbox
from .timeutil import parse_iso


def _optional_int(text: str) -> int | None:
    return None if text.lower() in ("", "none") else int(text)


def _optional_str(text: str) -> str | None:
    return None if text.lower() in ("", "none") else text


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
            group.add_argument(flag, dest=dest, type=_optional_str, default=f.default, choices=(*DRIFT_MODES, None),
                               metavar="|".join(DRIFT_MODES))
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
    parser.add_argument("--now", type=parse_iso, default=None, help="fixed visibility clock (ISO 8601); default: real clock")
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
        seed=args.seed, start_date=args.start_date, days=args.days, records_per_day=args.records_per_day,
        rate_limits=args.rate_limits, nexudus_filter_tz=args.nexudus_filter_tz,
        nexudus_naive_timestamps=args.nexudus_naive_timestamps, token_lifetime_s=args.token_lifetime,
        now=args.now, late_fraction=args.late_fraction,
        **{p: ProviderFaults(**faults[p]) for p in PROVIDERS},
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    sandbox = start_sandbox(config_from_args(args), port=args.port)
    try:
        print(sandbox.base_url, flush=True)
        stop.wait()
    finally:
        sandbox.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
