"""The "connections" section (issue 19): the shipped code beside the code before the issue, at many connections.

Every point runs the shipped `completions_assets` and then the package as of
BEFORE_ISSUE (earlier_code.checkout, run from its own directory), each in a
fresh process with a fresh DAGSTER_HOME and data root, one run per point:

(a) the CLI day run (`--partition DAY`, default pacing) at 1+1, 20+2 and
    200+20 connections, one sandbox serving all of them at 200 records a day;
(b) the code location's load time with 500 connections declared (load_time);
(c) Bindbee with the sandbox's rate limits on (200 requests a minute per
    connector token) and the resources' default pacing: 1 and 10 connections
    of about 300 pages each; every run has tokens of its own, so no run starts
    in a window an earlier one filled;
(d) a 365-day range run of the default connections (no connections file), pacing
    off through run config derived from each package's own definitions;
(e) the provider steps' peak RSS: at 200+20 connections (the run of a) and at
    10+10 connections × 50,000 records a day (pacing off).

A run that fails is recorded with its reason and the section goes on: the
shipped code is being restructured while this runs.
"""

import datetime as dt
import os
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from completions_assets.connections import FILE_VARIABLE, Connection
from completions_assets.local.launch import INSTANCE_CONFIG, prepare_dagster_home
from completions_assets_bench import dagster_run, run_config
from completions_assets_bench.connection_sets import ConnectionSet, declared
from completions_assets_bench.dagster_run import DagsterRun
from completions_assets_bench.earlier_code import checkout, instance_config
from completions_assets_bench.load_time import LoadTime, measure_load
from completions_assets_bench.sandbox import Sandbox, serving
from completions_assets_bench.throughput import dagster_environment
from completions_assets_bench.workload import Range, Workload

BEFORE_ISSUE = "b718c14"
CODES = ("shipped", "before")
RUN_TIMEOUT_S = 1800.0
SANDBOX_START_TIMEOUT_S = 600.0
LOG_TAIL_LINES = 15

DAY = Range(dt.date(2024, 1, 2), 1)
# A day on each side: Nexudus's widened windows reach into them.
DAY_SANDBOX = Workload("connections", dt.date(2024, 1, 1), 3, 200)
DAY_SETS = (ConnectionSet(1, 1), ConnectionSet(20, 2), ConnectionSet(200, 20))
LOAD_SET = ConnectionSet(450, 50)
# 30,000 records in pages of 100: past the 200 a minute's first window, into the second.
RATE_SANDBOX = Workload("connections-rate", DAY.first, 1, 30_000)
RATE_SIZES = (1, 10)
YEAR_SANDBOX = Workload("year", dt.date(2023, 12, 31), 367, 200)
YEAR = Range(dt.date(2024, 1, 1), 365)
DENSE_SANDBOX = Workload("connections-dense", dt.date(2024, 1, 1), 3, 50_000)
DENSE_SET = ConnectionSet(10, 10)


@dataclass
class Outcome:
    """One Dagster run of one code, or why there is none."""

    run: DagsterRun | None = None
    error: str = ""
    requests: int = 0  # Bindbee data requests the sandbox answered during the run, any status
    throttled: int = 0  # of them 429


@dataclass
class ConnectionsResult:
    day_runs: dict[tuple[ConnectionSet, str], Outcome] = field(default_factory=dict)
    load: dict[str, LoadTime | str] = field(default_factory=dict)  # a reason if it did not load
    rate: dict[tuple[int, str], Outcome] = field(default_factory=dict)
    year: dict[str, Outcome] = field(default_factory=dict)
    dense: dict[str, Outcome] = field(default_factory=dict)
    duration_s: float = 0.0


class _Codes:
    """Where each code's package is (None: this checkout's), or why the earlier one cannot run."""

    def __init__(self, scratch: Path) -> None:
        self.dirs: dict[str, Path | None] = {"shipped": None}
        self.missing = ""
        try:
            self.dirs["before"] = checkout(BEFORE_ISSUE, scratch)
        except RuntimeError as exc:
            self.missing = str(exc)


def measure_connections(scratch: Path, *, log: Callable[[str], None]) -> ConnectionsResult:
    began = time.monotonic()
    codes = _Codes(scratch)
    result = ConnectionsResult()
    log(f"  load time: {LOAD_SET.label} connections declared")
    load_file = LOAD_SET.write(scratch, DAY.first)
    for code in CODES:
        result.load[code] = _load(codes, code, load_file)
    biggest = DAY_SETS[-1]
    with _serving(DAY_SANDBOX, declared(biggest.write(scratch, DAY.first)), log) as sandbox:
        for sizes in DAY_SETS:
            for code in CODES:
                result.day_runs[sizes, code] = _run(sandbox, scratch, codes, code, DAY, sizes, log=log)
    rate_sets = {}
    skip = 0
    for size in RATE_SIZES:
        for code in CODES:
            rate_sets[size, code] = ConnectionSet(size, 0, skip=skip)
            skip += size
    served = declared(ConnectionSet(skip, 0).write(scratch, DAY.first))
    with _serving(RATE_SANDBOX, served, log, rate_limits=True) as sandbox:
        for (size, code), sizes in rate_sets.items():
            result.rate[size, code] = _run(sandbox, scratch, codes, code, DAY, sizes, log=log)
    with _serving(YEAR_SANDBOX, (), log) as sandbox:
        for code in CODES:
            result.year[code] = _run(sandbox, scratch, codes, code, YEAR, None, pacing=False, log=log)
    with _serving(DENSE_SANDBOX, declared(DENSE_SET.write(scratch, DAY.first)), log) as sandbox:
        for code in CODES:
            result.dense[code] = _run(sandbox, scratch, codes, code, DAY, DENSE_SET, pacing=False, log=log)
    result.duration_s = time.monotonic() - began
    return result


@contextmanager
def _serving(
    work: Workload, connections: Sequence[Connection], log: Callable[[str], None], *, rate_limits: bool = False
) -> Iterator[Sandbox]:
    began = time.monotonic()
    with serving(work, rate_limits=rate_limits, connections=connections) as sandbox:
        sandbox.wait_idle(timeout_s=SANDBOX_START_TIMEOUT_S)
        log(f"  sandbox {work.name}: idle after {time.monotonic() - began:.0f} s, {sandbox.peak_rss_mb():.0f} MB")
        yield sandbox


def _load(codes: _Codes, code: str, connections_file: Path) -> LoadTime | str:
    if code not in codes.dirs:
        return codes.missing
    # Bytecode is written (by the unmeasured first load), as an installed package has it, even
    # where this environment turns that off.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    try:
        return measure_load(env | {FILE_VARIABLE: str(connections_file)}, code=codes.dirs[code])
    except (RuntimeError, subprocess.TimeoutExpired) as exc:
        return _last_line(exc)


def _run(
    sandbox: Sandbox,
    scratch: Path,
    codes: _Codes,
    code: str,
    days: Range,
    sizes: ConnectionSet | None,
    *,
    log: Callable[[str], None],
    pacing: bool = True,
) -> Outcome:
    """One CLI run of `code` over `days` for the connections of `sizes` (None: the default ones, no
    file), in a fresh DAGSTER_HOME and data root; pacing off through run config derived from that
    code's definitions, or as they configure it."""
    label = f"{code}, {sizes.label if sizes else 'default connections'}, {days.cli}"
    if code not in codes.dirs:
        log(f"    {label}: skipped ({codes.missing})")
        return Outcome(error=codes.missing)
    root = Path(tempfile.mkdtemp(prefix="connections-", dir=scratch))
    connections_file = sizes.write(root, days.first) if sizes else None
    env = dagster_environment(sandbox, declared(connections_file) if connections_file else ())
    env.pop(FILE_VARIABLE, None)
    if connections_file:
        env[FILE_VARIABLE] = str(connections_file)
    env["COMPLETIONS_DATA_ROOT"] = str(root / "data")
    code_dir = codes.dirs[code]
    instance = INSTANCE_CONFIG if code_dir is None else instance_config(code_dir)
    env["DAGSTER_HOME"] = str(prepare_dagster_home(root / "dagster_home", instance, environ=env))
    before = sandbox.stats()["bindbee"]
    try:
        config = None if pacing else run_config.write(root, "pacing-off", env, code=code_dir)
        run = dagster_run.materialize(
            days, env=env, run_config=config, log=root / "run.log", timeout_s=RUN_TIMEOUT_S, code=code_dir
        )
    except (RuntimeError, TimeoutError, KeyError) as exc:
        log(f"    {label}: failed: {exc}")
        for line in _tail(root / "run.log"):
            log(f"      | {line}")
        return Outcome(error=_last_line(exc))
    after = sandbox.stats()["bindbee"]
    throttled = after["statuses"].get("429", 0) - before["statuses"].get("429", 0)
    log(f"    {label}: {run.wall_s:.1f} s, {run.events:,} events, {run.materializations:,} materializations")
    return Outcome(run, requests=after["requests"] - before["requests"], throttled=throttled)


def _tail(path: Path) -> list[str]:
    try:
        return path.read_text(errors="replace").splitlines()[-LOG_TAIL_LINES:]
    except OSError:
        return []


def _last_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[-1]
