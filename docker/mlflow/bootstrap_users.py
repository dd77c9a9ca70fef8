"""Creates or updates the pipeline's own MLflow user, logged in as the MLflow admin.

Run by the compose service ``mlflow-init`` after the tracking server is healthy. Idempotent: a missing user is
created, an existing one gets the password from the environment, so rotating ``MLFLOW_PIPELINE_PASSWORD`` in
``docker/.env`` and re-running ``docker compose up -d`` is the whole rotation. The pipeline user is not an
admin: with ``default_permission = READ`` it can read everything and manages what it creates (its
experiment and the registered model).

Environment: MLFLOW_TRACKING_URI; MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD (the admin);
MLFLOW_PIPELINE_USERNAME / MLFLOW_PIPELINE_PASSWORD (the user to ensure).
"""

from __future__ import annotations

import logging
import os
import sys

log = logging.getLogger(__name__)


def _required(name: str) -> str:
    value = os.environ.get(name, "")
    if not value:
        raise SystemExit(f"{name} is empty: set it in docker/.env")
    return value


def ensure_pipeline_user(tracking_uri: str, username: str, password: str) -> str:
    """Returns "created" or "updated" after making ``username`` log in with ``password``."""
    from mlflow.exceptions import RestException
    from mlflow.server.auth.client import AuthServiceClient

    client = AuthServiceClient(tracking_uri)
    try:
        client.get_user(username)
    except RestException as err:
        if err.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise
        client.create_user(username, password)
        return "created"
    client.update_user_password(username, password)
    return "updated"


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    uri = _required("MLFLOW_TRACKING_URI")
    _required("MLFLOW_TRACKING_USERNAME")
    _required("MLFLOW_TRACKING_PASSWORD")
    username = _required("MLFLOW_PIPELINE_USERNAME")
    action = ensure_pipeline_user(uri, username, _required("MLFLOW_PIPELINE_PASSWORD"))
    log.info("MLflow user %r %s at %s", username, action, uri)
    return 0


if __name__ == "__main__":
    sys.exit(main())
