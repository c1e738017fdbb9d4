"""Small synthetic monthly series with a known shape, shared by the forecast library's tests."""

import itertools

import numpy as np
import pandas as pd

BOUNDS = ["yhat_lower_95", "yhat_lower_80", "yhat", "yhat_upper_80", "yhat_upper_95"]


def monthly(values, start="2022-02-01"):
    return pd.DataFrame({"ds": pd.date_range(start, periods=len(values), freq="MS"), "y": np.asarray(values, float)})


def trending_seasonal(n=48, seed=7):
    """Growing bookings with fiscal quarter-end peaks (Jan/Apr/Jul/Oct) and mild noise."""
    rng = np.random.default_rng(seed)
    ds = pd.date_range("2022-02-01", periods=n, freq="MS")
    y = (1000 + 25 * np.arange(n)) * np.where(ds.month.isin([1, 4, 7, 10]), 1.5, 1.0) + rng.normal(0, 20, n)
    return pd.DataFrame({"ds": ds, "y": y})


def assert_nested(fc):
    for lo, hi in itertools.pairwise(BOUNDS):
        assert (fc[lo] <= fc[hi] + 1e-9).all(), (lo, hi)
    assert (fc["yhat_lower_95"] >= 0).all()
    assert np.isfinite(fc[BOUNDS].to_numpy()).all()

