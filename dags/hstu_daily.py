"""
### hstu_daily: retrain DlrmHSTU every day and promote it only when it beats the champion

For the day that just ended (the run's data interval, or the `window_date` Param on manual runs):

1. **plan_windows** / **wait_for_raw_data**: the evaluation window and the training windows before it; their
   raw event partitions exist.
2. **build_samples**: Spark turns raw events into user-window samples (one partition per window, replaced
   atomically on a rerun).
3. **train**: DlrmHSTU on the training windows; one MLflow run; a new registered model version.
4. **evaluate**: the new version (`@challenger`) and the current `@champion` on the same evaluation window.
5. **gate**: per-task AUC floors and allowed regression (docs/design.md §7); NaN or missing metrics never pass.
   The decision is recorded on the version; `@champion` moves (the old one becomes `@previous_champion`) when
   it passed or was forced, unless dry-run. If `@champion` moved since the evaluation, the new one is scored
   and the decision made again.
6. **report**: one summary of what happened, in the task log and on the MLflow run, even when a step failed;
   it fails itself when a step failed, so the run is red (a gate rejection is a green run).
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta

from airflow.sdk import Asset, CronTriggerTimetable, Param, dag, get_current_context, task

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_CONFIG = os.environ.get("HSTU_CONFIG", os.path.join(REPO, "configs", "small_cpu.config"))
SAMPLES = Asset(name="hstu_samples", uri="file:///hstu/samples")
MODEL = Asset(name="dlrm_hstu_model", uri="file:///hstu/models/dlrm_hstu")
RETRY = {"retries": 2, "retry_delay": timedelta(minutes=1), "retry_exponential_backoff": True}
# Scale-out switch: set to an Airflow Spark connection id to run the sample job through spark-submit.
SPARK_CONN_ID = os.environ.get("HSTU_SPARK_CONN_ID", "")
# Scale-out switch: "docker" trains in HSTU_TRAINER_IMAGE with torchrun over HSTU_TRAIN_GPUS GPUs.
TRAIN_LAUNCHER = os.environ.get("HSTU_TRAIN_LAUNCHER", "local")
TRAIN_GPUS = int(os.environ.get("HSTU_TRAIN_GPUS", "1"))
# How long a run waits for its raw data (the local stack, whose data is historical, gives up quickly).
RAW_DATA_WAIT = {"poke_interval": int(os.environ.get("HSTU_RAW_DATA_POKE_S", 300)),
                 "timeout": int(os.environ.get("HSTU_RAW_DATA_TIMEOUT_S", 6 * 3600))}


def _run_config():
    """The pipeline config of this run: the config file with the run's Params applied."""
    from components.config import apply_overrides, load_config

    p = get_current_context()["params"]
    return apply_overrides(load_config(p["config_file"]), kernel=None if p["kernel"] == "config" else p["kernel"],
                           train_windows=p["train_windows"], auc_floors=p["auc_floors"],
                           max_regression=p["max_regression"], work_dir=os.environ.get("HSTU_WORK_DIR"))


def _window() -> str:
    from components.data.windows import window_of

    ctx = get_current_context()
    return window_of(window_date=ctx["params"]["window_date"],
                     data_interval_start=ctx.get("data_interval_start")).isoformat()


@dag(
    dag_id="hstu_daily",
    schedule=CronTriggerTimetable("0 3 * * *", timezone="UTC", interval=timedelta(days=1)),
    start_date=datetime(2022, 4, 8),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["hstu", "training"],
    params={
        "window_date": Param(None, type=["null", "string"], format="date", title="Evaluation window",
                             description="YYYY-MM-DD; empty: the run's data interval (the day that ended)."),
        "config_file": Param(DEFAULT_CONFIG, type="string", title="Pipeline config",
                             description="Path of the pipeline config (protobuf text)."),
        "train_windows": Param(None, type=["null", "integer"], minimum=1, maximum=90, title="Training windows",
                               description="Windows before the evaluation window to train on; empty: config."),
        "kernel": Param("config", type="string", enum=["config", "TRITON", "PYTORCH"], title="Kernels",
                        values_display={"config": "as in the config", "TRITON": "Triton", "PYTORCH": "PyTorch"},
                        description="Override the config's kernel; TRITON falls back to PYTORCH without a GPU."),
        "auc_floors": Param({}, type="object", title="AUC floors",
                            description='Per-task AUC floor, e.g. {"is_click": 0.6}; others use the config.'),
        "max_regression": Param(None, type=["null", "number"], minimum=0, maximum=1, title="Allowed regression",
                                description="AUC the new model may lose against the champion on any task."),
        "dry_run": Param(False, type="boolean", title="Dry run", description="Decide, but move no alias."),
        "force_promote": Param(False, type="boolean", title="Force promote",
                               description="Promote even if the gate fails (recorded as forced)."),
    },
)
def hstu_daily():
    @task
    def plan_windows():
        from components.orchestration.daily import plan_windows, run_tags, trainer_command

        ctx, config = get_current_context(), _run_config()
        plan = plan_windows(config=config, eval_window=_window())
        tags = run_tags(ctx["dag"].dag_id, ctx["run_id"], dict(ctx["params"]))
        plan["trainer_command"] = trainer_command(config=config, config_file=ctx["params"]["config_file"],
                                                  eval_window=plan["eval"], gpus=TRAIN_GPUS, tags=tags)
        return plan

    @task.sensor(mode="reschedule", **RAW_DATA_WAIT)
    def wait_for_raw_data(plan: dict):
        from airflow.sdk import PokeReturnValue

        from components.orchestration.daily import missing_raw_windows

        missing = missing_raw_windows(config=_run_config(), windows=plan["windows"])
        return PokeReturnValue(is_done=not missing, xcom_value={"missing": missing})

    @task(outlets=[SAMPLES], **RETRY)
    def build_samples(plan: dict):
        from components.orchestration.daily import build_run_samples

        return build_run_samples(config=_run_config(), windows=plan["windows"])

    def spark_submit_samples():
        from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator

        plan = "ti.xcom_pull(task_ids='plan_windows')"
        return SparkSubmitOperator(
            task_id="build_samples", conn_id=SPARK_CONN_ID, application=f"{REPO}/components/data/samples.py",
            application_args=["--config", "{{ params.config_file }}", "--window-start", f"{{{{ {plan}['first'] }}}}",
                              "--window-end", f"{{{{ {plan}['end'] }}}}", "--work-dir", f"{{{{ {plan}['work_dir'] }}}}"],
            name="hstu-samples", outlets=[SAMPLES], **RETRY)

    @task(**RETRY)
    def train():
        from components.orchestration.daily import train_challenger

        ctx = get_current_context()
        return train_challenger(config=_run_config(), eval_window=_window(), params=dict(ctx["params"]),
                             dag_id=ctx["dag"].dag_id, dag_run_id=ctx["run_id"])

    def docker_train():
        from airflow.providers.docker.operators.docker import DockerOperator
        from docker.types import DeviceRequest, Mount

        return DockerOperator(
            task_id="train", image=os.environ.get("HSTU_TRAINER_IMAGE", "hstu-pipeline/trainer:0.1.0"),
            command="{{ ti.xcom_pull(task_ids='plan_windows')['trainer_command'] }}",
            environment={k: os.environ[k] for k in ("MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_USERNAME",
                                                    "MLFLOW_TRACKING_PASSWORD") if k in os.environ},
            device_requests=[DeviceRequest(count=TRAIN_GPUS, capabilities=[["gpu"]])],
            mounts=[Mount(target="/data", source=os.environ.get("HSTU_DATA_VOLUME", "hstu_data"), type="volume")],
            network_mode=os.environ.get("HSTU_DOCKER_NETWORK", "bridge"), auto_remove="success",
            mount_tmp_dir=False, do_xcom_push=False, **RETRY)

    @task(**RETRY)
    def evaluate():
        from components.orchestration.daily import evaluate_challenger_and_champion, registered_challenger

        ctx = get_current_context()
        config, window = _run_config(), _window()
        version = registered_challenger(config=config, window=window, dag_run_id=ctx["run_id"])
        return evaluate_challenger_and_champion(config=config, window=window, challenger_version=version)

    @task(outlets=[MODEL])
    def gate(evaluated: dict):
        from components.orchestration.daily import gate_challenger

        ctx = get_current_context()
        return gate_challenger(config=_run_config(), evaluated=evaluated, force=ctx["params"]["force_promote"],
                               dry_run=ctx["params"]["dry_run"], decided_at=ctx["dag_run"].run_after.isoformat())

    @task(trigger_rule="all_done")
    def report():
        from components.orchestration.daily import report_run

        ctx = get_current_context()
        ti, tasks = ctx["ti"], ["plan_windows", "wait_for_raw_data", "build_samples", "train", "evaluate", "gate"]
        states = ti.get_task_states(dag_id=ctx["dag"].dag_id, run_ids=[ctx["run_id"]])[ctx["run_id"]]
        results = {t: ti.xcom_pull(task_ids=t) for t in ("train", "gate")}
        summary = report_run(config=_run_config(), window=_window(), dag_run_id=ctx["run_id"],
                             states={t: str(states.get(t)) for t in tasks}, results=results)
        if summary["failed"]:  # report is the only leaf: without this a failed pipeline would be a green run
            raise RuntimeError(f"hstu_daily {ctx['run_id']}: {summary['outcome']}")
        return summary

    plan = plan_windows()
    samples = spark_submit_samples() if SPARK_CONN_ID else build_samples(plan)
    trained = docker_train() if TRAIN_LAUNCHER == "docker" else train()
    wait_for_raw_data(plan) >> samples >> trained
    evaluated = evaluate()
    trained >> evaluated
    gate(evaluated) >> report()


hstu_daily()
