"""The nightly run end to end on generated sample data, checked against numbers computed independently.

Marked e2e: these run dbt and Prophet (and one runs Airflow), so they take a minute or two.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from datetime import date
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from salesos.cli import main as cli_main
from salesos.generate import generate
from salesos.pipeline import run_all
from salesos.run_context import RunContext
from salesos.validate.gx_checks import ValidationFailed

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


def _table(wh: Path, sql: str) -> pd.DataFrame:
    con = duckdb.connect(str(wh), read_only=True)
    try:
        return con.execute(sql).df()
    finally:
        con.close()


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
    days = _table(ctx.warehouse, "select count(distinct as_of_date) as n, min(as_of_date) as first, "
                  "bool_or(not is_replay) as tonight from forecasts.fct_period_projections")
    assert days["n"][0] == summary["projection_days"] >= 89  # a fiscal quarter (fast_settings), each day
    assert bool(days["tonight"][0])
    acc = _table(ctx.warehouse, "select * from marts.mart_projection_accuracy")
    assert len(acc) > 0 and acc["actual"].notna().all()
    summ = _table(ctx.warehouse, "select * from marts.mart_projection_accuracy_summary")
    assert {"projection", "commit_call", "best_case_call", "weighted_pipeline_call"} <= set(summ["method"])
    sums = _table(ctx.warehouse, "select as_of_date, period_type, period_start, level, sum(projection) as p "
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
    acc = _table(ctx.warehouse, "select * from marts.mart_forecast_accuracy where is_scored")
    assert len(acc) > 0 and acc["is_backtest"].all()  # nothing live can be scored yet: the track record is
    months = pd.to_datetime(acc["period_start"]).dt.to_period("M")
    assert months.max() == pd.Period(AS_OF, "M") and months.nunique() >= 2  # origins=2 in the fast settings
    assert {"company", "region", "segment", "team", "rep"} <= set(acc["level"])
    assert acc["scaled_error"].notna().all()
    summary_rows = _table(ctx.warehouse, "select * from marts.mart_forecast_accuracy_summary "
                          "where level = 'company' and horizon = 1")
    assert {"selected", primary_prophet_name()} <= set(summary_rows["model"])
    assert (summary_rows["n_backtest"] == summary_rows["n_scored"]).all()
    # scored by the one dbt build after the forecast and the projection (issue 20), not one build after each
    marts = json.loads((ctx.run_dir / "forecast_marts.json").read_text())
    assert marts["accuracy_rebuilt"] is True and marts["models"] > 0
    published_view = _table(ctx.warehouse, "select as_of_date, series_id, period_start, count(*) n "
                            "from forecasts.fct_forecasts where is_selected and not is_backtest group by all")
    assert (published_view["n"] == 1).all() and set(published_view["as_of_date"].astype(str)) == {str(AS_OF)}
    assert len(published_view) == summary["forecast_rows"]
    prophet = _table(ctx.warehouse, "select count(distinct series_id) n from forecasts.fct_forecasts "
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
    mart = _table(ctx.warehouse, "select * from marts.mart_rep_performance")
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
    card = _table(ctx.warehouse, "select owner_id, fiscal_month, avg_deal_size, avg_sales_cycle_days "
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


def test_dbt_docs_generate_works_on_the_published_warehouse(published, tmp_path):
    from salesos.settings import load_settings
    from salesos.transform.dbt_build import DBT_PROJECT_DIR, dbt_env, dbt_executable, dbt_vars

    ctx, _ = published
    copy = tmp_path / "docs" / ctx.warehouse.name
    copy.parent.mkdir()
    shutil.copyfile(ctx.warehouse, copy)
    import json as _json

    proc = subprocess.run(
        [dbt_executable(), "docs", "generate", "--project-dir", str(DBT_PROJECT_DIR), "--profiles-dir",
         str(DBT_PROJECT_DIR), "--target-path", str(tmp_path / "target"), "--log-path", str(tmp_path / "logs"),
         "--vars", _json.dumps(dbt_vars(load_settings(), AS_OF.isoformat()))],
        env=dbt_env(copy, "duckdb"), capture_output=True, text=True,
    )
    assert proc.returncode == 0, proc.stdout[-2000:]
    catalog = _json.loads((tmp_path / "target" / "catalog.json").read_text())
    assert "model.salesos.mart_rep_scorecard" in catalog["nodes"]


def test_dbt_unit_tests_pass(published, tmp_path):
    """The nightly build leaves dbt's unit tests out (fixed fixtures, not the night's data): they run here."""
    from salesos.settings import load_settings
    from salesos.transform.dbt_build import run_dbt

    ctx, _ = published
    build = json.loads((ctx.run_dir / "build.json").read_text())
    assert not any(k.startswith("unit_test:") for k in build["statuses"]), build["statuses"]
    copy = tmp_path / "unit" / ctx.warehouse.name
    copy.parent.mkdir()
    shutil.copyfile(ctx.warehouse, copy)
    result = run_dbt(["test", "--select", "test_type:unit"], warehouse=copy, run_dir=tmp_path / "unit_run",
                     settings=load_settings(), as_of=AS_OF.isoformat())
    assert result.tests_passed >= 25 and not result.failures


def test_fct_opportunities_has_one_row_per_live_opportunity(sample, published):
    ctx, _ = published
    opp = pd.read_csv(sample / "Opportunity.csv", dtype=str, keep_default_na=False)
    live = opp[opp["IsDeleted"].str.lower() != "true"]["Id"].nunique()
    got = _table(ctx.warehouse, "select count(*) n, count(distinct opportunity_id) d, "
                 "count(*) filter (where status not in ('open','won','lost')) bad from marts.fct_opportunities")
    assert got.iloc[0].tolist() == [live, live, 0]


def test_rerunning_the_same_date_gives_identical_marts(sample, published, tmp_path):
    ctx, _ = published
    before = _table(ctx.warehouse, "select * from marts.mart_rep_performance order by all")
    forecast_sql = "select * exclude (run_id) from forecasts.fct_forecasts order by all"
    forecasts_before = _table(ctx.warehouse, forecast_sql)
    again = RunContext.create(as_of=AS_OF, exports=sample, warehouse=ctx.warehouse, run_id="again",
                              settings_file=SETTINGS)
    run_all(again)
    after = _table(ctx.warehouse, "select * from marts.mart_rep_performance order by all")
    pd.testing.assert_frame_equal(before, after)
    # the same complete months: every series taken from the forecast cache, with the rows a fit gave
    step = json.loads((again.run_dir / "forecast.json").read_text())
    assert step["fitted"] == 0 and step["reused"] == step["series"] > 0
    pd.testing.assert_frame_equal(_table(ctx.warehouse, forecast_sql), forecasts_before)
    # no new backtest origin: the track record is not written twice
    assert step["backtest_rows_new"] == 0
    assert json.loads((again.run_dir / "forecast_marts.json").read_text())["accuracy_rebuilt"] is False
    forecasts = _table(ctx.warehouse, "select as_of_date, count(*) n, count(distinct series_id) s "
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


def test_a_reader_holding_the_warehouse_sees_one_version_while_a_run_publishes(sample, published, tmp_path):
    """A BI reader keeps the file open during a nightly run: it is not blocked, it never blocks the run,
    and every query it makes sees the same (old) version until it reopens."""
    published_ctx, _ = published
    ctx = RunContext.create(as_of=AS_OF, exports=sample, warehouse=tmp_path / "wh" / "salesos.duckdb",
                            settings_file=SETTINGS)
    ctx.warehouse.parent.mkdir(parents=True)
    shutil.copyfile(published_ctx.warehouse, ctx.warehouse)
    reader = subprocess.Popen(
        [sys.executable, "-c", (
            "import duckdb, sys, time\n"
            "con = duckdb.connect(sys.argv[1], read_only=True)\n"
            "print('ready', flush=True)\n"
            "while True:\n"
            "    row = con.execute('select count(*), sum(amount) from marts.fct_opportunities').fetchall()[0]\n"
            "    print(row[0], round(row[1], 2), flush=True)\n"
            "    if sys.stdin.readline().strip() == 'stop':\n"
            "        break\n"
        ), str(ctx.warehouse)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert reader.stdout.readline().strip() == "ready"
        first = reader.stdout.readline().strip()
        changed = tmp_path / "changed"
        shutil.copytree(sample, changed)
        opp = pd.read_csv(changed / "Opportunity.csv", dtype=str, keep_default_na=False)
        opp.head(len(opp) - 100).to_csv(changed / "Opportunity.csv", index=False)  # a visibly different export
        run_all(RunContext.create(as_of=AS_OF, exports=changed, warehouse=ctx.warehouse, run_id="while_read", settings_file=SETTINGS))
        reader.stdin.write("again\n")
        reader.stdin.flush()
        during = reader.stdout.readline().strip()
        reader.stdin.write("stop\n")
        reader.stdin.flush()
    finally:
        reader.wait(timeout=30)
    assert during == first  # the open connection still reads the version it opened
    now = _table(ctx.warehouse, "select count(*) n, round(sum(amount), 2) s from marts.fct_opportunities")
    assert f"{now['n'].iloc[0]} {now['s'].iloc[0]}" != first  # a new connection sees the new version


def test_a_run_killed_in_the_middle_of_dbt_is_recovered_by_the_next_run(sample, published, tmp_path, capsys):
    import os
    import signal
    import time

    ctx, _ = published
    before = _sha(ctx.warehouse)
    salesos = str(Path(sys.executable).with_name("salesos"))
    args = ["run", "--exports", str(sample), "--warehouse", str(ctx.warehouse), "--as-of", AS_OF.isoformat(),
            "--settings", str(SETTINGS)]
    proc = subprocess.Popen([salesos, *args, "--run-id", "killed"], start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    dbt_log = ctx.data_dir / "runs" / "killed" / "dbt_logs" / "dbt.log"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (dbt_log.exists() and "Concurrency" in dbt_log.read_text(errors="ignore")):
        time.sleep(0.2)
    assert proc.poll() is None, "the run ended before dbt started"
    time.sleep(1.5)  # dbt is writing models into the build copy
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert _sha(ctx.warehouse) == before  # the killed run published nothing
    assert (ctx.data_dir / "build" / "killed").exists()  # and left its half-built copy behind
    capsys.readouterr()
    assert cli_main([*args, "--run-id", "next"]) == 0
    assert not (ctx.data_dir / "build" / "killed").exists()
    assert _table(ctx.warehouse, "select count(*) n from marts.fct_opportunities")["n"].iloc[0] > 10_000
    # no terminal (pytest captures stderr): one line per step as it ends, rows/s for the load, dbt's nodes
    steps = [line for line in capsys.readouterr().err.splitlines() if " done in " in line]
    assert [line.split()[0] for line in steps] == ["extract", "validate", "build", "forecast", "publish"]
    assert "rows read from" in steps[0] and "rows/s" in steps[0]
    assert "models built" in steps[2] and " models" in steps[2].split(";")[-1] and " tests" in steps[2]
