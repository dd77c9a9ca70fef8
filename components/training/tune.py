"""Hyper-parameter search on one window: an Optuna study whose trials are training runs (``hstu tune``).

``tune(config=..., window=D, trials=N)`` trains N times on the ``data_config.train_windows`` windows before D,
each time with values drawn from :data:`SEARCH_SPACE` by a seeded TPE sampler, scores every trial by the mean
AUC over the model's tasks on D (a NaN AUC fails the trial, so it is never the best), and writes the best
trial's resolved config with a header comment to ``{work_dir}/tune/<D>/best.config``.

A trial's config is the study's config with the drawn values written into its text and parsed again
(:func:`with_params`, like ``components.config.apply_overrides``): it is validated like a file, and its
resolved text is what the trial's run logs.

MLflow (through ``components.registry.runs``; this module imports no mlflow): the study is one parent run (params:
window, training windows, trials, seed, search space; metric ``tune/objective`` per trial number; the best
params, value and config). Each trial is an ordinary training run, never registered, nested under it by the
``mlflow.parentRunId`` tag and given params ``tune/<name>`` and the metric ``tune/objective``.

A trial trains in its own work dir, ``{work_dir}/tune/<D>/<parent run id>/trial-<n>``, whose entries are links
to the study's work dir (samples, stats, raw data) except ``runs/``: its checkpoints, model state and
result.json can neither resume nor overwrite another trial's or the daily run's. The folder is removed when
the trial ends; what remains of a trial is its MLflow run.
"""

from __future__ import annotations

import logging
import math
import shutil
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import optuna
from google.protobuf import text_format
from google.protobuf.descriptor import FieldDescriptor
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState

from components.config import PipelineConfig, parse_config
from components.data.windows import sample_files, select_training_windows
from components.proto import pipeline_pb2
from components.registry.runs import PARENT_RUN_TAG, TrackedRun, annotate_run, start_parent_run
from components.registry.store import TrackingTarget, connect

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SearchParam:
    """One tuned value: its field in the config text and the distribution the sampler draws it from."""

    field: str
    distribution: BaseDistribution


# The search space. Tower and STU widths are left out: they change the model's cost, so trials would no
# longer take comparable time, and the CPU configs are sized for speed.
SEARCH_SPACE: dict[str, SearchParam] = {
    "dense_lr": SearchParam("train_config.dense_optimizer.lr", FloatDistribution(3e-4, 1e-2, log=True)),
    "sparse_lr": SearchParam("train_config.sparse_optimizer.lr", FloatDistribution(3e-3, 0.1, log=True)),
    "epochs": SearchParam("train_config.epochs", IntDistribution(1, 6)),
    # Categorical so that 0 (no decay) can be drawn, which a log scale cannot reach.
    "dense_weight_decay": SearchParam("train_config.dense_optimizer.weight_decay",
                                      CategoricalDistribution((0.0, 1e-4, 1e-3, 1e-2))),
    "stu_output_dropout": SearchParam("model_config.dlrm_hstu.hstu.stu.output_dropout_ratio",
                                      FloatDistribution(0.0, 0.3)),
    "input_dropout": SearchParam("model_config.dlrm_hstu.hstu.input_dropout_ratio", FloatDistribution(0.0, 0.3)),
    # The id rows' initial scale; 0 is TorchRec's default U(+-sqrt(1/rows)) (benchmarks/results/QUALITY_NOTES.md §10).
    "embedding_init_std": SearchParam("model_config.dlrm_hstu.embedding_init_std",
                                      CategoricalDistribution((0.0, 0.03, 0.1, 0.3))),
}

# The wide part's own rates (docs/design.md §5), searched only where the config's tower has that part: a rate
# for a switched-off part is a config error.
WIDE_SPACE: dict[str, tuple[str, SearchParam]] = {
    "id_bias_lr": ("id_bias", SearchParam("train_config.id_bias_lr", FloatDistribution(3e-3, 1.0, log=True))),
    "summary_wide_lr": ("history_summary",
                        SearchParam("train_config.summary_wide_lr", FloatDistribution(1e-3, 0.1, log=True))),
}


def search_space(config: PipelineConfig) -> dict[str, SearchParam]:
    """:data:`SEARCH_SPACE`, plus the wide part's rates of :data:`WIDE_SPACE` where ``config``'s tower has it."""
    wide = {name: p for name, (switch, p) in WIDE_SPACE.items() if getattr(config.model.tower, switch)}
    return {**SEARCH_SPACE, **wide}


# What a trial writes under its work dir; every other entry of the study's work dir is an input, linked.
_TRIAL_OUTPUTS = ("runs", "tune")


@dataclass(frozen=True)
class TrialOutcome:
    """One trial: its drawn params, AUC per task on the window, objective (None: failed) and MLflow run."""

    number: int
    params: dict[str, Any]
    aucs: dict[str, float]
    value: float | None
    run_id: str | None
    seconds: float


@dataclass(frozen=True)
class TuneResult:
    """What a study found; ``config_path`` holds the best trial's config, ``parent_run_id`` the study's run."""

    window: str
    train_windows: list[str]
    best_trial: int
    best_params: dict[str, Any]
    best_value: float
    trials: list[TrialOutcome]
    config_path: str
    parent_run_id: str
    seconds: float


# ---------------------------------------------------------------- config text


def with_params(config: PipelineConfig, params: Mapping[str, Any]) -> PipelineConfig:
    """A copy of ``config`` with ``params`` (``{search_space(config) name: value}``) written into its text and
    re-parsed.

    Raises:
        ValueError: an unknown parameter name, or a value of the wrong type for its field.
        components.config.ConfigError: a value the config rejects (a dropout of 1.5, a learning rate of 0),
            naming the field.
    """
    msg = pipeline_pb2.PipelineConfig()
    text_format.Parse(config.text, msg)
    space = search_space(config)
    for name, value in params.items():
        spec = space.get(name)
        if spec is None:
            raise ValueError(f"unknown tuning parameter {name!r}; the search space has {', '.join(space)}")
        _set_field(msg, spec.field, value, name)
    return parse_config(text_format.MessageToString(msg), f"{config.source} + tuned parameters")


def _set_field(msg: Any, path: str, value: Any, name: str) -> None:
    *parents, leaf = path.split(".")
    for part in parents:
        msg = getattr(msg, part)
    is_float = msg.DESCRIPTOR.fields_by_name[leaf].cpp_type in (FieldDescriptor.CPPTYPE_FLOAT,
                                                                 FieldDescriptor.CPPTYPE_DOUBLE)
    number = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if not number or not (is_float or float(value).is_integer()):
        raise ValueError(f"tuning parameter {name} ({path}) must be a finite {'number' if is_float else 'integer'}, "
                         f"got {value!r}")
    try:
        setattr(msg, leaf, float(value) if is_float else int(value))
    except ValueError as exc:  # e.g. a negative value for an unsigned field
        raise ValueError(f"tuning parameter {name} ({path}) = {value!r} does not fit the field: {exc}") from None


def _in_work_dir(config: PipelineConfig, work_dir: Path, tracking_uri: str) -> PipelineConfig:
    """``config`` training under ``work_dir`` while its runs still go to ``tracking_uri`` (the study's store;
    the default store lives in the work dir)."""
    msg = pipeline_pb2.PipelineConfig()
    text_format.Parse(config.text, msg)
    msg.data_config.work_dir = str(work_dir)
    msg.tracking_config.tracking_uri = tracking_uri
    return parse_config(text_format.MessageToString(msg), config.source)


# ---------------------------------------------------------------- the study


def tune(*, config: PipelineConfig, window: date, trials: int, out: Path | None = None, seed: int = 0,
         train_windows: list[date] | None = None) -> TuneResult:
    """Runs ``trials`` training runs on the windows before ``window`` and keeps the config with the best AUC.

    Args:
        config: the resolved pipeline config (its work_dir must be local). window: the validation window D.
        trials: number of trials (>= 1). out: where the best config goes (default
            ``{work_dir}/tune/<D>/best.config``). seed: the TPE sampler's seed.
        train_windows: explicit training windows (all before D); default: the config's, as ``hstu train``.
    Returns:
        TuneResult. Raises ValueError when every trial failed (no finite AUC), FileNotFoundError when samples
        are missing, components.registry.store.TrackingUnavailableError when MLflow is unreachable.
    """
    t0 = time.perf_counter()
    if trials < 1:
        raise ValueError(f"the number of trials must be >= 1, got {trials}")
    if "://" in config.data.work_dir:
        raise ValueError(f"hstu tune needs a local data_config.work_dir, got {config.data.work_dir!r}")
    work = Path(config.data.work_dir)
    windows = select_training_windows(work / "samples", window, count=config.data.train_windows,
                                      window_days=config.data.window_days, given=train_windows)
    sample_files(work, [*windows, window])  # missing samples fail here, before any run starts
    target = connect(config)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed),
                                study_name=f"hstu-tune-{window}")
    tags = {"dag_id": "tune", "dag_run_id": f"tune__{window}", "window": window.isoformat(),
            "train_windows": ",".join(w.isoformat() for w in windows)}
    with start_parent_run(target, run_name=f"tune.{window}", tags=tags) as parent:
        study_dir = work / "tune" / window.isoformat() / parent.run_id
        try:
            parent.log_params({"window": window.isoformat(), "trials": trials, "seed": seed,
                               "train_windows": tags["train_windows"], "sampler": "TPESampler",
                               "space": {n: repr(p.distribution) for n, p in search_space(config).items()}},
                              prefix="tune")
            parent.log_config_text(config.text)
            outcomes = []
            for _ in range(trials):
                outcomes.append(_trial(study, config, target, parent, window, windows, study_dir))
                parent.log_step_metrics({"tune/objective": _nan(outcomes[-1].value)}, step=outcomes[-1].number)
        finally:
            shutil.rmtree(study_dir, ignore_errors=True)
        best = _best(outcomes, window)
        path = _write_best(config, best, outcomes, f"{study.study_name} (MLflow run {parent.run_id})", window,
                           out or work / "tune" / window.isoformat() / "best.config")
        parent.log_params(best.params, prefix="tune/best")
        parent.log_step_metrics({"tune/best_value": best.value, "tune/best_trial": best.number}, step=0)
        parent.log_config_text(path.read_text(), artifact_file="tune/best.config")
    logger.info("study of window %s: best trial %d of %d, mean AUC %.4f, config %s", window, best.number, trials,
                best.value, path)
    return TuneResult(window=window.isoformat(), train_windows=[w.isoformat() for w in windows],
                      best_trial=best.number, best_params=best.params, best_value=best.value, trials=outcomes,
                      config_path=str(path), parent_run_id=parent.run_id, seconds=time.perf_counter() - t0)


def _trial(study: optuna.Study, config: PipelineConfig, target: TrackingTarget, parent: TrackedRun, window: date,
           windows: list[date], study_dir: Path) -> TrialOutcome:
    """Draws one set of params, trains with them in a fresh work dir, scores the window and tells the study."""
    from components.training.train import train  # torch and the model only load once a trial runs

    t0 = time.perf_counter()
    trial = study.ask({name: p.distribution for name, p in search_space(config).items()})
    folder = study_dir / f"trial-{trial.number}"
    logger.info("trial %d: %s", trial.number, trial.params)
    try:
        trial_config = _in_work_dir(with_params(config, trial.params), folder, target.tracking_uri)
        _link_inputs(Path(config.data.work_dir), folder)
        tags = {"dag_id": "tune", "dag_run_id": f"tune__{window}__{parent.run_id}", PARENT_RUN_TAG: parent.run_id,
                "tune_trial": str(trial.number)}
        result = train(config=trial_config, eval_window=window, train_windows=windows, tags=tags, register=False)
    except BaseException:
        study.tell(trial, state=TrialState.FAIL)
        raise
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    aucs = {t.task_name: float(result.metrics.get(f"eval/{t.task_name}/auc", math.nan)) for t in config.model.tasks}
    value = sum(aucs.values()) / len(aucs)
    if math.isfinite(value):
        study.tell(trial, value)
    else:  # failed, not pruned: a NaN AUC means the model or the window is broken, not merely worse
        logger.warning("trial %d failed: AUC per task %s", trial.number, aucs)
        study.tell(trial, state=TrialState.FAIL)
    if result.run_id:
        child = TrackedRun(target, result.run_id)
        child.log_params(trial.params, prefix="tune")
        child.log_step_metrics({"tune/objective": value}, step=0)
        annotate_run(trial_config, result.run_id, tags={"mlflow.runName": f"trial-{trial.number}"})
    return TrialOutcome(trial.number, dict(trial.params), aucs, value if math.isfinite(value) else None,
                        result.run_id, time.perf_counter() - t0)


def _link_inputs(work: Path, folder: Path) -> None:
    """A trial work dir: a link to every entry of the study's ``work`` except the trial's own outputs."""
    folder.mkdir(parents=True)
    for entry in work.iterdir():
        if entry.name not in _TRIAL_OUTPUTS:
            (folder / entry.name).symlink_to(entry, target_is_directory=entry.is_dir())


def _nan(value: float | None) -> float:
    return math.nan if value is None else value


def _best(outcomes: list[TrialOutcome], window: date) -> TrialOutcome:
    done = [o for o in outcomes if o.value is not None]
    if not done:
        raise ValueError(f"all {len(outcomes)} trials on window {window} failed (no finite AUC): "
                         f"{[o.aucs for o in outcomes]}")
    return max(done, key=lambda o: o.value)  # the first of equal values, as Optuna's best_trial


def _write_best(config: PipelineConfig, best: TrialOutcome, outcomes: list[TrialOutcome], study: str,
                window: date, path: Path) -> Path:
    """Writes the best trial's resolved config, with a header saying where it came from; returns ``path``."""
    text = with_params(config, best.params).text
    aucs = ", ".join(f"{task} {auc:.4f}" for task, auc in best.aucs.items())
    done = sum(o.value is not None for o in outcomes)
    header = (f"# hstu tune, study {study}: best of {len(outcomes)} trials ({done} completed) on window "
              f"{window}, from {config.source}\n"
              f"# best trial {best.number}: mean AUC {best.value:.4f} ({aucs})\n"
              f"# params: {best.params}\n"
              f"# written {datetime.now(UTC).date().isoformat()}\n")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(header + text)
    return path
