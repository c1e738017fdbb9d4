"""Monthly series the forecast library takes: checked, extended, and their naive level.

Every method indexes seasons by position, so a history is checked for gaps and duplicates once, here.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

SEASON = 12
MIN_TRAIN = 3  # fewest months a backtest origin trains on; under this every method is the naive last value


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


def naive_values(y: np.ndarray, horizon: int) -> np.ndarray:
    """Last value under 3 months, else the mean of the last 3 (one month of a rep's bookings is mostly noise)."""
    if len(y) == 0:
        raise ValueError("cannot forecast an empty history")
    level = y[-1] if len(y) < 3 else float(np.mean(y[-3:]))
    return np.full(horizon, level, dtype=float)


