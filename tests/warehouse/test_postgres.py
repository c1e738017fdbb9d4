"""The warehouse on PostgreSQL: raw tables copied from DuckDB, dbt built with the postgres target, and every
mart compared row by row with the DuckDB build of the same exports; then the BI role is checked with a real
login.

The e2e tests need PostgreSQL on 127.0.0.1:5432 (user postgres, no password; override with SALESOS_TEST_PG_*)
and skip when it is unreachable. They create a database salesos_test_<hex> and the roles salesos_bi_<hex> and
bi_login_<hex>, and drop all three at the end.
"""

from __future__ import annotations

import math
import os
import time
import uuid
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pytest

from salesos.warehouse.postgres import UnsupportedColumnType, copy_raw_to_postgres, pg_dsn_from_env, pg_type

psycopg2 = pytest.importorskip("psycopg2")
from psycopg2 import errors as pg_errors  # noqa: E402
from psycopg2.extensions import make_dsn, parse_dsn  # noqa: E402

AS_OF = date(2026, 10, 31)
REL_TOL = 1e-6
ABS_TOL = 1e-9  # numbers that should be 0 (a sum of doubles can land on 1e-12 on one engine and 0 on the other)
PG = {
    "host": os.environ.get("SALESOS_TEST_PG_HOST", "127.0.0.1"),
    "port": os.environ.get("SALESOS_TEST_PG_PORT", "5432"),
    "user": os.environ.get("SALESOS_TEST_PG_USER", "postgres"),
}
TIMINGS: dict[str, float] = {}


# --- fast unit tests --------------------------------------------------------------------------------------


def test_dsn_uses_profiles_env_vars_and_defaults():
    assert parse_dsn(pg_dsn_from_env({})) == {
        "host": "127.0.0.1",
        "port": "5432",
        "user": "postgres",
        "dbname": "salesos",
    }
    env = {
        "SALESOS_PG_HOST": "db.internal",
        "SALESOS_PG_PORT": "6432",
        "SALESOS_PG_USER": "dbt",
        "SALESOS_PG_PASSWORD": "s3cret 'quoted'",
        "SALESOS_PG_DATABASE": "warehouse",
    }
    assert parse_dsn(pg_dsn_from_env(env)) == {
        "host": "db.internal",
        "port": "6432",
        "user": "dbt",
        "password": "s3cret 'quoted'",
        "dbname": "warehouse",
    }


def test_dsn_names_match_profiles_yml():
    profiles = (Path(__file__).parents[2] / "dbt_project" / "profiles.yml").read_text(encoding="utf-8")
    for var, default in [
        ("SALESOS_PG_HOST", "127.0.0.1"),
        ("SALESOS_PG_PORT", "5432"),
        ("SALESOS_PG_USER", "postgres"),
        ("SALESOS_PG_PASSWORD", ""),
        ("SALESOS_PG_DATABASE", "salesos"),
    ]:
        assert f"env_var('{var}', '{default}')" in profiles


@pytest.mark.parametrize(
    ("duck", "pg"),
    [
        ("VARCHAR", "text"),
        ("BIGINT", "bigint"),
        ("INTEGER", "integer"),
        ("TIMESTAMP", "timestamp"),
        ("DATE", "date"),
        ("DOUBLE", "double precision"),
        ("BOOLEAN", "boolean"),
        ("DECIMAL(28,6)", "numeric(28, 6)"),
        ("HUGEINT", "numeric(39, 0)"),
    ],
)
def test_type_mapping(duck, pg):
    assert pg_type(duck) == pg


def test_unsupported_type_is_an_error():
    with pytest.raises(UnsupportedColumnType):
        pg_type("INTEGER[]")


# --- end to end -------------------------------------------------------------------------------------------


def _admin(dbname: str = "postgres", **extra: Any):
    con = psycopg2.connect(dbname=dbname, connect_timeout=3, **{**PG, **extra})
    con.autocommit = True
    return con


@pytest.fixture(scope="module")
def pg_admin():
    try:
        _admin().close()
    except psycopg2.OperationalError as e:
        pytest.skip(f"PostgreSQL is not reachable at {PG['host']}:{PG['port']} as user {PG['user']}: {e}".strip())


@pytest.fixture(scope="module")
def duckdb_run(pg_admin, xs_night, tmp_path_factory):
    """The DuckDB pipeline, once, on scale-XS sample exports (every table and level, fewer rows: the engines are
    compared here, not the numbers): the published warehouse is the reference.

    That night is the shared `xs_night` (tests/transform/mart_digests.py: the XS sample, seed 7, the fast
    settings), copied into a data folder of its own since the models that read the forecasts are built on it
    again below; one XS night fewer in the session than a night of this file's own."""
    import shutil

    from salesos.run_context import RunContext
    from salesos.settings import load_settings
    from salesos.transform.dbt_build import run_dbt
    from tests.transform.mart_digests import SETTINGS, sample_exports

    t0 = time.monotonic()
    tmp = tmp_path_factory.mktemp("pg_e2e")
    ctx = RunContext.create(as_of=AS_OF, exports=sample_exports(xs_night), warehouse=tmp / "wh" / "salesos.duckdb",
                            settings_file=SETTINGS)
    ctx.warehouse.parent.mkdir(parents=True)
    shutil.copyfile(xs_night, ctx.warehouse)
    TIMINGS["duckdb pipeline (the shared xs_night, and a copy of its warehouse)"] = time.monotonic() - t0
    # The nightly run builds the marts before the forecast step stores its rows, so the published marts were
    # built on an empty forecasts.fct_forecasts, while Postgres gets the stored forecasts with the raw tables.
    # Build the DuckDB models that read the forecasts once more on the published file so both engines see the
    # same inputs (the rest were built from the same raw tables and stay as published).
    t0 = time.monotonic()
    run_dbt(
        ["build", "--select", "source:forecasts+"],
        warehouse=ctx.warehouse,
        run_dir=ctx.data_dir / "runs" / "duckdb_rebuild",
        settings=load_settings(ctx.settings_file),
        as_of=ctx.as_of.isoformat(),
        target="duckdb",
    )
    TIMINGS["dbt build --target duckdb of what reads the forecasts"] = time.monotonic() - t0
    return ctx


@pytest.fixture(scope="module")
def pg_warehouse(duckdb_run):
    """A fresh database with the raw tables copied in and dbt built on it (postgres target, same vars)."""
    from salesos.settings import load_settings
    from salesos.transform.dbt_build import run_dbt

    suffix = uuid.uuid4().hex[:10]
    db = f"salesos_test_{suffix}"
    roles = {"bi": f"salesos_bi_{suffix}", "login": f"bi_login_{suffix}"}
    admin = _admin()
    with admin.cursor() as cur:
        cur.execute(f'create database "{db}"')
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("SALESOS_PG_HOST", PG["host"])
            mp.setenv("SALESOS_PG_PORT", PG["port"])
            mp.setenv("SALESOS_PG_USER", PG["user"])
            mp.setenv("SALESOS_PG_PASSWORD", "")
            mp.setenv("SALESOS_PG_DATABASE", db)
            mp.setenv("SALESOS_PG_SCHEMA", "public")
            dsn = pg_dsn_from_env()
            assert parse_dsn(dsn)["dbname"] == db

            t0 = time.monotonic()
            copied = copy_raw_to_postgres(duckdb_run.warehouse, dsn)
            TIMINGS["copy raw to postgres"] = time.monotonic() - t0

            def dbt(command: list[str], run_name: str):
                return run_dbt(
                    command,
                    warehouse=duckdb_run.warehouse,
                    run_dir=duckdb_run.data_dir / "runs" / run_name,
                    settings=load_settings(duckdb_run.settings_file),
                    as_of=duckdb_run.as_of.isoformat(),
                    target="postgres",
                )

            t0 = time.monotonic()
            build = dbt(["build"], "pg_build")
            TIMINGS["dbt build --target postgres"] = time.monotonic() - t0
            yield {"db": db, "dsn": dsn, "copied": copied, "build": build, "roles": roles, "dbt": dbt}
    finally:
        with admin.cursor() as cur:
            cur.execute(f'drop database if exists "{db}" with (force)')
            for role in (roles["login"], roles["bi"]):
                cur.execute(f'drop role if exists "{role}"')
        admin.close()
        print("\ntimings: " + ", ".join(f"{k} {v:.1f}s" for k, v in TIMINGS.items()))


def _duck_rows(path: Path, sql: str) -> tuple[list[str], list[tuple]]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        cur = con.execute(sql)
        return [d[0] for d in cur.description], cur.fetchall()
    finally:
        con.close()


def _pg_rows(dsn: str, sql: str) -> tuple[list[str], list[tuple]]:
    con = psycopg2.connect(dsn)
    try:
        with con.cursor() as cur:
            cur.execute(sql)
            return [d[0] for d in cur.description], cur.fetchall()
    finally:
        con.close()


def _tables(rows: list[tuple]) -> list[str]:
    return sorted(r[0] for r in rows)


@pytest.mark.e2e
def test_raw_tables_are_copied_with_their_rows_and_types(duckdb_run, pg_warehouse):
    wh, dsn = duckdb_run.warehouse, pg_warehouse["dsn"]
    _, duck_cols = _duck_rows(
        wh,
        "select c.table_schema || '.' || c.table_name, c.column_name, c.data_type from information_schema.columns c "
        "join information_schema.tables t using (table_catalog, table_schema, table_name) "
        "where t.table_type = 'BASE TABLE' and c.table_schema in ('raw', 'quarantine', 'forecasts') "
        "order by 1, c.ordinal_position",
    )
    _, pg_cols = _pg_rows(
        dsn,
        "select table_schema || '.' || table_name, column_name, data_type from information_schema.columns "
        "where table_schema in ('raw', 'quarantine', 'forecasts') order by 1, ordinal_position",
    )
    expected_types = {
        "VARCHAR": "text",
        "BIGINT": "bigint",
        "TIMESTAMP": "timestamp without time zone",
        "DATE": "date",
        "DOUBLE": "double precision",
        "INTEGER": "integer",
        "BOOLEAN": "boolean",
    }
    assert [(t, c, expected_types.get(d, d)) for t, c, d in duck_cols] == pg_cols

    tables = sorted({t for t, _, _ in duck_cols})
    assert sorted(pg_warehouse["copied"]) == tables
    assert "raw.opportunities" in tables and "forecasts.fct_forecasts" in tables
    for table in tables:
        schema, name = table.split(".")
        (n_duck,) = _duck_rows(wh, f'select count(*) from {schema}."{name}"')[1][0]
        (n_pg,) = _pg_rows(dsn, f'select count(*) from {schema}."{name}"')[1][0]
        assert n_duck == n_pg == pg_warehouse["copied"][table], table
    assert pg_warehouse["copied"]["raw.opportunities"] > 1000

    # Text is copied byte for byte: nulls stay nulls, empty strings stay empty, for every column.
    cols = [c for t, c, d in duck_cols if t == "raw.opportunities" and d == "VARCHAR"]
    probe = (
        "select "
        + ", ".join(
            f'count(*) filter (where "{c}" is null), count(*) filter (where cast("{c}" as varchar) = \'\'), '
            f"md5(string_agg(cast(\"{c}\" as varchar), '|' order by _row_number))"
            for c in cols
        )
        + " from raw.opportunities"
    )
    assert _duck_rows(wh, probe)[1] == _pg_rows(dsn, probe)[1]


def _sort_key(row: tuple) -> tuple:
    key = []
    for v in row:
        if v is None:
            key.append((0, ""))
        elif isinstance(v, bool):
            key.append((1, str(v)))
        elif isinstance(v, int | float | Decimal):
            key.append((2, f"{float(v):.9e}"))
        else:
            key.append((3, f"{type(v).__name__}:{v}"))
    return tuple(key)


def _same(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, int | float | Decimal) and isinstance(b, int | float | Decimal):
        fa, fb = float(a), float(b)
        if math.isnan(fa) or math.isnan(fb):
            return math.isnan(fa) and math.isnan(fb)
        return math.isclose(fa, fb, rel_tol=REL_TOL, abs_tol=ABS_TOL)
    if isinstance(a, datetime) or isinstance(b, datetime):  # before date: datetime is a date
        return isinstance(a, datetime) and isinstance(b, datetime) and a == b
    return type(a) is type(b) and a == b


@pytest.mark.e2e
def test_every_mart_is_the_same_on_postgres_and_duckdb(duckdb_run, pg_warehouse):
    wh, dsn = duckdb_run.warehouse, pg_warehouse["dsn"]
    duck_tables = _tables(
        _duck_rows(wh, "select table_name from information_schema.tables where table_schema = 'marts'")[1]
    )
    pg_tables = _tables(
        _pg_rows(dsn, "select table_name from information_schema.tables where table_schema = 'marts'")[1]
    )
    assert duck_tables == pg_tables
    assert len(duck_tables) >= 15

    problems: list[str] = []
    for table in duck_tables:
        sql = f'select * from marts."{table}"'
        d_cols, d_rows = _duck_rows(wh, sql)
        p_cols, p_rows = _pg_rows(dsn, sql)
        if d_cols != p_cols:
            problems.append(f"{table}: columns differ: duckdb {d_cols} postgres {p_cols}")
            continue
        if len(d_rows) != len(p_rows):
            problems.append(f"{table}: {len(d_rows)} rows on duckdb, {len(p_rows)} on postgres")
            continue
        diffs: dict[str, list[str]] = {}
        for i, (d, p) in enumerate(zip(sorted(d_rows, key=_sort_key), sorted(p_rows, key=_sort_key), strict=True)):
            for col, a, b in zip(d_cols, d, p, strict=True):
                if not _same(a, b):
                    diffs.setdefault(col, []).append(f"row {i}: duckdb {a!r} postgres {b!r}")
        for col, cells in diffs.items():
            problems.append(f"{table}.{col}: {len(cells)} of {len(d_rows)} rows differ, e.g. {cells[:3]}")
    assert not problems, "marts differ between DuckDB and PostgreSQL:\n" + "\n".join(problems)


def _login(pg_warehouse) -> Any:
    con = psycopg2.connect(
        make_dsn(pg_warehouse["dsn"], user=pg_warehouse["roles"]["login"], password=None), connect_timeout=3
    )
    con.autocommit = True
    return con


@pytest.mark.e2e
def test_metricflow_answers_the_same_on_postgres_and_duckdb(duckdb_run, pg_warehouse):
    """`salesos metrics query --target postgres`: every metric, by fiscal quarter and by team, from the manifest
    the night stored in its DuckDB file, with SQL rendered for Postgres, equals the DuckDB answer.

    The team is the entity as `salesos metrics list` names it for the metric (`team`, or `deal__team` where the
    metric reaches it through the deal): every metric that can be grouped by team is compared by it."""
    from salesos.semantic import SemanticLayer

    with SemanticLayer(duckdb_run.warehouse) as duck, \
            SemanticLayer(duckdb_run.warehouse, target="postgres", pg_dsn=pg_warehouse["dsn"]) as pg:
        dims = {m["name"]: set(m["dimensions"]) for m in duck.list_metrics()}
        compared, by_team = 0, set()
        for metric in duck.metric_names():
            teams = sorted((d for d in dims[metric] if d.split("__")[-1] == "team"), key=len)
            by_quarter = ("metric_time__fiscal_quarter",)
            for group_by in (by_quarter, *[(team, "metric_time__fiscal_year") for team in teams[:1]]):
                if not set(group_by) <= dims[metric]:
                    continue
                by_team |= {metric} if group_by != by_quarter else set()
                d, p = duck.query([metric], group_by), pg.query([metric], group_by)
                assert d.columns == p.columns

                def rows(result):
                    return sorted((tuple(str(v) for v in r[:-1]), None if r[-1] is None else float(r[-1]))
                                  for r in result.rows)

                for (dk, dv), (pk, pv) in zip(rows(d), rows(p), strict=True):
                    assert dk == pk, (metric, group_by)
                    assert (dv is None and pv is None) or math.isclose(dv, pv, rel_tol=REL_TOL, abs_tol=1e-6), \
                        (metric, group_by, dk, dv, pv)
                    compared += 1
    assert compared > 1000
    assert {"bookings", "pipeline", "win_rate", "quota_attainment"} <= by_team


@pytest.mark.e2e
def test_bi_role_reads_marts_and_nothing_else(pg_warehouse):
    roles, dsn = pg_warehouse["roles"], pg_warehouse["dsn"]
    t0 = time.monotonic()
    result = pg_warehouse["dbt"](["run-operation", "grant_bi_read_only", "--args", f"{{role: {roles['bi']}}}"], "grant")
    assert result.statuses == {"macro:success": 1}
    pg_warehouse["dbt"](["run-operation", "grant_bi_read_only", "--args", f"{{role: {roles['bi']}}}"], "grant_again")
    TIMINGS["grant operation (x2)"] = time.monotonic() - t0

    admin = psycopg2.connect(dsn)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute("select rolcanlogin from pg_roles where rolname = %s", [roles["bi"]])
        assert cur.fetchall() == [(False,)], "the BI role exists and is NOLOGIN"
        cur.execute(f'create role "{roles["login"]}" login in role "{roles["bi"]}"')
        cur.execute("select table_schema, table_name from information_schema.tables where table_schema = 'marts'")
        marts = sorted(cur.fetchall())
        cur.execute(
            "select table_schema, table_name from information_schema.tables "
            "where table_schema in ('raw', 'quarantine', 'staging', 'intermediate', 'sales_ops', 'test_failures')"
        )
        hidden = sorted(cur.fetchall())
    admin.close()
    assert len(marts) >= 15 and {s for s, _ in hidden} >= {"raw", "quarantine", "staging", "intermediate"}

    bi = _login(pg_warehouse)
    try:
        with bi.cursor() as cur:
            cur.execute("select current_user")
            assert cur.fetchone() == (roles["login"],)
            for schema, table in [*marts, ("forecasts", "fct_forecasts")]:
                cur.execute(f'select count(*) from {schema}."{table}"')
                assert cur.fetchone()[0] >= 0
            cur.execute("select count(*) from marts.fct_opportunities")
            assert cur.fetchone()[0] > 1000
            cur.execute("select count(*) from semantic.time_spine_days")  # what MetricFlow joins for metric_time
            assert cur.fetchone()[0] > 365

            for schema, table in hidden:
                with pytest.raises(pg_errors.InsufficientPrivilege, match="permission denied"):
                    cur.execute(f'select 1 from {schema}."{table}" limit 1')

            writes = [
                "insert into marts.fct_opportunities select * from marts.fct_opportunities limit 1",
                "update marts.fct_opportunities set amount = 0 where false",
                "delete from marts.fct_opportunities where false",
                "truncate marts.fct_opportunities",
                "create table marts.bi_probe (x integer)",
                "create view marts.bi_probe as select 1 as x",
                "drop table marts.fct_opportunities",
                "alter table marts.dim_dates add column bi_probe integer",
                "insert into forecasts.fct_forecasts select * from forecasts.fct_forecasts limit 1",
                "create table forecasts.bi_probe (x integer)",
                "create schema bi_probe",
            ]
            for statement in writes:
                with pytest.raises(pg_errors.InsufficientPrivilege):
                    cur.execute(statement)
    finally:
        bi.close()


@pytest.mark.e2e
def test_the_bi_role_answers_metric_queries(duckdb_run, pg_warehouse):
    """`salesos metrics --target postgres` as a member of the BI role (not the owner): the semantic layer reads the
    marts and the semantic schema's time spine (the fiscal calendar), and answers as the owner does."""
    from salesos.semantic import SemanticLayer

    roles, dsn = pg_warehouse["roles"], pg_warehouse["dsn"]
    pg_warehouse["dbt"](["run-operation", "grant_bi_read_only", "--args", f"{{role: {roles['bi']}}}"], "grant_mf")
    reader = f"{roles['login']}_mf"
    admin = psycopg2.connect(dsn)
    admin.autocommit = True
    try:
        with admin.cursor() as cur:
            cur.execute(f'create role "{reader}" login in role "{roles["bi"]}"')
        reader_dsn = make_dsn(dsn, user=reader, password=None)
        queries = [(["bookings", "quota", "quota_attainment"], ("team", "metric_time__fiscal_year")),
                   (["win_rate", "pipeline_coverage"], ("metric_time__fiscal_quarter",)),
                   (["sales_velocity"], ("region", "metric_time__fiscal_year"))]
        with SemanticLayer(duckdb_run.warehouse, target="postgres", pg_dsn=dsn) as owner, \
                SemanticLayer(duckdb_run.warehouse, target="postgres", pg_dsn=reader_dsn) as bi:
            for metrics, group_by in queries:
                want, got = owner.query(metrics, group_by), bi.query(metrics, group_by)
                assert got.rows and sorted(map(str, got.rows)) == sorted(map(str, want.rows)), (metrics, group_by)
    finally:
        with admin.cursor() as cur:
            cur.execute(f'drop role if exists "{reader}"')
        admin.close()


@pytest.mark.e2e
def test_copying_again_refills_tables_under_dbt_views(duckdb_run, pg_warehouse):
    """A second copy (the next night's load) empties and refills the tables; dbt's staging views keep working."""
    again = copy_raw_to_postgres(duckdb_run.warehouse, pg_warehouse["dsn"], batch_rows=997)
    assert again == pg_warehouse["copied"]
    _, rows = _pg_rows(pg_warehouse["dsn"], "select count(*) from staging.stg_crm__opportunities")
    assert rows[0][0] == again["raw.opportunities"]


@pytest.mark.e2e
def test_the_nightly_run_on_the_postgres_target_needs_no_code_change(duckdb_run, pg_admin, tmp_path):
    """SALESOS_DBT_TARGET=postgres: the same steps load raw into Postgres, build the marts there, forecast
    from them and store the forecasts there too; the bookings and forecasts match the DuckDB run's."""
    from salesos.orchestrate import context_for_run
    from salesos.pipeline import run_all

    db = f"salesos_test_{uuid.uuid4().hex[:10]}"
    admin = _admin()
    with admin.cursor() as cur:
        cur.execute(f'create database "{db}"')
    try:
        with pytest.MonkeyPatch.context() as mp:
            for key, value in {"SALESOS_PG_HOST": PG["host"], "SALESOS_PG_PORT": PG["port"],
                               "SALESOS_PG_USER": PG["user"], "SALESOS_PG_PASSWORD": "",
                               "SALESOS_PG_DATABASE": db, "SALESOS_DBT_TARGET": "postgres",
                               "SALESOS_EXPORTS": str(duckdb_run.exports),
                               "SALESOS_WAREHOUSE": str(tmp_path / "wh" / "salesos.duckdb"),
                               "SALESOS_SETTINGS": str(duckdb_run.settings_file)}.items():
                mp.setenv(key, value)
            ctx = context_for_run("pg_night", AS_OF)  # what an Airflow task builds: configuration only
            assert ctx.dbt_target == "postgres"
            t0 = time.monotonic()
            summary = run_all(ctx)
            TIMINGS["nightly run on the postgres target"] = time.monotonic() - t0
            dsn = pg_dsn_from_env()
        assert summary["models_built"] >= 40 and summary["forecast_series"] >= 20
        sql_bookings = "select series_id, month_start, bookings from marts.fct_bookings_monthly order by 1, 2"
        _, pg_bookings = _pg_rows(dsn, sql_bookings)
        _, duck_bookings = _duck_rows(duckdb_run.warehouse, sql_bookings)
        assert len(pg_bookings) == len(duck_bookings) > 0
        assert all(p[:2] == d[:2] and math.isclose(float(p[2]), d[2], rel_tol=REL_TOL, abs_tol=ABS_TOL)
                   for p, d in zip(pg_bookings, duck_bookings, strict=True))
        sql_fc = ("select series_id, period_start, model, yhat from forecasts.fct_forecasts "
                  "where as_of_date = '2026-10-31' order by 1, 2, 3")  # the published and Prophet's rows
        _, pg_fc = _pg_rows(dsn, sql_fc)
        _, duck_fc = _duck_rows(duckdb_run.warehouse, sql_fc)
        assert [r[:3] for r in pg_fc] == [r[:3] for r in duck_fc]
        assert all(math.isclose(p[3], d[3], rel_tol=1e-6, abs_tol=1e-6) for p, d in zip(pg_fc, duck_fc, strict=True))
        assert list((ctx.run_dir / "forecast_charts").glob("*.png"))
    finally:
        with admin.cursor() as cur:
            cur.execute(f'drop database if exists "{db}" with (force)')
        admin.close()
