"""The pipeline's steps on their own (the whole run is in test_end_to_end.py)."""

import json
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
        target = kwargs["run_dir"] / "dbt_target"  # what dbt leaves beside its results: the semantic manifest
        target.mkdir(parents=True, exist_ok=True)
        (target / "semantic_manifest.json").write_text('{"metrics": []}', encoding="utf-8")
        return dbt_build.DbtResult()

    monkeypatch.setattr(dbt_build, "run_dbt", run_dbt)
    pipeline.build(ctx)
    assert seen["dbt"] is full_refresh
    step = pipeline._forecast_step(ctx, load_settings(settings))
    assert step.cache_dir == ctx.data_dir / "forecast_cache" and step.reuse is not full_refresh


@pytest.mark.parametrize("new_track", [0, 36])
def test_one_dbt_build_follows_the_forecast_and_the_projection(tmp_path, monkeypatch, new_track):
    """The marts that read the forecast step's tables are built once, after both Python steps stored their rows:
    the projection's every night, the forecast accuracy marts only when a backtest origin was added."""
    from salesos import pipeline
    from salesos.transform import dbt_build

    ctx = RunContext.create(as_of=AS_OF, exports=tmp_path / "exports", warehouse=tmp_path / "wh" / "salesos.duckdb")
    ctx.warehouse.parent.mkdir(parents=True)
    calls: list = []
    monkeypatch.setattr(pipeline, "forecast_plan", lambda ctx: [])
    monkeypatch.setattr(pipeline, "forecast_store",
                        lambda ctx: calls.append("store") or {"backtest_rows_new": new_track})
    monkeypatch.setattr(pipeline, "projection", lambda ctx, full_refresh: calls.append("projection") or {})

    def run_dbt(command, **kwargs):
        calls.append(command)
        return dbt_build.DbtResult(models=3)

    monkeypatch.setattr(dbt_build, "run_dbt", run_dbt)
    pipeline.forecast(ctx)
    selected = ["stg_forecasts__period_projections+"] + (["stg_forecasts__forecasts+"] if new_track else [])
    assert calls == ["store", "projection", ["build", "--select", *selected, "--exclude-resource-type", "unit_test"]]
    step = json.loads((ctx.run_dir / "forecast_marts.json").read_text(encoding="utf-8"))
    assert step["accuracy_rebuilt"] is bool(new_track) and step["models"] == 3


def test_the_forecast_marts_build_starts_from_the_build_steps_parse(tmp_path, monkeypatch):
    """dbt parses the whole project unless its target holds a parse: the night's later build gets the build
    step's (benchmarks/projection.md: most of what the projection's models cost); never over its own."""
    from salesos import pipeline
    from salesos.transform import dbt_build

    ctx = RunContext.create(as_of=AS_OF, exports=tmp_path / "exports", warehouse=tmp_path / "wh" / "salesos.duckdb")
    build_parse = ctx.run_dir / "dbt_target" / "partial_parse.msgpack"
    build_parse.parent.mkdir(parents=True)
    build_parse.write_bytes(b"the build step's parse")
    seen = []

    def run_dbt(command, run_dir, **kwargs):
        seen.append((run_dir / "dbt_target" / "partial_parse.msgpack").read_bytes())
        return dbt_build.DbtResult(models=3)

    monkeypatch.setattr(dbt_build, "run_dbt", run_dbt)
    pipeline.forecast_marts(ctx, rescore=False)
    assert seen == [b"the build step's parse"]
    assert pipeline.seed_partial_parse(ctx.run_dir, ctx.run_dir / "forecast_marts") is False  # has its own
    assert pipeline.seed_partial_parse(tmp_path / "no_build", tmp_path / "later") is False


def test_the_cli_flag_sets_the_run_context_not_the_environment(tmp_path, monkeypatch):
    import os

    from salesos import cli, pipeline

    seen = []
    monkeypatch.setattr(pipeline, "run_all", lambda ctx, fresh_id, reporter=None: seen.append(ctx) or {"version": "v1"})
    monkeypatch.setattr(pipeline, "format_summary", lambda summary: "ok")
    before = dict(os.environ)
    for flag in ([], ["--full-refresh"]):
        assert cli.main(["run", "--exports", str(tmp_path), "--warehouse", str(tmp_path / "w.duckdb"),
                         "--as-of", "2026-10-31", *flag]) == 0
    assert [ctx.full_refresh for ctx in seen] == [False, True]
    assert dict(os.environ) == before


def _publish_as_of(wh, as_of: str, run_id: str) -> None:
    """A live version of `wh` as of `as_of` (a one-table file published as a run would)."""
    from salesos.publish.versions import publish_file

    build = wh.parent / "build" / wh.name
    build.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(build))
    con.execute("create schema marts; create table marts.x as select 1 as x")
    con.close()
    publish_file(build, wh, wh.parent, run_id, as_of)


def test_a_backfill_is_refused_over_a_later_warehouse_unless_allowed(tiny_exports, tmp_path):
    from salesos.pipeline import OlderThanPublished, refuse_older_than_published

    wh = tmp_path / "wh" / "salesos.duckdb"
    wh.parent.mkdir()
    _publish_as_of(wh, "2026-11-30", "asof_2026-11-30")
    ctx = RunContext.create(as_of=AS_OF, exports=tiny_exports, warehouse=wh)
    with pytest.raises(OlderThanPublished) as refused:
        extract(ctx)
    message = str(refused.value)
    assert "as of 2026-10-31" in message and "later date, 2026-11-30" in message and "--allow-older" in message
    assert not ctx.archive_dir.exists() and not ctx.build_dir.exists()  # refused before anything was touched
    # the same date and a later one are no backfill over newer numbers
    assert refuse_older_than_published(RunContext.create(as_of=date(2026, 11, 30), exports=tiny_exports,
                                                         warehouse=wh)) is None
    allowed = RunContext.create(as_of=AS_OF, exports=tiny_exports, warehouse=wh, allow_older=True)
    assert refuse_older_than_published(allowed) == "2026-11-30"
    extract(allowed)
    assert _count(allowed.build_warehouse, "select count(*) from raw.opportunities") == 4


def test_allow_older_is_a_run_option_of_the_cli_the_dag_and_the_context(tiny_exports, tmp_path, capsys):
    from salesos import cli
    from salesos.orchestrate import context_for_run

    wh = tmp_path / "wh" / "salesos.duckdb"
    wh.parent.mkdir()
    _publish_as_of(wh, "2026-11-30", "asof_2026-11-30")
    code = cli.main(["run", "--exports", str(tiny_exports), "--warehouse", str(wh), "--as-of", "2026-10-31"])
    err = capsys.readouterr().err
    assert code == 1
    assert "failed in step extract" in err and "later date, 2026-11-30" in err and "--allow-older" in err
    assert "the published warehouse was not changed" in err
    ctx = context_for_run("manual__2026-10-31", date(2026, 10, 31), {"warehouse": str(wh), "allow_older": True})
    assert ctx.allow_older and RunContext.from_dict(ctx.to_dict()).allow_older
    assert not context_for_run("r", date(2026, 10, 31), {"warehouse": str(wh)}).allow_older
    assert "allow_older" in cli.build_parser().parse_args(
        ["run", "--exports", "e", "--warehouse", "w", "--as-of", "2026-10-31", "--allow-older"]).__dict__
