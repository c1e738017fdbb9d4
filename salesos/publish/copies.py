"""Copies made at publish time for readers that cannot use the warehouse file itself.

- BI tools: DuckDB 2.0 writes files that the DuckDB 1.x bundled in many BI drivers cannot open. A copy
  in the 1.4 storage format is published beside the warehouse, under the same file name (DuckDB names
  the catalog after the file stem, and views refer to it) in a `duckdb-v1.4/` folder.
- Finance: the marts and forecast tables as Parquet and CSV under a versioned path per run,
  `exports/as_of=<date>/run=<run_id>/<schema>.<table>.parquet`, written once and never overwritten.
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
COMPAT_DIR = "duckdb-v1.4"
EXPORT_SCHEMAS = ("marts", "forecasts")


def compat_path(warehouse: Path) -> Path:
    return warehouse.parent / COMPAT_DIR / warehouse.name


def write_compat_copy(source: Path, target: Path) -> Path:
    """Copy every schema, table and view of `source` into a DuckDB 1.4-readable file at `target`, atomically."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp_dir = target.parent / f".building-{os.getpid()}"
    shutil.rmtree(tmp_dir, ignore_errors=True)
    tmp_dir.mkdir()
    tmp = tmp_dir / target.name
    catalog = source.stem
    con = duckdb.connect()
    try:
        apply_memory_limit(con)  # under the run's cap, spilling beside the copy (a warehouse can outgrow memory)
        con.execute(f"set temp_directory = '{tmp_dir / 'spill'}'")
        con.execute(f"attach '{source}' as \"{catalog}\" (read_only)")
        con.execute(f"attach '{tmp}' as compat (storage_version '{COMPAT_STORAGE_VERSION}')")
        con.execute(f'copy from database "{catalog}" to compat')
        con.execute("detach compat")
    finally:
        con.close()
    os.replace(tmp, target)
    shutil.rmtree(tmp_dir, ignore_errors=True)
    return target


def export_tables(warehouse: Path, out_dir: Path, schemas: tuple[str, ...] = EXPORT_SCHEMAS) -> list[Path]:
    """Write each table of `schemas` as Parquet and CSV into out_dir (a new folder per run)."""
    tmp_dir = out_dir.with_name(out_dir.name + ".partial")
    shutil.rmtree(tmp_dir, ignore_errors=True)
    tmp_dir.mkdir(parents=True)
    written: list[Path] = []
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        apply_memory_limit(con)
        tables = con.execute(
            "select table_schema, table_name from information_schema.tables "
            f"where table_type = 'BASE TABLE' and table_schema in ({', '.join('?' for _ in schemas)}) order by 1, 2",
            list(schemas),
        ).fetchall()
        for schema, table in tables:
            for fmt, opts in (("parquet", "(format parquet, compression zstd)"), ("csv", "(format csv, header)")):
                path = tmp_dir / f"{schema}.{table}.{fmt}"
                con.execute(f"copy \"{schema}\".\"{table}\" to '{path}' {opts}")
                written.append(out_dir / path.name)
    finally:
        con.close()
    shutil.rmtree(out_dir, ignore_errors=True)
    tmp_dir.rename(out_dir)
    log.info("exported %d files to %s", len(written), out_dir)
    return written
