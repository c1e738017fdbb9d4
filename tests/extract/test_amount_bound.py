"""Issue 22 case 10: an amount the loader accepts is carried exactly and passes the marts' checks.

Before: 999999999999999 passed the loader (bound 1e15) and then failed the attainment tests, whose
tolerance of one cent is tighter than a double ratio holds at that size; and the loader parsed amounts
through a double, so 1234567890123.45 reached raw as 1234567890123.449951.
"""

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest
import yaml

from salesos.extract.landing import archive_exports
from salesos.extract.load import MAX_ABS_NUMBER, load_raw

from ..conftest import OPPORTUNITIES, write_csv

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 11, 1, 2, 0, tzinfo=UTC)
CHECKS = {
    "mart_rep_performance_attainment_is_won_amount_over_quota": ("dbt_project/models/marts/_marts.yml", "won_amount"),
    "mart_quota_attainment_attainment_is_bookings_over_quota": (
        "dbt_project/models/marts/people/_people.yml",
        "booked_amount",
    ),
}
LARGEST = Decimal(MAX_ABS_NUMBER) - Decimal("0.01")  # the largest amount (in cents) the loader accepts


def _expression(path: str, name: str) -> str:
    models = yaml.safe_load((ROOT / path).read_text())["models"]
    for model in models:
        for test in model.get("data_tests", []):
            body = test.get("expression_is_true")
            if body and body.get("name") == name:
                return body["arguments"]["expression"]
    raise AssertionError(f"{name} not found in {path}")


@pytest.mark.parametrize("name", sorted(CHECKS))
@pytest.mark.parametrize("deals", [1, 7, 1000])  # one deal at the bound, and sums of many
@pytest.mark.parametrize("quota", ["0.01", "1", "48400.00", "7777777.77", str(LARGEST)])
def test_attainment_checks_hold_for_every_amount_the_loader_accepts(name, deals, quota):
    path, amount_column = CHECKS[name]
    expression = _expression(path, name)
    con = duckdb.connect()
    # the marts' types: amounts numeric(28, 6) (exact sums), attainment a double ratio (as the models compute it)
    row = con.execute(
        f"""select {expression} from (
            select a as {amount_column}, q as quota_amount, cast(a as double) / cast(q as double) as attainment
            from (select cast(? as numeric(28, 6)) * {deals} as a, cast(? as numeric(28, 6)) as q))""",
        [str(LARGEST), quota],
    ).fetchall()
    assert row == [(True,)]


def test_the_loader_carries_amounts_exactly_up_to_its_bound(tiny_exports, tmp_path):
    amounts = [str(LARGEST), "1234567890123.45", "0.01", "1000000000000000", "-0.00"]
    rows = [dict(OPPORTUNITIES[0], Id=f"006{i}", Amount=a) for i, a in enumerate(amounts)]
    write_csv(tiny_exports / "Opportunity.csv", rows)
    archive = tmp_path / "archive"
    con = duckdb.connect(str(tmp_path / "wh.duckdb"))
    load_raw(con, archive, archive_exports(tiny_exports, archive), "r1", NOW)
    assert con.execute("select amount from raw.opportunities order by _row_number").fetchall() == [
        ("999999999999999.990000",),
        ("1234567890123.450000",),
        ("0.010000",),
        ("0.000000",),
    ]
    assert con.execute("select _row_number, _reason from quarantine.opportunities").fetchall() == [
        (4, "number_out_of_range")
    ]
