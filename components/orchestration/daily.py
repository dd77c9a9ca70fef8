"""The daily run's steps as the ``hstu_daily`` DAG calls them.

Each function takes the run's resolved config and window, calls the component that does the work, and
returns a small JSON-able dict for XCom (URIs, versions, counts, metrics; never frames or models). All of them
are safe to retry: samples partitions are replaced, a retried training resumes from its checkpoint, and the
registry is only written by :func:`gate_challenger` (decision tags, one locked alias move) and
:func:`report_run` (tags).
"""

from __future__ import annotations

import logging
import math
import shlex
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from components.config import PipelineConfig
from components.data.windows import missing_partitions, training_windows, window_of

log = logging.getLogger(__name__)


def run_config(params: Mapping[str, Any]) -> PipelineConfig:
    """A DAG run's pipeline config: its ``config_file`` Param, read once, with the run's other Params applied."""
    from components.config import apply_overrides, load_config

    return apply_overrides(load_config(params["config_file"]),
                           kernel=None if params["kernel"] == "config" else params["kernel"],
                           train_windows=params["train_windows"], auc_floors=params["auc_floors"],
                           max_regression=params["max_regression"], work_dir=params["work_dir"])


def run_window(params: Mapping[str, Any], data_interval_start: datetime | None) -> str:
    """A DAG run's evaluation window: the ``window_date`` Param, else the day its data interval starts."""
    return window_of(window_date=params["window_date"], data_interval_start=data_interval_start).isoformat()


def _windows(config: PipelineConfig, eval_window: str) -> tuple[date, list[date]]:
    day = date.fromisoformat(eval_window)
    return day, training_windows(day, count=config.data.train_windows, window_days=config.data.window_days)


def plan_windows(*, config: PipelineConfig, eval_window: str) -> dict[str, Any]:
    """The run's windows: training windows then the evaluation window (``end`` is exclusive)."""
    day, train = _windows(config, eval_window)
    end = day + timedelta(days=config.data.window_days)
    return {"eval": eval_window, "windows": [d.isoformat() for d in [*train, day]], "first": train[0].isoformat(),
            "end": end.isoformat(), "work_dir": config.data.work_dir}


def plan_run(*, config: PipelineConfig, eval_window: str, dag_id: str, dag_run_id: str,
             params: dict[str, Any]) -> dict[str, Any]:
    """The ``plan_windows`` task: :func:`plan_windows` plus the command a ``docker`` launcher would run."""
    plan = plan_windows(config=config, eval_window=eval_window)
    plan["trainer_command"] = trainer_command(config=config, config_file=params["config_file"],
                                              eval_window=eval_window, gpus=params["train_gpus"],
                                              tags=run_tags(dag_id, dag_run_id, params))
    return plan


def missing_raw_windows(*, config: PipelineConfig, windows: list[str],
                        waiting_since: datetime | None = None) -> list[str]:
    """The raw event partitions among ``windows`` that are absent (or empty).

    Raises TimeoutError when some are still missing ``data_config.raw_data_timeout_s`` after ``waiting_since``
    (the sensor's first look), so a day whose data never comes fails instead of waiting for ever.
    """
    from components.data.sources import events_root

    days = [date.fromisoformat(w) for w in windows]
    missing = [d.isoformat() for d in missing_partitions(events_root(config.data), days)]
    waited_s = 0.0 if waiting_since is None else (datetime.now(UTC) - waiting_since).total_seconds()
    if missing and waited_s > config.data.raw_data_timeout_s:
        raise TimeoutError(f"raw partitions {missing} under {events_root(config.data)} still missing after "
                           f"{waited_s:.0f} s (data_config.raw_data_timeout_s {config.data.raw_data_timeout_s})")
    return missing


def build_run_samples(*, config: PipelineConfig, windows: list[str]) -> dict[str, Any]:
    """Samples of the run's windows, in local Spark (each partition replaced atomically)."""
    from components.data.samples import build_samples

    results = build_samples(config=config, window_starts=[date.fromisoformat(w) for w in windows])
    return {
        "windows": [r.window_start.isoformat() for r in results],
        "samples": sum(r.samples for r in results),
        "candidates": sum(r.candidates for r in results),
        "quarantined": sum(r.quarantined for r in results),
        "samples_uris": [r.samples_uri for r in results],
    }


def run_tags(dag_id: str, dag_run_id: str, params: dict[str, Any]) -> dict[str, str]:
    """The MLflow run tags of a DAG run's training, wherever it trains: its DAG run and Params (``param.*``)."""
    return {"dag_id": dag_id, "dag_run_id": dag_run_id, **{f"param.{k}": str(v) for k, v in params.items()}}


def train_challenger(*, config: PipelineConfig, eval_window: str, params: dict[str, Any], dag_id: str,
                     dag_run_id: str) -> dict[str, Any]:
    """Trains on the training windows, registers a new version; the run is tagged with the DAG run and Params."""
    from components.registry.versions import find_version, model_version_uri
    from components.training.train import train

    day, windows = _windows(config, eval_window)
    done = find_version(config, tags={"dag_run_id": dag_run_id, "window": eval_window})
    if done is not None:  # a retry after the registration succeeded: same output, no second version
        log.info("version %s was already registered by this run for %s; not training again", done, eval_window)
        return {"run_id": None, "version": done, "steps": 0, "final_loss": None,
                "model_uri": model_version_uri(config.promotion.registered_model_name, done)}
    result = train(config=config, eval_window=day, train_windows=windows, tags=run_tags(dag_id, dag_run_id, params))
    return {"run_id": result.run_id, "version": result.registered_version, "model_uri": result.model_uri,
            "steps": result.steps, "final_loss": _for_xcom({"loss": result.final_loss})["loss"]}


def score_version(config: PipelineConfig, day: date, version: str) -> dict[str, float]:
    """AUC per task of registered ``version`` on window ``day`` (the evaluator of the gate and its task)."""
    from components.registry.versions import model_version_uri
    from components.training.evaluate import evaluate_uri

    uri = model_version_uri(config.promotion.registered_model_name, version)
    return evaluate_uri(model_uri=uri, config=config, window=day).auc


def _score(config: PipelineConfig, day: date, version: str | None) -> tuple[dict[str, float] | None, str | None]:
    if version is None:
        return None, None
    try:
        return score_version(config, day, version), None
    except Exception as exc:  # noqa: BLE001 - a failed evaluation is recorded and never passes the gate
        log.warning("evaluation of version %s on %s failed", version, day, exc_info=True)
        return None, f"{type(exc).__name__}: {exc}"[:500]


def trainer_command(*, config: PipelineConfig, config_file: str, eval_window: str, gpus: int,
                    tags: dict[str, str]) -> str:
    """The training command a container runs (the ``docker`` launcher): torchrun over ``gpus`` GPUs, with
    the run's resolved kernel and windows, and its tags (one shell-quoted string, as DockerOperator takes it)."""
    cmd = ["torchrun", "--standalone", f"--nproc-per-node={gpus}", "-m", "components.training.train",
           "--config", config_file, "--window", eval_window, "--train-windows", str(config.data.train_windows),
           "--kernel", config.model.kernel, "--json",
           *[arg for k, v in tags.items() for arg in ("--tag", f"{k}={v}")]]
    return shlex.join(cmd)


def registered_challenger(*, config: PipelineConfig, window: str, dag_run_id: str) -> str:
    """The version this DAG run's training registered for ``window`` (found by its tags, wherever it ran)."""
    from components.registry.versions import find_version

    version = find_version(config, tags={"dag_run_id": dag_run_id, "window": window})
    if version is None:
        raise ValueError(f"no version of {config.promotion.registered_model_name} is tagged with dag_run_id "
                         f"{dag_run_id!r} and window {window}: did the training register one?")
    return version


def evaluate_challenger_and_champion(*, config: PipelineConfig, window: str,
                                     challenger_version: str) -> dict[str, Any]:
    """Scores the new version and the current ``@champion`` with the same evaluator on the same window."""
    from components.registry.aliases import current_aliases

    day = date.fromisoformat(window)
    champion_version = current_aliases(config).champion
    challenger, challenger_error = _score(config, day, challenger_version)
    champion, champion_error = _score(config, day, champion_version)
    return {"window": window, "challenger_version": challenger_version, "challenger": _for_xcom(challenger),
            "challenger_error": challenger_error, "champion_version": champion_version,
            "champion": _for_xcom(champion), "champion_error": champion_error}


def _for_xcom(metrics: dict[str, float] | None) -> dict[str, float | None] | None:
    """XCom is JSON, which has no NaN: a NaN travels as None (and :func:`_nan_safe` turns it back)."""
    if metrics is None:
        return None
    return {k: None if math.isnan(v) else float(v) for k, v in metrics.items()}


def _nan_safe(metrics: dict[str, float] | None) -> dict[str, float] | None:
    """XCom is JSON: NaN travels as None; restore it so the gate sees a NaN, never a missing value by accident."""
    if metrics is None:
        return None
    return {k: (math.nan if v is None else float(v)) for k, v in metrics.items()}


def gate_challenger(*, config: PipelineConfig, evaluated: dict[str, Any], force: bool, dry_run: bool,
                    decided_at: str, score: Callable[[PipelineConfig, date, str], dict[str, float]] | None = None
                    ) -> dict[str, Any]:
    """The gate task: ``gate.run_gate`` on the evaluation's scores (the one gate path of the DAG and the CLI).

    Decides per task, records the decision on the version and, when it passed (or was forced) and this is not a
    dry run, moves ``@champion``. If another run moved ``@champion`` after the evaluation, ``run_gate`` scores
    the new champion on the same window (with ``score``, default :func:`score_version`) and decides again,
    instead of failing.
    """
    from components.registry.gate import run_gate

    day = date.fromisoformat(evaluated["window"])
    name = config.promotion.registered_model_name
    known = {evaluated["challenger_version"]: (evaluated["challenger"], evaluated["challenger_error"])}
    if evaluated["champion_version"] is not None:
        known[evaluated["champion_version"]] = (evaluated["champion"], evaluated["champion_error"])

    def evaluate(uri: str) -> dict[str, float]:
        version = uri.rsplit("/", 1)[-1]
        if version in known:  # scored by the evaluate task: the same numbers
            scores, error = known[version]
            if error is not None:
                raise RuntimeError(error)
            return _nan_safe(scores)
        return (score or score_version)(config, day, version)

    result = run_gate(config=config, challenger_version=evaluated["challenger_version"], evaluate=evaluate,
                      window=evaluated["window"], dry_run=dry_run, force=force,
                      decided_at=datetime.fromisoformat(decided_at) if decided_at else None)
    log.info("gate of %s version %s:\n%s", name, result.version, result.markdown)
    return {"passed": result.decision.passed, "forced": result.decision.forced, "promoted": result.promoted,
            "dry_run": dry_run, "champion_compared": result.champion_compared,
            "champion": result.aliases.after.champion, "previous_champion": result.aliases.after.previous_champion,
            "attempts": result.attempts, "summary": result.decision.summary, "table": result.markdown}


def _outcome(states: dict[str, str], gate: dict[str, Any] | None) -> str:
    failed = sorted(t for t, s in states.items() if s in ("failed", "upstream_failed"))
    if failed:
        return "failed at " + ", ".join(failed) + "; the registry was not changed by this run"
    if gate is None:
        return "incomplete"
    if gate["dry_run"]:
        return "dry run: decision recorded, no alias moved"
    return "promoted to @champion" if gate["promoted"] else "rejected: @champion unchanged"


def report_run(*, config: PipelineConfig, window: str, dag_run_id: str, states: dict[str, str],
               results: dict[str, Any]) -> dict[str, Any]:
    """One summary of the run: what each task did, the gate table, the outcome; logged and put on the
    MLflow run (tag ``hstu.outcome``, artifact ``report.md``) when the training created one."""
    trained, gate = results.get("train"), results.get("gate")
    outcome = _outcome(states, gate)
    lines = [f"# hstu_daily {dag_run_id}: window {window}", "", f"**Outcome:** {outcome}", "", "| task | state |",
             "|---|---|", *[f"| {t} | {s} |" for t, s in sorted(states.items())], ""]
    if trained:
        lines.append(f"Trained version {trained['version']} (run {trained['run_id']}, {trained['steps']} steps).")
    if gate:
        lines += ["", gate["table"]]
    text = "\n".join(lines) + "\n"
    log.info("%s", text)
    reports = Path(config.data.work_dir) / "reports"
    reports.mkdir(parents=True, exist_ok=True)
    (reports / f"{window}.md").write_text(text)
    if trained and trained.get("run_id"):
        from components.registry.runs import annotate_run

        annotate_run(config, trained["run_id"], tags={"hstu.outcome": outcome}, texts={"report.md": text})
    return {"outcome": outcome, "failed": outcome.startswith("failed"), "window": window,
            "version": (trained or {}).get("version")}
