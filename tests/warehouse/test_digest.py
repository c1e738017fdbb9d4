from decimal import Decimal

import duckdb
import pytest

from salesos.warehouse.digest import differences, table_digest, warehouse_digests


@pytest.fixture
def con():
    c = duckdb.connect()
    c.execute("create schema marts")
    c.execute("create table marts.t (k varchar, x double, d decimal(18, 6), j varchar)")
    c.execute("""insert into marts.t values ('a', 0.1 + 0.2, 1.5, '{"s": 0.30000000000000004}'),
                 ('b', null, null, 'plain')""")
    yield c
    c.close()


def test_row_order_does_not_count_but_values_columns_and_types_do(con):
    before = table_digest(con, "marts", "t")
    con.execute("create table marts.u as select * from marts.t order by k desc")
    assert table_digest(con, "marts", "u") == before
    con.execute("update marts.u set d = 1.6 where k = 'a'")
    assert table_digest(con, "marts", "u") != before
    con.execute("create table marts.v as select k, x, d, j from marts.t union all select 'c', 1, 1, ''")
    assert table_digest(con, "marts", "v") != before
    con.execute("create table marts.w as select k, x, cast(d as double) as d, j from marts.t")
    assert table_digest(con, "marts", "w") != before
    con.execute("create table marts.r as select k as key, x, d, j from marts.t")
    assert table_digest(con, "marts", "r") != before


def test_floats_count_to_nine_significant_digits_also_inside_json(con):
    before = table_digest(con, "marts", "t")
    con.execute("""update marts.t set x = 0.3, j = '{"s": 0.3}' where k = 'a'""")
    assert table_digest(con, "marts", "t") == before
    con.execute("update marts.t set x = 0.3000001 where k = 'a'")
    assert table_digest(con, "marts", "t") != before
    assert Decimal("1.500000").normalize() == Decimal("1.5")


def test_warehouse_digests_and_differences_name_the_tables(tmp_path):
    path = tmp_path / "w.duckdb"
    c = duckdb.connect(str(path))
    c.execute("create schema marts; create schema forecasts; create schema staging")
    c.execute("create table marts.a as select 1 as x; create table forecasts.f as select 2 as y")
    c.execute("create table staging.s as select 3 as z; create view marts.v as select 1 as x")
    c.close()
    digests = warehouse_digests(path)
    assert sorted(digests) == ["forecasts.f", "marts.a"]
    assert differences(digests, dict(digests)) == []
    changed = {**digests, "marts.a": "0", "marts.new": "1"}
    del changed["forecasts.f"]
    assert differences(digests, changed) == ["forecasts.f: recorded but not built",
                                             "marts.a: rows or columns differ", "marts.new: built but not recorded"]
