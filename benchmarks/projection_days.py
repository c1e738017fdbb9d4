"""The projection of a few scored days, replayed on a built warehouse without a night: quick diagnosis.

    .venv/bin/python benchmarks/projection_days.py WAREHOUSE [--shares 0.25,0.5] [--retrain-days 28]
        [--probability as-is|empty|constant]

Reads the marts of a first night (e.g. `benchmarks/projection.py --keep DIR`, then DIR/wh/salesos.duckdb),
replays with `forecasting.projection.replay` only the first day each of the last four fiscal quarters reached
each share of its days (the rows are the same as a full replay's: a day's model comes from a fixed grid of
training dates), and prints the company and region WAPE of the projection and the three calls against the
quarter's bookings (`fct_bookings_monthly`), and for the company where the quarter's bookings came from
(won to date, deals open that day, deals created after it) beside the projection's parts (M USD).
`--probability empty` blanks the CRM probability (a CRM that has none), `constant` sets it to 0.5. Used for
the diagnosis and the step-by-step table in benchmarks/projection.md; the targets are measured by
benchmarks/projection.py.
"""

from __future__ import annotations

import argparse
import time
from datetime import date, timedelta
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from forecasting import projection as pj
from forecasting.projection_nightly import read_inputs

AS_OF = date(2026, 10, 31)
CALLS = ("projection", "commit_call", "best_case_call", "weighted_pipeline_call")


def scored_days(p: pj.Prepared, shares: list[float]) -> list[date]:
    """The first day each replayed quarter reached each share of its days."""
    window = pj.replay_days(AS_OF, p.quarter_starts, 4)
    days = []
    for q in [q for q in p.quarter_starts if window[0] <= q <= AS_OF]:
        end = p.quarter_starts[p.quarter_starts.index(q) + 1] - timedelta(days=1)
        length = (end - q).days + 1
        days += [q + timedelta(days=int(np.ceil(s * length)) - 1) for s in shares]
    return sorted(days)


def sources(p: pj.Prepared, d: date, start: date, end: date) -> dict[str, float]:
    """The quarter's won amount by where it came from, seen from day d (M USD)."""
    dd = pj._day(d)
    won = p.deals[p.deals["is_won"] & (p.deals["close_day"] >= pj._day(start)) & (p.deals["close_day"] <= pj._day(end))]
    open_ids = set(p.snapshots.iloc[p.by_day[dd]]["opportunity_id"])
    kind = np.where(won["closed_on"] <= dd, "won_to_date",
                    np.where(won["opportunity_id"].isin(open_ids), "won_from_open",
                             np.where(won["created_day"] > dd, "won_from_new", "other")))
    return (won.groupby(kind)["amount_or_zero"].sum() / 1e6).round(2).to_dict()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("warehouse", type=Path)
    ap.add_argument("--shares", default="0.25,0.5")
    ap.add_argument("--retrain-days", type=int, default=28)
    ap.add_argument("--probability", choices=["as-is", "empty", "constant"], default="as-is")
    args = ap.parse_args()
    shares = [float(x) for x in args.shares.split(",")]
    con = duckdb.connect(str(args.warehouse), read_only=True)
    inputs = read_inputs(con)
    bookings = con.execute("select series_id, month_start, bookings::double as bookings "
                           "from marts.fct_bookings_monthly").df()
    con.close()
    if args.probability != "as-is":
        inputs.snapshots["probability"] = np.nan if args.probability == "empty" else 0.5
    bookings["month_start"] = pd.to_datetime(bookings["month_start"]).dt.date
    p = pj.prepare(inputs)
    days = scored_days(p, shares)
    t0, c0 = time.perf_counter(), time.process_time()
    rows, _ = pj.replay(p, days, as_of=AS_OF, simulations=1000, retrain_days=args.retrain_days)
    print(f"replay of {len(days)} days: {time.perf_counter() - t0:.1f} s wall, {time.process_time() - c0:.1f} s CPU")
    rows = rows[(rows["period_type"] == "quarter") & (rows["days_into_period"] >= 1)
                & rows["level"].isin(["company", "region"])].copy()
    rows["actual"] = [bookings[(bookings["series_id"] == r.series_id) & (bookings["month_start"] >= r.period_start)
                               & (bookings["month_start"] <= r.period_end)]["bookings"].sum()
                      for r in rows.itertuples()]
    for share in shares:
        at = rows[(rows["pct_of_period_elapsed"] - share).abs() < 0.02]
        for level in ("company", "region"):
            x = at[at["level"] == level]
            scores = {c: round(float((x[c] - x["actual"]).abs().sum() / x["actual"].abs().sum()), 3) for c in CALLS}
            print(f"{int(share * 100)}% elapsed, {level} ({len(x)} series-quarters): {scores}")
        for r in at[at["level"] == "company"].itertuples():
            parts = {k: round(getattr(r, k) / 1e6, 2) for k in ("actual", "projection", "won_to_date",
                                                                 "open_pipeline_expected", "new_pipeline_expected",
                                                                 "weighted_pipeline_call")}
            print(f"  {r.as_of_date} (model of {r.model_trained_on}): {parts} came from "
                  f"{sources(p, r.as_of_date, r.period_start, r.period_end)}")


if __name__ == "__main__":
    main()
