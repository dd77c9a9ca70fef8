"""A whole `hstu_daily` run with `airflow dags test` on tiny generated data (SQLite Airflow and MLflow, local
Spark, CPU): the first day promotes, a dry run the next day records its decision and moves no alias."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow import MlflowClient

from components.orchestration.localstack import REPO, airflow_env
from tests.dags.dag_config import dag_test_config

pytestmark = [pytest.mark.spark, pytest.mark.slow]


def _dags_test(env: dict[str, str], logical: str, conf: dict) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "airflow", "dags", "test", "hstu_daily", logical, "--conf", json.dumps(conf)]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900, cwd=REPO)


@pytest.fixture(scope="module")
def airflow(tmp_path_factory):
    from components.datagen import generate_dataset

    work = tmp_path_factory.mktemp("dag_run")
    generate_dataset(out=work / "raw", users=120, days=3, seed=2)
    config = work / "dag.config"  # one training window, floors at 0: the first run must become the champion
    config.write_text(dag_test_config(train_windows=1))
    env = {**airflow_env(work), "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], env=env, check=True, cwd=REPO,
                   capture_output=True, timeout=300)
    return work, env, {"config_file": str(config), "work_dir": str(work)}  # the runs' Params


def test_daily_run_promotes_then_dry_run_moves_nothing(airflow):
    work, env, params = airflow
    first = _dags_test(env, "2022-04-10T03:00:00+00:00", params)  # data interval starts 2022-04-09
    assert first.returncode == 0, first.stdout[-4000:] + first.stderr[-4000:]
    report = (work / "reports" / "2022-04-09.md").read_text()
    assert "**Outcome:** promoted to @champion" in report
    client = MlflowClient(tracking_uri=env["MLFLOW_TRACKING_URI"], registry_uri=env["MLFLOW_TRACKING_URI"])
    aliases = {k: str(v) for k, v in client.get_registered_model("dlrm_hstu").aliases.items()}
    assert aliases == {"champion": "1", "challenger": "1"}
    run = client.get_run(client.get_model_version("dlrm_hstu", "1").run_id)
    assert run.data.tags["dag_id"] == "hstu_daily" and run.data.tags["hstu.outcome"] == "promoted to @champion"
    assert run.data.tags["param.dry_run"] == "False"
    assert list((work / "samples").glob("dt=2022-04-0[89]"))

    second = _dags_test(env, "2022-04-11T03:00:00+00:00", {**params, "dry_run": True, "kernel": "TRITON"})
    assert second.returncode == 0, second.stdout[-4000:] + second.stderr[-4000:]
    assert "**Outcome:** dry run" in (work / "reports" / "2022-04-10.md").read_text()
    aliases = {k: str(v) for k, v in client.get_registered_model("dlrm_hstu").aliases.items()}
    assert aliases["champion"] == "1" and "previous_champion" not in aliases
    tags = client.get_model_version("dlrm_hstu", "2").tags
    assert "gate_dry_run.passed" in tags and "gate.passed" not in tags
    run = client.get_run(client.get_model_version("dlrm_hstu", "2").run_id)
    assert run.data.tags["param.kernel"] == "TRITON"  # the Param reached the run (CPU falls back to PyTorch)
    assert Path(work / "runs" / "2022-04-10" / "result.json").exists()
