"""Each metric is defined once: every MetricFlow metric equals the mart column that carries it, at every grain.

The metrics say which mart columns carry them (`config.meta.carried_by` in dbt_project/models/semantic/*.yml, read
here from the semantic manifest the night stored in its warehouse). This file knows each mart's grains: its own
rows (e.g. win rate per rep, fiscal month, segment, lead source and deal type) and, where the mart's rows add up,
the coarser grains a BI tool would roll them up to (win rate per rep and fiscal quarter recomputed from the
mart's counts, never an average of its rates); mart_quota_attainment and fct_bookings_monthly carry the levels of
the hierarchy and the fiscal periods as rows of their own. A metric carried by a mart this file does not know
fails, so a new metric cannot go untested.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pytest

from salesos.hierarchy import hierarchy
from salesos.semantic import SemanticLayer

pytestmark = pytest.mark.e2e

MISSING = hierarchy().missing_member
FISCAL_QUARTER = "'FY' || cast(fiscal_year as varchar) || '-Q' || cast(fiscal_quarter as varchar)"
FISCAL_YEAR = "'FY' || cast(fiscal_year as varchar)"
PERIOD_GROUP_BY = {"month": "metric_time__month", "quarter": "metric_time__fiscal_quarter",
                   "year": "metric_time__fiscal_year"}
PERIOD_KEY = {"month": "period_start", "quarter": FISCAL_QUARTER, "year": FISCAL_YEAR}
LAST_DAY_OF_MONTH = ("snapshot_date in (select max(snapshot_date) from marts.mart_pipeline "
                     "group by date_trunc('month', snapshot_date))")
# How MetricFlow reaches a level of the hierarchy: the team of the day is the entities `team` and `region`
# that deals, quotas, velocity and commissions share (each fact's own date), the segment a deal's account's.
# Today's tree (rep__current_*, deal__current_*) is compared nowhere: no mart credits a number to it.
DEAL_LEVEL = {"region": "region", "segment": "deal__segment", "team": "team", "rep": "rep"}
REP_LEVEL = {"region": "region", "team": "team", "rep": "rep"}


@dataclass(frozen=True)
class Grain:
    """Rows of a mart at one grain: `keys` (SQL over the mart) line up with MetricFlow's `group_by`."""

    group_by: tuple[str, ...]
    keys: tuple[str, ...]
    where: str = "true"
    rollup: bool = False  # sum the mart's rows up to `keys`, rates recomputed by ROLLUP[mart]
    mf_where: tuple[str, ...] = ()


def _quota_grains() -> list[Grain]:
    grains = []
    for level in hierarchy().names:
        if level == "segment":
            continue  # mart_quota_attainment has no segment level (quotas belong to reps)
        by = () if level == "company" else (REP_LEVEL[level],)
        for period, period_by in PERIOD_GROUP_BY.items():
            keys = () if level == "company" else ("level_id",)
            grains.append(Grain((*by, period_by), (*keys, PERIOD_KEY[period]),
                                f"level = '{level}' and period_type = '{period}'"))
    return grains


def _bookings_grains() -> list[Grain]:
    return [Grain(() if level == "company" else (DEAL_LEVEL[level], "metric_time__month"),
                  () if level == "company" else ("series_key", "month_start"), f"level = '{level}'")
            if level != "company" else Grain(("metric_time__month",), ("month_start",), "level = 'company'")
            for level in hierarchy().names]


GRAINS: dict[str, list[Grain]] = {
    "mart_win_rates": [
        # its own rows: a rep who moved mid-month has a row for each team of the month
        Grain(("metric_time__month", "rep", "team", "deal__segment", "deal__lead_source", "deal__opportunity_type"),
              ("fiscal_month", "owner_id", "team_id", "segment", "lead_source", "opportunity_type")),
        Grain(("rep", "metric_time__fiscal_quarter"), ("owner_id", FISCAL_QUARTER), rollup=True),
        Grain(("team", "metric_time__fiscal_year"), ("team_id", FISCAL_YEAR), rollup=True),
        Grain(("region", "metric_time__month"), ("region", "fiscal_month"), rollup=True),
        Grain(("deal__segment", "metric_time__fiscal_quarter"), ("segment", FISCAL_QUARTER), rollup=True),
        Grain(("metric_time__fiscal_year",), (FISCAL_YEAR,), rollup=True),
    ],
    "mart_pipeline": [
        Grain(("metric_time__day", "rep", "pipeline_snapshot__stage_name", "pipeline_snapshot__forecast_category"),
              ("snapshot_date", "owner_id", "stage_name", "forecast_category")),
        # a month's pipeline is its last snapshot day's (semi-additive: summed over reps and stages, not days)
        Grain(("metric_time__month",), ("date_trunc('month', snapshot_date)",), LAST_DAY_OF_MONTH, rollup=True),
        Grain(("rep", "metric_time__month"), ("owner_id", "date_trunc('month', snapshot_date)"), LAST_DAY_OF_MONTH,
              rollup=True),
    ],
    "mart_rep_performance": [Grain(("rep", "metric_time__month"), ("owner_id", "fiscal_month"))],
    "mart_quota_attainment": _quota_grains(),
    "fct_bookings_monthly": _bookings_grains(),
    "mart_rep_scorecard": [Grain(("rep", "metric_time__month"), ("owner_id", "fiscal_month"))],
    "mart_sales_velocity": [
        Grain(("rep", "metric_time__month"), ("owner_id", "fiscal_month")),
        Grain(("rep", "metric_time__fiscal_quarter"), ("owner_id", FISCAL_QUARTER), rollup=True),
        Grain(("team", "metric_time__fiscal_year"), ("team_id", FISCAL_YEAR), rollup=True),
        Grain(("metric_time__fiscal_quarter",), (FISCAL_QUARTER,), rollup=True),
    ],
    "mart_activity": [
        Grain(("rep", "metric_time__week"), ("owner_id", "week_start")),
        Grain(("metric_time__week",), ("week_start",), rollup=True),
    ],
    "mart_commissions": [
        Grain(("rep", "metric_time__month"), ("owner_id", "fiscal_month")),
        Grain(("rep", "metric_time__fiscal_quarter"), ("owner_id", FISCAL_QUARTER), rollup=True),
        Grain(("region", "metric_time__fiscal_year"), ("region", FISCAL_YEAR), rollup=True),
    ],
    "mart_lead_funnel": [
        Grain(("metric_time__month", "lead__lead_source", "rep"), ("lead_month", "lead_source", "owner_id")),
        Grain(("rep", "metric_time__fiscal_quarter"), ("owner_id", FISCAL_QUARTER), rollup=True),
    ],
    "mart_forecast_accuracy_summary": [
        Grain(("forecast_score__level", "forecast_score__horizon", "forecast_score__model"),
              ("level", "horizon", "model"), "model <> 'selected'"),
        Grain(("forecast_score__level", "forecast_score__horizon"), ("level", "horizon"), "model = 'selected'",
              mf_where=("{{ Dimension('forecast_score__is_selected') }}",)),
    ],
}

# Rolled up, a mart's additive columns are summed and its rates recomputed from them, as a BI tool should.
# A column missing here (a median, a rate of the mart's own grain only) is compared at the mart's rows only.
ROLLUP: dict[str, dict[str, str]] = {
    "mart_win_rates": {
        "win_rate": "sum(won_count) / nullif(sum(won_count + lost_count), 0)",
        "win_rate_amount": "sum(won_amount) / nullif(sum(won_amount + lost_amount), 0)",
    },
    "mart_sales_velocity": {
        "win_rate": "sum(won_count) / nullif(sum(won_count + lost_count), 0)",
        "average_deal_size": "sum(won_amount) / nullif(sum(won_with_amount_count), 0)",
        "average_cycle_days": "sum(won_cycle_days_sum) / nullif(sum(won_with_cycle_count), 0)",
        "sales_velocity": "sum(qualified_count) * (sum(won_count) / nullif(sum(won_count + lost_count), 0))"
                          " * (sum(won_amount) / nullif(sum(won_with_amount_count), 0))"
                          " / nullif(sum(won_cycle_days_sum) / nullif(sum(won_with_cycle_count), 0), 0)",
    },
    "mart_lead_funnel": {"contact_rate": "sum(contacted_count) / nullif(sum(lead_count), 0)"},
}
NOT_ADDITIVE = {("mart_lead_funnel", "median_response_hours"), ("mart_lead_funnel", "p90_response_hours")}


def _carriers(layer: SemanticLayer) -> dict[str, list[tuple[str, str]]]:
    """mart -> [(column, metric)] from the stored manifest's carried_by."""
    out: dict[str, list[tuple[str, str]]] = {}
    for m in layer.manifest["metrics"]:
        for carrier in ((m.get("config") or {}).get("meta") or {}).get("carried_by") or []:
            mart, column = carrier.split(".")
            out.setdefault(mart, []).append((column, m["name"]))
    return out


def _key(value: Any) -> Any:
    if value is None:
        return MISSING
    if isinstance(value, datetime):
        return value.date()
    return str(value) if not isinstance(value, date) else value


def _number(value: Any) -> float | None:
    return None if value is None else float(value) if isinstance(value, Decimal | int | float) else value


def _same(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-6)


def _mart_rows(con: duckdb.DuckDBPyConnection, mart: str, grain: Grain, columns: list[str]) -> dict[tuple, list]:
    if grain.rollup:
        rules = ROLLUP.get(mart, {})
        values = [f"cast({rules.get(c, f'sum({c})')} as double) as {c}" for c in columns]
    else:
        values = [f"cast({c} as double) as {c}" for c in columns]
    keys = [f"{k} as k{i}" for i, k in enumerate(grain.keys)]
    group = f" group by {', '.join(str(i + 1) for i in range(len(keys)))}" if grain.rollup and keys else ""
    sql = f"select {', '.join([*keys, *values])} from marts.{mart} where {grain.where}{group}"
    rows = con.execute(sql).fetchall()
    n = len(keys)
    out = {tuple(_key(v) for v in row[:n]): [_number(v) for v in row[n:]] for row in rows}
    assert len(out) == len(rows), f"{mart}: the keys {grain.keys} are not the grain of its rows ({grain.where})"
    return out


def _missing_value(layer: SemanticLayer, metric: str) -> float | None:
    """What MetricFlow's missing row stands for: 0 for a sum (fill_nulls_with 0), no value for a rate."""
    m = next(m for m in layer.manifest["metrics"] if m["name"] == metric)
    if m["type"] == "simple":
        return 0.0 if (m["type_params"].get("measure") or {}).get("fill_nulls_with") == 0 else None
    if m["type"] == "derived" and m["name"] in ("closed_deals", "closed_amount"):
        return 0.0
    return None


def _compare(layer: SemanticLayer, con: duckdb.DuckDBPyConnection, mart: str, grain: Grain,
             carried: list[tuple[str, str]]) -> tuple[list[str], int]:
    """The differences at one grain, and how many mart values were compared."""
    columns = [c for c, _ in carried if not (grain.rollup and (mart, c) in NOT_ADDITIVE)]
    metrics = [m for c, m in carried if c in columns]
    if not metrics:
        return [], 0
    expected = _mart_rows(con, mart, grain, columns)
    assert expected, f"{mart} has no rows at {grain}"
    result = layer.query(metrics, grain.group_by, where=grain.mf_where)
    index = {name: i for i, name in enumerate(result.columns)}
    got = {tuple(_key(row[index[g.split("__")[-1] if g not in index else g]]) for g in grain.group_by):
           [_number(row[index[m]]) for m in metrics] for row in result.rows}
    problems = []
    for key, values in expected.items():
        mf = got.get(key) or [_missing_value(layer, m) for m in metrics]
        for metric, column, want, have in zip(metrics, columns, values, mf, strict=True):
            if not _same(want, have):
                problems.append(f"{metric} vs {mart}.{column} at {dict(zip(grain.group_by, key, strict=True))}: "
                                f"MetricFlow {have}, mart {want}")
    return problems, len(expected) * len(metrics)


def check_every_metric_against_its_marts(warehouse: Path) -> tuple[list[str], int]:
    """All differences found, and how many mart values were compared."""
    problems: list[str] = []
    compared = 0
    with SemanticLayer(warehouse) as layer:
        con = duckdb.connect(str(warehouse), read_only=True)
        try:
            carriers = _carriers(layer)
            assert set(carriers) <= set(GRAINS), f"marts without known grains: {set(carriers) - set(GRAINS)}"
            for mart, carried in sorted(carriers.items()):
                have = {r[0] for r in con.execute("select column_name from information_schema.columns "
                                                  "where table_schema = 'marts' and table_name = ?",
                                                  [mart]).fetchall()}
                problems += [f"{mart} has no column {c} (carried_by of {m})" for c, m in carried if c not in have]
                for grain in GRAINS[mart]:
                    found, n = _compare(layer, con, mart, grain, carried)
                    problems += found
                    compared += n
        finally:
            con.close()
    return problems, compared


def test_every_metricflow_metric_equals_the_mart_columns_that_carry_it(xs_night):
    problems, compared = check_every_metric_against_its_marts(xs_night)
    assert compared > 10_000
    assert problems == [], f"{len(problems)} differences, e.g.:\n" + "\n".join(problems[:25])


def test_every_metric_is_carried_by_a_mart_or_feeds_one(xs_night):
    """A metric without carried_by is only a numerator or denominator of one that has it."""
    with SemanticLayer(xs_night) as layer:
        carried = {m for ms in _carriers(layer).values() for _, m in ms}
        inputs = set()
        for m in layer.manifest["metrics"]:
            if m["name"] in carried:
                params = m["type_params"]
                inputs |= {(params.get(k) or {}).get("name") for k in ("numerator", "denominator")}
                inputs |= {x["name"] for x in params.get("metrics") or []}
        loose = sorted(m["name"] for m in layer.manifest["metrics"] if m["name"] not in carried | inputs)
    assert loose == []
