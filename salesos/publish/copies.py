"""Copies made at publish time for readers that cannot use the warehouse file itself.

- BI tools: DuckDB 2.0 writes files that the DuckDB 1.x bundled in many BI drivers cannot open. A copy
  in the 1.4 storage format is published beside the warehouse, under the same file name (DuckDB names
  the catalog after the file stem, and views refer to it) in a `duckdb-v1.4/` folder. The pipeline keeps
  its warehouse in that format (`salesos.warehouse.storage`), so the copy is a plain file copy.
- Finance: the marts and forecast tables as Parquet and CSV under a versioned path per run,
  `exports/as_of=<date>/run=<run_id>/<schema>.<table>.parquet`, written once and never overwritten;
  `exports/current.json` names the folder of the live version (salesos.publish.versions).
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import duckdb

from salesos.warehouse.duckdb_limits import apply_memory_limit
from salesos.warehouse.storage import copy_database, is_compat, sql_ident, sql_str

log = logging.getLogger(__name__)

# The BI copy's folder beside the warehouse (salesos.publish.versions publishes it with the warehouse).
COMPAT_DIR = "duckdb-v1.4"


def compat_path(warehouse: Path) -> Path:
    """The BI copy of a warehouse: same file name (DuckDB names the catalog after it), in `duckdb-v1.4/`."""
    return warehouse.parent / COMPAT_DIR / warehouse.name


__all__ = ["COMPAT_DIR", "EXPORT_SCHEMAS", "compat_path", "export_tables", "write_compat_copy"]
EXPORT_SCHEMAS = ("marts", "forecasts")


def write_compat_copy(source: Path, target: Path) -> Path:
    """Put a DuckDB 1.4-readable copy of `source` at `target`, atomically.

    A warehouse already in the 1.4 format (the pipeline creates it so) is copied byte for byte, which
    costs one sequential file copy; an older 2.0-format file is rewritten table by table.
    """
    if not is_compat(source):
        return copy_database(source, target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".building-{os.getpid()}-{target.name}"
    try:
        shutil.copyfile(source, tmp)  # an independent file: a reader holding it never locks the warehouse
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def export_tables(warehouse: Path, out_dir: Path, schemas: tuple[str, ...] = EXPORT_SCHEMAS) -> list[Path]:
    """Write each table of `schemas` as Parquet and CSV into out_dir, a new folder (an existing one is refused)."""
    if out_dir.exists():
        raise FileExistsError(f"{out_dir} exists: finance exports are written once and never overwritten")
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
            name = f"{schema}.{table}"
            if "/" in name or "\\" in name or any(ord(c) < 32 for c in name):
                raise ValueError(f"{warehouse}: table {name!r} cannot name a file; nothing was exported")
            for fmt, opts in (("parquet", "(format parquet, compression zstd)"), ("csv", "(format csv, header)")):
                path = tmp_dir / f"{schema}.{table}.{fmt}"
                con.execute(f"copy {sql_ident(schema)}.{sql_ident(table)} to {sql_str(path)} {opts}")
                written.append(out_dir / path.name)
    finally:
        con.close()
    tmp_dir.rename(out_dir)
    log.info("exported %d files to %s", len(written), out_dir)
    return written
