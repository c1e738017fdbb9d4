"""The storage format of the DuckDB warehouse file, chosen so BI tools with DuckDB 1.x can read it as is.

DuckDB 2.0 writes new files in its own storage format, which the DuckDB 1.x bundled in many BI drivers
cannot open. A file created in the 1.4 format stays in it, whatever DuckDB 2.0 later writes into it (dbt
included). So the pipeline creates its warehouse in the 1.4 format when the BI copy is wanted: the copy
is a byte copy of the published file instead of a `COPY FROM DATABASE` of every table each night (about
20 s of the publish step at scale M; benchmarks/results.md). A warehouse made earlier in the 2.0 format is
converted once, by the first run that copies it.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import duckdb

from salesos.warehouse.duckdb_limits import apply_memory_limit

log = logging.getLogger(__name__)

COMPAT_STORAGE_VERSION = "v1.4.0"


def sql_str(value: str | Path) -> str:
    """A SQL string literal: a path with a `'` in it (`/data/o'brien/`) is a path, not a syntax error."""
    return "'" + str(value).replace("'", "''") + "'"


def sql_ident(name: str) -> str:
    """A quoted SQL identifier (a catalog named after a file stem may hold any character)."""
    return '"' + name.replace('"', '""') + '"'


def connect_warehouse(path: Path, compat: bool) -> duckdb.DuckDBPyConnection:
    """A read-write connection under the memory cap; a new file is created in the 1.4 format if `compat`."""
    config = {"storage_compatibility_version": COMPAT_STORAGE_VERSION} if compat else {}
    con = duckdb.connect(str(path), config=config)
    apply_memory_limit(con)
    return con


def storage_version(path: Path) -> str:
    """The storage format a DuckDB file was written in, e.g. `v1.4.0` or `v2.0.0` (read-only, no lock held)."""
    con = duckdb.connect()
    try:
        con.execute(f"attach {sql_str(path)} as f (read_only)")
        tags = con.execute("select tags from duckdb_databases() where database_name = 'f'").fetchall()[0][0]
    finally:
        con.close()
    return str(tags.get("storage_version", "")).rstrip("+")


def is_compat(path: Path) -> bool:
    """Whether DuckDB 1.4 can open the file."""
    return storage_version(path) == COMPAT_STORAGE_VERSION


def copy_database(source: Path, target: Path, version: str = COMPAT_STORAGE_VERSION) -> Path:
    """Write every schema, table and view of `source` into a new file at `target` in `version`'s format.

    The copy keeps the catalog name of the source (DuckDB names it after the file stem, and views refer to
    it), so `target` must have the same file name; it is written beside `target` and renamed into place.
    """
    if source.name != target.name:
        raise ValueError(f"a copy of {source} must keep its file name (views name the catalog), not {target.name}")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp_dir = target.parent / f".building-{os.getpid()}"
    shutil.rmtree(tmp_dir, ignore_errors=True)
    tmp_dir.mkdir()
    tmp = tmp_dir / target.name
    con = duckdb.connect()
    try:
        apply_memory_limit(con)  # under the run's cap, spilling beside the copy (a warehouse can outgrow memory)
        con.execute(f"set temp_directory = {sql_str(tmp_dir / 'spill')}")
        con.execute("set enable_progress_bar = false")  # a task log is no terminal
        con.execute(f"attach {sql_str(source)} as {sql_ident(source.stem)} (read_only)")
        con.execute(f"attach {sql_str(tmp)} as converted (storage_version {sql_str(version)})")
        con.execute(f"copy from database {sql_ident(source.stem)} to converted")
        con.execute("detach converted")
    finally:
        con.close()
    os.replace(tmp, target)
    shutil.rmtree(tmp_dir, ignore_errors=True)
    return target


def convert_to_compat(path: Path) -> bool:
    """Rewrite a warehouse file in the 1.4 format in place (atomically); False when it already is."""
    version = storage_version(path)
    if version == COMPAT_STORAGE_VERSION:
        return False
    log.warning("converting %s from DuckDB storage %s to %s, once, so BI tools with DuckDB 1.x can read it",
                path, version, COMPAT_STORAGE_VERSION)
    copy_database(path, path)  # written beside it, then renamed over it
    return True
