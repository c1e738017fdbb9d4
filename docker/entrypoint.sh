#!/usr/bin/env bash
# Entrypoint of every salesos Airflow container (and of the native test in tests/deploy, which runs the
# compose commands through this same script): prepare the simple auth manager's password file from the
# environment, create the salesos folders, refuse a Celery setup the image cannot run, then exec the command.
set -euo pipefail

# Simple auth manager: write {"<user>": "<password>"} from AIRFLOW_ADMIN_USERNAME / AIRFLOW_ADMIN_PASSWORD so the
# password comes from .env instead of being generated and printed to the logs. Written atomically.
pw_file="${AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE:-}"
if [[ -n "${AIRFLOW_ADMIN_PASSWORD:-}" && -n "${pw_file}" ]]; then
    mkdir -p "$(dirname "${pw_file}")"
    python - "${pw_file}" <<'PY'
import json, os, sys, tempfile
path = sys.argv[1]
data = {os.environ.get("AIRFLOW_ADMIN_USERNAME") or "admin": os.environ["AIRFLOW_ADMIN_PASSWORD"]}
fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path) or ".", prefix=".pw-")
with os.fdopen(fd, "w") as fh:
    json.dump(data, fh)
    fh.write("\n")
os.chmod(tmp, 0o600)
os.replace(tmp, path)
PY
fi

# Local salesos folders (a URL such as s3://bucket/exports is left alone).
for dir in "${SALESOS_EXPORTS:-}" "${SALESOS_DATA_DIR:-}" "$(dirname "${SALESOS_WAREHOUSE:-.}")"; do
    if [[ -n "${dir}" && "${dir}" != *"://"* ]]; then
        mkdir -p "${dir}" 2>/dev/null || true
    fi
done

# CeleryExecutor needs the Celery provider in the image; fail loudly instead of crash-looping.
if [[ "${AIRFLOW__CORE__EXECUTOR:-}" == *Celery* ]]; then
    if ! python -c "import airflow.providers.celery, redis" 2>/dev/null; then
        echo "AIRFLOW__CORE__EXECUTOR=${AIRFLOW__CORE__EXECUTOR} but apache-airflow-providers-celery (and redis) are" \
             "not installed in this image: see docs/deployment.md, 'CeleryExecutor'." >&2
        exit 64
    fi
fi

exec "$@"
