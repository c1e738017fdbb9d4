"""The nightly run end to end on generated sample data, checked against numbers computed independently.

Marked e2e: these run dbt and Prophet, so they take a minute or two. The end-to-end tests that need a published
night but not the S sample's numbers (dbt docs and unit tests, a reader during a publish, a killed night) are in
test_end_to_end_xs.py, on copies of the shared XS night.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from salesos.generate import generate
from salesos.pipeline import run_all
from salesos.run_context import RunContext
from salesos.validate.gx_checks import ValidationFailed
from tests.warehouse_queries import query_frame

pytestmark = pytest.mark.e2e

AS_OF = date(2026, 10, 31)
SETTINGS = Path(__file__).with_name("fast_settings.yml")


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("sample")
    generate(out, scale="S", seed=7, as_of=AS_OF)
    return out


@pytest.fixture(scope="module")
def published(sample, tmp_path_factory):
    wh = tmp_path_factory.mktemp("wh") / "salesos.duckdb"
    ctx = RunContext.create(as_of=AS_OF, exports=sample, warehouse=wh, settings_file=SETTINGS)
    summary = run_all(ctx)
    return ctx, summary


def test_summary_counts_what_was_loaded_built_and_forecast(sample, published):
    ctx, summary = published
    opp_rows = sum(1 for _ in (sample / "Opportunity.csv").open(encoding="utf-8")) - 1
    assert summary["rows_loaded"]["Opportunity.csv"] == opp_rows
    assert summary["models_built"] >= 15
    assert summary["tests_passed"] >= 30
    # company, regions, segments, teams and active reps, 12 months each
    assert summary["forecast_series"] >= 40
    assert summary["forecast_rows"] == 12 * summary["forecast_series"]
    assert len(list((ctx.run_dir / "forecast_charts").glob("*.png"))) >= 5
    assert ctx.warehouse.exists() and not ctx.build_dir.exists()
    assert (ctx.run_dir / "summary.json").exists()


def test_the_first_night_replays_the_projection_and_scores_it(published):
    """issue 17: the table and both accuracy marts have rows after the first night; the levels add up."""
    ctx, summary = published
    days = query_frame(ctx.warehouse, "select count(distinct as_of_date) as n, min(as_of_date) as first, "
                  "bool_or(not is_replay) as tonight from forecasts.fct_period_projections")
    assert days["n"][0] == summary["projection_days"] >= 89  # a fiscal quarter (fast_settings), each day
    assert bool(days["tonight"][0])
    acc = query_frame(ctx.warehouse, "select * from marts.mart_projection_accuracy")
    assert len(acc) > 0 and acc["actual"].notna().all()
    summ = query_frame(ctx.warehouse, "select * from marts.mart_projection_accuracy_summary")
    assert {"projection", "commit_call", "best_case_call", "weighted_pipeline_call"} <= set(summ["method"])
    sums = query_frame(ctx.warehouse, "select as_of_date, period_type, period_start, level, sum(projection) as p "
                  "from forecasts.fct_period_projections where as_of_date = (select max(as_of_date) "
                  "from forecasts.fct_period_projections) group by all")
    for _, g in sums.groupby(["period_type", "period_start"]):
        assert g["p"].max() - g["p"].min() <= 1e-6 * g["p"].max()
    assert (ctx.run_dir / "projection_model" / "model_card.json").exists()
    assert "projection_rules" in summary and "missing_amount" in summary["projection_rules"]


def test_the_first_night_has_a_track_record_and_prophet_beside_every_choice(published):
    """One night on an empty warehouse: the accuracy marts already score a year of backtest forecasts, of the
    published choice and of Prophet, and finance's view has one forecast per series and month."""
    from forecasting.methods import primary_prophet_name

    ctx, summary = published
    acc = query_frame(ctx.warehouse, "select * from marts.mart_forecast_accuracy where is_scored")
    assert len(acc) > 0 and acc["is_backtest"].all()  # nothing live can be scored yet: the track record is
    months = pd.to_datetime(acc["period_start"]).dt.to_period("M")
    assert months.max() == pd.Period(AS_OF, "M") and months.nunique() >= 2  # origins=2 in the fast settings
    assert {"company", "region", "segment", "team", "rep"} <= set(acc["level"])
    assert acc["scaled_error"].notna().all()
    summary_rows = query_frame(ctx.warehouse, "select * from marts.mart_forecast_accuracy_summary "
                          "where level = 'company' and horizon = 1")
    assert {"selected", primary_prophet_name()} <= set(summary_rows["model"])
    assert (summary_rows["n_backtest"] == summary_rows["n_scored"]).all()
    # scored by the one dbt build after the forecast and the projection (issue 20), not one build after each
    marts = json.loads((ctx.run_dir / "forecast_marts.json").read_text())
    assert marts["accuracy_rebuilt"] is True and marts["models"] > 0
    published_view = query_frame(ctx.warehouse, "select as_of_date, series_id, period_start, count(*) n "
                            "from forecasts.fct_forecasts where is_selected and not is_backtest group by all")
    assert (published_view["n"] == 1).all() and set(published_view["as_of_date"].astype(str)) == {str(AS_OF)}
    assert len(published_view) == summary["forecast_rows"]
    prophet = query_frame(ctx.warehouse, "select count(distinct series_id) n from forecasts.fct_forecasts "
                     f"where not is_backtest and model = '{primary_prophet_name()}'")
    assert prophet["n"].iloc[0] == summary["forecast_series"]  # Prophet for every series, chosen or not


def _independent_rep_months(sample: Path) -> pd.DataFrame:
    """Win rate, bookings and attainment per rep and month straight from the CSVs, with pandas."""
    opp = pd.read_csv(sample / "Opportunity.csv", dtype=str, keep_default_na=False)
    opp = opp[opp["IsDeleted"].str.lower() != "true"]
    opp = opp[opp["IsClosed"].str.lower() == "true"].copy()
    opp["close"] = pd.to_datetime(opp["CloseDate"])
    opp = opp[opp["close"] <= pd.Timestamp(AS_OF)]
    fx = pd.read_csv(sample / "fx_rates.csv", dtype=str, keep_default_na=False)
    fx["valid_from"] = pd.to_datetime(fx["valid_from"])
    fx["rate"] = fx["rate"].astype(float)

    def rate(row) -> float:
        if row["CurrencyIsoCode"] in ("", "USD"):
            return 1.0
        r = fx[(fx["currency_iso_code"] == row["CurrencyIsoCode"]) & (fx["valid_from"] <= row["close"])]
        return float(r.sort_values("valid_from")["rate"].iloc[-1])

    opp["usd"] = opp["Amount"].astype(float) * opp.apply(rate, axis=1)
    opp["won"] = opp["IsWon"].str.lower() == "true"
    opp["month"] = opp["close"].dt.to_period("M").dt.to_timestamp()
    opp["cycle"] = (opp["close"] - pd.to_datetime(opp["CreatedDate"].str[:10])).dt.days
    g = opp.groupby(["OwnerId", "month"])
    won = opp[opp["won"]].groupby(["OwnerId", "month"])
    out = pd.DataFrame(
        {
            "won_count": g["won"].sum(),
            "lost_count": g["won"].count() - g["won"].sum(),
            "won_amount": won["usd"].sum(),
            "avg_deal_size": won["usd"].mean(),
            "avg_sales_cycle_days": won["cycle"].mean(),
        }
    ).fillna({"won_amount": 0.0})
    q = pd.read_csv(sample / "quotas.csv", dtype={"owner_id": str})
    q["month"] = pd.to_datetime(q["period_start"])
    quota = q.groupby(["owner_id", "month"])["quota_amount"].sum()
    quota.index.names = ["OwnerId", "month"]
    out = out.join(quota, how="left").fillna({"quota_amount": 0.0})
    out["win_rate"] = out["won_count"] / (out["won_count"] + out["lost_count"])
    out["attainment"] = out["won_amount"] / out["quota_amount"].where(out["quota_amount"] > 0)
    return out.reset_index()


def test_win_rate_bookings_and_attainment_match_an_independent_computation(sample, published):
    ctx, _ = published
    expected = _independent_rep_months(sample)
    mart = query_frame(ctx.warehouse, "select * from marts.mart_rep_performance")
    mart["fiscal_month"] = pd.to_datetime(mart["fiscal_month"])
    merged = expected.merge(mart, left_on=["OwnerId", "month"], right_on=["owner_id", "fiscal_month"],
                            how="left", suffixes=("_exp", "_mart"), validate="one_to_one")
    assert merged["owner_id"].notna().all(), "a rep-month with closed deals is missing from the mart"
    # several reps, every month they closed deals in
    assert merged["OwnerId"].nunique() >= 20
    for col in ("won_count", "lost_count"):
        assert (merged[f"{col}_exp"] == merged[f"{col}_mart"]).all(), col
    for col in ("won_amount", "quota_amount", "win_rate", "attainment"):
        a, b = merged[f"{col}_exp"].astype(float), merged[f"{col}_mart"].astype(float)
        same = ((a - b).abs() <= 0.01 + 1e-9 * a.abs()) | (a.isna() & b.isna())
        assert same.all(), merged.loc[~same, ["OwnerId", "month", f"{col}_exp", f"{col}_mart"]].head()


def test_deal_size_and_sales_cycle_match_an_independent_computation(sample, published):
    ctx, _ = published
    expected = _independent_rep_months(sample)
    card = query_frame(ctx.warehouse, "select owner_id, fiscal_month, avg_deal_size, avg_sales_cycle_days "
                  "from marts.mart_rep_scorecard")
    card["fiscal_month"] = pd.to_datetime(card["fiscal_month"])
    merged = expected.merge(card, left_on=["OwnerId", "month"], right_on=["owner_id", "fiscal_month"],
                            how="inner", suffixes=("_exp", "_mart"), validate="one_to_one")
    assert len(merged) >= 0.9 * len(expected)  # leavers' months after departure are not in the score card
    for col in ("avg_deal_size", "avg_sales_cycle_days"):
        a, b = merged[f"{col}_exp"].astype(float), merged[f"{col}_mart"].astype(float)
        same = ((a - b).abs() <= 0.01 + 1e-9 * a.abs()) | (a.isna() & b.isna())
        assert same.all(), merged.loc[~same, ["OwnerId", "month", f"{col}_exp", f"{col}_mart"]].head()


def test_duckdb_1_4_reads_the_published_warehouse_and_its_bi_copy(published, duckdb_1_4):
    """BI drivers bundling DuckDB 1.x read the real marts and views (the warehouse is kept in the 1.4 format)."""
    ctx, summary = published
    script = (
        "import duckdb, sys\n"
        "for path in sys.argv[1:]:\n"
        "    c = duckdb.connect(path, read_only=True)\n"
        "    print(c.execute('select count(*) > 0 from marts.mart_rep_performance').fetchall()[0][0],\n"
        "          c.execute('select count(*) > 0 from staging.stg_crm__opportunities').fetchall()[0][0],\n"
        "          c.execute('select count(*) > 0 from forecasts.fct_forecasts').fetchall()[0][0])\n"
        "    c.close()\n"
    )
    assert duckdb_1_4(script, [str(ctx.warehouse), summary["bi_compat_copy"]]) == ["True"] * 6


def test_fct_opportunities_has_one_row_per_live_opportunity(sample, published):
    ctx, _ = published
    opp = pd.read_csv(sample / "Opportunity.csv", dtype=str, keep_default_na=False)
    live = opp[opp["IsDeleted"].str.lower() != "true"]["Id"].nunique()
    got = query_frame(ctx.warehouse, "select count(*) n, count(distinct opportunity_id) d, "
                 "count(*) filter (where status not in ('open','won','lost')) bad from marts.fct_opportunities")
    assert got.iloc[0].tolist() == [live, live, 0]


def test_rerunning_the_same_date_gives_identical_marts(sample, published, tmp_path):
    ctx, _ = published
    before = query_frame(ctx.warehouse, "select * from marts.mart_rep_performance order by all")
    forecast_sql = "select * exclude (run_id) from forecasts.fct_forecasts order by all"
    forecasts_before = query_frame(ctx.warehouse, forecast_sql)
    again = RunContext.create(as_of=AS_OF, exports=sample, warehouse=ctx.warehouse, run_id="again",
                              settings_file=SETTINGS)
    run_all(again)
    after = query_frame(ctx.warehouse, "select * from marts.mart_rep_performance order by all")
    pd.testing.assert_frame_equal(before, after)
    # the same complete months: every series taken from the forecast cache, with the rows a fit gave
    step = json.loads((again.run_dir / "forecast.json").read_text())
    assert step["fitted"] == 0 and step["reused"] == step["series"] > 0
    pd.testing.assert_frame_equal(query_frame(ctx.warehouse, forecast_sql), forecasts_before)
    # no new backtest origin: the track record is not written twice
    assert step["backtest_rows_new"] == 0
    assert json.loads((again.run_dir / "forecast_marts.json").read_text())["accuracy_rebuilt"] is False
    forecasts = query_frame(ctx.warehouse, "select as_of_date, count(*) n, count(distinct series_id) s "
                       "from forecasts.fct_forecasts where is_selected and not is_backtest group by 1")
    assert len(forecasts) == 1 and forecasts["n"].iloc[0] == 12 * forecasts["s"].iloc[0]  # replaced, not duplicated


def test_a_half_empty_export_fails_and_leaves_the_published_warehouse_untouched(sample, published, tmp_path):
    ctx, _ = published
    bad = tmp_path / "bad"
    shutil.copytree(sample, bad)
    opp = pd.read_csv(bad / "Opportunity.csv", dtype=str, keep_default_na=False)
    opp.head(len(opp) // 3).to_csv(bad / "Opportunity.csv", index=False)
    before = _sha(ctx.warehouse)
    bad_ctx = RunContext.create(as_of=AS_OF, exports=bad, warehouse=ctx.warehouse, run_id="bad", settings_file=SETTINGS)
    with pytest.raises(ValidationFailed, match=r"Opportunity\.csv: expect_table_row_count_to_be_between min_value="):
        run_all(bad_ctx)
    assert _sha(ctx.warehouse) == before
    assert not bad_ctx.build_dir.exists()
    # the bad files are kept, untouched, for someone to look at
    assert (bad_ctx.archive_dir / "Opportunity.csv").read_bytes() == (bad / "Opportunity.csv").read_bytes()
