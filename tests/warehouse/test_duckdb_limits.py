import duckdb

from salesos.warehouse.duckdb_limits import apply_memory_limit


def _limit(con):
    return con.execute("select current_setting('memory_limit')").fetchall()[0][0]


def test_the_cap_comes_from_the_environment(monkeypatch):
    con = duckdb.connect()
    monkeypatch.setenv("SALESOS_DUCKDB_MEMORY_LIMIT", "1GB")
    assert apply_memory_limit(con) == "1GB"
    assert _limit(con) in ("953.6 MiB", "1.0 GB", "1.0 GiB")
    monkeypatch.delenv("SALESOS_DUCKDB_MEMORY_LIMIT")
    assert apply_memory_limit(con) == "4GB"
    assert _limit(con) in ("3.7 GiB", "4.0 GB", "3.7 GB")
