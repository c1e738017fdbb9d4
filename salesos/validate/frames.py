"""Great Expectations on pandas frames of the raw tables: what the whole-table and the sliced runs share.

`gx_checks` (suites, run-level checks, reports) and `chunked` (a big table slice by slice) both read raw
tables as frames and run GX suites on them through the functions here, so neither imports the other's
private names and the import graph stays acyclic (tests/test_imports.py). GX runs on pandas frames read
with DuckDB, never through SQLAlchemy (on DuckDB 2.0 that path fails every expectation).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import duckdb
import pandas as pd

from salesos.contract import export_by_table

SAMPLE_ROWS = 5


RESULT_FORMAT = {"result_format": "SUMMARY", "partial_unexpected_count": SAMPLE_ROWS}


# Which raw table a reference column points at.
REFERENCES = {
    ("opportunities", "owner_id"): "users",
    ("opportunities", "account_id"): "accounts",
    ("users", "manager_id"): "users",
    ("opportunity_histories", "opportunity_id"): "opportunities",
    ("user_roles", "parent_role_id"): "user_roles",
    ("leads", "owner_id"): "users",
    ("leads", "converted_opportunity_id"): "opportunities",
    ("tasks", "owner_id"): "users",
    ("events", "owner_id"): "users",
    ("user_assignments", "user_id"): "users",
    ("user_assignments", "manager_id"): "users",
    ("contacts", "account_id"): "accounts",
    ("contacts", "owner_id"): "users",
    ("opportunity_line_items", "opportunity_id"): "opportunities",
    ("opportunity_line_items", "product2_id"): "products",
}


def typed_expr(column: str, type_: str) -> str:
    col = f'"{column}"'
    if type_ in ("number",):
        return f"try_cast({col} as double)"
    if type_ == "integer":
        return f"try_cast(try_cast({col} as double) as bigint)"
    if type_ == "date":
        return f"try_cast({col} as date)"
    if type_ == "datetime":
        return f"try_cast({col} as timestamp)"
    if type_ == "boolean":
        v = f"lower(trim({col}))"
        return f"case when {v} in ('true','1','yes') then true when {v} in ('false','0','no') then false end"
    return col


def frame_columns(con: duckdb.DuckDBPyConnection, table: str, raw_schema: str = "raw") -> dict[str, str]:
    """Every column of the validated frame (the raw table, then the derived columns) and its SQL expression."""
    export = export_by_table(table)
    names = [d[0] for d in con.execute(f'select * from {raw_schema}."{table}" limit 0').description]
    columns = {n: f't."{n}"' for n in names}
    for f in export.fields:
        if f.type in ("number", "integer", "date", "datetime", "boolean"):
            columns[f"{f.column}__typed"] = typed_expr(f.column, f.type)
    for (tbl, column), target in REFERENCES.items():
        if tbl == table:
            columns[f"{column}__known"] = (
                f'(nullif(trim(t."{column}"), \'\') is null or t."{column}" in '
                f'(select id from {raw_schema}."{target}" where id is not null))'
            )
    if table == "opportunities":
        # freshness: the newest modification, else (a connector table without LastModifiedDate) the newest sync
        columns["last_modified_date__or_synced"] = (
            "coalesce(try_cast(last_modified_date as timestamp), try_cast(synced_at as timestamp))"
            if "synced_at" in names else "try_cast(last_modified_date as timestamp)"
        )
        columns["closed_flags__consistent"] = "not (lower(is_won) = 'true' and lower(is_closed) = 'false')"
    if table == "opportunity_stages":
        columns["stage_flags__consistent"] = "not (lower(is_won) = 'true' and lower(is_closed) = 'false')"
        # GX's compound uniqueness needs two columns: the label and a constant (findings name master_label)
        columns["master_label__key"], columns["constant__one"] = 't."master_label"', "1"
    if table == "leads":
        columns["conversion__consistent"] = "not (lower(is_converted) = 'true' and nullif(converted_date, '') is null)"
    if table == "quotas":
        columns["period_start__first_of_month"] = "coalesce(day(try_cast(period_start as date)) = 1, false)"
        columns["owner_key"] = "coalesce(nullif(trim(owner_id), ''), lower(trim(owner_email)))"
    if table == "user_assignments":
        columns["valid_to__after_valid_from"] = (
            "coalesce(try_cast(valid_to as date) > try_cast(valid_from as date), nullif(trim(valid_to), '') is null)"
        )
    return columns


def raw_frame(
    con: duckdb.DuckDBPyConnection,
    table: str,
    raw_schema: str = "raw",
    columns: list[str] | None = None,
    where: str = "",
    params: list[Any] | None = None,
) -> pd.DataFrame:
    """The raw table plus the derived columns the suites check (`__typed`, `__known`, ...).

    `columns` narrows the frame to the columns a check needs and `where` (a SQL condition on the raw
    table `t`, with `params`) to a slice of its rows, so a big table never has to fit in memory at once.
    """
    exprs = frame_columns(con, table, raw_schema)
    wanted = [c for c in exprs if columns is None or c in columns]
    select = ", ".join(f'{exprs[c]} as "{c}"' for c in wanted)
    condition = f" where {where}" if where else ""
    sql = f'select {select} from {raw_schema}."{table}" t{condition} order by _row_number'
    return query_frame(con, sql, params)


def column_from_arrow(col: Any) -> Any:
    """One Arrow column as the pandas values DuckDB's `.df()` gives it (see `query_frame`)."""
    import numpy as np
    import pyarrow as pa

    t = col.type
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        if col.null_count == len(col):
            return np.full(len(col), None, dtype=object)  # .df(): an all-null or empty text column is object
        return pd.StringDtype("pyarrow", na_value=np.nan).__from_arrow__(col)
    if pa.types.is_integer(t) and col.null_count:
        name = f"{'' if pa.types.is_signed_integer(t) else 'U'}Int{t.bit_width}"
        return pd.array(col.to_numpy(zero_copy_only=False), dtype=name)  # nullable, as .df() gives it
    if pa.types.is_boolean(t) and col.null_count:
        return pd.BooleanDtype().__from_arrow__(col)
    if pa.types.is_date32(t):
        return col.cast(pa.timestamp("us")).to_numpy()  # .df(): dates are datetime64[us]
    if pa.types.is_timestamp(t) and t.tz is None and t.unit == "us":
        return col.to_numpy()
    if pa.types.is_integer(t) or pa.types.is_boolean(t) or pa.types.is_floating(t):
        return col.to_numpy()
    raise TypeError(t)


def query_frame(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any] | None = None) -> pd.DataFrame:
    """The result of `sql` as a pandas frame, exactly as DuckDB's `.df()` gives it, about 3x faster.

    `.df()` builds Python string objects that pandas 3 then converts to Arrow-backed strings: two thirds of
    reading a slice of a raw table (6 s of a 30 s validation at scale M). Through Arrow the text stays in
    Arrow; the other types take the dtypes `.df()` gives (nullable integers and booleans, datetime64[us]).
    A type not handled here falls back to `.df()`.
    """
    table = con.sql(sql, params=params or None).to_arrow_table()
    try:
        columns = {name: column_from_arrow(col) for name, col in zip(table.column_names, table.columns, strict=True)}
    except TypeError:
        return con.execute(sql, params or []).df()
    return pd.DataFrame(columns, index=pd.RangeIndex(table.num_rows), copy=False)


def resolve_params(value: Any, params: dict[str, Any]) -> Any:
    """Fill `"${name}"` / `"${name.key}"` placeholders of a suite from the run's parameters."""
    if isinstance(value, dict):
        return {k: resolve_params(v, params) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve_params(v, params) for v in value]
    if isinstance(value, str) and value.startswith("${") and value.endswith("}"):
        node: Any = params
        for part in value[2:-1].split("."):
            if not isinstance(node, dict) or part not in node:
                raise KeyError(f"suite parameter {value} has no value for this run")
            node = node[part]
        return node
    return value


def gx_context() -> Any:
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    return context


def gx_suite(suite: dict[str, Any], params: dict[str, Any] | None, types: frozenset[str] | None = None) -> Any:
    """The GX suite of a JSON suite with its parameters filled in (only the expectations of `types`, if given)."""
    import great_expectations as gx
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

    gx_suite = gx.ExpectationSuite(name=suite["name"])
    for exp in suite["expectations"]:
        if types is not None and exp["type"] not in types:
            continue
        kwargs = resolve_params(exp["kwargs"], params or {})
        gx_suite.add_expectation_configuration(
            ExpectationConfiguration(type=exp["type"], kwargs=kwargs, meta=exp.get("meta", {}))
        )
    return gx_suite


def batch_definition(context: Any, name: str) -> Any:
    source = context.data_sources.add_pandas(f"{name}_source")
    return source.add_dataframe_asset(name).add_batch_definition_whole_dataframe("whole")


@contextlib.contextmanager
def not_fingerprinted() -> Iterator[None]:
    """Skip GX's `pandas_data_fingerprint` batch marker (pandas row hashes of the whole frame, md5).

    It was 40% of the validate step at scale M, and for big tables it also made every slice read every
    column. The raw tables' batch marker is the sha256 of the export they were loaded from instead
    (`export_sha256`, as recorded in raw._loads and the archive manifest), which names the input exactly.
    """
    from great_expectations.execution_engine import pandas_execution_engine

    threshold = pandas_execution_engine.HASH_THRESHOLD
    pandas_execution_engine.HASH_THRESHOLD = 0  # GX hashes frames smaller than this many bytes
    try:
        yield
    finally:
        pandas_execution_engine.HASH_THRESHOLD = threshold


def validate_frame(batch_definition: Any, gx_suite: Any, df: pd.DataFrame) -> Any:
    with not_fingerprinted():
        batch = batch_definition.get_batch(batch_parameters={"dataframe": df})
        return batch.validate(gx_suite, result_format=RESULT_FORMAT)


def finding_column(cfg: Any) -> str:
    kwargs = cfg.kwargs
    columns = kwargs.get("column_list") or [kwargs[k] for k in ("column", "column_A", "column_B") if kwargs.get(k)]
    return ",".join(columns)
