"""The Kubernetes deployment checked offline (no cluster, no chart, no network): the manifests of
deploy/kubernetes/objects.yaml and every Kubernetes object inside the Helm values validated
against the Kubernetes schemas that kubernetes-validate bundles; the values wired to those
objects (the connections file, a Secret key for every variable it names); the instance settings
the chart writes equal to deploy/dagster.yaml's; the Dockerfile and the pins paired with Dagster."""

import re
import tomllib
from importlib.resources import files
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from referencing import Registry, Resource

from completions_assets.connections import FILE_VARIABLE, load_connections
from completions_assets.local.launch import REPO
from completions_assets.providers import PROVIDERS

pytestmark = pytest.mark.unit

KUBERNETES = "1.37.0"
DEFINITIONS = "https://kubernetes.io/api/_definitions.json"
VALUES = yaml.safe_load((REPO / "deploy" / "kubernetes" / "values.yaml").read_text())
OBJECTS = list(yaml.safe_load_all((REPO / "deploy" / "kubernetes" / "objects.yaml").read_text()))
INSTANCE = yaml.safe_load((REPO / "deploy" / "dagster.yaml").read_text())
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
(DEPLOYMENT,) = VALUES["dagster-user-deployments"]["deployments"]
LAUNCHER = VALUES["runLauncher"]["config"]["k8sRunLauncher"]


def _definitions() -> Registry:
    folder = files("kubernetes_validate") / "kubernetes-json-schema" / f"v{KUBERNETES}-local-strict"
    contents = yaml.safe_load((folder / "_definitions.json").read_text())
    return Resource.from_contents(contents) @ Registry()


REGISTRY = _definitions()


def assert_kubernetes(kind: str, value: Any) -> None:
    """`value` is a valid (strict: no unknown field) Kubernetes `kind`, e.g. io.k8s.api.core.v1.Volume."""
    schema = {"$ref": f"{DEFINITIONS}#/$defs/{kind}"}
    jsonschema.Draft202012Validator(schema, registry=REGISTRY).validate(value)


def _object(kind: str, name: str) -> dict:
    (found,) = [o for o in OBJECTS if o["kind"] == kind and o["metadata"]["name"] == name]
    return found


@pytest.mark.parametrize("manifest", OBJECTS, ids=lambda o: f"{o['kind']}/{o['metadata']['name']}")
def test_each_manifest_is_valid_kubernetes(manifest):
    kubernetes_validate.validate(manifest, KUBERNETES, strict=True)


@pytest.mark.parametrize("pod", [DEPLOYMENT, LAUNCHER], ids=["user-deployment", "run-launcher"])
def test_the_kubernetes_objects_inside_the_values_are_valid(pod):
    for field, kind in {
        "env": "io.k8s.api.core.v1.EnvVar",
        "envSecrets": "io.k8s.api.core.v1.SecretEnvSource",
        "volumes": "io.k8s.api.core.v1.Volume",
        "volumeMounts": "io.k8s.api.core.v1.VolumeMount",
    }.items():
        for item in pod.get(field, []):
            assert_kubernetes(kind, item)
    resources = pod.get("resources") or pod["runK8sConfig"]["containerConfig"]["resources"]
    assert_kubernetes("io.k8s.api.core.v1.ResourceRequirements", resources)


def test_the_schemas_catch_a_mistake():
    with pytest.raises(jsonschema.ValidationError):
        assert_kubernetes("io.k8s.api.core.v1.VolumeMount", {"name": "connections", "mountpath": "/etc"})
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(OBJECTS[0] | {"stringData": {}}, KUBERNETES, strict=True)


def test_every_variable_the_connections_file_names_is_a_key_of_the_secret_the_pods_read(tmp_path: Path):
    (mount,) = DEPLOYMENT["volumeMounts"]
    (volume,) = [v for v in DEPLOYMENT["volumes"] if v["name"] == mount["name"]]
    configmap = _object("ConfigMap", volume["configMap"]["name"])
    env = {item["name"]: item["value"] for item in DEPLOYMENT["env"]}
    (file_name,) = configmap["data"]
    assert env[FILE_VARIABLE] == f"{mount['mountPath']}/{file_name}"
    (tmp_path / file_name).write_text(configmap["data"][file_name])
    connections = load_connections(PROVIDERS, {FILE_VARIABLE: str(tmp_path / file_name)})
    named = {variable for connection in connections for variable in connection.secrets.values()}

    secrets = [_object("Secret", source["name"]) for source in DEPLOYMENT["envSecrets"]]
    assert named == {key for secret in secrets for key in secret["stringData"]}
    assert all(value == "" for secret in secrets for value in secret["stringData"].values())  # no secret in git
    # Run pods read the same (the launcher's own lists, and the deployment's through includeConfigInLaunchedRuns).
    assert LAUNCHER["envSecrets"] == DEPLOYMENT["envSecrets"] and LAUNCHER["volumes"] == DEPLOYMENT["volumes"]
    assert DEPLOYMENT["includeConfigInLaunchedRuns"]["enabled"] is True
    _object("Secret", VALUES["global"]["postgresqlSecretName"])


def test_the_instance_the_chart_writes_has_deploy_dagster_yamls_pools_and_run_monitoring():
    concurrency, daemon = VALUES["concurrency"], VALUES["dagsterDaemon"]
    assert concurrency["enabled"] is True  # else the chart writes no concurrency section
    pools = INSTANCE["concurrency"]["pools"]
    assert concurrency["pools"] == {
        "defaultLimit": pools["default_limit"],
        "granularity": pools["granularity"],
        "opGranularityRunBuffer": pools["op_granularity_run_buffer"],
    }
    monitoring = INSTANCE["run_monitoring"]
    for chart_key, key in {
        "startTimeoutSeconds": "start_timeout_seconds",
        "cancelTimeoutSeconds": "cancel_timeout_seconds",
        "pollIntervalSeconds": "poll_interval_seconds",
        "freeSlotsAfterRunEndSeconds": "free_slots_after_run_end_seconds",
    }.items():
        assert daemon["runMonitoring"][chart_key] == monitoring[key]
    assert daemon["runRetries"]["maxRetries"] == INSTANCE["run_retries"]["max_retries"]
    assert daemon["runCoordinator"]["type"] == INSTANCE["run_coordinator"]["class"]
    assert VALUES["postgresql"]["postgresqlScheme"] == INSTANCE["run_storage"]["config"]["postgres_db"]["scheme"]


def _pins(requirements: list[str]) -> dict[str, str]:
    """Name and version of each `name==version` (extras dropped) of `requirements`."""
    pins = {}
    for requirement in requirements:
        if match := re.match(r"([\w-]+)(?:\[[\w,]+\])?==([\w.]+)", requirement):
            pins[match.group(1)] = match.group(2)
    return pins


def test_the_dockerfile_installs_the_pinned_extras_and_serves_the_code_location():
    dockerfile = (REPO / "Dockerfile").read_text()
    assert "pip install '.[production,celery,kubernetes]'" in dockerfile
    assert f'"--module-name", "{PYPROJECT["tool"]["dagster"]["module_name"]}"' in dockerfile
    assert DEPLOYMENT["dagsterApiGrpcArgs"] == ["--module-name", PYPROJECT["tool"]["dagster"]["module_name"]]
    assert f'--port", "{DEPLOYMENT["port"]}"' in dockerfile


def test_the_dagster_libraries_and_the_chart_are_paired_with_dagster():
    project = PYPROJECT["project"]
    dagster = _pins(project["dependencies"])["dagster"]
    major, minor, patch = dagster.split(".")
    library = f"0.{int(minor) + 16}.{patch}"  # Dagster 1.x.y pairs with its libraries' 0.(x+16).y
    extras = project["optional-dependencies"]
    for extra in ("production", "celery", "kubernetes"):
        for name, version in _pins(extras[extra]).items():
            if name.startswith("dagster-"):
                assert version == library, name
    header = (REPO / "deploy" / "kubernetes" / "values.yaml").read_text()
    assert f"dagster/dagster --version {dagster} " in header
