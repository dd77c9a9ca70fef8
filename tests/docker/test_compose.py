"""docker/compose.yaml: validated by compose itself when a compose tool exists, and by these checks always.

The pure-Python checks hold the stack's access rules: published ports on loopback only, no Postgres port,
secrets that must be set (``${VAR:?}``), health checks, a GPU reservation for the trainer, pinned images.
"""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
from conftest import DOCKER

SECRET_NAME = re.compile(r"PASSWORD|SECRET|FERNET|_KEY$")
INTERPOLATION = re.compile(r"\$\{([A-Z0-9_]+)(:?[-?])?([^}]*)\}")
EXTERNAL_IMAGES = {"postgres"}


def _compose_cmd() -> list[str] | None:
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True)
        if probe.returncode == 0:
            return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    return None


def _resolve_defaults(value: str) -> str:
    return INTERPOLATION.sub(lambda m: m.group(3) if m.group(2) == ":-" else m.group(0), value)


def _host_ip(port: object) -> str:
    if isinstance(port, dict):
        return str(port.get("host_ip", ""))
    return str(port).split(":", 1)[0] if str(port).count(":") >= 2 else ""


@pytest.fixture(scope="module")
def compose_cmd() -> list[str]:
    cmd = _compose_cmd()
    if cmd is None:
        pytest.skip("no compose tool: neither `docker compose` (plugin) nor `docker-compose` is installed "
                    "(Debian: apt-get install docker-compose); the pure-Python checks still run")
    return cmd


def test_compose_tool_accepts_the_file(compose_cmd, filled_env):
    result = subprocess.run([*compose_cmd, "-f", str(DOCKER / "compose.yaml"), "--env-file", str(filled_env),
                             "config", "-q"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, f"compose config rejected docker/compose.yaml:\n{result.stderr}"


def test_compose_tool_refuses_an_empty_secret(compose_cmd, filled_env):
    text = re.sub(r"^MLFLOW_ADMIN_PASSWORD=.*$", "MLFLOW_ADMIN_PASSWORD=", filled_env.read_text(), flags=re.M)
    filled_env.write_text(text)
    result = subprocess.run([*compose_cmd, "-f", str(DOCKER / "compose.yaml"), "--env-file", str(filled_env),
                             "config", "-q"], capture_output=True, text=True, timeout=60)
    assert result.returncode != 0, "compose accepted an empty MLFLOW_ADMIN_PASSWORD"
    assert "MLFLOW_ADMIN_PASSWORD" in result.stderr + result.stdout


def test_expected_services_exist(compose):
    expected = {"postgres", "mlflow", "mlflow-init", "spark-master", "spark-worker", "airflow-init",
                "airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer", "trainer"}
    assert expected <= set(compose["services"]), f"missing: {sorted(expected - set(compose['services']))}"


def test_published_ports_are_bound_to_loopback(compose):
    wrong = {name: port for name, svc in compose["services"].items()
             for port in svc.get("ports", []) if _host_ip(port) != "127.0.0.1"}
    assert not wrong, f"ports not bound to 127.0.0.1: {wrong}"


def test_postgres_publishes_no_port(compose):
    assert "ports" not in compose["services"]["postgres"]
    assert "expose" not in compose["services"]["postgres"]


def test_every_service_has_a_healthcheck_or_waits_on_one(compose):
    services = compose["services"]
    bad = []
    for name, svc in services.items():
        if "healthcheck" in svc:
            assert svc["healthcheck"].get("test"), f"{name}: empty healthcheck"
            continue
        deps = svc.get("depends_on", {})
        gated = [d for d, cond in deps.items() if isinstance(cond, dict)
                 and cond.get("condition") in {"service_healthy", "service_completed_successfully"}]
        if not gated:
            bad.append(name)
    assert not bad, f"services with neither a healthcheck nor a gated depends_on: {bad}"


def test_dependencies_point_at_existing_services(compose):
    services = compose["services"]
    dangling = {(n, d) for n, s in services.items() for d in s.get("depends_on", {}) if d not in services}
    assert not dangling, f"depends_on names unknown services: {sorted(dangling)}"


def test_secrets_must_be_set(compose_text):
    loose = sorted({m.group(0) for m in INTERPOLATION.finditer(compose_text)
                    if SECRET_NAME.search(m.group(1)) and m.group(2) != ":?"})
    assert not loose, f"secrets without ${{VAR:?message}} (empty values would be accepted): {loose}"


def test_no_secret_values_are_written_inline(compose):
    inline = {}
    for name, svc in compose["services"].items():
        env = svc.get("environment", {})
        assert isinstance(env, dict), f"{name}: use the mapping form of environment"
        for key, value in env.items():
            if SECRET_NAME.search(key) and "${" not in str(value):
                inline[f"{name}.{key}"] = value
    assert not inline, f"secret values written into compose.yaml: {sorted(inline)}"


def test_env_example_lists_every_required_variable_with_secrets_left_empty(compose_text):
    example = dict(line.split("=", 1) for line in (DOCKER / ".env.example").read_text().splitlines()
                   if line and not line.startswith("#"))
    required = {m.group(1) for m in INTERPOLATION.finditer(compose_text) if m.group(2) == ":?"}
    assert required <= set(example), f"not in docker/.env.example: {sorted(required - set(example))}"
    filled = {k: v for k, v in example.items() if SECRET_NAME.search(k) and v}
    assert not filled, f"docker/.env.example must not ship secret values: {sorted(filled)}"


def test_trainer_reserves_gpus(compose):
    devices = compose["services"]["trainer"]["deploy"]["resources"]["reservations"]["devices"]
    assert any("gpu" in d.get("capabilities", []) and d.get("driver") == "nvidia" for d in devices), devices


def test_images_are_pinned(compose):
    for name, svc in compose["services"].items():
        image = _resolve_defaults(svc.get("image", ""))
        assert image, f"{name}: no image name (built images need a pinned name too)"
        repo, _, tag = image.rpartition(":")
        assert repo and tag and "/" not in tag, f"{name}: image {image!r} has no tag"
        assert tag != "latest", f"{name}: image {image!r} uses :latest"
        if name in EXTERNAL_IMAGES:
            assert re.fullmatch(r"\d+\.\d+[-.\w]*", tag), f"{name}: {image!r} not pinned to an exact version"


def test_no_host_access_escalation(compose):
    for name, svc in compose["services"].items():
        assert not svc.get("privileged"), f"{name} is privileged"
        assert svc.get("network_mode") != "host", f"{name} uses the host network"
        mounts = [str(v) for v in svc.get("volumes", [])]
        assert not any("docker.sock" in m for m in mounts), f"{name} mounts the Docker socket"


def test_spark_connection_points_at_the_master(compose):
    import json

    conn = json.loads(compose["services"]["airflow-scheduler"]["environment"]["AIRFLOW_CONN_SPARK_CLUSTER"])
    master = compose["services"]["spark-master"]
    assert (conn["host"], conn["port"]) == (master["hostname"], 7077)
    assert "7077" in master["command"]
