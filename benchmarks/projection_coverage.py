"""Interval coverage of the in-quarter projection by level, replayed on a built warehouse without a night.

    .venv/bin/python benchmarks/projection_coverage.py WAREHOUSE [--every 1] [--simulations 1000]

Reads the marts of a built warehouse (`benchmarks/nightly.py --steps extract validate build`, or a first
night's), replays with `forecasting.projection.replay` every `--every`-th day of the last four fiscal
quarters (the rows are the same as a full replay's: a day's model comes from a fixed grid of training
dates) and prints, per level, the share of quarter rows of a closed quarter (days_into_period >= 1, as
`marts.mart_projection_accuracy` scores them) whose actual (`fct_bookings_monthly`) falls in the 80% and 95%
intervals, by quarter too, and the shared shocks of the last model (`DealModel.shocks`). With `--every 1`
the coverage is the mart's. Also the CPU of the replay.
"""

from __future__ import annotations

import argparse
import os
import time
from datetime import date
from pathlib import Path

import duckdb
import pandas as pd

from forecasting import projection as pj
from forecasting.projection_nightly import read_inputs

AS_OF = date(2026, 10, 31)


def coverage(rows: pd.DataFrame, bookings: pd.DataFrame) -> pd.DataFrame:
    """Per level (and per level and quarter): rows scored, 80% and 95% coverage, closed quarters only."""
    q = rows[(rows["period_type"] == "quarter") & (rows["days_into_period"] >= 1)
             & (pd.to_datetime(rows["period_end"]).dt.date <= AS_OF)].copy()
    b = bookings.assign(q=pd.to_datetime(bookings["month_start"]))
    actual = {}
    for (sid, start, end), _ in q.groupby(["series_id", "period_start", "period_end"]):
        sel = (b["series_id"] == sid) & (b["q"] >= pd.Timestamp(start)) & (b["q"] <= pd.Timestamp(end))
        actual[(sid, start)] = float(b.loc[sel, "bookings"].sum())
    q["actual"] = [actual[(s, p)] for s, p in zip(q["series_id"], q["period_start"], strict=True)]
    q["in80"] = (q["actual"] >= q["lower_80"]) & (q["actual"] <= q["upper_80"])
    q["in95"] = (q["actual"] >= q["lower_95"]) & (q["actual"] <= q["upper_95"])
    q["below80"] = q["actual"] < q["lower_80"]
    return q


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("warehouse", type=Path)
    ap.add_argument("--every", type=int, default=1)
    ap.add_argument("--simulations", type=int, default=1000)
    ap.add_argument("--retrain-days", type=int, default=28)
    args = ap.parse_args()
    con = duckdb.connect(str(args.warehouse), read_only=True)
    inputs = read_inputs(con)
    bookings = con.execute("select series_id, month_start, bookings::double as bookings "
                           "from marts.fct_bookings_monthly").df()
    con.close()
    p = pj.prepare(inputs)
    days = pj.replay_days(AS_OF, p.quarter_starts, 4)[:: args.every]
    load = os.getloadavg()[0]
    t0, c0 = time.perf_counter(), time.process_time()
    rows, model = pj.replay(p, days, as_of=AS_OF, simulations=args.simulations, retrain_days=args.retrain_days)
    print(f"replay of {len(days)} days: {time.perf_counter() - t0:.1f} s wall, {time.process_time() - c0:.1f} s CPU"
          f" (load {load:.1f})")
    if model is not None:
        shocks = getattr(model, "shocks", None) or {"company": getattr(model, "shock", 0.0)}
        print(f"shocks of the last model ({model.trained_on}): { {k: round(v, 3) for k, v in shocks.items()} }")
    q = coverage(rows, bookings)
    by_level = q.groupby("level").agg(rows=("in80", "size"), covered_80=("in80", "mean"),
                                      covered_95=("in95", "mean"), below_80=("below80", "mean"))
    print(by_level.round(3).loc[[lv for lv in pj.LEVELS if lv in by_level.index]].to_string())
    by_q = q.groupby(["level", "period_start"])["in80"].mean().unstack().round(2)
    print(by_q.loc[[lv for lv in pj.LEVELS if lv in by_q.index]].to_string())


if __name__ == "__main__":
    main()
