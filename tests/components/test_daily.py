"""The DAG's step functions: what crosses XCom is JSON, and NaN survives the trip as a failure."""

from __future__ import annotations

import json
import math
import shlex
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from components.config import apply_overrides, load_config
from components.orchestration.daily import (
    _for_xcom,
    _nan_safe,
    missing_raw_windows,
    plan_run,
    plan_windows,
    report_run,
    run_config,
    run_window,
    trainer_command,
)
from components.registry.decision import decide

SMALL = Path(__file__).resolve().parents[2] / "configs" / "small_cpu.config"


def test_nan_metrics_cross_xcom_and_never_pass_the_gate():
    config = load_config(SMALL)
    sent = json.loads(json.dumps(_for_xcom({"is_click": 0.71, "is_like": math.nan}), allow_nan=False))
    assert sent == {"is_click": 0.71, "is_like": None}
    assert math.isnan(_nan_safe(sent)["is_like"])
    decision = decide(_nan_safe(sent), None, config.promotion)
    assert not decision.passed and not decision.promote
    assert any(row.task == "is_like" and not row.passed for row in decision.rows)


def test_plan_windows_lists_training_windows_then_the_evaluation_window():
    plan = plan_windows(config=load_config(SMALL), eval_window="2022-04-15")
    assert plan["windows"] == ["2022-04-12", "2022-04-13", "2022-04-14", "2022-04-15"]
    assert (plan["first"], plan["end"]) == ("2022-04-12", "2022-04-16")
    assert date.fromisoformat(plan["end"]) > date.fromisoformat(plan["eval"])


def test_trainer_command_runs_torchrun_with_the_runs_settings():
    config = load_config(SMALL)
    cmd = shlex.split(trainer_command(config=config, config_file="/data/c.config", eval_window="2022-04-15",
                                      gpus=4, tags={"dag_run_id": "manual run 1", "param.kernel": "TRITON"}))
    assert cmd[:5] == ["torchrun", "--standalone", "--nproc-per-node=4", "-m", "components.training.train"]
    assert cmd[cmd.index("--window") + 1] == "2022-04-15" and cmd[cmd.index("--train-windows") + 1] == "3"
    assert cmd[cmd.index("--kernel") + 1] == "PYTORCH"
    assert "dag_run_id=manual run 1" in cmd and "param.kernel=TRITON" in cmd


def test_a_runs_params_shape_its_config_window_and_trainer_command(tmp_path):
    params = {"config_file": str(SMALL), "work_dir": str(tmp_path), "kernel": "config", "train_windows": 2,
              "auc_floors": {"is_click": 0.6}, "max_regression": None, "window_date": None, "train_gpus": 2}
    config = run_config(params)
    assert config.data.work_dir == str(tmp_path) and config.data.train_windows == 2
    assert config.model.kernel == load_config(SMALL).model.kernel and config.promotion.rule("is_click").auc_floor == 0.6
    assert run_window(params, date(2022, 4, 15)) == "2022-04-15"
    assert run_window({**params, "window_date": "2022-04-09"}, date(2022, 4, 15)) == "2022-04-09"
    plan = plan_run(config=config, eval_window="2022-04-15", dag_id="hstu_daily", dag_run_id="r", params=params)
    assert plan["windows"] == ["2022-04-13", "2022-04-14", "2022-04-15"] and plan["work_dir"] == str(tmp_path)
    assert "--nproc-per-node=2" in shlex.split(plan["trainer_command"])


def test_raw_data_wait_ends_after_the_configs_timeout(tmp_path):
    config = apply_overrides(load_config(SMALL), work_dir=str(tmp_path))  # no raw data there
    assert config.data.raw_data_timeout_s == 60
    now = datetime.now(UTC)
    assert missing_raw_windows(config=config, windows=["2022-04-15"]) == ["2022-04-15"]  # the first look
    assert missing_raw_windows(config=config, windows=["2022-04-15"], waiting_since=now) == ["2022-04-15"]
    with pytest.raises(TimeoutError, match=r"\['2022-04-15'\].*raw_data_timeout_s 60"):
        missing_raw_windows(config=config, windows=["2022-04-15"], waiting_since=now - timedelta(seconds=90))


def test_trainer_cli_takes_tags_and_kernel():
    from components.training.train import _parse_args

    args = _parse_args(["--config", "c", "--window", "2022-04-15", "--kernel", "TRITON", "--tag", "a=b=c"])
    assert args.kernel == "TRITON" and args.tag == ["a=b=c"]


def test_report_marks_a_failed_step_as_a_failed_run_and_a_rejection_as_not(tmp_path):
    config = apply_overrides(load_config(SMALL), work_dir=str(tmp_path))
    states = {"train": "success", "evaluate": "failed", "gate": "upstream_failed"}
    failed = report_run(config=config, window="2022-04-15", dag_run_id="manual_1", states=states, results={})
    assert failed["failed"] and failed["outcome"].startswith("failed at evaluate, gate;")
    assert "failed at evaluate" in (tmp_path / "reports" / "2022-04-15.md").read_text()

    done = {t: "success" for t in states}
    rejected = report_run(config=config, window="2022-04-16", dag_run_id="manual_2", states=done,
                          results={"gate": {"dry_run": False, "promoted": False, "table": "| task |"}})
    assert not rejected["failed"] and rejected["outcome"] == "rejected: @champion unchanged"
