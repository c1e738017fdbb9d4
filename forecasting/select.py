"""Selection by rolling-origin backtest, the refit on the full history, and the backtest's track record.

`select_model` scores every candidate at the last `origins` expanding-window origins (one month apart) by
MASE and chooses the registry's combination of the best ones (config/forecast_methods.yml, `selection`);
a method the backtest shows poor for the series is never in the mix. `forecast` refits the choice on the
whole history and wraps it in 80%/95% intervals calibrated from the choice's own backtest errors.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from forecasting.intervals import INTERVAL_COLUMNS, add_intervals, interval_bounds, interval_errors
from forecasting.methods import (
    COMBINATIONS,
    Candidate,
    combination,
    kept_forms,
    load_methods,
    shrunk_weights,
    with_seasonal_naive,
)
from forecasting.metrics import mase_scale
from forecasting.prophet_fit import brief_error, collect_prophet_fits
from forecasting.series import MIN_TRAIN, future_months, validate_history

log = logging.getLogger(__name__)

# Backtest scores are compared (ranked, held against the `within` limit, the k of `choose_k`) at this many
# significant digits, ties going to the registry order. Prophet's MAP ends on a nearly flat ridge where the
# last digits depend on the CPU's BLAS kernels (forecasts moved by up to 4e-6 relative between two OpenBLAS
# kernel sets on one XS night): a near-tie must not pick another method on another machine.
SCORE_DIGITS = 5


def comparable_score(score: float) -> float:
    """A backtest score as selection compares it: rounded to SCORE_DIGITS significant digits (inf, 0 kept)."""
    if not math.isfinite(score) or score == 0:
        return score
    return float(f"{score:.{SCORE_DIGITS}g}")


def origin_cuts(n_obs: int, horizon: int, origins: int) -> tuple[list[int], int]:
    """Training lengths of the last `origins` expanding-window origins and the steps each is scored on.

    Origins are one month apart and each is scored on `horizon` steps; a series too short for that is scored
    on fewer steps (at least 1) rather than not at all. Every origin trains on at least MIN_TRAIN months.
    """
    steps = min(horizon, n_obs - MIN_TRAIN)
    if steps < 1 or origins < 1:
        return [], 0
    cuts = [n_obs - steps - k for k in range(origins) if n_obs - steps - k >= MIN_TRAIN]
    return sorted(cuts), steps


@dataclass
class Selection:
    """Which candidate a series' rolling-origin backtest chose, with every candidate's score.

    `model` is the choice (`candidate`: one method, or `mean(a,b,c)` of the close best ones), `best` the
    lowest-scoring single candidate. `scores` is mean MASE over origins (inf: the candidate failed to fit;
    a chosen combination is scored too). `scaled_errors[name]` holds (actual - forecast) / mase_scale(train
    window), one row per origin and one column per step: the material the intervals are calibrated on.
    """

    model: str
    params: dict[str, Any]
    scores: dict[str, float]
    origins: list[pd.Timestamp]
    steps: int
    scaled_errors: dict[str, np.ndarray] = field(repr=False)
    best: str = ""
    candidate: Candidate | None = field(default=None, repr=False)  # the chosen method (a combination or not)
    # The chosen method's Prophet fits on the full history (Prophet's JSON serialisation), if it uses Prophet.
    prophet_models: list[dict[str, Any]] = field(default_factory=list, repr=False)
    # predictions[name]: each candidate's out-of-sample forecasts, one row per origin, one column per step
    # (what `scaled_errors` was computed from); the track record written as backtest rows.
    predictions: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    # Forecasts on the full history of the candidates kept beside the choice (`forecast(also=...)`).
    companions: dict[str, pd.DataFrame] = field(default_factory=dict, repr=False)

    def predictions_of(self, cand: Candidate) -> np.ndarray | None:
        """A candidate's backtest forecasts (a mean: the mean of its members'); None if it was not scored."""
        if cand.name in self.predictions:
            return self.predictions[cand.name]
        if cand.kind in COMBINATIONS and cand.members and all(m.name in self.predictions for m in cand.members):
            return cand.combine([self.predictions[m.name] for m in cand.members])
        return None

    def as_record(self) -> dict[str, Any]:
        """JSON-friendly summary (for model_params / logs)."""
        return {
            "model": self.model,
            "best": self.best,
            "params": {k: list(v) if isinstance(v, tuple) else v for k, v in self.params.items()},
            "scores": {k: (None if not math.isfinite(v) else round(v, 6)) for k, v in self.scores.items()},
            "origins": [str(o.date()) for o in self.origins],
            "steps": self.steps,
        }


def select_model(history: pd.DataFrame, horizon: int, origins: int,
                 candidates: Sequence[Candidate] | None = None, combine_max: int | None = None,
                 combine_within: float | None = None, combine: str | None = None,
                 choose_k: bool | None = None, shrink: float | None = None) -> Selection:
    """Score every candidate at the last `origins` origins by MASE; choose a combination of the best ones.

    The choice combines the lowest-scoring candidates month by month (`combine`: mean, median, or weighted by
    inverse backtest MASE shrunk `shrink` of the way toward equal weights), at most
    `combine_max` of them and none scoring over (1 + `combine_within`) x the best; with `choose_k` only the
    k best, k the one whose combination scores best on the same backtest. The registry's rule is the median
    of the best 5, none scoring over twice the best: a median of several good methods is robust to one of
    them going astray, which a mean is not, and no method is in it for being in a fixed mix (a fixed mix
    with seasonal naive scored MASE 3.0 on trending series). On M3/Tourism samples at 48 months the median
    of the best 5 scored 0.964x and 0.941x AutoETS where the earlier mean of the best <= 3 within 20%
    scored 0.972x and 0.986x, and the mean of a backtest-chosen k 0.944x and 1.032x
    (benchmarks/forecast_backtest_real.md). `combine_max=1` is the plain minimum. A perfect backtest
    (MASE 0, e.g. seasonal_naive on a repeating series) is taken alone. The combination's backtest errors
    are the same combination of its members' (the same origins and scale).
    Only the history passed in is used. With no room for any origin the choice is seasonal_naive (which then
    falls back to the naive mean), `scores` empty.
    """
    reg = load_methods()
    k_max = combine_max if combine_max is not None else reg.combine_max
    within = combine_within if combine_within is not None else reg.combine_within
    how = combine if combine is not None else reg.combine
    pick_k = choose_k if choose_k is not None else reg.choose_k
    lam = shrink if shrink is not None else reg.shrink
    hist = validate_history(history)
    cands = with_seasonal_naive(candidates)
    cuts, steps = origin_cuts(len(hist), horizon, origins)
    y = hist["y"].to_numpy(dtype=float)
    scores: dict[str, float] = {}
    errors: dict[str, np.ndarray] = {}
    predictions: dict[str, np.ndarray] = {}
    caches: dict[int, dict[str, Any]] = {cut: {} for cut in cuts}  # combinations reuse their members
    with kept_forms():  # an automatic statsforecast model keeps the form it chose at the first origin
        for cand in cands:
            rows, mases, preds = [], [], []
            try:
                for cut in cuts:
                    fc = cand.predict_values(hist.iloc[:cut], steps, caches[cut])
                    actual = y[cut : cut + steps]
                    scale = mase_scale(y[:cut])
                    rows.append((actual - fc) / scale)
                    mases.append(float(np.mean(np.abs(actual - fc))) / scale)
                    preds.append(fc)
            except Exception as exc:  # one candidate failing (e.g. LBFGS) must not stop the series
                log.info("candidate %s failed on a backtest origin: %s", cand.name, brief_error(exc))
                scores[cand.name] = float("inf")
                continue
            if cuts:
                scores[cand.name] = float(np.mean(mases))
                errors[cand.name] = np.vstack(rows)
                predictions[cand.name] = np.vstack(preds)
    ranked = sorted((c for c in cands if math.isfinite(scores.get(c.name, float("inf")))),
                    key=lambda c: (comparable_score(scores[c.name]), cands.index(c)))
    if not ranked:
        chosen = next(c for c in cands if c.kind == "seasonal_naive")
        best = chosen
    else:
        best = ranked[0]
        if scores[best.name] == 0:  # a perfect backtest: nothing to gain from combining
            pool = [best]
        else:
            limit = math.inf if math.isinf(within) else comparable_score((1 + within) * scores[best.name])
            pool = [best] + [c for c in ranked[1:k_max] if comparable_score(scores[c.name]) <= limit]

        def combined(members: Sequence[Candidate]) -> Candidate:  # registry order: a stable model name
            ordered = sorted(members, key=cands.index)
            weights = shrunk_weights([scores[m.name] for m in ordered], lam) if how == "weighted" else None
            return combination(ordered, how, weights)

        members = pool
        if pick_k:  # k: the number of best methods whose combination scores best on the same backtest
            k_scores = []
            for k in range(1, len(pool) + 1):
                c = combined(pool[:k])
                rows = c.combine([errors[m.name] for m in c.members]) if c.members else errors[c.name]
                k_scores.append(comparable_score(float(np.mean(np.abs(rows)))))
            members = pool[: int(np.argmin(k_scores)) + 1]  # ties: the fewer
        chosen = combined(members)
        if chosen.kind in COMBINATIONS and chosen.name not in scores:
            rows = chosen.combine([errors[m.name] for m in chosen.members])
            errors[chosen.name] = rows
            scores[chosen.name] = float(np.mean(np.abs(rows)))  # rows are scaled per origin: mean MASE
    return Selection(
        model=chosen.name,
        params=dict(chosen.params),
        scores=scores,
        origins=[hist["ds"].iloc[c] for c in cuts],
        steps=steps,
        scaled_errors=errors,
        best=best.name,
        candidate=chosen,
        predictions=predictions,
    )



def ranked_candidates(selection: Selection, candidates: Sequence[Candidate]) -> list[Candidate]:
    """Candidates in the order the selection prefers them: the choice, then by score, failed or unscored last.

    The choice comes first even when it is a combination (not among `candidates`). With no scores (history
    too short to backtest) seasonal_naive leads.
    """
    cands = with_seasonal_naive(candidates)
    if not selection.scores:
        return sorted(cands, key=lambda c: c.kind != "seasonal_naive")
    ordered = sorted(cands, key=lambda c: (c.name != selection.model,
                                           comparable_score(selection.scores.get(c.name, float("inf"))),
                                           cands.index(c)))
    chosen = selection.candidate
    if chosen is not None and chosen.name not in {c.name for c in cands}:
        ordered.insert(0, chosen)
    return ordered


def refit_order(selection: Selection, candidates: Sequence[Candidate],
                fails: Callable[[Candidate], bool] | None = None) -> Iterator[Candidate]:
    """What to fit on the full history: the choice; if a member of a chosen mean fails, the mean of the rest
    (in score order); then the single candidates by score.

    With `fails` (does this member fail on the history being fitted?), the first fallback of a failed
    combination is the combination of its members that fit. Without it the members were dropped worst score
    first only, so a failing member that scored well (AutoCES finding no model on a full history, seen in the
    XS sample night) stayed in every smaller combination and the night fell to a single non-member method.
    """
    ranked = ranked_candidates(selection, candidates)
    first = ranked[0]
    yield first
    if first.kind in COMBINATIONS and fails is not None:
        fitting = [m for m in first.members if not fails(m)]
        if fitting and len(fitting) < len(first.members):
            yield combination(fitting, first.kind)
    if first.kind in COMBINATIONS:  # drop the worst-scoring member first, keep registry order in the name
        by_score = sorted(first.members, key=lambda m: comparable_score(selection.scores.get(m.name, float("inf"))))
        for keep in range(len(by_score) - 1, 0, -1):
            kept = {m.name for m in by_score[:keep]}
            weights = first.params.get("weights")
            yield combination([m for m in first.members if m.name in kept], first.kind,
                              None if weights is None else
                              [w for m, w in zip(first.members, weights, strict=True) if m.name in kept])
    yield from (c for c in ranked[1:] if c.name not in {m.name for m in first.members})



def forecast(history: pd.DataFrame, horizon: int, origins: int = 6,
             candidates: Sequence[Candidate] | None = None,
             also: Sequence[str] = ()) -> tuple[pd.DataFrame, Selection]:
    """Select a method on the history, refit it on all of it, and return forecasts with calibrated intervals.

    Columns: ds, yhat, yhat_lower_95, yhat_lower_80, yhat_upper_80, yhat_upper_95. If the choice fails on the
    full history (a rare LBFGS failure), the next best is used and recorded as the model. Each candidate
    named in `also` (the primary Prophet, which the nightly run keeps beside the choice) is forecast too, with
    intervals from its own backtest errors, into `selection.companions` (a name that failed is left out); a
    fit the choice already made on the full history is reused, not repeated.
    """
    hist = validate_history(history)
    cands = with_seasonal_naive(candidates)
    sel = select_model(hist, horizon, origins, cands)
    cache: dict[str, Any] = {}
    errors = dict(sel.scaled_errors)
    prophet_fits: dict[str, list[dict[str, Any]]] = {}  # each single method's Prophet fits, kept by name

    def fit_one(single: Candidate) -> np.ndarray:
        if single.name not in cache:
            with collect_prophet_fits() as got:
                try:
                    single.predict_values(hist, horizon, cache)
                finally:
                    prophet_fits[single.name] = got
        return single.predict_values(hist, horizon, cache)  # the cached forecast (or the cached failure)

    def fit(cand: Candidate) -> np.ndarray:
        for single in cand.members if cand.kind in COMBINATIONS else (cand,):
            fit_one(single)  # each member once, in order: its Prophet model kept even if a later one fails
        return cand.predict_values(hist, horizon, cache)

    def fails(member: Candidate) -> bool:
        try:
            fit_one(member)
        except Exception:
            return True
        return False

    for cand in refit_order(sel, cands, fails):
        try:
            values = fit(cand)
        except Exception as exc:
            log.warning("%s failed on the full history (%s); trying the next best", cand.name, brief_error(exc))
            continue
        break
    sel.model, sel.params, sel.candidate = cand.name, dict(cand.params), cand
    sel.prophet_models = [f for single in (cand.members if cand.kind in COMBINATIONS else (cand,))
                          for f in prophet_fits.get(single.name, [])]
    scale = mase_scale(hist["y"].to_numpy(dtype=float))
    ds = future_months(hist, horizon)
    out = add_intervals(pd.DataFrame({"ds": ds, "yhat": values}), interval_errors(cand, errors), scale)
    for name in also:
        if name == sel.model:
            continue  # the choice itself: its rows are already there
        other = next((c for c in cands if c.name == name), None)
        if other is None:
            continue
        try:
            extra = other.predict_values(hist, horizon, cache)  # a member of the choice: the fit above, reused
        except Exception as exc:
            log.warning("%s (kept beside the choice) failed on the full history: %s", name, brief_error(exc))
            continue
        sel.companions[name] = add_intervals(pd.DataFrame({"ds": ds, "yhat": extra}),
                                             interval_errors(other, errors), scale)
    return out, sel


def backtest_track(history: pd.DataFrame, selection: Selection, candidates: Sequence[Candidate]) -> pd.DataFrame:
    """The backtest's out-of-sample forecasts of `candidates` at every origin of `selection`: a track record.

    Each origin's forecasts were fitted only on the months before it (no refit here: they are the selection's
    own). Their 80%/95% bounds are calibrated, as a live forecast's, on backtest errors, but leaving that
    origin's own errors out (leave-one-origin-out), so an interval is not scored on the errors it was built
    from. Columns: as_of_date (last day of the origin's last training month), training_end, ds, horizon,
    yhat, the four bounds, model. A candidate without backtest forecasts gives no rows.
    """
    hist = validate_history(history)
    y = hist["y"].to_numpy(dtype=float)
    ds = hist["ds"]
    position = {d: i for i, d in enumerate(ds)}
    cuts = [position[o] for o in selection.origins]
    columns = ["as_of_date", "training_end", "ds", "horizon", "yhat", *INTERVAL_COLUMNS, "model"]
    parts: dict[str, list] = {c: [] for c in columns}
    months: dict[tuple[int, int], pd.DatetimeIndex] = {}
    for cand in candidates:
        preds = selection.predictions_of(cand)
        errs = interval_errors(cand, selection.scaled_errors)
        if preds is None or errs is None:
            continue
        steps = preds.shape[1]
        for i, cut in enumerate(cuts):
            keep = np.arange(len(cuts)) != i
            rest = [e[keep] for e in errs] if isinstance(errs, list) else errs[keep]
            if (cut, steps) not in months:
                months[(cut, steps)] = future_months(hist.iloc[:cut], steps)
            bounds = interval_bounds(preds[i], rest, mase_scale(y[:cut]))
            parts["ds"].append(months[(cut, steps)])
            parts["horizon"].append(np.arange(1, steps + 1))
            parts["training_end"].append(np.repeat(ds.iloc[cut - 1], steps))
            parts["as_of_date"].append(np.repeat(ds.iloc[cut] - pd.Timedelta(days=1), steps))
            parts["model"].append([cand.name] * steps)
            for name in ("yhat", *INTERVAL_COLUMNS):
                parts[name].append(bounds[name])
    if not parts["ds"]:
        return pd.DataFrame(columns=columns)
    return pd.DataFrame({
        "as_of_date": pd.DatetimeIndex(np.concatenate(parts["as_of_date"])),
        "training_end": pd.DatetimeIndex(np.concatenate(parts["training_end"])),
        "ds": parts["ds"][0].append(parts["ds"][1:]) if len(parts["ds"]) > 1 else parts["ds"][0],
        "horizon": np.concatenate(parts["horizon"]),
        **{name: np.concatenate(parts[name]) for name in ("yhat", *INTERVAL_COLUMNS)},
        "model": [m for chunk in parts["model"] for m in chunk],
    })[columns]



def fit_predict_intervals(cand: Candidate, history: pd.DataFrame, horizon: int, origins: int = 6) -> pd.DataFrame:
    """`cand.fit_predict` plus 80%/95% bounds calibrated on that method's own rolling-origin backtest errors."""
    hist = validate_history(history)
    sel = select_model(hist, horizon, origins, [cand], combine_max=1, combine_within=0.0)
    fc = cand.fit_predict(hist, horizon)
    return add_intervals(fc, sel.scaled_errors.get(cand.name), mase_scale(hist["y"].to_numpy(dtype=float)))
