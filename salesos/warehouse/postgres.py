"""Copy the loader's tables (raw, quarantine, forecasts) from a DuckDB warehouse file into PostgreSQL.

dbt's `postgres` target builds the same models as the DuckDB target, but it reads its sources from the
database it builds in. The loader (salesos.extract.load) and the forecast step write DuckDB only, so this
module moves their tables across: every table of the given schemas is recreated in Postgres with the same
column names and equivalent types, and its rows are streamed with `COPY ... FROM STDIN` in batches, so memory
stays bounded whatever the table size. Each table is copied in its own transaction: a reader sees the old
rows or the new ones, never a half-loaded table.

DuckDB's postgres extension is not used (it is downloaded at run time); only psycopg2, which dbt-postgres
already brings, is needed.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Iterator, Sequence
from datetime import date, datetime, time
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

import duckdb
import psycopg2
from psycopg2 import sql
from psycopg2.extensions import make_dsn

log = logging.getLogger(__name__)

DEFAULT_SCHEMAS = ("raw", "quarantine", "forecasts")
BATCH_ROWS = 10_000

# The SALESOS_PG_* variables dbt_project/profiles.yml reads for its postgres target, with the same defaults.
PG_ENV_DEFAULTS = {
    "host": ("SALESOS_PG_HOST", "127.0.0.1"),
    "port": ("SALESOS_PG_PORT", "5432"),
    "user": ("SALESOS_PG_USER", "postgres"),
    "password": ("SALESOS_PG_PASSWORD", ""),
    "dbname": ("SALESOS_PG_DATABASE", "salesos"),
}

# DuckDB type name (as information_schema.columns.data_type spells it) -> PostgreSQL type.
_TYPES = {
    "VARCHAR": "text",
    "JSON": "json",
    "BOOLEAN": "boolean",
    "TINYINT": "smallint",
    "SMALLINT": "smallint",
    "INTEGER": "integer",
    "BIGINT": "bigint",
    "UTINYINT": "smallint",
    "USMALLINT": "integer",
    "UINTEGER": "bigint",
    "UBIGINT": "numeric(20, 0)",
    "HUGEINT": "numeric(39, 0)",
    "UHUGEINT": "numeric(39, 0)",
    "FLOAT": "real",
    "DOUBLE": "double precision",
    "DATE": "date",
    "TIME": "time",
    "TIMESTAMP": "timestamp",
    "TIMESTAMP_S": "timestamp",
    "TIMESTAMP_MS": "timestamp",
    "TIMESTAMP_NS": "timestamp",
    "TIMESTAMP WITH TIME ZONE": "timestamptz",
    "UUID": "uuid",
    "BLOB": "bytea",
}
_DECIMAL = re.compile(r"^DECIMAL\((\d+),\s*(\d+)\)$")


class UnsupportedColumnType(TypeError):
    """A DuckDB column type with no mapping to PostgreSQL (lists, structs, maps, intervals, ...)."""


def pg_dsn_from_env(env: dict[str, str] | None = None) -> str:
    """A libpq DSN from the SALESOS_PG_* variables, with the defaults of dbt_project/profiles.yml."""
    env = os.environ if env is None else env
    params = {key: env.get(var, default) for key, (var, default) in PG_ENV_DEFAULTS.items()}
    if not params["password"]:
        del params["password"]  # let libpq fall back to PGPASSWORD / ~/.pgpass
    return make_dsn(**params)


def pg_type(duckdb_type: str) -> str:
    """The PostgreSQL type for a DuckDB column type."""
    name = duckdb_type.strip().upper()
    if name in _TYPES:
        return _TYPES[name]
    m = _DECIMAL.match(name)
    if m:
        return f"numeric({m.group(1)}, {m.group(2)})"
    raise UnsupportedColumnType(f"no PostgreSQL type for DuckDB type {duckdb_type!r}")


def copy_raw_to_postgres(
    duckdb_file: Path,
    dsn: str,
    schemas: Sequence[str] = DEFAULT_SCHEMAS,
    *,
    batch_rows: int = BATCH_ROWS,
) -> dict[str, int]:
    """Recreate the tables of `schemas` from a DuckDB file in PostgreSQL and copy their rows.

    Returns the rows copied per table, keyed `schema.table`. A schema the DuckDB file does not have is
    skipped (with a log line). A table that already exists in Postgres with the same columns is emptied and
    refilled (views built on it, e.g. dbt's staging views, keep working); one whose columns changed is
    dropped with its dependent views (dbt rebuilds them) and created again. Tables Postgres has but the
    DuckDB file does not are left alone.
    """
    duck = duckdb.connect(str(duckdb_file), read_only=True)
    try:
        duck.execute("set enable_progress_bar = false")
        tables = _duckdb_tables(duck, schemas)
        copied: dict[str, int] = {}
        pg = psycopg2.connect(dsn)
        try:
            for schema in schemas:
                if schema not in tables:
                    log.info("DuckDB file %s has no schema %s: nothing copied", duckdb_file, schema)
                    continue
                with pg, pg.cursor() as cur:
                    cur.execute(sql.SQL("create schema if not exists {}").format(sql.Identifier(schema)))
                for table, columns in tables[schema].items():
                    copied[f"{schema}.{table}"] = _copy_table(duck, pg, schema, table, columns, batch_rows)
        finally:
            pg.close()
    finally:
        duck.close()
    return copied


Column = tuple[str, str, bool]  # name, DuckDB type, nullable


def _duckdb_tables(duck: duckdb.DuckDBPyConnection, schemas: Sequence[str]) -> dict[str, dict[str, list[Column]]]:
    """Base tables (not views) of the given schemas of the file's own catalog, with their columns in order."""
    rows = duck.execute(
        """
        select c.table_schema, c.table_name, c.column_name, c.data_type, c.is_nullable = 'YES'
        from information_schema.columns c
        join information_schema.tables t using (table_catalog, table_schema, table_name)
        where t.table_type = 'BASE TABLE' and c.table_catalog = current_database()
          and c.table_schema in (select unnest(?::varchar[]))
        order by c.table_schema, c.table_name, c.ordinal_position
        """,
        [list(schemas)],
    ).fetchall()
    out: dict[str, dict[str, list[Column]]] = {}
    for schema, table, column, dtype, nullable in rows:
        out.setdefault(schema, {}).setdefault(table, []).append((column, dtype, bool(nullable)))
    return out


def _copy_table(
    duck: duckdb.DuckDBPyConnection,
    pg: Any,
    schema: str,
    table: str,
    columns: list[Column],
    batch_rows: int,
) -> int:
    target = sql.Identifier(schema, table)
    col_defs = [(name, pg_type(dtype), nullable) for name, dtype, nullable in columns]
    formatters = [_formatter(pg_t) for _, pg_t, _ in col_defs]
    ddl = sql.SQL("create table {} ({})").format(
        target,
        sql.SQL(", ").join(
            sql.SQL("{} {}{}").format(sql.Identifier(name), sql.SQL(pg_t), sql.SQL("" if nullable else " not null"))
            for name, pg_t, nullable in col_defs
        ),
    )
    result = duck.execute(sql_select(schema, table, [name for name, _, _ in columns]))
    counter = [0]
    stream = _IterStream(_copy_lines(result, formatters, batch_rows, counter))
    with pg, pg.cursor() as cur:  # one transaction: commit on success, rollback on any error
        if _pg_columns(cur, schema, table) == [(n, t.replace(" ", ""), nl) for n, t, nl in col_defs]:
            cur.execute(sql.SQL("truncate table {}").format(target))
        else:
            cur.execute(sql.SQL("drop table if exists {} cascade").format(target))
            cur.execute(ddl)
        cur.copy_expert(
            sql.SQL("copy {} ({}) from stdin").format(
                target, sql.SQL(", ").join(sql.Identifier(n) for n, _, _ in col_defs)
            ),
            stream,
            size=1 << 16,
        )
    log.info("copied %s.%s: %d rows", schema, table, counter[0])
    return counter[0]


def sql_select(schema: str, table: str, columns: list[str]) -> str:
    """`select "a", "b" from "schema"."table"` with DuckDB identifier quoting."""

    def q(name: str) -> str:
        return '"' + name.replace('"', '""') + '"'

    return f"select {', '.join(q(c) for c in columns)} from {q(schema)}.{q(table)}"


def _pg_columns(cur: Any, schema: str, table: str) -> list[tuple[str, str, bool]]:
    """An existing Postgres table's columns as (name, type without spaces, nullable); [] when there is none."""
    cur.execute(
        """
        select a.attname, format_type(a.atttypid, a.atttypmod), not a.attnotnull
        from pg_attribute a
        where a.attrelid = to_regclass(%s) and a.attnum > 0 and not a.attisdropped
        order by a.attnum
        """,
        [sql.Identifier(schema, table).as_string(cur)],
    )
    names = {
        "timestamp without time zone": "timestamp",
        "timestamp with time zone": "timestamptz",
        "time without time zone": "time",
    }
    return [(n, names.get(t, t).replace(" ", ""), nl) for n, t, nl in cur.fetchall()]


# --- COPY text format -------------------------------------------------------------------------------------

_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _text(value: Any) -> str:
    return str(value).translate(_ESCAPES)


def _float(value: Any) -> str:
    return repr(float(value))  # shortest round-trip form; inf / nan are accepted by float8in


def _bool(value: Any) -> str:
    return "t" if value else "f"


def _bytes(value: Any) -> str:
    return "\\\\x" + bytes(value).hex()


def _temporal(value: Any) -> str:
    if isinstance(value, datetime | date | time):
        return value.isoformat(sep=" ") if isinstance(value, datetime) else value.isoformat()
    return _text(value)


def _plain(value: Any) -> str:
    if isinstance(value, Decimal | int | UUID):
        return str(value)
    return _text(value)


def _formatter(pg_t: str) -> Callable[[Any], str]:
    if pg_t in ("double precision", "real"):
        return _float
    if pg_t == "boolean":
        return _bool
    if pg_t == "bytea":
        return _bytes
    if pg_t in ("date", "time", "timestamp", "timestamptz"):
        return _temporal
    if pg_t in ("text", "json"):
        return _text
    return _plain


def _copy_lines(
    result: duckdb.DuckDBPyConnection,
    formatters: list[Callable[[Any], str]],
    batch_rows: int,
    counter: list[int],
) -> Iterator[bytes]:
    """One bytes chunk per batch of rows, in PostgreSQL's COPY text format (tab-separated, \\N for null)."""
    while True:
        rows = result.fetchmany(batch_rows)
        if not rows:
            return
        lines = ["\t".join("\\N" if v is None else f(v) for f, v in zip(formatters, row, strict=True)) for row in rows]
        counter[0] += len(rows)
        yield ("\n".join(lines) + "\n").encode("utf-8")


class _IterStream:
    """A read-only file over an iterator of bytes chunks, for cursor.copy_expert."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._chunk = b""
        self._pos = 0

    def read(self, size: int = -1) -> bytes:
        if size < 0:
            rest = self._chunk[self._pos :] + b"".join(self._chunks)
            self._chunk, self._pos = b"", 0
            return rest
        while self._pos >= len(self._chunk):
            chunk = next(self._chunks, None)
            if chunk is None:
                return b""
            self._chunk, self._pos = chunk, 0
        out = self._chunk[self._pos : self._pos + size]
        self._pos += len(out)
        return out


class PgReader:
    """Read-only queries on the Postgres warehouse with the calls the forecast step makes on DuckDB.

    `execute(sql).df()` and `close()`: enough for `forecasting.nightly` to read the marts from whichever
    warehouse dbt built them in, without a second code path.
    """

    def __init__(self, dsn: str) -> None:
        self._con = psycopg2.connect(dsn)
        self._con.set_session(readonly=True, autocommit=True)
        self._frame: Any = None

    def execute(self, query: str, params: Sequence[Any] | None = None) -> PgReader:
        import pandas as pd

        with self._con.cursor() as cur:
            cur.execute(query.replace("?", "%s") if params else query, params)
            columns = [d[0] for d in cur.description]
            self._frame = pd.DataFrame(cur.fetchall(), columns=columns)
        return self

    def df(self) -> Any:
        return self._frame

    def close(self) -> None:
        self._con.close()
