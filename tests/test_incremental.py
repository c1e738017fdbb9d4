"""An incremental night gives the warehouse a full rebuild of the same exports would give.

Night 1 loads and builds day-1 exports in full; night 2 loads day-2 exports (day 1 plus one day of
new, changed and deleted records, made by `next_day_exports`) incrementally and builds the dbt
models incrementally. A second warehouse gets a full build of the day-2 exports. Every mart and fact
table must hold the same rows in both (EXCEPT ALL both ways, load metadata aside).

Marked e2e: three dbt runs on scale S.
"""

from __future__ import annotations

import math
import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from datetime import date, timedelta
from pathlib import Path

import duckdb
import pytest

DAY1 = date(2026, 10, 30)
DAY2 = DAY1 + timedelta(days=1)
SETTINGS = Path(__file__).with_name("fast_settings.yml")

pytestmark = pytest.mark.e2e


def _csv(path: Path) -> str:
    return f"read_csv('{path}', all_varchar=true, header=true, quote='\"', escape='\"')"


def _write(con: duckdb.DuckDBPyConnection, sql: str, out: Path) -> None:
    con.execute(f"copy ({sql}) to '{out}' (header, force_quote *)")


def next_day_exports(src: Path, dst: Path, day: date, share: int = 50) -> dict[str, int]:
    """Write `dst`: the exports of `src` one CRM day later (`day`), returning the rows touched per file.

    Deterministic (picks rows by a hash of their Id). About 1 in `share` open deals moves one stage on
    (closing won at the last stage), with the history row the CRM writes; 1 in `share` open deals gets
    a new owner and 1 in `share` a pushed close date (history row too); one deal per owner-day is
    created; 1 in 5*`share` open deals and tasks are deleted (gone from the export), and 1 in 100*`share`
    closed deals (a rare correction: deleting 1 in 250 of all deals every day would delete every deal
    within a year); accounts change head count; leads convert; tasks complete; calls, emails and meetings
    are added for the day.
    """
    dst.mkdir(parents=True, exist_ok=True)
    ts = f"{day.isoformat()}T10:00:00.000Z"
    d = day.isoformat()
    con = duckdb.connect()
    touched: dict[str, int] = {}
    try:
        opp, hist = _csv(src / "Opportunity.csv"), _csv(src / "OpportunityHistory.csv")
        stages = [
            "Prospecting", "Qualification", "Needs Analysis", "Value Proposition", "Id. Decision Makers",
            "Perception Analysis", "Proposal/Price Quote", "Negotiation/Review", "Closed Won",
        ]
        probs = [10, 20, 30, 40, 50, 60, 75, 90, 100]
        cats = ["Pipeline"] * 4 + ["Best Case"] * 3 + ["Commit", "Closed"]
        con.execute(
            "create table stages as select * from (values "
            + ", ".join(f"({i}, '{s}', '{probs[i]}', '{cats[i]}')" for i, s in enumerate(stages))
            + ") v(i, stage, prob, cat)"
        )
        con.execute(f"create table o as select * from {opp}")
        con.execute(f"create table h as select * from {hist}")
        con.execute("create table owners as select distinct OwnerId from o where IsClosed = 'false' order by 1")
        # moves: next stage; pushes: close date + 30 days; new owners
        con.execute(
            f"""create table moved as
            select o.Id, n.stage, n.prob, n.cat,
                   case when hash(o.Id || 'push') % {share} = 0
                        then strftime(cast(o.CloseDate as date) + interval 30 day, '%Y-%m-%d')
                        when n.stage = 'Closed Won' then '{d}' else o.CloseDate end as close_date
            from o join stages s on o.StageName = s.stage join stages n on n.i = s.i + 1
            where o.IsClosed = 'false' and o.IsDeleted = 'false'
              and (hash(o.Id || 'move') % {share} = 0 or hash(o.Id || 'push') % {share} = 0)"""
        )
        con.execute(
            f"""create table reassigned as
            select o.Id, (select OwnerId from owners order by hash(owners.OwnerId || o.Id) limit 1) as owner
            from o where o.IsClosed = 'false' and hash(o.Id || 'owner') % {share} = 0"""
        )
        con.execute(
            """create table born as
            select '006NEW' || lpad(cast(row_number() over (order by OwnerId) as varchar), 12, '0') as Id, OwnerId,
                   (select AccountId from o where o.OwnerId = owners.OwnerId and AccountId is not null
                    order by Id limit 1) as AccountId
            from owners"""
        )
        con.execute(
            f"""create table o2 as
            select o.Id, o.AccountId, coalesce(r.owner, o.OwnerId) as OwnerId, o.Name,
                   coalesce(m.stage, o.StageName) as StageName, o.Amount, coalesce(m.prob, o.Probability) as Probability,
                   coalesce(m.cat, o.ForecastCategoryName) as ForecastCategoryName,
                   coalesce(m.close_date, o.CloseDate) as CloseDate, o.CreatedDate,
                   case when m.stage = 'Closed Won' then 'true' else o.IsClosed end as IsClosed,
                   case when m.stage = 'Closed Won' then 'true' else o.IsWon end as IsWon,
                   o.IsDeleted, o.Type, o.LeadSource, o.CurrencyIsoCode,
                   case when m.Id is not null or r.Id is not null then '{ts}' else o.LastModifiedDate end
                       as LastModifiedDate,
                   o.Competitor__c
            from o left join moved m on o.Id = m.Id left join reassigned r on o.Id = r.Id
            where hash(o.Id || 'gone') % (case when o.IsClosed = 'true' then {100 * share} else {5 * share} end) <> 0
            union all
            select Id, AccountId, OwnerId, 'New deal ' || Id, 'Prospecting', '10000.00', '10', 'Pipeline',
                   '{(day + timedelta(days=60)).isoformat()}', '{ts}', 'false', 'false', 'false', 'New Business',
                   'Web', 'USD', '{ts}', ''
            from born"""
        )
        _write(con, "select * from o2", dst / "Opportunity.csv")
        touched["Opportunity.csv"] = con.execute(
            "select (select count(distinct Id) from (select Id from moved union all select Id from reassigned))"
            " + 2 * (select count(*) from born) + (select count(*) from o) - (select count(*) from o2)"
        ).fetchall()[0][0]  # changed + new + deleted
        _write(
            con,
            f"""select * from h
            union all
            select '008NEW' || lpad(cast(row_number() over (order by m.Id) as varchar), 12, '0'), m.Id, m.stage,
                   o.Amount, m.prob, m.close_date, m.cat, '{ts}', 'false'
            from moved m join o on m.Id = o.Id
            union all
            select '008NEWB' || lpad(cast(row_number() over (order by Id) as varchar), 11, '0'), Id, 'Prospecting',
                   '10000.00', '10', '{(day + timedelta(days=60)).isoformat()}', 'Pipeline', '{ts}', 'false'
            from born""",
            dst / "OpportunityHistory.csv",
        )
        touched["OpportunityHistory.csv"] = con.execute(
            "select (select count(*) from moved) + (select count(*) from born)"
        ).fetchall()[0][0]
        _write(
            con,
            f"""select Id, Name, Industry,
                   case when hash(Id || 'size') % {share} = 0
                        then cast(cast(coalesce(try_cast(NumberOfEmployees as bigint), 100) * 3 as bigint) as varchar)
                        else NumberOfEmployees end as NumberOfEmployees,
                   AnnualRevenue, BillingCountry, ParentId, OwnerId, Type, IsDeleted, Tier__c
            from {_csv(src / 'Account.csv')}""",
            dst / "Account.csv",
        )
        _write(
            con,
            f"""select Id, OwnerId, CreatedDate,
                   case when convert then 'Closed - Converted' else Status end as Status, LeadSource,
                   case when convert then 'true' else IsConverted end as IsConverted,
                   case when convert then '{d}' else ConvertedDate end as ConvertedDate,
                   ConvertedOpportunityId, ConvertedAccountId, IsDeleted
            from (select *, IsConverted = 'false' and Status not like 'Closed%'
                            and hash(Id || 'convert') % {share} = 0 as convert
                  from {_csv(src / 'Lead.csv')})""",
            dst / "Lead.csv",
        )
        task = _csv(src / "Task.csv")
        _write(
            con,
            f"""select Id, OwnerId, WhoId, WhatId, ActivityDate, TaskSubtype,
                   case when Status = 'Not Started' and hash(Id || 'done') % 3 = 0 then 'Completed'
                        else Status end as Status,
                   CreatedDate, IsDeleted
            from {task} where hash(Id || 'gone') % {5 * share} <> 0
            union all
            select '00TNEW' || lpad(cast(row_number() over (order by Id) as varchar), 12, '0'), OwnerId, WhoId,
                   WhatId, '{d}', TaskSubtype, 'Completed', '{ts}', 'false'
            from {task} where ActivityDate = '{(day - timedelta(days=1)).isoformat()}'""",
            dst / "Task.csv",
        )
        event = _csv(src / "Event.csv")
        _write(
            con,
            f"""select * from {event} where hash(Id || 'gone') % {5 * share} <> 0
            union all
            select '00UNEW' || lpad(cast(row_number() over (order by Id) as varchar), 12, '0'), OwnerId, WhoId,
                   WhatId, '{d}T15:00:00.000Z', '{d}T15:30:00.000Z', '30', Type, Subject, 'false'
            from {event} where substr(StartDateTime, 1, 10) = '{(day - timedelta(days=1)).isoformat()}'""",
            dst / "Event.csv",
        )
    finally:
        con.close()
    for f in src.glob("*.csv"):
        if not (dst / f.name).exists():
            shutil.copyfile(f, dst / f.name)
    return touched


# Load metadata: which run loaded a row and when. Everything else must match.
LOAD_METADATA = ("_run_id", "_loaded_at")
# What only a warehouse that ran night after night knows: the night it first recorded a user's assignment
# (the snapshot of the User export); a full build of the second day saw it that day. Who is credited where
# (the assignments themselves, every mart) must match.
RECORDED_HISTORY = {("intermediate", "int_users__assignment_history"): ("recorded_from",)}


def _night(exports: Path, warehouse: Path, as_of: date, run_id: str, *, tests: bool) -> dict:
    """Extract and dbt (build with tests, or run) on a build copy, then swap it in as publish does."""
    from salesos import pipeline
    from salesos.run_context import RunContext
    from salesos.settings import load_settings
    from salesos.transform.dbt_build import run_dbt

    ctx = RunContext.create(as_of=as_of, exports=exports, warehouse=warehouse, run_id=run_id, settings_file=SETTINGS)
    extracted = pipeline.extract(ctx)
    if tests:
        pipeline.build(ctx)
    else:
        run_dbt(["build", "--exclude-resource-type", "test", "--exclude-resource-type", "unit_test"],
                warehouse=ctx.build_warehouse, run_dir=ctx.run_dir, settings=load_settings(SETTINGS),
                as_of=as_of.isoformat())
    os.replace(ctx.build_warehouse, warehouse)
    return {"extract": extracted, "load": _loads(warehouse, run_id), "dbt": ctx.run_dir / "dbt_target"}


def _loads(warehouse: Path, run_id: str) -> dict[str, tuple]:
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        rows = con.execute(
            "select table_name, load_mode, row_count, inserted, updated, deleted from raw._loads where run_id = ?",
            [run_id],
        ).fetchall()
    finally:
        con.close()
    return {r[0]: r[1:] for r in rows}


@pytest.fixture(scope="module")
def nights(tmp_path_factory):
    from salesos.generate import generate

    root = tmp_path_factory.mktemp("incremental")
    day1, day2 = root / "day1", root / "day2"
    generate(day1, scale="S", seed=11, as_of=DAY1)
    touched = next_day_exports(day1, day2, DAY2)
    incremental = root / "incremental" / "salesos.duckdb"
    full = root / "full" / "salesos.duckdb"
    with ThreadPoolExecutor(max_workers=1) as pool:  # the full build runs beside the two nights
        full_build = pool.submit(_night, day2, full, DAY2, "full", tests=False)
        _night(day1, incremental, DAY1, "night1", tests=False)
        night2 = _night(day2, incremental, DAY2, "night2", tests=False)
        full_build.result()
    return {"incremental": incremental, "full": full, "night2": night2, "touched": touched}


def test_second_night_loads_only_the_difference(nights):
    loads = nights["night2"]["load"]
    for table in ("opportunities", "opportunity_histories", "tasks", "events", "accounts", "leads"):
        mode, rows, inserted, updated, deleted = loads[table]
        assert mode == "incremental", table
        assert 0 < inserted + updated + deleted < rows / 10, (table, loads[table])
    assert loads["quotas"][0] == "full"  # no key: replaced, it is small
    assert loads["opportunity_histories"][2] == nights["touched"]["OpportunityHistory.csv"]


def test_night_two_took_the_incremental_paths(nights):
    """The incremental models ran their incremental branch (scoped by raw._changes / new days only)."""
    import json

    results = json.loads((nights["night2"]["dbt"] / "run_results.json").read_text())
    code = {r["unique_id"].split(".")[-1]: r.get("compiled_code") or "" for r in results["results"]}
    assert "._changes" in code["int_people__activity_records"]
    assert "._changes" in code["fct_opportunity_stage_history"]
    assert "max(snapshot_date)" in code["int_opportunity_history__daily_states"]
    assert all(r["status"] == "success" for r in results["results"])


def _differences(con: duckdb.DuckDBPyConnection, a: str, b: str, cols: list[tuple[str, str]]) -> tuple[int, int]:
    """Rows of a not in b and of b not in a (EXCEPT ALL); doubles equal within 1e-9 (parallel sums vary)."""
    select = ", ".join(f'"{c}"' for c, _ in cols)
    counts = tuple(
        con.execute(f"select count(*) from (select {select} from {x} except all select {select} from {y})").fetchall()[0][0]
        for x, y in ((a, b), (b, a))
    )
    floats = [i for i, (_, t) in enumerate(cols) if t in ("DOUBLE", "FLOAT")]
    if counts == (0, 0) or not floats:
        return counts
    order = ", ".join(f'"{c}"' for c, t in cols if t not in ("DOUBLE", "FLOAT")) or "1"
    ra, rb = (con.execute(f"select {select} from {x} order by {order}, {select}").fetchall() for x in (a, b))
    same = len(ra) == len(rb) and all(
        (u == v) or (i in floats and u is not None and v is not None and math.isclose(u, v, rel_tol=1e-9, abs_tol=1e-9))
        for x, y in zip(ra, rb, strict=True)
        for i, (u, v) in enumerate(zip(x, y, strict=True))
    )
    return (0, 0) if same else counts


def test_incremental_night_equals_a_full_build(nights):
    con = duckdb.connect(str(nights["incremental"]), read_only=True)
    con.execute(f"attach '{nights['full']}' as full_build (read_only)")
    try:
        tables = con.execute(
            "select table_schema, table_name from information_schema.tables "
            "where table_catalog = current_database() and table_type = 'BASE TABLE' "
            "and table_schema in ('raw', 'quarantine', 'intermediate', 'marts') and table_name not like '\\_%' escape '\\' "
            "order by 1, 2"
        ).fetchall()
        assert len([t for t in tables if t[0] == "marts"]) >= 15
        assert ("intermediate", "int_people__activity_records") in tables
        differences = {}
        for schema, table in tables:
            cols = con.execute(
                "select column_name, data_type from information_schema.columns "
                "where table_catalog = current_database() and table_schema = ? and table_name = ? "
                "order by ordinal_position",
                [schema, table],
            ).fetchall()
            cols = [(c, t) for c, t in cols
                    if c not in LOAD_METADATA and c not in RECORDED_HISTORY.get((schema, table), ())]
            diff = _differences(con, f'"{schema}"."{table}"', f'full_build."{schema}"."{table}"', cols)
            if diff != (0, 0):
                differences[f"{schema}.{table}"] = diff
        assert differences == {}
    finally:
        con.close()


def test_key_tests_on_an_incremental_night_check_the_changed_keys_and_still_catch_a_repeated_key(nights, tmp_path):
    """unique_in_load / not_null_in_load read only what night 2's load changed, and fail on what it broke."""
    import json

    from salesos.settings import load_settings
    from salesos.transform.dbt_build import DbtBuildFailed, run_dbt

    warehouse = tmp_path / "salesos.duckdb"
    shutil.copyfile(nights["incremental"], warehouse)
    select = ["--select", "stg_crm__tasks", "int_people__activity_records"]

    def key_tests(run: str) -> dict[str, dict]:
        try:
            run_dbt(["test", *select], warehouse=warehouse, run_dir=tmp_path / run,
                    settings=load_settings(SETTINGS), as_of=DAY2.isoformat(), run_id="night2")
        except DbtBuildFailed:
            pass  # the statuses below say which test failed
        results = json.loads((tmp_path / run / "dbt_target" / "run_results.json").read_text())["results"]
        return {r["unique_id"].split(".")[2]: r for r in results if "_in_load_" in r["unique_id"]}

    clean = key_tests("clean")
    assert len(clean) == 3 and all(r["status"] == "pass" for r in clean.values())
    assert all("night2" in r["compiled_code"] for r in clean.values())  # scoped to night 2's load
    con = duckdb.connect(str(warehouse))
    try:
        # an old task (not changed by night 2) repeated by a row night 2's load wrote, and a task without an Id
        old = con.execute(
            "select min(id) from raw.tasks where _run_id = 'night1' and id not in "
            "(select id from raw._changes where run_id = 'night2' and table_name = 'tasks')"
        ).fetchall()[0][0]
        con.execute("create temp table dup as select * from raw.tasks where id = ?", [old])
        con.execute("update dup set _run_id = 'night2'")
        con.execute("insert into raw.tasks select * from dup")
        con.execute("insert into raw._changes (run_id, table_name, id, change) values ('night2', 'tasks', ?, 'update')",
                    [old])
        con.execute("update dup set id = ' '")
        con.execute("insert into raw.tasks select * from dup")
        # a night-1 task without an Id: not read on an incremental night (it would have failed night 1)
        con.execute("update raw.tasks set id = '' where id = (select max(id) from raw.tasks where _run_id = 'night1')")
    finally:
        con.close()
    broken = key_tests("broken")
    failures = {name: (r["status"], r["failures"]) for name, r in broken.items()}
    assert failures == {
        "unique_in_load_stg_crm__tasks_task_id__tasks": ("fail", 1),
        "not_null_in_load_stg_crm__tasks_task_id__tasks": ("fail", 1),  # night 2's row, not night 1's
        "unique_in_load_int_people__activity_records_activity_id__tasks__events": ("pass", 0),  # not rebuilt
    }
