"""One memory cap for every DuckDB connection the pipeline opens, so a big night spills instead of swelling.

DuckDB's default cap is 80% of the machine's memory; a nightly step that reads 10M-row exports then
holds gigabytes. `SALESOS_DUCKDB_MEMORY_LIMIT` (default 4GB, the same default as
`dbt_project/profiles.yml`) caps the loader, the validation and dbt alike; beyond it DuckDB spills to
its temp directory beside the database file.
"""

from __future__ import annotations

import os

import duckdb

DEFAULT_MEMORY_LIMIT = "4GB"
MEMORY_LIMIT_ENV = "SALESOS_DUCKDB_MEMORY_LIMIT"


def memory_limit_setting() -> str:
    """The configured cap (`SALESOS_DUCKDB_MEMORY_LIMIT`, else 4GB)."""
    return os.environ.get(MEMORY_LIMIT_ENV, "").strip() or DEFAULT_MEMORY_LIMIT


def apply_memory_limit(con: duckdb.DuckDBPyConnection) -> str:
    """Set the cap on `con`; returns it."""
    limit = memory_limit_setting()
    con.execute("set memory_limit = ?", [limit])
    return limit
