"""The pipeline's steps on their own (the whole run is in test_end_to_end.py)."""

from datetime import date

import duckdb
import pytest

from salesos.pipeline import extract
from salesos.run_context import RunContext
from salesos.warehouse.storage import is_compat

AS_OF = date(2026, 10, 31)


def _count(path, sql):
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.execute(sql).fetchall()[0][0]
    finally:
        con.close()


@pytest.mark.parametrize("bi_copy", [True, False])
def test_a_new_warehouse_is_created_in_the_1_4_format_when_bi_copies_are_wanted(tiny_exports, tmp_path, bi_copy):
    settings = tmp_path / "settings.yml"
    settings.write_text(f"bi_compat_copy: {str(bi_copy).lower()}\n", encoding="utf-8")
    ctx = RunContext.create(as_of=AS_OF, exports=tiny_exports, warehouse=tmp_path / "wh" / "salesos.duckdb",
                            settings_file=settings)
    extract(ctx)
    assert is_compat(ctx.build_warehouse) is bi_copy
    assert _count(ctx.build_warehouse, "select count(*) from raw.opportunities") == 4


def test_a_warehouse_from_before_is_converted_by_the_next_extract_and_keeps_its_history(tiny_exports, tmp_path):
    wh = tmp_path / "wh" / "salesos.duckdb"
    wh.parent.mkdir()
    con = duckdb.connect(str(wh))  # published by an earlier release: DuckDB 2.0's own format
    con.execute("create schema forecasts; create table forecasts.history as select 42 as x")
    con.close()
    ctx = RunContext.create(as_of=AS_OF, exports=tiny_exports, warehouse=wh)
    extract(ctx)
    assert is_compat(ctx.build_warehouse) and not is_compat(wh)  # the published file is never touched
    assert _count(ctx.build_warehouse, "select x from forecasts.history") == 42
    assert _count(ctx.build_warehouse, "select count(*) from raw.opportunities") == 4
