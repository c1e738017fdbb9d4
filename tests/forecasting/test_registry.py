"""The method registry (config/forecast_methods.yml), the statsforecast candidates and the selection rule."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from forecasting.methods import METHODS_FILE, Candidate, default_candidates, load_methods, statsforecast_values
from forecasting.nightly import fit_fingerprint
from forecasting.select import forecast, select_model


def monthly(values) -> pd.DataFrame:
    return pd.DataFrame({"ds": pd.date_range("2021-01-01", periods=len(values), freq="MS"), "y": values})


def trending(n: int = 48, seed: int = 0) -> pd.DataFrame:
    """Strong trend, mild seasonality: seasonal naive lags a year of growth behind."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    return monthly(200 + 12 * t + 15 * np.sin(2 * np.pi * t / 12) + rng.normal(0, 4, n))


def test_every_registered_method_is_a_candidate_in_registry_order():
    reg = load_methods()
    names = [m["name"] for m in reg.methods]
    assert [c.name for c in default_candidates(prophet_grid="all")] == names
    assert {"auto_ets", "auto_arima", "auto_theta", reg.primary_prophet} <= set(names)
    nightly = [c.name for c in default_candidates()]
    assert "auto_ets" in nightly and "auto_arima" not in nightly  # AutoARIMA's cost keeps it out of the night
    assert reg.primary_prophet in [c.name for c in default_candidates(prophet_grid="primary")]


def test_adding_a_method_is_one_entry(tmp_path):
    text = METHODS_FILE.read_text(encoding="utf-8").replace(
        "methods:\n", "methods:\n  - name: ces\n    kind: statsforecast\n    params: {model: AutoCES}\n", 1)
    path = tmp_path / "methods.yml"
    path.write_text(text, encoding="utf-8")
    cands = default_candidates(registry=load_methods(str(path)))
    ces = next(c for c in cands if c.name == "ces")
    values = ces.predict_values(trending(), 6)
    assert values.shape == (6,) and np.all(values >= 0)


@pytest.mark.parametrize(
    ("entry", "message"),
    [("  - name: x\n    kind: lstm\n", "unknown kind 'lstm'"),
     ("  - name: theta\n    kind: theta\n", "repeated name 'theta'"),
     ("  - name: y\n    kind: theta\n    grids: [nightly]\n", "unknown grids")],
)
def test_a_bad_registry_entry_is_named(tmp_path, entry, message):
    path = tmp_path / "methods.yml"
    path.write_text(METHODS_FILE.read_text(encoding="utf-8").replace("methods:\n", "methods:\n" + entry, 1),
                    encoding="utf-8")
    with pytest.raises(ValueError, match=message):
        load_methods(str(path))


def test_a_registry_without_seasonal_naive_is_refused(tmp_path):
    path = tmp_path / "methods.yml"
    path.write_text("methods:\n  - name: p\n    kind: prophet\n    primary: true\n", encoding="utf-8")
    with pytest.raises(ValueError, match="seasonal_naive must be registered"):
        load_methods(str(path))


@pytest.mark.parametrize("model", ["AutoETS", "AutoARIMA", "AutoTheta"])
def test_statsforecast_models_track_a_trend_that_seasonal_naive_misses(model):
    hist = trending()
    actual = trending(54)["y"].to_numpy()[48:]
    fc = statsforecast_values(hist, 6, model=model)
    snaive = hist["y"].to_numpy()[-12:-6]
    assert np.mean(np.abs(fc - actual)) < 0.5 * np.mean(np.abs(snaive - actual))


def test_statsforecast_short_and_flat_histories_fall_back_to_the_naive_mean():
    assert statsforecast_values(monthly([5.0, 7.0]), 3).tolist() == [7.0, 7.0, 7.0]
    assert statsforecast_values(monthly([4.0] * 20), 2).tolist() == [4.0, 4.0]
    with pytest.raises(ValueError, match="no model"):
        statsforecast_values(trending(), 3, model="NoSuchModel")


def test_selection_never_mixes_in_a_method_the_backtest_shows_poor():
    """On a trending series seasonal naive scores far worse than the trend methods: it is not in the choice
    (the old fixed default mix, mean_theta_snaive_prophet, always contained it)."""
    cands = [Candidate("seasonal_naive", "seasonal_naive"), Candidate("theta", "theta"),
             Candidate("auto_ets", "statsforecast", {"model": "AutoETS"}),
             Candidate("auto_theta", "statsforecast", {"model": "AutoTheta"})]
    sel = select_model(trending(), horizon=6, origins=4, candidates=cands)
    assert sel.scores["seasonal_naive"] > 2 * sel.scores[sel.best]
    members = sel.params.get("members", [sel.model])
    assert "seasonal_naive" not in members
    names = [c.name for c in cands]
    assert members == sorted(members, key=names.index)  # registry order: one name per set of members
    assert all(sel.scores[m] <= 1.2 * sel.scores[sel.best] for m in members)
    if len(members) > 1:  # the mean is scored and calibrated on its members' averaged errors
        assert sel.model == f"mean({','.join(members)})"
        assert np.allclose(sel.scaled_errors[sel.model], np.mean([sel.scaled_errors[m] for m in members], axis=0))


def _line_plus(history: pd.DataFrame, horizon: int, offset: float = 0.0) -> np.ndarray:
    """The straight line through the history, shifted by `offset`: errs by exactly -offset."""
    y = history["y"].to_numpy(dtype=float)
    slope, level = np.polyfit(np.arange(len(y)), y, 1)
    return level + slope * np.arange(len(y), len(y) + horizon) + offset


def _lines(monkeypatch) -> list[Candidate]:
    from forecasting import methods as models

    monkeypatch.setitem(models.METHOD_KINDS, "line", _line_plus)
    return [Candidate("seasonal_naive", "seasonal_naive"), Candidate("high", "line", {"offset": 5.0}),
            Candidate("low", "line", {"offset": -5.0}), Candidate("higher", "line", {"offset": 9.0})]


def test_the_chosen_median_is_refitted_as_the_median_of_its_members(monkeypatch):
    """On y = 100 + 2t the lines err by exactly 5, 5 and 9 (MASE 5/24, 5/24, 9/24: the lag-12 change is 24);
    seasonal naive lags a year of growth (MASE 1.0), over twice the best, so it is left out. The median of
    high, low and higher is high, month by month."""
    cands = _lines(monkeypatch)
    hist = monthly(100 + 2.0 * np.arange(40))
    fc, sel = forecast(hist, 6, 3, cands)
    reg = load_methods()
    assert (reg.combine, reg.combine_max, reg.combine_within) == ("median", 5, 1.0)
    assert sel.model == "median(high,low,higher)"
    assert sel.scores["seasonal_naive"] == pytest.approx(1.0) and sel.scores["high"] == pytest.approx(5 / 24)
    assert sel.scores[sel.model] == pytest.approx(5 / 24)  # its backtest errors: the median of the members'
    members = {c.name: c for c in cands}
    expected = np.median([members[m].predict_values(hist, 6) for m in sel.params["members"]], axis=0)
    assert np.allclose(fc["yhat"], expected) and np.allclose(fc["yhat"], members["high"].predict_values(hist, 6))
    assert (fc["yhat_lower_80"] <= fc["yhat"]).all() and (fc["yhat"] <= fc["yhat_upper_80"]).all()


def test_a_backtest_chosen_k_takes_the_members_whose_combination_scores_best(monkeypatch):
    """choose_k with the mean: high and low cancel exactly (mean MASE 0), so k = 2; adding higher is worse."""
    cands = _lines(monkeypatch)
    hist = monthly(100 + 2.0 * np.arange(40))
    sel = select_model(hist, 6, 3, cands, combine="mean", choose_k=True)
    assert sel.model == "mean(high,low)"
    assert sel.scores["mean(high,low)"] == pytest.approx(0, abs=1e-9)


def test_the_nightly_cache_key_changes_with_the_registry(monkeypatch, tmp_path):
    import forecasting.nightly as nightly

    hist = trending(30)
    before = fit_fingerprint("company", hist, 12, 6, "full")
    edited = tmp_path / "forecast_methods.yml"
    edited.write_text(METHODS_FILE.read_text(encoding="utf-8").replace("combine_max: 5", "combine_max: 2"),
                      encoding="utf-8")
    monkeypatch.setattr(nightly, "METHODS_FILE", Path(edited))
    assert fit_fingerprint("company", hist, 12, 6, "full") != before


def test_cli_refuses_negative_values_in_one_line(tmp_path, capsys):
    from forecasting.backtest import main

    rows = "".join(f"{d.date()},{-5 if i == 7 else 10 + i}\n"
                   for i, d in enumerate(pd.date_range("2022-01-01", periods=30, freq="MS")))
    src = tmp_path / "neg.csv"
    src.write_text("ds,y\n" + rows, encoding="utf-8")
    assert main([str(src), "--output", str(tmp_path / "r.csv")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith("line 9: y '-5' is negative (monthly bookings are not)") and "\n" not in err


def test_a_mean_is_calibrated_on_its_members_widths_not_on_its_averaged_errors():
    """Members whose errors cancel would give the mean a near-zero interval; it gets their average width."""
    from forecasting.intervals import add_intervals, interval_multipliers

    rng = np.random.default_rng(5)
    e = rng.normal(0, 1, (6, 4))
    fc = pd.DataFrame({"yhat": np.full(4, 100.0)})
    out = add_intervals(fc, [e, -e], scale=2.0)
    expected = np.mean([interval_multipliers(e, 4)[0.80], interval_multipliers(-e, 4)[0.80]], axis=0) * 2.0
    assert np.allclose(out["yhat_upper_80"] - 100.0, expected) and expected.min() > 0
    assert np.allclose(add_intervals(fc, np.mean([e, -e], axis=0), 2.0)["yhat_upper_80"], 100.0)


def test_the_nightly_default_set_is_one_prophet_with_autoets_and_autotheta():
    """The default settings keep the nightly fits below the old 4-Prophet grid's while adding AutoETS."""
    from salesos.settings import Settings, load_settings

    grid = load_settings().forecast_prophet_grid
    assert grid == Settings().forecast_prophet_grid == "primary"
    kinds = [c.kind for c in default_candidates(prophet_grid=grid)]
    assert kinds.count("prophet") == 1 and kinds.count("statsforecast") == 4  # AutoARIMA: backtest only
    assert {c.name for c in default_candidates(prophet_grid=grid)} >= {"auto_ets", "auto_theta", "auto_ces", "dotm",
                                                                        "seasonal_naive"}


def test_intervals_are_split_conformal_at_each_step():
    """Each step's width is its own conformal rank of the backtest |errors| (no pooling across steps, no
    global widening): the old pooled quantile x 1.15 gave step 1 here a width far above its errors."""
    from forecasting.intervals import interval_multipliers

    e = np.array([[0.1, 4.0, -1.0]] * 3 + [[-0.2, -5.0, 1.0]] * 3)  # 6 origins: 80% rank 6 = the largest
    w = interval_multipliers(e, horizon=4)
    assert np.allclose(w[0.80][:3], [0.2, 5.0, 5.0])  # step 3 kept at step 2's: never narrower further out
    assert np.isclose(w[0.80][3], 5.0 * np.sqrt(4 / 3))
    # 6 cannot rank 95%: the 80% width times Student's t quantile ratio with 5 df (2.5706 / 1.4759)
    assert np.allclose(w[0.95], w[0.80] * 2.570581835636314 / 1.4758840488244813)
    many = np.abs(np.random.default_rng(2).normal(0, 1, (39, 2)))
    w = interval_multipliers(many, horizon=2)  # 39 origins: 95% is rank 38, 80% rank 32, per step
    assert np.allclose(w[0.95], np.maximum.accumulate(np.sort(many, axis=0)[37]))
    assert np.allclose(w[0.80], np.maximum.accumulate(np.sort(many, axis=0)[31]))


def test_shrunk_weights_run_from_inverse_mase_to_equal_weights():
    from forecasting.methods import shrunk_weights

    assert shrunk_weights([1.0, 2.0], 0.0) == pytest.approx([2 / 3, 1 / 3])  # inverse MASE
    assert shrunk_weights([1.0, 2.0], 1.0) == pytest.approx([0.5, 0.5])  # equal
    assert shrunk_weights([1.0, 2.0], 0.5) == pytest.approx([7 / 12, 5 / 12])
    assert sum(shrunk_weights([0.3, 0.7, 1.1], 0.5)) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="positive finite"):
        shrunk_weights([0.0, 1.0], 0.5)


def test_the_weighted_mean_is_scored_refitted_and_calibrated_with_its_shrunk_weights(monkeypatch):
    """On y = 100 + 2t the lines err by exactly +5, -5 and +9 (MASE 5/24, 5/24, 9/24); seasonal naive (MASE 1)
    is over twice the best and left out. Weights: inverse MASE (9/23, 9/23, 5/23) half-way to 1/3 each."""
    from forecasting.intervals import interval_errors
    from forecasting.select import refit_order

    cands = _lines(monkeypatch)
    hist = monthly(100 + 2.0 * np.arange(40))
    sel = select_model(hist, 6, 3, cands, combine="weighted", combine_max=10, combine_within=1.0, shrink=0.5)
    assert sel.model == "weighted(high,low,higher)" and "seasonal_naive" not in sel.params["members"]
    w = np.array([9, 9, 5]) / 23 * 0.5 + 0.5 / 3
    assert sel.params["weights"] == pytest.approx(w, abs=1e-6)
    offsets = np.array([5.0, -5.0, 9.0])
    # its own backtest errors, weighted alike (the stored weights are rounded to 6 decimals)
    assert sel.scores[sel.model] == pytest.approx(abs(w @ offsets) / 24, rel=1e-5)
    members = {c.name: c for c in cands}
    expected = sum(wi * members[m].predict_values(hist, 6) for wi, m in zip(w, sel.params["members"], strict=True))
    assert np.allclose(sel.candidate.predict_values(hist, 6), expected)
    assert np.allclose(interval_errors(sel.candidate, sel.scaled_errors), sel.scaled_errors[sel.model])
    # if a member fails on the full history the rest keep their weights, renormalised
    order = list(refit_order(sel, cands))
    assert order[1].name == "weighted(high,low)" and order[1].params["weights"] == pytest.approx([0.5, 0.5])


def test_a_combination_refuses_bad_weights():
    from forecasting.methods import combination

    a, b = Candidate("a", "theta"), Candidate("b", "seasonal_naive")
    with pytest.raises(ValueError, match="non-negative"):
        combination([a, b], "weighted", [1.0])
    with pytest.raises(ValueError, match="non-negative"):
        combination([a, b], "weighted", [-1.0, 2.0])
    assert combination([a, b], "weighted").params["weights"] == [0.5, 0.5]


def test_a_kept_form_is_refitted_with_the_methods_own_settings(monkeypatch):
    """ets_damped (AutoETS with damped=True): later origins of a backtest fit the kept form, damped included,
    instead of failing on a repeated keyword and choosing afresh."""
    from statsforecast import models as sf_models

    from forecasting.methods import kept_forms

    made: list[dict] = []
    real = sf_models.AutoETS

    class Recording(real):
        def __init__(self, **kwargs):
            made.append(kwargs)
            super().__init__(**kwargs)

    monkeypatch.setattr(sf_models, "AutoETS", Recording)
    hist = trending(40)
    with kept_forms():
        statsforecast_values(hist.iloc[:36], 3, model="AutoETS", damped=True)
        statsforecast_values(hist, 3, model="AutoETS", damped=True)
    assert len(made) == 2 and made[0] == {"season_length": 12, "damped": True}
    assert made[1]["damped"] is True and len(made[1]["model"]) == 3  # the form chosen at the first origin
