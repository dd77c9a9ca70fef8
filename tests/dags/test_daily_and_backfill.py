"""Daily runs of `hstu_daily` with `airflow dags test`, and a backfill of the same two days.

- **Daily side** (SQLite Airflow and MLflow, local Spark, CPU): the first day promotes; the second day's gate
  compares against that champion; then a dry run (Param `dry_run`, with `window_date` pointing at the second
  day again and `kernel` overridden) records its decision and moves no alias.
- **Backfill side** (`airflow backfill create`, run by the scheduler of the local stack): the same sample
  partitions, model versions, metrics and aliases as the two daily runs. Two days suffice.

Both sides start from the same raw data with empty Airflow, MLflow and work folders, and are compared as they
stood before the dry run. Training on CPU with one thread is deterministic for a seed; metrics are compared to
1e-5 (see `_close`). One module, so the two sides and the dry run share the daily side's runs.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from mlflow import MlflowClient

from components.orchestration.localstack import REPO, airflow_env, down, up
from tests.dags.dag_config import dag_test_config

pytestmark = [pytest.mark.spark, pytest.mark.slow]
RUN_FIRST = True  # the suite's longest module (~14 min): tests/conftest.py starts it first

LOGICAL_DATES = ["2022-04-10T03:00:00+00:00", "2022-04-11T03:00:00+00:00"]
WINDOWS = ["2022-04-09", "2022-04-10"]  # each run's data interval starts a day before its 03:00
DRY_RUN_LOGICAL = "2022-04-12T03:00:00+00:00"  # a run of its own; its window_date Param names WINDOWS[-1]


def _airflow(env: dict[str, str], *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "airflow", *args], env=env, capture_output=True, text=True,
                          timeout=timeout, cwd=REPO)


def _workspace(root: Path, raw: Path, config_text: str) -> tuple[Path, Path]:
    root.mkdir()
    shutil.copytree(raw, root / "raw")
    config = root / "dag.config"
    config.write_text(config_text)
    return root, config


@pytest.fixture(scope="module")
def sides(tmp_path_factory, monkeypatch_module):
    from components.datagen import generate_dataset

    base = tmp_path_factory.mktemp("backfill")
    generate_dataset(out=base / "raw", users=100, days=3, seed=3)
    # One training window and floors at 0, so every day's gate compares against the previous day's champion.
    config_text = dag_test_config(train_windows=1)
    monkeypatch_module.setenv("OMP_NUM_THREADS", "1")

    daily, daily_config = _workspace(base / "daily", base / "raw", config_text)
    env = airflow_env(daily)
    assert _airflow(env, "db", "migrate").returncode == 0
    params = {"config_file": str(daily_config), "work_dir": str(daily)}
    for logical in LOGICAL_DATES:
        run = _airflow(env, "dags", "test", "hstu_daily", logical, "--conf", json.dumps(params))
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    first_report = (daily / "reports" / f"{WINDOWS[0]}.md").read_text()

    backfill, backfill_config = _workspace(base / "backfill", base / "raw", config_text)
    # The scheduler runs the backfill's runs but makes no scheduled ones: unpausing would otherwise also start
    # today's run with the default Params, which waits out its raw-data timeout and writes its failure report
    # into the repository's own work folder.
    monkeypatch_module.setenv("AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE", "False")
    try:
        up(backfill)  # scheduler, DAG processor and API server: a backfill is run by the scheduler
        env = airflow_env(backfill)
        runs = _run_backfill(env, {"config_file": str(backfill_config), "work_dir": str(backfill)})
    finally:
        down(backfill)
    before = {side: _state(work) for side, work in (("daily", daily), ("backfill", backfill))}

    dry_params = {**params, "dry_run": True, "kernel": "TRITON", "window_date": WINDOWS[-1]}
    dry = _airflow(airflow_env(daily), "dags", "test", "hstu_daily", DRY_RUN_LOGICAL, "--conf", json.dumps(dry_params))
    assert dry.returncode == 0, dry.stdout[-3000:] + dry.stderr[-3000:]
    return {"daily": daily, "runs": runs, "before": before, "first_report": first_report,
            "client": _client(daily)}


def _state(work: Path) -> dict:
    """What the two sides must agree on: versions with their gates and metrics, aliases, report outcomes."""
    aliases = {k: str(v) for k, v in _client(work).get_registered_model("dlrm_hstu").aliases.items()}
    outcomes = {w: [line for line in (work / "reports" / f"{w}.md").read_text().splitlines()
                    if line.startswith("**Outcome:**")] for w in WINDOWS}
    return {"work": work, "versions": _versions(work), "aliases": aliases, "outcomes": outcomes}


def _close(a: dict, b: dict) -> bool:
    """Equal keys and values; AUCs and predictions may differ by float32 summation order (~1e-8 per prediction,
    which can swap a near-tie in the AUC), so numbers are compared to 1e-5."""
    if a.keys() != b.keys():
        return False
    return all(a[k] == pytest.approx(b[k], abs=1e-5) if isinstance(a[k], float) else a[k] == b[k] for k in a)


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


def _run_backfill(env: dict[str, str], params: dict, timeout_s: float = 1200) -> list[dict]:
    deadline = time.monotonic() + timeout_s
    while True:  # the DAG processor must have stored the DAG before a backfill can name it
        created = _airflow(env, "backfill", "create", "--dag-id", "hstu_daily", "--from-date", LOGICAL_DATES[0],
                           "--to-date", LOGICAL_DATES[-1], "--max-active-runs", "1",
                           "--dag-run-conf", json.dumps(params), timeout=120)
        if created.returncode == 0:
            break
        assert time.monotonic() < deadline, created.stdout[-2000:] + created.stderr[-2000:]
        time.sleep(5)
    # Airflow 3 starts backfill runs only for an unpaused DAG (no scheduled run follows: see `sides`).
    assert _airflow(env, "dags", "unpause", "hstu_daily", timeout=120).returncode == 0
    while time.monotonic() < deadline:
        listed = _airflow(env, "dags", "list-runs", "hstu_daily", "--output", "json", timeout=120)
        lines = listed.stdout.strip().splitlines() if listed.returncode == 0 else []
        runs = json.loads(lines[-1]) if lines and lines[-1].startswith("[") else []  # log lines come first
        backfill = [r for r in runs if r["run_id"].startswith("backfill__")]
        if len(backfill) == len(LOGICAL_DATES) and all(r["state"] in ("success", "failed") for r in backfill):
            return runs
        time.sleep(10)
    raise AssertionError(f"the backfill did not finish within {timeout_s:.0f} s")


def _client(work: Path) -> MlflowClient:
    uri = f"sqlite:///{work}/mlflow.db"
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def _versions(work: Path) -> dict[str, dict]:
    """Per registered version: its window, its gate outcome and the metrics of its training run."""
    client, found = _client(work), {}
    for version in client.search_model_versions("name='dlrm_hstu'"):
        run = client.get_run(version.run_id)
        gate = {k: float(v) if "auc." in k and v != "missing" else v for k, v in version.tags.items()
                if k.startswith("gate.") and not k.endswith("decided_at")}
        found[version.version] = {"window": version.tags["window"], "gate": gate,
                                  "metrics": {k: v for k, v in run.data.metrics.items()
                                              if not k.startswith("system/") and "_per_s" not in k
                                              and not k.endswith("_s")}}
    return found


def test_first_daily_run_promotes_and_tags_its_run(sides):
    assert "**Outcome:** promoted to @champion" in sides["first_report"]
    client = sides["client"]
    run = client.get_run(client.get_model_version("dlrm_hstu", "1").run_id)
    assert run.data.tags["dag_id"] == "hstu_daily" and run.data.tags["hstu.outcome"] == "promoted to @champion"
    assert run.data.tags["param.dry_run"] == "False"


def test_dry_run_records_its_decision_and_moves_no_alias(sides):
    daily, client = sides["daily"], sides["client"]
    assert "**Outcome:** dry run" in (daily / "reports" / f"{WINDOWS[-1]}.md").read_text()
    aliases = {k: str(v) for k, v in client.get_registered_model("dlrm_hstu").aliases.items()}
    assert aliases == sides["before"]["daily"]["aliases"]
    dry = max(int(v.version) for v in client.search_model_versions("name='dlrm_hstu'"))
    assert dry == len(WINDOWS) + 1
    version = client.get_model_version("dlrm_hstu", str(dry))
    assert version.tags["window"] == WINDOWS[-1]
    assert "gate_dry_run.passed" in version.tags and "gate.passed" not in version.tags
    run = client.get_run(version.run_id)
    assert run.data.tags["param.kernel"] == "TRITON"  # the Param reached the run (CPU falls back to PyTorch)
    assert run.data.tags["param.dry_run"] == "True"


def test_the_scheduler_starts_no_run_beside_the_backfill(sides):
    runs = sides["runs"]
    assert all(r["run_id"].startswith("backfill__") for r in runs), [r["run_id"] for r in runs]


def test_every_backfill_run_succeeds(sides):
    runs = [r for r in sides["runs"] if r["run_id"].startswith("backfill__")]
    assert sorted(r["run_after"][:10] for r in runs) == [d[:10] for d in LOGICAL_DATES]
    assert {r["state"] for r in runs} == {"success"}, runs


def test_backfill_writes_the_same_sample_partitions(sides):
    daily, backfill = sides["before"]["daily"]["work"], sides["before"]["backfill"]["work"]
    parts = sorted(p.name for p in (daily / "samples").glob("dt=*"))
    assert parts == ["dt=2022-04-08", *[f"dt={w}" for w in WINDOWS]]
    assert sorted(p.name for p in (backfill / "samples").glob("dt=*")) == parts
    for part in parts:
        a = pd.read_parquet(daily / "samples" / part).sort_values("user_id").reset_index(drop=True)
        b = pd.read_parquet(backfill / "samples" / part).sort_values("user_id").reset_index(drop=True)
        pd.testing.assert_frame_equal(a, b)


def test_backfill_registers_the_same_versions_and_aliases(sides):
    daily, backfill = sides["before"]["daily"], sides["before"]["backfill"]
    expected = daily["versions"]
    assert sorted(v["window"] for v in expected.values()) == WINDOWS
    assert all(v["metrics"] for v in expected.values())
    found = backfill["versions"]
    assert found.keys() == expected.keys()
    for version, want in expected.items():
        got = found[version]
        assert got["window"] == want["window"]
        assert _close(got["gate"], want["gate"]), (version, got["gate"], want["gate"])
        assert _close(got["metrics"], want["metrics"]), (version, got["metrics"], want["metrics"])
    assert "champion" in daily["aliases"] and backfill["aliases"] == daily["aliases"]
    assert all(daily["outcomes"][w] for w in WINDOWS) and backfill["outcomes"] == daily["outcomes"]
