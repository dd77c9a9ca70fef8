#!/usr/bin/env bash
# Entry point of the Airflow image. When AIRFLOW_ADMIN_USERNAME is set (the api-server), it writes the Simple
# auth manager's users and passwords from the environment (docker/.env) before starting: nothing is baked
# into the image, nothing is generated, and a changed .env takes effect on the next container start.
set -euo pipefail

if [[ -n "${AIRFLOW_ADMIN_USERNAME:-}" ]]; then
  : "${AIRFLOW_ADMIN_PASSWORD:?AIRFLOW_ADMIN_PASSWORD is empty: set it in docker/.env}"
  passwords_file="${AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE:-${AIRFLOW_HOME}/simple_auth_manager_passwords.json}"
  export AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE="${passwords_file}"
  users="${AIRFLOW_ADMIN_USERNAME}:admin"
  if [[ -n "${AIRFLOW_USER_USERNAME:-}" ]]; then
    : "${AIRFLOW_USER_PASSWORD:?AIRFLOW_USER_PASSWORD is empty: set it in docker/.env}"
    users="${users},${AIRFLOW_USER_USERNAME}:user"
  fi
  export AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS="${users}"
  # JSON-encode in Python so that any character is safe in a password; the file is readable by us only.
  (umask 077 && python - "${passwords_file}" <<'PY'
import json
import os
import sys

users = {os.environ["AIRFLOW_ADMIN_USERNAME"]: os.environ["AIRFLOW_ADMIN_PASSWORD"]}
if os.environ.get("AIRFLOW_USER_USERNAME"):
    users[os.environ["AIRFLOW_USER_USERNAME"]] = os.environ["AIRFLOW_USER_PASSWORD"]
with open(sys.argv[1], "w", encoding="utf-8") as f:
    json.dump(users, f)
PY
  )
  unset AIRFLOW_ADMIN_PASSWORD AIRFLOW_USER_PASSWORD
fi

exec "$@"
