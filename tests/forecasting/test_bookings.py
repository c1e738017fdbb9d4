from datetime import date

import duckdb
import pandas as pd

from forecasting.bookings import FORECAST_TABLE, ensure_forecast_table, store_forecasts


def _rows(as_of: date, run_id: str, n: int = 3) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "as_of_date": [as_of] * n,
            "run_id": [run_id] * n,
            "series_id": ["company:all"] * n,
            "level": ["company"] * n,
            "series_key": ["all"] * n,
            "period_start": [date(2026, 11 + i, 1) if i < 2 else date(2027, 1, 1) for i in range(n)],
            "horizon": list(range(1, n + 1)),
            "yhat": [100.0] * n,
            "yhat_lower_80": [80.0] * n,
            "yhat_upper_80": [120.0] * n,
            "yhat_lower_95": [60.0] * n,
            "yhat_upper_95": [140.0] * n,
            "model": ["theta"] * n,
            "model_params": ["{}"] * n,
            "training_start": [date(2023, 1, 1)] * n,
            "training_end": [date(2026, 10, 1)] * n,
            "code_version": ["test"] * n,
        }
    )


def test_table_exists_before_any_forecast_and_runs_append():
    con = duckdb.connect()
    ensure_forecast_table(con)
    assert con.execute(f"select count(*) from {FORECAST_TABLE}").fetchall() == [(0,)]
    assert store_forecasts(con, _rows(date(2026, 10, 31), "r1")) == 3
    store_forecasts(con, _rows(date(2026, 9, 30), "r0"))
    store_forecasts(con, _rows(date(2026, 10, 31), "r1-again"))  # a re-run replaces its own date only
    got = con.execute(f"select as_of_date, count(*), max(run_id) from {FORECAST_TABLE} group by 1 order by 1").fetchall()
    assert got == [(date(2026, 9, 30), 3, "r0"), (date(2026, 10, 31), 3, "r1-again")]


def test_a_warehouse_from_an_earlier_version_is_migrated_and_keeps_its_forecasts():
    con = duckdb.connect()
    con.execute("create schema forecasts")
    con.execute("create table forecasts.fct_forecasts (as_of_date date, run_id varchar, series_id varchar, "
                "level varchar, period_start date, horizon integer, yhat double, yhat_lower_80 double, "
                "yhat_upper_80 double, yhat_lower_95 double, yhat_upper_95 double, model varchar, "
                "model_params varchar, training_start date, training_end date, code_version varchar)")
    con.execute("insert into forecasts.fct_forecasts values ('2026-09-30', 'old', 'company', 'company', "
                "'2026-10-01', 1, 5, 4, 6, 3, 7, 'prophet', '{}', '2023-01-01', '2026-09-01', '0.1.0')")
    ensure_forecast_table(con)
    assert con.execute(f"select series_id, series_key from {FORECAST_TABLE}").fetchall() == [("company:all", "all")]
    store_forecasts(con, _rows(date(2026, 10, 31), "new"))
    assert con.execute(f"select count(*) from {FORECAST_TABLE}").fetchall() == [(4,)]
    flags = con.execute(f"select distinct is_selected, is_backtest from {FORECAST_TABLE}").fetchall()
    assert flags == [(True, False)]  # the old rows were published live forecasts


def _track(origins: list[date], run_id: str, model: str = "theta") -> pd.DataFrame:
    """Backtest rows: one 3-month forecast per origin as-of date."""
    frames = [_rows(o, run_id).assign(is_backtest=True, is_selected=True, model=model) for o in origins]
    return pd.concat(frames, ignore_index=True)


def _count(con: duckdb.DuckDBPyConnection, where: str = "true") -> int:
    return con.execute(f"select count(*) from {FORECAST_TABLE} where {where}").fetchall()[0][0]


def test_backtest_rows_are_never_duplicated_by_a_rerun_or_a_later_night():
    con = duckdb.connect()
    night1 = pd.concat([_rows(date(2026, 10, 31), "r1").assign(is_backtest=False, is_selected=True),
                        _track([date(2026, 7, 31), date(2026, 8, 31), date(2026, 9, 30)], "r1")])
    assert store_forecasts(con, night1) == 12
    assert store_forecasts(con, night1) == 3  # the same night again: its live rows replaced, no new track rows
    assert _count(con) == 12
    # a month later: origins moved by one month; only the new origin's rows are added, and the origin that
    # a live run already forecast (2026-10-31) keeps the live forecast
    night2 = pd.concat([_rows(date(2026, 11, 30), "r2").assign(is_backtest=False, is_selected=True),
                        _track([date(2026, 8, 31), date(2026, 9, 30), date(2026, 10, 31)], "r2", model="auto_ets")])
    assert store_forecasts(con, night2) == 3
    assert _count(con, "is_backtest") == 9
    assert con.execute(f"select distinct model, run_id from {FORECAST_TABLE} where as_of_date = '2026-10-31'"
                       ).fetchall() == [("theta", "r1")]
    dup = con.execute(f"select as_of_date, series_id, period_start, count(*) from {FORECAST_TABLE} "
                      "where is_selected group by all having count(*) > 1").fetchall()
    assert dup == []


def test_a_live_forecast_replaces_the_backtest_rows_of_its_date():
    con = duckdb.connect()
    store_forecasts(con, _track([date(2026, 10, 31)], "r1", model="auto_ets"))
    store_forecasts(con, _rows(date(2026, 10, 31), "r2").assign(is_backtest=False, is_selected=True))
    assert con.execute(f"select distinct model, is_backtest from {FORECAST_TABLE}").fetchall() == [("theta", False)]
