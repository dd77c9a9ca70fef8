"""The DAG parses fast, without errors, and without loading torch or Spark at parse time."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

_PROBE = """
import json, sys, time
t0 = time.perf_counter()
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder=sys.argv[1])
dag = bag.dags.get("hstu_daily")
print(json.dumps({
    "errors": {k: str(v) for k, v in bag.import_errors.items()},
    "seconds": time.perf_counter() - t0,
    "heavy": sorted(m for m in ("torch", "pyspark", "mlflow", "torchrec", "triton") if m in sys.modules),
    "tasks": sorted(dag.task_ids) if dag else [],
    "samples": type(dag.get_task("build_samples")).__name__ if dag else None,
    "samples_args": getattr(dag.get_task("build_samples"), "application_args", None) if dag else None,
    "train": type(dag.get_task("train")).__name__ if dag else None,
    "train_image": getattr(dag.get_task("train"), "image", None) if dag else None,
    "train_command": getattr(dag.get_task("train"), "command", None) if dag else None,
    "train_gpus": [r.count for r in getattr(dag.get_task("train"), "device_requests", None) or []] if dag else [],
    "params": sorted(dag.params.keys()) if dag else [],
    "catchup": dag.catchup if dag else None,
}))
"""


def _parse(tmp_path, **extra_env: str) -> dict:
    env = {"AIRFLOW_HOME": str(tmp_path), "AIRFLOW__CORE__LOAD_EXAMPLES": "False", "PATH": "/usr/bin:/bin",
           **extra_env}
    proc = subprocess.run([sys.executable, "-c", _PROBE, str(REPO / "dags")], capture_output=True, text=True,
                          env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_dag_parses_without_heavy_imports(tmp_path):
    info = _parse(tmp_path)
    assert info["errors"] == {}
    assert info["heavy"] == [], f"imported at parse time: {info['heavy']}"
    assert info["tasks"] == ["build_samples", "evaluate", "gate", "plan_windows", "report", "train",
                             "wait_for_raw_data"]
    assert info["samples"] == "_PythonDecoratedOperator"  # local Spark inside the task by default
    assert {"window_date", "kernel", "auc_floors", "max_regression", "dry_run", "force_promote"} <= set(info["params"])
    assert info["catchup"] is False


def test_spark_connection_switches_samples_to_spark_submit(tmp_path):
    info = _parse(tmp_path, HSTU_SPARK_CONN_ID="spark_cluster")
    assert info["errors"] == {} and info["heavy"] == []
    assert info["samples"] == "SparkSubmitOperator"
    args = info["samples_args"]
    assert args[0] == "--config" and args[2:] == [
        "--window-start", "{{ ti.xcom_pull(task_ids='plan_windows')['first'] }}",
        "--window-end", "{{ ti.xcom_pull(task_ids='plan_windows')['end'] }}",
        "--work-dir", "{{ ti.xcom_pull(task_ids='plan_windows')['work_dir'] }}"]


def test_docker_launcher_trains_in_the_trainer_image_on_gpus(tmp_path):
    info = _parse(tmp_path, HSTU_TRAIN_LAUNCHER="docker", HSTU_TRAINER_IMAGE="hstu-pipeline/trainer:0.1.0",
                  HSTU_TRAIN_GPUS="4")
    assert info["errors"] == {} and info["heavy"] == []
    assert info["train"] == "DockerOperator" and info["train_image"] == "hstu-pipeline/trainer:0.1.0"
    assert info["train_gpus"] == [4]
    assert info["train_command"] == "{{ ti.xcom_pull(task_ids='plan_windows')['trainer_command'] }}"
