"""Registered versions: a logged model becomes a version of the registered model, tagged with its run and
windows; versions are found by their tags, tagged, and loaded back (docs/design.md §7).

A version is created with all its tags in one store call (it exists fully tagged or not), and only from a
FINISHED run, so every artifact of its run was logged before it exists.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from components.registry.store import (
    TrackingTarget,
    check_tracking_server,
    clear_unreachable_errors,
    client_for,
    resolve_tracking_uri,
)

if TYPE_CHECKING:
    import torch

    from components.config import PipelineConfig

log = logging.getLogger(__name__)

_MAX_TAG_CHARS = 5000  # MLflow's limit on a model version tag's value


@dataclass(frozen=True)
class RegisteredVersion:
    name: str
    version: str
    run_id: str
    model_uri: str  # models:/NAME/VERSION


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
    """Loads a logged/registered torch model: ``models:/NAME/VERSION``, ``models:/NAME@alias`` or ``models:/m-<id>``.

    A trained DlrmHSTU is logged as a pyfunc ranker (``components.registry.ranker``): its torch module is returned.
    Any other model, and versions logged before the ranker existed, are ``mlflow.pytorch`` models.
    """
    import mlflow.pyfunc
    import mlflow.pytorch
    from mlflow.models import get_model_info

    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    with clear_unreachable_errors(tracking_uri):
        if "pytorch" in get_model_info(model_uri).flavors:
            return mlflow.pytorch.load_model(model_uri, map_location=map_location)
        module = mlflow.pyfunc.load_model(model_uri).unwrap_python_model().model
        return module.to(map_location) if map_location else module


def get_version(client: MlflowClient, name: str, version: str | int):
    """The ``ModelVersion``; ValueError naming the model and version when it does not exist."""
    try:
        return client.get_model_version(name, str(version))
    except MlflowException as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND", "INVALID_PARAMETER_VALUE"):
            raise ValueError(f"registered model {name!r} has no version {version!r}: {exc.message}") from None
        raise


def tag_version(client: MlflowClient, name: str, version: str, tags: Mapping[str, object]) -> None:
    """Sets ``tags`` on the version, each value cut to MLflow's limit."""
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, str(value)[:_MAX_TAG_CHARS])
