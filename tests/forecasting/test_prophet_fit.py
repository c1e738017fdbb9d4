"""Prophet's LBFGS fit and its Stan plumbing (forecasting/prophet_fit.py)."""

import os

import numpy as np
import pandas as pd
import pytest

from forecasting.prophet_fit import collect_prophet_fits, prophet_values
from tests.forecasting.synthetic import monthly, trending_seasonal


@pytest.mark.parametrize("backend", ["cmdstan", "scipy"])
def test_prophet_fits_leave_no_stan_files_behind(backend):
    import cmdstanpy

    before = set(os.listdir(cmdstanpy._TMPDIR))  # other code (bookings.prophet_forecast) may leave its own
    prophet_values(trending_seasonal(30), 3, backend=backend)
    prophet_values(monthly([5.0, 0.0, 0.0, 7.0, 0.0, 0.0, 9.0]), 3, changepoint_prior_scale=0.5,
                   backend=backend)  # may fail/retry
    assert set(os.listdir(cmdstanpy._TMPDIR)) - before == set()


@pytest.mark.parametrize("n", [14, 40])
@pytest.mark.parametrize(("mode", "quarter_end"), [("additive", True), ("multiplicative", True), ("additive", False)])
@pytest.mark.parametrize("backend", ["cmdstan", "scipy"])
def test_prophet_with_the_memoised_component_matrix_forecasts_exactly_as_prophet(monkeypatch, n, mode, quarter_end,
                                                                                 backend):
    """The component matrix is built once per layout; every forecast equals plain Prophet's, bit for bit."""
    from prophet import Prophet

    import forecasting.prophet_fit as models

    hist = trending_seasonal(n, seed=3)
    with collect_prophet_fits():  # fits whose model is kept go through Prophet's own fit (not _direct_forecast)
        ours = [prophet_values(hist, 6, mode, 0.1, quarter_end, backend=backend) for _ in range(2)]  # 2nd: the memo
    assert any(key[0] for key in models._COMPONENT_MATRICES)
    # plain Prophet, given only the way to load the in-process backend
    plain_class = type("PlainProphet", (Prophet,), {"_load_stan_backend": models.prophet_class()._load_stan_backend})
    monkeypatch.setattr(models, "_PROPHET_CLASS", plain_class)
    with collect_prophet_fits():
        plain = prophet_values(hist, 6, mode, 0.1, quarter_end, backend=backend)
    for values in ours:
        np.testing.assert_array_equal(values, plain)


def test_the_memoised_component_matrix_is_prophets_own_and_not_shared_between_models():
    import forecasting.prophet_fit as models

    hist = trending_seasonal(30, seed=5).assign(quarter_end=lambda d: d["ds"].dt.month.isin([1, 4, 7, 10]) * 1.0)
    first, second = (models._prophet_model(30, "multiplicative", 0.1, 25, True) for _ in range(2))
    first.fit(hist, algorithm="LBFGS")
    second.fit(hist, algorithm="LBFGS")
    pd.testing.assert_frame_equal(first.train_component_cols, second.train_component_cols)
    assert first.component_modes == second.component_modes
    assert first.train_component_cols is not second.train_component_cols
    second.train_component_cols.iloc[0, 0] = 99  # a model changing its own copy leaves the memo alone
    third = models._prophet_model(30, "multiplicative", 0.1, 25, True)
    third.fit(hist, algorithm="LBFGS")
    assert int(third.train_component_cols.iloc[0, 0]) != 99


@pytest.mark.parametrize("n", [14, 20, 40])
@pytest.mark.parametrize(("mode", "quarter_end"), [("additive", True), ("multiplicative", True), ("additive", False),
                                                   ("multiplicative", False)])
def test_the_numpy_point_forecast_is_prophets_predict(n, mode, quarter_end):
    """point_forecast gives predict's yhat (to rounding) for every model layout prophet_values fits."""
    import forecasting.prophet_fit as models

    hist = trending_seasonal(n, seed=8)
    model = models._prophet_model(n, mode, 0.1, 25 if n >= 12 else 2, quarter_end)
    future = pd.DataFrame({"ds": pd.date_range(hist["ds"].max() + pd.offsets.MonthBegin(1), periods=12, freq="MS")})
    if quarter_end:
        hist = hist.assign(quarter_end=hist["ds"].dt.month.isin([1, 4, 7, 10]).astype(float))
        future["quarter_end"] = future["ds"].dt.month.isin([1, 4, 7, 10]).astype(float)
    model.fit(hist, algorithm="LBFGS")
    np.testing.assert_allclose(models.point_forecast(model, future), model.predict(future)["yhat"].to_numpy(),
                               rtol=1e-12, atol=1e-9)


@pytest.mark.parametrize("n", [7, 14, 20, 26, 48, 72])
@pytest.mark.parametrize(("mode", "quarter_end"), [("additive", True), ("multiplicative", True), ("additive", False)])
@pytest.mark.parametrize("cps", [0.1, 0.01])
def test_the_direct_fit_forecasts_exactly_as_prophets_own_fit(n, mode, quarter_end, cps):
    """A fit whose model is not kept skips Prophet's pandas (_direct_forecast): the same forecast, bit for bit.

    cps 0.01 on noisy short windows takes the retries (custom initial deltas, fewer changepoints, no regressor).
    """

    for seed in range(3):
        hist = trending_seasonal(n, seed=seed)
        hist["y"] = hist["y"] * (1 + np.random.default_rng(seed).normal(0, 0.2, n))
        direct = prophet_values(hist, 12, mode, cps, quarter_end)
        with collect_prophet_fits() as kept:  # Prophet's own fit, its model kept
            own = prophet_values(hist, 12, mode, cps, quarter_end)
        assert kept  # it did go through Prophet
        np.testing.assert_array_equal(direct, own)


def test_the_direct_fit_reads_the_stan_data_prophet_builds(monkeypatch):
    """Prophet's defaults the direct fit mirrors (changepoint range, prior scales, feature layout) are Prophet's."""
    import forecasting.prophet_fit as models
    import forecasting.prophet_map as pmap

    seen = []
    real = pmap.map_fit
    monkeypatch.setattr(pmap, "map_fit", lambda init, data, **kw: seen.append((init, data)) or real(init, data, **kw))
    hist = trending_seasonal(40, seed=2)
    models.prophet_values(hist, 6)
    with collect_prophet_fits():
        models.prophet_values(hist, 6)
    (init_d, data_d), (init_p, data_p) = seen
    for key in ("y", "t", "t_change", "X", "sigmas", "s_a", "s_m", "tau", "trend_indicator"):
        ours = np.asarray(data_d[key], dtype=float)
        theirs = data_p[key].to_numpy() if hasattr(data_p[key], "to_numpy") else data_p[key]
        np.testing.assert_array_equal(ours, np.asarray(theirs, dtype=float).reshape(ours.shape), err_msg=key)
    for key in ("k", "m", "delta", "beta"):
        np.testing.assert_array_equal(np.asarray(init_d[key], dtype=float), np.asarray(init_p[key], dtype=float))
