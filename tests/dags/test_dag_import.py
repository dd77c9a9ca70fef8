"""The DAG parses fast, without errors, and without loading torch or Spark at parse time; its graph is the same
in every environment (the Spark and Docker paths are branches chosen by Params, not environment switches)."""

from __future__ import annotations

import json
import re
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
    "spark": type(dag.get_task("build_samples_spark")).__name__ if dag else None,
    "samples_args": getattr(dag.get_task("build_samples_spark"), "application_args", None) if dag else None,
    "train": type(dag.get_task("train_docker")).__name__ if dag else None,
    "train_image": getattr(dag.get_task("train_docker"), "image", None) if dag else None,
    "train_command": getattr(dag.get_task("train_docker"), "command", None) if dag else None,
    "train_gpus": [r.count for r in getattr(dag.get_task("train_docker"), "device_requests", None) or []] if dag else [],
    "params": sorted(dag.params.keys()) if dag else [],
    "defaults": {k: dag.params[k] for k in ("samples_engine", "train_launcher", "train_gpus", "trainer_image",
                                            "work_dir")} if dag else {},
    "downstream": {t: sorted(dag.get_task(t).downstream_task_ids)
                   for t in ("choose_samples_engine", "choose_train_launcher")} if dag else {},
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
    assert info["tasks"] == ["build_samples", "build_samples_spark", "choose_samples_engine", "choose_train_launcher",
                             "evaluate", "gate", "plan_windows", "report", "train", "train_docker", "wait_for_raw_data"]
    assert info["samples"] == "_PythonDecoratedOperator"  # local Spark inside the task by default
    assert {"window_date", "kernel", "auc_floors", "max_regression", "dry_run", "force_promote"} <= set(info["params"])
    assert info["catchup"] is False


def test_environment_does_not_change_the_graph(tmp_path):
    """The old parse-time switches are ignored; nothing in dags/ reads the environment."""
    plain = _parse(tmp_path)
    switched = _parse(tmp_path, HSTU_SPARK_CONN_ID="spark_cluster", HSTU_TRAIN_LAUNCHER="docker", HSTU_TRAIN_GPUS="4",
                      HSTU_CONFIG="/elsewhere.config", HSTU_WORK_DIR="/elsewhere")
    assert {k: v for k, v in switched.items() if k != "seconds"} == {k: v for k, v in plain.items() if k != "seconds"}
    for path in (REPO / "dags").rglob("*.py"):
        assert not re.search(r"os\.environ|getenv", path.read_text()), path


def test_engines_are_branches_chosen_by_params(tmp_path):
    info = _parse(tmp_path)
    assert info["downstream"] == {"choose_samples_engine": ["build_samples", "build_samples_spark"],
                                  "choose_train_launcher": ["train", "train_docker"]}
    assert info["defaults"] == {"samples_engine": "local", "train_launcher": "local", "train_gpus": 1,
                                "trainer_image": "hstu-pipeline/trainer:0.1.0", "work_dir": None}


def test_spark_branch_submits_the_samples_job(tmp_path):
    info = _parse(tmp_path)
    assert info["errors"] == {} and info["heavy"] == []
    assert info["spark"] == "SparkSubmitOperator"
    args = info["samples_args"]
    assert args[0] == "--config" and args[2:] == [
        "--window-start", "{{ ti.xcom_pull(task_ids='plan_windows')['first'] }}",
        "--window-end", "{{ ti.xcom_pull(task_ids='plan_windows')['end'] }}",
        "--work-dir", "{{ ti.xcom_pull(task_ids='plan_windows')['work_dir'] }}"]


def test_docker_branch_trains_in_the_trainer_image_on_gpus(tmp_path):
    info = _parse(tmp_path)
    assert info["errors"] == {} and info["heavy"] == []
    # The image and the torchrun process count are the run's Params (trainer_image, train_gpus); the GPU
    # request is not templated, so it asks for the host's GPUs (-1) and torchrun uses train_gpus of them.
    assert info["train"] == "DockerOperator" and info["train_image"] == "{{ params.trainer_image }}"
    assert info["defaults"]["trainer_image"] == "hstu-pipeline/trainer:0.1.0"
    assert info["train_gpus"] == [-1]
    assert info["train_command"] == "{{ ti.xcom_pull(task_ids='plan_windows')['trainer_command'] }}"
