"""The in-quarter projection: this month's, this quarter's and next quarter's bookings from the open pipeline.

A sales leader's question is "what will we book this period?", asked every week while the period runs.
The answer here is built from three parts, each from what was known on the as-of day only:

- won to date: deals won with a close date in the period whose win was already recorded;
- open pipeline: each open deal's chance of closing won by the period's end, from a deal-level model
  (scikit-learn's HistGradientBoostingClassifier, monotone in the days left) trained on the reconstructed
  daily pipeline (`marts.fct_pipeline_snapshots`): each past day's open deals and whether they were won by
  a later month end, for every (day, month end) pair whose outcome was known on the training date. Where
  the model would extrapolate (it has not yet followed a whole fiscal quarter, or the window is longer than
  any it learned from) a deal counts as the weighted pipeline counts it: its CRM probability (its stage's
  measured win rate where the CRM has none) if its close date falls in the window;
- new pipeline: bookings from deals created after the as-of day and won inside the period, the average of
  the same part in the last periods of the same kind at the same day of the period.

Intervals come from simulating every open deal's outcome (one uniform draw per deal, so a deal won in the
month is won in the quarter), times shared factors for a good or bad period of the company and of each
region, segment, team and rep (deals of one team in one quarter are not independent; `_shocks` measures how
much they move together, out of sample), and drawing the new-deal part from one past period per simulation;
every level is a sum of the same simulated leaves (region x segment x team x rep), so the levels agree by
construction.

Leakage: a deal's outcome counts as known on `closed_on`, the day after its last open snapshot (or its
close date when later), never on its close date alone, which a rep may backdate. The replay of a day
reads nothing dated after it; `tests/forecasting/test_projection.py` checks that truncating the input
after the day changes none of its rows.

Input rules (counted in the result, never a crash or a silent drop): a deal with no amount is scored but
adds 0 to every amount (its amount is unknown, as the calls count it); a deal whose close date is already
past stays open and is scored with its days overdue as a feature (the calls leave it out of the period, as
they do); a stage the stage rules do not know as open is scored with its stage missing.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import numpy as np
import pandas as pd
from scipy import sparse
from sklearn.ensemble import HistGradientBoostingClassifier
from threadpoolctl import ThreadpoolController

from salesos.hierarchy import hierarchy

# The sales hierarchy is the dbt project's (var `hierarchy`, read by salesos.hierarchy), not written here:
# its levels top to bottom, the deal's columns that give its member at each level below the top (a deal's
# place in every level: its leaf; the top level is their sum), the top member's key and a missing member's.
_HIERARCHY = hierarchy()
LEVELS = _HIERARCHY.names
LEAF = tuple(lv.key_column for lv in _HIERARCHY.levels[1:])
COMPANY_KEY = _HIERARCHY.company_key
UNKNOWN = _HIERARCHY.missing_member  # the key fct_bookings_monthly gives a missing region, segment, team or owner
PERIOD_TYPES = ("month", "quarter", "next_quarter")  # next_quarter rows are written as period_type 'quarter'
CATEGORY_CODES = {"Pipeline": 0.0, "Best Case": 1.0, "Commit": 2.0}  # forecast categories of open deals
COMMIT, BEST_CASE = "Commit", "Best Case"
FEATURES = (
    "stage_rank", "days_in_stage", "deal_age", "close_date_pushes", "amount_changes", "log_amount",
    "forecast_category", "crm_probability", "days_to_close", "days_left", "window_ends_quarter",
    "owner_win_rate", "opportunity_type", "segment",
)
CATEGORICAL = ("opportunity_type", "segment")
TRAIN_EVERY_DAYS = 14  # snapshot days used as training examples: every other week (a fixed grid)
TRAIN_LOOKBACK_DAYS = 365  # training examples from this many days before the training date
TRAIN_MONTH_ENDS = 6  # each training day is paired with the next six month ends
WIN_RATE_DAYS = 365  # the owner's trailing win rate: deals closed in this many days
WIN_RATE_PRIOR = 10  # ... shrunk toward the company's rate as if it had this many more deals
NEW_DEAL_PERIODS = {"month": 12, "quarter": 8}  # past periods the new-deal part is averaged over
STAGE_RATE_PRIOR = 20  # deal-days: a rarely seen stage's measured win rate leans on every stage's
SHOCK_STEPS = 3  # the shared shock is measured on a model this many training dates older
SLIM_COLUMNS = ("pos", "day", "close_day", "crm_probability", "stage_name", "amount_or_zero", "leaf", "is_won",
                "final_close_day", "closed_on", *CATEGORICAL)
COLUMNS = (
    "as_of_date", "level", "series_id", "series_key", "period_type", "period_start", "period_end",
    "days_into_period", "pct_of_period_elapsed", "won_to_date", "open_pipeline_expected",
    "new_pipeline_expected", "projection", "lower_80", "upper_80", "lower_95", "upper_95", "commit_call",
    "best_case_call", "weighted_pipeline_call", "open_deals", "model_trained_on", "is_replay",
)


class ProjectionError(ValueError):
    """Input the projection cannot use; the message names the table and field."""


@dataclass(frozen=True)
class Period:
    kind: str  # month, quarter or next_quarter
    start: date
    end: date


@dataclass
class Inputs:
    """What the projection reads from the built marts (see `forecasting.projection_nightly.read_inputs`).

    snapshots: marts.fct_pipeline_snapshots (snapshot_date, opportunity_id, stage_name, stage_rank,
      forecast_category, close_date, amount, probability, created_date, opportunity_type, segment).
    deals: marts.fct_opportunities (opportunity_id, owner_id, the key column of each level below the top
      (LEAF: region, segment, team_id, owner_id), created_date, close_date, status, amount).
    quarter_starts: first day of every fiscal quarter (marts.dim_dates), sorted.
    open_stages: stage names the stage rules call open (marts.dim_stages).
    """

    snapshots: pd.DataFrame
    deals: pd.DataFrame
    quarter_starts: list[date]
    open_stages: set[str]


@dataclass
class Prepared:
    """Inputs with the per-deal history features and the day each outcome became known."""

    snapshots: pd.DataFrame  # + features, leaf
    deals: pd.DataFrame  # + closed_on, leaf
    quarter_starts: list[date]
    leaves: pd.DataFrame  # leaf index -> region, segment, team, rep
    rules: dict[str, int] = field(default_factory=dict)
    win_index: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    by_day: dict[int, np.ndarray] = field(default_factory=dict)  # snapshot day -> row positions (by deal id)
    # every snapshot row's features but the window's (days_left, window_ends_quarter), computed once: each
    # reads the deal's rows up to that day and outcomes known the day before, so it is the same row whatever
    # the window or the model; categorical columns hold codes into `categories`
    base_x: np.ndarray = field(default_factory=lambda: np.zeros((0, len(FEATURES))))
    categories: dict[str, list[str]] = field(default_factory=dict)
    cols: dict[str, np.ndarray] = field(default_factory=dict)  # snapshot columns project_day reads, as arrays
    won: dict[str, np.ndarray] = field(default_factory=dict)  # won deals' close_day, created_day, leaf, amount...
    # the snapshot columns the deal model and its training read (SLIM_COLUMNS; strings as categories): the
    # replay takes hundreds of thousands of its rows, which costs a fraction of the full frame's take
    slim: pd.DataFrame = field(default_factory=pd.DataFrame)
    member_codes: list[np.ndarray] = field(default_factory=list)  # per level, each leaf's member (_member_codes)


@functools.cache
def _threads() -> ThreadpoolController:
    return ThreadpoolController()


def _days(values: pd.Series) -> np.ndarray:
    return pd.to_datetime(values).to_numpy(dtype="datetime64[D]").astype("int64")


def _day(d: date) -> int:
    return int(np.datetime64(d, "D").astype("int64"))


def _date(n: int) -> date:
    return date(1970, 1, 1) + timedelta(days=int(n))


def _month_end(d: date) -> date:
    nxt = date(d.year + d.month // 12, d.month % 12 + 1, 1)
    return nxt - timedelta(days=1)


def periods_of(d: date, quarter_starts: list[date]) -> list[Period]:
    """The current month, current fiscal quarter and next fiscal quarter on day d."""
    i = int(np.searchsorted(np.array(quarter_starts, dtype="datetime64[D]"), np.datetime64(d, "D"), side="right")) - 1
    if i < 0 or i + 2 >= len(quarter_starts):
        raise ProjectionError(f"marts.dim_dates: no fiscal quarter around {d} (the calendar must reach a year ahead)")
    q0, q1, q2 = quarter_starts[i], quarter_starts[i + 1], quarter_starts[i + 2]
    return [Period("month", d.replace(day=1), _month_end(d)), Period("quarter", q0, q1 - timedelta(days=1)),
            Period("next_quarter", q1, q2 - timedelta(days=1))]


def prepare(inputs: Inputs) -> Prepared:
    """Features that need a deal's history (days in stage, pushes, amount changes) and when outcomes were known.

    Each feature of a snapshot row reads only the deal's rows up to that day, so a later export gives the
    same value.
    """
    need = {"snapshot_date", "opportunity_id", "stage_name", "forecast_category", "close_date", "amount",
            "probability", "created_date"}
    missing = need - set(inputs.snapshots.columns)
    if missing:
        raise ProjectionError(f"marts.fct_pipeline_snapshots: missing column(s) {sorted(missing)}")
    deals = inputs.deals.copy()
    for col in LEAF:
        deals[col] = deals[col].astype("string").fillna(UNKNOWN)
    deals["leaf_key"] = deals[LEAF[0]].str.cat([deals[col] for col in LEAF[1:]], sep="\x1f")
    keys = sorted(deals["leaf_key"].unique())
    leaf_of = {k: i for i, k in enumerate(keys)}
    deals["leaf"] = deals["leaf_key"].map(leaf_of).astype("int64")
    leaves = pd.DataFrame([k.split("\x1f") for k in keys], columns=list(LEAF)) if keys else \
        pd.DataFrame(columns=list(LEAF))

    s = inputs.snapshots.drop(columns=["owner_id"], errors="ignore")
    s = s.sort_values(["opportunity_id", "snapshot_date"]).reset_index(drop=True)
    s["day"] = _days(s["snapshot_date"])
    s["close_day"] = _days(s["close_date"])
    first = s["opportunity_id"].ne(s["opportunity_id"].shift())
    stage_changed = first | s["stage_name"].ne(s["stage_name"].shift())
    run = stage_changed.cumsum()
    s["days_in_stage"] = s["day"] - s.groupby(run)["day"].transform("min")
    pushed = (~first) & (s["close_day"] > s["close_day"].shift())
    s["close_date_pushes"] = pushed.astype("int64").groupby(s["opportunity_id"]).cumsum()
    amt = s["amount"].astype("float64")
    changed = (~first) & (amt.ne(amt.shift())) & ~(amt.isna() & amt.shift().isna())
    s["amount_changes"] = changed.astype("int64").groupby(s["opportunity_id"]).cumsum()
    s["deal_age"] = s["day"] - _days(s["created_date"])
    # The snapshots start somewhere (pipeline_snapshot_months): a deal already open on the first day entered
    # its stage, and had its pushes and amount changes, before it. Those counts are unknown, not 0: missing,
    # so the model does not learn that every deal of the first weeks is fresh in its stage.
    start = int(s["day"].min()) if len(s) else 0
    before = (_days(s["created_date"]) < start) & (s.groupby("opportunity_id")["day"].transform("min") == start)
    s.loc[(s["day"] - s["days_in_stage"] == start) & before, "days_in_stage"] = np.nan
    s.loc[before, ["close_date_pushes", "amount_changes"]] = np.nan
    s["log_amount"] = np.log1p(amt.clip(lower=0))
    s["forecast_category_code"] = s["forecast_category"].map(CATEGORY_CODES).astype("float64")
    s["crm_probability"] = s["probability"].astype("float64")
    s["days_to_close"] = (s["close_day"] - s["day"]).astype("float64")
    unknown_stage = ~s["stage_name"].isin(inputs.open_stages)
    rank = s["stage_rank"].astype("float64") if "stage_rank" in s else pd.Series(np.nan, index=s.index)
    s["stage_rank_f"] = rank.where(~unknown_stage)
    s["amount_or_zero"] = amt.fillna(0.0)

    # when each closed deal's outcome was known: the day after its last open snapshot, or its close date
    last_open = s.groupby("opportunity_id")["day"].max()
    deals["close_day"] = _days(deals["close_date"])
    lo = deals["opportunity_id"].map(last_open)
    deals["closed_on"] = np.where(lo.notna(), np.maximum(deals["close_day"], lo.fillna(0) + 1), deals["close_day"])
    deals["created_day"] = _days(deals["created_date"])
    deals["is_won"] = deals["status"].eq("won")
    deals["is_closed"] = deals["status"].isin(["won", "lost"])
    deals["amount_or_zero"] = deals["amount"].astype("float64").fillna(0.0)
    s = s.merge(deals[["opportunity_id", "leaf", "owner_id", "is_won", "close_day", "closed_on"]]
                .rename(columns={"close_day": "final_close_day"}), on="opportunity_id", how="left")
    orphans = s["leaf"].isna()
    if orphans.any():  # a snapshot of a deal fct_opportunities no longer has: nowhere to count it
        s = s[~orphans].copy()
    s["leaf"] = s["leaf"].astype("int64")
    s = s.reset_index(drop=True)
    s["pos"] = np.arange(len(s))
    rules = {"snapshot_rows_without_deal": int(orphans.sum())}
    by_day = {int(k): np.sort(v) for k, v in s.groupby("day").indices.items()}
    p = Prepared(s, deals, list(inputs.quarter_starts), leaves, rules, _win_rate_index(deals), by_day)
    p.categories = {c: sorted(s[c].dropna().astype(str).unique().tolist()) if c in s else [] for c in CATEGORICAL}
    p.base_x = _base_features(s, p)
    p.cols = {"leaf": s["leaf"].to_numpy(), "amount": s["amount_or_zero"].to_numpy(dtype="float64"),
              "close_day": s["close_day"].to_numpy(), "category": s["forecast_category"].astype(object).to_numpy(),
              "crm_probability": s["crm_probability"].to_numpy(dtype="float64")}
    slim = s[[c for c in SLIM_COLUMNS if c in s]].copy()
    for c in ("stage_name", *CATEGORICAL):
        if c in slim:
            slim[c] = slim[c].astype(object).astype("category")
    p.slim = slim
    p.member_codes = _member_codes(leaves)
    w = deals[deals["is_won"]]
    p.won = {"close_day": w["close_day"].to_numpy(), "created_day": w["created_day"].to_numpy(),
             "leaf": w["leaf"].to_numpy(), "amount": w["amount_or_zero"].to_numpy(dtype="float64"),
             "closed_on": w["closed_on"].to_numpy()}
    return p


def _win_rate_index(deals: pd.DataFrame) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per owner (and '' for everyone): the days closed deals became known closed, sorted, and wins so far."""
    closed = deals[deals["is_closed"]].sort_values(["closed_on", "opportunity_id"])
    out = {"": (closed["closed_on"].to_numpy(), np.concatenate([[0.0], np.cumsum(closed["is_won"].to_numpy(float))]))}
    for owner, g in closed.groupby("owner_id", sort=False):
        out[str(owner)] = (g["closed_on"].to_numpy(), np.concatenate([[0.0], np.cumsum(g["is_won"].to_numpy(float))]))
    return out


def _owner_win_rates(p: Prepared, days: np.ndarray, owners: np.ndarray) -> np.ndarray:
    """Each owner's win rate over deals known closed in the WIN_RATE_DAYS before each day, shrunk to everyone's."""

    def counts(key: str, d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        on, cw = p.win_index.get(key, (np.array([], dtype="int64"), np.zeros(1)))
        hi = np.searchsorted(on, d - 1, side="right")  # known closed on or before the day before
        lo = np.searchsorted(on, d - 1 - WIN_RATE_DAYS, side="right")
        return (hi - lo).astype("float64"), cw[hi] - cw[lo]

    n_all, w_all = counts("", days)
    base = np.where(n_all > 0, w_all / np.maximum(n_all, 1), 0.0)
    out = np.empty(len(days))
    # each owner's rows from one sort of the owner codes (comparing every row with every owner was most of
    # prepare at scale M: 250 owners x 6 million snapshot rows)
    codes, uniq = pd.factorize(pd.Series(owners).astype(str), sort=True)
    order = np.argsort(codes, kind="stable")
    bounds = np.searchsorted(codes[order], np.arange(len(uniq) + 1))
    for k, owner in enumerate(uniq):
        idx = order[bounds[k]:bounds[k + 1]]
        n, w = counts(str(owner), days[idx])
        out[idx] = (w + WIN_RATE_PRIOR * base[idx]) / (n + WIN_RATE_PRIOR)
    return out


def _quarter_end_days(quarter_starts: list[date]) -> set[int]:
    return {_day(q) - 1 for q in quarter_starts}


def _base_features(s: pd.DataFrame, p: Prepared) -> np.ndarray:
    """The feature matrix of every snapshot row (FEATURES order), the window's two columns left at 0."""
    cols = {
        "stage_rank": s["stage_rank_f"].to_numpy(),
        "days_in_stage": s["days_in_stage"].to_numpy(),
        "deal_age": s["deal_age"].to_numpy(),
        "close_date_pushes": s["close_date_pushes"].to_numpy(),
        "amount_changes": s["amount_changes"].to_numpy(),
        "log_amount": s["log_amount"].to_numpy(),
        "forecast_category": s["forecast_category_code"].to_numpy(),
        "crm_probability": s["crm_probability"].to_numpy(),
        "days_to_close": s["days_to_close"].to_numpy(),
        "days_left": np.zeros(len(s)),
        "window_ends_quarter": np.zeros(len(s)),
        "owner_win_rate": _owner_win_rates(p, s["day"].to_numpy(), s["owner_id"].to_numpy()),
    }
    for c in CATEGORICAL:
        codes = {v: float(i) for i, v in enumerate(p.categories[c])}
        cols[c] = s[c].astype("string").map(codes).astype("float64").to_numpy() if c in s else \
            np.full(len(s), np.nan)
    return np.column_stack([np.asarray(cols[f], dtype="float64") for f in FEATURES]) if len(s) else \
        np.zeros((0, len(FEATURES)))


def _feature_frame(rows: pd.DataFrame, end_days: np.ndarray, p: Prepared, vocab: dict[str, list[str]]) -> np.ndarray:
    """The model's feature matrix for snapshot rows paired with window end days (FEATURES order): the rows'
    precomputed features, the window's, and categories coded in the model's vocabulary."""
    x = p.base_x[rows["pos"].to_numpy()]
    x[:, FEATURES.index("days_left")] = (end_days - rows["day"].to_numpy()).astype("float64")
    x[:, FEATURES.index("window_ends_quarter")] = np.isin(end_days, list(_quarter_end_days(p.quarter_starts)))
    for c in CATEGORICAL:
        i = FEATURES.index(c)
        index = {v: k for k, v in enumerate(vocab[c])}
        recode = np.array([index.get(v, np.nan) for v in p.categories[c]] + [np.nan], dtype="float64")
        codes = x[:, i]
        x[:, i] = recode[np.where(np.isnan(codes), len(p.categories[c]), codes).astype("int64")]
    return x


def training_set(p: Prepared, trained_on: date) -> tuple[pd.DataFrame, np.ndarray]:
    """Examples known on `trained_on`: a weekly grid of past snapshot days, each open deal paired with the next
    month ends that fell before `trained_on`; label = won with a close date by that month end, known by then."""
    r = _day(trained_on)
    s = p.slim if len(p.slim.columns) else p.snapshots
    grid = s[(s["day"] % TRAIN_EVERY_DAYS == 0) & (s["day"] < r) & (s["day"] >= r - TRAIN_LOOKBACK_DAYS)]
    parts = []
    for k in range(TRAIN_MONTH_ENDS):
        months = grid["day"].to_numpy().astype("datetime64[D]").astype("datetime64[M]")
        ends = ((months + k + 1).astype("datetime64[D]") - 1).astype("int64")
        keep = ends < r
        if keep.any():
            parts.append(grid[keep].assign(end_day=ends[keep]))
    if not parts:
        return grid.iloc[:0].assign(end_day=np.array([], dtype="int64")), np.array([], dtype="int64")
    ex = pd.concat(parts, ignore_index=True)
    won = ex["is_won"].fillna(False).to_numpy(bool) & (ex["final_close_day"].to_numpy() <= ex["end_day"].to_numpy()) \
        & (ex["closed_on"].fillna(np.inf).to_numpy() <= r - 1)
    return ex, won.astype("int64")


def _add_months(d: date, k: int) -> date:
    m = d.month - 1 + k
    return date(d.year + m // 12, m % 12 + 1, 1)


@dataclass
class DealModel:
    """A fitted deal model, its categorical vocabularies and when it was trained."""

    trained_on: date
    vocab: dict[str, list[str]]
    model: HistGradientBoostingClassifier | None  # None: too few known outcomes or no whole quarter yet
    base_rate: float
    examples: int
    # per level, the sd of a shared factor on each member's open deals (a team's good or bad quarter): _shocks
    shocks: dict[str, float] = field(default_factory=dict)
    empty: tuple[int, ...] = ()  # features with no value in training (e.g. no CRM probability): held at 0
    earlier: DealModel | None = None  # the older model its shock was measured with (fit_with_shock)
    max_days_left: int = 0  # the longest window it learned from: longer ones get the CRM rule (see predict_ends)
    # where the CRM has no probability, the CRM rule uses each stage's measured one (_stage_win_rates)
    stage_rates: dict[str, float] = field(default_factory=dict)
    eventual_rate: float = 0.0

    def predict(self, p: Prepared, rows: pd.DataFrame, end_days: np.ndarray) -> np.ndarray:
        return self.predict_ends(p, rows, [end_days])[0]

    def predict_ends(self, p: Prepared, rows: pd.DataFrame, ends: list[np.ndarray]) -> list[np.ndarray]:
        """The chance of each row's deal being won by each of several window ends (features built once)."""
        if rows.empty:
            return [np.zeros(0) for _ in ends]
        # the CRM's own probability for deals whose close date falls in the window, as the weighted call
        # (its stage's measured win rate where the CRM has none; 0 if overdue): for every window when there
        # is no model, and for the windows longer than any the model learned from (a tree model holds its
        # last value past its training range: the chance of winning in three months read off windows of one)
        prob = rows["crm_probability"].to_numpy(dtype="float64")
        if np.isnan(prob).any():
            fill = rows["stage_name"].astype(str).map(self.stage_rates).astype("float64")
            fill = fill.fillna(self.eventual_rate if self.stage_rates else self.base_rate).to_numpy()
            prob = np.where(np.isnan(prob), fill, prob)
        close, day = rows["close_day"].to_numpy(), rows["day"].to_numpy()
        crm = [np.where((close >= day) & (close <= e), prob, 0.0) for e in ends]
        if self.model is None:
            return crm
        x = _feature_frame(rows, ends[0], p, self.vocab)
        x[:, list(self.empty)] = 0.0
        q_ends = list(_quarter_end_days(p.quarter_starts))
        left, flag = FEATURES.index("days_left"), FEATURES.index("window_ends_quarter")
        blocks = []
        for e in ends:
            xe = x.copy()
            xe[:, left] = (e - day).astype("float64")
            xe[:, flag] = np.isin(e, q_ends).astype("float64")
            blocks.append(xe)
        with _threads().limit(limits=1):  # a few hundred rows: threads cost more than they give
            model = self.model.predict_proba(np.vstack(blocks))[:, 1].reshape(len(ends), len(rows))
        return [np.where(e - day <= self.max_days_left, m, c) for e, m, c in zip(ends, model, crm, strict=True)]


def _stage_win_rates(ex: pd.DataFrame, r: int) -> tuple[dict[str, float], float]:
    """What a CRM probability means, measured: per stage, the share of the example deal-days in it whose deal
    was won, among deals known closed before day r (shrunk toward all stages' share as if STAGE_RATE_PRIOR
    more deal-days had it), and all stages' share. For a CRM whose probability field is empty."""
    rows = ex.drop_duplicates("pos") if len(ex) else ex
    if rows.empty:
        return {}, 0.0
    rows = rows[rows["closed_on"].fillna(np.inf).to_numpy() <= r - 1]
    if rows.empty:
        return {}, 0.0
    won = rows["is_won"].astype(bool).astype("float64")
    overall = float(won.mean())
    g = won.groupby(rows["stage_name"].astype(str)).agg(["sum", "count"])
    rates = (g["sum"] + STAGE_RATE_PRIOR * overall) / (g["count"] + STAGE_RATE_PRIOR)
    return {str(k): float(v) for k, v in rates.items()}, overall


def _saw_a_whole_quarter(ex: pd.DataFrame, quarter_starts: list[date]) -> bool:
    """Whether the examples follow one fiscal quarter from its first grid day (TRAIN_EVERY_DAYS) to its end.

    Until then (the first weeks after the snapshots start, `pipeline_snapshot_months`) a model has learned
    only windows shorter than the quarter it is asked about, and none that ends on a quarter end after a
    whole quarter's run-up: it would be extrapolating, so the CRM's probability is used (predict_ends).
    """
    starts = np.array([_day(q) for q in quarter_starts], dtype="int64")
    ends = starts[1:] - 1
    day, end = ex["day"].to_numpy(), ex["end_day"].to_numpy()
    i = np.searchsorted(ends, end)
    hit = (i < len(ends)) & (ends[np.minimum(i, len(ends) - 1)] == end)
    return bool((hit & (day - starts[np.minimum(i, len(ends) - 1)] < TRAIN_EVERY_DAYS)).any())


def fit_model(p: Prepared, trained_on: date, max_iter: int = 100) -> DealModel:
    """Train the deal model on the outcomes known on `trained_on` (deterministic: no early stopping)."""
    ex, y = training_set(p, trained_on)
    vocab = {c: sorted(ex[c].dropna().astype(str).unique().tolist()) if c in ex else [] for c in CATEGORICAL}
    base = float(y.mean()) if len(y) else 0.0
    rates, eventual = _stage_win_rates(ex, _day(trained_on))
    if len(y) < 200 or y.sum() < 20 or y.sum() == len(y) or not _saw_a_whole_quarter(ex, p.quarter_starts):
        return DealModel(trained_on, vocab, None, base, len(y), stage_rates=rates, eventual_rate=eventual)
    mono = [1 if f == "days_left" else 0 for f in FEATURES]
    cat = [f in CATEGORICAL for f in FEATURES]
    model = HistGradientBoostingClassifier(max_iter=max_iter, learning_rate=0.1, max_leaf_nodes=15,
                                           min_samples_leaf=40, l2_regularization=1.0, early_stopping=False,
                                           monotonic_cst=mono, categorical_features=cat, random_state=0)
    x = _feature_frame(ex, ex["end_day"].to_numpy(), p, vocab)
    empty = tuple(int(i) for i in np.flatnonzero(~np.isfinite(x).any(axis=0)))
    x[:, list(empty)] = 0.0
    with _threads().limit(limits=1):  # one core: the night shares the machine with the other steps' pools
        model.fit(x, y)
    longest = int((ex["end_day"] - ex["day"]).max())
    return DealModel(trained_on, vocab, model, base, len(y), {}, empty, max_days_left=longest, stage_rates=rates,
                     eventual_rate=eventual)


def fit_with_shock(p: Prepared, trained_on: date, retrain_days: int, cache: dict[int, DealModel] | None = None,
                   max_iter: int = 100) -> DealModel:
    """The deal model of `trained_on` with its shock measured out of sample: the model of SHOCK_STEPS training
    dates earlier, scored on the (day, month end) windows that became known since (both on the fixed grid)."""
    cache = {} if cache is None else cache
    r = _day(trained_on)
    earlier = r - SHOCK_STEPS * retrain_days
    for day in (earlier, r):
        if day not in cache:
            cache[day] = fit_model(p, _date(day), max_iter=max_iter)
    ex, y = training_set(p, trained_on)
    new = ex["end_day"].to_numpy() >= earlier if len(ex) else np.zeros(0, dtype=bool)
    shocks = dict.fromkeys(LEVELS, 0.0)
    if new.any():
        ex, y = ex[new], y[new]
        shocks = _shocks(p, ex, y, cache[earlier].predict(p, ex, ex["end_day"].to_numpy()))
    return dataclasses.replace(cache[r], shocks=shocks, earlier=cache[earlier])


def _member_codes(leaves: pd.DataFrame) -> list[np.ndarray]:
    """Per level (top first), each leaf's member as an index into the level's members."""
    return [np.zeros(len(leaves), dtype="int64") if lv.key_column is None
            else pd.factorize(leaves[lv.key_column].astype(str))[0].astype("int64") for lv in _HIERARCHY.levels]


def _shocks(p: Prepared, ex: pd.DataFrame, y: np.ndarray, prob: np.ndarray) -> dict[str, float]:
    """How much more the open pipeline's won amount varies than independent deals would, per level: the sd
    of one shared factor per member of each level (company, each region, segment, team, rep), measured out of
    sample on (day, window) groups.

    Deals of one team in one quarter are not independent (the team's good or bad quarter, a market, a
    model that is off for them): with a factor of relative variance s2[L] on every member of level L, a
    group g of level L (one member, one day and window) has sum_g (A - E)^2 - V = sum_L' s2[L'] *
    sum_m E(g, m)^2, where E(g, m) is the expected amount of g's deals in member m of level L'. One such
    equation per level, solved for s2 >= 0 (non-negative least squares, each equation scaled by its own
    diagonal); the levels need not nest (a segment spans teams). Returned: the log-normal sd of each factor.
    """
    from scipy.optimize import nnls

    names = list(LEVELS)
    if not len(ex):
        return dict.fromkeys(names, 0.0)
    a = ex["amount_or_zero"].to_numpy()
    e, won, v = prob * a, y * a, prob * (1 - prob) * a * a
    window = pd.factorize(ex["day"].to_numpy() * 100000 + ex["end_day"].to_numpy())[0].astype("int64")
    codes = [c[ex["leaf"].to_numpy()] for c in (p.member_codes or _member_codes(p.leaves))]
    sizes = [int(c.max()) + 1 if len(c) else 1 for c in codes]
    k = len(names)
    lhs, m = np.zeros(k), np.zeros((k, k))
    for i in range(k):
        g = window * sizes[i] + codes[i]
        _, gi = np.unique(g, return_inverse=True)
        lhs[i] = float(((np.bincount(gi, won) - np.bincount(gi, e)) ** 2 - np.bincount(gi, v)).sum())
        for j in range(k):
            _, cell = np.unique(gi * sizes[j] + codes[j], return_inverse=True)
            m[i, j] = float((np.bincount(cell, e) ** 2).sum())
    scale = np.where(np.diag(m) > 0, np.diag(m), 1.0)
    if not np.isfinite(m).all() or not (np.diag(m) > 0).any():
        return dict.fromkeys(names, 0.0)
    s2, _ = nnls(m / scale[:, None], lhs / scale)
    return {name: float(math.sqrt(math.log1p(x))) for name, x in zip(names, s2, strict=True)}


def _leaf_factors(shocks: dict[str, float], codes: list[np.ndarray], rng: np.random.Generator,
                  simulations: int) -> np.ndarray:
    """Per leaf and simulation, the product of its members' shared factors (log-normal, mean 1)."""
    log_f = np.zeros((len(codes[0]) if codes else 0, simulations))
    for name, c in zip(LEVELS, codes, strict=True):
        s = shocks.get(name, 0.0)
        if s > 0 and len(c):
            z = rng.standard_normal((int(c.max()) + 1, simulations))
            log_f += s * z[c] - s * s / 2
    return np.exp(log_f)


def calibration(p: Prepared, trained_on: date, holdout_days: int = 92, max_iter: int = 100,
                earlier_model: DealModel | None = None) -> dict[str, Any]:
    """Out-of-time calibration: a model trained `holdout_days` earlier (or `earlier_model`), scored on the
    examples that became known since (Brier score and a ten-bin reliability table)."""
    model = earlier_model or fit_model(p, trained_on - timedelta(days=holdout_days), max_iter=max_iter)
    earlier = model.trained_on
    ex, y = training_set(p, trained_on)
    new = (ex["end_day"].to_numpy() >= _day(earlier)) if len(ex) else np.array([], dtype=bool)
    ex, y = ex[new], y[new]
    if len(y) == 0:
        return {"trained_on": str(earlier), "scored": 0, "brier": None, "reliability": []}
    prob = model.predict(p, ex, ex["end_day"].to_numpy())
    bins = np.minimum((prob * 10).astype(int), 9)
    table = [{"bin": f"{b / 10:.1f}-{(b + 1) / 10:.1f}", "deals": int((bins == b).sum()),
              "mean_predicted": float(prob[bins == b].mean()), "observed_won": float(y[bins == b].mean())}
             for b in range(10) if (bins == b).any()]
    return {"trained_on": str(earlier), "scored_until": str(trained_on), "scored": len(y),
            "brier": float(np.mean((prob - y) ** 2)), "brier_base_rate": float(np.mean((y.mean() - y) ** 2)),
            "reliability": table}


def _new_deal_history(p: Prepared, d: date, period: Period) -> np.ndarray:
    """Per past period (rows) and leaf (columns): bookings of deals created after the same day of the period,
    won with a close date in it; the last NEW_DEAL_PERIODS ended periods of the kind, as known on day d."""
    kind = "month" if period.kind == "month" else "quarter"
    dd = _day(d)
    offset = dd - _day(period.start)  # negative for next quarter
    starts: list[date] = []
    if kind == "month":
        m = period.start
        while len(starts) < NEW_DEAL_PERIODS["month"]:
            m = _add_months(m, -1)
            starts.append(m)
        bounds = [(_day(a), _day(_month_end(a))) for a in starts]
    else:
        qs = [q for q in p.quarter_starts if q < period.start]
        # quarters that ended before day d (the next quarter's history must not include the current quarter)
        qs = [q for q, nxt in zip(qs, [*qs[1:], period.start], strict=True) if _day(nxt) - 1 < dd]
        qs = qs[-NEW_DEAL_PERIODS["quarter"]:]
        nxt = {q: n for q, n in zip(p.quarter_starts, p.quarter_starts[1:], strict=False)}
        bounds = [(_day(q), _day(nxt[q]) - 1) for q in qs]
    hist = np.zeros((len(bounds), len(p.leaves)))
    known = p.won["closed_on"] <= dd
    cd, cr, lf, am = (p.won[k][known] for k in ("close_day", "created_day", "leaf", "amount"))
    for i, (a, b) in enumerate(bounds):
        sel = (cd >= a) & (cd <= b) & (cr > a + offset)
        np.add.at(hist[i], lf[sel], am[sel])
    return hist


def _level_matrix(leaves: pd.DataFrame) -> tuple[sparse.csr_matrix, pd.DataFrame]:
    """A 0/1 matrix from leaves to every series of every level (the top level's one member first), and the series."""
    rows, cols, meta = [], [], []
    n = 0
    for lv in _HIERARCHY.levels:
        level = lv.level
        keys = pd.Series([COMPANY_KEY] * len(leaves)) if lv.key_column is None else \
            leaves[lv.key_column].astype(str).reset_index(drop=True)
        for key, idx in keys.groupby(keys).groups.items():
            meta.append((level, f"{level}:{key}", key))
            rows += [n] * len(idx)
            cols += list(idx)
            n += 1
    m = sparse.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, len(leaves)))
    return m, pd.DataFrame(meta, columns=["level", "series_id", "series_key"])


def _quantiles(x: np.ndarray, qs: tuple[float, ...]) -> np.ndarray:
    """np.quantile's linear quantiles of each row, from one sort (four partitions cost more)."""
    srt = np.sort(x, axis=1)
    out = []
    for q in qs:
        h = q * (x.shape[1] - 1)
        lo = int(np.floor(h))
        hi = min(lo + 1, x.shape[1] - 1)
        out.append(srt[:, lo] + (h - lo) * (srt[:, hi] - srt[:, lo]))
    return np.array(out)


def day_windows(p: Prepared, d: date) -> tuple[np.ndarray, list[int]]:
    """Day d's open snapshot rows (positions) and the end days of its month, quarter and next quarter."""
    ends = [_day(per.end) for per in periods_of(d, p.quarter_starts)]
    return p.by_day.get(_day(d), np.array([], dtype="int64")), ends


def predict_days(p: Prepared, days: list[date], model: DealModel) -> dict[date, list[np.ndarray]]:
    """The model's chances for the open deals of several days at once (one batch: the same numbers as a day
    at a time), per day in the order of its periods (month, quarter, next quarter)."""
    pos, ends = zip(*(day_windows(p, d) for d in days), strict=True) if days else ((), ())
    frame = p.slim if len(p.slim.columns) else p.snapshots
    rows = frame.iloc[np.concatenate(pos)] if days else frame.iloc[:0]
    lengths = [len(x) for x in pos]
    per_end = [np.repeat([e[k] for e in ends], lengths).astype("int64") for k in range(len(PERIOD_TYPES))]
    probs = model.predict_ends(p, rows, per_end)
    cuts = np.cumsum(lengths)[:-1]
    split = [np.split(pr, cuts) for pr in probs]
    return {d: [split[k][i] for k in range(len(PERIOD_TYPES))] for i, d in enumerate(days)}


def project_day(p: Prepared, d: date, model: DealModel, simulations: int = 1000, is_replay: bool = False,
                levels: sparse.csr_matrix | None = None, series: pd.DataFrame | None = None,
                probs: list[np.ndarray] | None = None) -> pd.DataFrame:
    """Every level's projection of the current month, quarter and next quarter on day d (COLUMNS); `probs`:
    the model's chances for the day's open deals when already computed (predict_days)."""
    if levels is None or series is None:
        levels, series = _level_matrix(p.leaves)
    return _frame([_day_arrays(p, d, model, simulations, is_replay, levels, _series_arrays(series), probs)])


def _series_arrays(series: pd.DataFrame) -> dict[str, np.ndarray]:
    return {c: np.asarray(series[c].to_numpy(), dtype=object) for c in ("level", "series_id", "series_key")}


def _frame(parts: list[dict[str, np.ndarray]]) -> pd.DataFrame:
    """The rows of several days' arrays (_day_arrays) as one frame in COLUMNS order (one frame: building one
    per day costs more than projecting the day)."""
    if not parts:
        return pd.DataFrame(columns=list(COLUMNS))
    return pd.DataFrame({k: np.concatenate([x[k] for x in parts]) for k in COLUMNS})[list(COLUMNS)]


def _day_arrays(p: Prepared, d: date, model: DealModel, simulations: int, is_replay: bool,
                levels: sparse.csr_matrix, series: dict[str, np.ndarray],
                probs: list[np.ndarray] | None) -> dict[str, np.ndarray]:
    """project_day's rows as arrays (COLUMNS)."""
    dd = _day(d)
    periods = periods_of(d, p.quarter_starts)
    pos, _ = day_windows(p, d)
    n_open_rows = len(pos)
    n_leaves = len(p.leaves)
    leaf_of_row = p.cols["leaf"][pos]
    to_leaf = sparse.csr_matrix((np.ones(n_open_rows), (leaf_of_row, np.arange(n_open_rows))),
                                shape=(n_leaves, n_open_rows))
    amount = p.cols["amount"][pos]
    # float32 with the uint8 outcomes below: scipy then multiplies in float32, not float64 (a fifth of the time;
    # a leaf's simulated sum is off by cents)
    amount_to_leaf = sparse.csr_matrix((amount.astype(np.float32), (leaf_of_row, np.arange(n_open_rows))),
                                       shape=(n_leaves, n_open_rows))
    close = p.cols["close_day"][pos]
    ends = {per.kind: _day(per.end) for per in periods}
    if probs is None:
        probs = predict_days(p, [d], model)[d]
    prob = dict(zip(ends, probs, strict=True))
    prob["quarter"] = np.maximum(prob["quarter"], prob["month"])
    prob["next_quarter"] = np.maximum(prob["next_quarter"], prob["quarter"])
    # a deal is won in a simulation when its 16-bit draw is below its chance in 65,536ths (a chance resolved to
    # 1/65,536): a quarter of the memory of float64 draws, and half the time to draw of float32 ones
    thr = {k: np.minimum(np.rint(v * 65536.0), 65535).astype(np.uint16) for k, v in prob.items()}
    rng = np.random.default_rng(dd)  # the day's draws depend on the day and its open deals only
    u = rng.integers(0, 1 << 16, (n_open_rows, simulations), dtype=np.uint16)
    pick = rng.integers(0, 1 << 30, simulations)
    # shared factors (mean 1) per simulation on each member of each level: good and bad periods hit all of a
    # team's (a region's, ...) open deals at once
    factor = _leaf_factors(model.shocks, p.member_codes or _member_codes(p.leaves), rng, simulations)
    known = p.won["closed_on"] <= dd
    w_close, w_leaf, w_amount = p.won["close_day"][known], p.won["leaf"][known], p.won["amount"][known]
    cat = p.cols["category"][pos]
    crm_prob = np.nan_to_num(p.cols["crm_probability"][pos])
    out = []
    for per in periods:
        a, b = _day(per.start), _day(per.end)
        if per.kind == "next_quarter":
            p_in = prob["next_quarter"] - prob["quarter"]
            won_sim = (u >= thr["quarter"][:, None]) & (u < thr["next_quarter"][:, None])
        else:
            p_in = prob[per.kind]
            won_sim = u < thr[per.kind][:, None]
        sel = (w_close >= a) & (w_close <= b)
        won_leaf = np.bincount(w_leaf[sel], weights=w_amount[sel], minlength=n_leaves)
        open_leaf = to_leaf @ (amount * p_in)
        sim_leaf = (amount_to_leaf @ won_sim.view(np.uint8)).astype(np.float64) * factor
        hist = _new_deal_history(p, d, per)
        if len(hist):
            new_leaf = hist.mean(axis=0)
            sim_leaf = sim_leaf + hist[pick % len(hist)].T
        else:
            new_leaf = np.zeros(n_leaves)
        in_period = (close >= a) & (close <= b)
        commit = to_leaf @ (amount * (in_period & (cat == COMMIT)))
        best = to_leaf @ (amount * (in_period & (cat == BEST_CASE)))
        weighted = to_leaf @ (amount * crm_prob * in_period)
        n_open = to_leaf @ np.ones(n_open_rows)
        n = len(series["level"])
        total_sim = levels @ (sim_leaf + won_leaf[:, None])
        qs = _quantiles(total_sim, (0.025, 0.1, 0.9, 0.975)) if simulations else np.zeros((4, n))
        won_s, open_s, new_s, commit_s, best_s, weighted_s, n_open_s = (
            levels @ np.column_stack([won_leaf, open_leaf, new_leaf, commit, best, weighted, n_open])).T
        length = b - a + 1
        cols = {
            **series,
            "period_type": np.full(n, "month" if per.kind == "month" else "quarter", dtype=object),
            "period_start": np.full(n, per.start, dtype=object), "period_end": np.full(n, per.end, dtype=object),
            "days_into_period": np.full(n, dd - a + 1),
            "pct_of_period_elapsed": np.full(n, min(max((dd - a + 1) / length, 0.0), 1.0)),
            "won_to_date": won_s, "open_pipeline_expected": open_s, "new_pipeline_expected": new_s,
            "projection": won_s + open_s + new_s, "lower_80": qs[1], "upper_80": qs[2], "lower_95": qs[0],
            "upper_95": qs[3], "commit_call": won_s + commit_s,
            "best_case_call": won_s + commit_s + best_s, "weighted_pipeline_call": won_s + weighted_s,
            "open_deals": np.rint(n_open_s).astype("int64"),
        }
        # a series with nothing in the period (no open deal, no win, no new-deal history) gets no row
        keep = (cols["projection"] != 0) | (cols["open_deals"] > 0) | (cols["commit_call"] != 0)
        out.append({k: v[keep] for k, v in cols.items()})
    rows = {k: np.concatenate([o[k] for o in out]) for k in out[0]}
    m = len(rows["level"])
    rows |= {"as_of_date": np.full(m, d, dtype=object), "model_trained_on": np.full(m, model.trained_on, dtype=object),
             "is_replay": np.full(m, is_replay, dtype=bool)}
    return rows


def rule_counts(p: Prepared, days: list[date], open_stages: set[str]) -> dict[str, int]:
    """How many open deal-days of the projected days each input rule applied to (the run summary's counts)."""
    s = p.snapshots[p.snapshots["day"].isin([_day(d) for d in days])]
    return {
        **p.rules,
        "open_deal_days": len(s),
        "missing_amount": int(s["amount"].isna().sum()),
        "close_date_in_past": int((s["close_day"] < s["day"]).sum()),
        "unknown_stage": int((~s["stage_name"].isin(open_stages)).sum()),
        "missing_crm_probability": int(s["crm_probability"].isna().sum()),
    }


def replay(p: Prepared, days: list[date], *, as_of: date, simulations: int = 1000, retrain_days: int = 7,
           max_iter: int = 100) -> tuple[pd.DataFrame, DealModel | None]:
    """Project every day in `days` (sorted), retraining every `retrain_days` on the outcomes known that day.

    The model for day d is trained on a fixed grid of training dates (multiples of `retrain_days` since
    1970-01-01) at or before d, so a day's rows do not depend on which other days are replayed.
    """
    levels, series = _level_matrix(p.leaves)
    series_cols = _series_arrays(series)
    by_model: dict[int, list[date]] = {}
    for d in days:
        dd = _day(d)
        if dd in p.by_day:
            by_model.setdefault(dd - dd % retrain_days, []).append(d)
    models: dict[int, DealModel] = {}
    frames, model = [], None
    for train_day, group in by_model.items():
        model = fit_with_shock(p, _date(train_day), retrain_days, models, max_iter=max_iter)
        for old in [k for k in models if k < train_day - SHOCK_STEPS * retrain_days]:
            del models[old]
        probs = predict_days(p, group, model)
        frames += [_day_arrays(p, d, model, simulations, d != as_of, levels, series_cols, probs[d]) for d in group]
    return _frame(frames), model


def replay_days(as_of: date, quarter_starts: list[date], quarters: int) -> list[date]:
    """Every day from the start of the fiscal quarter `quarters - 1` before as_of's through as_of."""
    current = [q for q in quarter_starts if q <= as_of]
    if not current:
        raise ProjectionError(f"marts.dim_dates: no fiscal quarter starts on or before {as_of}")
    start = current[max(0, len(current) - quarters)]
    return [start + timedelta(days=i) for i in range((as_of - start).days + 1)]


def model_card(model: DealModel, calib: dict[str, Any]) -> dict[str, Any]:
    """What is stored with the run beside the model: its features, training and calibration."""
    return {"trained_on": str(model.trained_on), "examples": model.examples, "features": list(FEATURES),
            "categorical": {c: model.vocab[c] for c in CATEGORICAL},
            "model": "HistGradientBoostingClassifier" if model.model is not None
            else "CRM probability (too few known outcomes, or no whole fiscal quarter of them yet)",
            "params": json.loads(json.dumps(model.model.get_params(), default=str)) if model.model is not None else {},
            "base_rate": model.base_rate, "shocks": model.shocks,
            "features_without_values": [FEATURES[i] for i in model.empty], "calibration": calib}
