"""The in-quarter projection library: no leakage, levels that add up, the input rules, the intervals."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest

from forecasting import projection as pj

AS_OF = date(2026, 10, 31)
STAGES = ["Prospecting", "Qualification", "Proposal", "Negotiation"]
PROB = {"Prospecting": 0.1, "Qualification": 0.3, "Proposal": 0.6, "Negotiation": 0.9}
CATEGORY = {"Prospecting": "Pipeline", "Qualification": "Pipeline", "Proposal": "Best Case", "Negotiation": "Commit"}
REPS = {"r1": ("t1", "EMEA"), "r2": ("t1", "EMEA"), "r3": ("t2", "APAC"), "r4": ("t2", "APAC")}


def quarter_starts() -> list[date]:
    """Fiscal quarters of a year starting in February, 2023-2028."""
    return [date(y, m, 1) for y in range(2023, 2029) for m in (2, 5, 8, 11)]


def synthetic(n: int = 500, seed: int = 3) -> pj.Inputs:
    """Deals created over two years, each open for a while, moving up the stages, then won or lost;
    one snapshot row per day each is open in the last 13 months."""
    rng = np.random.default_rng(seed)
    start = AS_OF - timedelta(days=730)
    window = AS_OF - timedelta(days=395)
    deals, snaps = [], []
    for i in range(n):
        oid = f"o{i:04d}"
        rep = f"r{rng.integers(1, 5)}"
        created = start + timedelta(days=int(rng.integers(0, 725)))
        life = int(rng.integers(5, 120))
        amount = float(np.round(rng.lognormal(9, 0.6), 2))
        won = rng.random() < 0.45
        close = created + timedelta(days=life)
        status = ("won" if won else "lost") if close <= AS_OF else "open"
        planned = created + timedelta(days=int(life * rng.uniform(0.6, 1.1)))
        deals.append({"opportunity_id": oid, "owner_id": rep, "team_id": REPS[rep][0], "region": REPS[rep][1],
                      "segment": "SMB" if amount < 8000 else "Enterprise", "created_date": created,
                      "close_date": close if status != "open" else planned, "status": status, "amount": amount})
        day = max(created, window)
        while day < min(close, AS_OF + timedelta(days=1)):
            frac = (day - created).days / life
            stage = STAGES[min(int(frac * 4), 3)]
            pushed = planned + timedelta(days=30 * int(day > planned))
            snaps.append({"snapshot_date": day, "opportunity_id": oid, "owner_id": rep, "segment": deals[-1]["segment"],
                          "opportunity_type": "New" if i % 3 else "Renewal", "created_date": created,
                          "stage_name": stage, "stage_rank": STAGES.index(stage) + 1,
                          "forecast_category": CATEGORY[stage], "close_date": pushed, "amount": amount,
                          "probability": PROB[stage]})
            day += timedelta(days=1)
    return pj.Inputs(pd.DataFrame(snaps), pd.DataFrame(deals), quarter_starts(), set(STAGES))


def truncated(inputs: pj.Inputs, d: date) -> pj.Inputs:
    """The export as it would have been pulled at the end of day d: no later snapshot, no deal created later,
    and a deal still open on d (in the day-d snapshot) shows as open with its close date of that day."""
    s = inputs.snapshots[inputs.snapshots["snapshot_date"] <= d]
    deals = inputs.deals[inputs.deals["created_date"] <= d].copy()
    open_on_d = s[s["snapshot_date"] == d].set_index("opportunity_id")["close_date"]
    mask = deals["opportunity_id"].isin(open_on_d.index)
    deals.loc[mask, "status"] = "open"
    deals.loc[mask, "close_date"] = deals.loc[mask, "opportunity_id"].map(open_on_d)
    return pj.Inputs(s.copy(), deals, inputs.quarter_starts, inputs.open_stages)


@pytest.fixture(scope="module")
def inputs() -> pj.Inputs:
    return synthetic()


@pytest.fixture(scope="module")
def prepared(inputs) -> pj.Prepared:
    return pj.prepare(inputs)


def _sorted(rows: pd.DataFrame) -> pd.DataFrame:
    return rows.sort_values(["series_id", "period_type", "period_start"]).reset_index(drop=True)


def test_a_replayed_day_is_the_same_with_or_without_later_history(inputs):
    d = AS_OF - timedelta(days=75)
    full, _ = pj.replay(pj.prepare(inputs), [d], as_of=AS_OF, simulations=300, retrain_days=7, max_iter=30)
    cut, _ = pj.replay(pj.prepare(truncated(inputs, d)), [d], as_of=AS_OF, simulations=300, retrain_days=7,
                       max_iter=30)
    assert len(full) > 0
    full, cut = _sorted(full), _sorted(cut)
    pd.testing.assert_frame_equal(full.drop(columns=[c for c in full if full[c].dtype == float]),
                                  cut.drop(columns=[c for c in cut if cut[c].dtype == float]))
    for col in [c for c in full if full[c].dtype == float]:
        np.testing.assert_allclose(full[col], cut[col], rtol=1e-9, atol=1e-6, err_msg=col)
    # and the model was a real one, trained on outcomes known before d
    assert (full["model_trained_on"] <= d).all()


def test_later_history_does_change_a_leaky_quantity(inputs):
    """The check above can fail: the actual bookings of d's quarter differ once later wins are in."""
    d = AS_OF - timedelta(days=75)
    q = pj.periods_of(d, quarter_starts())[1]

    def won_in_quarter(i: pj.Inputs) -> float:
        w = i.deals[(i.deals["status"] == "won") & (i.deals["close_date"] >= q.start) & (i.deals["close_date"] <= q.end)]
        return float(w["amount"].sum())

    assert won_in_quarter(inputs) > won_in_quarter(truncated(inputs, d))


def test_every_level_adds_up_to_the_company(prepared):
    model = pj.fit_model(prepared, AS_OF - timedelta(days=30), max_iter=30)
    rows = pj.project_day(prepared, AS_OF - timedelta(days=20), model, simulations=200)
    cols = ["won_to_date", "open_pipeline_expected", "new_pipeline_expected", "projection", "commit_call",
            "best_case_call", "weighted_pipeline_call", "open_deals"]
    for (ptype, start), g in rows.groupby(["period_type", "period_start"]):
        company = g[g["level"] == "company"][cols].sum()
        for level in ("region", "segment", "team", "rep"):
            np.testing.assert_allclose(g[g["level"] == level][cols].sum(), company, rtol=1e-9,
                                       err_msg=f"{level} {ptype} {start}")
    assert set(rows["level"]) == set(pj.LEVELS)
    assert (rows["lower_95"] <= rows["lower_80"] + 1e-9).all() and (rows["lower_80"] <= rows["upper_80"] + 1e-9).all()
    assert (rows["upper_80"] <= rows["upper_95"] + 1e-9).all()
    np.testing.assert_allclose(rows["projection"], rows["won_to_date"] + rows["open_pipeline_expected"]
                               + rows["new_pipeline_expected"])


def test_periods_are_the_month_the_fiscal_quarter_and_the_next_quarter():
    month, quarter, nxt = pj.periods_of(date(2026, 9, 15), quarter_starts())
    assert (month.start, month.end) == (date(2026, 9, 1), date(2026, 9, 30))
    assert (quarter.start, quarter.end) == (date(2026, 8, 1), date(2026, 10, 31))
    assert (nxt.start, nxt.end) == (date(2026, 11, 1), date(2027, 1, 31))
    days = pj.replay_days(AS_OF, quarter_starts(), 4)
    assert days[0] == date(2025, 11, 1) and days[-1] == AS_OF and len(days) == 365


def test_a_win_recorded_after_the_day_is_not_won_to_date(inputs):
    """A deal won later with its close date set back before d: its amount is not in d's won_to_date."""
    d = AS_OF - timedelta(days=40)
    q = pj.periods_of(d, quarter_starts())[1]
    snaps = inputs.snapshots.copy()
    deals = inputs.deals.copy()
    open_on_d = snaps[snaps["snapshot_date"] == d]["opportunity_id"]
    later = deals[deals["opportunity_id"].isin(open_on_d) & (deals["status"] == "won")].iloc[0]
    deals.loc[deals["opportunity_id"] == later["opportunity_id"], "close_date"] = max(q.start, d - timedelta(days=3))
    p = pj.prepare(pj.Inputs(snaps, deals, inputs.quarter_starts, inputs.open_stages))
    model = pj.fit_model(p, d, max_iter=20)
    base = pj.project_day(pj.prepare(inputs), d, model, simulations=50)
    moved = pj.project_day(p, d, model, simulations=50)
    pick = (base["level"] == "company") & (base["period_start"] == q.start) & (base["period_type"] == "quarter")
    assert moved[pick]["won_to_date"].iloc[0] == pytest.approx(base[pick]["won_to_date"].iloc[0])


def test_bad_deals_are_scored_by_their_rule_and_counted(inputs):
    d = AS_OF - timedelta(days=10)
    snaps = inputs.snapshots.copy()
    on_d = snaps.index[snaps["snapshot_date"] == d]
    snaps.loc[on_d[0], "amount"] = np.nan
    snaps.loc[on_d[1], "close_date"] = d - timedelta(days=45)
    snaps.loc[on_d[2], "stage_name"] = "Legal Review"
    p = pj.prepare(pj.Inputs(snaps, inputs.deals, inputs.quarter_starts, inputs.open_stages))
    counts = pj.rule_counts(p, [d], inputs.open_stages)
    assert counts["missing_amount"] == 1 and counts["unknown_stage"] == 1
    assert counts["close_date_in_past"] >= 1
    model = pj.fit_model(p, d, max_iter=20)
    rows = pj.project_day(p, d, model, simulations=50)
    company = rows[rows["level"] == "company"]
    assert company["open_deals"].iloc[0] == len(on_d)  # none dropped
    assert np.isfinite(company[["projection", "lower_80", "upper_95"]].to_numpy()).all()


def test_an_empty_or_constant_crm_probability_still_projects(inputs):
    d = AS_OF - timedelta(days=10)
    for value in (np.nan, 0.5):
        snaps = inputs.snapshots.assign(probability=value)
        p = pj.prepare(pj.Inputs(snaps, inputs.deals, inputs.quarter_starts, inputs.open_stages))
        model = pj.fit_model(p, d, max_iter=20)
        assert model.model is not None
        rows = pj.project_day(p, d, model, simulations=50)
        assert (rows["open_pipeline_expected"] >= 0).all() and rows["open_pipeline_expected"].sum() > 0


def test_calibration_reports_brier_and_reliability(prepared):
    calib = pj.calibration(prepared, AS_OF, max_iter=20)
    assert calib["scored"] > 0
    assert calib["brier"] < calib["brier_base_rate"]  # better than saying every deal wins at the base rate
    assert sum(b["deals"] for b in calib["reliability"]) == calib["scored"]


@pytest.mark.parametrize("n", [0, 20])
def test_an_empty_or_tiny_pipeline_projects_without_failing(n):
    inputs = synthetic(n=n)
    if n == 0:  # no deal at all: the frames still carry their columns
        inputs = pj.Inputs(pd.DataFrame(columns=["snapshot_date", "opportunity_id", "owner_id", "segment",
                                                 "opportunity_type", "created_date", "stage_name", "stage_rank",
                                                 "forecast_category", "close_date", "amount", "probability"]),
                           pd.DataFrame(columns=["opportunity_id", "owner_id", "team_id", "region", "segment",
                                                 "created_date", "close_date", "status", "amount"]),
                           inputs.quarter_starts, inputs.open_stages)
    p = pj.prepare(inputs)
    days = pj.replay_days(AS_OF, quarter_starts(), 1)
    rows, model = pj.replay(p, days, as_of=AS_OF, simulations=20, retrain_days=28, max_iter=10)
    assert list(rows.columns) == list(pj.COLUMNS)
    if n == 0:
        assert rows.empty and model is None
    else:
        assert model is not None and len(rows) > 0
        assert np.isfinite(rows[["projection", "lower_95", "upper_95"]].to_numpy(dtype=float)).all()


def _crm_rule(p: pj.Prepared, rows: pd.DataFrame, end: int) -> np.ndarray:
    """The weighted pipeline's count of a deal for a window: its CRM probability if it closes in it, else 0."""
    close, day = rows["close_day"].to_numpy(), rows["day"].to_numpy()
    return np.where((close >= day) & (close <= end), rows["crm_probability"].to_numpy(), 0.0)


def test_a_model_before_a_whole_quarter_is_known_is_the_crm_rule(prepared):
    """The snapshots start on 2025-10-01: the first quarter followed whole is Nov-Jan, known from Feb."""
    d = date(2026, 1, 20)
    early = pj.fit_model(prepared, d, max_iter=20)
    assert early.examples >= 200 and early.model is None  # outcomes enough, but no whole quarter yet
    later = pj.fit_model(prepared, date(2026, 2, 12), max_iter=20)
    assert later.model is not None
    rows = prepared.snapshots.iloc[prepared.by_day[pj._day(d)]]
    end = pj._day(date(2026, 1, 31))
    np.testing.assert_allclose(early.predict(prepared, rows, np.full(len(rows), end)), _crm_rule(prepared, rows, end))
    assert (_crm_rule(prepared, rows, end) > 0).any()
    overdue = rows.assign(close_day=rows["day"] - 5)  # every deal's close date already past: none counts
    assert (early.predict(prepared, overdue, np.full(len(rows), end)) == 0).all()


def test_a_window_longer_than_any_learned_is_the_crm_rule(prepared):
    d = AS_OF - timedelta(days=10)
    model = pj.fit_model(prepared, d, max_iter=20)
    assert model.model is not None and 150 <= model.max_days_left <= 190  # six month ends at most
    rows = prepared.snapshots.iloc[prepared.by_day[pj._day(d)]]
    day = pj._day(d)
    inside, beyond = day + model.max_days_left, day + model.max_days_left + 1
    got_in, got_out = model.predict_ends(prepared, rows, [np.full(len(rows), inside), np.full(len(rows), beyond)])
    np.testing.assert_allclose(got_out, _crm_rule(prepared, rows, beyond))
    assert not np.allclose(got_in, _crm_rule(prepared, rows, inside))  # the model's own chances inside


def test_history_before_the_first_snapshot_is_missing_not_zero(prepared):
    s = prepared.snapshots
    start = s["day"].min()
    first = s.groupby("opportunity_id")["day"].transform("min")
    carried = (first == start) & (s["deal_age"] > s["day"] - start)  # open before the snapshots begin
    assert carried.any() and (~carried).any()
    assert s.loc[carried, "close_date_pushes"].isna().all() and s.loc[carried, "amount_changes"].isna().all()
    assert s.loc[carried & (s["day"] == start), "days_in_stage"].isna().all()
    fresh = s[~carried]
    assert fresh["days_in_stage"].notna().all() and (fresh["close_date_pushes"] >= 0).all()


def test_without_crm_probability_the_crm_rule_uses_each_stages_measured_win_rate(inputs):
    snaps = inputs.snapshots.assign(probability=np.nan)
    p = pj.prepare(pj.Inputs(snaps, inputs.deals, inputs.quarter_starts, inputs.open_stages))
    d = date(2026, 1, 20)  # before a whole quarter is known: the CRM rule
    model = pj.fit_model(p, d, max_iter=20)
    assert model.model is None and set(model.stage_rates) <= set(STAGES)
    # the synthetic deals win at 45% whatever their stage: every measured rate is near it, none is the base
    # rate of month-long windows
    assert all(0.3 < r < 0.6 for r in model.stage_rates.values()), model.stage_rates
    rows = p.snapshots.iloc[p.by_day[pj._day(d)]]
    end = pj._day(date(2026, 1, 31))
    got = model.predict(p, rows, np.full(len(rows), end))
    in_window = (rows["close_day"] >= rows["day"]) & (rows["close_day"] <= end)
    want = np.where(in_window, rows["stage_name"].map(model.stage_rates).to_numpy(dtype=float), 0.0)
    np.testing.assert_allclose(got, want)


def _grouped_outcomes(team_sd: float, windows: int = 400, seed: int = 5):
    """Deals of 4 teams (2 regions, 2 reps each) over many (day, window) groups; each team's win chance in a
    group scaled by a shared factor of sd `team_sd` (a team's good or bad quarter), or 0: independent deals."""
    rng = np.random.default_rng(seed)
    leaves = pd.DataFrame([(f"R{t // 2}", "SMB", f"t{t}", f"r{t}{k}") for t in range(4) for k in range(2)],
                          columns=list(pj.LEAF))
    n = 50
    leaf = np.tile(np.repeat(np.arange(8), n // 2), windows)
    day = np.repeat(np.arange(windows), 8 * n // 2)
    prob = np.full(len(leaf), 0.3)
    factor = np.exp(team_sd * rng.standard_normal((windows, 4)) - team_sd ** 2 / 2)
    chance = np.clip(prob * factor[day, leaf // 2], 0, 1)
    y = (rng.random(len(leaf)) < chance).astype("int64")
    ex = pd.DataFrame({"day": day, "end_day": day + 30, "leaf": leaf,
                       "amount_or_zero": rng.lognormal(9, 0.5, len(leaf))})
    return pj.Prepared(pd.DataFrame(), pd.DataFrame(), quarter_starts(), leaves), ex, y, prob


def test_a_teams_shared_good_or_bad_quarter_is_measured_at_team_level():
    p, ex, y, prob = _grouped_outcomes(team_sd=0.3)
    shocks = pj._shocks(p, ex, y, prob)
    assert set(shocks) == set(pj.LEVELS)
    assert 0.2 < shocks["team"] + shocks["region"] < 0.4  # the two nest here: the split between them is noise
    assert shocks["company"] < 0.1 and shocks["rep"] < 0.1
    independent = pj._shocks(*_grouped_outcomes(team_sd=0.0))
    assert max(independent.values()) < 0.08


def test_shared_factors_have_mean_one_and_the_members_sd():
    codes = pj._member_codes(pd.DataFrame([("R0", "SMB", "t0", "r0"), ("R0", "SMB", "t1", "r1")],
                                          columns=list(pj.LEAF)))
    f = pj._leaf_factors({"team": 0.3}, codes, np.random.default_rng(0), 20000)
    assert f.shape == (2, 20000)
    np.testing.assert_allclose(f.mean(axis=1), 1.0, atol=0.02)
    np.testing.assert_allclose(np.log(f).std(axis=1), 0.3, atol=0.01)
    assert abs(np.corrcoef(f)[0, 1]) < 0.05  # two teams: independent factors
