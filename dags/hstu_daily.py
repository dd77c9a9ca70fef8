"""### hstu_daily: retrain DlrmHSTU every day and promote it only when it beats the champion
For the day that just ended (the data interval, or the `window_date` Param): **plan_windows**,
**wait_for_raw_data** (raw partitions exist), samples by **build_samples** (local Spark) or
**build_samples_spark** (Param `samples_engine`), a new registered version by **train** or **train_docker** (Param
`train_launcher`), **evaluate** it and `@champion` on the same window, **gate** per task (docs/design.md §7;
`@champion` moves on a pass or when forced, unless dry-run), **report** (runs always; red when a step failed).
"""

from datetime import datetime, timedelta
from pathlib import Path

from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator
from airflow.providers.docker.operators.docker import DockerOperator
from airflow.sdk import Asset, CronTriggerTimetable, Param, PokeReturnValue, dag, get_current_context, task
from docker.types import DeviceRequest, Mount

REPO = Path(__file__).resolve().parents[1]
SAMPLES = Asset(name="hstu_samples", uri="file:///hstu/samples")
MODEL = Asset(name="dlrm_hstu_model", uri="file:///hstu/models/dlrm_hstu")
RETRY = {"retries": 2, "retry_delay": timedelta(minutes=1), "retry_exponential_backoff": True}
# docker launcher: MLflow settings from Airflow Variables at run time; GPUs: the host's (not templated)
MLFLOW_ENV = {k: f"{{{{ var.value.get('{k.lower()}', '') }}}}"
              for k in ("MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")}
PLAN = "ti.xcom_pull(task_ids='plan_windows')"  # the plan_windows task's result, in templates


def _form(default, type_, title: str, description: str, **schema) -> Param:
    return Param(default, type=type_, title=title, description=description, **schema)


def _run() -> tuple:
    """The task's context, its pipeline config (the file with the run's Params applied) and its window."""
    from components.orchestration.daily import run_config, run_window
    ctx = get_current_context()
    return ctx, run_config(ctx["params"]), run_window(ctx["params"], ctx.get("data_interval_start"))


PARAMS = {  # the trigger form: title, description, type and bounds of each run-time choice
    "window_date": _form(None, ["null", "string"], "Evaluation window", "Empty: the data interval.", format="date"),
    "config_file": _form(str(REPO / "configs" / "small_cpu.config"), "string", "Pipeline config", "Its path."),
    "work_dir": _form(None, ["null", "string"], "Work folder", "Samples, runs, reports; empty: the config's."),
    "train_windows": _form(None, ["null", "integer"], "Training windows", "Before the evaluation window; empty: "
                           "config.", minimum=1, maximum=90),
    "kernel": _form("config", "string", "Kernels", "Override the config's kernel.", enum=["config", "TRITON", "PYTORCH"],
                    values_display={"config": "as in the config", "TRITON": "Triton", "PYTORCH": "PyTorch"}),
    "auc_floors": _form({}, "object", "AUC floors", 'Per task, e.g. {"is_click": 0.6}; others: config.'),
    "max_regression": _form(None, ["null", "number"], "Allowed regression", "Empty: config.", minimum=0, maximum=1),
    "dry_run": _form(False, "boolean", "Dry run", "Decide, but move no alias."),
    "force_promote": _form(False, "boolean", "Force promote", "Promote even if the gate fails (recorded)."),
    "samples_engine": _form("local", "string", "Samples engine", "Spark here or via spark-submit.",
                            enum=["local", "spark_submit"]),
    "train_launcher": _form("local", "string", "Trainer", "Here or in a container.", enum=["local", "docker"]),
    "train_gpus": _form(1, "integer", "Training GPUs", "torchrun processes (docker).", minimum=1, maximum=64),
    "trainer_image": _form("hstu-pipeline/trainer:0.1.0", "string", "Trainer image", "Image of the docker launcher."),
}


@task
def plan_windows():
    from components.orchestration.daily import plan_run
    ctx, config, window = _run()
    return plan_run(config=config, eval_window=window, dag_id=ctx["dag"].dag_id, dag_run_id=ctx["run_id"],
                    params=dict(ctx["params"]))


@task.sensor(mode="reschedule", poke_interval=60, timeout=7 * 24 * 3600)  # raw_data_timeout_s ends it sooner
def wait_for_raw_data(plan: dict):
    from components.orchestration.daily import missing_raw_windows
    ctx, config, _ = _run()
    since = ctx["ti"].get_first_reschedule_date(ctx)  # the first look; None on it
    missing = missing_raw_windows(config=config, windows=plan["windows"], waiting_since=since)
    return PokeReturnValue(is_done=not missing, xcom_value={"missing": missing})


@task.branch
def choose_samples_engine():
    engine = get_current_context()["params"]["samples_engine"]
    return "build_samples_spark" if engine == "spark_submit" else "build_samples"


@task(outlets=[SAMPLES], **RETRY)
def build_samples(plan: dict):
    from components.orchestration.daily import build_run_samples
    return build_run_samples(config=_run()[1], windows=plan["windows"])


@task.branch(trigger_rule="none_failed_min_one_success")  # one samples task ran, the other was skipped
def choose_train_launcher():
    return "train_docker" if get_current_context()["params"]["train_launcher"] == "docker" else "train"


@task(**RETRY)
def train():
    from components.orchestration.daily import train_challenger
    ctx, config, window = _run()
    return train_challenger(config=config, eval_window=window, params=dict(ctx["params"]),
                            dag_id=ctx["dag"].dag_id, dag_run_id=ctx["run_id"])


@task(trigger_rule="none_failed_min_one_success", **RETRY)  # after train or train_docker
def evaluate():
    from components.orchestration.daily import evaluate_challenger_and_champion, registered_challenger
    ctx, config, window = _run()
    version = registered_challenger(config=config, window=window, dag_run_id=ctx["run_id"])
    return evaluate_challenger_and_champion(config=config, window=window, challenger_version=version)


@task(outlets=[MODEL])
def gate(evaluated: dict):
    from components.orchestration.daily import gate_challenger
    ctx, config, _ = _run()
    return gate_challenger(config=config, evaluated=evaluated, force=ctx["params"]["force_promote"],
                           dry_run=ctx["params"]["dry_run"], decided_at=ctx["dag_run"].run_after.isoformat())


@task(trigger_rule="all_done")
def report():
    from components.orchestration.daily import report_run
    ctx, config, window = _run()
    states = ctx["ti"].get_task_states(dag_id=ctx["dag"].dag_id, run_ids=[ctx["run_id"]])[ctx["run_id"]]
    summary = report_run(config=config, window=window, dag_run_id=ctx["run_id"],
                         states={t: str(s) for t, s in states.items() if t != "report"},
                         results={t: ctx["ti"].xcom_pull(task_ids=t) for t in ("train", "gate")})
    if summary["failed"]:  # report is the only leaf: without this a failed pipeline would be a green run
        raise RuntimeError(f"hstu_daily {ctx['run_id']}: {summary['outcome']}")
    return summary


@dag(dag_id="hstu_daily", start_date=datetime(2022, 4, 8), catchup=False, max_active_runs=1, doc_md=__doc__,
     schedule=CronTriggerTimetable("0 3 * * *", timezone="UTC", interval=timedelta(days=1)),
     tags=["hstu", "training"], params=PARAMS)
def hstu_daily():
    build_samples_spark = SparkSubmitOperator(
        task_id="build_samples_spark", conn_id="spark_cluster", application=f"{REPO}/components/data/samples.py",
        application_args=["--config", "{{ params.config_file }}", "--window-start", f"{{{{ {PLAN}['first'] }}}}",
                          "--window-end", f"{{{{ {PLAN}['end'] }}}}", "--work-dir", f"{{{{ {PLAN}['work_dir'] }}}}"],
        name="hstu-samples", outlets=[SAMPLES], **RETRY)
    train_docker = DockerOperator(
        task_id="train_docker", image="{{ params.trainer_image }}", command=f"{{{{ {PLAN}['trainer_command'] }}}}",
        environment=MLFLOW_ENV, device_requests=[DeviceRequest(count=-1, capabilities=[["gpu"]])],
        mounts=[Mount(target="/data", source="hstu_data", type="volume")], network_mode="bridge",
        auto_remove="success", mount_tmp_dir=False, do_xcom_push=False, **RETRY)
    plan = plan_windows()
    samples = [build_samples(plan), build_samples_spark]
    wait_for_raw_data(plan) >> choose_samples_engine() >> samples
    samples >> choose_train_launcher() >> [train(), train_docker] >> (evaluated := evaluate())
    gate(evaluated) >> report()


hstu_daily()
