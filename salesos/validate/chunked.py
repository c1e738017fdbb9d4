"""Validate a raw table slice by slice, with the result GX gives on the whole table.

A whole raw table as a pandas frame, plus the copies GX makes of it, needs about 1.2 KB per row: 12.5 GB
for the 10M activity rows of scale M. Here the rows are read in slices of `_row_number` ranges; every
row-by-row expectation (`CHUNKABLE`) runs on each slice, and its per-slice counts and samples are added up
and handed to the expectation's own `_validate`, which applies `mostly` to the whole table and formats the
result as GX would. Expectations that need all rows at once (row counts, a column's max, compound
uniqueness) run once on a frame holding only the columns they check. Each slice's frame keeps the
positions (index) and dtypes the whole frame would have, so samples and values match.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import duckdb
import pandas as pd

from salesos.validate.frames import (
    RESULT_FORMAT,
    SAMPLE_ROWS,
    batch_definition,
    finding_column,
    frame_columns,
    gx_suite,
    query_frame,
    raw_frame,
    validate_frame,
)

# Expectations whose verdict on a row depends on that row only: their counts add up over slices.
CHUNKABLE = frozenset(
    {
        "expect_column_values_to_not_be_null",
        "expect_column_values_to_be_null",
        "expect_column_values_to_be_in_set",
        "expect_column_values_to_not_be_in_set",
        "expect_column_values_to_be_between",
        "expect_column_value_lengths_to_equal",
        "expect_column_value_lengths_to_be_between",
        "expect_column_values_to_match_regex",
        "expect_column_values_to_not_match_regex",
        "expect_column_pair_values_a_to_be_greater_than_b",
        "expect_column_pair_values_to_be_equal",
    }
)

# Whole-table expectations that only count rows.
ROW_COUNT_ONLY = frozenset({"expect_table_row_count_to_be_between", "expect_table_row_count_to_equal"})


@dataclass
class Positions:
    """Data row numbers and raw values at the frame positions that appear in samples of unexpected rows."""

    n_rows: int
    columns: set[str]
    rows: dict[int, int] = field(default_factory=dict)
    values: dict[tuple[int, str], Any] = field(default_factory=dict)

    def remember(self, frame: pd.DataFrame, result: Any) -> None:
        for r in result.results:
            base = finding_column(r.expectation_config).split("__")[0]
            for i in list((r.result or {}).get("partial_unexpected_index_list") or [])[:SAMPLE_ROWS]:
                if not isinstance(i, int):
                    continue
                self.rows[i] = int(frame["_row_number"].loc[i])
                if base in frame:
                    self.values[(i, base)] = frame[base].loc[i]

    def row_of(self, i: int | None) -> int | bool:
        return "_row_number" in self.columns if i is None else self.rows[i]

    def value_of(self, i: int | None, column: str) -> Any:
        return column in self.columns if i is None else self.values[(i, column)]


def _needed_columns(suite: Any, available: list[str]) -> list[str]:
    """The columns the expectations of the GX `suite` read, their raw base columns, and `_row_number`."""
    wanted = {"_row_number"}
    for exp in suite.expectations:
        for column in finding_column(exp.configuration).split(","):
            if column:
                wanted |= {column, column.split("__")[0]}
    return [c for c in available if c in wanted]


def _slices(con: duckdb.DuckDBPyConnection, table: str, chunk_rows: int, raw_schema: str) -> list[tuple[str, list]]:
    """`where` conditions (with parameters) that cut the table into `_row_number` ranges of chunk_rows rows."""
    bounds = [
        b
        for (b,) in con.execute(
            f"""select _row_number from (
                    select _row_number, row_number() over (order by _row_number) as rn from {raw_schema}."{table}")
                where rn % {int(chunk_rows)} = 0 order by 1"""
        ).fetchall()
    ]
    total = con.execute(f'select count(*) from {raw_schema}."{table}"').fetchall()[0][0]
    if bounds and total % chunk_rows == 0:
        bounds.pop()  # the last range would be empty
    slices: list[tuple[str, list]] = []
    low = None
    for b in bounds:
        if low is None:
            slices.append(("t._row_number <= ?", [b]))
        else:
            slices.append(("t._row_number > ? and t._row_number <= ?", [low, b]))
        low = b
    slices.append(("t._row_number > ?", [low]) if low is not None else ("", []))
    return slices


def _whole_dtypes(con: duckdb.DuckDBPyConnection, table: str, raw_schema: str) -> pd.Series:
    """The dtypes DuckDB gives each column of the whole frame (they depend on whether a column has nulls).

    Two rows per column: some non-null value, then a null if the column has any; converted to pandas,
    they take the dtypes the whole table would take, so slices can be cast to match.
    """
    exprs = frame_columns(con, table, raw_schema)
    cols = ", ".join(f'{e} as "{c}"' for c, e in exprs.items())
    first = ", ".join(f'any_value("{c}") as "{c}"' for c in exprs)
    second = ", ".join(f'case when count("{c}") < count(*) then null else any_value("{c}") end' for c in exprs)
    sql = (
        f'with f as (select {cols} from {raw_schema}."{table}" t) '
        f"select {first} from f union all select {second} from f"
    )
    return query_frame(con, sql).dtypes  # the conversion raw_frame uses


def _as_whole(frame: pd.DataFrame, dtypes: pd.Series | None, start: int) -> pd.DataFrame:
    """A slice with the index positions and dtypes it has inside the whole frame (an empty table: as read)."""
    frame.index = pd.RangeIndex(start, start + len(frame))
    for column in frame.columns if dtypes is not None else []:
        if frame[column].dtype != dtypes[column]:
            frame[column] = frame[column].astype(dtypes[column])
    return frame


def _combined(expectation: Any, parts: list[Any]) -> Any:
    """One expectation's result over the whole table from its results on every slice, by GX's own `_validate`."""
    from great_expectations.core.expectation_validation_result import ExpectationValidationResult

    first = parts[0]
    for part in parts:
        if part.exception_info and part.exception_info.get("raised_exception"):
            return part
    results = [p.result for p in parts]
    total = sum(r["element_count"] for r in results)
    missing = sum(r["missing_count"] for r in results) if all("missing_count" in r for r in results) else None
    metric = expectation.map_metric
    metrics: dict[str, Any] = {
        "table.row_count": total,
        f"{metric}.unexpected_count": sum(r["unexpected_count"] for r in results),
        f"{metric}.unexpected_values": [v for r in results for v in r.get("partial_unexpected_list", [])][:SAMPLE_ROWS],
        f"{metric}.unexpected_index_list": [i for r in results for i in r.get("partial_unexpected_index_list", [])][
            :SAMPLE_ROWS
        ],
    }
    if missing is not None:
        metrics["column_values.nonnull.unexpected_count"] = missing
        metrics[f"{metric}.filtered_row_count"] = total - missing
    raw = expectation._validate(metrics=metrics, runtime_configuration={"result_format": dict(RESULT_FORMAT)})
    return ExpectationValidationResult(
        success=raw["success"],
        expectation_config=first.expectation_config,
        result=raw["result"],
        meta=copy.deepcopy(first.meta),
        exception_info=copy.deepcopy(first.exception_info),
    )


def _in_gx_order(results: list[Any]) -> list[Any]:
    """Results (in suite order) in the order GX reports them: grouped by `column`, groups by first appearance.

    (GX's `Validator.process_expectations_for_validation` sorts a suite this way before validating.)
    """
    groups: dict[str, list[Any]] = {}
    for r in results:
        column = r.expectation_config.kwargs.get("column")
        groups.setdefault(column if isinstance(column, str) else "_nocolumn", []).append(r)
    return [r for group in groups.values() for r in group]


def run_chunked(
    con: duckdb.DuckDBPyConnection,
    suite: dict[str, Any],
    chunk_rows: int,
    context: Any,
    params: dict[str, Any] | None,
    raw_schema: str = "raw",
) -> tuple[Any, Positions]:
    """The suite's GX result on the whole raw table, computed in slices of at most `chunk_rows` rows."""
    from great_expectations.core.expectation_validation_result import ExpectationSuiteValidationResult
    from great_expectations.validator.validation_statistics import calc_validation_statistics

    table = suite["table"]
    row_types = CHUNKABLE
    table_types = frozenset(e["type"] for e in suite["expectations"]) - CHUNKABLE
    row_suite = gx_suite(suite, params, row_types)
    table_suite = gx_suite(suite, params, table_types)
    batch = batch_definition(context, suite["name"])
    columns = list(frame_columns(con, table, raw_schema))
    n_rows = con.execute(f'select count(*) from {raw_schema}."{table}"').fetchall()[0][0]
    positions = Positions(n_rows=n_rows, columns=set(columns))

    parts: list[list[Any]] = [[] for _ in row_suite.expectations]
    # A slice needs only the columns the row-by-row expectations read: a third of the columns of a task or
    # event export, and far less to convert (GX's frame fingerprint, which read them all, is off).
    row_columns = _needed_columns(row_suite, columns)
    if row_suite.expectations:
        dtypes = _whole_dtypes(con, table, raw_schema) if n_rows else None
        start = 0
        for where, args in _slices(con, table, chunk_rows, raw_schema):
            frame = _as_whole(raw_frame(con, table, raw_schema, row_columns, where, args), dtypes, start)
            if len(frame) == 0 and start > 0:
                continue
            result = validate_frame(batch, row_suite, frame)
            positions.remember(frame, result)
            for k, r in enumerate(result.results):
                parts[k].append(r)
            start += len(frame)
            del frame

    if table_types <= ROW_COUNT_ONLY:  # no column needed: a frame of n rows and no columns costs nothing
        narrow = pd.DataFrame(index=pd.RangeIndex(n_rows))
    else:
        narrow = raw_frame(con, table, raw_schema, columns=_needed_columns(table_suite, columns))
    whole = validate_frame(batch, table_suite, narrow)
    positions.remember(narrow, whole)
    del narrow

    by_row = iter([_combined(exp, parts[k]) for k, exp in enumerate(row_suite.expectations)])
    by_table = iter(whole.results)
    results = _in_gx_order([next(by_row) if e["type"] in CHUNKABLE else next(by_table) for e in suite["expectations"]])
    meta = copy.deepcopy(whole.meta)
    statistics = calc_validation_statistics(results)
    result = ExpectationSuiteValidationResult(
        results=results,
        success=statistics.success,
        suite_name=suite["name"],
        statistics={
            "evaluated_expectations": statistics.evaluated_expectations,
            "successful_expectations": statistics.successful_expectations,
            "unsuccessful_expectations": statistics.unsuccessful_expectations,
            "success_percent": statistics.success_percent,
        },
        meta=meta,
        batch_id=whole.batch_id,
    )
    return result, positions
