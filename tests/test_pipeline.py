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


def test_the_summary_counts_the_projection_and_each_input_rule():
    from salesos.pipeline import format_summary

    text = format_summary({
        "run_id": "r", "as_of": "2026-10-31", "rows_loaded": {}, "checks": {"expectations": 1, "warnings": []},
        "models_built": 1, "tests_passed": 1, "tests_warned": 0, "forecast_rows": 1, "forecast_series": 1,
        "warehouse": "w", "run_folder": "f", "projection_rows": 240, "projection_days": 1,
        "projection_rules": {"missing_amount": 3, "close_date_in_past": 10, "unknown_stage": 0},
    })
    assert "projections:    240 rows for 1 day(s)" in text
    assert "3 open deal-days with no amount" in text and "10 open deal-days with a close date already past" in text
    assert "stage the stage rules do not know" not in text  # a rule that applied to nothing is not shown


@pytest.mark.parametrize("full_refresh", [True, False])
def test_run_options_reach_every_step_that_needs_them(tiny_exports, tmp_path, monkeypatch, full_refresh):
    """full_refresh (a RunContext field) reaches the loader, dbt and the forecast cache; the validate slice size
    (a setting) reaches the checks. Nothing goes through the environment."""
    from salesos import pipeline
    from salesos.settings import load_settings
    from salesos.transform import dbt_build
    from salesos.validate import gx_checks

    settings = tmp_path / "settings.yml"
    settings.write_text("validate_chunk_rows: 7\nload_scratch_bytes: 0\n", encoding="utf-8")
    ctx = RunContext.create(as_of=AS_OF, exports=tiny_exports, warehouse=tmp_path / "wh" / "salesos.duckdb",
                            settings_file=settings, full_refresh=full_refresh)
    seen: dict = {}
    real_load = pipeline.load_raw

    def load_raw(*args, **kwargs):
        seen["load"] = kwargs["full_refresh"], kwargs["settings"].load_scratch_bytes
        return real_load(*args, **kwargs)

    monkeypatch.setattr(pipeline, "load_raw", load_raw)
    pipeline.extract(ctx)
    assert seen["load"] == (full_refresh, 0)

    real_validate = gx_checks.validate_raw

    def validate_raw(*args, **kwargs):
        seen["chunk_rows"] = kwargs["chunk_rows"]
        return real_validate(*args, **kwargs)

    monkeypatch.setattr(gx_checks, "validate_raw", validate_raw)
    pipeline.validate(ctx)
    assert seen["chunk_rows"] == 7

    def run_dbt(command, **kwargs):
        seen["dbt"] = kwargs["full_refresh"]
        return dbt_build.DbtResult()

    monkeypatch.setattr(dbt_build, "run_dbt", run_dbt)
    pipeline.build(ctx)
    assert seen["dbt"] is full_refresh
    step = pipeline._forecast_step(ctx, load_settings(settings))
    assert step.cache_dir == ctx.data_dir / "forecast_cache" and step.reuse is not full_refresh


def test_the_cli_flag_sets_the_run_context_not_the_environment(tmp_path, monkeypatch):
    import os

    from salesos import cli, pipeline

    seen = []
    monkeypatch.setattr(pipeline, "run_all", lambda ctx, fresh_id: seen.append(ctx) or {"version": "v1"})
    monkeypatch.setattr(pipeline, "format_summary", lambda summary: "ok")
    before = dict(os.environ)
    for flag in ([], ["--full-refresh"]):
        assert cli.main(["run", "--exports", str(tmp_path), "--warehouse", str(tmp_path / "w.duckdb"),
                         "--as-of", "2026-10-31", *flag]) == 0
    assert [ctx.full_refresh for ctx in seen] == [False, True]
    assert dict(os.environ) == before
