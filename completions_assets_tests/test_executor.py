"""Step processes forked from a preloaded forkserver (completions_assets/defs/executor.py)."""

import importlib.util
import json
import re
import subprocess
import sys
import warnings
from pathlib import Path

import dagster as dg
import pytest

from completions_assets.defs.executor import FORKSERVER, PRELOAD_MODULE
from completions_assets.local.launch import REPO, materialize_command, prepare_dagster_home
from completions_assets_tests.support import location_env

pytestmark = pytest.mark.e2e


def _execution(run_config: dict) -> dict:
    from completions_assets.definitions import defs

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        job = defs().resolve_implicit_global_asset_job_def()
    return dg.validate_run_config(job, run_config)["execution"]["multi_or_in_process_executor"]


def test_the_default_executor_forks_steps_from_a_preloaded_forkserver():
    assert _execution({})["multiprocess"]["start_method"] == FORKSERVER
    wide = _execution({"execution": {"config": {"multiprocess": {"max_concurrent": 6}}}})["multiprocess"]
    assert wide["max_concurrent"] == 6 and wide["start_method"] == FORKSERVER


def test_run_config_still_chooses_in_process_or_another_start_method():
    assert "multiprocess" not in _execution({"execution": {"config": {"in_process": {}}}})
    spawn = {"execution": {"config": {"multiprocess": {"start_method": {"spawn": {}}}}}}
    assert _execution(spawn)["multiprocess"]["start_method"] == {"spawn": {}}


def _imports(code: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, env=env, timeout=60)


def test_the_preload_imports_the_code_location_and_the_storage(tmp_path):
    # What a step process does first: open the instance (SQLite here). After the preload, that
    # imports a few dozen modules; without it, some four hundred (SQLAlchemy, Alembic, the storage).
    prepare_dagster_home(tmp_path)
    done = _imports(
        f"import sys, {PRELOAD_MODULE}, dagster; "
        "print(all(m in sys.modules for m in "
        "('completions_assets.definitions', 'sqlalchemy', 'alembic.runtime.migration', 'dagster_postgres'))); "
        f"before = set(sys.modules); dagster.DagsterInstance.from_config({str(tmp_path)!r}); "
        "print(len(set(sys.modules) - before))"
    )
    named, opened = done.stdout.split()
    assert named == "True", done.stderr[-2000:]
    assert int(opened) < 80, f"opening the instance imported {opened} modules after the preload"


def test_the_preload_names_public_modules_only():
    source = Path(importlib.util.find_spec(PRELOAD_MODULE).origin).read_text()
    imported = re.findall(r"^\s*import (\S+)", source, flags=re.MULTILINE)
    assert imported and not [name for name in imported if name.startswith("_") or "._" in name], imported


def test_the_preload_never_fails_the_forkserver(tmp_path):
    # A bad setting fails the code location when its definitions are loaded (as each step process
    # does), not at import: the forkserver still starts and imports the code, and the step reports it.
    env = {"PATH": "/usr/bin:/bin", "COMPLETIONS_TIMEZONE": "Nowhere/Else", "HOME": str(tmp_path)}
    assert _imports("from completions_assets.definitions import defs; defs()", env).returncode != 0
    done = _imports(f"import sys, {PRELOAD_MODULE}; print('completions_assets.definitions' in sys.modules)", env)
    assert done.returncode == 0 and done.stdout.strip() == "True", done.stderr[-2000:]


# Runs the command given as JSON in argv[1] and prints, as JSON, every process it started
# (pid -> [parent pid, command line], sampled from /proc while it runs) and the pids of
# any it left behind: as a child subreaper, this process inherits the command's orphans.
PROCESS_TREE = r"""
import ctypes, json, os, subprocess, sys, time
ctypes.CDLL(None).prctl(36, 1)  # PR_SET_CHILD_SUBREAPER
cli = subprocess.Popen(json.loads(sys.argv[1]), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
seen = {}
while cli.poll() is None:
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = open(f"/proc/{entry}/stat").read()
            command = open(f"/proc/{entry}/cmdline").read().replace("\0", " ")
        except OSError:
            continue
        if command:  # its first parent (before any reparenting), its latest command line (after exec)
            seen.setdefault(int(entry), [int(stat.rsplit(")", 1)[1].split()[1]), command])[1] = command
    time.sleep(0.02)
left = []
while True:
    try:
        left.append(os.wait()[0])
    except ChildProcessError:
        break
tree, todo = {}, [cli.pid]
while todo:
    parent = todo.pop()
    for pid, (ppid, command) in seen.items():
        if ppid == parent and pid not in tree:
            tree[pid] = [ppid, command]
            todo.append(pid)
print(json.dumps({"cli": cli.pid, "returncode": cli.returncode, "tree": tree, "left": left}))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc and uses a Linux subreaper")
def test_cli_run_forks_every_step_from_one_forkserver_and_leaves_nothing_behind(sandbox, tmp_path):
    env = location_env(sandbox.base_url, tmp_path)
    command = materialize_command("2024-03-02", "2024-03-02")
    done = subprocess.run(
        [sys.executable, "-c", PROCESS_TREE, json.dumps(command)],
        env=env, cwd=REPO, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)
    assert report["returncode"] == 0
    tree = {int(pid): (ppid, command) for pid, (ppid, command) in report["tree"].items()}
    # (A forked process shows its forkserver's command line.)
    servers = [pid for pid, (ppid, command) in tree.items() if ppid == report["cli"] and "forkserver" in command]
    assert len(servers) == 1 and PRELOAD_MODULE in tree[servers[0]][1]
    assert not [command for _, command in tree.values() if "multiprocessing.spawn" in command]

    instance = dg.DagsterInstance.from_config(env["DAGSTER_HOME"])
    run = instance.get_runs()[0]
    steps = instance.get_records_for_run(run.run_id, of_type=dg.DagsterEventType.STEP_START).records
    pids = {record.event_log_entry.get_dagster_event().pid for record in steps}
    # One step per provider, the enrolment snapshots, the merge and its checks.
    assert len(pids) == 5 and all(pid is not None and tree[pid][0] == servers[0] for pid in pids)
    # Every step was reaped by the forkserver before the run ended; the forkserver, and
    # multiprocessing's resource tracker, end by themselves once the CLI is gone (the subreaper
    # above waited for them), so nothing is left running.
    left = {pid: tree[pid][1] for pid in report["left"]}
    assert not [command for pid, command in left.items() if pid in pids], left
    assert all("forkserver" in command or "resource_tracker" in command for command in left.values()), left
