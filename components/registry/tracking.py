"""MLflow tracking: where runs go, what a run logs, and how a trained model becomes a registered version.

docs/design.md §7. One experiment per pipeline, one run per DAG run (tagged ``dag_id``, ``dag_run_id``, ``window``),
one registered model (default ``dlrm_hstu``) whose versions are tagged with their run and windows.

Typical use (the trainer)::

    target = connect(config)                        # resolves the URI, checks the server, gets the experiment
    with start_run(target, dag_id=..., dag_run_id=..., window="2022-04-09") as run:
        run.log_config_text(config.text)
        run.log_statistics({"rows": 1200, "quarantined": {"null_user_id": 3}}, prefix="data")
        run.log_step_metrics({"train/loss": 0.61}, step=10)
        logged = run.log_model(model)
    version = register_version(target, run_id=run.run_id, model_uri=logged.model_uri, window="2022-04-09")

``register_version`` refuses a run that is not FINISHED, so a training that raised inside the ``with`` block
(the run ends FAILED) never leaves a registered version, and a version only ever exists once every artifact
of its run was logged. The version is created with all its tags in one call: it exists fully tagged or not.

Where runs go (:func:`resolve_tracking_uri`): ``tracking_config.tracking_uri``, else ``$MLFLOW_TRACKING_URI``,
else the embedded default ``sqlite:///<abs work_dir>/mlflow.db`` with artifacts in ``<abs work_dir>/mlartifacts``
(set on the experiment when it is created, so artifacts never land in the caller's working directory).

A tracking server that is down is reported by :func:`check_tracking_server` within its timeout as
``TrackingUnavailableError("MLflow tracking server at <uri> is unreachable: ...")``, without MLflow's HTTP
retries (which back off for minutes). Only this module and ``gate.py`` import mlflow.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import re
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

import mlflow
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

if TYPE_CHECKING:
    import torch
    from matplotlib.figure import Figure

    from components.config import PipelineConfig

log = logging.getLogger(__name__)

DEFAULT_DB_NAME = "mlflow.db"
DEFAULT_ARTIFACT_DIR = "mlartifacts"
LOCK_TIMEOUT_S = 120.0
# MLflow limits (mlflow/utils/validation.py): param values 6000 chars, tag values 5000 (model version tags).
_MAX_PARAM_CHARS = 6000
_BAD_KEY_CHARS = re.compile(r"[^A-Za-z0-9_\-. /]")


class TrackingUnavailableError(RuntimeError):
    """The tracking store cannot be reached (server down, wrong port, unwritable sqlite folder)."""


@dataclass(frozen=True)
class TrackingTarget:
    """A resolved tracking store and the pipeline's experiment in it."""

    tracking_uri: str
    experiment_id: str
    experiment_name: str
    artifact_location: str | None
    log_system_metrics: bool
    lock_path: str


@dataclass(frozen=True)
class LoggedModel:
    model_uri: str  # models:/m-<id>
    model_id: str
    run_id: str


@dataclass(frozen=True)
class RegisteredVersion:
    name: str
    version: str
    run_id: str
    model_uri: str  # models:/NAME/VERSION


# ---------------------------------------------------------------- where runs go


def resolve_tracking_uri(config: PipelineConfig) -> str:
    """The config's tracking URI, else ``$MLFLOW_TRACKING_URI``, else ``sqlite:///<abs work_dir>/mlflow.db``."""
    if config.tracking.tracking_uri:
        return config.tracking.tracking_uri
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    return f"sqlite:///{Path(config.data.work_dir).resolve() / DEFAULT_DB_NAME}"


def _sqlite_path(uri: str) -> Path | None:
    if not uri.startswith("sqlite:///"):
        return None
    path = uri[len("sqlite:///"):]
    return None if path in ("", ":memory:") else Path(path)


def _default_artifact_location(uri: str) -> str | None:
    """Artifacts beside a sqlite store; ``None`` lets a server (``--artifacts-destination``) decide."""
    db = _sqlite_path(uri)
    return None if db is None else str(db.resolve().parent / DEFAULT_ARTIFACT_DIR)


def lock_path_for(uri: str, work_dir: str) -> Path:
    """The lock file guarding registry alias moves: beside a sqlite db (shared by all its users), else work_dir."""
    db = _sqlite_path(uri)
    if db is not None:
        return db.resolve().with_name(db.name + ".registry.lock")
    return Path(work_dir).resolve() / "locks" / "mlflow-registry.lock"


@contextlib.contextmanager
def exclusive_lock(path: str | Path, *, timeout_s: float = LOCK_TIMEOUT_S) -> Iterator[None]:
    """An exclusive ``flock`` on ``path`` (created if absent); excludes other processes and other threads.

    ``flock`` locks belong to an open file description, so two ``open()`` calls in one process also exclude
    each other. Raises TimeoutError naming the file after ``timeout_s``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + timeout_s
    with open(path, "a+") as fh:
        while True:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"registry lock {path} still held by another process after {timeout_s:.0f} s; "
                                       "if no gate/promote is running, the holder died: its lock is released "
                                       "with its process") from None
                time.sleep(0.05)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def check_tracking_server(tracking_uri: str, *, timeout_s: float = 5.0) -> None:
    """Raises TrackingUnavailableError unless the store answers within ``timeout_s`` (no retries).

    http(s): ``GET <uri>/health`` must answer (any status below 500). sqlite: the db's folder must exist or be
    creatable. Other stores (databases, databricks) are not probed here.
    """
    scheme = urlparse(tracking_uri).scheme
    if scheme in ("http", "https"):
        url = tracking_uri.rstrip("/") + "/health"
        try:
            with urllib.request.urlopen(url, timeout=timeout_s) as resp:  # noqa: S310 (http(s) only)
                resp.read(64)
        except urllib.error.HTTPError as exc:
            if exc.code >= 500:
                raise TrackingUnavailableError(f"MLflow tracking server at {tracking_uri} is unreachable: "
                                               f"{url} answered HTTP {exc.code}") from None
        except (urllib.error.URLError, OSError) as exc:
            why = getattr(exc, "reason", exc)
            raise TrackingUnavailableError(
                f"MLflow tracking server at {tracking_uri} is unreachable: {why} (timeout {timeout_s:g} s). "
                "Start it (mlflow server ...) or point tracking_config.tracking_uri / MLFLOW_TRACKING_URI "
                "at a running one") from None
        return
    db = _sqlite_path(tracking_uri)
    if db is not None:
        try:
            db.resolve().parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise TrackingUnavailableError(f"MLflow tracking store at {tracking_uri} is unreachable: cannot "
                                           f"create folder {db.parent}: {exc.strerror}") from None


def tracking_server_reachable(tracking_uri: str, *, timeout_s: float = 5.0) -> bool:
    """True when :func:`check_tracking_server` passes."""
    try:
        check_tracking_server(tracking_uri, timeout_s=timeout_s)
    except TrackingUnavailableError as exc:
        log.warning("%s", exc)
        return False
    return True


@contextlib.contextmanager
def clear_unreachable_errors(tracking_uri: str) -> Iterator[None]:
    """Turns MLflow's connection failures (after its retries) into one TrackingUnavailableError."""
    try:
        yield
    except MlflowException as exc:
        text = str(exc)
        if any(s in text for s in ("Max retries exceeded", "Connection refused", "Failed to establish")):
            raise TrackingUnavailableError(f"MLflow tracking server at {tracking_uri} is unreachable: "
                                           f"{text.splitlines()[0][:300]}") from None
        raise


def client_for(tracking_uri: str) -> MlflowClient:
    """An MlflowClient bound to ``tracking_uri`` (tracking and registry), no global state."""
    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


def connect(config: PipelineConfig, *, timeout_s: float = 5.0) -> TrackingTarget:
    """Resolves the URI, checks it, makes it MLflow's current URI and gets or creates the experiment.

    Raises TrackingUnavailableError when the store is unreachable.
    """
    uri = resolve_tracking_uri(config)
    check_tracking_server(uri, timeout_s=timeout_s)
    lock = lock_path_for(uri, config.data.work_dir)
    name = config.tracking.experiment_name
    artifacts = _default_artifact_location(uri)
    # The lock also serialises the first creation of a sqlite db (its schema migration is not concurrent-safe).
    with exclusive_lock(lock), clear_unreachable_errors(uri):
        client = client_for(uri)
        exp = client.get_experiment_by_name(name)
        if exp is None:
            try:
                exp_id = client.create_experiment(name, artifact_location=artifacts)
            except MlflowException as exc:  # created by another host between our read and write
                if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                    raise
                exp_id = client.get_experiment_by_name(name).experiment_id
            log.info("created MLflow experiment %r (id %s) at %s, artifacts in %s", name, exp_id, uri, artifacts)
        else:
            exp_id, artifacts = exp.experiment_id, exp.artifact_location
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return TrackingTarget(uri, exp_id, name, artifacts, config.tracking.log_system_metrics, str(lock))


# ---------------------------------------------------------------- one run


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


# ---------------------------------------------------------------- registry


def annotate_run(config: PipelineConfig, run_id: str, *, tags: Mapping[str, str],
                 texts: Mapping[str, str] | None = None) -> None:
    """Adds tags and small text artifacts (``{artifact_file: text}``) to a finished run."""
    uri = resolve_tracking_uri(config)
    check_tracking_server(uri)
    with clear_unreachable_errors(uri):
        client = client_for(uri)
        for key, value in tags.items():
            client.set_tag(run_id, key, str(value)[:5000])
        for artifact_file, text in (texts or {}).items():
            client.log_text(run_id, text, artifact_file)


def find_version(config: PipelineConfig, *, tags: Mapping[str, str]) -> str | None:
    """The newest version of the registered model carrying all of ``tags`` (e.g. this DAG run's window), or
    None: lets a retried task find what its earlier attempt registered instead of registering it twice."""
    uri = resolve_tracking_uri(config)
    check_tracking_server(uri)
    name = config.promotion.registered_model_name
    with clear_unreachable_errors(uri):
        try:
            versions = client_for(uri).search_model_versions(f"name = '{name}'")
        except MlflowException:
            return None
    matches = [int(v.version) for v in versions if all(v.tags.get(k) == str(t) for k, t in tags.items())]
    return str(max(matches)) if matches else None


def model_version_uri(name: str, version: str | int) -> str:
    return f"models:/{name}/{version}"


def model_alias_uri(name: str, alias: str) -> str:
    return f"models:/{name}@{alias}"


def register_version(target: TrackingTarget, *, run_id: str, model_uri: str, window: str,
                     train_windows: Sequence[str] = (), model_name: str = "dlrm_hstu",
                     tags: Mapping[str, str] | None = None) -> RegisteredVersion:
    """Registers ``model_uri`` (from :meth:`TrackedRun.log_model`) as a new version of ``model_name``.

    Call it after the ``start_run`` block: the run must be FINISHED. The version is created with its tags
    (``run_id``, ``window``, ``train_windows``, ``dag_id``, ``dag_run_id`` + ``tags``) in one store call.
    Raises ValueError for an unfinished/failed run or a model logged by another run.
    """
    client = client_for(target.tracking_uri)
    with clear_unreachable_errors(target.tracking_uri):
        run = client.get_run(run_id)
        if run.info.status != "FINISHED":
            raise ValueError(f"run {run_id} has status {run.info.status}; only a FINISHED run registers a version "
                             f"of {model_name} (register after the start_run block, docs/design.md §7)")
        model_id = model_uri.removeprefix("models:/")
        logged = client.get_logged_model(model_id)
        if logged.source_run_id != run_id:
            raise ValueError(f"model {model_uri} was logged by run {logged.source_run_id}, not by run {run_id}")
        version_tags = {"run_id": run_id, "window": window, "train_windows": ",".join(train_windows),
                        "dag_id": run.data.tags.get("dag_id", ""),
                        "dag_run_id": run.data.tags.get("dag_run_id", ""), **(tags or {})}
        try:
            client.create_registered_model(model_name, description="DlrmHSTU ranking model (docs/design.md §7)")
        except MlflowException as exc:
            if exc.error_code not in ("RESOURCE_ALREADY_EXISTS", "ALREADY_EXISTS"):
                raise
        mv = client.create_model_version(model_name, source=model_uri, run_id=run_id, tags=version_tags,
                                         model_id=model_id)
    log.info("registered %s version %s from run %s (window %s)", model_name, mv.version, run_id, window)
    return RegisteredVersion(model_name, str(mv.version), run_id, model_version_uri(model_name, mv.version))


def load_model(model_uri: str, *, tracking_uri: str, map_location: str | None = None) -> torch.nn.Module:
    """Loads a logged/registered torch model: ``models:/NAME/VERSION``, ``models:/NAME@alias`` or ``models:/m-<id>``."""
    import mlflow.pytorch

    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    with clear_unreachable_errors(tracking_uri):
        return mlflow.pytorch.load_model(model_uri, map_location=map_location)

