"""The semantic layer's yml: every metric says which mart column carries it, and the docs name every metric."""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
SEMANTIC = ROOT / "dbt_project" / "models" / "semantic"
MODELS = ROOT / "dbt_project" / "models"


def _load(kind: str) -> list[dict]:
    return [item for p in sorted(SEMANTIC.glob("*.yml")) for item in (yaml.safe_load(p.read_text()) or {}).get(kind)
            or []]


def _documented_columns() -> dict[str, set[str]]:
    columns: dict[str, set[str]] = {}
    for p in MODELS.rglob("*.yml"):
        for m in (yaml.safe_load(p.read_text()) or {}).get("models") or []:
            columns.setdefault(m["name"], set()).update(c["name"] for c in m.get("columns") or [])
    return columns


def test_metric_names_are_unique_and_every_metric_has_a_label_and_description_or_carrier():
    metrics = _load("metrics")
    names = [m["name"] for m in metrics]
    assert len(names) == len(set(names))
    assert len(names) >= 20
    for m in metrics:
        assert m.get("label"), m["name"]


def test_every_carried_by_names_a_mart_model():
    """carried_by is what the MetricFlow-equals-mart test checks (which also finds each column in the warehouse)."""
    documented = _documented_columns()
    for m in _load("metrics"):
        for carrier in ((m.get("config") or {}).get("meta") or {}).get("carried_by") or []:
            mart, column = carrier.split(".")
            assert mart in documented, f"{m['name']}: no model {mart}"
            assert mart.startswith(("mart_", "fct_")), f"{m['name']}: {mart} is not a mart"
            assert column, carrier


def test_the_issue_metrics_are_all_there_and_carried():
    """Bookings, pipeline, win rates, attainment, coverage, cycle, deal size, velocity, lead response, meetings,
    commissions and forecast error: each is a metric that a mart column carries."""
    carried = {m["name"] for m in _load("metrics") if ((m.get("config") or {}).get("meta") or {}).get("carried_by")}
    for name in ("bookings", "pipeline", "open_pipeline", "win_rate", "win_rate_by_amount", "quota_attainment",
                 "pipeline_coverage", "average_sales_cycle_days", "average_deal_size", "sales_velocity",
                 "lead_response_hours_median", "meetings", "commissions", "forecast_wape", "forecast_bias"):
        assert name in carried, name


def test_ratios_are_ratios_of_metrics_never_averages():
    """A rate is recomputed from its numerator and denominator at every grain: no measure averages a column."""
    for model in _load("semantic_models"):
        for measure in model.get("measures") or []:
            assert measure["agg"] in ("sum", "count", "count_distinct", "median", "percentile", "min", "max"), \
                f"{model['name']}.{measure['name']}: agg {measure['agg']}"


def test_docs_name_every_metric():
    text = (ROOT / "docs" / "metrics.md").read_text(encoding="utf-8")
    missing = [m["name"] for m in _load("metrics") if f"`{m['name']}`" not in text]
    assert missing == [], f"docs/metrics.md does not name the MetricFlow metrics {missing}"


def test_the_time_spine_has_the_fiscal_periods():
    spine = next(m for p in SEMANTIC.glob("*.yml") for m in (yaml.safe_load(p.read_text()) or {}).get("models") or []
                 if m.get("time_spine"))
    assert {g["name"] for g in spine["time_spine"]["custom_granularities"]} == {"fiscal_quarter", "fiscal_year"}
