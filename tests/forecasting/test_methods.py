"""The forecast methods (forecasting/methods.py): seasonal naive, the grids, never negative."""


import numpy as np
import pandas as pd
import pytest

from forecasting.methods import default_candidates, load_methods, seasonal_naive, theta
from forecasting.prophet_fit import prophet_values
from tests.forecasting.synthetic import monthly, trending_seasonal


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


@pytest.mark.parametrize("model", ["AutoETS", "AutoTheta", "AutoCES"])
def test_within_one_backtest_an_automatic_model_keeps_its_first_origins_form(model):
    """The first window chooses (as statsforecast alone would); a later window fits that form, not a new choice."""
    from statsforecast import models as sf_models

    from forecasting.methods import _chosen_form, kept_forms, statsforecast_values

    hist = trending_seasonal(40, seed=4)
    first, later = hist.iloc[:30], hist.iloc[:34]
    cls = getattr(sf_models, model)
    with kept_forms():
        got_first = statsforecast_values(first, 6, model=model)
        got_later = statsforecast_values(later, 6, model=model)
    plain_first = np.clip(cls(season_length=12).forecast(y=first["y"].to_numpy(), h=6)["mean"], 0, None)
    np.testing.assert_array_equal(got_first, plain_first)
    form = _chosen_form(model, cls(season_length=12).fit(first["y"].to_numpy()))
    assert form is not None
    kept = np.clip(cls(season_length=12, **form).forecast(y=later["y"].to_numpy(), h=6)["mean"], 0, None)
    np.testing.assert_array_equal(got_later, kept)
    # outside a backtest every fit chooses afresh
    fresh = np.clip(cls(season_length=12).forecast(y=later["y"].to_numpy(), h=6)["mean"], 0, None)
    np.testing.assert_array_equal(statsforecast_values(later, 6, model=model), fresh)
