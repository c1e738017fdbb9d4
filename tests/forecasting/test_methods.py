"""The forecast methods (forecasting/methods.py): seasonal naive, the grids, never negative."""


import numpy as np
import pandas as pd
import pytest

from forecasting.methods import default_candidates, load_methods, seasonal_naive, theta
from forecasting.prophet_fit import prophet_values
from tests.forecasting.synthetic import monthly


def test_seasonal_naive_repeats_last_year_exactly():
    fc = seasonal_naive(monthly(range(1, 25)), 14)
    assert fc["yhat"].tolist() == [*range(13, 25), 13, 14]
    assert fc["ds"].iloc[0] == pd.Timestamp("2024-02-01")
    assert fc["ds"].iloc[-1] == pd.Timestamp("2025-03-01")


def test_seasonal_naive_falls_back_to_mean_of_last_three_then_last_value():
    assert seasonal_naive(monthly([1, 2, 3, 4, 8]), 2)["yhat"].tolist() == [5.0, 5.0]
    assert seasonal_naive(monthly([7, 9]), 3)["yhat"].tolist() == [9.0, 9.0, 9.0]
    assert seasonal_naive(monthly([4]), 1)["yhat"].tolist() == [4.0]


def test_forecasts_are_never_negative():
    falling = monthly(np.linspace(500, 10, 30))
    assert (theta(falling, 12)["yhat"] >= 0).all()
    assert (prophet_values(falling, 12) >= 0).all()
    assert (seasonal_naive(monthly([-5.0] * 14), 3)["yhat"] == 0).all()


def test_the_primary_prophet_grid_keeps_one_prophet_and_every_other_candidate():

    full = {c.name: c.kind for c in default_candidates()}
    primary = {c.name: c.kind for c in default_candidates(prophet_grid="primary")}
    assert [n for n, k in primary.items() if k == "prophet"] == [load_methods().primary_prophet]
    assert sum(k == "prophet" for k in full.values()) >= 1
    assert {n for n, k in full.items() if k != "prophet"} == {n for n, k in primary.items() if k != "prophet"}
    with pytest.raises(ValueError, match="prophet_grid"):
        default_candidates(prophet_grid="huge")
