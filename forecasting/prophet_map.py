"""Prophet's MAP fit in process: the log posterior of Prophet's Stan model maximised by scipy's L-BFGS-B.

Prophet 1.5 fits through `stan_backend.fit(stan_init, stan_data, **kwargs)`, which for cmdstanpy starts the
compiled model as a process and reads its answer back from CSV files: at scale M that start and those files
were about two thirds of a Prophet fit (7 fits per series: the backtest origins and the full history). This
backend computes the same MAP estimate in numpy: the objective is `prophet/stan_model/prophet.stan`'s log
density without the Jacobian (what Stan's `optimize` maximises by default), with its analytic gradient:

    k, m ~ N(0, 5);  delta ~ Laplace(0, tau);  sigma_obs ~ N(0, 0.5), sigma_obs > 0;  beta ~ N(0, sigmas)
    y ~ N(X_sa beta + trend * (1 + X_sm beta), sigma_obs),  trend = (k + A delta) t + m - A (t_change * delta)

The Laplace prior's kink at 0 (where every changepoint delta starts, and where many end) is what makes
Stan's LBFGS stop early or fail; here each delta is split into a positive and a negative part, both bounded
below by 0 and both priced |.|/tau, which makes the problem smooth with bounds and its optimum the same MAP
(at the optimum one part of each pair is 0). sigma_obs is profiled out: for given other parameters the
posterior's sigma solves 4 s^4 + T s^2 - RSS = 0 (one positive root), so the optimiser works on the rest
only, and the gradient there is the full objective's (envelope theorem). On low-noise series a free sigma
made the problem badly scaled (the curvature grows as 1/sigma^2) and L-BFGS-B stopped short of the optimum.
Linear and flat trends (all salesos fits) are done here; the logistic trend and MCMC sampling are passed to
Prophet's own cmdstanpy backend.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Any

import numpy as np
from prophet.models import IStanBackend

BACKEND_NAME = "SCIPY"
# scipy's L-BFGS-B stopping rules, far tighter than its defaults (ftol 2.2e-9, gtol 1e-5): the seasonal and
# quarter-end coefficients share a nearly flat ridge (the quarter-end months and the period-3 Fourier term
# overlap), along which each step gains little, so a relative-reduction rule stops short of the optimum (at
# 1e-13 one test series ended 0.02 below cmdstan's log posterior). With 1e-16 (under machine epsilon) the
# projected gradient decides; it costs about 1.5x the iterations (~140 for a 48-month series).
FTOL = 1e-16
GTOL = 1e-9
SIGMA_FLOOR = 1e-10  # sigma_obs > 0: the bound L-BFGS-B keeps it above
_BLAS: Any = None  # this process's threadpoolctl controller (finding the BLAS libraries costs ~30 ms: once)


def _one_blas_thread() -> Any:
    """A context in which BLAS runs single-threaded.

    L-BFGS-B's small factorisations (scipy's OpenBLAS, 2 threads by default here) are dominated by handing
    work between threads: one monthly fit took 1.5 s with 2 BLAS threads on the loaded 2-core machine and
    0.06 s with one. Forecast workers already run one per core.
    """
    global _BLAS
    if _BLAS is None:
        from threadpoolctl import ThreadpoolController

        _BLAS = ThreadpoolController()
    return _BLAS.limit(limits=1, user_api="blas")


class ScipyProphetBackend(IStanBackend):
    """An `IStanBackend` whose `fit` maximises Prophet's posterior in process (no Stan process, no files)."""

    def __init__(self) -> None:
        super().__init__()
        self._fallback: IStanBackend | None = None
        self.last_result: Any = None  # scipy's OptimizeResult of the last fit (iterations, status)

    @staticmethod
    def get_type() -> str:
        return BACKEND_NAME

    def load_model(self) -> Any:
        return None  # nothing to load: the model is the function below

    def _cmdstan(self) -> IStanBackend:
        if self._fallback is None:
            from prophet.models import CmdStanPyBackend

            self._fallback = CmdStanPyBackend()
            self._fallback.set_options(newton_fallback=self.newton_fallback)
        return self._fallback

    def fit(self, stan_init: dict[str, Any], stan_data: dict[str, Any], **kwargs: Any) -> OrderedDict[str, np.ndarray]:
        """MAP parameters as Prophet's cmdstanpy backend returns them (each a 1 x n array, plus trend, lp__).

        Reads `init` (custom initial values, as cmdstanpy's backend does), `iter` (iteration cap) and
        `timeout` (CPU seconds of this process, TimeoutError past it: a runaway stop that machine load
        cannot trip; cmdstan's fallback reads it as wall seconds); `algorithm` is accepted and ignored (the
        answer is the MAP either way). Raises RuntimeError when the optimiser does not converge.
        """
        if int(stan_data["trend_indicator"]) == 1:  # logistic: not needed by salesos, Prophet's own backend
            self.stan_fit = None
            out = self._cmdstan().fit(stan_init, stan_data, **kwargs)
            self.stan_fit = self._fallback.stan_fit if self._fallback is not None else None
            return out
        init = dict(stan_init)
        if "init" in kwargs:
            from prophet.models import CmdStanPyBackend

            init = CmdStanPyBackend.sanitize_custom_inits(stan_init, kwargs["init"])
        self.stan_fit = None
        try:
            params, result = map_fit(init, stan_data, max_iter=int(kwargs.get("iter", 10_000)),
                                     timeout=kwargs.get("timeout"))
        except RuntimeError:
            # scipy stopped short of the optimum (seen on a near-flat series in CI): Prophet's own cmdstan
            # optimiser fits it, as it would with forecast_prophet_backend: cmdstan; its failures are Prophet's.
            self.last_result = None
            return self._cmdstan().fit(stan_init, stan_data, **kwargs)
        self.last_result = result
        return params

    def sampling(self, stan_init: dict[str, Any], stan_data: dict[str, Any], samples: int,
                 **kwargs: Any) -> OrderedDict[str, np.ndarray]:
        """MCMC is Stan's job: Prophet's own cmdstanpy backend."""
        out = self._cmdstan().sampling(stan_init, stan_data, samples, **kwargs)
        self.stan_fit = self._cmdstan().stan_fit
        return out


class _Problem:
    """Prophet's negative log posterior, sigma_obs profiled out, and its gradient over z = (k, m, delta+, delta-, beta).

    `objective` is the full negative log posterior at any sigma (to score another optimiser's answer).
    """

    def __init__(self, data: dict[str, Any]) -> None:
        self.y = np.asarray(data["y"], dtype=float)
        self.t = np.asarray(data["t"], dtype=float)
        t_change = np.asarray(data["t_change"], dtype=float).reshape(-1)
        X = data["X"]
        X = np.asarray(X.to_numpy() if hasattr(X, "to_numpy") else X, dtype=float).reshape(len(self.y), -1)
        self.s_a = np.asarray(data["s_a"], dtype=float).reshape(-1)
        self.s_m = np.asarray(data["s_m"], dtype=float).reshape(-1)
        self.X_sa = X * self.s_a
        self.X_sm = X * self.s_m
        self.has_mult = bool(np.any(self.X_sm != 0))
        self.sigmas = np.asarray(data["sigmas"], dtype=float).reshape(-1)
        self.tau = float(data["tau"])
        self.flat = int(data["trend_indicator"]) == 2
        self.T, self.S, self.K = len(self.y), len(t_change), X.shape[1]
        # the changepoint matrix of the Stan model (A[i, j] = t[i] >= t_change[j], t and t_change sorted),
        # folded with the offsets that keep the trend continuous: trend = k t + m + B delta
        A = (self.t[:, None] >= t_change[None, :]).astype(float)
        self.B = A * (self.t[:, None] - t_change[None, :])
        self.deadline: float | None = None

    def split(self, z: np.ndarray) -> tuple[float, float, np.ndarray, np.ndarray]:
        S = self.S
        return z[0], z[1], z[2:2 + S] - z[2 + S:2 + 2 * S], z[2 + 2 * S:]

    def residuals(self, k: float, m: float, delta: np.ndarray, beta: np.ndarray) -> tuple[np.ndarray, np.ndarray,
                                                                                             np.ndarray | float]:
        """y - mu, the trend and the multiplicative scale (1 + X_sm beta) at these parameters."""
        trend = self.trend(k, m, delta)
        scale = 1.0 + self.X_sm @ beta if self.has_mult else 1.0
        return self.y - (self.X_sa @ beta + trend * scale), trend, scale

    def sigma(self, rss: float) -> float:
        """The posterior's sigma_obs given the rest: the positive root of 4 s^4 + T s^2 - rss (stable form)."""
        u = 2.0 * rss / (self.T + np.sqrt(self.T * self.T + 16.0 * rss))
        return max(float(np.sqrt(u)), SIGMA_FLOOR)

    def objective(self, k: float, m: float, delta: np.ndarray, sigma: float, beta: np.ndarray) -> float:
        """Stan's -lp__ (constants dropped, no Jacobian) at these parameters."""
        r, _, _ = self.residuals(k, m, np.asarray(delta, float), np.asarray(beta, float))
        return self._f(k, m, float(np.abs(delta).sum()), beta, sigma, float(r @ r))

    def _f(self, k: float, m: float, abs_delta: float, beta: np.ndarray, sigma: float, rss: float) -> float:
        return (k * k + m * m) / 50.0 + abs_delta / self.tau + sigma * sigma / 0.5 \
            + float(np.sum((beta / self.sigmas) ** 2)) / 2.0 + self.T * np.log(sigma) + rss / (2.0 * sigma * sigma)

    def trend(self, k: float, m: float, delta: np.ndarray) -> np.ndarray:
        if self.flat:
            return np.full(self.T, m)
        return k * self.t + m + self.B @ delta

    def __call__(self, z: np.ndarray) -> tuple[float, np.ndarray]:
        if self.deadline is not None and time.process_time() > self.deadline:
            raise TimeoutError("Prophet MAP fit took longer than its timeout")
        S = self.S
        k, m, delta, beta = self.split(z)
        r, trend, scale = self.residuals(k, m, delta, beta)
        rss = float(r @ r)
        sigma = self.sigma(rss)
        inv_tau = 1.0 / self.tau
        f = self._f(k, m, float(z[2:2 + 2 * S].sum()), beta, sigma, rss)
        g_mu = -r / (sigma * sigma)  # d f / d mu at the profiled sigma (d f / d sigma = 0 there)
        g_trend = g_mu * scale
        grad = np.empty_like(z)
        if self.flat:
            grad[0] = k / 25.0
            grad[1] = g_trend.sum() + m / 25.0
            g_delta = np.zeros(S)
        else:
            grad[0] = g_trend @ self.t + k / 25.0
            grad[1] = g_trend.sum() + m / 25.0
            g_delta = self.B.T @ g_trend
        grad[2:2 + S] = g_delta + inv_tau
        grad[2 + S:2 + 2 * S] = -g_delta + inv_tau
        g_beta = self.X_sa.T @ g_mu + beta / self.sigmas ** 2
        if self.has_mult:
            g_beta = g_beta + self.X_sm.T @ (g_mu * trend)
        grad[2 + 2 * S:] = g_beta
        return f, grad


def map_fit(init: dict[str, Any], data: dict[str, Any], max_iter: int = 10_000,
            timeout: float | None = None) -> tuple[OrderedDict[str, np.ndarray], Any]:
    """Maximise Prophet's log posterior from `init`; the parameters in cmdstanpy's layout and scipy's result.

    `timeout`: CPU seconds of this process (not wall time), so a loaded machine never stops a fit early.
    """
    from scipy.optimize import minimize

    prob = _Problem(data)
    S, K = prob.S, prob.K
    delta0 = np.asarray(init["delta"], dtype=float).reshape(-1)
    beta0 = np.asarray(init["beta"], dtype=float).reshape(-1)
    if delta0.shape != (S,) or beta0.shape != (K,):
        raise ValueError(f"Prophet init has {delta0.size} deltas and {beta0.size} betas; the data {S} and {K}")
    z0 = np.concatenate([[float(init["k"]), float(init["m"])], np.maximum(delta0, 0.0), np.maximum(-delta0, 0.0),
                         beta0])  # sigma_obs's initial value is not needed: it is profiled out
    bounds = [(None, None)] * 2 + [(0.0, None)] * (2 * S) + [(None, None)] * K
    if timeout is not None:
        prob.deadline = time.process_time() + float(timeout)  # CPU time: load does not count
    with _one_blas_thread():
        result = minimize(prob, z0, jac=True, method="L-BFGS-B", bounds=bounds,
                          options={"maxiter": max_iter, "maxfun": 20 * max_iter, "ftol": FTOL, "gtol": GTOL})
    if not np.all(np.isfinite(result.x)) or not (result.success or _converged_enough(result, prob)):
        raise RuntimeError(f"Prophet MAP fit (L-BFGS-B) did not converge: {result.message}")
    k, m, delta, beta = prob.split(result.x)
    r, trend, _ = prob.residuals(k, m, delta, beta)
    sigma = prob.sigma(float(r @ r))
    params: OrderedDict[str, np.ndarray] = OrderedDict()
    params["lp__"] = np.array([[-float(result.fun)]])
    params["k"] = np.array([[k]])
    params["m"] = np.array([[m]])
    params["delta"] = delta.reshape(1, -1)
    params["sigma_obs"] = np.array([[sigma]])
    params["beta"] = beta.reshape(1, -1)
    params["trend"] = trend.reshape(1, -1)
    return params, result


def _converged_enough(result: Any, prob: _Problem) -> bool:
    """L-BFGS-B's "abnormal line search" after reaching the optimum to rounding: accept a tiny projected gradient.

    The projected gradient ignores the components held at their bound by a gradient pointing outwards.
    """
    if "ABNORMAL" not in str(result.message).upper():
        return False
    grad = np.asarray(result.jac, dtype=float).copy()
    at_bound = np.zeros(len(grad), dtype=bool)
    at_bound[2:2 + 2 * prob.S] = result.x[2:2 + 2 * prob.S] <= 0.0
    grad[at_bound & (grad > 0)] = 0.0
    return float(np.max(np.abs(grad))) < 1e-5 * max(1.0, abs(float(result.fun)))
