"""Reconciliation measured: the nightly WLS (structural) against MinT-shrink and others, on the sample's backtest.

Run from the repository root:

    .venv/bin/python benchmarks/reconcile_compare.py --scale S --out benchmarks/reconcile.md

It builds the marts of a generated sample (seed 7, as of 2026-10-31; `benchmarks/forecast.py`'s
`built_warehouse`, reused from --data-dir), forecasts every series of the tree (company, region, team, rep)
with the nightly selection at `--origins` rolling origins (horizon 12, Prophet grid primary), and takes each
series' chosen method's out-of-sample forecasts at every origin as the base forecasts. The last `--evaluate`
origins are reconciled with each method and scored against what closed, at company and region level (the
levels finance reads): MASE (mean absolute error / the node's in-sample lag-12 MAE at that origin, averaged
over origins and nodes) and WAPE (pooled).

The covariance MinT-shrink and WLS-variance need is estimated, for each evaluated origin, from the one-step
errors of the earlier origins only (their target month closed before that origin): no evaluated actual is in
it. Every method reconciles the same base forecasts, so the comparison isolates the reconciliation (the base
selection saw all origins, which affects all methods alike). Segments are not in the tree and are left out.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

METHODS = ("base", "bottom_up", "wls_struct", "wls_var", "mint_shrink")
FINANCE_LEVELS = ("company", "region")


def _node(level: str, key: str) -> str:
    return "company" if level == "company" else str(key)


def base_forecasts(warehouse: Path, horizon: int, origins: int, processes: int | None) -> tuple[pd.DataFrame, Any]:
    """Every tree series' chosen-method backtest forecasts: long rows level, node, origin, step, ds, yhat, y, scale."""
    import duckdb

    from forecasting.metrics import mase_scale
    from forecasting.nightly import TREE, load_series
    from forecasting.pool import forecast_many

    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        s = load_series(con, TREE)
    finally:
        con.close()
    meta = s.meta.set_index("series_id")
    wanted = {"company": {"all"}, "region": set(s.mapping["region"]), "team": set(s.mapping["team"]),
              "rep": set(s.mapping["rep"])}
    ids = [sid for sid in s.series if str(meta.loc[sid, "series_key"]) in wanted.get(meta.loc[sid, "level"], set())]
    results = forecast_many({sid: s.series[sid] for sid in ids}, horizon=horizon, origins=origins,
                            processes=processes, prophet_grid="primary")
    rows = []
    for sid, res in results.items():
        sel = res.selection
        preds = sel.predictions_of(sel.candidate)
        if preds is None:
            continue
        hist = s.series[sid]
        y = hist["y"].to_numpy(dtype=float)
        pos = {d: i for i, d in enumerate(hist["ds"])}
        level = meta.loc[sid, "level"]
        for i, origin in enumerate(sel.origins):
            cut = pos[origin]
            scale = mase_scale(y[:cut])
            for h in range(preds.shape[1]):
                rows.append({"level": level, "node": _node(level, meta.loc[sid, "series_key"]), "origin": origin,
                             "step": h + 1, "ds": hist["ds"].iloc[cut + h], "yhat": float(preds[i, h]),
                             "y": float(y[cut + h]), "scale": scale, "model": sel.model})
    return pd.DataFrame(rows), s


def _tree_nodes(mapping: pd.DataFrame) -> list[tuple[str, str]]:
    return ([("company", "company")] + [("region", str(r)) for r in sorted(set(mapping["region"]))]
            + [("team", str(t)) for t in sorted(set(mapping["team"]))]
            + [("rep", str(r)) for r in sorted(mapping["rep"])])


def _complete(at: pd.DataFrame, nodes: list[tuple[str, str]], months: pd.DatetimeIndex,
              actuals: dict[tuple[str, str], pd.Series]) -> tuple[pd.DataFrame, int]:
    """Every node x month of one origin: a node without a forecast there (a rep hired after the origin, or with
    fewer scored steps) forecasts 0, its actual from its series (0 before its first month)."""
    grid = pd.DataFrame([(lv, nd, m) for lv, nd in nodes for m in months], columns=["level", "node", "ds"])
    out = grid.merge(at[["level", "node", "ds", "yhat", "scale"]], on=["level", "node", "ds"], how="left")
    filled = int(out["yhat"].isna().sum())
    out["yhat"] = out["yhat"].fillna(0.0)
    keys = out[["level", "node", "ds"]].itertuples(index=False)
    out["y"] = [float(actuals[(lv, nd)].get(m, 0.0)) for lv, nd, m in keys]
    return out, filled


def compare(base: pd.DataFrame, s: Any, evaluate: int, residuals: str = "one-step",
            nightly_origins: int = 6) -> tuple[pd.DataFrame, int]:
    """Reconcile the last `evaluate` origins with every method; one row per method, node (company and region)
    and origin, and how many node-months had no base forecast (0 used).

    `residuals` is what MinT's covariance is estimated from at each evaluated origin: "one-step", the one-step
    errors of every earlier origin; "nightly", what the nightly run has there: every step's error of the
    `nightly_origins` backtest origins whose scored months all closed before it (its own track record).
    """
    from forecasting.reconcile import reconcile

    meta = s.meta.set_index("series_id")
    actuals = {(meta.loc[sid, "level"], _node(meta.loc[sid, "level"], meta.loc[sid, "series_key"])):
               g.set_index("ds")["y"] for sid, g in s.series.items()}
    nodes = [n for n in _tree_nodes(s.mapping) if n in actuals]
    company = base[base["level"] == "company"]
    origins = sorted(company["origin"].unique())
    horizon = int(base["step"].max())
    scored, filled_total = [], 0
    for origin in origins[-evaluate:]:
        months = pd.date_range(origin, periods=horizon, freq="MS")
        at, filled = _complete(base[base["origin"] == origin], nodes, months, actuals)
        filled_total += filled
        earlier = []
        if residuals == "one-step":
            for prev in [o for o in origins if o < origin]:  # one-step errors whose month closed before `origin`
                one = _complete(base[base["origin"] == prev], nodes, pd.DatetimeIndex([prev]), actuals)[0]
                earlier.append(one.assign(residual=one["y"] - one["yhat"]))
        else:
            i = origins.index(origin)
            window = origins[max(0, i - horizon - nightly_origins + 1): max(0, i - horizon + 1)]
            if len(window) < nightly_origins:
                raise SystemExit(f"origin {origin.date()} has {len(window)} closed backtest origins before it; "
                                 f"raise --origins to at least {evaluate + horizon + nightly_origins - 1}")
            for k, prev in enumerate(window):  # one row per (origin, step): a distinct time index for MinT
                part = _complete(base[base["origin"] == prev], nodes,
                                 pd.date_range(prev, periods=horizon, freq="MS"), actuals)[0]
                part = part.assign(residual=part["y"] - part["yhat"],
                                   ds=part["ds"].dt.strftime("%Y-%m") + f"/{k}")
                earlier.append(part)
        resid = pd.concat(earlier)[["level", "node", "ds", "residual"]]
        for method in METHODS:
            if method == "base":
                out = at
            else:
                out = reconcile(at[["level", "node", "ds", "yhat"]], s.mapping, method=method,
                                residuals=resid if method in ("wls_var", "mint_shrink") else None)
                out = out.merge(at[["level", "node", "ds", "y", "scale"]], on=["level", "node", "ds"])
            fin = out[out["level"].isin(FINANCE_LEVELS)]
            for (level, _node_id), g in fin.groupby(["level", "node"]):
                err = np.abs(g["y"] - g["yhat"])
                scored.append({"method": method, "level": level, "origin": origin,
                               "mase": float(err.mean() / g["scale"].iloc[0]), "abs_err": float(err.sum()),
                               "abs_y": float(np.abs(g["y"]).sum()), "resid_rows": resid["ds"].nunique()})
    return pd.DataFrame(scored), filled_total


def summarise(scored: pd.DataFrame) -> pd.DataFrame:
    """Mean MASE and pooled WAPE per method and level, with MASE relative to wls_struct (the nightly method)."""
    out = scored.groupby(["level", "method"]).agg(mase=("mase", "mean"), abs_err=("abs_err", "sum"),
                                                  abs_y=("abs_y", "sum"), nodes_x_origins=("mase", "size"))
    out["wape"] = out["abs_err"] / out["abs_y"]
    ref = out.xs("wls_struct", level="method")["mase"]
    out["mase_vs_wls_struct"] = out["mase"] / out.index.get_level_values("level").map(ref).to_numpy()
    return out.drop(columns=["abs_err", "abs_y"]).reset_index()


def main(argv: list[str] | None = None) -> int:
    from benchmarks.forecast import built_warehouse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", default="S", choices=["XS", "S", "M"])
    parser.add_argument("--data-dir", type=Path, default=Path("/tmp/salesos-bench"))
    parser.add_argument("--horizon", type=int, default=12)
    parser.add_argument("--origins", type=int, default=18, help="rolling origins (the earlier ones feed MinT)")
    parser.add_argument("--evaluate", type=int, default=6, help="last origins reconciled and scored")
    parser.add_argument("--processes", type=int, default=None)
    parser.add_argument("--residuals", choices=["one-step", "nightly"], default="one-step",
                        help="MinT's covariance from the one-step errors of every earlier origin, or from what the "
                             "nightly run has: all steps of the 6 backtest origins before it")
    parser.add_argument("--reuse-base", action="store_true", help="reuse the base forecasts of an earlier run")
    parser.add_argument("--out", type=Path, help="append the results as a Markdown section to this file")
    args = parser.parse_args(argv)
    args.data_dir.mkdir(parents=True, exist_ok=True)
    wh = built_warehouse(args.scale, args.data_dir)
    kept = args.data_dir / f"reconcile_base_{args.scale}_{args.origins}_{args.horizon}.pkl"
    t0 = time.perf_counter()
    if args.reuse_base and kept.exists():  # the base forecasts of an earlier run of the same settings
        base, s = pickle.loads(kept.read_bytes())
    else:
        base, s = base_forecasts(wh, args.horizon, args.origins, args.processes)
        kept.write_bytes(pickle.dumps((base, s)))
    fit_s = time.perf_counter() - t0
    scored, filled = compare(base, s, args.evaluate, args.residuals)
    table = summarise(scored)
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout
    counts = base.drop_duplicates(["level", "node"])["level"].value_counts().to_dict()
    resid_rows = sorted(set(scored["resid_rows"]))
    lines = [
        f"## Reconciliation on the sample's backtest, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        "",
        f"- machine: {os.cpu_count()} cores ({platform.processor() or platform.machine()}); commit {commit.strip()}",
        f"- command: `.venv/bin/python benchmarks/reconcile_compare.py --scale {args.scale} --origins {args.origins} "
        f"--evaluate {args.evaluate} --residuals {args.residuals}` (horizon {args.horizon}); base forecasts fitted in "
        f"{fit_s:.0f} s",
        f"- tree: {json.dumps(counts)}; MinT/WLS-variance covariance from {resid_rows[0]}-{resid_rows[-1]} "
        f"error rows ({args.residuals}) of earlier origins; {filled} node-months without a base forecast "
        "(reps hired later) forecast 0",
        "",
        "| level | method | MASE | MASE / wls_struct | WAPE | node x origins |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for r in table.itertuples(index=False):
        lines.append(f"| {r.level} | {r.method} | {r.mase:.3f} | {r.mase_vs_wls_struct:.3f} | {r.wape:.3f} | "
                     f"{r.nodes_x_origins} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        with args.out.open("a", encoding="utf-8") as fh:
            fh.write("\n" + text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
