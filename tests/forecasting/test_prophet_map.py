"""Prophet's MAP in process (forecasting/prophet_map.py) against Prophet's Stan model and cmdstan's answer."""

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import approx_fprime

from forecasting import prophet_map
from forecasting.prophet_fit import DEFAULT_PROPHET_BACKEND, PROPHET_BACKENDS, prophet_class, prophet_values
from tests.forecasting.synthetic import trending_seasonal


def _data(trend_indicator=0, mult=False, seed=0, T=40, S=10, K=5):
    rng = np.random.default_rng(seed)
    s_m = (rng.uniform(size=K) < 0.5).astype(float) if mult else np.zeros(K)
    return {"y": rng.uniform(size=T), "t": np.linspace(0, 1, T), "t_change": np.sort(rng.uniform(0, 0.8, S)),
            "X": pd.DataFrame(rng.normal(size=(T, K))), "s_a": 1 - s_m, "s_m": s_m, "sigmas": np.full(K, 10.0),
            "tau": 0.1, "trend_indicator": trend_indicator, "T": T, "S": S, "K": K}


@pytest.mark.parametrize(("trend_indicator", "mult"), [(0, False), (0, True), (2, False)])
def test_the_gradient_is_the_objectives(trend_indicator, mult):
    prob = prophet_map._Problem(_data(trend_indicator, mult))
    rng = np.random.default_rng(1)
    z = np.r_[rng.normal(size=2), rng.uniform(0.01, 0.1, 2 * prob.S), rng.normal(size=prob.K) * 0.1]
    _, grad = prob(z)
    numeric = approx_fprime(z, lambda v: prob(v)[0], 1e-7)
    np.testing.assert_allclose(grad, numeric, rtol=1e-4, atol=1e-3 * np.abs(grad).max())


def test_the_objective_is_stans_log_density_without_constants():
    """Stan's `lp__` at a point: priors and the likelihood with `~` (constants dropped), no Jacobian."""
    data = _data(mult=True)
    prob = prophet_map._Problem(data)
    k, m, sigma = 0.4, 0.2, 0.3
    delta = np.linspace(-0.05, 0.05, prob.S)
    beta = np.linspace(-0.2, 0.2, prob.K)
    A = (data["t"][:, None] >= data["t_change"][None, :]).astype(float)
    trend = (k + A @ delta) * data["t"] + (m + A @ (-data["t_change"] * delta))
    X = data["X"].to_numpy()
    mu = (X * data["s_a"]) @ beta + trend * (1 + (X * data["s_m"]) @ beta)
    lp = (-k**2 / 50 - m**2 / 50 - np.abs(delta).sum() / data["tau"] - sigma**2 / 0.5
          - np.sum(beta**2 / data["sigmas"] ** 2) / 2 - len(mu) * np.log(sigma) - np.sum((data["y"] - mu) ** 2) / (2 * sigma**2))
    assert prob.objective(k, m, delta, sigma, beta) == pytest.approx(-lp, rel=1e-12)
    # profiled: the objective at the best sigma for these parameters, no sigma beats it
    z = np.r_[k, m, np.maximum(delta, 0), np.maximum(-delta, 0), beta]
    best = prob(z)[0]
    sigmas = np.geomspace(1e-3, 10, 400)
    assert best <= min(prob.objective(k, m, delta, s, beta) for s in sigmas) + 1e-12
    assert best == pytest.approx(prob.objective(k, m, delta, prob.sigma(prob.residuals(k, m, delta, beta)[0] @
                                                                       prob.residuals(k, m, delta, beta)[0]), beta))


def _fit_both(hist, mode):
    """Each backend's fit of the same Prophet model: (stan data, params) by backend."""
    seen = {}
    for backend in PROPHET_BACKENDS:
        model = prophet_class()(growth="linear", yearly_seasonality=4, weekly_seasonality=False,
                                daily_seasonality=False, seasonality_mode=mode, changepoint_prior_scale=0.1,
                                uncertainty_samples=0, stan_backend="SCIPY" if backend == "scipy" else "CMDSTANPY")
        calls = []
        inner = model.stan_backend.fit

        def record(init, data, _inner=inner, _calls=calls, **kw):
            out = _inner(init, data, **kw)
            _calls.append(data)
            return out

        model.stan_backend.fit = record
        model.fit(hist, algorithm="LBFGS", iter=3000)
        seen[backend] = (calls[0], {k: np.asarray(v).reshape(-1) for k, v in model.params.items()}, model)
    return seen


@pytest.mark.parametrize("mode", ["additive", "multiplicative"])
def test_the_scipy_map_is_at_least_as_high_a_posterior_as_cmdstans_and_forecasts_alike(mode):
    hist = trending_seasonal(48, seed=11)
    seen = _fit_both(hist, mode)
    data = seen["scipy"][0]
    prob = prophet_map._Problem(data)

    def neg_lp(p):
        return prob.objective(p["k"][0], p["m"][0], p["delta"], p["sigma_obs"][0], p["beta"])

    ours, stans = neg_lp(seen["scipy"][1]), neg_lp(seen["cmdstan"][1])
    assert ours <= stans + 1e-6  # the same posterior, maximised at least as well
    assert seen["scipy"][1]["lp__"][0] == pytest.approx(-ours)
    future = seen["scipy"][2].make_future_dataframe(12, freq="MS")
    a = seen["scipy"][2].predict(future)["yhat"].to_numpy()
    b = seen["cmdstan"][2].predict(future)["yhat"].to_numpy()
    assert np.max(np.abs(a - b)) / np.mean(np.abs(hist["y"])) < 0.05


def test_the_default_backend_is_the_settings_default():
    """Defined once: the settings schema's default and choices are prophet_fit's."""
    from salesos.settings import Settings, setting_defaults

    assert setting_defaults()["forecast_prophet_backend"] == DEFAULT_PROPHET_BACKEND
    field = Settings.__dataclass_fields__["forecast_prophet_backend"]
    assert tuple(field.metadata["choices"]) == PROPHET_BACKENDS


def test_an_unknown_backend_is_refused():
    with pytest.raises(ValueError, match="Prophet backend must be one of scipy, cmdstan"):
        prophet_values(trending_seasonal(30), 3, backend="stan")


def test_the_logistic_trend_and_sampling_go_to_prophets_own_backend():
    hist = trending_seasonal(30, seed=2).assign(cap=5000.0)
    model = prophet_class()(growth="logistic", yearly_seasonality=False, weekly_seasonality=False,
                            daily_seasonality=False, uncertainty_samples=0, stan_backend="SCIPY")
    model.fit(hist, algorithm="LBFGS")
    assert isinstance(model.stan_backend, prophet_map.ScipyProphetBackend)
    assert model.stan_fit is not None  # cmdstan's answer
    assert np.isfinite(model.params["k"]).all()
