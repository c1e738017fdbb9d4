"""Reconciliation: rep forecasts add up to team, region and company, whatever the method."""

import itertools

import numpy as np
import pandas as pd
import pytest

from forecasting.reconcile import METHODS, NIGHTLY_METHOD, build_hierarchy, is_coherent, projection, reconcile

MAPPING = pd.DataFrame(
    {
        "rep": ["ann", "bo", "cy", "di", "ed", "fay"],
        "team": ["smb-1", "smb-1", "smb-2", "ent-1", "ent-1", "ent-1"],
        "region": ["emea", "emea", "emea", "amer", "amer", "amer"],
    }
)
MONTHS = pd.date_range("2026-11-01", periods=4, freq="MS")


def base_forecasts(seed=0, coherent=False):
    """Incoherent base forecasts for every node (or exact sums when coherent=True)."""
    h = build_hierarchy(MAPPING)
    rng = np.random.default_rng(seed)
    reps = rng.uniform(5, 50, size=(len(MONTHS), len(h.bottom)))
    values = reps @ h.summing.T
    if not coherent:
        values = values * rng.uniform(0.8, 1.25, size=values.shape)
    rows = [
        (level, node, ds, values[t, i])
        for i, (level, node) in enumerate(h.nodes)
        for t, ds in enumerate(MONTHS)
    ]
    return pd.DataFrame(rows, columns=["level", "node", "ds", "yhat"])


def residuals(seed=1, periods=24):
    h = build_hierarchy(MAPPING)
    rng = np.random.default_rng(seed)
    common = rng.normal(size=periods)
    rows = [
        (level, node, ds, common[t] * 2 + rng.normal())
        for level, node in h.nodes
        for t, ds in enumerate(pd.date_range("2024-01-01", periods=periods, freq="MS"))
    ]
    return pd.DataFrame(rows, columns=["level", "node", "ds", "residual"])


def test_summing_matrix_follows_the_tree():
    h = build_hierarchy(MAPPING)
    assert h.nodes[0] == ("company", "company")
    assert h.bottom == sorted(MAPPING["rep"])
    assert h.summing.shape == (1 + 2 + 3 + 6, 6)
    assert h.summing[0].tolist() == [1.0] * 6
    row = h.nodes.index(("team", "ent-1"))
    assert [h.bottom[j] for j in np.flatnonzero(h.summing[row])] == ["di", "ed", "fay"]


@pytest.mark.parametrize("method", METHODS)
def test_reconciled_children_sum_to_parents(method):
    base = base_forecasts()
    assert not is_coherent(base, MAPPING)
    rec = reconcile(base, MAPPING, method=method, residuals=residuals())
    assert is_coherent(rec, MAPPING, rtol=1e-12)
    assert rec.columns.tolist() == base.columns.tolist()
    assert len(rec) == len(base)
    wide = rec.pivot_table(index="ds", columns=["level", "node"], values="yhat")
    reps = wide["rep"]
    company = wide[("company", "company")]
    np.testing.assert_allclose(reps.sum(axis=1), company, rtol=1e-12)
    teams = reps.T.groupby(MAPPING.set_index("rep")["team"]).sum().T
    np.testing.assert_allclose(teams.to_numpy(), wide["team"][teams.columns].to_numpy(), rtol=1e-12)


@pytest.mark.parametrize("method", METHODS)
def test_already_coherent_forecasts_come_back_unchanged(method):
    base = base_forecasts(coherent=True)
    assert is_coherent(base, MAPPING)
    rec = reconcile(base, MAPPING, method=method, residuals=residuals())
    np.testing.assert_allclose(rec["yhat"], base["yhat"], rtol=1e-10)


def test_projection_reproduces_any_coherent_vector():
    h = build_hierarchy(MAPPING)
    resid = np.random.default_rng(3).normal(size=(30, len(h.nodes)))
    for method in METHODS:
        p = projection(h, method, resid)
        np.testing.assert_allclose(p @ h.summing, np.eye(len(h.bottom)), atol=1e-10)  # S P S = S


def test_bottom_up_is_the_sum_of_rep_forecasts():
    base = base_forecasts()
    rec = reconcile(base, MAPPING, method="bottom_up")
    key = ["level", "node", "ds"]
    merged = rec.merge(base, on=key, suffixes=("", "_base"))
    reps = merged[merged["level"] == "rep"]
    np.testing.assert_array_equal(reps["yhat"], reps["yhat_base"])


def test_the_default_method_needs_no_residuals_and_pulls_reps_toward_aggregates():
    assert NIGHTLY_METHOD == "mint_shrink"  # with residuals; reconcile's default needs none (wls_struct)
    base = base_forecasts(coherent=True)
    # the company forecast says 20% more than its reps add up to: the reps move up, the company moves down
    bump = base["level"] == "company"
    base.loc[bump, "yhat"] = base.loc[bump, "yhat"] * 1.2
    rec = reconcile(base, MAPPING)
    merged = rec.merge(base, on=["level", "node", "ds"], suffixes=("", "_base"))
    company = merged[merged["level"] == "company"]
    assert (company["yhat"] < company["yhat_base"]).all()
    assert (company["yhat"] > company["yhat_base"] / 1.2).all()
    reps = merged[merged["level"] == "rep"]
    assert (reps["yhat"] > reps["yhat_base"]).all()


def test_negative_reconciled_reps_are_floored_at_zero_and_resummed():
    base = base_forecasts()
    tiny = (base["level"] == "rep") & (base["node"] == "cy")
    base.loc[tiny, "yhat"] = 0.0
    base.loc[base["level"] == "company", "yhat"] = 1.0  # a company forecast far below the reps
    rec = reconcile(base, MAPPING, method="ols")
    assert (rec["yhat"] >= 0).all()
    assert is_coherent(rec, MAPPING, rtol=1e-12)


def test_intervals_move_with_the_point_and_stay_nested():
    base = base_forecasts()
    base["yhat_lower_95"] = base["yhat"] * 0.5
    base["yhat_lower_80"] = base["yhat"] * 0.7
    base["yhat_upper_80"] = base["yhat"] * 1.3
    base["yhat_upper_95"] = base["yhat"] * 1.5
    rec = reconcile(base, MAPPING)
    order = ["yhat_lower_95", "yhat_lower_80", "yhat", "yhat_upper_80", "yhat_upper_95"]
    for lo, hi in itertools.pairwise(order):
        assert (rec[lo] <= rec[hi] + 1e-9).all()
    assert (rec["yhat_lower_95"] >= 0).all()
    width = (rec["yhat_upper_80"] - rec["yhat_lower_80"]).to_numpy()
    base_width = (base["yhat_upper_80"] - base["yhat_lower_80"]).to_numpy()
    unclipped = rec["yhat_lower_80"].to_numpy() > 0
    np.testing.assert_allclose(width[unclipped], base_width[unclipped])


def test_bad_inputs_are_clear_errors():
    with pytest.raises(ValueError, match="more than one region"):
        build_hierarchy(pd.DataFrame({"rep": ["a", "b"], "team": ["t", "t"], "region": ["r1", "r2"]}))
    with pytest.raises(ValueError, match="more than once"):
        build_hierarchy(pd.DataFrame({"rep": ["a", "a"], "team": ["t", "t"], "region": ["r", "r"]}))
    base = base_forecasts()
    with pytest.raises(ValueError, match="missing for 1 node"):
        reconcile(base[base["node"] != "fay"], MAPPING)
    with pytest.raises(ValueError, match="mint_shrink needs residuals"):
        reconcile(base, MAPPING, method="mint_shrink")
    with pytest.raises(ValueError, match="unknown reconciliation method"):
        reconcile(base, MAPPING, method="top_down")


def test_mint_shrinkage_matches_a_hand_computation():
    """Schäfer-Strimmer by hand: x1 = (1, -1, 1, -1), x2 = (2, -2, 0, 0), t = 4.

    cov = [[1, 1], [1, 2]], corr12 = 1/sqrt(2); standardised products w = (sqrt2, sqrt2, 0, 0), so
    sum (w - mean w)^2 = 4 - 8/4 = 2 and Var(r12) = 2 / (4 * 3) = 1/6; lambda = (2 * 1/6) / (2 * 1/2) = 1/3;
    the off-diagonal shrinks to (1 - 1/3) * 1 = 2/3, the diagonal is kept.
    """
    from forecasting.reconcile import _shrunk_covariance

    x = np.array([[1.0, 2.0], [-1.0, -2.0], [1.0, 0.0], [-1.0, 0.0]])
    np.testing.assert_allclose(_shrunk_covariance(x), [[1.0, 2 / 3], [2 / 3, 2.0]])
    # a node whose residuals are all 0 keeps W invertible (floored variance)
    w = _shrunk_covariance(np.c_[x, np.zeros(4)])
    assert np.linalg.matrix_rank(w) == 3


def test_mint_with_uncorrelated_unit_residuals_is_ols_by_hand():
    """Company over two reps, residual columns orthogonal with variance 1: lambda = 1, W = I, so MinT = OLS.

    Base company 10, reps 4 and 4: b = (S'S)^-1 S'y = [[2, 1], [1, 2]]^-1 (14, 14) = (14/3, 14/3), company 28/3.
    """
    mapping = pd.DataFrame({"rep": ["a", "b"]})
    hadamard = np.array([[1.0, 1, 1], [-1, 1, -1], [1, -1, -1], [-1, -1, 1]])  # company, a, b
    ds = pd.Timestamp("2026-11-01")
    base = pd.DataFrame({"level": ["company", "rep", "rep"], "node": ["company", "a", "b"], "ds": [ds] * 3,
                         "yhat": [10.0, 4.0, 4.0]})
    resid = pd.DataFrame([("company", "company", t, hadamard[t, 0]) for t in range(4)]
                         + [("rep", "a", t, hadamard[t, 1]) for t in range(4)]
                         + [("rep", "b", t, hadamard[t, 2]) for t in range(4)],
                         columns=["level", "node", "ds", "residual"])
    rec = reconcile(base, mapping, method="mint_shrink", residuals=resid, levels=())
    np.testing.assert_allclose(rec["yhat"], [28 / 3, 14 / 3, 14 / 3])
