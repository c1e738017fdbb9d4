import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from salesos.publish.copies import compat_path, export_tables, write_compat_copy

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def warehouse(tmp_path) -> Path:
    wh = tmp_path / "build" / "salesos.duckdb"
    wh.parent.mkdir()
    con = duckdb.connect(str(wh))
    con.execute("create schema raw; create table raw.t as select 1 as x")
    con.execute("create schema marts; create table marts.fct_x as select range as id, range * 1.5 as amount from range(10)")
    con.execute("create schema staging; create view staging.v as select * from raw.t")
    con.execute("create schema forecasts; create table forecasts.fct_forecasts as select 'company' as series_id, 1.0 as yhat")
    con.close()
    return wh


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
def test_duckdb_1_4_opens_the_compat_copy_and_not_the_original(warehouse, tmp_path):
    uv = ROOT / ".tools" / "uv" / "bin" / "uv"
    uv_cmd = [str(uv)] if uv.exists() else [sys.executable, "-m", "uv"]
    if not uv.exists() and not shutil.which("uv"):
        pytest.skip("uv is not installed (make installs it into .tools/)")
    old = tmp_path / "duckdb14"
    subprocess.run([*uv_cmd, "pip", "install", "-q", "--target", str(old), "duckdb==1.4.1"], check=True)
    target = write_compat_copy(warehouse, compat_path(tmp_path / "published" / "salesos.duckdb"))
    script = (
        "import duckdb, sys\n"
        "c = duckdb.connect(sys.argv[1], read_only=True)\n"
        "print(duckdb.__version__, c.execute('select count(*) from marts.fct_x').fetchall()[0][0])\n"
        "try:\n    duckdb.connect(sys.argv[2], read_only=True); print('opened')\n"
        "except Exception:\n    print('refused')\n"
    )
    out = subprocess.run([sys.executable, "-c", script, str(target), str(warehouse)], check=True, capture_output=True,
                         text=True, env={"PYTHONPATH": str(old), "PATH": "/usr/bin:/bin"}).stdout.split()
    assert out == ["1.4.1", "10", "refused"]


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
