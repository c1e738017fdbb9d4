"""Storage of the bookings forecasts: `forecasts.fct_forecasts`, append-only.

Every run's forecast is kept: a forecast is only worth its accuracy, which `mart_forecast_accuracy`
scores later against what closed. A re-run of the same as-of date replaces that date's rows only.
The forecasts themselves are made by `forecasting.nightly`.
"""

from __future__ import annotations

import logging
from importlib.metadata import PackageNotFoundError, version

import duckdb
import pandas as pd

log = logging.getLogger(__name__)

FORECAST_SCHEMA = "forecasts"
FORECAST_TABLE = f"{FORECAST_SCHEMA}.fct_forecasts"

FORECAST_DDL = f"""
create table if not exists {FORECAST_TABLE} (
    as_of_date date not null,
    run_id varchar not null,
    series_id varchar not null,
    level varchar not null,
    series_key varchar not null,
    period_start date not null,
    horizon integer not null,
    yhat double not null,
    yhat_lower_80 double not null,
    yhat_upper_80 double not null,
    yhat_lower_95 double not null,
    yhat_upper_95 double not null,
    model varchar not null,
    model_params varchar not null,
    training_start date not null,
    training_end date not null,
    code_version varchar not null,
    is_selected boolean not null default true,
    is_backtest boolean not null default false
)
"""
# The columns in table order (the rows `forecasting.nightly.assemble_forecasts` returns).
FORECAST_COLUMNS = tuple(line.split()[0] for line in FORECAST_DDL.split("(", 1)[1].rsplit(")", 1)[0].splitlines()
                         if line.strip())


def code_version() -> str:
    try:
        return version("salesos")
    except PackageNotFoundError:  # running from a source tree without install
        return "unknown"


def ensure_forecast_table(con: duckdb.DuckDBPyConnection) -> None:
    """Create the (append-only) forecast table if this warehouse has none yet: dbt reads it as a source.

    A warehouse written by an earlier version gets the columns added since (its past forecasts are kept:
    they are what the accuracy mart scores). Rows from before `series_key` existed were company forecasts.
    """
    con.execute(f"create schema if not exists {FORECAST_SCHEMA}")
    con.execute(FORECAST_DDL)
    have = {
        r[0]
        for r in con.execute(
            "select column_name from information_schema.columns where table_schema = ? and table_name = ?",
            [FORECAST_SCHEMA, FORECAST_TABLE.split(".")[1]],
        ).fetchall()
    }
    if "series_key" not in have:
        con.execute(f"alter table {FORECAST_TABLE} add column series_key varchar default 'all'")
        con.execute(f"update {FORECAST_TABLE} set series_id = 'company:all' where series_id = 'company'")
    # rows from before Prophet's own forecast and the backtest track record were stored: published, live
    for column, default in (("is_selected", "true"), ("is_backtest", "false")):
        if column not in have:
            con.execute(f"alter table {FORECAST_TABLE} add column {column} boolean default {default}")


def store_forecasts(con: duckdb.DuckDBPyConnection, rows: pd.DataFrame) -> int:
    """Append a run's forecasts; returns how many rows were written.

    Live rows (`is_backtest` false) of a re-run as-of date replace that date's rows of the series, backtest rows
    included (a forecast made on the day replaces one reconstructed for it). Backtest rows (one set per origin
    as-of date) are written only for an (as_of_date, series_id) that has no row yet: re-running a night, a
    full refresh or a later night never duplicates the track record, and never puts a second forecast beside
    the one a run already stored for that date.
    """
    ensure_forecast_table(con)
    if "is_backtest" not in rows.columns:
        rows = rows.assign(is_backtest=False)
    if "is_selected" not in rows.columns:
        rows = rows.assign(is_selected=True)
    live = rows[~rows["is_backtest"].astype(bool)]
    con.execute("begin transaction")
    try:
        for (as_of, series_id), _ in live.groupby(["as_of_date", "series_id"]):
            con.execute(f"delete from {FORECAST_TABLE} where as_of_date = ? and series_id = ?", [as_of, series_id])
        con.register("_forecast_rows", rows)
        cols = ", ".join(rows.columns)
        before = con.execute(f"select count(*) from {FORECAST_TABLE}").fetchall()[0][0]
        con.execute(f"insert into {FORECAST_TABLE} ({cols}) select {cols} from _forecast_rows "
                    "where not is_backtest").fetchall()
        con.execute(
            f"""
            insert into {FORECAST_TABLE} ({cols})
            select {", ".join(f"r.{c}" for c in rows.columns)} from _forecast_rows as r
            where r.is_backtest
              and not exists (select 1 from {FORECAST_TABLE} as t
                              where t.as_of_date = r.as_of_date and t.series_id = r.series_id)
            """
        ).fetchall()
        written = con.execute(f"select count(*) from {FORECAST_TABLE}").fetchall()[0][0] - before
        con.unregister("_forecast_rows")
        con.execute("commit")
    except Exception:
        con.execute("rollback")
        raise
    return int(written)
