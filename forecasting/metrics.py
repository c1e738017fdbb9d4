"""Accuracy measures the backtest, the selection and the benchmarks score forecasts by: MASE, WAPE, coverage."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from forecasting.series import SEASON


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

