"""The forecast methods and their registry (config/forecast_methods.yml): name -> kind and settings.

Every candidate is a `Candidate` whose `fit_predict(history, horizon)` takes a monthly series (columns `ds`,
month-start timestamps, and `y`) and returns `ds, yhat` for the next `horizon` months, never negative
(bookings are not). Each kind is one fit/predict function in `METHOD_KINDS`:

* `seasonal_naive`: the value 12 months earlier; with fewer than 12 months the mean of the last 3 (the last
  value under 3). Always evaluated: a method that does not beat it is not worth its cost.
* `theta`: the Theta method (SES with half the linear drift on the seasonally adjusted series). Pure numpy.
* `statsforecast`: a model of Nixtla's statsforecast (AutoETS, AutoTheta, ...; AutoARIMA only in the "all"
  set, it costs 6x AutoETS per fit), season length 12 once there are two years of data.
* `prophet`: Prophet, the primary model (`forecasting.prophet_fit`), on a small grid of settings.

A combination (`mean`, `median` or `weighted` mean of members, `COMBINATIONS`) is a Candidate too.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from forecasting.prophet_fit import DEFAULT_PROPHET_BACKEND, DEFAULT_QUARTER_END_MONTHS, prophet_values
from forecasting.series import MIN_TRAIN, SEASON, future_months, naive_values, validate_history

METHODS_FILE = Path(__file__).resolve().parents[1] / "config" / "forecast_methods.yml"  # the method registry
GRIDS = ("all", "full", "primary")  # "all": every registered method (backtest CLI, benchmark)


def seasonal_naive_values(y: np.ndarray, horizon: int) -> np.ndarray:
    """Value of the same month a year earlier; `naive_values` under 12 months."""
    y = np.asarray(y, dtype=float)
    if len(y) < SEASON:
        return naive_values(y, horizon)
    last_year = y[-SEASON:]
    return last_year[np.arange(horizon) % SEASON].astype(float)


def _acf(x: np.ndarray, max_lag: int) -> np.ndarray:
    xc = x - x.mean()
    denom = float(np.sum(xc * xc))
    return np.array([np.sum(xc[k:] * xc[: len(x) - k]) / denom for k in range(max_lag + 1)])


def _seasonal_indices(x: np.ndarray, multiplicative: bool) -> np.ndarray:
    """Classical decomposition: seasonal figure by position t % 12 around a centred 2x12 moving average."""
    n = len(x)
    weights = np.r_[0.5, np.ones(SEASON - 1), 0.5] / SEASON
    trend = np.full(n, np.nan)
    half = SEASON // 2
    trend[half : n - half] = np.convolve(x, weights, mode="valid")
    detr = x / trend if multiplicative else x - trend
    figure = np.array([np.nanmean(detr[p::SEASON]) for p in range(SEASON)])
    return figure / figure.mean() if multiplicative else figure - figure.mean()


def _ses(x: np.ndarray) -> tuple[float, float]:
    """Simple exponential smoothing: alpha minimising one-step squared error on a grid; returns (alpha, level)."""
    alphas = np.linspace(0.02, 0.99, 50)
    level = np.full(len(alphas), x[0])
    sse = np.zeros(len(alphas))
    for v in x[1:]:
        err = v - level
        sse += err * err
        level = level + alphas * err
    best = int(np.argmin(sse))
    return float(alphas[best]), float(level[best])


def _seasonal_strength(x: np.ndarray, figure: np.ndarray, multiplicative: bool) -> float:
    """Share of the detrended variance the seasonal figure explains (Wang, Smith & Hyndman 2006), 0..1."""
    n = len(x)
    weights = np.r_[0.5, np.ones(SEASON - 1), 0.5] / SEASON
    half = SEASON // 2
    trend = np.convolve(x, weights, mode="valid")
    core = x[half : n - half]
    s = figure[np.arange(half, n - half) % SEASON]
    detr = core / trend - 1 if multiplicative else core - trend
    rem = (core / trend) / s - 1 if multiplicative else core - trend - s
    var = float(np.var(detr))
    return max(0.0, 1 - float(np.var(rem)) / var) if var > 0 else 0.0


def theta_values(y: np.ndarray, horizon: int) -> np.ndarray:
    """Theta method (Assimakopoulos & Nikolopoulos 2000, as in R forecast::thetaf), clipped at 0.

    Seasonal adjustment when the lag-12 autocorrelation test of thetaf passes or, since that test has little
    power on 2-4 years of smooth seasonality, when the seasonal figure explains over half the detrended variance.
    """
    x = np.asarray(y, dtype=float)
    n = len(x)
    if n < MIN_TRAIN or np.ptp(x) == 0:
        return np.clip(naive_values(x, horizon), 0, None)
    season = None
    if n > 2 * SEASON:
        multiplicative = bool((x > 0).all())
        figure = _seasonal_indices(x, multiplicative)
        r = _acf(x, SEASON)
        stat = math.sqrt((1 + 2 * float(np.sum(r[1:SEASON] ** 2))) / n)
        if abs(r[SEASON]) / stat > 1.645 or _seasonal_strength(x, figure, multiplicative) > 0.5:
            season = (figure, multiplicative)
    if season is not None:
        figure, multiplicative = season
        s_hist = figure[np.arange(n) % SEASON]
        x = x / s_hist if multiplicative else x - s_hist
    alpha, level = _ses(x)
    slope = float(np.polyfit(np.arange(n), x, 1)[0])
    steps = np.arange(horizon)
    fc = level + slope / 2 * (steps + (1 - (1 - alpha) ** n) / alpha)
    if season is not None:
        s_fut = figure[(n + steps) % SEASON]
        fc = fc * s_fut if multiplicative else fc + s_fut
    return np.clip(fc, 0, None)



# combination's backtest errors are the same combination of its members' errors. `weighted` is a mean with
# the weights in the candidate's params (`weighted_weights`); without weights it is the equal-weight mean.
COMBINATIONS: dict[str, Callable[..., np.ndarray]] = {
    "mean": np.mean, "median": np.median,
    "weighted": lambda values, axis=0, weights=None: np.average(values, axis=axis, weights=weights),
}


@dataclass(frozen=True)
class Candidate:
    """One forecasting method with fixed settings: `fit_predict(history, horizon) -> ds, yhat`."""

    name: str
    kind: str  # a METHOD_KINDS key, or a COMBINATIONS key (mean or median of `members`)
    params: Mapping[str, Any] = field(default_factory=dict)
    members: tuple[Candidate, ...] = ()

    def predict_values(self, history: pd.DataFrame, horizon: int, cache: dict[str, Any] | None = None) -> np.ndarray:
        """Point forecasts as an array (history already validated).

        `cache` (one per training window) keeps each method's forecast or failure, so a combination does not
        refit its members.
        """
        if cache is not None and self.name in cache:
            hit = cache[self.name]
            if isinstance(hit, Exception):
                raise hit
            return hit
        try:
            if self.kind in COMBINATIONS:
                values = self.combine([m.predict_values(history, horizon, cache) for m in self.members])
            elif self.kind in METHOD_KINDS:
                values = METHOD_KINDS[self.kind](history, horizon, **self.params)
            else:
                raise ValueError(f"unknown candidate kind {self.kind!r}")
        except Exception as exc:
            if cache is not None:
                cache[self.name] = exc
            raise
        if cache is not None:
            cache[self.name] = values
        return values

    def combine(self, values: Sequence[np.ndarray]) -> np.ndarray:
        """This combination applied to its members' arrays (forecasts or backtest errors), in member order."""
        if self.kind == "weighted":
            return COMBINATIONS["weighted"](values, axis=0, weights=self.params.get("weights"))
        return COMBINATIONS[self.kind](values, axis=0)

    def fit_predict(self, history: pd.DataFrame, horizon: int) -> pd.DataFrame:
        """Fit on `history` (ds, y) and forecast the next `horizon` months as `ds, yhat` (yhat >= 0)."""
        hist = validate_history(history)
        return pd.DataFrame({"ds": future_months(hist, horizon), "yhat": self.predict_values(hist, horizon)})



# AutoETS, AutoTheta and AutoCES choose a form on every fit by an in-sample criterion (ETS: error, trend,
# season and damping by AICc, 15 candidate models; theta: STM/OTM/DSTM/DOTM by MSE; CES: the season type) and
# then fit it. Within one series' backtest (`kept_forms`), the form a method chose at the series' first
# origin is kept for its later origins, which then fit only that form's parameters: the form was chosen on
# data every later origin also has, so no origin sees its own future, and AutoETS costs 2-40x less per
# origin. The final forecast on the full history chooses its form afresh.
_FORMS: contextvars.ContextVar[dict[tuple, dict[str, Any]] | None] = contextvars.ContextVar("forms", default=None)


def _chosen_form(model: str, fitted: Any) -> dict[str, Any] | None:
    """The settings that fit exactly the form an automatic statsforecast model chose (None: not one of them)."""
    chosen = getattr(fitted, "model_", None) or {}
    if model == "AutoETS" and "components" in chosen:
        c = chosen["components"]  # e.g. "MAAD": multiplicative error, additive trend and season, damped
        return {"model": c[:3], "damped": (c[3] == "D") if c[1] != "N" else None}
    if model == "AutoTheta" and "modeltype" in chosen:
        return {"model": chosen["modeltype"]}
    if model == "AutoCES" and "seasontype" in chosen:
        return {"model": chosen["seasontype"]}
    return None


@contextlib.contextmanager
def kept_forms() -> Iterator[None]:
    """Within the block (one series' backtest), automatic statsforecast models keep their first origin's form."""
    token = _FORMS.set({})
    try:
        yield
    finally:
        _FORMS.reset(token)


def statsforecast_values(history: pd.DataFrame, horizon: int, model: str = "AutoETS",
                         **settings: Any) -> np.ndarray:
    """A statsforecast model (e.g. AutoETS, AutoARIMA, AutoTheta) with season length 12, clipped at 0.

    Under MIN_TRAIN months the naive mean, as every method. statsforecast is imported on first use only
    (about 3 s in a fresh process: once per pool worker, not per series). Inside `kept_forms` an automatic
    model fits the form it chose on the block's first call (per season length), falling back to choosing
    again if that form cannot be fitted to this window.
    """
    y = history["y"].to_numpy(dtype=float)
    if len(y) < MIN_TRAIN or np.ptp(y) == 0:
        return np.clip(naive_values(y, horizon), 0, None)
    from statsforecast import models as sf_models

    cls = getattr(sf_models, model, None)
    if cls is None:
        raise ValueError(f"statsforecast has no model {model!r}")
    season = SEASON if len(y) >= 2 * SEASON else 1  # a season needs two full cycles to estimate
    forms = _FORMS.get()
    key = (model, season, tuple(sorted(settings.items())))
    out = None
    with np.errstate(all="ignore"):
        if forms is not None and key in forms:
            try:
                out = cls(season_length=season, **{**settings, **forms[key]}).forecast(y=y, h=horizon)
            except Exception:  # the kept form does not fit this window (e.g. a multiplicative one, a zero)
                out = None
        if out is None and forms is not None and key not in forms:
            fitted = cls(season_length=season, **settings).fit(y)
            out = fitted.predict(h=horizon)
            form = _chosen_form(model, fitted)
            if form is not None:
                forms[key] = form
        elif out is None:
            out = cls(season_length=season, **settings).forecast(y=y, h=horizon)
    values = np.asarray(out["mean"], dtype=float)
    if values.shape != (horizon,) or not np.all(np.isfinite(values)):
        raise RuntimeError(f"{model} returned a non-finite forecast")
    return np.clip(values, 0, None)


def _seasonal_naive_kind(history: pd.DataFrame, horizon: int) -> np.ndarray:
    return np.clip(seasonal_naive_values(history["y"].to_numpy(dtype=float), horizon), 0, None)


def _theta_kind(history: pd.DataFrame, horizon: int) -> np.ndarray:
    return theta_values(history["y"].to_numpy(dtype=float), horizon)


# kind -> fit/predict function (history ds,y; horizon; the method's settings) -> point forecasts >= 0.
# config/forecast_methods.yml names methods by these kinds; a new kind is one function here.
METHOD_KINDS: dict[str, Callable[..., np.ndarray]] = {
    "seasonal_naive": _seasonal_naive_kind,
    "theta": _theta_kind,
    "prophet": prophet_values,
    "statsforecast": statsforecast_values,
}


@dataclass(frozen=True)
class MethodRegistry:
    """config/forecast_methods.yml, checked: the methods in order and the selection rule's settings."""

    methods: tuple[dict[str, Any], ...]
    primary_prophet: str
    combine_max: int
    combine_within: float
    combine: str = "mean"  # a COMBINATIONS key
    choose_k: bool = False  # take the k (<= combine_max) whose combination scores best, not all of them
    shrink: float = 0.5  # `weighted`: how far inverse-MASE weights move toward equal weights (0..1)


@lru_cache(maxsize=8)
def load_methods(path: str | None = None) -> MethodRegistry:
    """Read and check the method registry (default config/forecast_methods.yml); ValueError names the entry."""
    import yaml

    file = Path(path) if path else METHODS_FILE
    doc = yaml.safe_load(file.read_text(encoding="utf-8")) or {}
    entries = doc.get("methods") or []
    seen: set[str] = set()
    methods: list[dict[str, Any]] = []
    primary = ""
    for i, entry in enumerate(entries, 1):
        name, kind = entry.get("name"), entry.get("kind")
        if not name or name in seen:
            raise ValueError(f"{file}: method {i} has a missing or repeated name {name!r}")
        if kind not in METHOD_KINDS:
            raise ValueError(f"{file}: method {name!r} has unknown kind {kind!r} (known: {sorted(METHOD_KINDS)})")
        grids = tuple(entry.get("grids") or GRIDS)
        if set(grids) - set(GRIDS):
            raise ValueError(f"{file}: method {name!r} has unknown grids {sorted(set(grids) - set(GRIDS))}")
        seen.add(name)
        if entry.get("primary"):
            primary = name
        methods.append({"name": name, "kind": kind, "params": dict(entry.get("params") or {}), "grids": grids})
    if not any(m["kind"] == "seasonal_naive" for m in methods):
        raise ValueError(f"{file}: seasonal_naive must be registered (every selection is measured against it)")
    if not primary:
        raise ValueError(f"{file}: one prophet method must be marked primary: true")
    sel = doc.get("selection") or {}
    combine_max, within = int(sel.get("combine_max", 3)), float(sel.get("combine_within", 0.2))
    if combine_max < 1 or within < 0:
        raise ValueError(f"{file}: selection needs combine_max >= 1 and combine_within >= 0")
    how, choose_k = str(sel.get("combine", "mean")), bool(sel.get("choose_k", False))
    if how not in COMBINATIONS:
        raise ValueError(f"{file}: selection combine must be one of {sorted(COMBINATIONS)}, not {how!r}")
    shrink = float(sel.get("shrink", MethodRegistry.__dataclass_fields__["shrink"].default))
    if not 0 <= shrink <= 1:
        raise ValueError(f"{file}: selection shrink must be between 0 and 1, not {shrink}")
    return MethodRegistry(tuple(methods), primary, combine_max, within, how, choose_k, shrink)


def default_candidates(quarter_end_months: Sequence[int] = DEFAULT_QUARTER_END_MONTHS,
                       prophet_grid: str = "full", registry: MethodRegistry | None = None,
                       prophet_backend: str = DEFAULT_PROPHET_BACKEND) -> list[Candidate]:
    """The registered methods of a grid, in registry order (simplest first: ties go to the earlier).

    `prophet_grid="primary"` keeps only the primary Prophet settings (a quarter of the Prophet fits, for many
    series on few cores); "all" adds the methods too costly for the nightly run (AutoARIMA).
    `prophet_backend` (settings: `forecast_prophet_backend`) is how every Prophet candidate computes its MAP.
    """
    if prophet_grid not in GRIDS:
        raise ValueError(f"prophet_grid must be one of {GRIDS}, not {prophet_grid!r}")
    reg = registry or load_methods()
    qe = tuple(int(m) for m in quarter_end_months)
    out = []
    for m in reg.methods:
        if prophet_grid not in m["grids"] and not (m["name"] == reg.primary_prophet):
            continue
        params = dict(m["params"])
        if m["kind"] == "prophet" and params.get("quarter_end"):
            params["quarter_end_months"] = qe
        if m["kind"] == "prophet":
            params["backend"] = prophet_backend
        out.append(Candidate(m["name"], m["kind"], params))
    return out


def combination(members: Sequence[Candidate], how: str = "mean",
                weights: Sequence[float] | None = None) -> Candidate:
    """The equal-weight mean (or the median, or the `weights`-weighted mean, `how`) of `members` (one member:
    that member itself). Weights are normalised to sum to 1 and kept in the params (the model_params stored)."""
    if len(members) == 1:
        return members[0]
    if how not in COMBINATIONS:
        raise ValueError(f"unknown combination {how!r}; choose from {sorted(COMBINATIONS)}")
    params: dict[str, Any] = {"members": [m.name for m in members]}
    if how == "weighted":
        w = np.ones(len(members)) if weights is None else np.asarray(weights, dtype=float)
        if w.shape != (len(members),) or not np.all(w >= 0) or w.sum() <= 0:
            raise ValueError(f"weights must be {len(members)} non-negative numbers, not all 0: {weights!r}")
        params["weights"] = [round(float(v), 6) for v in w / w.sum()]
    return Candidate(f"{how}(" + ",".join(m.name for m in members) + ")", how, params, tuple(members))


def shrunk_weights(scores: Sequence[float], shrink: float) -> list[float]:
    """Inverse-score weights moved `shrink` of the way toward equal weights (0: inverse MASE, 1: equal).

    Weights estimated from a few backtest origins are noisy; shrinking them toward equal weights is the
    standard remedy of the combination literature (equal weights are hard to beat, "forecast combination
    puzzle"). Scores must be positive (a perfect backtest is taken alone before this is asked).
    """
    s = np.asarray(scores, dtype=float)
    if s.size == 0 or not np.all(s > 0) or not np.all(np.isfinite(s)):
        raise ValueError(f"shrunk_weights needs positive finite scores, not {list(scores)!r}")
    inv = (1 / s) / np.sum(1 / s)
    return [float(v) for v in (1 - shrink) * inv + shrink / len(s)]


def seasonal_naive(history: pd.DataFrame, horizon: int) -> pd.DataFrame:
    """Seasonal naive forecast (lag 12; mean of last 3 under 12 months; last value under 3)."""
    return Candidate("seasonal_naive", "seasonal_naive").fit_predict(history, horizon)


def theta(history: pd.DataFrame, horizon: int) -> pd.DataFrame:
    """Theta method forecast."""
    return Candidate("theta", "theta").fit_predict(history, horizon)


def prophet(history: pd.DataFrame, horizon: int, **params: Any) -> pd.DataFrame:
    """Prophet forecast with `prophet_values` settings."""
    return Candidate("prophet", "prophet", params).fit_predict(history, horizon)



def candidate_by_name(name: str, candidates: Sequence[Candidate] | None = None) -> Candidate:
    """Look a candidate up by name in `candidates` (default grid when None)."""
    for cand in candidates if candidates is not None else default_candidates():
        if cand.name == name:
            return cand
    raise KeyError(name)



def with_seasonal_naive(candidates: Sequence[Candidate] | None) -> list[Candidate]:
    """The candidates (default grid when None), seasonal_naive first if it was not among them."""
    cands = list(candidates) if candidates is not None else default_candidates()
    if not any(c.kind == "seasonal_naive" for c in cands):
        cands.insert(0, Candidate("seasonal_naive", "seasonal_naive"))
    return cands



def primary_prophet_name() -> str:
    """The registry's primary Prophet setting: the model the nightly run stores beside every choice."""
    return load_methods().primary_prophet

