"""One MLflow run: what a pipeline run logs (config, statistics, step metrics, plots, the model) and the tags
added once it finished (docs/design.md §7). One run per DAG run, tagged ``dag_id``, ``dag_run_id``, ``window``.

Typical use (the trainer)::

    target = connect(config)                        # store.py: resolves the URI, checks it, gets the experiment
    with start_run(target, dag_id=..., dag_run_id=..., window="2022-04-09") as run:
        run.log_config_text(config.text)
        run.log_statistics({"rows": 1200, "quarantined": {"null_user_id": 3}}, prefix="data")
        run.log_step_metrics({"train/loss": 0.61}, step=10)
        logged = run.log_model(model)
    version = register_version(target, run_id=run.run_id, model_uri=logged.model_uri, window="2022-04-09")

The run ends FAILED when its block raises, and ``versions.register_version`` refuses a run that is not FINISHED,
so a failed training never leaves a registered version.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import mlflow

from components.registry.store import (
    TrackingTarget,
    check_tracking_server,
    clear_unreachable_errors,
    client_for,
    resolve_tracking_uri,
)

if TYPE_CHECKING:
    import torch
    from matplotlib.figure import Figure

    from components.config import PipelineConfig

log = logging.getLogger(__name__)

# MLflow limits (mlflow/utils/validation.py): param values 6000 chars, tag values 5000.
_MAX_PARAM_CHARS = 6000
_MAX_TAG_CHARS = 5000
_BAD_KEY_CHARS = re.compile(r"[^A-Za-z0-9_\-. /]")


@dataclass(frozen=True)
class LoggedModel:
    model_uri: str  # models:/m-<id>
    model_id: str
    run_id: str


def _clean_key(key: str) -> str:
    return _BAD_KEY_CHARS.sub("_", key)


def flatten(stats: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mapping -> ``{"prefix/a/b": leaf}`` (keys joined by ``/``, invalid MLflow key characters -> ``_``)."""
    out: dict[str, Any] = {}
    for key, value in stats.items():
        name = _clean_key(f"{prefix}/{key}" if prefix else str(key))
        if isinstance(value, Mapping):
            out.update(flatten(value, name))
        else:
            out[name] = value
    return out


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _pip_requirements() -> list[str]:
    import cloudpickle
    import torch

    return [f"torch=={torch.__version__.split('+')[0]}", f"mlflow=={mlflow.__version__}",
            f"cloudpickle=={cloudpickle.__version__}"]


class TrackedRun:
    """The active MLflow run of one pipeline run; every method logs to this run only."""

    def __init__(self, target: TrackingTarget, run_id: str):
        self.target = target
        self.run_id = run_id
        self._client = client_for(target.tracking_uri)

    def log_config_text(self, text: str, *, artifact_file: str = "config/pipeline.config") -> None:
        """Logs the resolved config (protobuf text format) as an artifact."""
        self._client.log_text(self.run_id, text, artifact_file)

    def log_params(self, params: Mapping[str, Any], *, prefix: str = "") -> None:
        """Logs a (nested) mapping as params; values longer than MLflow's limit are cut."""
        flat = flatten(params, prefix)
        items = [mlflow.entities.Param(k, str(v)[:_MAX_PARAM_CHARS]) for k, v in flat.items()]
        for i in range(0, len(items), 100):  # log_batch takes at most 100 params per call
            self._client.log_batch(self.run_id, params=items[i:i + 100])

    def log_statistics(self, stats: Mapping[str, Any], *, prefix: str, step: int = 0) -> dict[str, Any]:
        """Logs a statistics dict: numeric leaves as metrics ``prefix/a/b``, text/bool leaves as params, the
        whole dict (lists such as a length histogram included) as ``statistics/<prefix>.json``.

        Returns: the flattened ``{key: leaf}`` mapping.
        """
        flat = flatten(stats, prefix)
        metrics = {k: float(v) for k, v in flat.items() if _is_number(v)}
        params = {k: v for k, v in flat.items() if isinstance(v, str | bool)}
        if metrics:
            self.log_step_metrics(metrics, step=step)
        if params:
            self.log_params(params)
        self._client.log_text(self.run_id, json.dumps(stats, indent=2, sort_keys=True, default=str),
                              f"statistics/{_clean_key(prefix) or 'stats'}.json")
        return flat

    def log_step_metrics(self, metrics: Mapping[str, float], *, step: int) -> None:
        """Logs ``{name: value}`` at ``step`` (one batch call; NaN is logged as NaN)."""
        now_ms = int(time.time() * 1000)
        items = [mlflow.entities.Metric(_clean_key(k), float(v), now_ms, int(step)) for k, v in metrics.items()]
        for i in range(0, len(items), 1000):
            self._client.log_batch(self.run_id, metrics=items[i:i + 1000])

    def log_figure(self, figure: Figure, artifact_file: str) -> None:
        """Logs a matplotlib figure as a PNG artifact (``artifact_file`` ends in ``.png``)."""
        self._client.log_figure(self.run_id, figure, artifact_file, save_kwargs={"dpi": 110})

    def log_curves(self, artifact_file: str, curves: Mapping[str, tuple[Sequence[float], Sequence[float]]], *,
                   xlabel: str = "step", ylabel: str = "", title: str = "") -> None:
        """Plots ``{label: (x, y)}`` line curves (e.g. loss, AUC per task) and logs the PNG."""
        from matplotlib.figure import Figure  # Figure without pyplot: Agg canvas, no global state

        fig = Figure(figsize=(6, 3.5))
        ax = fig.add_subplot()
        for label, (x, y) in curves.items():
            ax.plot(list(x), list(y), label=label)
        ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
        ax.grid(alpha=0.3)
        if len(curves) > 1:
            ax.legend()
        fig.tight_layout()
        self.log_figure(fig, artifact_file)

    def log_histogram(self, artifact_file: str, edges: Sequence[float], counts: Sequence[float], *,
                      xlabel: str = "", title: str = "") -> None:
        """Plots a histogram given ``edges [N+1]`` and ``counts [N]`` (e.g. sequence lengths) and logs the PNG."""
        from matplotlib.figure import Figure

        if len(edges) != len(counts) + 1:
            raise ValueError(f"histogram {artifact_file}: {len(edges)} edges for {len(counts)} counts; "
                             "expected len(edges) == len(counts) + 1")
        fig = Figure(figsize=(6, 3.5))
        ax = fig.add_subplot()
        ax.stairs(list(counts), list(edges), fill=True)
        ax.set(xlabel=xlabel, ylabel="count", title=title)
        fig.tight_layout()
        self.log_figure(fig, artifact_file)

    def log_model(self, model: torch.nn.Module, *, name: str = "model", input_example: Any = None,
                  signature: Any = None, pip_requirements: Sequence[str] | None = None,
                  code_paths: Sequence[str] | None = None) -> LoggedModel:
        """Logs ``model`` with ``mlflow.pytorch`` in pickle format (``torch.export`` fails on jagged inputs).

        The model's class must be importable where it is loaded (or shipped with ``code_paths``).
        ``pip_requirements`` default to the running torch/mlflow/cloudpickle versions, which skips MLflow's
        slow requirement inference. Returns the ``models:/m-<id>`` URI to pass to :func:`register_version`.
        """
        import mlflow.pytorch

        active = mlflow.active_run()
        if active is None or active.info.run_id != self.run_id:
            raise RuntimeError(f"log_model for run {self.run_id} must be called inside its start_run block "
                               f"(active run: {active.info.run_id if active else None})")
        info = mlflow.pytorch.log_model(
            model, name=name, serialization_format="pickle", input_example=input_example, signature=signature,
            pip_requirements=list(pip_requirements) if pip_requirements is not None else _pip_requirements(),
            code_paths=list(code_paths) if code_paths else None)
        return LoggedModel(info.model_uri, info.model_id, self.run_id)

    def log_ranker(self, model: torch.nn.Module, example: Any, *, name: str = "model") -> LoggedModel:
        """Logs a trained DlrmHSTU as a pyfunc model that scores sample rows (``components.registry.ranker``),
        with a signature and ``example`` (sample rows without labels) as its input example."""
        from components.registry.ranker import log_ranker

        active = mlflow.active_run()
        if active is None or active.info.run_id != self.run_id:
            raise RuntimeError(f"log_ranker for run {self.run_id} must be called inside its start_run block "
                               f"(active run: {active.info.run_id if active else None})")
        info = log_ranker(model, example, name=name, pip_requirements=_pip_requirements())
        return LoggedModel(info.model_uri, info.model_id, self.run_id)


@contextlib.contextmanager
def start_run(target: TrackingTarget, *, dag_id: str, dag_run_id: str, window: str,
              params: Mapping[str, Any] | None = None, run_name: str | None = None,
              tags: Mapping[str, str] | None = None) -> Iterator[TrackedRun]:
    """Starts the run of one DAG run, tagged ``dag_id``, ``dag_run_id`` and ``window``; ``params`` (e.g. the
    trigger's Params) are logged as params. System metrics are sampled when the config enables them.

    The run ends FINISHED when the block completes, FAILED when it raises (the exception propagates), KILLED
    on KeyboardInterrupt; a run that is not FINISHED can never be registered.
    """
    all_tags = {"dag_id": dag_id, "dag_run_id": dag_run_id, "window": window, **(tags or {})}
    name = run_name or f"{dag_id}.{window}"
    mlflow.set_tracking_uri(target.tracking_uri)
    with clear_unreachable_errors(target.tracking_uri):
        active = mlflow.start_run(experiment_id=target.experiment_id, run_name=name, tags=all_tags,
                                  log_system_metrics=target.log_system_metrics)
    status = "FAILED"
    try:
        run = TrackedRun(target, active.info.run_id)
        if params:
            run.log_params(params)
        yield run
        status = "FINISHED"
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    finally:
        mlflow.end_run(status=status)
        log.info("MLflow run %s ended %s", active.info.run_id, status)


# A run tagged with it shows nested under that run (what mlflow.start_run(parent_run_id=...) sets).
PARENT_RUN_TAG = "mlflow.parentRunId"


@contextlib.contextmanager
def start_parent_run(target: TrackingTarget, *, run_name: str, tags: Mapping[str, str]) -> Iterator[TrackedRun]:
    """A run grouping child runs (a tuning study's trials), ending like :func:`start_run`'s.

    Created through the client and never made MLflow's active run, so each child can still be opened with
    :func:`start_run` (which refuses to start while another run is active) tagged ``{PARENT_RUN_TAG: run_id}``.
    """
    client = client_for(target.tracking_uri)
    with clear_unreachable_errors(target.tracking_uri):
        run_id = client.create_run(target.experiment_id, run_name=run_name, tags=dict(tags)).info.run_id
    status = "FAILED"
    try:
        yield TrackedRun(target, run_id)
        status = "FINISHED"
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    finally:
        client.set_terminated(run_id, status=status)
        log.info("MLflow run %s ended %s", run_id, status)


def annotate_run(config: PipelineConfig, run_id: str, *, tags: Mapping[str, str],
                 texts: Mapping[str, str] | None = None) -> None:
    """Adds tags and small text artifacts (``{artifact_file: text}``) to a finished run."""
    uri = resolve_tracking_uri(config)
    check_tracking_server(uri)
    with clear_unreachable_errors(uri):
        client = client_for(uri)
        for key, value in tags.items():
            client.set_tag(run_id, key, str(value)[:_MAX_TAG_CHARS])
        for artifact_file, text in (texts or {}).items():
            client.log_text(run_id, text, artifact_file)
