"""Where runs go: the tracking store, whether it answers, the lock that serialises registry writes, and the
pipeline's experiment in it (docs/design.md §7).

Where runs go (:func:`resolve_tracking_uri`): ``tracking_config.tracking_uri``, else ``$MLFLOW_TRACKING_URI``,
else the embedded default ``sqlite:///<abs work_dir>/mlflow.db`` with artifacts in ``<abs work_dir>/mlartifacts``
(set on the experiment when it is created, so artifacts never land in the caller's working directory).

A tracking server that is down is reported by :func:`check_tracking_server` within its timeout as
``TrackingUnavailableError("MLflow tracking server at <uri> is unreachable: ...")``, without MLflow's HTTP
retries (which back off for minutes).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

import mlflow
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

if TYPE_CHECKING:
    from components.config import PipelineConfig

log = logging.getLogger(__name__)

DEFAULT_DB_NAME = "mlflow.db"
DEFAULT_ARTIFACT_DIR = "mlartifacts"
LOCK_TIMEOUT_S = 120.0


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
