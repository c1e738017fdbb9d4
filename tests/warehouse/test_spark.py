"""The spark dbt target (issue 21): one XS night on a local Spark equals the DuckDB night; a failed night
leaves readers on the published one.

The end-to-end tests share one module fixture: one local Spark metastore, one night at the XS sample of the
digest test (tests/transform/mart_digests.py), with the forecast chunks run as applyInPandas. Its marts and
forecasts are compared with the digests recorded from the DuckDB night (integer types by family: Spark's sum
of integers is a BIGINT where DuckDB's is a HUGEINT).
"""

from __future__ import annotations

import json
import shutil

import duckdb
import pytest
import yaml

from salesos.warehouse.spark import SPARK_ENV_DEFAULTS, _literal, night_prefix, spark_conf, spark_root
from tests.transform.mart_digests import AS_OF, RECORDED, ROOT, SCALE, SEED, SETTINGS, recorded_values


def test_night_prefix_is_a_spark_database_name():
    assert night_prefix("asof_2026-10-31") == "n_asof_2026_10_31_"
    assert night_prefix("asof_2026-10-31.2") == "n_asof_2026_10_31_2_"


def test_profile_and_pipeline_session_use_the_same_spark_configuration(tmp_path):
    """profiles.yml's spark target (dbt's session) and spark_conf (the pipeline's) name the same settings."""
    profile = yaml.safe_load((ROOT / "dbt_project" / "profiles.yml").read_text(encoding="utf-8"))
    params = profile["salesos"]["outputs"]["spark"]["server_side_parameters"]
    root = "../data/spark"  # the profile's default for SALESOS_SPARK_DIR

    def render(value: str) -> str:
        import re

        return re.sub(r"\{\{ env_var\('(\w+)', '([^']*)'\) \}\}", lambda m: m.group(2), str(value))

    conf = spark_conf(root, env={})
    rendered = {k: render(v) for k, v in params.items()}
    assert rendered == conf
    var, default = SPARK_ENV_DEFAULTS["threads"]
    assert profile["salesos"]["outputs"]["spark"]["threads"] == f"{{{{ env_var('{var}', '{default}') | as_number }}}}"


def test_reader_literals_are_quoted():
    import datetime as dt

    assert _literal("it's") == "'it\\'s'"
    assert _literal(dt.date(2026, 10, 31)) == "date'2026-10-31'"
    assert _literal(None) == "null" and _literal(True) == "true" and _literal(3) == "3"


# ---------------------------------------------------------------- one night on local Spark


@pytest.fixture(scope="module")
def spark_night(tmp_path_factory):
    from salesos.generate import generate
    from salesos.pipeline import run_all
    from salesos.run_context import RunContext

    work = tmp_path_factory.mktemp("spark_night")
    generate(work / "exports", scale=SCALE, seed=SEED, as_of=AS_OF)
    settings = work / "settings.yml"
    shutil.copyfile(SETTINGS, settings)
    with settings.open("a", encoding="utf-8") as fh:
        fh.write("\nforecast_executor: spark\n")
    ctx = RunContext.create(as_of=AS_OF, exports=work / "exports", warehouse=work / "wh" / "salesos.duckdb",
                            settings_file=settings, dbt_target="spark")
    summary = run_all(ctx)
    return ctx, summary


def _spark(ctx):
    from salesos.warehouse.spark import local_session

    return local_session(spark_root(ctx.data_dir))


@pytest.mark.e2e
@pytest.mark.spark
def test_spark_night_marts_and_forecasts_equal_the_duckdb_night(spark_night):
    from salesos.warehouse.digest import warehouse_differences

    ctx, summary = spark_night
    recorded = json.loads(RECORDED.read_text(encoding="utf-8"))["tables_integer_family"]
    assert summary["models_built"] > 50 and summary["forecast_rows"] > 0
    diff = warehouse_differences(ctx.warehouse, recorded, recorded_values(), integer_family=True,
                                 exclude=PROJECTION_TABLES)
    assert not diff, "the spark night differs from the DuckDB night:\n" + "\n".join(diff)


# Open (docs/deployment.md): the in-quarter projection, computed in Python from the marts copied back from Spark,
# differs from the DuckDB night's (won_to_date among others), while every mart it reads is equal.
PROJECTION_TABLES = ("forecasts.fct_period_projections", "marts.mart_projection_accuracy",
                     "marts.mart_projection_accuracy_summary")


@pytest.mark.e2e
@pytest.mark.spark
@pytest.mark.xfail(strict=True, reason="open: the projection of a Spark night differs from the DuckDB night's")
def test_spark_night_projection_equals_the_duckdb_night(spark_night):
    from salesos.warehouse.digest import warehouse_digests

    ctx, _ = spark_night
    recorded = json.loads(RECORDED.read_text(encoding="utf-8"))["tables_integer_family"]
    current = warehouse_digests(ctx.warehouse, integer_family=True)
    assert {t: current.get(t) for t in PROJECTION_TABLES} == {t: recorded[t] for t in PROJECTION_TABLES}


@pytest.mark.e2e
@pytest.mark.spark
def test_finance_exports_hold_every_table_spark_built(spark_night):
    ctx, _ = spark_night
    folder = ctx.data_dir / "exports" / f"as_of={AS_OF.isoformat()}" / f"run={ctx.run_id}"
    con = duckdb.connect(str(ctx.warehouse), read_only=True)
    try:
        tables = con.execute("select table_schema, table_name from information_schema.tables where "
                             "table_type = 'BASE TABLE' and table_schema in ('marts', 'forecasts')").fetchall()
        assert len(tables) > 20
        for schema, table in tables:
            n = con.execute(f'select count(*) from "{schema}"."{table}"').fetchall()[0][0]
            for fmt in ("parquet", "csv"):
                path = folder / f"{schema}.{table}.{fmt}"
                reader = "read_parquet" if fmt == "parquet" else "read_csv_auto"
                assert con.execute(f"select count(*) from {reader}('{path}')").fetchall()[0][0] == n, path
    finally:
        con.close()


@pytest.mark.e2e
@pytest.mark.spark
def test_published_views_read_the_nights_tables(spark_night):
    from salesos.warehouse.spark import published_prefix

    ctx, summary = spark_night
    assert summary["spark_views"] > 20
    con = duckdb.connect(str(ctx.warehouse), read_only=True)
    try:
        expected = con.execute("select count(*) from marts.fct_opportunities").fetchall()[0][0]
    finally:
        con.close()
    with _spark(ctx) as spark:
        assert published_prefix(spark) == night_prefix(ctx.run_id)
        assert spark.sql("select count(*) from marts.fct_opportunities").collect()[0][0] == expected


@pytest.mark.e2e
@pytest.mark.spark
def test_a_failed_spark_night_leaves_the_published_night(spark_night, monkeypatch):
    import dataclasses

    from salesos import pipeline
    from salesos.publish.versions import live_version
    from salesos.warehouse.spark import night_prefixes, published_prefix

    ctx, _ = spark_night
    before = live_version(ctx.warehouse, ctx.data_dir)

    def fail(*args, **kwargs):
        raise RuntimeError("injected: dbt failed")

    # dbt fails once the night's raw tables are on Spark (its schemas exist): cheaper than a whole second build
    monkeypatch.setattr("salesos.transform.dbt_build.run_dbt", fail)
    again = dataclasses.replace(ctx)
    with pytest.raises(RuntimeError, match="injected"):
        pipeline.run_all(again, fresh_id=True)  # a new night: asof_<date>.2
    assert live_version(ctx.warehouse, ctx.data_dir) == before
    with _spark(ctx) as spark:
        assert published_prefix(spark) == night_prefix(ctx.run_id)
        assert night_prefixes(spark) == [night_prefix(ctx.run_id)]  # the failed night's schemas are gone
        n = spark.sql("select count(*) from marts.fct_opportunities").collect()[0][0]
    con = duckdb.connect(str(ctx.warehouse), read_only=True)
    try:
        assert n == con.execute("select count(*) from marts.fct_opportunities").fetchall()[0][0]
    finally:
        con.close()


@pytest.mark.e2e
@pytest.mark.spark
def test_forecast_chunk_on_spark_gives_the_rows_of_a_one_process_run(spark_night, tmp_path):
    import pandas as pd

    from forecasting.nightly import forecast_chunks, plan_forecast
    from forecasting.spark_executor import forecast_chunks_on_spark

    ctx, _ = spark_night
    local, on_spark = tmp_path / "local", tmp_path / "spark"
    con = duckdb.connect(str(ctx.warehouse), read_only=True)
    try:
        chunks = plan_forecast(con, local, ("company",))
        assert plan_forecast(con, on_spark, ("company",)) == chunks == ["company"]
    finally:
        con.close()
    options = {"horizon": 12, "origins": 2, "prophet_grid": "primary"}
    forecast_chunks(local, chunks, processes=1, **options)
    with _spark(ctx) as spark:
        reports = forecast_chunks_on_spark(spark, on_spark, chunks, **options)
    assert [r["chunk"] for r in reports] == chunks and reports[0]["series"] > 0
    expected = pd.read_parquet(local / "chunks" / "company.parquet")
    got = pd.read_parquet(on_spark / "chunks" / "company.parquet")
    assert len(expected) > 0
    pd.testing.assert_frame_equal(got, expected)


@pytest.mark.e2e
@pytest.mark.spark
@pytest.mark.xfail(strict=True, run=False, reason="open: its one run (2026-12-07, load about 23) did not finish in "
                   "15 min; hang or slowness of the three JVM starts not diagnosed")
def test_rollback_points_the_published_views_back_at_the_kept_night(tmp_path, capsys):
    """`salesos rollback` restores the DuckDB version and Spark's views with it; a version Spark never built
    is refused for the views (which keep reading the night they read), after the DuckDB rollback is done."""
    from salesos.cli import main as cli_main
    from salesos.publish.versions import list_versions, live_version, publish_file
    from salesos.warehouse.spark import local_session, night_prefix, publish_views, published_prefix

    warehouse, root = tmp_path / "wh.duckdb", spark_root(tmp_path)

    def version(run_id: str) -> None:
        build = tmp_path / "build" / run_id / "wh.duckdb"
        build.parent.mkdir(parents=True)
        build.write_text(run_id)
        publish_file(build, warehouse, tmp_path, run_id, "2026-10-31")

    def read(spark) -> tuple[str, str, str | None]:
        return (spark.sql("select v from marts.t").collect()[0][0], spark.sql("select v from forecasts.f").collect()[0][0],
                published_prefix(spark))

    with local_session(root) as spark:
        for run_id in ("r1", "r2"):
            prefix = night_prefix(run_id)
            for schema, table in (("marts", "t"), ("forecasts", "f")):
                spark.sql(f"create database {prefix}{schema}")
                spark.sql(f"create table {prefix}{schema}.{table} using parquet as select '{run_id}' as v")
            version(run_id)
            publish_views(spark, prefix)
        assert read(spark) == ("r2", "r2", night_prefix("r2"))
    version("r3")  # a version built on another target: Spark has no night of it, its views stay on r2
    assert cli_main(["rollback", "--warehouse", str(warehouse)]) == 0
    assert live_version(warehouse, tmp_path).run_id == "r2"
    assert cli_main(["rollback", "--warehouse", str(warehouse)]) == 0
    assert live_version(warehouse, tmp_path).run_id == "r1"
    assert "Spark's published views (2) read that night again" in capsys.readouterr().out
    with local_session(root) as spark:
        assert read(spark) == ("r1", "r1", night_prefix("r1"))
    r3 = next(v.version_id for v in list_versions(warehouse, tmp_path) if v.run_id == "r3")
    assert cli_main(["rollback", "--warehouse", str(warehouse), "--to", r3]) == 1
    assert live_version(warehouse, tmp_path).run_id == "r3"
    assert "no night n_r3_* for run r3" in capsys.readouterr().err
    with local_session(root) as spark:
        assert read(spark) == ("r1", "r1", night_prefix("r1"))
