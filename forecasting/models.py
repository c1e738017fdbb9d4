"""Candidate monthly forecasting methods behind one interface, chosen per series by rolling-origin MASE.

Every candidate is a `Candidate` whose `fit_predict(history, horizon)` takes a monthly series (columns `ds`,
month-start timestamps, and `y`) and returns `ds, yhat` for the next `horizon` months, never negative
(bookings are not). The candidates are registered in config/forecast_methods.yml (name, kind, settings;
`load_methods`, `default_candidates`); each kind is one fit/predict function in `METHOD_KINDS`:

* `seasonal_naive`: the value 12 months earlier; with fewer than 12 months the mean of the last 3 (the last
  value under 3). Always evaluated: a method that does not beat it is not worth its cost.
* `theta`: the Theta method (SES with half the linear drift on the seasonally adjusted series). Pure numpy.
* `statsforecast`: a model of Nixtla's statsforecast (AutoETS, AutoTheta; AutoARIMA only in the "all" set,
  it costs 6x AutoETS per fit), season length 12 once there are two years of data.
* `prophet`: Prophet, the primary model, on a small grid: additive/multiplicative seasonality, trend
  flexibility (`changepoint_prior_scale` 0.1/0.5), with/without a fiscal quarter-end regressor (quarter-end
  months are a parameter; default Jan/Apr/Jul/Oct for a fiscal year starting in February). Always fitted
  with `algorithm="LBFGS"` (Newton takes 7-16 s per short series, LBFGS ~0.05 s with Prophet's overhead),
  no Newton fallback, no weekly/daily seasonality, no predictive sampling (intervals come from backtest
  residuals instead: Prophet's own are too narrow). Yearly Fourier order shrinks with the training length
  (off under 18 months); under 6 months Prophet gives the naive mean.

`select_model` scores every candidate at the last `origins` expanding-window origins (one month apart) by MASE
and chooses the equal-weight mean of the best ones: at most 3, each within 20% of the best score (the best
alone when no other is that close; ties go to the simpler, earlier candidate, so a repeating series gets
seasonal_naive). A method the backtest shows poor for the series is never in the mix.
`forecast` refits the choice on the whole history and wraps it in 80%/95%
intervals calibrated from the choice's own backtest errors. `forecast_many` does that for many series in a
process pool; results do not depend on the number of processes (every fit is deterministic: Prophet MAP
fits use no random draws).
"""

from __future__ import annotations

import atexit
import contextlib
import contextvars
import logging
import math
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from functools import lru_cache
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

SEASON = 12
MIN_TRAIN = 3  # fewest months a backtest origin trains on; under this every method is the naive last value
PROPHET_MIN_MONTHS = 6  # under this Prophet's trend interpolates the data (noise -> 0) and LBFGS fails: naive
DEFAULT_QUARTER_END_MONTHS: tuple[int, ...] = (1, 4, 7, 10)  # fiscal year starting in February: Apr, Jul, Oct, Jan
LEVELS = (0.80, 0.95)
INTERVAL_COLUMNS = ("yhat_lower_95", "yhat_lower_80", "yhat_upper_80", "yhat_upper_95")

METHODS_FILE = Path(__file__).resolve().parents[1] / "config" / "forecast_methods.yml"  # the method registry
GRIDS = ("all", "full", "primary")  # "all": every registered method (backtest CLI, benchmark)

# While set (by `forecast` for its final refit only), every successful Prophet fit appends
# (its settings, its model as Prophet's JSON) here: the fitted models are kept, never pickled.
_FITTED_PROPHETS: contextvars.ContextVar[list[dict[str, Any]] | None] = contextvars.ContextVar(
    "fitted_prophets", default=None)


# --------------------------------------------------------------------------------------------- series helpers


def validate_history(history: pd.DataFrame) -> pd.DataFrame:
    """Return `ds, y` sorted, ds at month start; raise ValueError on gaps, duplicates or missing values.

    Methods index seasons by position, so a missing month would silently shift every seasonal term.
    """
    missing = {"ds", "y"} - set(history.columns)
    if missing:
        raise ValueError(f"history needs columns ds and y; missing {sorted(missing)}")
    df = pd.DataFrame(
        {
            "ds": pd.to_datetime(history["ds"]).dt.to_period("M").dt.to_timestamp(),
            "y": pd.to_numeric(history["y"]).astype(float),
        }
    )
    if df.empty:
        raise ValueError("cannot forecast an empty history")
    if df["ds"].isna().any() or df["y"].isna().any():
        raise ValueError("history has missing ds or y values")
    df = df.sort_values("ds", kind="stable").reset_index(drop=True)
    if df["ds"].duplicated().any():
        raise ValueError(f"history has duplicate months: {df.loc[df['ds'].duplicated(), 'ds'].dt.date.tolist()}")
    if len(df) > 1:
        expected = pd.date_range(df["ds"].iloc[0], periods=len(df), freq="MS")
        if not (df["ds"].to_numpy() == expected.to_numpy()).all():
            gap = next(e for e, d in zip(expected, df["ds"], strict=True) if e != d)
            raise ValueError(f"history is not monthly without gaps: {gap.date()} is missing")
    return df


def future_months(history: pd.DataFrame, horizon: int) -> pd.DatetimeIndex:
    """The `horizon` month starts after the last month of history."""
    return pd.date_range(history["ds"].iloc[-1] + pd.offsets.MonthBegin(1), periods=horizon, freq="MS")


# --------------------------------------------------------------------------------------------------- metrics


def mase_scale(train: Sequence[float] | np.ndarray) -> float:
    """MASE denominator: in-sample mean absolute lag-12 difference (lag 1 when the window is under 13 months).

    A flat window would give 0 (a perfectly repeating series has no lag-12 change): fall back to the lag-1,
    then the mean absolute level, then 1, so that scores stay finite and comparable.
    """
    y = np.asarray(train, dtype=float)
    if len(y) > SEASON:
        d = float(np.mean(np.abs(y[SEASON:] - y[:-SEASON])))
        if d > 0:
            return d
    if len(y) >= 2:
        d = float(np.mean(np.abs(np.diff(y))))
        if d > 0:
            return d
    d = float(np.mean(np.abs(y))) if len(y) else 0.0
    return d if d > 0 else 1.0


def mase(actual: Sequence[float] | np.ndarray, forecast: Sequence[float] | np.ndarray,
         train: Sequence[float] | np.ndarray) -> float:
    """Mean absolute error over the forecast steps divided by `mase_scale(train)`."""
    a, f = np.asarray(actual, dtype=float), np.asarray(forecast, dtype=float)
    return float(np.mean(np.abs(a - f)) / mase_scale(train))


def wape(actual: Sequence[float] | np.ndarray, forecast: Sequence[float] | np.ndarray) -> float:
    """Sum of absolute errors over sum of absolute actuals (NaN when every actual is 0)."""
    a, f = np.asarray(actual, dtype=float), np.asarray(forecast, dtype=float)
    denom = float(np.sum(np.abs(a)))
    return float(np.sum(np.abs(a - f)) / denom) if denom > 0 else float("nan")


def coverage(actual: Sequence[float] | np.ndarray, lower: Sequence[float] | np.ndarray,
             upper: Sequence[float] | np.ndarray) -> float:
    """Share of actuals inside [lower, upper], bounds included."""
    a = np.asarray(actual, dtype=float)
    inside = (a >= np.asarray(lower, dtype=float)) & (a <= np.asarray(upper, dtype=float))
    return float(np.mean(inside)) if len(a) else float("nan")


# ------------------------------------------------------------------------------------------------ the methods


def _naive_values(y: np.ndarray, horizon: int) -> np.ndarray:
    """Last value under 3 months, else the mean of the last 3 (one month of a rep's bookings is mostly noise)."""
    if len(y) == 0:
        raise ValueError("cannot forecast an empty history")
    level = y[-1] if len(y) < 3 else float(np.mean(y[-3:]))
    return np.full(horizon, level, dtype=float)


def seasonal_naive_values(y: np.ndarray, horizon: int) -> np.ndarray:
    """Value of the same month a year earlier; `_naive_values` under 12 months."""
    y = np.asarray(y, dtype=float)
    if len(y) < SEASON:
        return _naive_values(y, horizon)
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
        return np.clip(_naive_values(x, horizon), 0, None)
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


def yearly_fourier_order(n_months: int) -> int:
    """Prophet yearly Fourier order for a training length: 0 (off) under 18 months, 2 under 24, else 4.

    With under two years each seasonal coefficient is fitted from one or two observations: low order or none.
    Quarter-end spikes (a 3-month period, order 4) are the regressor's job, not the Fourier terms'.
    """
    if n_months < 18:
        return 0
    return 2 if n_months < 24 else 4


def quiet_stan() -> None:
    """Silence cmdstanpy's per-fit INFO lines and Prophet's chatter (hundreds of fits per series)."""
    logging.getLogger("prophet.plot").setLevel(logging.CRITICAL)  # "Importing plotly failed": plots are unused
    import prophet  # noqa: F401  (its import sets the "prophet" logger to INFO: set levels after it)
    from cmdstanpy.utils import get_logger  # get_logger adds cmdstanpy's handler once: set the level after it

    get_logger().setLevel(logging.CRITICAL)
    logging.getLogger("prophet").setLevel(logging.ERROR)  # e.g. "yearly seasonality with < 2 years": intended


def brief_error(exc: BaseException | None) -> str:
    """The last informative line of an error (cmdstan errors embed the whole console log)."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()] if exc is not None else []
    return lines[-1][:200] if lines else type(exc).__name__


@contextlib.contextmanager
def _stan_scratch() -> Iterator[None]:
    """Delete the output folders cmdstanpy leaves per fit, failed fits included (kept until exit otherwise).

    Removes what appeared in cmdstanpy's temp folder during the block: use processes, not threads, to run
    fits in parallel (forecast_many does).
    """
    import cmdstanpy

    root = cmdstanpy._TMPDIR
    before = set(os.listdir(root)) if os.path.isdir(root) else set()
    try:
        yield
    finally:
        if os.path.isdir(root):
            for name in set(os.listdir(root)) - before:
                if name.startswith("prophet_model"):
                    shutil.rmtree(os.path.join(root, name), ignore_errors=True)


_COMPONENT_MATRICES: dict[tuple, tuple[pd.DataFrame, dict[str, list[str]]]] = {}
_PROPHET_CLASS: type | None = None


def _component_key(model: Any, seasonal_features: pd.DataFrame, modes: Mapping[str, list[str]]) -> tuple:
    """Everything Prophet's `regressor_column_matrix` reads: feature names, modes, holidays, regressors."""
    train = model.train_component_cols
    return (
        tuple(seasonal_features.columns),
        tuple((mode, tuple(names)) for mode, names in sorted(modes.items())),
        None if model.train_holiday_names is None else tuple(model.train_holiday_names),
        tuple((name, props["mode"]) for name, props in model.extra_regressors.items()),
        model.holidays_mode,
        None if train is None else (tuple(train.columns), tuple(train.index), train.to_numpy().tobytes()),
    )


def prophet_class() -> type:
    """Prophet, with the matrix of which feature belongs to which component built once per layout.

    Prophet rebuilds that small matrix with `pd.crosstab` on every fit and every predict: a third of a
    monthly fit's time in a profile at scale M, though it depends only on the feature names and the
    seasonality and regressor settings (the key above). Fits and forecasts are unchanged (tested).
    """
    global _PROPHET_CLASS
    if _PROPHET_CLASS is None:
        import copy

        from prophet import Prophet

        class _Prophet(Prophet):
            def regressor_column_matrix(self, seasonal_features: pd.DataFrame,
                                        modes: dict[str, list[str]]) -> tuple[pd.DataFrame, dict[str, list[str]]]:
                key = _component_key(self, seasonal_features, modes)
                hit = _COMPONENT_MATRICES.get(key)
                if hit is None:
                    hit = super().regressor_column_matrix(seasonal_features, copy.deepcopy(modes))
                    _COMPONENT_MATRICES[key] = hit
                matrix, combined = hit
                modes.clear()  # Prophet's own adds the combination components to the caller's modes
                modes.update(copy.deepcopy(combined))
                return matrix.copy(), modes

        _PROPHET_CLASS = _Prophet
    return _PROPHET_CLASS


def _prophet_model(n_months: int, seasonality_mode: str, changepoint_prior_scale: float,
                   n_changepoints: int, quarter_end: bool) -> Any:
    order = yearly_fourier_order(n_months)
    model = prophet_class()(
        growth="linear",
        yearly_seasonality=order if order else False,
        weekly_seasonality=False,
        daily_seasonality=False,
        seasonality_mode=seasonality_mode,
        changepoint_prior_scale=changepoint_prior_scale,
        n_changepoints=n_changepoints,
        uncertainty_samples=0,
    )
    model.stan_backend.set_options(newton_fallback=False)
    if quarter_end:
        model.add_regressor("quarter_end", standardize=False)
    return model


def prophet_values(history: pd.DataFrame, horizon: int, seasonality_mode: str = "additive",
                   changepoint_prior_scale: float = 0.1, quarter_end: bool = True,
                   quarter_end_months: Sequence[int] = DEFAULT_QUARTER_END_MONTHS) -> np.ndarray:
    """Prophet point forecast (MAP by LBFGS, no sampling), clipped at 0; the naive mean under 6 months.

    LBFGS often stops at its first step on Prophet's Laplace changepoint prior (all changepoint deltas start
    exactly at the prior's kink; with a stiff prior, 0.01, about half of monthly fits fail). A failed fit is
    retried from changepoint deltas of half the prior scale, then with fewer changepoints and without the
    quarter-end regressor (on short windows it can pin three points exactly); only then does it raise
    RuntimeError (Newton fallback is off: it costs seconds per series). Iterations are capped (deterministic)
    and a 30 s timeout guards against a runaway line search (only that guard depends on machine load; no fit
    came near it in the evaluation).
    """
    y = history["y"].to_numpy(dtype=float)
    n = len(y)
    if n < PROPHET_MIN_MONTHS:
        return np.clip(_naive_values(y, horizon), 0, None)
    quiet_stan()
    train = history[["ds", "y"]].reset_index(drop=True)
    future = pd.DataFrame({"ds": future_months(history, horizon)})
    qe_months = set(quarter_end_months)
    use_qe = False
    if quarter_end:
        flag = train["ds"].dt.month.isin(qe_months)
        # a regressor seen in under 3 months (or missing from under 3) just interpolates those months
        if 3 <= int(flag.sum()) <= n - 3:
            use_qe = True
            train = train.assign(quarter_end=flag.astype(float))
            future["quarter_end"] = future["ds"].dt.month.isin(qe_months).astype(float)
    n_cp = 25 if n >= 12 else 2
    attempts = [(n_cp, False, use_qe), (n_cp, True, use_qe), (max(1, n // 4), True, False)]
    last_error: Exception | None = None
    np.random.seed(0)
    for n_changepoints, custom_init, with_qe in attempts:
        train_i = train if with_qe or not use_qe else train.drop(columns="quarter_end")
        model = _prophet_model(n, seasonality_mode, changepoint_prior_scale, n_changepoints, with_qe)
        kwargs: dict[str, Any] = {"algorithm": "LBFGS", "iter": 3000, "timeout": 30}
        if custom_init:  # Prophet's own initial values, changepoint deltas moved off the kink
            inputs = model.preprocess(train_i.copy())
            init = model.calculate_initial_params(inputs.K)
            kwargs["init"] = {"k": init.k, "m": init.m, "beta": np.asarray(init.beta), "sigma_obs": init.sigma_obs,
                              "delta": np.full(len(init.delta), changepoint_prior_scale / 2)}
            model = _prophet_model(n, seasonality_mode, changepoint_prior_scale, n_changepoints, with_qe)
        try:
            with _stan_scratch():
                model.fit(train_i, **kwargs)
            yhat = model.predict(future)["yhat"].to_numpy(dtype=float)
        except (RuntimeError, TimeoutError, ValueError) as exc:
            last_error = exc
            continue
        if np.all(np.isfinite(yhat)):
            sink = _FITTED_PROPHETS.get()
            if sink is not None:
                from prophet.serialize import model_to_json

                sink.append({"seasonality_mode": seasonality_mode, "changepoint_prior_scale": changepoint_prior_scale,
                             "quarter_end": with_qe, "n_changepoints": n_changepoints,
                             "model_json": model_to_json(model)})
            return np.clip(yhat, 0, None)
        last_error = RuntimeError("Prophet returned a non-finite forecast")
    raise RuntimeError(f"Prophet LBFGS failed after {len(attempts)} attempts: {brief_error(last_error)}")


# How the chosen methods' forecasts combine, step by step. Both commute with `actual - forecast`, so a
# combination's backtest errors are the same combination of its members' errors.
COMBINATIONS: dict[str, Callable[..., np.ndarray]] = {"mean": np.mean, "median": np.median}


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
                values = COMBINATIONS[self.kind]([m.predict_values(history, horizon, cache) for m in self.members],
                                                 axis=0)
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

    def fit_predict(self, history: pd.DataFrame, horizon: int) -> pd.DataFrame:
        """Fit on `history` (ds, y) and forecast the next `horizon` months as `ds, yhat` (yhat >= 0)."""
        hist = validate_history(history)
        return pd.DataFrame({"ds": future_months(hist, horizon), "yhat": self.predict_values(hist, horizon)})

    def fit_predict_intervals(self, history: pd.DataFrame, horizon: int, origins: int = 6) -> pd.DataFrame:
        """`fit_predict` plus 80%/95% bounds calibrated on this method's own rolling-origin backtest errors."""
        hist = validate_history(history)
        sel = select_model(hist, horizon, origins, [self], combine_max=1, combine_within=0.0)
        fc = self.fit_predict(hist, horizon)
        return add_intervals(fc, sel.scaled_errors.get(self.name), mase_scale(hist["y"].to_numpy(dtype=float)))


def statsforecast_values(history: pd.DataFrame, horizon: int, model: str = "AutoETS",
                         **settings: Any) -> np.ndarray:
    """A statsforecast model (e.g. AutoETS, AutoARIMA, AutoTheta) with season length 12, clipped at 0.

    Under MIN_TRAIN months the naive mean, as every method. statsforecast is imported on first use only
    (about 3 s in a fresh process: once per pool worker, not per series).
    """
    y = history["y"].to_numpy(dtype=float)
    if len(y) < MIN_TRAIN or np.ptp(y) == 0:
        return np.clip(_naive_values(y, horizon), 0, None)
    from statsforecast import models as sf_models

    cls = getattr(sf_models, model, None)
    if cls is None:
        raise ValueError(f"statsforecast has no model {model!r}")
    season = SEASON if len(y) >= 2 * SEASON else 1  # a season needs two full cycles to estimate
    with np.errstate(all="ignore"):
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
    return MethodRegistry(tuple(methods), primary, combine_max, within, how, choose_k)


def default_candidates(quarter_end_months: Sequence[int] = DEFAULT_QUARTER_END_MONTHS,
                       prophet_grid: str = "full", registry: MethodRegistry | None = None) -> list[Candidate]:
    """The registered methods of a grid, in registry order (simplest first: ties go to the earlier).

    `prophet_grid="primary"` keeps only the primary Prophet settings (a quarter of the Prophet fits, for many
    series on few cores); "all" adds the methods too costly for the nightly run (AutoARIMA).
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
        out.append(Candidate(m["name"], m["kind"], params))
    return out


def combination(members: Sequence[Candidate], how: str = "mean") -> Candidate:
    """The equal-weight mean (or the median, `how`) of `members` (one member: that member itself)."""
    if len(members) == 1:
        return members[0]
    if how not in COMBINATIONS:
        raise ValueError(f"unknown combination {how!r}; choose from {sorted(COMBINATIONS)}")
    return Candidate(f"{how}(" + ",".join(m.name for m in members) + ")", how,
                     {"members": [m.name for m in members]}, tuple(members))


def seasonal_naive(history: pd.DataFrame, horizon: int) -> pd.DataFrame:
    """Seasonal naive forecast (lag 12; mean of last 3 under 12 months; last value under 3)."""
    return Candidate("seasonal_naive", "seasonal_naive").fit_predict(history, horizon)


def theta(history: pd.DataFrame, horizon: int) -> pd.DataFrame:
    """Theta method forecast."""
    return Candidate("theta", "theta").fit_predict(history, horizon)


def prophet(history: pd.DataFrame, horizon: int, **params: Any) -> pd.DataFrame:
    """Prophet forecast with `prophet_values` settings."""
    return Candidate("prophet", "prophet", params).fit_predict(history, horizon)


# ------------------------------------------------------------------------------------- backtest and selection


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
            return COMBINATIONS[cand.kind]([self.predictions[m.name] for m in cand.members], axis=0)
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


def with_seasonal_naive(candidates: Sequence[Candidate] | None) -> list[Candidate]:
    """The candidates (default grid when None), seasonal_naive first if it was not among them."""
    cands = list(candidates) if candidates is not None else default_candidates()
    if not any(c.kind == "seasonal_naive" for c in cands):
        cands.insert(0, Candidate("seasonal_naive", "seasonal_naive"))
    return cands


def select_model(history: pd.DataFrame, horizon: int, origins: int,
                 candidates: Sequence[Candidate] | None = None, combine_max: int | None = None,
                 combine_within: float | None = None, combine: str | None = None,
                 choose_k: bool | None = None) -> Selection:
    """Score every candidate at the last `origins` origins by MASE; choose a combination of the best ones.

    The choice combines the lowest-scoring candidates month by month (`combine`: mean or median), at most
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
    hist = validate_history(history)
    cands = with_seasonal_naive(candidates)
    cuts, steps = origin_cuts(len(hist), horizon, origins)
    y = hist["y"].to_numpy(dtype=float)
    scores: dict[str, float] = {}
    errors: dict[str, np.ndarray] = {}
    predictions: dict[str, np.ndarray] = {}
    caches: dict[int, dict[str, Any]] = {cut: {} for cut in cuts}  # combinations reuse their members
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
                    key=lambda c: (scores[c.name], cands.index(c)))
    if not ranked:
        chosen = next(c for c in cands if c.kind == "seasonal_naive")
        best = chosen
    else:
        best = ranked[0]
        if scores[best.name] == 0:  # a perfect backtest: nothing to gain from combining
            pool = [best]
        else:
            limit = math.inf if math.isinf(within) else (1 + within) * scores[best.name]
            pool = [best] + [c for c in ranked[1:k_max] if scores[c.name] <= limit]
        members = pool
        if pick_k:  # k: the number of best methods whose combination scores best on the same backtest
            k_scores = [float(np.mean(np.abs(COMBINATIONS[how]([errors[m.name] for m in pool[:k]], axis=0))))
                        for k in range(1, len(pool) + 1)]
            members = pool[: int(np.argmin(k_scores)) + 1]  # ties: the fewer
        chosen = combination(sorted(members, key=cands.index), how)  # registry order: a stable model name
        if chosen.kind in COMBINATIONS and chosen.name not in scores:
            rows = COMBINATIONS[how]([errors[m.name] for m in members], axis=0)
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


# ----------------------------------------------------------------------------------------- interval calibration

_NORMAL_Z = {0.80: 1.2815515655446004, 0.95: 1.959963984540054}


def _quantile_ratio(level: float, ranked_level: float, k: int) -> float:
    """How much wider a `level` interval is than a `ranked_level` one when the spread is known from k errors.

    Student's t with k - 1 degrees of freedom (the spread is itself estimated from the k errors), not the
    normal: with 6 origins the 95%/80% ratio is 1.74, not 1.53.
    """
    if k < 2:
        return _NORMAL_Z.get(level, 2.0) / _NORMAL_Z.get(ranked_level, 1.0)
    from scipy.stats import t

    return float(t.ppf((1 + level) / 2, k - 1) / t.ppf((1 + ranked_level) / 2, k - 1))


def interval_multipliers(scaled_errors: np.ndarray | None, horizon: int,
                         levels: Sequence[float] = LEVELS) -> dict[float, np.ndarray]:
    """Half-width per step, in MASE-scale units, for each level: split conformal at each step ahead.

    For step h the width is the ceil((k+1) * level)-th smallest of the k backtest |errors| at step h (as
    statsforecast's ConformalIntervals), made non-decreasing in the step (errors do not shrink with the
    horizon) and extended beyond the scored steps with sqrt growth. A level that k origins cannot rank
    (95% needs 19) scales the highest rankable level's width by the quantile ratio of Student's t with k - 1
    degrees of freedom (`_quantile_ratio`; the normal ratio covered 89.8% at 95% on a dev sample, t 92.3%).
    This replaced a pooled quantile with one global 15% widening: on 84 M3/Tourism series at 48 months it
    brought 80%/95% coverage from 74.7%/90.5% to 81.9%/93.5%, on 42 full-length series from 71.7%/85.8% to 77.5%/89.9%
    (benchmarks/forecast_backtest_real.md). Without errors: a random-walk normal interval (RMS ~ 1.25 x MAE
    x sqrt(step)).
    """
    steps = np.arange(1, horizon + 1, dtype=float)
    if scaled_errors is None or scaled_errors.size == 0:
        shape = 1.25 * np.sqrt(steps)
        return {lv: _NORMAL_Z.get(lv, 2.0) * shape for lv in levels}
    e = np.sort(np.abs(np.asarray(scaled_errors, dtype=float)), axis=0)
    k, h_eval = e.shape
    out: dict[float, np.ndarray] = {}
    ranked: tuple[float, np.ndarray] | None = None
    for lv in sorted(levels):
        rank = math.ceil((k + 1) * lv)
        if rank <= k:
            q = np.maximum.accumulate(e[rank - 1])
            ranked = (lv, q)
        elif ranked is not None:
            q = ranked[1] * _quantile_ratio(lv, ranked[0], k)
        else:  # too few origins for any level: the largest error, widened as a normal quantile would be
            q = np.maximum.accumulate(e[-1]) * _NORMAL_Z.get(lv, 2.0) / _NORMAL_Z[0.80]
        if horizon > h_eval:
            q = np.r_[q, q[-1] * np.sqrt(steps[h_eval:] / h_eval)]
        out[lv] = q[:horizon]
    prev = np.zeros(horizon)
    for lv in sorted(levels):  # nested: a higher level is never narrower
        out[lv] = np.maximum(out[lv], prev)
        prev = out[lv]
    return out


def add_intervals(fc: pd.DataFrame, scaled_errors: np.ndarray | Sequence[np.ndarray] | None,
                  scale: float) -> pd.DataFrame:
    """Add nested, non-negative 80%/95% bounds around `yhat` from backtest scaled errors and the MASE scale.

    A list of error matrices (a mean's members) gives the mean of the members' widths: a combination is
    chosen on the same origins it would be calibrated on, and its averaged errors undercovered (80%
    intervals covered 73% on 84 M3/Tourism series against 75% with the members' widths).
    """
    out = fc.copy()
    yhat = np.clip(out["yhat"].to_numpy(dtype=float), 0, None)
    if isinstance(scaled_errors, (list, tuple)):
        each = [interval_multipliers(e, len(out)) for e in scaled_errors]
        widths = {lv: np.mean([w[lv] for w in each], axis=0) for lv in LEVELS}
    else:
        widths = interval_multipliers(scaled_errors, len(out))
    w80, w95 = widths[0.80] * scale, np.maximum(widths[0.95], widths[0.80]) * scale
    out["yhat"] = yhat
    out["yhat_lower_95"] = np.clip(yhat - w95, 0, None)
    out["yhat_lower_80"] = np.clip(yhat - w80, 0, None)
    out["yhat_upper_80"] = yhat + w80
    out["yhat_upper_95"] = yhat + w95
    return out


# ------------------------------------------------------------------------------------------ forecast (single)


def candidate_by_name(name: str, candidates: Sequence[Candidate] | None = None) -> Candidate:
    """Look a candidate up by name in `candidates` (default grid when None)."""
    for cand in candidates if candidates is not None else default_candidates():
        if cand.name == name:
            return cand
    raise KeyError(name)


def ranked_candidates(selection: Selection, candidates: Sequence[Candidate]) -> list[Candidate]:
    """Candidates in the order the selection prefers them: the choice, then by score, failed or unscored last.

    The choice comes first even when it is a combination (not among `candidates`). With no scores (history
    too short to backtest) seasonal_naive leads.
    """
    cands = with_seasonal_naive(candidates)
    if not selection.scores:
        return sorted(cands, key=lambda c: c.kind != "seasonal_naive")
    ordered = sorted(cands, key=lambda c: (c.name != selection.model, selection.scores.get(c.name, float("inf")),
                                           cands.index(c)))
    chosen = selection.candidate
    if chosen is not None and chosen.name not in {c.name for c in cands}:
        ordered.insert(0, chosen)
    return ordered


def refit_order(selection: Selection, candidates: Sequence[Candidate]) -> Iterator[Candidate]:
    """What to fit on the full history: the choice; if a member of a chosen mean fails, the mean of the rest
    (in score order); then the single candidates by score."""
    ranked = ranked_candidates(selection, candidates)
    first = ranked[0]
    yield first
    if first.kind in COMBINATIONS:  # drop the worst-scoring member first, keep registry order in the name
        by_score = sorted(first.members, key=lambda m: selection.scores.get(m.name, float("inf")))
        for keep in range(len(by_score) - 1, 0, -1):
            kept = {m.name for m in by_score[:keep]}
            yield combination([m for m in first.members if m.name in kept], first.kind)
    yield from (c for c in ranked[1:] if c.name not in {m.name for m in first.members})


def interval_errors(cand: Candidate, errors: Mapping[str, np.ndarray]) -> np.ndarray | list[np.ndarray] | None:
    """What `add_intervals` calibrates a candidate on: its backtest errors, or for a mean its members'."""
    if cand.kind in COMBINATIONS and all(m.name in errors for m in cand.members):
        return [errors[m.name] for m in cand.members]
    return errors.get(cand.name)


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
    for cand in refit_order(sel, cands):
        fitted: list[dict[str, Any]] = []
        token = _FITTED_PROPHETS.set(fitted)
        try:
            values = cand.predict_values(hist, horizon, cache)
        except Exception as exc:
            log.warning("%s failed on the full history (%s); trying the next best", cand.name, brief_error(exc))
            continue
        finally:
            _FITTED_PROPHETS.reset(token)
        break
    sel.model, sel.params, sel.candidate = cand.name, dict(cand.params), cand
    sel.prophet_models = fitted
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
    position = {d: i for i, d in enumerate(hist["ds"])}
    cuts = [position[o] for o in selection.origins]
    frames = []
    for cand in candidates:
        preds = selection.predictions_of(cand)
        errs = interval_errors(cand, selection.scaled_errors)
        if preds is None or errs is None:
            continue
        for i, cut in enumerate(cuts):
            keep = np.arange(len(cuts)) != i
            rest = [e[keep] for e in errs] if isinstance(errs, list) else errs[keep]
            train = hist.iloc[:cut]
            fc = add_intervals(pd.DataFrame({"ds": future_months(train, preds.shape[1]), "yhat": preds[i]}),
                               rest, mase_scale(y[:cut]))
            fc["horizon"] = np.arange(1, len(fc) + 1)
            fc["training_end"] = train["ds"].iloc[-1]
            fc["as_of_date"] = hist["ds"].iloc[cut] - pd.Timedelta(days=1)
            fc["model"] = cand.name
            frames.append(fc)
    columns = ["as_of_date", "training_end", "ds", "horizon", "yhat", *INTERVAL_COLUMNS, "model"]
    return pd.concat(frames, ignore_index=True)[columns] if frames else pd.DataFrame(columns=columns)


def primary_prophet_name() -> str:
    """The registry's primary Prophet setting: the model the nightly run stores beside every choice."""
    return load_methods().primary_prophet


# ---------------------------------------------------------------------------------------------- many series


@dataclass
class SeriesForecast:
    """One series' forecast rows, the selection record that produced them, and its backtest track record.

    `track` (`backtest_track`) holds the out-of-sample backtest forecasts of the choice and of the primary
    Prophet; Prophet's own forecast on the full history is in `selection.companions`.
    """

    forecast: pd.DataFrame
    selection: Selection
    track: pd.DataFrame = field(default_factory=pd.DataFrame)


def _init_worker(temp_root: str) -> None:
    """Give each worker its own temp folder (cmdstanpy's files go there) and silence Stan logging."""
    folder = tempfile.mkdtemp(prefix=f"worker-{os.getpid()}-", dir=temp_root)
    os.environ["TMPDIR"] = folder
    tempfile.tempdir = folder
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    logging.getLogger("cmdstanpy").setLevel(logging.CRITICAL)


@contextlib.contextmanager
def _main_script_hidden() -> Iterator[None]:
    """Stop 'spawn' workers from re-running the parent's main script while the pool starts them.

    Spawned workers re-execute `__main__` by path unless it was started with `-m`. Under Airflow that script is
    `bin/airflow`, whose import configures Airflow's ORM from a database URL the task runner deliberately
    blanks, so every worker died before its first series (BrokenProcessPool). Our worker functions live in this
    importable module, so the workers never need the parent's main script.
    """
    import sys
    import types

    saved = sys.modules["__main__"]
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        yield
    finally:
        sys.modules["__main__"] = saved


def _forecast_task(args: tuple[str, pd.DataFrame, int, int, tuple[int, ...], str]) -> tuple[str, SeriesForecast]:
    key, history, horizon, origins, qe_months, grid = args
    cands = with_seasonal_naive(default_candidates(qe_months, grid))
    primary = primary_prophet_name()
    fc, sel = forecast(history, horizon, origins, cands, also=(primary,))
    kept = [sel.candidate] + [c for c in cands if c.name == primary and c.name != sel.model]
    return key, SeriesForecast(fc, sel, backtest_track(history, sel, [c for c in kept if c is not None]))


def forecast_many(series: Mapping[str, pd.DataFrame], horizon: int, origins: int = 6,
                  processes: int | None = None,
                  quarter_end_months: Sequence[int] = DEFAULT_QUARTER_END_MONTHS,
                  progress: Callable[[int, int], None] | None = None,
                  prophet_grid: str = "full") -> dict[str, SeriesForecast]:
    """`forecast` for every series, in a 'spawn' process pool (Stan and forked threads do not mix).

    Keys keep the input order. Results are identical for any `processes` (1 runs in this process): each series
    is computed alone and deterministically. Workers write cmdstan files under one temp root removed at the end,
    so a long run cannot fill the disk even if a worker dies. Workers do not re-run the caller's main script
    (see `_main_script_hidden`), so this is safe to call from Airflow tasks and unguarded scripts alike.
    """
    qe = tuple(int(m) for m in quarter_end_months)
    tasks = [(key, hist, horizon, origins, qe, prophet_grid) for key, hist in series.items()]
    results: dict[str, SeriesForecast] = {}
    n_proc = processes if processes is not None else (os.cpu_count() or 1)
    n_proc = max(1, min(n_proc, len(tasks)))
    if n_proc == 1:
        for i, task in enumerate(tasks, 1):
            key, res = _forecast_task(task)
            results[key] = res
            if progress:
                progress(i, len(tasks))
        return results
    temp_root = tempfile.mkdtemp(prefix="salesos-forecast-")
    try:
        try:
            with _main_script_hidden(), ProcessPoolExecutor(max_workers=n_proc, mp_context=get_context("spawn"),
                                     initializer=_init_worker, initargs=(temp_root,)) as pool:
                chunk = max(1, len(tasks) // (n_proc * 8))
                for i, (key, res) in enumerate(pool.map(_forecast_task, tasks, chunksize=chunk), 1):
                    results[key] = res
                    if progress:
                        progress(i, len(tasks))
        except BrokenProcessPool as exc:
            # A worker killed from outside (out of memory, a host's process limits): finish the remaining series
            # in this process rather than fail the night; results are the same, only slower.
            log.warning("forecast process pool broke (%s); forecasting %d remaining series in-process",
                        exc, len(tasks) - len(results))
            for task in tasks:
                if task[0] not in results:
                    key, res = _forecast_task(task)
                    results[key] = res
    finally:
        shutil.rmtree(temp_root, ignore_errors=True)
    return {key: results[key] for key, _ in series.items()}
