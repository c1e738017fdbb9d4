"""Warehouses other than the DuckDB file: copying the loaded tables to PostgreSQL for dbt's postgres target."""

from salesos.warehouse.postgres import copy_raw_to_postgres, pg_dsn_from_env

__all__ = ["copy_raw_to_postgres", "pg_dsn_from_env"]
