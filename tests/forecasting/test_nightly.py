"""The nightly forecast on a small known hierarchy: every level forecast, reconciled, checked, stored, drawn."""

from datetime import date
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from forecasting.methods import primary_prophet_name
from forecasting.nightly import (
    FORECAST_TABLE,
    ensure_forecast_table,
    forecast_all,
    load_series,
    store_forecasts,
    write_charts,
)
from salesos.validate.gx_checks import validate_forecasts

REPS = {  # rep -> (team, region, segment)
    "r1": ("t1", "EMEA", "SMB"), "r2": ("t1", "EMEA", "SMB"), "r3": ("t2", "EMEA", "Enterprise"),
    "r4": ("t3", "APAC", "SMB"), "r5": ("t3", "APAC", "Enterprise"), "leaver": ("t3", "APAC", "SMB"),
}


@pytest.fixture(scope="module")
def con():
    rng = np.random.default_rng(3)
    months = pd.date_range("2023-11-01", "2026-10-01", freq="MS")
    deals = []
    for rep, (team, region, segment) in REPS.items():
        for i, m in enumerate(months):
            if rep == "leaver" and m > pd.Timestamp("2024-06-01"):
                break
            amount = 10_000 * (1.01**i) * (1.6 if m.month in (1, 4, 7, 10) else 1.0) * rng.uniform(0.7, 1.3)
            deals.append((f"{rep}-{i}", rep, team, region, segment, "won", (m + pd.Timedelta(days=9)).date(), amount))
    c = duckdb.connect()
    c.execute("create schema marts")
    c.execute("create table marts.fct_opportunities (opportunity_id varchar, owner_id varchar, team_id varchar, "
              "region varchar, segment varchar, status varchar, close_date date, amount double)")
    c.executemany("insert into marts.fct_opportunities values (?, ?, ?, ?, ?, ?, ?, ?)", deals)
    # the forecast tree takes each rep's current team and region (no rep moved in this fixture)
    c.execute("alter table marts.fct_opportunities add column current_team_id varchar")
    c.execute("alter table marts.fct_opportunities add column current_region varchar")
    c.execute("update marts.fct_opportunities set current_team_id = team_id, current_region = region")
    # the bookings series as the dbt model defines them (dense months, every level)
    c.execute("""
        create table marts.fct_bookings_monthly as
        with won as (select *, date_trunc('month', close_date)::date as m from marts.fct_opportunities),
        lv as (
            select 'company' as level, 'all' as series_key, m, amount from won
            union all select 'region', region, m, amount from won
            union all select 'segment', segment, m, amount from won
            union all select 'team', team_id, m, amount from won
            union all select 'rep', owner_id, m, amount from won
        ),
        keys as (select distinct level, series_key from lv),
        months as (select unnest(generate_series(DATE '2023-11-01', DATE '2026-10-01', INTERVAL 1 MONTH))::date as m)
        select k.level || ':' || k.series_key as series_id, k.level, k.series_key, k.series_key as series_name,
               months.m as month_start, coalesce(sum(lv.amount), 0) as bookings, count(lv.amount) as won_count,
               true as is_complete
        from keys k cross join months left join lv on lv.level = k.level and lv.series_key = k.series_key
            and lv.m = months.m
        group by all
    """)
    return c


def test_series_leave_out_reps_without_recent_bookings(con):
    s = load_series(con)
    assert "rep:leaver" not in s.series and "rep:r1" in s.series
    assert sorted(s.mapping["rep"]) == ["r1", "r2", "r3", "r4", "r5"]
    assert len(s.series["company:all"]) == 36


@pytest.fixture(scope="module")
def whole(con):
    """forecast_all once for the module: the reference the chunked path must equal."""
    return forecast_all(con, date(2026, 10, 31), "run1", horizon=3, origins=2, processes=1)


def test_every_level_is_forecast_coherent_and_passes_the_checks(con, whole, tmp_path):
    assert validate_forecasts(whole).success  # every row: no nulls, nested, non-negative, one per model and period
    rows = whole[whole["is_selected"] & ~whole["is_backtest"]].copy()  # the published forecast
    assert set(rows["level"]) == {"company", "region", "segment", "team", "rep"}
    assert rows.groupby("series_id").size().eq(3).all()
    assert rows["period_start"].min() == date(2026, 11, 1)
    wide = rows.pivot_table(index="period_start", columns="series_id", values="yhat")
    reps = [f"rep:r{i}" for i in range(1, 6)]
    np.testing.assert_allclose(wide[reps].sum(axis=1), wide["company:all"], rtol=1e-9)
    np.testing.assert_allclose(wide[["rep:r1", "rep:r2"]].sum(axis=1), wide["team:t1"], rtol=1e-9)
    np.testing.assert_allclose(wide[["team:t1", "team:t2"]].sum(axis=1), wide["region:EMEA"], rtol=1e-9)
    np.testing.assert_allclose(wide[["segment:SMB", "segment:Enterprise"]].sum(axis=1), wide["company:all"], rtol=1e-9)
    assert validate_forecasts(rows).success  # no nulls, nested, non-negative, one row per series and period
    assert rows["model_params"].str.contains('"reconciliation"').all()
    # MinT-shrink on the track record's errors (2 origins x 3 months), not the no-residuals fallback
    tree = rows[rows["level"] != "segment"]
    assert tree["model_params"].str.contains('"reconciliation": "mint_shrink"').all()
    assert 30_000 < rows.loc[rows["series_id"] == "company:all", "yhat"].mean() < 150_000
    assert store_forecasts(con, whole) == len(whole)
    assert con.execute(f"select count(distinct series_id) from {FORECAST_TABLE}").fetchall()[0][0] == 13
    charts = write_charts(con, whole, tmp_path / "charts")  # drawn from the published rows only
    assert {p.name for p in charts} == {"company_all.png", "region_APAC.png", "region_EMEA.png", "team_t1.png",
                                        "team_t2.png", "team_t3.png"}
    assert all(p.stat().st_size > 10_000 for p in charts)


def test_prophet_is_stored_beside_every_choice_and_the_backtest_is_a_track_record(whole):
    primary = primary_prophet_name()
    live = whole[~whole["is_backtest"]]
    for sid, g in live.groupby("series_id"):
        selected = g[g["is_selected"]]
        assert selected["model"].nunique() == 1 and len(selected) == 3, sid
        # Prophet's own forecast is there under its name, or Prophet is the choice itself
        assert (g["model"] == primary).sum() == 3, sid
        assert len(g) == (3 if selected["model"].iloc[0] == primary else 6), sid
    prophet = live[(live["model"] == primary) & ~live["is_selected"]]
    assert prophet["model_params"].str.contains('"reconciliation": null').all()  # Prophet as it forecast
    track = whole[whole["is_backtest"]]
    for sid, g in track.groupby("series_id"):
        # two origins (origins=2), each the 3 months after its own as-of date, for the choice and Prophet
        # (the last origin's 3 months are the last 3 closed months: scored on the first night)
        assert sorted(set(g["as_of_date"])) == [date(2026, 6, 30), date(2026, 7, 31)], sid
        last = g[g["as_of_date"] == date(2026, 7, 31)]
        assert sorted(set(last["period_start"])) == [date(2026, 8, 1), date(2026, 9, 1), date(2026, 10, 1)]
        assert set(g["model"]) == set(live.loc[live["series_id"] == sid, "model"]), sid
        assert (g["training_end"] < g["period_start"]).all()
    assert set(track["series_id"]) == set(live["series_id"])


def test_backtest_residuals_cover_every_node_and_count_a_missing_forecast_as_zero(con, whole):
    from forecasting.nightly import backtest_residuals

    s = load_series(con)
    res = backtest_residuals(whole, s)
    assert res["ds"].nunique() == 6  # 2 origins x 3 months
    assert set(res["level"]) == {"company", "region", "team", "rep"}
    assert res.groupby(["level", "node"]).size().eq(6).all()  # a complete grid: MinT needs every node each time
    track = whole[whole["is_backtest"] & whole["is_selected"] & (whole["series_id"] == "company:all")]
    first = track.sort_values(["as_of_date", "period_start"]).iloc[0]
    actual = s.series["company:all"].set_index("ds")["y"][pd.Timestamp(first["period_start"])]
    got = res[(res["level"] == "company") & (res["ds"] == f"{first['as_of_date']}/{first['period_start']}")]
    assert got["residual"].iloc[0] == pytest.approx(actual - first["yhat"])
    gone = backtest_residuals(whole[whole["series_id"] != "rep:r1"], s)  # r1 had no forecast: residual = actual
    r1 = gone[(gone["level"] == "rep") & (gone["node"] == "r1")].set_index("ds")["residual"]
    assert len(r1) == 6 and (r1 > 0).all()
    months = pd.to_datetime(r1.index.str.split("/").str[1])
    expected = s.series["rep:r1"].set_index("ds")["y"].reindex(months).fillna(0).to_numpy()
    np.testing.assert_allclose(r1.to_numpy(), expected)


def test_no_bookings_gives_no_rows():
    c = duckdb.connect()
    c.execute("create schema marts")
    c.execute("create table marts.fct_bookings_monthly (series_id varchar, level varchar, series_key varchar, "
              "series_name varchar, month_start date, bookings double, won_count bigint, is_complete boolean)")
    assert forecast_all(c, date(2026, 10, 31), "r").empty


def test_only_the_configured_levels_are_forecast_and_not_reconciled(con):
    rows = forecast_all(con, date(2026, 10, 31), "run1", horizon=2, origins=2, processes=1,
                        levels=("company", "segment"))
    assert set(rows["level"]) == {"company", "segment"}
    assert rows["model_params"].str.contains('"reconciliation": null').all()


def test_series_are_chunked_by_region_with_company_and_segments_apart(con):
    from forecasting.nightly import assign_chunks

    s = load_series(con)
    chunks = assign_chunks(s)
    assert list(chunks) == ["company", "region=APAC", "region=EMEA"]
    assert chunks["company"] == ["company:all", "segment:Enterprise", "segment:SMB"]
    assert chunks["region=EMEA"] == ["region:EMEA", "rep:r1", "rep:r2", "rep:r3", "team:t1", "team:t2"]
    assert chunks["region=APAC"] == ["region:APAC", "rep:r4", "rep:r5", "team:t3"]
    split = assign_chunks(s, max_series=4)
    assert [c for c in split if c.startswith("region=EMEA")] == ["region=EMEA part 1 of 2", "region=EMEA part 2 of 2"]
    assert sorted(split["region=EMEA part 1 of 2"] + split["region=EMEA part 2 of 2"]) == chunks["region=EMEA"]
    assert sorted(sid for ids in split.values() for sid in ids) == sorted(s.series)


def test_chunks_run_separately_give_the_rows_of_one_process_and_keep_prophet_json(con, whole, tmp_path):
    """What the Airflow mapped tasks do (one chunk per task) equals `forecast_all`; models are Prophet JSON."""
    import gzip
    import json

    from prophet.serialize import model_from_json

    from forecasting.nightly import assemble_forecasts, forecast_chunk, plan_forecast

    as_of = date(2026, 10, 31)
    work, models = tmp_path / "work", tmp_path / "models"
    chunks = plan_forecast(con, work)
    with pytest.raises(FileNotFoundError, match="region=APAC"):
        forecast_chunk(work, "region=EMEA", 3, 2, processes=1, models_dir=models)
        forecast_chunk(work, "company", 3, 2, processes=1, models_dir=models)
        assemble_forecasts(work, as_of, "run1")
    for chunk in chunks:
        forecast_chunk(work, chunk, 3, 2, processes=1, models_dir=models)
    parts = assemble_forecasts(work, as_of, "run1")
    pd.testing.assert_frame_equal(parts.drop(columns="model_params"), whole.drop(columns="model_params"))
    with pytest.raises(KeyError, match="region=Mars"):
        forecast_chunk(work, "region=Mars", 3, 2, processes=1)

    params = parts.drop_duplicates("series_id").set_index("series_id")["model_params"].map(json.loads)
    with_prophet = {sid: p["selection"]["prophet_json"] for sid, p in params.items() if "prophet_json" in p["selection"]}
    chosen = parts[parts["is_selected"] & ~parts["is_backtest"]]  # the JSON kept is the choice's Prophet fits
    uses_prophet = set(chosen.loc[chosen["model"].str.contains("prophet"), "series_id"])
    assert uses_prophet and set(with_prophet) == uses_prophet
    for sid, name in with_prophet.items():
        with gzip.open(models / name, "rt", encoding="utf-8") as fh:
            kept = json.load(fh)
        assert kept["series_id"] == sid and kept["fits"]
        for fit in kept["fits"]:
            assert model_from_json(fit["model_json"]).params["k"] is not None


def test_unchanged_series_are_taken_from_the_cache_with_the_rows_of_a_fresh_fit(con, whole, tmp_path):
    """A second night with the same complete months fits nothing and stores the same rows; a changed series
    (a backdated deal) is fitted again alone; a full refresh fits all; stale entries are pruned."""
    import gzip
    import json

    from forecasting.nightly import (
        assemble_forecasts,
        fitted_and_reused,
        forecast_chunks,
        plan_forecast,
        prune_forecast_cache,
    )

    cache = tmp_path / "cache"
    as_of = date(2026, 10, 31)

    def night(name: str, reuse: bool = True, edit=None) -> tuple[pd.DataFrame, dict, Path]:
        work, models = tmp_path / name / "work", tmp_path / name / "models"
        chunks = plan_forecast(con, work)
        if edit is not None:
            series = pd.read_parquet(work / "series.parquet")
            edit(series)
            series.to_parquet(work / "series.parquet", index=False)
        done = forecast_chunks(work, chunks, 3, 2, processes=1, models_dir=models, cache_dir=cache, reuse=reuse)
        assert sum(d["fitted"] + d["reused"] for d in done) == sum(d["series"] for d in done)
        return assemble_forecasts(work, as_of, "run1"), fitted_and_reused(work), models

    first, use1, _ = night("n1")
    pd.testing.assert_frame_equal(first.drop(columns="model_params"), whole.drop(columns="model_params"))
    assert use1 == {"fitted": 13, "reused": 0}
    entries = sorted(p.name for p in cache.iterdir())

    second, use2, models2 = night("n2")
    assert use2 == {"fitted": 0, "reused": 13}
    pd.testing.assert_frame_equal(second, first)
    assert sorted(p.name for p in cache.iterdir()) == entries  # nothing new written
    for name in {json.loads(p)["selection"].get("prophet_json") for p in second["model_params"]} - {None}:
        with gzip.open(models2 / name, "rt", encoding="utf-8") as fh:  # the kept fits come with the reuse
            assert json.load(fh)["fits"]

    def backdated_deal(series: pd.DataFrame) -> None:
        series.loc[(series["series_id"] == "rep:r4") & (series["ds"] == series["ds"].max()), "y"] += 5_000.0

    third, use3, _ = night("n3", edit=backdated_deal)
    assert use3 == {"fitted": 1, "reused": 12}
    fresh, _, _ = night("n3_fresh", reuse=False, edit=backdated_deal)  # every series fitted, as without a cache
    pd.testing.assert_frame_equal(third, fresh)
    r4 = third["series_id"] == "rep:r4"
    assert not np.allclose(third.loc[r4, "yhat"], whole.loc[whole["series_id"] == "rep:r4", "yhat"])

    # the cache now holds both versions of rep:r4; pruning after night 3 keeps only what it used
    assert prune_forecast_cache(tmp_path / "n3" / "work", cache) >= 1
    fourth, use4, _ = night("n4", edit=backdated_deal)
    assert use4 == {"fitted": 0, "reused": 13}
    pd.testing.assert_frame_equal(fourth, fresh)
    assert night("n5")[1] == {"fitted": 1, "reused": 12}  # the pruned original r4 is fitted again


def test_a_series_key_changes_with_anything_its_forecast_depends_on():
    from forecasting.nightly import fit_fingerprint

    hist = pd.DataFrame({"ds": pd.date_range("2024-01-01", periods=24, freq="MS"), "y": np.arange(24.0)})
    base = fit_fingerprint("rep:r1", hist, 12, 6, "full", True, b"env")
    assert base == fit_fingerprint("rep:r1", hist.copy(), 12, 6, "full", True, b"env")
    changed = hist.copy()
    changed.loc[3, "y"] += 0.01
    longer = pd.concat([hist, pd.DataFrame({"ds": [pd.Timestamp("2026-01-01")], "y": [1.0]})], ignore_index=True)
    others = [
        fit_fingerprint("rep:r2", hist, 12, 6, "full", True, b"env"),
        fit_fingerprint("rep:r1", changed, 12, 6, "full", True, b"env"),
        fit_fingerprint("rep:r1", longer, 12, 6, "full", True, b"env"),
        fit_fingerprint("rep:r1", hist, 6, 6, "full", True, b"env"),
        fit_fingerprint("rep:r1", hist, 12, 3, "full", True, b"env"),
        fit_fingerprint("rep:r1", hist, 12, 6, "primary", True, b"env"),
        fit_fingerprint("rep:r1", hist, 12, 6, "full", False, b"env"),
        fit_fingerprint("rep:r1", hist, 12, 6, "full", True, b"other code or libraries"),
        fit_fingerprint("rep:r1", hist, 12, 6, "full", True, b"env", "cmdstan"),
    ]
    assert base not in others and len(set(others)) == len(others)


def test_charts_drawn_in_a_process_pool_are_the_files_drawn_in_one_process(con, tmp_path, monkeypatch):
    import forecasting.nightly as nightly

    rows = forecast_all(con, date(2026, 10, 31), "run1", horizon=2, origins=2, processes=1)
    monkeypatch.setattr(nightly, "CHARTS_PER_PROCESS", 2)  # 6 charts: a pool of 2
    pooled = write_charts(con, rows, tmp_path / "pool", processes=2)
    alone = write_charts(con, rows, tmp_path / "alone", processes=1)
    assert [p.name for p in pooled] == [p.name for p in alone] and len(alone) == 6
    assert all(p.read_bytes() == q.read_bytes() for p, q in zip(pooled, alone, strict=True))


# ------------------------------------------------------------------- the table: forecasts.fct_forecasts


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
