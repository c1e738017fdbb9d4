import json
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


def _forecasts(path, rows):
    c = duckdb.connect(str(path))
    c.execute("create schema if not exists forecasts")
    c.execute("create or replace table forecasts.fct_forecasts (series_id varchar, horizon integer, yhat double, "
              "err double, model varchar, model_params varchar)")
    c.executemany("insert into forecasts.fct_forecasts values (?, ?, ?, ?, ?, ?)", rows)
    c.close()


ROWS = [("company:all", h, 1000.0 + 17.3 * h, 5.0 - h, "theta", f'{{"scores": {{"theta": {1.1 + h / 7}}}}}')
        for h in range(1, 4)] + [("rep:1", h, 10.0 + h / 3, 0.0, "auto_ets", '{"scores": {"auto_ets": 0.9}}')
                                 for h in range(1, 4)]


def test_optimised_tables_pass_a_last_digit_wiggle_and_name_a_changed_forecast(tmp_path):
    from salesos.warehouse.digest import table_values, value_differences

    path = tmp_path / "w.duckdb"
    _forecasts(path, ROWS)
    c = duckdb.connect(str(path), read_only=True)
    recorded = table_values(c, "forecasts", "fct_forecasts")
    c.close()
    assert value_differences("forecasts.fct_forecasts", recorded, path) == []

    def wiggled(r, sign):  # every float, also inside the JSON, moved by 1e-9 relative; rows in another order
        scores = json.loads(r[5])["scores"]
        params = json.dumps({"scores": {k: v * (1 + sign * 1e-9) for k, v in scores.items()}})
        return (r[0], r[1], r[2] * (1 + sign * 1e-9), r[3] * (1 - sign * 1e-9) + sign * 1e-12, r[4], params)

    _forecasts(path, [wiggled(r, (-1) ** i) for i, r in enumerate(reversed(ROWS))])
    assert value_differences("forecasts.fct_forecasts", recorded, path) == []
    c = duckdb.connect(str(path), read_only=True)
    assert table_digest(c, "forecasts", "fct_forecasts") != table_digest(c, "forecasts", "fct_forecasts", digits=17)
    c.close()

    changed = [r if (r[0], r[1]) != ("rep:1", 2) else (*r[:2], r[2] * 1.01, *r[3:]) for r in ROWS]
    _forecasts(path, changed)  # one series' forecast 1% higher at one step
    diff = value_differences("forecasts.fct_forecasts", recorded, path)
    assert len(diff) == 1, diff
    assert diff[0].startswith("forecasts.fct_forecasts: row series_id=rep:1, horizon=2, model=auto_ets: column yhat:")

    flipped = [r if r[0] != "rep:1" else (*r[:4], "theta", r[5]) for r in ROWS]
    _forecasts(path, flipped)  # another method chosen for a series: its rows are not the recorded ones
    diff = value_differences("forecasts.fct_forecasts", recorded, path)
    assert any("row series_id=rep:1, horizon=1, model=theta: built but not recorded" in line for line in diff)
    assert any("3 recorded row(s) not built" in line for line in diff)

    scores = [(*r[:5], r[5].replace("0.9", "0.95")) for r in ROWS]
    _forecasts(path, scores)  # a backtest score inside the JSON parameters
    diff = value_differences("forecasts.fct_forecasts", recorded, path)
    assert len(diff) == 3 and all("column model_params.scores.auto_ets: recorded 0.9, built 0.95" in d for d in diff)


def test_a_value_near_zero_is_held_to_its_columns_magnitude_not_to_its_own(tmp_path):
    from salesos.warehouse.digest import VALUE_TOLERANCE, table_values, value_differences

    path = tmp_path / "w.duckdb"
    rows = [("s", h, 100.0 * h, 1e-3 if h == 1 else 50.0 * h, "m", "{}") for h in range(1, 6)]
    _forecasts(path, rows)
    c = duckdb.connect(str(path), read_only=True)
    recorded = table_values(c, "forecasts", "fct_forecasts")
    c.close()
    _forecasts(path, [(*r[:3], r[3] + 1e-7, *r[4:]) for r in rows])  # 1e-4 relative to 1e-3: rounding of a difference
    assert value_differences("forecasts.fct_forecasts", recorded, path) == []
    _forecasts(path, [(*r[:3], r[3] + 150.0 * VALUE_TOLERANCE * 2 * (r[1] == 1), *r[4:]) for r in rows])
    assert len(value_differences("forecasts.fct_forecasts", recorded, path)) == 1


def test_warehouse_differences_exact_for_marts_by_value_for_the_optimised_tables(tmp_path):
    from salesos.warehouse.digest import warehouse_differences, warehouse_values

    path = tmp_path / "w.duckdb"
    _forecasts(path, ROWS)
    c = duckdb.connect(str(path))
    c.execute("create schema marts; create table marts.a as select 1.25::double as x")
    c.close()
    digests, values = warehouse_digests(path), warehouse_values(path)
    assert set(values) == {"forecasts.fct_forecasts"}
    assert warehouse_differences(path, digests, values) == []
    _forecasts(path, [(*r[:2], r[2] * (1 + 1e-7), *r[3:]) for r in ROWS])  # within 9 digits: the digest differs
    assert warehouse_digests(path)["forecasts.fct_forecasts"] != digests["forecasts.fct_forecasts"]
    assert warehouse_differences(path, digests, values) == []
    c = duckdb.connect(str(path))
    c.execute("update marts.a set x = 1.25 * (1 + 1e-6)")  # a dbt mart: exact to 9 digits
    c.close()
    assert warehouse_differences(path, digests, values) == ["marts.a: rows or columns differ"]
    assert warehouse_differences(path, digests, values, exclude=["marts.a"]) == []
    assert warehouse_differences(path, digests, {}) == [
        "marts.a: rows or columns differ", "forecasts.fct_forecasts: no recorded values (re-record with `make digests`)"]
