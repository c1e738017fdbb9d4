"""The projection's night: first night replays, later nights add their days, a day's rows never depend on the night."""

from __future__ import annotations

import json
from datetime import date, timedelta

import duckdb
import pandas as pd
import pytest

from forecasting.projection_nightly import (
    PROJECTION_TABLE,
    ProjectionOptions,
    days_to_project,
    ensure_projection_table,
    project,
    read_inputs,
)
from salesos.settings import load_settings
from tests.forecasting.test_projection import AS_OF, quarter_starts, synthetic

OPTIONS = ProjectionOptions(replay_quarters=1, simulations=100, retrain_days=28)


@pytest.fixture
def con():
    """A warehouse with the four marts the projection reads, from the synthetic deals."""
    inputs = synthetic(n=300)
    c = duckdb.connect()
    c.execute("create schema marts")
    snaps, deals = inputs.snapshots, inputs.deals  # noqa: F841 (read by DuckDB below)
    c.execute("create table marts.fct_pipeline_snapshots as select * from snaps")
    c.execute("create table marts.fct_opportunities as select * from deals")
    days = pd.DataFrame({"date_day": pd.date_range("2023-02-01", "2028-01-31")})
    qs = pd.Series(pd.to_datetime(quarter_starts()))
    idx = qs.searchsorted(days["date_day"], side="right") - 1
    days["fiscal_year"] = qs.iloc[idx].dt.year.to_numpy()
    days["fiscal_quarter"] = qs.iloc[idx].dt.month.to_numpy()  # any label unique within the year
    c.execute("create table marts.dim_dates as select * from days")
    stages = pd.DataFrame({"stage_name": sorted(inputs.open_stages), "is_open": True})  # noqa: F841
    c.execute("create table marts.dim_stages as select * from stages")
    ensure_projection_table(c)
    yield c
    c.close()


def test_the_options_come_from_the_settings():
    s = load_settings()
    o = ProjectionOptions.from_settings(s)
    assert (o.replay_quarters, o.simulations, o.retrain_days) == (
        s.projection_replay_quarters, s.projection_simulations, s.projection_retrain_days)


def test_read_inputs_finds_the_fiscal_quarters(con):
    inputs = read_inputs(con)
    assert inputs.quarter_starts[:2] == [date(2023, 2, 1), date(2023, 5, 1)]
    assert len(inputs.snapshots) > 0 and "Negotiation" in inputs.open_stages


def test_a_first_night_replays_then_a_night_adds_only_its_days(con, tmp_path):
    first = AS_OF - timedelta(days=5)
    r1 = project(con, con, as_of=first, run_id="n1", model_dir=tmp_path / "m1", full_refresh=False, options=OPTIONS)
    assert r1["replayed"] and r1["first_day"] == "2026-08-01" and r1["days"] == (first - date(2026, 8, 1)).days + 1
    card = json.loads((tmp_path / "m1" / "model_card.json").read_text())
    assert card["features"] and "reliability" in card["calibration"]
    assert days_to_project(con, AS_OF, quarter_starts(), 1, False) == ([first + timedelta(days=i) for i in range(1, 6)],
                                                                       False)
    r2 = project(con, con, as_of=AS_OF, run_id="n2", model_dir=tmp_path / "m2", full_refresh=False, options=OPTIONS)
    assert r2["days"] == 5 and not r2["replayed"]
    stored = con.execute(f"select * from {PROJECTION_TABLE}").df()
    assert stored.groupby("as_of_date")["run_id"].nunique().max() == 1  # no day written twice
    assert set(stored.loc[~stored["is_replay"], "as_of_date"].dt.date) == {first, AS_OF}

    # a full refresh replays every day again: the same numbers as the nights made them
    project(con, con, as_of=AS_OF, run_id="n3", model_dir=tmp_path / "m3", full_refresh=True, options=OPTIONS)
    again = con.execute(f"select * from {PROJECTION_TABLE}").df()
    assert set(again["run_id"]) == {"n3"}
    key = ["as_of_date", "series_id", "period_type", "period_start"]
    both = stored.merge(again, on=key, suffixes=("", "_again"))
    assert len(both) == len(stored) == len(again)
    for col in ("projection", "lower_80", "upper_95", "weighted_pipeline_call"):
        pd.testing.assert_series_equal(both[col], both[f"{col}_again"], check_names=False, rtol=1e-9)


def test_a_rerun_of_the_same_night_replaces_its_rows(con, tmp_path):
    for run in ("a", "b"):
        project(con, con, as_of=AS_OF, run_id=run, model_dir=tmp_path / run, full_refresh=False, options=OPTIONS)
    runs = con.execute(f"select run_id, count(*) from {PROJECTION_TABLE} where as_of_date = ? group by 1",
                       [AS_OF]).fetchall()
    assert [r[0] for r in runs] == ["b"]


def test_the_step_counts_each_input_rule_for_the_run_summary(con, tmp_path):
    """A deal with no amount, one whose close date has passed and one in a stage the stage rules do not know,
    in the marts on as_of: the step's result (what the run summary prints) counts each; none is dropped."""
    ids = [r[0] for r in con.execute("select opportunity_id from marts.fct_pipeline_snapshots where snapshot_date = ? "
                                     "order by opportunity_id limit 3", [AS_OF]).fetchall()]
    con.execute("update marts.fct_pipeline_snapshots set amount = null where snapshot_date = ? and opportunity_id = ?",
                [AS_OF, ids[0]])
    con.execute("update marts.fct_pipeline_snapshots set close_date = ? where snapshot_date = ? and opportunity_id = ?",
                [AS_OF - timedelta(days=40), AS_OF, ids[1]])
    con.execute("update marts.fct_pipeline_snapshots set stage_name = 'Legal Review' where snapshot_date = ? "
                "and opportunity_id = ?", [AS_OF, ids[2]])
    base = project(con, con, as_of=AS_OF, run_id="n", model_dir=tmp_path / "m", full_refresh=True, options=OPTIONS)
    rules = base["rules"]
    assert rules["missing_amount"] >= 1 and rules["unknown_stage"] >= 1 and rules["close_date_in_past"] >= 1
    open_today = con.execute("select count(*) from marts.fct_pipeline_snapshots where snapshot_date = ?",
                             [AS_OF]).fetchone()[0]
    stored = con.execute(f"select open_deals from {PROJECTION_TABLE} where as_of_date = ? and level = 'company' "
                         "and period_type = 'month'", [AS_OF]).fetchone()[0]
    assert stored == open_today  # scored by its rule, not dropped
