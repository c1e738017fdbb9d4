"""Rolling-origin selection, refit and the kept Prophet fit (forecasting/select.py)."""


import numpy as np
import pandas as pd
import pytest

from forecasting.methods import Candidate, default_candidates, load_methods
from forecasting.select import forecast, origin_cuts, select_model
from tests.forecasting.synthetic import assert_nested, monthly, trending_seasonal


def test_origin_cuts_expanding_one_month_apart_and_shrink_for_short_series():
    assert origin_cuts(48, 12, 3) == ([34, 35, 36], 12)
    assert origin_cuts(13, 6, 6) == ([3, 4, 5, 6, 7], 6)  # only origins with at least 3 training months
    assert origin_cuts(5, 6, 3) == ([3], 2)  # too short for 6 steps: scored on 2
    assert origin_cuts(3, 6, 3) == ([], 0)


def test_selection_picks_seasonal_naive_on_a_purely_repeating_series():
    pattern = np.random.default_rng(3).uniform(100, 1000, 12)
    sel = select_model(monthly(np.tile(pattern, 4)), horizon=6, origins=3)
    assert sel.model == "seasonal_naive"
    assert sel.scores["seasonal_naive"] == 0.0
    assert set(sel.scores) == {c.name for c in default_candidates()}
    assert sel.scaled_errors["seasonal_naive"].shape == (3, 6)


def test_selection_beats_seasonal_naive_on_a_trending_seasonal_series():
    sel = select_model(trending_seasonal(), horizon=6, origins=4)
    assert sel.model != "seasonal_naive"
    assert sel.scores[sel.model] < 0.8 * sel.scores["seasonal_naive"]  # naive misses a year of growth
    singles = {c.name for c in default_candidates()}
    assert sel.scores[sel.best] == min(v for k, v in sel.scores.items() if k in singles)
    reg = load_methods()
    if sel.model != sel.best:  # the registry's combination of the best few (named in registry order)
        members = sel.params["members"]
        assert sel.model.startswith(f"{reg.combine}(") and sel.best in members and len(members) <= reg.combine_max
        ranked = sorted((v, k) for k, v in sel.scores.items() if k in singles)
        worst_in = max(sel.scores[m] for m in members)
        assert all(sel.scores[k] >= worst_in for _, k in ranked if k not in members)  # no better one left out
    record = sel.as_record()
    assert record["model"] == sel.model and len(record["origins"]) == 4


def test_plain_minimum_with_combine_max_one():
    hist = trending_seasonal(36)
    cands = [c for c in default_candidates() if c.kind != "prophet"]  # no Prophet: fast
    sel = select_model(hist, horizon=3, origins=3, candidates=cands, combine_max=1, combine_within=1.0)
    assert sel.model == sel.best == min(sel.scores, key=sel.scores.get)


def test_selection_uses_only_the_history_given():
    """Each backtest origin fits on the months before it only: a change in the last month moves only the errors
    of the origin scored on it. (Origins before the 30 months given could not fail to be: that proved nothing.)"""
    hist = trending_seasonal().iloc[:30].reset_index(drop=True)
    cands = [Candidate("theta", "theta")]
    sel = select_model(hist, horizon=3, origins=2, candidates=cands)
    assert sel.model in {"theta", "seasonal_naive"}
    assert origin_cuts(30, 3, 2) == ([26, 27], 3)  # origin 1 is scored on months 27-29, origin 2 on 28-30
    changed = hist.copy()
    changed.loc[29, "y"] *= 3
    again = select_model(changed, horizon=3, origins=2, candidates=cands)
    for name, errors in sel.scaled_errors.items():
        np.testing.assert_array_equal(again.scaled_errors[name][0], errors[0])  # never saw month 30
        assert not np.array_equal(again.scaled_errors[name][1], errors[1])  # scored on it


def test_quarter_end_months_are_a_parameter():
    cands = default_candidates(quarter_end_months=(3, 6, 9, 12))
    qe = [c for c in cands if c.params.get("quarter_end")]
    assert qe and all(c.params["quarter_end_months"] == (3, 6, 9, 12) for c in qe)
    assert len([c for c in cands if c.kind == "prophet"]) <= 6


@pytest.mark.parametrize("n", [1, 2, 5, 13])
def test_short_series_never_crash(n):
    y = np.random.default_rng(n).uniform(0, 100, n)
    fc, sel = forecast(monthly(y), horizon=6, origins=4)
    assert len(fc) == 6
    assert_nested(fc)
    assert sel.model


def test_the_chosen_prophet_fit_is_kept_as_prophet_json_and_reloads_to_the_same_forecast():
    from prophet.serialize import model_from_json

    from forecasting.methods import Candidate
    from forecasting.select import forecast
    from forecasting.series import future_months

    hist = trending_seasonal(36, seed=11)
    only = [Candidate("p", "prophet", {"seasonality_mode": "additive", "changepoint_prior_scale": 0.1,
                                       "quarter_end": False})]
    fc, sel = forecast(hist, horizon=4, origins=2, candidates=only)
    if sel.model != "p":
        pytest.skip(f"seasonal naive won this backtest ({sel.scores}); nothing to serialise")
    assert len(sel.prophet_models) == 1
    kept = sel.prophet_models[0]
    assert kept["seasonality_mode"] == "additive" and '"__prophet_version"' in kept["model_json"]
    model = model_from_json(kept["model_json"])
    again = model.predict(pd.DataFrame({"ds": future_months(hist, 4)}))["yhat"].clip(lower=0).to_numpy()
    np.testing.assert_allclose(again, fc["yhat"].to_numpy(), rtol=1e-9)


def test_a_method_without_prophet_keeps_no_model():
    from forecasting.methods import Candidate
    from forecasting.select import forecast

    _fc, sel = forecast(trending_seasonal(30, seed=2), horizon=3, origins=2,
                       candidates=[Candidate("seasonal_naive", "seasonal_naive"), Candidate("theta", "theta")])
    assert sel.prophet_models == []


def test_a_chosen_median_whose_best_member_fails_on_the_full_history_falls_back_to_the_median_of_the_rest(
        monkeypatch, caplog):
    """The first fallback drops the member that failed, not the worst-scoring one (AutoCES finding no model on a
    full history, in the XS sample night, used to take the night to a single non-member method)."""
    import forecasting.methods as methods

    hist = trending_seasonal(40, seed=0)
    hist["y"] *= 1 + np.random.default_rng(0).normal(0, 0.15, 40)  # noisy: several methods close to the best
    n_full = len(hist)

    def fails_on_full_history(history, horizon):  # the "theta" forecast on backtest windows, none on all of it
        if len(history) == n_full:
            raise RuntimeError("no model able to be fitted")
        return methods.theta_values(history["y"].to_numpy(dtype=float), horizon)

    monkeypatch.setitem(methods.METHOD_KINDS, "flaky", fails_on_full_history)
    cands = [Candidate("seasonal_naive", "seasonal_naive"), Candidate("flaky_theta", "flaky"),
             Candidate("theta", "theta"), Candidate("auto_ets", "statsforecast", {"model": "AutoETS"}),
             Candidate("dotm", "statsforecast", {"model": "DynamicOptimizedTheta"})]
    sel = select_model(hist, 6, 4, cands)  # the registry's rule, as forecast applies it
    members = [m.name for m in sel.candidate.members]
    worst = max(members, key=lambda name: sel.scores[name])
    assert "flaky_theta" in members and worst != "flaky_theta"  # dropping the worst first would keep it
    fc, final = forecast(hist, 6, 4, cands)
    rest = [name for name in members if name != "flaky_theta"]
    assert final.model == "median(" + ",".join(rest) + ")"
    assert len(fc) == 6 and np.isfinite(fc["yhat"]).all()


def test_a_near_tie_in_backtest_scores_goes_to_the_registry_order_a_real_gap_to_the_better(monkeypatch):
    """Scores closer than SCORE_DIGITS significant digits rank in registry order, whichever is smaller: on
    another CPU the last digits of a fit move (BLAS kernels) and must not change the method chosen."""
    from forecasting import methods
    from forecasting.select import comparable_score

    hist = trending_seasonal(36)

    def scaled(factor):
        def method(history, horizon, **_):
            return np.full(horizon, float(history["y"].iloc[-6:].mean()) * factor)
        return method

    for wiggle in (1e-9, -1e-9):
        monkeypatch.setitem(methods.METHOD_KINDS, "first_kind", scaled(1.0))
        monkeypatch.setitem(methods.METHOD_KINDS, "second_kind", scaled(1.0 + wiggle))
        cands = [Candidate("first", "first_kind"), Candidate("second", "second_kind")]
        sel = select_model(hist, horizon=3, origins=3, candidates=cands, combine_max=1, combine_within=0.0)
        assert sel.scores["first"] != sel.scores["second"]  # the wiggle moved the score's last digits
        assert comparable_score(sel.scores["first"]) == comparable_score(sel.scores["second"])
        assert sel.best == sel.model == "first"
    monkeypatch.setitem(methods.METHOD_KINDS, "second_kind", scaled(0.97))  # a real difference decides
    sel = select_model(hist, horizon=3, origins=3, candidates=cands, combine_max=1, combine_within=0.0)
    better = min(("first", "second"), key=sel.scores.get)
    assert sel.best == better and sel.scores["first"] != pytest.approx(sel.scores["second"], rel=1e-3)


def test_comparable_score_keeps_infinity_and_zero():
    from forecasting.select import SCORE_DIGITS, comparable_score

    assert comparable_score(float("inf")) == float("inf") and comparable_score(0.0) == 0.0
    assert comparable_score(1.2562341) == comparable_score(1.2562339) == pytest.approx(1.2562, abs=10 ** -SCORE_DIGITS)
