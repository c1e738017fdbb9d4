from collections.abc import Callable
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from salesos.publish.copies import compat_path, export_tables, write_compat_copy
from salesos.warehouse.storage import connect_warehouse


@pytest.fixture
def make_warehouse(tmp_path) -> Callable[[bool], Path]:
    """A small warehouse, in DuckDB 2.0's own storage format or (compat) in the 1.4 format."""

    def make(compat: bool = False) -> Path:
        wh = tmp_path / "build" / "salesos.duckdb"
        wh.parent.mkdir()
        con = connect_warehouse(wh, compat=compat)
        con.execute("create schema raw; create table raw.t as select 1 as x")
        con.execute("create schema marts; "
                    "create table marts.fct_x as select range as id, range * 1.5 as amount from range(10)")
        con.execute("create schema staging; create view staging.v as select * from raw.t")
        con.execute("create schema forecasts; "
                    "create table forecasts.fct_forecasts as select 'company' as series_id, 1.0 as yhat")
        con.close()
        return wh

    return make


@pytest.fixture
def warehouse(make_warehouse) -> Path:
    return make_warehouse(False)


def test_finance_exports_are_parquet_and_csv_per_table(warehouse, tmp_path):
    out = tmp_path / "exports" / "as_of=2026-10-31" / "run=r1"
    files = export_tables(warehouse, out)
    assert sorted(p.name for p in files) == [
        "forecasts.fct_forecasts.csv", "forecasts.fct_forecasts.parquet", "marts.fct_x.csv", "marts.fct_x.parquet"]
    assert pd.read_parquet(out / "marts.fct_x.parquet")["amount"].sum() == pytest.approx(67.5)
    assert len(pd.read_csv(out / "marts.fct_x.csv")) == 10
    assert not any(p.name.startswith("raw.") for p in out.iterdir())


def test_compat_copy_keeps_tables_and_views_under_the_same_catalog(warehouse, tmp_path):
    target = compat_path(tmp_path / "published" / "salesos.duckdb")
    write_compat_copy(warehouse, target)
    assert target.parent.name == "duckdb-v1.4" and target.name == "salesos.duckdb"
    con = duckdb.connect(str(target), read_only=True)
    assert con.execute("select count(*) from marts.fct_x").fetchall() == [(10,)]
    assert con.execute("select x from staging.v").fetchall() == [(1,)]  # a view still resolves
    con.close()
    assert not [p for p in target.parent.iterdir() if p.name.startswith(".building")]


@pytest.mark.e2e
@pytest.mark.parametrize("compat", [False, True], ids=["2.0-format warehouse", "1.4-format warehouse"])
def test_duckdb_1_4_opens_the_compat_copy(make_warehouse, tmp_path, duckdb_1_4, compat):
    warehouse = make_warehouse(compat)
    target = write_compat_copy(warehouse, compat_path(tmp_path / "published" / "salesos.duckdb"))
    script = (
        "import duckdb, sys\n"
        "c = duckdb.connect(sys.argv[1], read_only=True)\n"
        "print(duckdb.__version__, c.execute('select count(*) from marts.fct_x').fetchall()[0][0],\n"
        "      c.execute('select x from staging.v').fetchall()[0][0])\n"
        "try:\n    duckdb.connect(sys.argv[2], read_only=True); print('opened')\n"
        "except Exception:\n    print('refused')\n"
    )
    # the 2.0-format original is refused by DuckDB 1.4; the 1.4-format one opens as its copy does
    assert duckdb_1_4(script, [str(target), str(warehouse)]) == ["1.4.1", "10", "1", "opened" if compat else "refused"]


def test_a_1_4_format_warehouse_is_copied_byte_for_byte(make_warehouse, tmp_path):
    warehouse = make_warehouse(True)
    target = write_compat_copy(warehouse, compat_path(tmp_path / "published" / "salesos.duckdb"))
    assert target.read_bytes() == warehouse.read_bytes()
    assert not target.samefile(warehouse)  # its own file: a reader holding it never locks the warehouse
    assert not [p for p in target.parent.iterdir() if p.name.startswith(".building")]


def test_both_copies_run_under_the_memory_cap(warehouse, tmp_path, monkeypatch):
    """At scale L the finance exports' connection grew past 6 GB under DuckDB's default cap (80% of RAM)."""
    monkeypatch.setenv("SALESOS_DUCKDB_MEMORY_LIMIT", "not a size")  # proves the cap is set on each connection
    with pytest.raises(duckdb.Error):
        export_tables(warehouse, tmp_path / "exports")
    with pytest.raises(duckdb.Error):
        write_compat_copy(warehouse, tmp_path / "compat" / warehouse.name)
    monkeypatch.setenv("SALESOS_DUCKDB_MEMORY_LIMIT", "200MB")
    assert export_tables(warehouse, tmp_path / "exports")
    assert write_compat_copy(warehouse, tmp_path / "compat" / warehouse.name).exists()
    assert not list((tmp_path / "compat").glob(".building-*"))  # its spill folder goes with it
