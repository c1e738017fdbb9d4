"""Forecasting candidates, MASE selection and calibrated intervals on small synthetic series with known shape."""

import itertools
import os
import tempfile

import numpy as np
import pandas as pd
import pytest

from forecasting.models import (
    Candidate,
    add_intervals,
    coverage,
    default_candidates,
    forecast,
    forecast_many,
    interval_multipliers,
    load_methods,
    mase,
    mase_scale,
    origin_cuts,
    prophet_values,
    seasonal_naive,
    select_model,
    theta,
    validate_history,
    wape,
)

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


# ------------------------------------------------------------------------------------------------ seasonal naive


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


# ---------------------------------------------------------------------------------------------------- metrics


def test_mase_scale_uses_lag_12_then_lag_1_then_level():
    assert mase_scale(list(range(1, 14))) == 12.0  # 13 points: lag-12 differences are all 12
    assert mase_scale([1, 2, 3, 4]) == 1.0  # under 13 points: lag 1
    repeating = [5, 1, 3, 7, 2, 8, 4, 6, 9, 0, 3, 5] * 2
    assert mase_scale(repeating) == pytest.approx(np.mean(np.abs(np.diff(repeating))))  # lag-12 change is 0
    assert mase_scale([4, 4, 4]) == 4.0
    assert mase_scale([0, 0]) == 1.0


def test_mase_wape_coverage_on_hand_checked_numbers():
    assert mase([5, 6], [4, 8], train=[1, 2, 3, 4]) == pytest.approx(1.5)
    assert mase([20], [14], train=list(range(1, 14))) == pytest.approx(0.5)
    assert wape([10, 0, 30], [12, 1, 27]) == pytest.approx(6 / 40)
    assert np.isnan(wape([0, 0], [1, 1]))
    assert coverage([1, 2, 3, 4], [0, 2, 3.5, 0], [1, 3, 4, 3]) == 0.5  # bounds count as inside


def test_origin_cuts_expanding_one_month_apart_and_shrink_for_short_series():
    assert origin_cuts(48, 12, 3) == ([34, 35, 36], 12)
    assert origin_cuts(13, 6, 6) == ([3, 4, 5, 6, 7], 6)  # only origins with at least 3 training months
    assert origin_cuts(5, 6, 3) == ([3], 2)  # too short for 6 steps: scored on 2
    assert origin_cuts(3, 6, 3) == ([], 0)


# -------------------------------------------------------------------------------------------------- selection


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


# -------------------------------------------------------------------------------------------------- intervals


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
    fc = Candidate("theta", "theta").fit_predict_intervals(trending_seasonal(30), horizon=4, origins=3)
    assert fc.columns.tolist() == ["ds", "yhat", "yhat_lower_95", "yhat_lower_80", "yhat_upper_80", "yhat_upper_95"]
    assert_nested(fc)


def test_add_intervals_clips_lower_bounds_at_zero():
    fc = pd.DataFrame({"ds": pd.date_range("2026-01-01", periods=2, freq="MS"), "yhat": [1.0, 50.0]})
    out = add_intervals(fc, np.array([[3.0, -3.0], [-3.0, 3.0]]), scale=10.0)
    assert_nested(out)
    assert out["yhat_lower_80"].iloc[0] == 0.0


# ------------------------------------------------------------------------------------------- short histories


@pytest.mark.parametrize("n", [1, 2, 5, 13])
def test_short_series_never_crash(n):
    y = np.random.default_rng(n).uniform(0, 100, n)
    fc, sel = forecast(monthly(y), horizon=6, origins=4)
    assert len(fc) == 6
    assert_nested(fc)
    assert sel.model


def test_empty_history_and_gaps_are_clear_errors():
    with pytest.raises(ValueError, match="empty"):
        seasonal_naive(monthly([]), 3)
    gappy = monthly(range(6)).drop(index=2)
    with pytest.raises(ValueError, match="2022-04-01 is missing"):
        validate_history(gappy)
    with pytest.raises(ValueError, match="duplicate"):
        validate_history(pd.concat([monthly([1, 2]), monthly([3])]))


def test_history_dates_are_normalised_to_month_start():
    h = pd.DataFrame({"ds": ["2024-01-15", "2024-02-28", "2024-03-01"], "y": [1, 2, 3]})
    assert validate_history(h)["ds"].dt.day.tolist() == [1, 1, 1]


def test_prophet_fits_leave_no_stan_files_behind():
    import cmdstanpy

    before = set(os.listdir(cmdstanpy._TMPDIR))  # other code (bookings.prophet_forecast) may leave its own
    prophet_values(trending_seasonal(30), 3)
    prophet_values(monthly([5.0, 0.0, 0.0, 7.0, 0.0, 0.0, 9.0]), 3, changepoint_prior_scale=0.5)  # may fail/retry
    assert set(os.listdir(cmdstanpy._TMPDIR)) - before == set()


# ---------------------------------------------------------------------------------------------- many series


def test_forecast_many_same_results_with_one_and_two_processes():
    series = {
        "rep_a": trending_seasonal(20, seed=1),
        "rep_b": monthly(np.random.default_rng(2).uniform(0, 50, 8)),
        "team_x": trending_seasonal(26, seed=3),
    }
    def temp_roots():
        return {p for p in os.listdir(tempfile.gettempdir()) if p.startswith("salesos-forecast-")}

    before = temp_roots()
    one = forecast_many(series, horizon=3, origins=2, processes=1)
    two = forecast_many(series, horizon=3, origins=2, processes=2)
    assert temp_roots() == before  # the workers' cmdstan folders are gone
    assert list(one) == list(two) == ["rep_a", "rep_b", "team_x"]
    for key in series:
        pd.testing.assert_frame_equal(one[key].forecast, two[key].forecast)
        assert one[key].selection.model == two[key].selection.model
        assert one[key].selection.scores == two[key].selection.scores


def test_forecast_many_finishes_in_process_when_the_pool_breaks(monkeypatch):
    from concurrent.futures.process import BrokenProcessPool

    import forecasting.models as fm

    class Broken:
        def __init__(self, *args, **kwargs):
            pass

        def __enter__(self):
            raise BrokenProcessPool("a worker was killed")

        def __exit__(self, *exc):
            return False

    rng = np.random.default_rng(0)
    ds = pd.date_range("2023-01-01", periods=24, freq="MS")
    series = {k: pd.DataFrame({"ds": ds, "y": 100 + rng.uniform(0, 10, 24)}) for k in ("a", "b")}
    expected = fm.forecast_many(series, horizon=2, origins=1, processes=1)
    monkeypatch.setattr(fm, "ProcessPoolExecutor", Broken)
    got = fm.forecast_many(series, horizon=2, origins=1, processes=2)
    assert list(got) == ["a", "b"]
    for k in series:
        pd.testing.assert_frame_equal(got[k].forecast, expected[k].forecast)


def test_spawned_workers_do_not_rerun_the_callers_main_script(tmp_path):
    """Under Airflow the main script is bin/airflow, which cannot be re-imported in a worker: workers skip it."""
    import subprocess
    import sys
    from pathlib import Path

    script = tmp_path / "caller.py"
    script.write_text(
        "import logging, sys\n"
        "if __name__ != '__main__':\n"
        "    raise SystemExit('the main script was re-run in a worker')\n"
        "import numpy as np, pandas as pd\n"
        "from forecasting.models import forecast_many\n"
        "broke = []\n"
        "class Catch(logging.Handler):\n"
        "    def emit(self, record):\n"
        "        broke.append(record.getMessage())\n"
        "logging.getLogger('forecasting.models').addHandler(Catch(logging.WARNING))\n"
        "ds = pd.date_range('2023-01-01', periods=12, freq='MS')\n"
        "series = {k: pd.DataFrame({'ds': ds, 'y': 100.0 + np.arange(12) * i}) for i, k in enumerate('ab')}\n"
        "out = forecast_many(series, horizon=2, origins=1, processes=2)\n"
        "assert list(out) == ['a', 'b'], out\n"
        "assert not broke, broke\n"
        "print('ok')\n"
    )
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run([sys.executable, str(script)], cwd=root, capture_output=True, text=True, timeout=300,
                          env={**__import__("os").environ, "PYTHONPATH": str(root)})
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-3000:]


def test_the_chosen_prophet_fit_is_kept_as_prophet_json_and_reloads_to_the_same_forecast():
    from prophet.serialize import model_from_json

    from forecasting.models import Candidate, forecast, future_months

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
    from forecasting.models import Candidate, forecast

    _fc, sel = forecast(trending_seasonal(30, seed=2), horizon=3, origins=2,
                       candidates=[Candidate("seasonal_naive", "seasonal_naive"), Candidate("theta", "theta")])
    assert sel.prophet_models == []


def test_the_primary_prophet_grid_keeps_one_prophet_and_every_other_candidate():
    from forecasting.models import default_candidates, load_methods

    full = {c.name: c.kind for c in default_candidates()}
    primary = {c.name: c.kind for c in default_candidates(prophet_grid="primary")}
    assert [n for n, k in primary.items() if k == "prophet"] == [load_methods().primary_prophet]
    assert sum(k == "prophet" for k in full.values()) >= 1
    assert {n for n, k in full.items() if k != "prophet"} == {n for n, k in primary.items() if k != "prophet"}
    with pytest.raises(ValueError, match="prophet_grid"):
        default_candidates(prophet_grid="huge")


@pytest.mark.parametrize("n", [14, 40])
@pytest.mark.parametrize(("mode", "quarter_end"), [("additive", True), ("multiplicative", True), ("additive", False)])
def test_prophet_with_the_memoised_component_matrix_forecasts_exactly_as_prophet(monkeypatch, n, mode, quarter_end):
    """The component matrix is built once per layout; every forecast equals plain Prophet's, bit for bit."""
    from prophet import Prophet

    import forecasting.models as models

    hist = trending_seasonal(n, seed=3)
    ours = [prophet_values(hist, 6, mode, 0.1, quarter_end) for _ in range(2)]  # the second from the memo
    assert any(key[0] for key in models._COMPONENT_MATRICES)
    monkeypatch.setattr(models, "_PROPHET_CLASS", Prophet)
    plain = prophet_values(hist, 6, mode, 0.1, quarter_end)
    for values in ours:
        np.testing.assert_array_equal(values, plain)


def test_the_memoised_component_matrix_is_prophets_own_and_not_shared_between_models():
    import forecasting.models as models

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
