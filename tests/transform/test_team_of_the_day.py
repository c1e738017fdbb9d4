"""Numbers credited to the team of the day, over two real nights: a rep who moves keeps last year's bookings in last
year's team, though no assignment file says so (the snapshot of each night's User export does)."""

from __future__ import annotations

import copy
from datetime import date
from pathlib import Path

import duckdb
import pytest

from salesos import pipeline
from salesos.run_context import RunContext
from tests.conftest import ACCOUNTS, QUOTAS, USERS, _opp, write_csv

pytestmark = pytest.mark.e2e

NIGHT1, NIGHT2 = date(2026, 9, 30), date(2026, 10, 31)
EVE = {"Id": "005E", "Name": "Eve Manager", "Email": "eve@example.com", "ManagerId": "", "UserRoleId": "00E1",
       "Division": "North America", "Department": "SMB", "IsActive": "true",
       "CreatedDate": "2022-01-03T09:00:00.000Z"}


def _deal(id_: str, stage: str, amount: str, close: str, closed: str, won: str, modified: str) -> dict:
    return _opp(id_, "005B", "001A", stage, amount, close, "2025-06-01T10:00:00.000Z", closed, won,
                "100" if won == "true" else "0") | {"LastModifiedDate": modified}


def _exports(folder: Path, *, bob_manager: str, bob_division: str, deals: list[dict]) -> Path:
    folder.mkdir(parents=True)
    users = [*copy.deepcopy(USERS), EVE]
    for u in users:
        if u["Id"] == "005B":
            u["ManagerId"], u["Division"] = bob_manager, bob_division
    write_csv(folder / "User.csv", users)
    write_csv(folder / "Account.csv", ACCOUNTS)
    write_csv(folder / "Opportunity.csv", deals)
    last_year_quota = {"owner_id": "005B", "period_start": "2025-11-01", "quota_amount": "4000"}
    write_csv(folder / "quotas.csv", [*QUOTAS, last_year_quota])
    return folder


def _night(exports: Path, warehouse: Path, as_of: date) -> RunContext:
    """A night without the forecast (it adds nothing here): extract, validate, build, publish."""
    ctx = RunContext.create(as_of=as_of, exports=exports, warehouse=warehouse,
                            settings_file=Path(__file__).parents[1] / "fast_settings.yml")
    for step in (pipeline.extract, pipeline.validate, pipeline.build, pipeline.publish):
        step(ctx)
    return ctx


@pytest.fixture(scope="module")
def two_nights(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("team_of_the_day")
    last_year = _deal("006L", "Closed Won", "4000.00", "2025-11-10", "true", "true", "2025-11-10T10:00:00.000Z")
    september = _deal("006S", "Closed Won", "1500.00", "2026-09-15", "true", "true", "2026-09-15T10:00:00.000Z")
    open_deal = _deal("006O", "Qualification", "900.00", "2026-12-15", "false", "false", "2026-09-29T10:00:00.000Z")
    after_move = _deal("006N", "Closed Won", "700.00", "2026-10-31", "true", "true", "2026-10-31T10:00:00.000Z")
    # night 1: Bob sells in Ada's EMEA team; night 2: Bob's User row names Eve (North America)
    day1 = _exports(root / "day1", bob_manager="005A", bob_division="EMEA", deals=[last_year, september, open_deal])
    day2 = _exports(root / "day2", bob_manager="005E", bob_division="North America",
                    deals=[last_year, september, open_deal, after_move])
    warehouse = root / "wh" / "salesos.duckdb"
    _night(day1, warehouse, NIGHT1)
    _night(day2, warehouse, NIGHT2)
    return warehouse


def _rows(warehouse: Path, sql: str) -> list[tuple]:
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def test_the_history_of_bobs_team_survives_from_night_to_night(two_nights):
    versions = _rows(two_nights, "select manager_id, division, cast(dbt_valid_from as date), cast(dbt_valid_to as date) "
                                 "from snapshots.snp_crm__users where user_id = '005B' order by dbt_valid_from")
    assert versions == [("005A", "EMEA", NIGHT1, NIGHT2), ("005E", "North America", NIGHT2, None)]


def test_a_moved_rep_keeps_last_years_bookings_in_last_years_team(two_nights):
    deals = _rows(two_nights, "select opportunity_id, team_name, region, current_team_name, current_region "
                              "from marts.fct_opportunities where owner_id = '005B' order by opportunity_id")
    assert deals == [
        ("006L", "Ada Manager", "EMEA", "Eve Manager", "North America"),  # won last year, in Ada's team
        ("006N", "Eve Manager", "North America", "Eve Manager", "North America"),  # won the night the move was seen
        ("006O", "Eve Manager", "North America", "Eve Manager", "North America"),  # open: today's team
        ("006S", "Ada Manager", "EMEA", "Eve Manager", "North America"),  # won before the move was seen
    ]
    # last fiscal year (February 2025 to January 2026): Bob's bookings and quota are Ada's team's and EMEA's
    year = _rows(two_nights, "select level, level_id, booked_amount, quota_amount from marts.mart_quota_attainment "
                             "where period_type = 'year' and period_start = '2025-02-01' and level in ('team', 'region') "
                             "order by level, level_id")
    assert year == [("region", "EMEA", 4000, 4000), ("team", "005A", 4000, 4000)]
    rep = _rows(two_nights, "select team_id, region, current_team_id, current_region from marts.mart_quota_attainment "
                            "where level = 'rep' and level_id = '005B' and period_type = 'month' "
                            "and period_start = '2025-11-01'")
    assert rep == [("005A", "EMEA", "005E", "North America")]
    wins = _rows(two_nights, "select fiscal_month, team_name, current_team_name, won_amount from marts.mart_win_rates "
                             "where owner_id = '005B' order by fiscal_month")
    assert [(str(m), t, c, float(a)) for m, t, c, a in wins] == [
        ("2025-11-01", "Ada Manager", "Eve Manager", 4000.0),
        ("2026-09-01", "Ada Manager", "Eve Manager", 1500.0),
        ("2026-10-01", "Eve Manager", "Eve Manager", 700.0),
    ]
