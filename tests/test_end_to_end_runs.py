"""The nightly run end to end, runs of their own: two as-of dates in sequence, the DAG through Airflow,
injected faults, and the smallest export folder.

Split from test_end_to_end.py (which shares one published sample warehouse) so the two pytest workers of
`make test` can run them side by side. Marked e2e.
"""

from __future__ import annotations

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
from tests.warehouse_queries import query_frame

pytestmark = pytest.mark.e2e

AS_OF = date(2026, 10, 31)
SETTINGS = Path(__file__).with_name("fast_settings.yml")


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("sample")
    # XS (tests only): 25 series at every level are enough to score; the numbers are checked on S elsewhere
    generate(out, scale="XS", seed=7, as_of=AS_OF)
    return out


@pytest.fixture(scope="module")
def two_nights(sample, tmp_path_factory) -> dict:
    """Two as-of dates in sequence on one warehouse, 30 September then 31 October, with what the first left.

    Shared by the accuracy test and, after it, the full-refresh test, which runs a third night on the same
    warehouse: one pair of nights for both instead of one each (a night is most of a minute of CPU)."""
    wh = tmp_path_factory.mktemp("acc") / "salesos.duckdb"
    # the exports of 31 October, run as of 30 September: allowed, as a backfill on later exports must be
    run_all(RunContext.create(as_of=date(2026, 9, 30), exports=sample, warehouse=wh, settings_file=SETTINGS,
                              allow_exports_after_as_of=True))
    first = query_frame(wh, "select count(*) filter (where is_scored and not is_backtest) live, "
                   "count(*) filter (where is_scored and is_backtest) track from marts.mart_forecast_accuracy")
    run_all(RunContext.create(as_of=AS_OF, exports=sample, warehouse=wh, settings_file=SETTINGS))
    return {"warehouse": wh, "first": first}


def test_forecast_accuracy_fills_in_as_periods_close(two_nights):
    """Two as-of dates in sequence: the October forecast made on 30 September is scored once October closes."""
    wh, first = two_nights["warehouse"], two_nights["first"]
    assert first["live"].iloc[0] == 0  # nothing was forecast before the first night
    assert first["track"].iloc[0] > 0  # but the backtest's track record is scored from the first night
    acc = query_frame(wh, "select * from marts.mart_forecast_accuracy where is_scored and not is_backtest")
    assert set(acc["as_of_date"].astype(str)) == {"2026-09-30"}
    assert set(acc["period_start"].astype(str)) == {"2026-10-01"} and set(acc["horizon"]) == {1}
    assert {"company", "region", "team", "rep"} <= set(acc["level"])
    company = acc[(acc["series_id"] == "company:all") & acc["is_selected"]].iloc[0]
    bookings = query_frame(wh, "select bookings from marts.fct_bookings_monthly "
                      "where series_id = 'company:all' and month_start = '2026-10-01'")["bookings"].iloc[0]
    assert company["actual"] == pytest.approx(bookings)
    assert company["abs_error"] == pytest.approx(abs(company["actual"] - company["forecast"]))
    summary = query_frame(wh, "select * from marts.mart_forecast_accuracy_summary where horizon = 1 "
                     "and model <> 'selected'")  # 'selected' pools rows counted under their own model too
    every = query_frame(wh, "select count(*) n from marts.mart_forecast_accuracy where is_scored and horizon = 1")
    assert summary["n_scored"].sum() == every["n"].iloc[0]
    assert (summary["n_scored"] - summary["n_backtest"]).sum() == len(acc[acc["horizon"] == 1])
    # WAPE is defined wherever something was booked (a group that booked nothing has no WAPE, not 0)
    assert summary.loc[summary["sum_actual"] > 0, "wape"].notna().all()
    assert summary.loc[summary["level"] == "company", "wape"].notna().all()


def test_required_files_only_build_the_marts(tiny_exports, tmp_path, capsys):
    wh = tmp_path / "wh" / "only_required.duckdb"
    code = cli_main(["run", "--exports", str(tiny_exports), "--warehouse", str(wh), "--as-of", "2026-10-31",
                     "--settings", str(SETTINGS)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "models built" in out
    fct = query_frame(wh, "select opportunity_id, status, account_id, segment from marts.fct_opportunities order by 1")
    assert fct["opportunity_id"].tolist() == ["006A", "006B", "006C", "006D"]
    assert fct["status"].tolist() == ["won", "lost", "open", "won"]
    assert fct.loc[2, "segment"] == "Unknown" and pd.isna(fct.loc[2, "account_id"])
    perf = query_frame(wh, "select owner_id, fiscal_month, won_count, lost_count, win_rate, quota_amount, attainment "
                  "from marts.mart_rep_performance where owner_id = '005B' and fiscal_month = '2026-09-01'")
    assert perf.iloc[0][["won_count", "lost_count", "win_rate", "quota_amount", "attainment"]].tolist() == [
        1, 1, 0.5, 2000.0, 0.5]
    # the optional product and contact files were not sent: their marts exist and are empty
    for table in ("fct_opportunity_line_items", "mart_product_performance", "dim_contacts"):
        assert query_frame(wh, f"select count(*) as n from marts.{table}")["n"].tolist() == [0], table


def test_cli_reports_a_bad_export_and_exits_1(tiny_exports, tmp_path, capsys):
    (tiny_exports / "Account.csv").write_text("Id,Industry\n001A,Retail\n")
    code = cli_main(["run", "--exports", str(tiny_exports), "--warehouse", str(tmp_path / "w.duckdb"),
                     "--as-of", "2026-10-31"])
    err = capsys.readouterr().err
    assert code == 1
    assert "Account.csv: required column(s) missing: Name" in err
    assert not (tmp_path / "w.duckdb").exists()


def test_the_dag_runs_through_airflow(tmp_path):
    from salesos.demo import airflow_env

    data = tmp_path / "data"
    generate(data / "landing", scale="XS", seed=7, as_of=AS_OF)  # the wiring is under test, not the numbers
    env = airflow_env(data, home=tmp_path / "airflow") | {"SALESOS_SETTINGS": str(SETTINGS)}
    airflow = str(Path(sys.executable).with_name("airflow"))
    subprocess.run([airflow, "db", "migrate"], env=env, check=True, capture_output=True)
    proc = subprocess.run([airflow, "dags", "test", "sales_nightly", AS_OF.isoformat()], env=env,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    wh = data / "warehouse" / "salesos.duckdb"
    assert query_frame(wh, "select count(*) n from marts.fct_opportunities")["n"].iloc[0] > 1_000
    assert (data / "runs" / "latest.json").exists()
    # the forecast task group: mapped chunks per region, reconciled and stored, Prophet models kept as JSON
    levels = query_frame(wh, "select distinct level from forecasts.fct_forecasts")["level"]
    assert set(levels) == {"company", "region", "segment", "team", "rep"}
    assert list((data / "runs").glob("*/forecast_models/*.json.gz"))
    assert "forecast.chunk" in proc.stdout + proc.stderr


def test_a_sample_with_injected_faults_ends_with_every_fault_quarantined_or_reported(tmp_path):
    import json

    exports = tmp_path / "faulty"
    generate(exports, scale="XS", seed=11, as_of=AS_OF, faults=True)
    faults = json.loads((exports / "faults.json").read_text())
    ctx = RunContext.create(as_of=AS_OF, exports=exports, warehouse=tmp_path / "wh" / "salesos.duckdb", settings_file=SETTINGS)
    summary = run_all(ctx)
    con = duckdb.connect(str(ctx.warehouse), read_only=True)
    quarantined = {
        (row, field): reason
        for row, field, reason in con.execute(
            "select _row_number, _field, _reason from quarantine.opportunities"
        ).fetchall()
    }
    con.close()
    rule_for = {"duplicate_id": "duplicate_id", "negative_amount": "negative_value", "unparseable_date": "unparseable_date"}
    for f in faults:
        if f["kind"] in rule_for:
            column = {"Id": "id", "Amount": "amount", "CloseDate": "close_date", "CreatedDate": "created_date"}[f["field"]]
            assert quarantined.get((f["row"], column)) == rule_for[f["kind"]], f
        elif f["kind"] == "unknown_owner":
            assert any(f"{f['row']}" in w and "owner_id" in w for w in summary["checks"]["warnings"]), f
        elif f["kind"] == "renamed_column":
            assert f["value"] in summary["extra_columns"][f["file"]]
            assert f["field"] in summary["missing_columns"][f["file"]]
        elif f["kind"] == "utf8_bom":
            assert summary["rows_quarantined"][f["file"]] == 0
    counted = sum(n for k, n in summary["quarantined_by_rule"].items())
    assert counted == sum(summary["rows_quarantined"].values()) == len([f for f in faults if f["kind"] in rule_for])


def test_full_refresh_reloads_rebuilds_and_refits_everything(sample, two_nights):
    """`salesos run --full-refresh` after earlier nights: every raw table reloaded in full, the incremental
    models rebuilt from scratch and every forecast series fitted again (none taken from the cache).

    On the warehouse of `two_nights` (so this test stays after the accuracy test, which reads it as the two
    nights left it): its last night was of the same as-of date and exports, so without the flag every series
    would come from the cache and the keyed exports would load incrementally."""
    import json

    wh = two_nights["warehouse"]
    base = ["run", "--exports", str(sample), "--warehouse", str(wh), "--settings", str(SETTINGS)]
    assert cli_main([*base, "--as-of", "2026-10-31", "--run-id", "refresh", "--full-refresh"]) == 0
    modes = query_frame(wh, "select distinct load_mode from raw._loads where run_id = 'refresh'")["load_mode"]
    assert modes.tolist() == ["full"]  # without the flag the keyed exports load incrementally
    run_dir = wh.parent / "runs" / "refresh"
    results = json.loads((run_dir / "dbt_target" / "run_results.json").read_text())
    assert results["args"]["full_refresh"] is True  # dbt rebuilt the incremental models from scratch
    forecast = json.loads((run_dir / "forecast.json").read_text())
    assert forecast["series"] > 0 and forecast["fitted"] == forecast["series"] and forecast["reused"] == 0
