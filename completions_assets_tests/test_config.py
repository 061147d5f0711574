import datetime as dt

import dagster as dg
import pytest

from completions_assets.settings import ConfigurationError, load_settings

pytestmark = pytest.mark.unit


def test_defaults():
    settings = load_settings({})
    assert (settings.start_date, settings.timezone, settings.lookback_days, settings.data_root) == (
        dt.date(2024, 1, 1),
        "UTC",
        3,
        "./data",
    )
    assert (settings.audit_days, settings.max_removed_share) == (90, 0.2)


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("COMPLETIONS_TIMEZONE", "Mars/Olympus", "COMPLETIONS_TIMEZONE='Mars/Olympus' is not an IANA"),
        ("COMPLETIONS_START_DATE", "2024-13-01", "COMPLETIONS_START_DATE='2024-13-01' is not a date"),
        ("COMPLETIONS_START_DATE", "2999-01-01", "COMPLETIONS_START_DATE=2999-01-01 is not in the past"),
        ("COMPLETIONS_LOOKBACK_DAYS", "-1", "COMPLETIONS_LOOKBACK_DAYS='-1'"),
        ("COMPLETIONS_AUDIT_DAYS", "0", "COMPLETIONS_AUDIT_DAYS='0' is not a whole number of days >= 1"),
        ("COMPLETIONS_MAX_REMOVED_SHARE", "1.5", "COMPLETIONS_MAX_REMOVED_SHARE='1.5' is not a share between 0 and 1"),
        ("COMPLETIONS_MAX_REMOVED_SHARE", "lots", "COMPLETIONS_MAX_REMOVED_SHARE='lots'"),
        ("COMPLETIONS_DATA_ROOT", "nosuchfs://bucket", "COMPLETIONS_DATA_ROOT='nosuchfs://bucket'"),
        ("COMPLETIONS_DATA_ROOT", "memory://", "names no bucket"),
    ],
)
def test_bad_settings_are_refused_by_name(variable, value, message):
    with pytest.raises(ConfigurationError, match=message.replace("(", r"\(")):
        load_settings({variable: value})


def test_the_executor_variable_chooses_the_default_executor_or_celerys():
    from completions_assets.defs.executor import EXECUTOR_VARIABLE, executor, select_executor

    assert select_executor({}) is executor
    assert select_executor({EXECUTOR_VARIABLE: "multiprocess"}) is executor
    celery = select_executor({EXECUTOR_VARIABLE: "celery"})
    assert celery.name == "celery" and celery.executor_creation_fn is not executor.executor_creation_fn
    with pytest.raises(ConfigurationError, match="COMPLETIONS_EXECUTOR='k8s'"):
        select_executor({EXECUTOR_VARIABLE: "k8s"})


def test_the_celery_executor_reads_its_grace_for_lost_workers_and_tells_the_workers_to_track_started(monkeypatch):
    from completions_assets.defs.executor import EXECUTOR_VARIABLE, LOST_AFTER_VARIABLE, select_executor

    monkeypatch.setenv("COMPLETIONS_CELERY_BROKER", "redis://127.0.0.1:1/0")
    monkeypatch.setenv("COMPLETIONS_CELERY_BACKEND", "redis://127.0.0.1:1/1")

    @dg.op
    def nothing() -> None: ...

    def config(environ: dict[str, str]) -> dict:
        job = dg.GraphDefinition("one_op", node_defs=[nothing]).to_job(
            executor_def=select_executor({EXECUTOR_VARIABLE: "celery"} | environ)
        )
        return dg.validate_run_config(job)["execution"]["celery"]

    assert config({})["worker_lost_after_seconds"] == 60
    assert config({LOST_AFTER_VARIABLE: "7"})["worker_lost_after_seconds"] == 7
    assert config({})["config_source"] == {"task_track_started": True}
    for bad in ("0", "soon", "-5"):
        with pytest.raises(ConfigurationError, match=LOST_AFTER_VARIABLE):
            select_executor({EXECUTOR_VARIABLE: "celery", LOST_AFTER_VARIABLE: bad})
