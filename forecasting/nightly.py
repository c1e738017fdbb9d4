"""The nightly forecast: every level of the sales hierarchy, selected per series, reconciled, stored.

Series come from `marts.fct_bookings_monthly` (won bookings per month at company, region, segment, team
and rep level: the one definition the accuracy mart scores against). Each series gets the method its own
rolling-origin backtest picks (`forecasting.models.forecast`), fitted in a process pool. Rep, team, region
and company forecasts are then reconciled (`forecasting.reconcile`, wls_struct) so they add up; segments
are a second split of the same company total and are reconciled to it proportionally. Every run's rows
are appended to `forecasts.fct_forecasts` with the model, its parameters and scores, and the training
window; charts of actuals against forecasts are written for the report.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from forecasting.bookings import code_version

log = logging.getLogger(__name__)

HORIZON = 12
ORIGINS = 6
BOUNDS = ("yhat_lower_95", "yhat_lower_80", "yhat_upper_80", "yhat_upper_95")
ACTIVE_MONTHS = 12  # a rep with no booking in this many months (a leaver) is not forecast
NO_TEAM = "unknown"  # the key fct_bookings_monthly gives a missing team


@dataclass
class SeriesSet:
    """The series to forecast and how reps roll up."""

    series: dict[str, pd.DataFrame]  # series_id -> ds, y (complete months)
    meta: pd.DataFrame  # series_id, level, series_key, series_name
    mapping: pd.DataFrame  # rep, team, region (one row per forecast rep)


LEVELS = ("company", "region", "segment", "team", "rep")
TREE = ("company", "region", "team", "rep")


def load_series(con: duckdb.DuckDBPyConnection, levels: tuple[str, ...] = LEVELS) -> SeriesSet:
    """Complete months of every series; reps without a booking in the last ACTIVE_MONTHS months are left out."""
    df = con.execute(
        """
        select series_id, level, series_key, series_name, month_start as ds, bookings as y
        from marts.fct_bookings_monthly
        where is_complete
        order by series_id, month_start
        """
    ).df()
    if df.empty:
        return SeriesSet({}, pd.DataFrame(columns=["series_id", "level", "series_key", "series_name"]),
                         pd.DataFrame(columns=["rep", "team", "region"]))
    df["ds"] = pd.to_datetime(df["ds"])
    df["y"] = df["y"].astype(float)
    last = df["ds"].max()
    recent = df[df["ds"] > last - pd.DateOffset(months=ACTIVE_MONTHS)].groupby("series_id")["y"].sum()
    keep = set(recent[recent > 0].index)
    df = df[df["series_id"].isin(keep) & df["level"].isin(levels)]
    meta = df[["series_id", "level", "series_key", "series_name"]].drop_duplicates("series_id")
    reps = meta.loc[meta["level"] == "rep", "series_key"].tolist()
    mapping = con.execute(
        f"""
        select owner_id as rep, coalesce(cast(team_id as varchar), '{NO_TEAM}') as team,
               coalesce(region, 'Unassigned') as region
        from marts.fct_opportunities
        where status = 'won'
        group by all
        """
    ).df()
    mapping = mapping[mapping["rep"].isin(reps)].drop_duplicates("rep")
    series = {sid: g[["ds", "y"]].reset_index(drop=True) for sid, g in df.groupby("series_id", sort=True)}
    return SeriesSet(series, meta.reset_index(drop=True), mapping.reset_index(drop=True))


def _reconcile(rows: pd.DataFrame, s: SeriesSet) -> tuple[pd.DataFrame, str]:
    """Make rep, team, region and company add up; then scale segments to the company total."""
    from forecasting.reconcile import NIGHTLY_METHOD, reconcile

    tree = rows[rows["level"].isin(["company", "region", "team", "rep"])].copy()
    tree["node"] = np.where(tree["level"] == "company", "company", tree["series_key"])
    tree["ds"] = tree["period_start"]
    teams = set(s.mapping["team"])
    regions = set(s.mapping["region"])
    wanted = (
        (tree["level"] == "company")
        | ((tree["level"] == "region") & tree["node"].isin(regions))
        | ((tree["level"] == "team") & tree["node"].isin(teams))
        | ((tree["level"] == "rep") & tree["node"].isin(set(s.mapping["rep"])))
    )
    method = NIGHTLY_METHOD
    try:
        rec = reconcile(tree[wanted], s.mapping, method=method)
    except ValueError as exc:
        # a team spanning two regions (or a node without a forecast) breaks the tree: sum reps bottom-up
        # into teams and the company, and leave regions as forecast
        log.warning("reconciliation over rep > team > region failed (%s); reconciling rep > team only", exc)
        method = f"{NIGHTLY_METHOD} (rep > team > company; regions not reconciled)"
        rec = reconcile(tree[wanted & (tree["level"] != "region")], s.mapping, method=NIGHTLY_METHOD,
                        levels=("team",))
    rec = rec.drop(columns=["node", "ds"])
    out = pd.concat([rows[~rows.index.isin(tree[wanted].index)], rec], ignore_index=True)
    # segments split the same company total: scale them (and their bounds) to it, month by month
    company = out[out["level"] == "company"].set_index("period_start")["yhat"]
    seg = out["level"] == "segment"
    if seg.any() and not company.empty:
        totals = out[seg].groupby("period_start")["yhat"].transform("sum")
        factor = out.loc[seg, "period_start"].map(company) / totals.replace(0, np.nan)
        factor = factor.fillna(1.0)
        for col in ("yhat", *BOUNDS):
            out.loc[seg, col] = out.loc[seg, col] * factor
    return out, method


def forecast_all(
    con: duckdb.DuckDBPyConnection,
    as_of: date,
    run_id: str,
    horizon: int = HORIZON,
    origins: int = ORIGINS,
    processes: int | None = None,
    levels: tuple[str, ...] = LEVELS,
) -> pd.DataFrame:
    """Forecast every series, reconcile, and return the rows for `forecasts.fct_forecasts`."""
    from forecasting.models import forecast_many

    s = load_series(con, tuple(levels))
    if not s.series:
        return pd.DataFrame()
    results = forecast_many(s.series, horizon=horizon, origins=origins, processes=processes)
    frames = []
    for sid, res in results.items():
        fc = res.forecast.copy()
        hist = s.series[sid]
        fc["series_id"] = sid
        fc["period_start"] = pd.to_datetime(fc["ds"]).dt.date
        fc["horizon"] = np.arange(1, len(fc) + 1)
        fc["training_start"] = hist["ds"].min().date()
        fc["training_end"] = hist["ds"].max().date()
        fc["model"] = res.selection.model
        fc["_selection"] = json.dumps(res.selection.as_record(), sort_keys=True, default=str)
        frames.append(fc.drop(columns=["ds"]))
    rows = pd.concat(frames, ignore_index=True).merge(s.meta, on="series_id", how="left")
    if set(TREE) <= set(levels):
        rows, method = _reconcile(rows, s)
    else:
        method = None  # without every level of the tree there is nothing to add up
    for col in ("yhat", *BOUNDS):
        rows[col] = rows[col].clip(lower=0)
    rows["yhat_lower_80"] = np.minimum(rows["yhat_lower_80"], rows["yhat"])
    rows["yhat_lower_95"] = np.minimum(rows["yhat_lower_95"], rows["yhat_lower_80"])
    rows["yhat_upper_80"] = np.maximum(rows["yhat_upper_80"], rows["yhat"])
    rows["yhat_upper_95"] = np.maximum(rows["yhat_upper_95"], rows["yhat_upper_80"])
    reconciled = rows["level"].isin(LEVELS) & (method is not None)
    rows["model_params"] = [
        json.dumps({"selection": json.loads(sel), "reconciliation": method if rec else None}, sort_keys=True)
        for sel, rec in zip(rows["_selection"], reconciled, strict=True)
    ]
    rows["as_of_date"] = as_of
    rows["run_id"] = run_id
    rows["code_version"] = code_version()
    columns = ["as_of_date", "run_id", "series_id", "level", "series_key", "period_start", "horizon", "yhat",
               "yhat_lower_80", "yhat_upper_80", "yhat_lower_95", "yhat_upper_95", "model", "model_params",
               "training_start", "training_end", "code_version"]
    return rows[columns].sort_values(["series_id", "period_start"]).reset_index(drop=True)


def write_charts(con: duckdb.DuckDBPyConnection, rows: pd.DataFrame, out_dir: Path,
                 levels: tuple[str, ...] = ("company", "region", "team")) -> list[Path]:
    """One PNG per company, region and team: the last three years of actuals, the forecast, both intervals."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    history = con.execute(
        "select series_id, series_name, month_start, bookings from marts.fct_bookings_monthly where is_complete"
    ).df()
    history["month_start"] = pd.to_datetime(history["month_start"])
    written = []
    for sid, fc in rows[rows["level"].isin(levels)].groupby("series_id", sort=True):
        h = history[history["series_id"] == sid].sort_values("month_start").tail(36)
        name = h["series_name"].iloc[0] if len(h) and h["series_name"].iloc[0] else sid
        x = pd.to_datetime(fc["period_start"])
        fig, ax = plt.subplots(figsize=(9, 4))
        ax.plot(h["month_start"], h["bookings"], color="black", lw=1.5, label="actual bookings")
        ax.fill_between(x, fc["yhat_lower_95"], fc["yhat_upper_95"], color="tab:blue", alpha=0.15, label="95%")
        ax.fill_between(x, fc["yhat_lower_80"], fc["yhat_upper_80"], color="tab:blue", alpha=0.3, label="80%")
        ax.plot(x, fc["yhat"], color="tab:blue", lw=2, label=f"forecast ({fc['model'].iloc[0]})")
        ax.set_title(f"{name}: monthly bookings, forecast as of {fc['as_of_date'].iloc[0]}")
        ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:,.0f}"))
        ax.legend(loc="upper left", fontsize=8)
        ax.grid(alpha=0.3)
        fig.tight_layout()
        safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in sid)
        path = out_dir / f"{safe}.png"
        fig.savefig(path, dpi=90)
        plt.close(fig)
        written.append(path)
    return written
