"""Calibrated 80%/95% intervals (forecasting/intervals.py)."""


import numpy as np
import pandas as pd

from forecasting.intervals import add_intervals, interval_multipliers
from forecasting.methods import Candidate
from forecasting.select import fit_predict_intervals, forecast
from tests.forecasting.synthetic import assert_nested, monthly, trending_seasonal


def test_intervals_nested_non_negative_and_widen_with_level():
    rng = np.random.default_rng(11)
    y = np.where(rng.uniform(size=40) < 0.3, 0.0, rng.gamma(2.0, 500.0, 40))  # sparse, noisy rep bookings
    fc, _sel = forecast(monthly(y), horizon=6, origins=4)
    assert len(fc) == 6
    assert_nested(fc)
    assert (fc["yhat_upper_95"] > fc["yhat_upper_80"]).any()


def test_interval_multipliers_from_known_errors():
    errors = np.array([[1.0, -2.0], [-1.0, 2.0], [1.0, -2.0], [-1.0, 2.0]])
    w = interval_multipliers(errors, horizon=3)
    assert (w[0.95] >= w[0.80]).all()
    assert w[0.80][1] > w[0.80][0]  # errors grow with the step
    assert w[0.80][2] > w[0.80][1]  # beyond the scored steps: keeps growing
    assert len(interval_multipliers(errors, horizon=1)[0.80]) == 1  # shorter than the scored steps
    assert (interval_multipliers(np.zeros((3, 2)), 2)[0.95] == 0).all()  # perfect backtest: no width
    fallback = interval_multipliers(None, 4)[0.80]
    assert np.all(np.diff(fallback) > 0)


def test_each_candidate_gives_its_own_calibrated_intervals():
    fc = fit_predict_intervals(Candidate("theta", "theta"), trending_seasonal(30), horizon=4, origins=3)
    assert fc.columns.tolist() == ["ds", "yhat", "yhat_lower_95", "yhat_lower_80", "yhat_upper_80", "yhat_upper_95"]
    assert_nested(fc)


def test_add_intervals_clips_lower_bounds_at_zero():
    fc = pd.DataFrame({"ds": pd.date_range("2026-01-01", periods=2, freq="MS"), "yhat": [1.0, 50.0]})
    out = add_intervals(fc, np.array([[3.0, -3.0], [-3.0, 3.0]]), scale=10.0)
    assert_nested(out)
    assert out["yhat_lower_80"].iloc[0] == 0.0
