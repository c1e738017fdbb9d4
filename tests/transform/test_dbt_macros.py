"""Rules written once as dbt macros (issue 20): no model writes them out again by hand."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MODELS = ROOT / "dbt_project" / "models"


def _models() -> dict[str, str]:
    return {p.relative_to(MODELS).as_posix(): p.read_text(encoding="utf-8") for p in MODELS.rglob("*.sql")}


def test_every_rate_goes_through_ratio():
    """A guarded division (`case when d > 0 then n / d end`) is the ratio() macro's rule written again."""
    guarded = re.compile(r"when\s+[^\n]*(?:>|<>|!=)\s*0\s+then\s+[^\n]*\S\s*/\s*\S", re.IGNORECASE)
    assert [name for name, sql in _models().items() if guarded.search(sql)] == []
    # win_rates() is ratio() of won over won + lost, by count and by amount (macros/metrics.sql)
    users = sorted(name.rsplit("/", 1)[-1] for name, sql in _models().items()
                   if "ratio(" in sql or "win_rates(" in sql)
    for mart in ("mart_rep_performance.sql", "mart_win_rates.sql", "mart_sales_velocity.sql",
                 "mart_quota_attainment.sql", "mart_stage_conversion.sql", "mart_forecast_accuracy.sql"):
        assert mart in users


def test_the_win_rates_are_ratio_of_won_over_closed():
    macro = (ROOT / "dbt_project" / "macros" / "metrics.sql").read_text(encoding="utf-8")
    body = macro[macro.index("macro win_rates("):]
    body = body[:body.index("endmacro")]
    assert "salesos.ratio(won_count, won_count ~ ' + ' ~ lost_count)" in body
    assert "salesos.ratio(won_amount, won_amount ~ ' + ' ~ lost_amount)" in body
    assert [n for n, sql in _models().items() if "won_amount + lost_amount')" in sql] == []  # not by hand again


def test_the_ratio_rule_is_null_unless_the_denominator_is_positive():
    macro = (ROOT / "dbt_project" / "macros" / "metrics.sql").read_text(encoding="utf-8")
    assert re.search(r"when \(\{\{ denominator \}\}\) > 0\s+then cast", macro)
    assert "ratio(" in (ROOT / ".sqlfluff").read_text(encoding="utf-8")  # the lint stub renders the same shape


def test_the_currency_rule_is_written_once():
    """Reporting currency at 1, else the rate in force on the close date: the macros of currency.sql, nowhere else."""
    by_hand = re.compile(r"valid_to\s+is\s+null|then\s+1\s+else\s+[a-z_.]*rate\b", re.IGNORECASE)
    models = _models()
    assert [name for name, sql in models.items() if by_hand.search(sql)] == []
    assert models["intermediate/int_opportunities__converted.sql"].count("fx_rate(") == 1
    snapshots = models["marts/pipeline/fct_pipeline_snapshots.sql"]
    assert snapshots.count("fx_rate(") == 2 and snapshots.count("fx_rate_in_force(") == 2


def test_the_team_of_the_day_is_joined_by_the_assignment_macros_only():
    """The join on int_users__assignment_history and the team-of-the-day columns are macros/assignments.sql's;
    a model that wrote the date range again could credit a number to a different team than the others."""
    by_hand = re.compile(r"assignments\.(valid_from|valid_to|rep_id)\b", re.IGNORECASE)
    models = _models()
    source = "intermediate/int_users__assignment_history.sql"  # builds the history (its input is `assignments`)
    assert [name for name, sql in models.items() if name != source and by_hand.search(sql)] == []
    joined = sorted(name.rsplit("/", 1)[-1] for name, sql in models.items() if "join_owner_and_assignment(" in sql)
    assert joined == sorted(["int_opportunities__converted.sql", "int_quotas__resolved.sql",
                             "int_forecast__call_pipeline.sql", "mart_rep_performance.sql",
                             "mart_sales_velocity.sql", "mart_lead_funnel.sql"])
    for name in joined:
        assert "attribution_columns(" in models[next(k for k in models if k.endswith(name))], name
