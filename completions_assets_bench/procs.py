"""Measured child processes: wall, CPU and peak RSS per process.

A measured variant runs in children of its own, so CPU seconds and peak RSS
belong to it alone. A worker child (`python -m completions_assets_bench.<x>`)
imports what it needs, says `ready`, waits for `go` on stdin, does its work
and prints one JSON line: the parent starts the clock for every child of a
variant at the same moment, and import time stays out of the measurement.
A command (the Dagster CLI) is timed from spawn to exit instead, and the peak
RSS of each of its descendants is sampled from /proc while it runs.
"""

import ctypes
import json
import os
import resource
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

READY_TIMEOUT_S = 120.0
_TICKS = os.sysconf("SC_CLK_TCK")


# ----- the child side -----


def child_main(work: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
    """Run `work(args)` between `go` and the result line; args are JSON in argv[1]."""
    args = json.loads(sys.argv[1])
    print("ready", flush=True)
    if sys.stdin.readline().strip() != "go":
        sys.exit(2)
    began, usage0 = time.time(), resource.getrusage(resource.RUSAGE_SELF)
    result = work(args)
    ended, usage = time.time(), resource.getrusage(resource.RUSAGE_SELF)
    result |= {
        "began": began,
        "ended": ended,
        "cpu_s": (usage.ru_utime + usage.ru_stime) - (usage0.ru_utime + usage0.ru_stime),
        # Not ru_maxrss: after fork/vfork + exec it starts at the parent's RSS.
        "peak_rss_mb": peak_rss_mb(os.getpid()),
    }
    print(json.dumps(result), flush=True)


# ----- the parent side -----


@dataclass
class Measured:
    wall_s: float
    cpu_s: float
    peak_rss_mb: dict[str, float]  # per process (role -> MB)
    results: dict[str, dict[str, Any]] = field(default_factory=dict)  # each role's JSON line


def _spawn(module: str, args: Mapping[str, Any], env: Mapping[str, str] | None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", f"completions_assets_bench.{module}", json.dumps(dict(args))],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=None if env is None else dict(env),
    )


def _read_line(process: subprocess.Popen[str], timeout_s: float) -> str:
    assert process.stdout is not None  # _spawn pipes it
    ready, _, _ = select.select([process.stdout], [], [], timeout_s)
    line = process.stdout.readline() if ready else ""
    if not line:
        module = cast(list[str], process.args)[2]  # _spawn's argv: python -m <module> <args>
        raise RuntimeError(f"benchmark child {module} gave no output (exit {process.poll()})")
    return line


def run_workers(
    module: str, roles: Mapping[str, Mapping[str, Any]], *, timeout_s: float, env: Mapping[str, str] | None = None
) -> Measured:
    """One worker per role, started together; wall spans the first `go` to the last result."""
    children = {role: _spawn(module, args, env) for role, args in roles.items()}
    try:
        for process in children.values():
            if _read_line(process, READY_TIMEOUT_S).strip() != "ready":
                raise RuntimeError(f"benchmark child {module} did not get ready")
        for process in children.values():
            assert process.stdin is not None  # _spawn pipes it
            process.stdin.write("go\n")
            process.stdin.flush()
        results = {role: json.loads(_read_line(p, timeout_s)) for role, p in children.items()}
        for process in children.values():
            process.wait(timeout=30)
    finally:
        for process in children.values():
            _stop(process)
    return Measured(
        wall_s=max(r["ended"] for r in results.values()) - min(r["began"] for r in results.values()),
        cpu_s=sum(r["cpu_s"] for r in results.values()),
        peak_rss_mb={role: r["peak_rss_mb"] for role, r in results.items()},
        results=results,
    )


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.kill()
        process.wait()


def _children_map() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        parent = int(stat[stat.rindex(")") + 2 :].split()[1])
        children.setdefault(parent, []).append(int(entry))
    return children


def descendants(pid: int) -> list[int]:
    tree, out, todo = _children_map(), [], [pid]
    while todo:
        for child in tree.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def peak_rss_mb(pid: int) -> float | None:
    """VmHWM of a live process: its peak RSS so far."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def cpu_seconds(pid: int) -> float | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


@dataclass
class CommandRun:
    pid: int
    began: float  # seconds since the epoch
    returncode: int
    wall_s: float
    cpu_s: float  # the command and every descendant it waited for
    peak_rss_mb: dict[int, float]  # per pid: the command and each descendant, sampled
    cpu_s_by_pid: dict[int, float] = field(default_factory=dict)  # per pid: CPU seconds when last sampled


def run_command(
    command: Sequence[str], *, env: Mapping[str, str], cwd: Path, log: Path, timeout_s: float, poll_s: float = 0.1
) -> CommandRun:
    """Run a command to its end, sampling its process tree's peak RSS and CPU every `poll_s`."""
    peaks: dict[int, float] = {}
    cpu: dict[int, float] = {}
    _adopt_orphans()
    with log.open("w") as handle:
        epoch, began = time.time(), time.perf_counter()
        process = subprocess.Popen(
            list(command), env=dict(env), cwd=cwd, stdout=handle, stderr=handle, start_new_session=True
        )
        deadline = began + timeout_s
        try:
            while True:  # bounded by the deadline
                for pid in [process.pid, *descendants(process.pid)]:
                    peak = peak_rss_mb(pid)
                    if peak is not None:
                        peaks[pid] = max(peaks.get(pid, 0.0), peak)
                    spent = cpu_seconds(pid)
                    if spent is not None:
                        cpu[pid] = spent
                pid, status, usage = os.wait4(process.pid, os.WNOHANG)
                if pid:
                    wall = time.perf_counter() - began
                    process.returncode = os.waitstatus_to_exitcode(status)
                    orphans = _reap_orphans(set(cpu) - {process.pid}, deadline)
                    break
                if time.perf_counter() > deadline:
                    raise TimeoutError(f"{command[:6]} ran longer than {timeout_s:.0f}s; see {log}")
                time.sleep(poll_s)
        finally:
            if process.returncode is None:
                os.killpg(process.pid, signal.SIGKILL)  # the group led by the PID we started
                process.wait()
    return CommandRun(
        pid=process.pid,
        began=epoch,
        returncode=process.returncode,
        wall_s=wall,
        cpu_s=usage.ru_utime + usage.ru_stime + orphans,
        peak_rss_mb=peaks,
        cpu_s_by_pid=cpu,
    )


_PR_SET_CHILD_SUBREAPER = 36


def _adopt_orphans() -> None:
    """Makes this process the parent of any descendant whose parent exits first (Linux), so
    its CPU time is ours to read when we reap it: a run's forkserver outlives the run's
    process for a moment, and reaps the step processes forked from it."""
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def _reap_orphans(pids: set[int], deadline: float) -> float:
    """CPU seconds of those of `pids` that became our children, waited for until `deadline`."""
    spent = 0.0
    for pid in pids:
        while True:  # bounded by the deadline
            try:
                done, _, usage = os.wait4(pid, os.WNOHANG)
            except ChildProcessError:
                break  # not ours: reaped by its own parent
            if done:
                spent += usage.ru_utime + usage.ru_stime
                break
            if time.perf_counter() > deadline:
                raise TimeoutError(f"process {pid} outlived its run")
            time.sleep(0.05)
    return spent
