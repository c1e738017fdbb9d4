"""Order-independent digests of warehouse tables: the check that a refactoring left every mart as it was.

A digest is the sha256 of a table's columns (name and type) and its rows, each row written as text and the
rows sorted, so row order (which SQL does not promise) does not count. Floating-point values are written to
a fixed number of significant digits: DuckDB sums doubles in parallel, in no fixed order, so the last bits of
a float sum may differ from run to run while the number is the same to any reader.

The tables whose numbers come from an optimiser (`OPTIMISED_TABLES`: the forecasts and what is computed from
them) are compared differently: Prophet's MAP ends on a nearly flat ridge where the last digits follow the
CPU's BLAS kernels (up to 4e-6 relative between two OpenBLAS kernel sets on the XS night), so their float
values are recorded (`table_values`) and compared with a relative tolerance (`value_differences`), while
everything else in a row (keys, dates, texts, the method chosen) must be exactly as recorded.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import statistics
from collections import defaultdict
from collections.abc import Iterable, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb

SCHEMAS = ("marts", "forecasts")
SIGNIFICANT_DIGITS = 9
# Tables whose floats come from an optimiser (forecast fits, and the marts computed from the forecasts):
# compared by value within VALUE_TOLERANCE, not by an exact digest of their floats.
OPTIMISED_TABLES = (
    "forecasts.fct_forecasts",
    "marts.mart_forecast_accuracy",
    "marts.mart_forecast_accuracy_summary",
    "marts.mart_projection_accuracy",
    "marts.mart_projection_accuracy_summary",
)
# Relative tolerance of those floats: 25x the largest difference seen between two BLAS kernel sets (3.7e-6),
# far under any real change of a forecast. A value is compared relative to the larger of itself and the
# column's typical magnitude (median absolute value), so a difference of two forecasts near 0 is not
# held to a relative precision its inputs never had.
VALUE_TOLERANCE = 1e-4
VALUE_DIGITS = 7  # significant digits a recorded value is kept to (its rounding is far under the tolerance)
_FLOAT = "\u2248"  # stands for a float in a row's shape


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
    columns, rows = _rows(con, schema, table)
    h = hashlib.sha256()
    h.update(json.dumps(_family(columns) if integer_family else columns).encode())
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


def _row_shape(columns: list[str], row: tuple) -> tuple[str, list[float], list[str]]:
    """A row's text with each finite float (also inside JSON) replaced by a mark; the floats and their labels."""
    floats: list[float] = []
    labels: list[str] = []

    def walk(node: Any, label: str) -> Any:
        if isinstance(node, float) and math.isfinite(node):
            floats.append(node)
            labels.append(label)
            return _FLOAT
        if isinstance(node, dict):
            return {k: walk(node[k], f"{label}.{k}") for k in sorted(node)}
        if isinstance(node, list):
            return [walk(v, f"{label}[{i}]") for i, v in enumerate(node)]
        return node

    parts = []
    for name, value in zip(columns, row, strict=True):
        if isinstance(value, float) and math.isfinite(value):
            parts.append(walk(value, name))
        elif isinstance(value, str) and value[:1] in ("{", "["):
            try:
                doc = json.loads(value)
            except ValueError:
                parts.append(value)
            else:
                parts.append(json.dumps(walk(doc, name), sort_keys=True))
        else:
            parts.append(_text(value, SIGNIFICANT_DIGITS))
    return "\x1f".join(parts), floats, labels


def _shape_key(shape: str) -> str:
    return hashlib.sha256(shape.encode()).hexdigest()[:16]


def _rows(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> tuple[list[list[str]], list[tuple]]:
    columns = con.execute(
        "select column_name, data_type from information_schema.columns "
        "where table_catalog = current_database() and table_schema = ? and table_name = ? order by ordinal_position",
        [schema, table],
    ).fetchall()
    return [list(c) for c in columns], con.execute(f'select * from "{schema}"."{table}"').fetchall()


def table_values(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> dict[str, Any]:
    """What `value_differences` compares: the columns and, per row, its shape's key and its floats.

    A row's shape is its text with every float (also inside JSON) marked, hashed; its floats are kept to
    VALUE_DIGITS significant digits. Rows are sorted (by shape, then values), so row order does not count.
    """
    columns, rows = _rows(con, schema, table)
    names = [c[0] for c in columns]
    out = []
    for row in rows:
        shape, floats, _ = _row_shape(names, row)
        out.append([_shape_key(shape), *(float(f"{v:.{VALUE_DIGITS}g}") for v in floats)])
    return {"columns": columns, "rows": sorted(out)}


def warehouse_values(path: Path, tables: Iterable[str] = OPTIMISED_TABLES) -> dict[str, dict[str, Any]]:
    """`schema.table` -> `table_values` for the given tables of a DuckDB warehouse file (missing ones left out)."""
    con = duckdb.connect(str(path), read_only=True)
    try:
        present = {f"{s}.{t}" for s, t in con.execute(
            "select table_schema, table_name from information_schema.tables where table_type = 'BASE TABLE'"
        ).fetchall()}
        return {name: table_values(con, *name.split(".", 1)) for name in tables if name in present}
    finally:
        con.close()


def _row_key(columns: list[str], shape: str, limit: int = 300) -> str:
    """A row named by its columns that are not floats (JSON documents left out): what a reader finds it by."""
    parts = [f"{c}={v}" for c, v in zip(columns, shape.split("\x1f"), strict=True)
             if v != _FLOAT and v[:1] not in ("{", "[")]
    text = ", ".join(parts)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _family(columns: Iterable[Iterable[str]]) -> list[list[str]]:
    return [[name, "INTEGER" if kind in _INTEGER_FAMILY else kind] for name, kind in columns]


def value_differences(name: str, recorded: Mapping[str, Any], path: Path, tolerance: float = VALUE_TOLERANCE,
                      limit: int = 20, integer_family: bool = False) -> list[str]:
    """Lines naming each row (by its key columns) and column of table `name` in warehouse `path` that differ
    from `recorded` (a `table_values`): a float beyond `tolerance`, or a row whose other fields differ.

    integer_family: signed integer column types count as one (another engine's night, as in `table_digest`).
    """
    con = duckdb.connect(str(path), read_only=True)
    try:
        columns, rows = _rows(con, *name.split(".", 1))
    finally:
        con.close()
    same = _family if integer_family else (lambda cols: [list(c) for c in cols])
    if same(columns) != same(recorded["columns"]):
        return [f"{name}: columns differ: recorded {recorded['columns']}, built {columns}"]
    names = [c[0] for c in columns]
    built: dict[str, list[tuple[str, list[float], list[str]]]] = defaultdict(list)
    for row in rows:
        shape, floats, labels = _row_shape(names, row)
        built[_shape_key(shape)].append((shape, [float(f"{v:.{VALUE_DIGITS}g}") for v in floats], labels))
    kept: dict[str, list[list[float]]] = defaultdict(list)
    for key, *values in recorded["rows"]:
        kept[key].append(values)
    lines: list[str] = []
    for key in sorted(set(built) - set(kept)):
        for shape, _, _ in built[key]:
            lines.append(f"{name}: row {_row_key(names, shape)}: built but not recorded (a field other than a float "
                         "differs, e.g. the model chosen)")
    missing = sum(len(kept[key]) for key in set(kept) - set(built))
    if missing:
        lines.append(f"{name}: {missing} recorded row(s) not built (their non-float fields differ)")
    # each float column's typical magnitude, by label (a column, or a number's path in a JSON column)
    magnitudes: dict[str, list[float]] = defaultdict(list)
    for key in set(built) & set(kept):
        labels = built[key][0][2]
        for values in kept[key]:
            for label, v in zip(labels, values, strict=False):
                if v != 0:
                    magnitudes[label].append(abs(v))
    typical = {label: statistics.median(vs) for label, vs in magnitudes.items()}
    for key in sorted(set(built) & set(kept)):
        mine, theirs = sorted(built[key], key=lambda b: b[1]), sorted(kept[key])
        if len(mine) != len(theirs):
            lines.append(f"{name}: row {_row_key(names, mine[0][0])}: recorded {len(theirs)} time(s), "
                         f"built {len(mine)}")
            continue
        for (shape, values, labels), old in zip(mine, theirs, strict=True):
            for label, a, b in zip(labels, old, values, strict=True):
                scale = max(abs(a), abs(b), typical.get(label, 0.0))
                if abs(a - b) > tolerance * scale:
                    rel = abs(a - b) / scale if scale else math.inf
                    lines.append(f"{name}: row {_row_key(names, shape)}: column {label}: recorded {a!r}, "
                                 f"built {b!r} (relative difference {rel:.2g} > {tolerance:g})")
    return lines[:limit] + ([f"{name}: ... and {len(lines) - limit} more"] if len(lines) > limit else [])


def warehouse_differences(path: Path, recorded: Mapping[str, str], recorded_values: Mapping[str, Any],
                          integer_family: bool = False, exclude: Iterable[str] = ()) -> list[str]:
    """Every difference of a warehouse from a recorded night: the digest of each table, except the
    OPTIMISED_TABLES, compared by value (`value_differences`); tables in `exclude` are not compared."""
    skip = set(exclude)
    current = {k: v for k, v in warehouse_digests(path, integer_family=integer_family).items() if k not in skip}
    kept = {k: v for k, v in recorded.items() if k not in skip}
    by_value = {name for name in OPTIMISED_TABLES if name in kept and name in current}
    lines = differences({k: v for k, v in kept.items() if k not in by_value},
                        {k: v for k, v in current.items() if k not in by_value})
    for name in sorted(by_value):
        if name not in recorded_values:
            lines.append(f"{name}: no recorded values (re-record with `make digests`)")
        else:
            lines += value_differences(name, recorded_values[name], path, integer_family=integer_family)
    return lines


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
