"""The in-quarter projection's targets (issue 17) measured on the generated sample: one first night, replayed.

    .venv/bin/python benchmarks/projection.py --scale S [--keep DIR]

Runs a first night (generate, run_all with tests/fast_settings.yml but the projection defaults), so the
projection replays the last four fiscal quarters; then reads `marts.mart_projection_accuracy` and reports,
over the replayed quarters:
- WAPE of the projection and of each call at 25% and 50% of the quarter elapsed (the first day each quarter
  reaches it), at company and region level, and the time-series forecast of the quarter made at its start
  (`forecasting.models.forecast`, the nightly selection, on the complete months before the quarter);
- coverage of the 80% (and 95%) interval over every replayed day of the quarters, at company, region, team;
- where each company quarter's bookings came from (won to date, deals open on the day, deals created after
  it) beside the projection's parts (M USD);
- the projection step's time on the first night (replay) and on a following night (one day), wall and CPU.
Results are recorded by hand in benchmarks/projection.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from datetime import date
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

AS_OF = date(2026, 10, 31)
FAST_SETTINGS = Path(__file__).resolve().parents[1] / "tests" / "fast_settings.yml"


SNAPSHOT_MONTHS: int | None = None  # --snapshot-months: pipeline_snapshot_months for the night


def bench_settings(work: Path) -> Path:
    """The end-to-end tests' quick forecast settings with the projection's defaults (not their one quarter)."""
    import yaml

    values = {k: v for k, v in yaml.safe_load(FAST_SETTINGS.read_text()).items() if not k.startswith("projection_")}
    if SNAPSHOT_MONTHS is not None:
        values["pipeline_snapshot_months"] = SNAPSHOT_MONTHS
    path = work / "settings.yml"
    path.write_text(yaml.safe_dump(values))
    return path
CALLS = ("projection", "commit_call", "best_case_call", "weighted_pipeline_call")


def first_night(scale: str, work: Path) -> tuple[Path, dict]:
    from salesos.generate import generate
    from salesos.pipeline import run_all
    from salesos.run_context import RunContext

    exports = work / "exports"
    generate(exports, scale=scale, seed=7, as_of=AS_OF)
    wh = work / "wh" / "salesos.duckdb"
    wh.parent.mkdir(parents=True)
    t0 = time.perf_counter()
    ctx = RunContext.create(as_of=AS_OF, exports=exports, warehouse=wh, settings_file=bench_settings(work))
    run_all(ctx)
    night = time.perf_counter() - t0
    step = json.loads((ctx.run_dir / "projection.json").read_text())
    return wh, {"night_seconds": round(night, 1), "projection": step}


def step_seconds(wh: Path, work: Path, replay: bool) -> str:
    """The projection (without its dbt build) on a copy: a replay (full refresh), or a night after the first
    (the table holds every day but as_of, so only as_of is projected)."""
    from forecasting.projection_nightly import PROJECTION_TABLE, ProjectionOptions, project
    from salesos.settings import load_settings

    copy = work / "step.duckdb"
    shutil.copyfile(wh, copy)
    con = duckdb.connect(str(copy))
    con.execute(f"delete from {PROJECTION_TABLE} where as_of_date = ?", [AS_OF])
    t0, c0 = time.perf_counter(), time.process_time()
    project(con, con, as_of=AS_OF, run_id="bench", model_dir=work / "step_model", full_refresh=replay,
            options=ProjectionOptions.from_settings(load_settings(bench_settings(work))))
    con.close()
    return f"{time.perf_counter() - t0:.1f} s wall, {time.process_time() - c0:.1f} s CPU"


def time_series_quarters(con: duckdb.DuckDBPyConnection, starts: list[date], series: list[str]) -> pd.DataFrame:
    """The nightly forecaster's forecast of each quarter, made on the complete months before it started."""
    from forecasting.select import forecast

    monthly = con.execute("select series_id, month_start as ds, bookings as y from marts.fct_bookings_monthly "
                          "where series_id in (select unnest(?))", [series]).df()
    monthly["ds"] = pd.to_datetime(monthly["ds"])
    rows = []
    for q in starts:
        for sid in series:
            hist = monthly[(monthly["series_id"] == sid) & (monthly["ds"] < pd.Timestamp(q))][["ds", "y"]]
            fc, sel = forecast(hist.reset_index(drop=True), horizon=3, origins=2)
            rows.append({"series_id": sid, "period_start": q, "time_series": float(fc["yhat"].sum()),
                         "model": sel.model})
    return pd.DataFrame(rows)


def sources(con: duckdb.DuckDBPyConnection, rows: pd.DataFrame) -> pd.DataFrame:
    """Where each company quarter's bookings came from, seen from the day it was projected: deals open that
    day, deals created after it (the rest was won to date), beside the projection's parts."""
    out = []
    for r in rows.itertuples():
        won_open, won_new = con.execute(
            "select coalesce(sum(amount::double) filter (where opportunity_id in (select opportunity_id from "
            "marts.fct_pipeline_snapshots where snapshot_date = ?)), 0), "
            "coalesce(sum(amount::double) filter (where created_date > ?), 0) from marts.fct_opportunities "
            "where status = 'won' and close_date between ? and ?",
            [r.as_of_date, r.as_of_date, r.period_start, r.period_end]).fetchone()
        out.append({"as_of_date": r.as_of_date, "actual": r.actual, "projection": r.projection,
                    "won_to_date": r.won_to_date, "open_expected": r.open_pipeline_expected,
                    "won_from_open": won_open, "new_expected": r.new_pipeline_expected, "won_from_new": won_new,
                    "weighted_call": r.weighted_pipeline_call})
    return (pd.DataFrame(out).set_index("as_of_date").astype("float64") / 1e6).round(2)


def wape(actual: pd.Series, call: pd.Series) -> float:
    return float((call - actual).abs().sum() / actual.abs().sum())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scale", default="S")
    ap.add_argument("--keep", type=Path, default=None, help="work folder to keep (default: a temporary one)")
    ap.add_argument("--warehouse", type=Path, default=None,
                    help="score an already published first night instead of running one (replay timed again)")
    ap.add_argument("--snapshot-months", type=int, default=None, help="pipeline_snapshot_months for the night")
    args = ap.parse_args()
    global SNAPSHOT_MONTHS
    SNAPSHOT_MONTHS = args.snapshot_months
    work = args.keep or Path(tempfile.mkdtemp(prefix="projection_bench_"))
    work.mkdir(parents=True, exist_ok=True)
    if args.warehouse is None:
        wh, timing = first_night(args.scale, work)
    else:
        wh, timing = args.warehouse, {"replay_projection": step_seconds(args.warehouse, work, True)}
    timing["next_night_projection"] = step_seconds(wh, work, False)
    timing["load_average"] = os.getloadavg()
    con = duckdb.connect(str(wh), read_only=True)
    acc = con.execute("select * from marts.mart_projection_accuracy where period_type = 'quarter' "
                      "and days_into_period >= 1").df()
    acc["period_start"] = pd.to_datetime(acc["period_start"]).dt.date
    starts = sorted(acc["period_start"].unique())
    top = acc[acc["level"].isin(["company", "region"])]
    ts = time_series_quarters(con, starts, sorted(top["series_id"].unique()))
    print(json.dumps(timing, indent=1, default=str))
    print("time-series models:", ts.groupby("model").size().to_dict())
    for share in (0.25, 0.5):
        day = acc[acc["pct_of_period_elapsed"] >= share].groupby("period_start")["as_of_date"].min()
        at = top[top["as_of_date"].isin(day.values)].merge(ts, on=["series_id", "period_start"], how="left")
        for level in ("company", "region"):
            x = at[at["level"] == level]
            scores = {c: round(wape(x["actual"], x[c]), 3) for c in (*CALLS, "time_series")}
            print(f"{int(share * 100)}% elapsed, {level} ({len(x)} series-quarters): {scores}")
            if level == "company":
                print(sources(con, x).to_string())
            later = x[x["period_start"] > starts[0]]  # the quarters whose model had a quarter of outcomes
            scores = {c: round(wape(later["actual"], later[c]), 3) for c in (*CALLS, "time_series")}
            print(f"  without the first replayed quarter ({len(later)}): {scores}")
    for level in ("company", "region", "team"):
        x = acc[acc["level"] == level]
        by_q = x.groupby("period_start").apply(lambda g: round(float(g["is_in_80"].mean()), 2),
                                               include_groups=False).to_dict()
        print(f"coverage {level}: 80% {x['is_in_80'].mean():.3f}, 95% {x['is_in_95'].mean():.3f} "
              f"({len(x)} series-days); 80% by quarter {by_q}")
    bands = acc[acc["level"].isin(["company", "region"])].assign(
        band=lambda d: np.ceil(d["pct_of_period_elapsed"] * 10).clip(1, 10).astype(int))
    table = bands.groupby(["level", "band"]).apply(
        lambda g: pd.Series({c: wape(g["actual"], g[c]) for c in CALLS}), include_groups=False).round(3)
    print(table.to_string())
    con.close()
    if args.keep is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
