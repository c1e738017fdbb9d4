"""The same CRM, exported by Salesforce or landed by Fivetran in a DuckDB file, gives identical marts.

The XS sample is written as Salesforce's export, then landed the way Fivetran's connector lands it: one table
per object in a DuckDB schema, snake_case columns, `_fivetran_synced`/`_fivetran_deleted`, and the Opportunity
table in history mode with an earlier version of every tenth deal (other stage, amount, close date), which
must be collapsed away. Every intermediate and mart table of the two is compared row for row.

The exported side is the shared `xs_night` (the same sample, seed, as-of date and settings: a whole night, built
once per test session), the landed side is built here with the steps the marts need (extract, validate, dbt
build). So the models downstream of the forecasts (rebuilt by the night after its forecast, left empty by the
build) are not compared; they are a function of the tables compared and of the forecasts. One XS build instead
of two.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from salesos import pipeline
from salesos.contract import EXPORTS, snake_case
from salesos.extract.connectors import FIVETRAN_SALESFORCE
from salesos.extract.connectors.translate import read_translations
from salesos.generate import generate
from salesos.run_context import RunContext
from tests.transform.mart_digests import AS_OF, SCALE, SEED, SETTINGS, fed_by_forecasts

pytestmark = pytest.mark.e2e

SYNCED = "2026-10-31 03:00:00"


def _land_as_fivetran(exports: Path, db: Path) -> None:
    con = duckdb.connect(str(db))
    con.execute("create schema salesforce")
    for export in EXPORTS:
        path = exports / export.filename
        if not path.is_file():
            continue
        rel = f"read_csv('{path}', all_varchar=true, header=true)"
        names = [d[0] for d in con.execute(f"select * from {rel} limit 0").description]
        cols = ", ".join(f'"{n}" as "{snake_case(n)}"' for n in names)
        table = FIVETRAN_SALESFORCE.tables[export.table]
        if export.table in ("quotas", "fx_rates"):
            con.execute(f'create table salesforce."{table}" as select * from {rel}')
        elif export.table == "opportunities":
            # history mode: the current version, and an earlier one of every tenth deal
            con.execute(
                f"""create table salesforce.opportunity as
                select {cols}, timestamp '{SYNCED}' as _fivetran_synced, false as _fivetran_deleted,
                       timestamp '2026-10-01 00:00:00' as _fivetran_start,
                       timestamp '9999-12-31 23:59:59' as _fivetran_end, true as _fivetran_active
                from {rel}"""
            )
            con.execute(
                """insert into salesforce.opportunity by name
                select * replace ('Prospecting' as stage_name, '1' as amount, '2030-01-01' as close_date,
                                  timestamp '2026-09-01 00:00:00' as _fivetran_start,
                                  timestamp '2026-09-30 23:59:59' as _fivetran_end, false as _fivetran_active)
                from salesforce.opportunity where hash(id) % 10 = 0"""
            )
        else:
            con.execute(
                f'create table salesforce."{table}" as select {cols}, timestamp \'{SYNCED}\' as _fivetran_synced, '
                f"false as _fivetran_deleted from {rel}"
            )
    con.close()


def _build(ctx: RunContext) -> Path:
    pipeline.extract(ctx)
    pipeline.validate(ctx)
    pipeline.build(ctx)
    return ctx.build_warehouse


def _differences(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> tuple[int, int]:
    cols = con.execute(
        "select column_name, data_type from information_schema.columns where table_catalog = 'exported' "
        "and table_schema = ? and table_name = ? order by ordinal_position", [schema, table]
    ).fetchall()
    exprs = ", ".join(f'round("{c}", 6)' if t in ("DOUBLE", "FLOAT") else f'"{c}"' for c, t in cols)
    return tuple(
        con.execute(f"select count(*) from (select {exprs} from {a}.{schema}.{table} "
                    f"except all select {exprs} from {b}.{schema}.{table})").fetchall()[0][0]
        for a, b in (("exported", "landed"), ("landed", "exported"))
    )


def test_fivetran_landed_tables_give_the_marts_of_the_export(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    exports = tmp_path / "exports"
    generate(exports, scale=SCALE, seed=SEED, as_of=AS_OF)  # the files of the shared night's sample
    landed = tmp_path / "fivetran.duckdb"
    _land_as_fivetran(exports, landed)
    settings = tmp_path / "settings.yml"
    settings.write_text(SETTINGS.read_text() + "\nconnector_schema: salesforce\n")
    landed_ctx = RunContext.create(as_of=AS_OF, exports=landed, warehouse=tmp_path / "b" / "wh.duckdb",
                                   settings_file=settings, source="fivetran-salesforce")
    built = _build(landed_ctx)
    # the exported night last: under xdist another worker may be building it meanwhile
    exported = request.getfixturevalue("xs_night")
    fed = fed_by_forecasts(landed_ctx.run_dir / "dbt_target" / "manifest.json", ("intermediate", "marts"))
    assert "mart_forecast_accuracy" in fed  # what the night rebuilt after its forecast
    con = duckdb.connect()
    con.execute(f"attach '{exported}' as exported (read_only)")
    con.execute(f"attach '{built}' as landed (read_only)")
    n_exported, n_landed = (con.execute(f"select count(*) from {db}.raw.opportunities").fetchone()[0]
                            for db in ("exported", "landed"))
    assert n_exported == n_landed > 100
    # the earlier versions were left out by the translation, not quarantined as duplicates by the loader
    assert con.execute("select count(*) from landed.quarantine.opportunities").fetchone()[0] == 0
    translation = read_translations(landed_ctx.archive_dir)["translation"]["opportunity"]
    assert translation["written_rows"] == n_landed < translation["landed_rows"]
    tables = con.execute(
        "select table_schema, table_name from information_schema.tables where table_catalog = 'exported' "
        "and table_schema in ('intermediate', 'marts') and table_type = 'BASE TABLE' "
        "and table_name not like '\\_%' escape '\\' order by 1, 2"
    ).fetchall()
    assert ("marts", "mart_pipeline") in tables and ("marts", "mart_win_rates") in tables
    tables = [(s, t) for s, t in tables if t not in fed]
    assert ("marts", "fct_opportunities") in tables and ("intermediate", "int_stages__resolved") in tables
    differences = {f"{s}.{t}": d for s, t in tables if (d := _differences(con, s, t)) != (0, 0)}
    assert differences == {}
    open_now = con.execute("select count(*) from landed.marts.fct_pipeline_snapshots where snapshot_date = ?",
                           [AS_OF]).fetchone()[0]
    assert open_now > 0
