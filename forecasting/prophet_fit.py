"""Prophet as a forecast method: the MAP fit by LBFGS and the Stan plumbing around it.

Prophet (the primary model) is always fitted with `algorithm="LBFGS"` (Newton takes 7-16 s per short series),
no Newton fallback, no weekly/daily seasonality and no predictive sampling (intervals come from backtest
errors, `forecasting.intervals`). Yearly Fourier order shrinks with the training length (off under 18
months); under 6 months Prophet gives the naive mean. cmdstanpy's per-fit files are removed as fits end.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import os
import shutil
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from forecasting.series import future_months, naive_values

log = logging.getLogger(__name__)

PROPHET_MIN_MONTHS = 6  # under this Prophet's trend interpolates the data (noise -> 0) and LBFGS fails: naive
DEFAULT_QUARTER_END_MONTHS: tuple[int, ...] = (1, 4, 7, 10)  # fiscal year starting in February: Apr, Jul, Oct, Jan
# How Prophet's MAP is computed: "scipy" in process (`forecasting.prophet_map`, the same posterior) or
# "cmdstan" (Prophet's own backend: a Stan process and CSV files per fit). The default is the settings'
# `forecast_prophet_backend` default (salesos/settings.py reads it from here; chosen in benchmarks/results.md).
PROPHET_BACKENDS: tuple[str, ...] = ("scipy", "cmdstan")
DEFAULT_PROPHET_BACKEND = "scipy"
# A runaway stop for one Prophet fit, never a result: CPU seconds of this process for the scipy MAP (load does
# not count), wall seconds for cmdstan's process. Iteration caps bound a fit; a monthly fit takes ~0.1 s of
# CPU, so a guard that decides a forecast (a 30 s wall timeout tripping under load fell back to another
# attempt or method) is far above anything a fit needs.
PROPHET_RUNAWAY_SECONDS = 300
PROPHET_MAX_ITER = 3000  # L-BFGS iterations of one fit: the deterministic bound

# While set (by `forecast` for its final refit only), every successful Prophet fit appends
# (its settings, its model as Prophet's JSON) here: the fitted models are kept, never pickled.
_FITTED_PROPHETS: contextvars.ContextVar[list[dict[str, Any]] | None] = contextvars.ContextVar(
    "fitted_prophets", default=None)


@contextlib.contextmanager
def collect_prophet_fits() -> Iterator[list[dict[str, Any]]]:
    """Within the block, every successful Prophet fit appends its settings and Prophet JSON to the list yielded."""
    fitted: list[dict[str, Any]] = []
    token = _FITTED_PROPHETS.set(fitted)
    try:
        yield fitted
    finally:
        _FITTED_PROPHETS.reset(token)


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
            def _load_stan_backend(self, stan_backend: str | None) -> None:
                if stan_backend == "SCIPY":  # in process: no cmdstan model loaded for the fit
                    from forecasting.prophet_map import ScipyProphetBackend

                    self.stan_backend = ScipyProphetBackend()
                    return
                Prophet._load_stan_backend(self, stan_backend)  # explicit: tests borrow this method

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


def point_forecast(model: Any, future: pd.DataFrame) -> np.ndarray:
    """Prophet's `yhat` for `future` from the fitted MAP, in numpy: `model.predict(future)["yhat"]`, same numbers.

    `predict` builds a frame of every component (trend, each seasonality, each regressor, their sums) through
    pandas, most of a monthly forecast's cost after the fit; the point forecast needs only the trend and
    the feature matrix times beta, computed here with Prophet's own `piecewise_linear` and `fourier_series`
    in its feature order (seasonalities, then extra regressors). Models this does not cover (other growth,
    holidays, conditional seasonalities, MCMC samples, minmax scaling) go through `predict`. Tested equal to
    `predict` (tests/forecasting/test_prophet_fit.py).
    """
    simple = (model.growth == "linear" and model.holidays is None and not model.mcmc_samples
              and model.scaling == "absmax" and not model.logistic_floor
              and all(props["condition_name"] is None for props in model.seasonalities.values()))
    if not simple:
        return model.predict(future)["yhat"].to_numpy(dtype=float)
    ds = pd.to_datetime(future["ds"]).reset_index(drop=True)
    t = ((ds - model.start) / model.t_scale).to_numpy(dtype=float)
    k = float(np.nanmean(model.params["k"]))
    m = float(np.nanmean(model.params["m"]))
    deltas = np.nanmean(model.params["delta"], axis=0)
    trend = model.piecewise_linear(t, deltas, k, m, model.changepoints_t) * model.y_scale  # floor 0 (absmax)
    features = [model.fourier_series(ds, props["period"], props["fourier_order"])
                for props in model.seasonalities.values()]
    for name, props in model.extra_regressors.items():
        x = pd.to_numeric(future[name]).to_numpy(dtype=float)
        features.append(((x - props["mu"]) / props["std"]).reshape(-1, 1))
    X = np.hstack(features) if features else np.zeros((len(ds), 1))
    cols = model.train_component_cols
    beta = model.params["beta"]
    additive = np.nanmean(X @ (beta * cols["additive_terms"].to_numpy()).T, axis=1) * model.y_scale
    multiplicative = np.nanmean(X @ (beta * cols["multiplicative_terms"].to_numpy()).T, axis=1)
    return trend * (1 + multiplicative) + additive


# Prophet's defaults that `_prophet_model` leaves as they are, as `_direct_forecast` must read them
# (tests/forecasting/test_prophet_fit.py checks them against Prophet's own preprocessing).
_CHANGEPOINT_RANGE = 0.8
_SEASONALITY_PRIOR = 10.0  # seasonality_prior_scale: the yearly Fourier terms
_REGRESSOR_PRIOR = 10.0  # holidays_prior_scale: what add_regressor gives the quarter-end flag
_YEAR_DAYS = 365.25
_NS_PER_DAY = 86_400_000_000_000


class _NotDirect(Exception):
    """A fit `_direct_forecast` does not cover: Prophet's own path fits it."""


def _fourier_days(days: np.ndarray, order: int) -> np.ndarray:
    """Prophet's `fourier_series(dates, 365.25, order)` on days since 1970 (the same arithmetic, in numpy)."""
    x_t = np.pi * 2 * days
    out = np.empty((len(days), 2 * order))
    for i in range(order):
        c = (i + 1) / _YEAR_DAYS * x_t
        out[:, 2 * i] = np.sin(c)
        out[:, 2 * i + 1] = np.cos(c)
    return out


def _direct_forecast(ds: np.ndarray, y: np.ndarray, future_ds: np.ndarray, qe: np.ndarray | None,
                     future_qe: np.ndarray | None, order: int, seasonality_mode: str, changepoint_prior_scale: float,
                     n_changepoints: int, custom_init: bool) -> np.ndarray:
    """What `_prophet_model(...).fit(train, algorithm="LBFGS", ...)` then `point_forecast` give, without pandas.

    Prophet's `fit` spends most of a monthly fit (after the MAP moved in process) in pandas: `setup_dataframe`,
    the seasonality features, the component matrix, then `point_forecast`'s frames. For the one model kind
    salesos fits (linear trend, yearly Fourier terms, an unstandardised quarter-end regressor in the same mode,
    no holidays, absmax scaling) this builds the same Stan data in numpy (`ds` and `future_ds` as datetime64[ns],
    sorted), maximises it with the same `prophet_map.map_fit` and evaluates the same point forecast. Anything
    else (a constant series, no changepoint, an optimiser that stops short) raises `_NotDirect` and is fitted by
    Prophet's own path. The forecasts agree with that path to rounding (tests/forecasting/test_prophet_fit.py).
    """
    from forecasting.prophet_map import map_fit

    n = len(y)
    ns = ds.astype("datetime64[ns]").astype(np.int64)
    if n < 2 or np.any(np.diff(ns) <= 0) or np.ptp(y) == 0:
        raise _NotDirect("unsorted, too short or constant history")
    y_scale = float(np.abs(y).max()) or 1.0
    start, t_scale = ns[0], float(ns[-1] - ns[0])
    t = (ns - start) / t_scale
    hist_size = int(np.floor(n * _CHANGEPOINT_RANGE))
    n_cp = min(n_changepoints, hist_size - 1)
    if n_cp <= 0:
        raise _NotDirect("no changepoints")
    cp_idx = np.linspace(0, hist_size - 1, n_cp + 1).round().astype(int)[1:]
    t_change = np.sort((ns[cp_idx] - start) / t_scale)
    fut_ns = future_ds.astype("datetime64[ns]").astype(np.int64)

    def features(stamps: np.ndarray, flag: np.ndarray | None) -> list[np.ndarray]:
        cols = [_fourier_days(stamps / 1e9 / 86400, order)] if order else []
        if flag is not None:
            cols.append(np.asarray(flag, dtype=float).reshape(-1, 1))
        return cols

    train_cols = features(ns, qe)
    if train_cols:
        X = np.asfortranarray(np.hstack(train_cols))  # the layout of Prophet's frame: the same BLAS sums
        sigmas = np.r_[np.full(2 * order, _SEASONALITY_PRIOR), [_REGRESSOR_PRIOR] if qe is not None else []]
        on = np.ones(X.shape[1])
        s_a, s_m = (on, 0 * on) if seasonality_mode == "additive" else (0 * on, on)
    else:  # Prophet's placeholder column, in no component
        X, sigmas, s_a, s_m = np.zeros((n, 1)), np.ones(1), np.zeros(1), np.zeros(1)
    ys = y / y_scale
    k0 = (ys[-1] - ys[0]) / (t[-1] - t[0])
    m0 = ys[0] - k0 * t[0]
    delta0 = np.full(len(t_change), changepoint_prior_scale / 2) if custom_init else np.zeros(len(t_change))
    init = {"k": k0, "m": m0, "delta": delta0, "beta": np.zeros(X.shape[1]), "sigma_obs": 1.0}
    data = {"y": ys, "t": t, "t_change": t_change, "X": X, "sigmas": sigmas, "tau": changepoint_prior_scale,
            "trend_indicator": 0, "s_a": s_a, "s_m": s_m}
    try:
        params, _ = map_fit(init, data, max_iter=PROPHET_MAX_ITER, timeout=PROPHET_RUNAWAY_SECONDS)
    except RuntimeError as exc:  # Prophet's path retries it with cmdstan's optimiser
        raise _NotDirect(str(exc)) from exc
    k, m = float(params["k"][0, 0]), float(params["m"][0, 0])
    delta, beta = params["delta"][0], params["beta"]
    t_f = (fut_ns - start) / t_scale
    from prophet import Prophet

    trend = Prophet.piecewise_linear(t_f, delta, k, m, t_change) * y_scale
    fut_cols = features(fut_ns, future_qe)
    X_f = np.hstack(fut_cols) if fut_cols else np.zeros((len(t_f), 1))
    additive = np.nanmean(X_f @ (beta * s_a).T, axis=1) * y_scale
    multiplicative = np.nanmean(X_f @ (beta * s_m).T, axis=1)
    return trend * (1 + multiplicative) + additive


def _prophet_model(n_months: int, seasonality_mode: str, changepoint_prior_scale: float,
                   n_changepoints: int, quarter_end: bool, backend: str = DEFAULT_PROPHET_BACKEND) -> Any:
    if backend not in PROPHET_BACKENDS:
        raise ValueError(f"Prophet backend must be one of {', '.join(PROPHET_BACKENDS)}, not {backend!r}")
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
        stan_backend="SCIPY" if backend == "scipy" else "CMDSTANPY",
    )
    model.stan_backend.set_options(newton_fallback=False)
    if quarter_end:
        model.add_regressor("quarter_end", standardize=False)
    return model


def prophet_values(history: pd.DataFrame, horizon: int, seasonality_mode: str = "additive",
                   changepoint_prior_scale: float = 0.1, quarter_end: bool = True,
                   quarter_end_months: Sequence[int] = DEFAULT_QUARTER_END_MONTHS,
                   backend: str = DEFAULT_PROPHET_BACKEND) -> np.ndarray:
    """Prophet point forecast (MAP by LBFGS, no sampling), clipped at 0; the naive mean under 6 months.

    `backend` computes the MAP: "scipy" in this process (`forecasting.prophet_map`) or "cmdstan" (Stan's
    LBFGS in a process of its own); the retries below are for cmdstan's failures, and apply to both.

    LBFGS often stops at its first step on Prophet's Laplace changepoint prior (all changepoint deltas start
    exactly at the prior's kink; with a stiff prior, 0.01, about half of monthly fits fail). A failed fit is
    retried from changepoint deltas of half the prior scale, then with fewer changepoints and without the
    quarter-end regressor (on short windows it can pin three points exactly); only then does it raise
    RuntimeError (Newton fallback is off: it costs seconds per series). Iterations are capped (deterministic);
    `PROPHET_RUNAWAY_SECONDS` only stops a runaway fit (CPU time for scipy: machine load cannot change a result).
    """
    y = history["y"].to_numpy(dtype=float)
    n = len(y)
    if n < PROPHET_MIN_MONTHS:
        return np.clip(naive_values(y, horizon), 0, None)
    quiet_stan()
    ds_train = history["ds"].to_numpy()
    ds_future = future_months(history, horizon).to_numpy()
    qe_months = sorted(set(quarter_end_months))

    def quarter_end_flags(stamps: np.ndarray) -> np.ndarray:
        return np.isin(stamps.astype("datetime64[M]").astype(np.int64) % 12 + 1, qe_months).astype(float)

    qe_train, qe_future = quarter_end_flags(ds_train), quarter_end_flags(ds_future)
    # a regressor seen in under 3 months (or missing from under 3) just interpolates those months
    use_qe = bool(quarter_end) and 3 <= int(qe_train.sum()) <= n - 3
    n_cp = 25 if n >= 12 else 2
    attempts = [(n_cp, False, use_qe), (n_cp, True, use_qe), (max(1, n // 4), True, False)]
    last_error: Exception | None = None
    np.random.seed(0)
    # Fits whose Prophet model is not kept (every backtest origin) skip Prophet's pandas (`_direct_forecast`);
    # the frames Prophet's own fit reads are built only if a fit needs it.
    direct = backend == "scipy" and _FITTED_PROPHETS.get() is None
    frames: dict[str, pd.DataFrame] = {}
    for n_changepoints, custom_init, with_qe in attempts:
        if direct:
            try:
                yhat = _direct_forecast(ds_train, y, ds_future, qe_train if with_qe else None,
                                        qe_future if with_qe else None, yearly_fourier_order(n), seasonality_mode,
                                        changepoint_prior_scale, n_changepoints, custom_init)
            except _NotDirect:
                pass
            except (TimeoutError, ValueError) as exc:
                last_error = exc
                continue
            else:
                if np.all(np.isfinite(yhat)):
                    return np.clip(yhat, 0, None)
                last_error = RuntimeError("Prophet returned a non-finite forecast")
                continue
        if not frames:
            frames["train"] = history[["ds", "y"]].reset_index(drop=True)
            frames["future"] = pd.DataFrame({"ds": future_months(history, horizon)})
            if use_qe:
                frames["train"] = frames["train"].assign(quarter_end=qe_train)
                frames["future"]["quarter_end"] = qe_future
        train, future = frames["train"], frames["future"]
        train_i = train if with_qe or not use_qe else train.drop(columns="quarter_end")
        model = _prophet_model(n, seasonality_mode, changepoint_prior_scale, n_changepoints, with_qe, backend)
        kwargs: dict[str, Any] = {"algorithm": "LBFGS", "iter": PROPHET_MAX_ITER, "timeout": PROPHET_RUNAWAY_SECONDS}
        if custom_init:  # Prophet's own initial values, changepoint deltas moved off the kink
            inputs = model.preprocess(train_i.copy())
            init = model.calculate_initial_params(inputs.K)
            kwargs["init"] = {"k": init.k, "m": init.m, "beta": np.asarray(init.beta), "sigma_obs": init.sigma_obs,
                              "delta": np.full(len(init.delta), changepoint_prior_scale / 2)}
            model = _prophet_model(n, seasonality_mode, changepoint_prior_scale, n_changepoints, with_qe, backend)
        try:
            with _stan_scratch() if backend == "cmdstan" else contextlib.nullcontext():
                model.fit(train_i, **kwargs)
            yhat = point_forecast(model, future)
        except (RuntimeError, TimeoutError, ValueError) as exc:
            last_error = exc
            continue
        if np.all(np.isfinite(yhat)):
            sink = _FITTED_PROPHETS.get()
            if sink is not None:
                from prophet.serialize import model_to_json

                sink.append({"seasonality_mode": seasonality_mode, "changepoint_prior_scale": changepoint_prior_scale,
                             "quarter_end": with_qe, "n_changepoints": n_changepoints, "backend": backend,
                             "model_json": model_to_json(model)})
            return np.clip(yhat, 0, None)
        last_error = RuntimeError("Prophet returned a non-finite forecast")
    raise RuntimeError(f"Prophet LBFGS failed after {len(attempts)} attempts: {brief_error(last_error)}")


# How the chosen methods' forecasts combine, step by step. Both commute with `actual - forecast`, so a
