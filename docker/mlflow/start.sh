#!/usr/bin/env bash
# Starts the MLflow tracking server with authentication (`--app-name basic-auth`): renders basic_auth.ini with
# the auth database's URI from the environment into a private file, then execs `mlflow server`. The tracking
# store and the auth store are Postgres databases; artifacts are proxied by the server (/mlartifacts volume).
set -euo pipefail
: "${MLFLOW_DB_PASSWORD:?MLFLOW_DB_PASSWORD is empty: set it in docker/.env}"
: "${MLFLOW_AUTH_ADMIN_PASSWORD:?MLFLOW_AUTH_ADMIN_PASSWORD is empty: set it in docker/.env}"
: "${MLFLOW_FLASK_SERVER_SECRET_KEY:?MLFLOW_FLASK_SERVER_SECRET_KEY is empty: set MLFLOW_FLASK_SECRET_KEY in docker/.env}"
export MLFLOW_DB_HOST="${MLFLOW_DB_HOST:-postgres}"

config_dir="$(mktemp -d)"
export MLFLOW_AUTH_CONFIG_PATH="${config_dir}/basic_auth.ini"
(umask 077 && python - "${MLFLOW_AUTH_CONFIG_PATH}" <<'PY'
import os
import string
import sys

template = string.Template(open("/opt/hstu/docker/mlflow/basic_auth.ini.template", encoding="utf-8").read())
with open(sys.argv[1], "w", encoding="utf-8") as f:
    f.write(template.substitute(os.environ))
PY
)

export MLFLOW_BACKEND_STORE_URI="postgresql+psycopg2://mlflow:${MLFLOW_DB_PASSWORD}@${MLFLOW_DB_HOST}:5432/mlflow"
unset MLFLOW_DB_PASSWORD
exec mlflow server --app-name basic-auth \
  --artifacts-destination /mlartifacts \
  --host 0.0.0.0 --port 5000 "$@"
