"""Numbers credited to the team of the day: a rep who moves keeps last year's bookings in last year's team.

Two ways a move is known, both end to end: sales operations' user_assignments.csv (the XS sample moves a rep
mid-month; read from the shared `xs_night`, so it costs nothing here), and the snapshot of each night's User
export, over two nights: the first night only loads the exports and records the snapshot (what the second needs
from it), the second is a full night. The cases in between (gaps, a re-run, the quota month, a mid-month move,
the call's snapshot date) are dbt unit tests (`_intermediate_unit_tests.yml`, `_int_people_unit_tests.yml`,
`_people_unit_tests.yml`, `_int_forecast.yml`).
"""

from __future__ import annotations

import copy
import shutil
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


SETTINGS = Path(__file__).parents[1] / "fast_settings.yml"


def _night(exports: Path, warehouse: Path, as_of: date) -> RunContext:
    """A night without the forecast (it adds nothing here): extract, validate, build, publish."""
    ctx = RunContext.create(as_of=as_of, exports=exports, warehouse=warehouse, settings_file=SETTINGS)
    for step in (pipeline.extract, pipeline.validate, pipeline.build, pipeline.publish):
        step(ctx)
    return ctx


def _snapshot_night(exports: Path, warehouse: Path, as_of: date) -> None:
    """The part of a night the next one reads the team history from: load the exports, record the User snapshot
    (dbt builds only the snapshot and what it selects from), and leave the build copy where the next night's
    extract starts (a published warehouse). A full night's publish is the second night's."""
    from salesos.settings import load_settings
    from salesos.transform.dbt_build import run_dbt

    ctx = RunContext.create(as_of=as_of, exports=exports, warehouse=warehouse, settings_file=SETTINGS)
    pipeline.extract(ctx)
    run_dbt(["build", "--select", "+snp_crm__users", "--resource-type", "model", "--resource-type", "snapshot"],
            warehouse=ctx.build_warehouse, run_dir=ctx.run_dir, settings=load_settings(SETTINGS),
            as_of=as_of.isoformat())
    warehouse.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(ctx.build_warehouse, warehouse)


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
    _snapshot_night(day1, warehouse, NIGHT1)
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


def test_the_samples_moved_rep_keeps_the_past_in_the_old_team(xs_night):
    """The XS sample's user_assignments.csv moves a rep mid-month: every number before the move stays the old
    team's (deals, win rates, quota attainment, the bookings series), every number after is the new team's."""
    moves = _rows(xs_night, """
        select old.rep_id, old.team_id, old.region, new.team_id, new.region, new.valid_from
        from intermediate.int_users__assignment_history as old
        inner join intermediate.int_users__assignment_history as new
            on old.rep_id = new.rep_id and new.version_number = old.version_number + 1
        where old.team_id is distinct from new.team_id""")
    assert moves, "the sample moves no rep between teams"
    rep, old_team, old_region, new_team, new_region, moved_on = moves[0]
    assert old_team != new_team and old_region != new_region
    deals = _rows(xs_night, f"""
        select close_date < '{moved_on}', team_id, region, current_team_id, count(*)
        from marts.fct_opportunities where owner_id = '{rep}' and is_closed group by all order by all""")
    assert deals[0][:4] == (False, new_team, new_region, new_team) and deals[1][:4] == (True, old_team, old_region,
                                                                                     new_team)
    assert len(deals) == 2 and min(d[4] for d in deals) > 0
    # the fiscal year before the move: the rep's bookings are all the old team's, in every mart that has a team
    year_start = _rows(xs_night, f"""
        select max(period_start) from marts.mart_quota_attainment
        where period_type = 'year' and period_start <= cast('{moved_on}' as date) - interval 1 year""")[0][0]
    won_last_year = _rows(xs_night, f"""
        select team_id, sum(amount) from marts.fct_opportunities
        where owner_id = '{rep}' and status = 'won' and close_date >= '{year_start}'
          and close_date < cast('{year_start}' as date) + interval 1 year group by all""")
    assert [t for t, _ in won_last_year] == [old_team]
    by_team = dict(_rows(xs_night, f"""
        select team_id, sum(won_amount) from marts.mart_win_rates
        where owner_id = '{rep}' and fiscal_month >= '{year_start}'
          and fiscal_month < cast('{year_start}' as date) + interval 1 year group by all"""))
    assert by_team == {old_team: won_last_year[0][1]}
    quota_rep = _rows(xs_night, f"""
        select team_id, current_team_id, booked_amount from marts.mart_quota_attainment
        where level = 'rep' and level_id = '{rep}' and period_type = 'year' and period_start = '{year_start}'""")
    assert quota_rep == [(old_team, new_team, won_last_year[0][1])]
    # the team series the forecast trains on: the old team's year holds the rep's bookings, the new team's not
    series = dict(_rows(xs_night, f"""
        select series_key, sum(bookings) from marts.fct_bookings_monthly
        where level = 'team' and series_key in ('{old_team}', '{new_team}')
          and month_start >= '{year_start}' and month_start < cast('{year_start}' as date) + interval 1 year
        group by all"""))
    team_deals = dict(_rows(xs_night, f"""
        select team_id, sum(amount) from marts.fct_opportunities
        where status = 'won' and team_id in ('{old_team}', '{new_team}') and close_date >= '{year_start}'
          and close_date < cast('{year_start}' as date) + interval 1 year group by all"""))
    assert series == pytest.approx(team_deals)
    assert series[old_team] >= won_last_year[0][1]
