"""The Kubernetes deployment: deploy/helm/values.yaml for Dagster's Helm chart, checked against deploy/dagster.yaml."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
HELM_VALUES = REPO / "deploy" / "helm" / "values.yaml"
DEPLOY_INSTANCE = REPO / "deploy" / "dagster.yaml"
SECRET_LIKE = re.compile(r"password|secret|token", re.IGNORECASE)
# Keys whose value names a Kubernetes Secret (or a key in one) instead of holding a secret.
SECRET_REFERENCES = {"postgresqlSecretName", "generatePostgresqlPasswordSecret", "envSecrets", "secretName"}


def _values() -> dict:
    return yaml.safe_load(HELM_VALUES.read_text())


def _leaves(node: object, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], object]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _leaves(value, (*path, str(key)))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _leaves(value, (*path, str(index)))
    else:
        yield path, node


def test_helm_values_serve_the_project_module_with_the_k8s_run_launcher():
    values = _values()
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    args = deployment["dagsterApiGrpcArgs"]
    assert args[args.index("--module-name") + 1] == "amazon_optiply.definitions"
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    assert values["dagsterDaemon"]["enabled"] is True
    assert values["postgresql"]["enabled"] is False
    env = {item["name"]: item["value"] for item in deployment["env"]}
    mounts = {mount["name"]: mount["mountPath"] for mount in deployment["volumeMounts"]}
    volumes = {volume["name"]: volume for volume in deployment["volumes"]}
    # The registry is a mounted ConfigMap; asset values are on a claim every run pod mounts.
    assert Path(env["TENANTS_FILE"]).parent == Path(mounts["tenants"])
    assert "configMap" in volumes["tenants"]
    assert env["ASSET_STORAGE_PATH"] == mounts["assets"]
    assert "persistentVolumeClaim" in volumes["assets"]
    assert deployment["includeConfigInLaunchedRuns"] == {"enabled": True}


def test_helm_run_queue_limits_equal_the_deploy_profile():
    runs = _values()["concurrency"]["runs"]
    deploy_runs = yaml.safe_load(DEPLOY_INSTANCE.read_text())["concurrency"]["runs"]
    assert runs["maxConcurrentRuns"] == deploy_runs["max_concurrent_runs"]
    assert runs["tagConcurrencyLimits"] == deploy_runs["tag_concurrency_limits"]
    deploy_pools = yaml.safe_load(DEPLOY_INSTANCE.read_text())["concurrency"]["pools"]
    assert _values()["concurrency"]["pools"]["defaultLimit"] == deploy_pools["default_limit"]
    # The chart fails when the limits are also set on the run coordinator.
    assert "config" not in _values()["dagsterDaemon"]["runCoordinator"]


def test_helm_values_hold_no_literal_secret():
    for path, value in _leaves(_values()):
        named_secret = [key for key in path if SECRET_LIKE.search(key)]
        if not named_secret or set(path) & SECRET_REFERENCES:
            continue
        # The only secret-sounding key allowed is one that refers to a Secret by its name.
        pytest.fail(f"{'.'.join(path)} = {value!r} holds a secret value: use a Kubernetes Secret")
    env = _values()["dagster-user-deployments"]["deployments"][0]["env"]
    assert not [item["name"] for item in env if SECRET_LIKE.search(item["name"])]
