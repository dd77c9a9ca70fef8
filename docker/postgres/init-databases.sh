#!/usr/bin/env bash
# Runs once, on the first start of an empty data volume (/docker-entrypoint-initdb.d): creates one role and
# database for Airflow's metadata and one role with two databases for MLflow (tracking store, auth store).
# Passwords come from docker/.env; psql quotes them (:'var'), so any character is safe here.
set -euo pipefail
: "${AIRFLOW_DB_PASSWORD:?AIRFLOW_DB_PASSWORD is empty}"
: "${MLFLOW_DB_PASSWORD:?MLFLOW_DB_PASSWORD is empty}"

psql -v ON_ERROR_STOP=1 --username "${POSTGRES_USER}" --dbname postgres \
  -v airflow_pw="${AIRFLOW_DB_PASSWORD}" -v mlflow_pw="${MLFLOW_DB_PASSWORD}" <<'SQL'
CREATE ROLE airflow LOGIN PASSWORD :'airflow_pw';
CREATE DATABASE airflow OWNER airflow;
CREATE ROLE mlflow LOGIN PASSWORD :'mlflow_pw';
CREATE DATABASE mlflow OWNER mlflow;
CREATE DATABASE mlflow_auth OWNER mlflow;
REVOKE ALL ON DATABASE airflow, mlflow, mlflow_auth FROM PUBLIC;
SQL
