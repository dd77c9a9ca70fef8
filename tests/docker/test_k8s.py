"""docker/k8s/trainer-pod-template.yaml: GPU limits, a non-root security context, secrets from a Secret."""

from __future__ import annotations

import yaml
from conftest import DOCKER


def _pod() -> dict:
    return yaml.safe_load((DOCKER / "k8s" / "trainer-pod-template.yaml").read_text())


def test_pod_template_requests_gpus_as_limits():
    (container,) = _pod()["spec"]["containers"]
    limits = container["resources"]["limits"]
    assert int(limits["nvidia.com/gpu"]) >= 1
    assert container["resources"]["requests"]["nvidia.com/gpu"] == limits["nvidia.com/gpu"]
    nproc = container["command"][container["command"].index("--nproc-per-node") + 1]
    assert int(nproc) == int(limits["nvidia.com/gpu"]), "torchrun processes must match the GPUs"


def test_pod_template_runs_as_non_root_without_privileges():
    spec = _pod()["spec"]
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["runAsUser"] == 10001  # the images' user
    (container,) = spec["containers"]
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]


def test_pod_template_takes_credentials_from_a_secret():
    (container,) = _pod()["spec"]["containers"]
    env = {e["name"]: e for e in container["env"]}
    for name in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
        assert "value" not in env[name], f"{name} written inline"
        assert env[name]["valueFrom"]["secretKeyRef"]["name"] == "hstu-mlflow-pipeline"
    assert ":latest" not in container["image"] and container["image"].rsplit(":", 1)[1]
