"""``make up`` / ``make down``: Airflow (scheduler, DAG processor, triggerer, API server + UI) and the MLflow UI
on 127.0.0.1.

Everything lives under ``<work_dir>/stack``: AIRFLOW_HOME, the admin password file, PID files and logs.
Each service runs in its own process group (``setsid``) so ``down`` stops exactly what ``up`` started.
The Airflow services are started one by one rather than by ``airflow standalone`` because standalone's
scheduler and triggerer also serve logs on every interface (ports 8793/8794); with the local executor the API
server reads the log files directly, so ``--skip-serve-logs`` keeps everything on the loopback.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
AIRFLOW_PORT = 8080
MLFLOW_PORT = 5000
AIRFLOW_SERVICES = (["scheduler", "--skip-serve-logs"], ["dag-processor"], ["triggerer", "--skip-serve-logs"],
                    ["api-server"])


def stack_dir(work_dir: Path) -> Path:
    return work_dir / "stack"


def airflow_env(work_dir: Path) -> dict[str, str]:
    """The environment of every Airflow command of the embedded stack (its services, dags test)."""
    home = stack_dir(work_dir) / "airflow"
    env = dict(os.environ)
    env.update({
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__PARALLELISM": "2",
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(AIRFLOW_PORT),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "passwords.json"),
        "MLFLOW_TRACKING_URI": f"sqlite:///{work_dir}/mlflow.db",
        "SPARK_LOCAL_IP": "127.0.0.1",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
    })
    return env


def admin_password(work_dir: Path) -> str:
    """The admin password of the local stack, created once (random) and kept in AIRFLOW_HOME."""
    path = stack_dir(work_dir) / "airflow" / "passwords.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        path.write_text(json.dumps({"admin": secrets.token_urlsafe(12)}))
        path.chmod(0o600)
    return json.loads(path.read_text())["admin"]


def _start(name: str, cmd: list[str], env: dict[str, str], work_dir: Path) -> int:
    run = stack_dir(work_dir)
    log = open(run / f"{name}.log", "ab")  # noqa: SIM115 (the child keeps it open)
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                            cwd=REPO)
    (run / f"{name}.pid").write_text(str(proc.pid))
    return proc.pid


def _wait_http(url: str, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=3):
                return True
        except OSError:
            time.sleep(2)
    return False


def up(work_dir: Path, *, wait_s: float = 180.0) -> dict[str, str]:
    """Starts the Airflow services and the MLflow server; returns their URLs and the admin login."""
    work_dir = work_dir.resolve()
    stack_dir(work_dir).mkdir(parents=True, exist_ok=True)
    password = admin_password(work_dir)
    env = airflow_env(work_dir)
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], env=env, check=True,
                   stdout=subprocess.DEVNULL, cwd=REPO)
    for service in AIRFLOW_SERVICES:
        _start(f"airflow-{service[0]}", [sys.executable, "-m", "airflow", *service], env, work_dir)
    _start("mlflow", [sys.executable, "-m", "mlflow", "server", "--backend-store-uri",
                      f"sqlite:///{work_dir}/mlflow.db", "--artifacts-destination", str(work_dir / "mlartifacts"),
                      "--host", "127.0.0.1", "--port", str(MLFLOW_PORT)], env, work_dir)
    urls = {"airflow": f"http://127.0.0.1:{AIRFLOW_PORT}", "mlflow": f"http://127.0.0.1:{MLFLOW_PORT}",
            "login": f"admin / {password}"}
    ok = _wait_http(urls["airflow"] + "/api/v2/monitor/health", wait_s) and _wait_http(urls["mlflow"], wait_s)
    if not ok:
        raise RuntimeError(f"the stack did not come up within {wait_s:.0f} s; logs in {stack_dir(work_dir)}")
    return urls


def _group_gone(pid: int) -> bool:
    """Whether process group ``pid`` has no process left; reaps its leader when it is our child (``up`` called
    in this process, as the tests do), since an unreaped leader stays a zombie and keeps the group alive."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass  # started by another process (`make up`): its init reaps it
    try:
        os.killpg(pid, 0)
    except ProcessLookupError:
        return True
    return False


def down(work_dir: Path, *, grace_s: float = 30.0) -> list[str]:
    """Stops the process groups that ``up`` started (by their PID files), SIGTERM then SIGKILL."""
    stopped = []
    for pid_file in sorted(stack_dir(work_dir.resolve()).glob("*.pid")):
        pid = int(pid_file.read_text())
        try:
            os.killpg(pid, signal.SIGTERM)
        except ProcessLookupError:
            pid_file.unlink()
            continue
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline and not _group_gone(pid):
            time.sleep(1)
        if not _group_gone(pid):
            with contextlib.suppress(ProcessLookupError):  # it may end between the check and the kill
                os.killpg(pid, signal.SIGKILL)  # the scheduler can hang on SIGTERM
        pid_file.unlink()
        stopped.append(pid_file.stem)
    return stopped


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=("up", "down"))
    parser.add_argument("--work-dir", type=Path, default=Path(os.environ.get("HSTU_WORK_DIR", REPO / "hstu_work")))
    args = parser.parse_args(argv)
    if args.action == "up":
        urls = up(args.work_dir)
        print(f"Airflow UI  {urls['airflow']}   login {urls['login']}")
        print(f"MLflow UI   {urls['mlflow']}")
        print("stop both with: make down")
    else:
        print("stopped: " + (", ".join(down(args.work_dir)) or "nothing was running"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
