#!/usr/bin/env bash
# One-shot initialisation, run by the `airflow-init` compose service before any other Airflow service starts
# (and by tests/deploy/test_services_native.py): migrate the metadata database, create the pool that
# serialises writes to the DuckDB warehouse, and (postgres target only) create the warehouse database.
# Every step is idempotent: running it again is safe.
set -euo pipefail

echo "salesos init: airflow $(airflow version)"
airflow db migrate
# DuckDB allows one writing process per database file: tasks that write the warehouse use this pool.
airflow pools set duckdb_writer 1 "DuckDB allows one writing process"

if [[ "${SALESOS_DBT_TARGET:-duckdb}" == "postgres" ]]; then
    python - <<'PY'
import os
import psycopg2
from psycopg2 import sql

dbname = os.environ.get("SALESOS_PG_DATABASE", "salesos")
con = psycopg2.connect(
    host=os.environ.get("SALESOS_PG_HOST", "127.0.0.1"),
    port=int(os.environ.get("SALESOS_PG_PORT", "5432")),
    user=os.environ.get("SALESOS_PG_USER", "postgres"),
    password=os.environ.get("SALESOS_PG_PASSWORD", ""),
    dbname="postgres",
)
con.autocommit = True
with con.cursor() as cur:
    cur.execute("select 1 from pg_database where datname = %s", (dbname,))
    if cur.fetchone() is None:
        cur.execute(sql.SQL("create database {}").format(sql.Identifier(dbname)))
        print(f"salesos init: created warehouse database {dbname}")
con.close()
PY
fi
echo "salesos init: done"
