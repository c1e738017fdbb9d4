from datetime import date, datetime

from salesos.orchestrate import as_of_from_logical_date, context_for_run
from salesos.run_context import RunContext, safe_run_id


def test_build_copy_keeps_the_published_file_name(tmp_path):
    ctx = RunContext.create(as_of=date(2026, 10, 31), exports=tmp_path / "x", warehouse=tmp_path / "wh" / "sales.duckdb")
    assert ctx.run_id == "asof_2026-10-31"
    # DuckDB names the catalog after the file stem: the build copy must have the same name
    assert ctx.build_warehouse.name == "sales.duckdb"
    assert ctx.build_warehouse.parent != ctx.warehouse.parent
    assert ctx.data_dir == tmp_path / "wh"


def test_round_trips_through_a_dict():
    ctx = RunContext.create(as_of=date(2026, 1, 2), exports="s3://bucket/exports", warehouse="/w/a.duckdb")
    assert ctx.exports == "s3://bucket/exports"
    assert RunContext.from_dict(ctx.to_dict()) == ctx


def test_airflow_run_ids_become_folder_names():
    assert safe_run_id("scheduled__2026-10-31T02:00:00+00:00") == "scheduled__2026-10-31T02_00_00_00_00"


def test_as_of_is_the_logical_date_and_params_beat_environment(monkeypatch, tmp_path):
    assert as_of_from_logical_date(datetime(2026, 10, 31, 2, 0)) == date(2026, 10, 31)
    monkeypatch.setenv("SALESOS_EXPORTS", str(tmp_path / "env"))
    monkeypatch.setenv("SALESOS_WAREHOUSE", str(tmp_path / "w.duckdb"))
    ctx = context_for_run("manual__x", datetime(2026, 10, 31), {"exports": str(tmp_path / "param")})
    assert ctx.exports == str(tmp_path / "param")
    assert ctx.warehouse == tmp_path / "w.duckdb"
    assert ctx.as_of == date(2026, 10, 31)


def test_a_killed_runs_build_copy_is_removed_by_the_next_run(tmp_path):
    from salesos.pipeline import remove_stale_builds

    old = RunContext.create(as_of=date(2026, 10, 30), exports=tmp_path, warehouse=tmp_path / "wh" / "s.duckdb")
    old.build_dir.mkdir(parents=True)
    (old.build_dir / "s.duckdb.wal").write_text("killed while dbt was writing")
    unrelated = old.build_dir.parent / "notes"
    unrelated.mkdir()
    new = RunContext.create(as_of=date(2026, 10, 31), exports=tmp_path, warehouse=tmp_path / "wh" / "s.duckdb")
    assert remove_stale_builds(new) == [old.build_dir]
    assert not old.build_dir.exists() and unrelated.exists()


def test_the_source_travels_as_a_run_option_and_an_unknown_one_is_refused(tmp_path):
    import pytest

    from salesos.extract.connectors import UnknownSourceError

    ctx = RunContext.create(as_of=date(2026, 1, 2), exports=tmp_path / "x", warehouse=tmp_path / "a.duckdb",
                            source="fivetran-salesforce")
    assert RunContext.from_dict(ctx.to_dict()) == ctx
    assert RunContext.create(as_of=date(2026, 1, 2), exports=tmp_path, warehouse=tmp_path / "a.duckdb").source is None
    airflow = context_for_run("manual__x", datetime(2026, 10, 31),
                              {"exports": str(tmp_path), "warehouse": str(tmp_path / "w.duckdb"),
                               "source": "airbyte-salesforce"})
    assert airflow.source == "airbyte-salesforce"
    with pytest.raises(UnknownSourceError, match="unknown source 'fivetran'"):
        RunContext.create(as_of=date(2026, 1, 2), exports=tmp_path, warehouse=tmp_path / "a.duckdb", source="fivetran")
