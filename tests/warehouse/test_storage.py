from pathlib import Path

import duckdb
import pytest

from salesos.warehouse.storage import (
    COMPAT_STORAGE_VERSION,
    connect_warehouse,
    convert_to_compat,
    copy_database,
    is_compat,
    storage_version,
)


def _make(path: Path, compat: bool) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    con = connect_warehouse(path, compat=compat)
    con.execute("create schema marts; create table marts.t as select range as id from range(5)")
    con.execute(f"create view marts.v as select count(*) as n from {path.stem}.marts.t")  # names the catalog
    con.close()
    return path


def test_a_new_warehouse_is_created_in_the_format_asked_for(tmp_path):
    assert storage_version(_make(tmp_path / "a" / "salesos.duckdb", compat=True)) == COMPAT_STORAGE_VERSION
    assert storage_version(_make(tmp_path / "b" / "salesos.duckdb", compat=False)) != COMPAT_STORAGE_VERSION


def test_a_1_4_file_stays_1_4_after_duckdb_2_writes_into_it(tmp_path):
    wh = _make(tmp_path / "salesos.duckdb", compat=True)
    con = duckdb.connect(str(wh))  # as dbt opens it: no storage option at all
    con.execute("create table marts.more as select range as i, range::varchar as s from range(100000)")
    con.execute("delete from marts.more where i % 2 = 0")
    con.execute("checkpoint")
    con.close()
    assert is_compat(wh)


def test_an_old_warehouse_is_converted_once_with_its_tables_and_views(tmp_path):
    wh = _make(tmp_path / "salesos.duckdb", compat=False)
    assert convert_to_compat(wh) is True
    assert is_compat(wh)
    con = duckdb.connect(str(wh), read_only=True)
    assert con.execute("select n from marts.v").fetchall() == [(5,)]
    con.close()
    assert convert_to_compat(wh) is False  # already in the format: nothing rewritten
    assert sorted(p.name for p in tmp_path.iterdir()) == ["salesos.duckdb"]  # no work folder left behind


def test_a_copy_must_keep_the_file_name_its_views_refer_to(tmp_path):
    wh = _make(tmp_path / "salesos.duckdb", compat=False)
    with pytest.raises(ValueError, match="keep its file name"):
        copy_database(wh, tmp_path / "other" / "renamed.duckdb")
