"""Order-independent digests of warehouse tables: the check that a refactoring left every mart as it was.

A digest is the sha256 of a table's columns (name and type) and its rows, each row written as text and the
rows sorted, so row order (which SQL does not promise) does not count. Floating-point values are written to
a fixed number of significant digits: DuckDB sums doubles in parallel, in no fixed order, so the last bits of
a float sum may differ from run to run while the number is the same to any reader.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
from collections.abc import Iterable, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb

SCHEMAS = ("marts", "forecasts")
SIGNIFICANT_DIGITS = 9


def _text(value: Any, digits: int) -> str:
    if value is None:
        return "\\N"
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return repr(value)
        return f"{value:.{digits}g}" if value != 0 else "0"
    if isinstance(value, Decimal):
        return format(value.normalize(), "f") if value != 0 else "0"
    if isinstance(value, dt.date | dt.datetime | dt.time):
        return value.isoformat()
    if isinstance(value, str):
        return _json_text(value, digits)
    return repr(value)


def _json_text(value: str, digits: int) -> str:
    """A JSON document in a text column (model parameters, scores) with its numbers rounded like the floats."""
    if value[:1] not in ("{", "["):
        return value
    try:
        doc = json.loads(value)
    except ValueError:
        return value

    def walk(node: Any) -> Any:
        if isinstance(node, float):
            return _text(node, digits)
        if isinstance(node, dict):
            return {k: walk(v) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    return json.dumps(walk(doc), sort_keys=True)


# Integer types by family: another engine's sum of integers is a BIGINT where DuckDB's is a HUGEINT, and its
# rank() an INTEGER where DuckDB's is a BIGINT; the numbers are the same (salesos.warehouse.spark).
_INTEGER_FAMILY = {"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT"}


def table_digest(con: duckdb.DuckDBPyConnection, schema: str, table: str,
                 digits: int = SIGNIFICANT_DIGITS, integer_family: bool = False) -> str:
    """sha256 of one table's columns and sorted rows (floats to `digits` significant digits).

    integer_family: signed integer columns count as one type (to compare the marts another engine built).
    """
    columns = con.execute(
        "select column_name, data_type from information_schema.columns "
        "where table_catalog = current_database() and table_schema = ? and table_name = ? order by ordinal_position",
        [schema, table],
    ).fetchall()
    if integer_family:
        columns = [(name, "INTEGER" if kind in _INTEGER_FAMILY else kind) for name, kind in columns]
    h = hashlib.sha256()
    h.update(json.dumps(columns).encode())
    rows = con.execute(f'select * from "{schema}"."{table}"').fetchall()
    for line in sorted("\x1f".join(_text(v, digits) for v in row) for row in rows):
        h.update(line.encode())
        h.update(b"\n")
    return h.hexdigest()


def warehouse_digests(path: Path, schemas: Iterable[str] = SCHEMAS,
                      digits: int = SIGNIFICANT_DIGITS, integer_family: bool = False) -> dict[str, str]:
    """`schema.table` -> digest for every table of the given schemas of a DuckDB warehouse file."""
    schemas = tuple(schemas)
    con = duckdb.connect(str(path), read_only=True)
    try:
        tables = con.execute(
            "select table_schema, table_name from information_schema.tables "
            f"where table_schema in ({', '.join('?' for _ in schemas)}) and table_type = 'BASE TABLE' "
            "order by 1, 2",
            list(schemas),
        ).fetchall()
        return {f"{s}.{t}": table_digest(con, s, t, digits, integer_family) for s, t in tables}
    finally:
        con.close()


def differences(recorded: Mapping[str, str], current: Mapping[str, str]) -> list[str]:
    """One line per table whose digest changed, that appeared or that is gone (empty when all agree)."""
    lines = []
    for name in sorted(set(recorded) | set(current)):
        if name not in current:
            lines.append(f"{name}: recorded but not built")
        elif name not in recorded:
            lines.append(f"{name}: built but not recorded")
        elif recorded[name] != current[name]:
            lines.append(f"{name}: rows or columns differ")
    return lines
