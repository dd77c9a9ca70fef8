"""The spark-submit command line the DAG uses, built by Airflow's Spark provider from our connections.

Local: ``spark-submit --master local[1] --conf spark.driver.host=127.0.0.1 ... components/data/samples.py
--config ... --window-start ...``; cluster: the compose stack's ``spark_cluster`` connection. The hook runs in a
subprocess with a throwaway AIRFLOW_HOME, so the test needs neither an Airflow database nor a JVM. The run
against a local master belongs to the samples job's own tests (it needs components/data/samples.py).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO

SAMPLES = REPO / "components" / "data" / "samples.py"
LOCAL_CONN = '{"conn_type": "spark", "host": "local[1]"}'
_BUILD = """
import json, sys
from airflow.providers.apache.spark.hooks.spark_submit import SparkSubmitHook
conn_id, application, args = sys.argv[1], sys.argv[2], sys.argv[3:]
hook = SparkSubmitHook(conn_id=conn_id, name="hstu-samples", application_args=args,
                       conf={"spark.driver.host": "127.0.0.1", "spark.driver.bindAddress": "127.0.0.1"})
print(json.dumps(hook._build_spark_submit_command(application)))
"""


def _command(compose: dict, tmp_path, conn_id: str) -> list[str]:
    env = {**os.environ, "AIRFLOW_HOME": str(tmp_path), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
           "AIRFLOW_CONN_SPARK_LOCAL": LOCAL_CONN,
           "AIRFLOW_CONN_SPARK_CLUSTER":
               compose["services"]["airflow-scheduler"]["environment"]["AIRFLOW_CONN_SPARK_CLUSTER"]}
    args = ["--config", "configs/small_cpu.config", "--window-start", "2022-04-08"]
    result = subprocess.run([sys.executable, "-c", _BUILD, conn_id, str(SAMPLES), *args],
                            capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def _check_well_formed(cmd: list[str]) -> dict[str, list[str]]:
    assert cmd[0] == "spark-submit"
    app = cmd.index(str(SAMPLES))
    options: dict[str, list[str]] = {}
    it = iter(cmd[1:app])
    for flag in it:
        assert flag.startswith("--"), f"stray token {flag!r} before the application in {cmd}"
        options.setdefault(flag, []).append(next(it))
    for pair in options.get("--conf", []):
        assert re.fullmatch(r"spark\.[\w.]+=\S+", pair), f"--conf {pair!r} is not key=value"
    assert cmd[app + 1:] == ["--config", "configs/small_cpu.config", "--window-start", "2022-04-08"]
    return options


def test_local_command_is_well_formed(compose, tmp_path):
    options = _check_well_formed(_command(compose, tmp_path, "spark_local"))
    assert options["--master"] == ["local[1]"]
    assert "spark.driver.host=127.0.0.1" in options["--conf"]


def test_cluster_command_targets_the_compose_master(compose, tmp_path):
    options = _check_well_formed(_command(compose, tmp_path, "spark_cluster"))
    assert options["--master"] == ["spark://spark-master:7077"]
    assert options["--deploy-mode"] == ["client"]


def test_samples_job_accepts_the_arguments():
    if not SAMPLES.exists():
        pytest.skip("components/data/samples.py does not exist yet (another helper writes it)")
    result = subprocess.run([sys.executable, str(SAMPLES), "--help"], capture_output=True, text=True,
                            cwd=REPO, timeout=120, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert result.returncode == 0, result.stderr
    for flag in ("--config", "--window-start"):
        assert flag in result.stdout, f"components/data/samples.py --help does not mention {flag}"


@pytest.mark.spark
@pytest.mark.slow
def test_spark_submit_runs_the_job_against_a_local_master(compose, tmp_path):
    """The command the provider builds, run for real on two days of generated data."""
    from components.datagen import generate_dataset

    generate_dataset(out=tmp_path / "raw", users=60, days=2, seed=3)
    config = tmp_path / "job.config"
    config.write_text((REPO / "configs" / "small_cpu.config").read_text().replace(
        "data_config {", f'data_config {{\n  work_dir: "{tmp_path}"', 1))
    cmd = _command(compose, tmp_path / "airflow", "spark_local")
    app = cmd.index(str(SAMPLES))
    cmd = [str(Path(sys.executable).parent / "spark-submit"), *cmd[1:app + 1],
           "--config", str(config), "--window-start", "2022-04-09", "--json"]
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable, "SPARK_LOCAL_IP": "127.0.0.1", "PYTHONPATH": str(REPO)}
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300, cwd=REPO)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads([line for line in result.stdout.splitlines() if line.startswith("{")][-1])
    assert summary["window_start"] == "2022-04-09" and summary["samples"] > 0
    assert list((tmp_path / "samples" / "dt=2022-04-09").glob("*.parquet"))
