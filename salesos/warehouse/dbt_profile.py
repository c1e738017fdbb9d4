"""The environment of a dbt subprocess: what `dbt_project/profiles.yml` reads to find the warehouse.

profiles.yml takes its connection from environment variables (SALESOS_WAREHOUSE_PATH, SALESOS_DBT_TARGET,
the SALESOS_PG_* of salesos.warehouse.postgres, the SALESOS_SPARK_* of salesos.warehouse.spark,
SALESOS_DUCKDB_MEMORY_LIMIT): that is dbt's own way to configure a connection, so the child gets the
deployment's environment plus the run's warehouse, target and (spark) its Spark folder.
This is connection configuration, one of the layers allowed to touch `os.environ` (docs/architecture.md).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def dbt_env(warehouse: Path, target: str, spark_dir: Path | None = None) -> dict[str, str]:
    """The deployment's environment with the run's warehouse file and dbt target set (and its Spark folder)."""
    env = dict(os.environ)
    if spark_dir is not None:
        env["SALESOS_SPARK_DIR"] = str(spark_dir)
    env["SALESOS_WAREHOUSE_PATH"] = str(warehouse)
    env["SALESOS_DBT_TARGET"] = target
    env.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
    return env


@contextmanager
def dbt_environment(env: dict[str, str]) -> Iterator[None]:
    """The process environment set to `env` while dbt runs in this process (dbt reads profiles.yml's
    `env_var()` from os.environ), then restored as it was."""
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)
