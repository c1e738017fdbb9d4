"""The nightly run as five steps: extract, validate, build, forecast, publish.

The Airflow DAG calls each step as a task; `salesos run` calls them in one process. Steps share
nothing but the RunContext and the files it names, so each can run in its own worker. Every step
writes only to the run's build copy; `publish` is the one switch that readers see (every output, all or
nothing: salesos.publish.versions). Each step that writes holds the warehouse's lock (salesos.publish.lock),
`salesos run` for the whole run, so two runs never work on one warehouse at once.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

from salesos.extract.connectors import archive_source
from salesos.extract.connectors.translate import read_translations
from salesos.extract.load import load_raw
from salesos.progress import Reporter, StepProgress, step_summary
from salesos.publish.lock import RunLocked, RunRefused, holds_whole_run, relabel, warehouse_lock
from salesos.run_context import RunContext
from salesos.settings import Settings, load_settings

log = logging.getLogger(__name__)

STEPS = ("extract", "validate", "build", "forecast", "publish")


def _connect(path: Path) -> duckdb.DuckDBPyConnection:
    """A read-write connection under the pipeline's DuckDB memory cap."""
    from salesos.warehouse.duckdb_limits import apply_memory_limit

    con = duckdb.connect(str(path))
    apply_memory_limit(con)
    return con


def _lock(ctx: RunContext, what: str) -> AbstractContextManager[None]:
    """The warehouse's lock for one writing step (re-entered when `salesos run` already holds it)."""
    return warehouse_lock(ctx.warehouse, ctx.run_id, what=what)


OWNER = "owner.json"


def _run_ended(ctx: RunContext, run_id: str) -> bool:
    """A run that published (summary.json) or whose failure Airflow recorded (failure.json)."""
    run_dir = ctx.data_dir / "runs" / run_id
    return (run_dir / "summary.json").exists() or (run_dir / "failure.json").exists()


def _builds_of_runs_under_way(ctx: RunContext) -> list[dict[str, Any]]:
    """Build copies of this warehouse made by Airflow runs that have not ended (their tasks are between steps)."""
    builds = ctx.build_dir.parent
    found = []
    for owner_file in sorted(builds.glob(f"*/{OWNER}")) if builds.is_dir() else []:
        try:
            owner = json.loads(owner_file.read_text(encoding="utf-8"))
        except ValueError:
            continue
        if (owner.get("warehouse") == str(ctx.warehouse) and owner.get("mode") == "steps"
                and owner.get("run_id") != ctx.run_id and not _run_ended(ctx, owner["run_id"])):
            found.append(owner | {"build_dir": str(owner_file.parent)})
    return found


def refuse_used_run_id(ctx: RunContext) -> None:
    """A run id that was published keeps its archive and finance exports: a new run needs a new id."""
    from salesos.publish.versions import run_was_published

    if run_was_published(ctx.warehouse, ctx.data_dir, ctx.run_id) or _finance_folders(ctx, ctx.run_id):
        raise RunRefused(
            f"run {ctx.run_id} was already published; its archive and finance exports are never overwritten. "
            "Start a new run with another run id (`salesos run` without --run-id picks a fresh one)."
        )


class OlderThanPublished(RunRefused):
    """A backfill whose as-of date is before the published warehouse's: it would replace newer numbers."""


def refuse_older_than_published(ctx: RunContext) -> str | None:
    """Refuse a run as of a date before the live version's, unless `ctx.allow_older`; returns that later date.

    Checked when the run starts (nothing is archived or built) and again just before publishing (another run
    may have published meanwhile). With `allow_older` the run goes on and the summary says what it replaced.
    """
    from datetime import date

    from salesos.publish.versions import live_version

    live = live_version(ctx.warehouse, ctx.data_dir)
    if live is None or date.fromisoformat(live.as_of) <= ctx.as_of:
        return None
    if not ctx.allow_older:
        raise OlderThanPublished(
            f"run {ctx.run_id} is as of {ctx.as_of.isoformat()}, but the published warehouse {ctx.warehouse} is as "
            f"of a later date, {live.as_of} (version {live.version_id}, run {live.run_id}): publishing would "
            "replace its numbers with older ones, so the run was refused and the published warehouse was not "
            "changed. Pass --allow-older (DAG param allow_older) to publish it anyway; `salesos rollback` "
            "restores the later version."
        )
    log.warning("run %s as of %s will publish over the warehouse as of %s (allowed by --allow-older)",
                ctx.run_id, ctx.as_of, live.as_of)
    return live.as_of


def _finance_folders(ctx: RunContext, run_id: str) -> list[Path]:
    return list((ctx.data_dir / "exports").glob(f"as_of=*/run={run_id}"))


def fresh_run_id(ctx: RunContext) -> RunContext:
    """The context with the first run id not used before: `asof_<date>`, then `asof_<date>.2`, `.3`, ...

    Used: published, or with an archive (local, or kept in object storage) or finance exports folder; so a
    re-run of a date never replaces an earlier run's archive or exports.
    """
    from salesos.extract.landing import kept_archive_exists
    from salesos.publish.versions import run_was_published

    base, n, run_id = ctx.run_id, 1, ctx.run_id
    kept = ctx.kept_archive_root
    while (run_was_published(ctx.warehouse, ctx.data_dir, run_id) or _finance_folders(ctx, run_id)
           or (ctx.data_dir / "archive" / run_id).exists()
           or (kept is not None and kept_archive_exists(kept, run_id))):
        n += 1
        run_id = f"{base}.{n}"
    return dataclasses.replace(ctx, run_id=run_id)


def _write_step(ctx: RunContext, step: str, result: dict[str, Any]) -> dict[str, Any]:
    ctx.run_dir.mkdir(parents=True, exist_ok=True)
    (ctx.run_dir / f"{step}.json").write_text(json.dumps(result, indent=2, default=str), encoding="utf-8")
    return result


def extract(ctx: RunContext, progress: StepProgress | None = None) -> dict[str, Any]:
    """Archive the exports untouched, start the build copy, and load the raw tables (progress: each export's rows)."""
    with _lock(ctx, "extract"):
        return _extract(ctx, progress)


def _extract(ctx: RunContext, progress: StepProgress | None = None) -> dict[str, Any]:
    from salesos.warehouse.storage import connect_warehouse, convert_to_compat

    settings = load_settings(ctx.settings_file)  # fail early on a bad settings file
    refuse_used_run_id(ctx)
    refuse_older_than_published(ctx)
    # a retried extract of the same run (Airflow) replaces its own archive, which no publish has used
    source = ctx.source or settings.source
    archived = archive_source(source, ctx.exports, ctx.archive_dir, settings.connector_tables,
                              settings.connector_schema,
                              {"team_regions": settings.team_regions, "team_segments": settings.team_segments})
    kept = ctx.kept_archive_root
    if kept is not None:  # before anything is built: a run id whose archive is kept with other files stops here
        from salesos.extract.landing import keep_archive

        kept = keep_archive(ctx.archive_dir, kept)
    remove_stale_builds(ctx)
    ctx.build_dir.mkdir(parents=True)
    owner = {"run_id": ctx.run_id, "warehouse": str(ctx.warehouse),
             "mode": "run" if holds_whole_run(ctx.warehouse) else "steps"}
    (ctx.build_dir / OWNER).write_text(json.dumps(owner), encoding="utf-8")
    if ctx.warehouse.exists():
        # A byte copy takes no DuckDB lock, so a BI tool holding the published file never blocks us;
        # history kept in the warehouse (forecasts) carries over to the new version.
        shutil.copyfile(ctx.warehouse, ctx.build_warehouse)
        if settings.bi_compat_copy:
            convert_to_compat(ctx.build_warehouse)  # a warehouse from before 1.4-format files, once
    # with the BI copy on, a new warehouse is created in the DuckDB 1.4 format (salesos.warehouse.storage)
    con = connect_warehouse(ctx.build_warehouse, compat=settings.bi_compat_copy)
    try:
        from salesos.validate.gx_checks import check_no_export_vanished, last_published_loads

        # the last good run's rows per export, read before this run's load replaces a re-run's own audit rows
        previous_run, previous = last_published_loads(con)
        # _loaded_at is load metadata (when the bytes arrived), never used by a model
        # the files this step has just archived and hashed: checking them against the manifest again
        # (read_manifest) would read every byte a third time, 4.5 s at scale M
        result = load_raw(
            con, ctx.archive_dir, archived, ctx.run_id, datetime.now(UTC), full_refresh=ctx.full_refresh,
            settings=settings, work_dir=ctx.build_dir, progress=progress,
        )
        check_no_export_vanished(con, ctx.run_id, previous_run, previous, settings)
        from forecasting.nightly import ensure_forecast_table
        from forecasting.projection_nightly import ensure_projection_table

        ensure_forecast_table(con)
        ensure_projection_table(con)
    finally:
        con.close()
    return _write_step(
        ctx,
        "extract",
        {
            "rows_read": result.read,
            "rows_loaded": result.loaded,
            "rows_quarantined": result.quarantined,
            "quarantined_by_rule": result.by_rule,
            "encodings": result.encodings,
            "number_formats": result.number_formats,
            "missing_columns": result.missing_columns,
            "extra_columns": result.extra_columns,
            "load_mode": result.mode,
            "rows_changed": result.changes,
            "archive": str(ctx.archive_dir),
            "archive_kept_in": kept,
            "source": source,
            # a connector source: what was left out of each landed table and why (salesos.extract.connectors)
            "translation": read_translations(ctx.archive_dir).get("translation", {}),
            # the baseline of the validate step's shrink guard
            "previous_run": {"run_id": previous_run, "row_counts": previous},
        },
    )


def validate(ctx: RunContext) -> dict[str, Any]:
    """Great Expectations on the raw tables; a failing check stops the run before any model is built."""
    from salesos.validate.gx_checks import ValidationFailed, run_params, validate_raw, write_report
    from salesos.validate.stages import check_stages

    extracted = ctx.run_dir / "extract.json"
    previous = None
    if extracted.exists():  # the last published run's rows, as the extract step read them before its load
        previous = (json.loads(extracted.read_text(encoding="utf-8")).get("previous_run") or {}).get("row_counts")
    settings = load_settings(ctx.settings_file)
    con = duckdb.connect(str(ctx.build_warehouse), read_only=True)
    try:
        params = run_params(con, ctx.run_id, settings, ctx.as_of, previous=previous,
                            allow_exports_after_as_of=ctx.allow_exports_after_as_of)
        report = validate_raw(con, params, docs_dir=ctx.run_dir / "data_docs", run_name=ctx.run_id,
                              chunk_rows=settings.validate_chunk_rows)
        # a stage no source knows would be neither open nor closed in every pipeline model: stop here
        check_stages(con, settings, report, ctx.settings_file)
    except ValidationFailed as exc:
        write_report(exc.report, ctx.run_dir / "validation.json")
        raise
    finally:
        con.close()
    write_report(report, ctx.run_dir / "validation.json")
    return _write_step(
        ctx,
        "validate",
        {
            "suites": len(report.suites),
            "expectations": report.expectations,
            "warnings": [w.message() for w in report.warnings],
            "data_docs": report.data_docs,
        },
    )


def _on_postgres(ctx: RunContext) -> bool:
    return ctx.dbt_target == "postgres"


def _copy_to_postgres(ctx: RunContext, schemas: tuple[str, ...]) -> dict[str, int]:
    """On the postgres target the loader's and the forecast's tables are copied where dbt builds."""
    from salesos.warehouse.postgres import copy_raw_to_postgres, pg_dsn_from_env

    return copy_raw_to_postgres(ctx.build_warehouse, pg_dsn_from_env(), schemas)


def _on_spark(ctx: RunContext) -> bool:
    return ctx.dbt_target == "spark"


def _spark_place(ctx: RunContext) -> dict[str, Any]:
    """run_dbt's arguments for where a Spark night builds: the local metastore folder and the night's schemas."""
    if not _on_spark(ctx):
        return {}
    from salesos.warehouse.spark import night_prefix, spark_root

    return {"spark_dir": spark_root(ctx.data_dir), "schema_prefix": night_prefix(ctx.run_id)}


def _to_spark(ctx: RunContext, schemas: tuple[str, ...], *, marts_back: bool = False) -> dict[str, int]:
    """On the spark target: register the build copy's `schemas` as the night's Spark tables (Parquet), and with
    marts_back copy the marts Spark built back into the build copy first (salesos.warehouse.spark)."""
    from salesos.warehouse.spark import copy_from_spark, copy_to_spark, local_session, night_prefix, spark_root

    root, prefix = spark_root(ctx.data_dir), night_prefix(ctx.run_id)
    with local_session(root) as spark:
        copied = copy_from_spark(spark, ctx.build_warehouse, root / "files" / prefix, prefix) if marts_back else {}
        if schemas:
            copied |= copy_to_spark(spark, ctx.build_warehouse, root / "files" / prefix, prefix, schemas)
    return copied


@contextmanager
def _spark_step(ctx: RunContext) -> Iterator[None]:
    """On the spark target: one SparkSession (one JVM) for all the Spark work of a step, dbt's included (it runs
    in the process and dbt-spark's session method takes this session); elsewhere nothing."""
    if not _on_spark(ctx):
        yield
        return
    from salesos.warehouse.spark import local_session, spark_root

    with local_session(spark_root(ctx.data_dir)):
        yield


def _marts_from_spark(ctx: RunContext) -> dict[str, int]:
    """The marts dbt just built on Spark, copied into the build copy: every later reader of the night reads them."""
    return _to_spark(ctx, (), marts_back=True)


# Spark's Parquet tables take no dbt snapshot (dbt-spark's wants Delta, Iceberg or Hudi), and a Spark night's
# schemas start empty. So on the spark target the snapshots (and the staging views they read) are taken on the
# build copy, a byte copy of the published warehouse that holds every earlier night's versions, exactly as on
# DuckDB; the `snapshots` schema is then registered on Spark with the raw tables, and Spark's build leaves
# the snapshots out. The published DuckDB warehouse carries the history to the next night.
SNAPSHOTS_ON_BUILD_COPY = ["build", "--select", "+resource_type:snapshot",
                           "--exclude-resource-type", "test", "--exclude-resource-type", "unit_test"]
SPARK_BUILD_EXCLUDES = ["--exclude-resource-type", "snapshot"]


def _snapshots_on_build_copy(ctx: RunContext) -> dict[str, Any]:
    """The night's dbt snapshots on the build copy (DuckDB), for the spark target (see SNAPSHOTS_ON_BUILD_COPY)."""
    from salesos.transform.dbt_build import run_dbt

    return run_dbt(SNAPSHOTS_ON_BUILD_COPY, warehouse=ctx.build_warehouse, run_dir=ctx.run_dir / "snapshots",
                   settings=load_settings(ctx.settings_file), as_of=ctx.as_of.isoformat(), target="duckdb",
                   run_id=ctx.run_id).to_dict()


def _read_marts(ctx: RunContext) -> Any:
    """A read-only connection to wherever dbt built the marts: the build copy, or Postgres."""
    if _on_postgres(ctx):
        from salesos.warehouse.postgres import PgReader, pg_dsn_from_env

        return PgReader(pg_dsn_from_env())
    from salesos.warehouse.duckdb_limits import apply_memory_limit

    con = duckdb.connect(str(ctx.build_warehouse), read_only=True)
    apply_memory_limit(con)
    return con


def build(ctx: RunContext, progress: StepProgress | None = None) -> dict[str, Any]:
    """dbt build (models and data tests) on the build copy, or on Postgres after copying the raw tables there.

    progress: dbt's nodes as dbt reports each one done.
    """
    from salesos.semantic.manifest import MANIFEST_FILE, store_manifest
    from salesos.transform.dbt_build import NIGHTLY_BUILD, run_dbt

    with _lock(ctx, "dbt build"), _spark_step(ctx):
        if _on_postgres(ctx):
            _copy_to_postgres(ctx, ("raw", "quarantine", "forecasts"))
        if _on_spark(ctx):
            _snapshots_on_build_copy(ctx)
            _to_spark(ctx, ("raw", "quarantine", "forecasts", "snapshots"))
        result = run_dbt(
            [*NIGHTLY_BUILD, *SPARK_BUILD_EXCLUDES] if _on_spark(ctx) else NIGHTLY_BUILD,
            warehouse=ctx.build_warehouse,
            run_dir=ctx.run_dir,
            settings=load_settings(ctx.settings_file),
            as_of=ctx.as_of.isoformat(),
            target=ctx.dbt_target,
            run_id=ctx.run_id,
            full_refresh=ctx.full_refresh,
            on_line=progress.dbt_line if progress is not None else None,
            in_process=_on_spark(ctx),
            **_spark_place(ctx),
        )
        if _on_spark(ctx):
            _marts_from_spark(ctx)
        # The semantic layer's definitions go into the build copy, so each published version answers
        # `salesos metrics` with the metrics it was built with (salesos/semantic/manifest.py).
        metrics = store_manifest(ctx.build_warehouse, ctx.run_dir / "dbt_target" / MANIFEST_FILE,
                                 as_of=ctx.as_of, run_id=ctx.run_id)
        return _write_step(ctx, "build", result.to_dict() | {"semantic_metrics": metrics})


def _forecast_step(ctx: RunContext, settings: Settings) -> Any:
    """The run's forecast step (forecasting.nightly.ForecastStep): its folders, settings and cache policy."""
    from forecasting.nightly import ForecastStep

    return ForecastStep.for_run(settings, ctx.build_dir, ctx.run_dir, ctx.data_dir, full_refresh=ctx.full_refresh)


def forecast_plan(ctx: RunContext) -> list[str]:
    """Read the bookings series from the built marts once; return the chunks (one per region) to forecast."""
    from forecasting.nightly import plan

    step = _forecast_step(ctx, load_settings(ctx.settings_file))
    with _lock(ctx, "forecast plan"):
        con = _read_marts(ctx)
        try:
            return plan(con, step)
        finally:
            con.close()


def forecast_chunk(ctx: RunContext, chunk: str) -> dict[str, Any]:
    """Forecast one chunk of series; touches no warehouse, so chunks run in parallel on any worker."""
    from forecasting.nightly import run_chunks

    return run_chunks(_forecast_step(ctx, load_settings(ctx.settings_file)), [chunk])[0]


def forecast_store(ctx: RunContext) -> dict[str, Any]:
    """Reconcile the chunks, check the rows (Great Expectations), append them, and draw the charts."""
    with _lock(ctx, "forecast store"):
        return _forecast_store(ctx)


def _forecast_store(ctx: RunContext) -> dict[str, Any]:
    from forecasting.nightly import charts, store, summary
    from salesos.validate.gx_checks import validate_forecasts

    step = _forecast_step(ctx, load_settings(ctx.settings_file))
    con = _connect(ctx.build_warehouse)
    try:
        stored = store(con, step, ctx.as_of, ctx.run_id, check=validate_forecasts)
    finally:
        con.close()
    if stored.rows.empty:
        log.warning("no closed bookings before %s: no forecast written", ctx.as_of)
        return _write_step(ctx, "forecast", summary(step, stored, []))
    if _on_postgres(ctx):
        _copy_to_postgres(ctx, ("forecasts",))
    con = _read_marts(ctx)
    try:
        drawn = charts(con, step, stored.rows)
    finally:
        con.close()
    return _write_step(ctx, "forecast", summary(step, stored, drawn))


def forecast(ctx: RunContext) -> dict[str, Any]:
    """Forecast bookings at every level from the marts (plan, every chunk in one process pool or, with
    `forecast_executor: spark`, as Spark tasks; store), project the periods, then build the marts that read
    both (forecast_marts)."""
    with _spark_step(ctx):  # on Spark: one JVM for the chunks and forecast_marts' copies and dbt build
        return _forecast(ctx)


def _forecast(ctx: RunContext) -> dict[str, Any]:
    """The forecast step's work (see forecast), inside its Spark session when there is one."""
    from forecasting.nightly import run_chunks

    chunks = forecast_plan(ctx)
    if chunks:
        settings = load_settings(ctx.settings_file)
        step = _forecast_step(ctx, settings)
        if settings.forecast_executor == "spark":
            from forecasting.spark_executor import forecast_chunks_on_spark
            from salesos.warehouse.spark import local_session, spark_root

            with local_session(spark_root(ctx.data_dir)) as spark:
                forecast_chunks_on_spark(spark, step.work_dir, chunks, **step.chunk_options())
        else:
            run_chunks(step, chunks)
    result = forecast_store(ctx)
    projection(ctx, full_refresh=ctx.full_refresh)
    forecast_marts(ctx, rescore=bool(result.get("backtest_rows_new")))
    return result


def projection(ctx: RunContext, *, full_refresh: bool) -> dict[str, Any]:
    """The in-quarter projection (forecasting.projection_nightly) into the build copy (its marts: forecast_marts).

    A first night or a full refresh replays the last fiscal quarters; other nights add the new day(s).
    """
    with _lock(ctx, "projection"):
        return _projection(ctx, full_refresh)


def _projection(ctx: RunContext, full_refresh: bool) -> dict[str, Any]:
    from forecasting.projection_nightly import ProjectionOptions, project

    settings = load_settings(ctx.settings_file)
    options = ProjectionOptions.from_settings(settings)
    write = _connect(ctx.build_warehouse)
    # on Postgres the marts are read there; the table itself lives in the build copy and is copied over
    read = _read_marts(ctx) if _on_postgres(ctx) else write
    try:
        result = project(read, write, as_of=ctx.as_of, run_id=ctx.run_id, model_dir=ctx.run_dir / "projection_model",
                         full_refresh=full_refresh, options=options)
    finally:
        if read is not write:
            read.close()
        write.close()
    if _on_postgres(ctx):
        _copy_to_postgres(ctx, ("forecasts",))
    return _write_step(ctx, "projection", result)


# The dbt models that read the forecast step's own tables, built again once tonight's rows are in: the projection's
# (every night), and the forecast accuracy marts when the forecast stored a backtest origin no earlier night had.
PROJECTION_MODELS = "stg_forecasts__period_projections+"
FORECAST_MODELS = "stg_forecasts__forecasts+"


def forecast_marts_build(rescore: bool) -> list[str]:
    """The dbt command of forecast_marts: one build of every model downstream of tonight's new rows."""
    select = [PROJECTION_MODELS, *([FORECAST_MODELS] if rescore else [])]
    return ["build", "--select", *select, "--exclude-resource-type", "unit_test"]


def seed_partial_parse(build_run_dir: Path, run_dir: Path) -> bool:
    """Give a later dbt command of the night the build step's parse (its target's partial_parse.msgpack).

    Each dbt command has its own target folder, so without it dbt parses the whole project again: most of
    what the projection's few models cost (benchmarks/projection.md). dbt checks the file's hashes of the
    project, profile and vars, and parses in full when any differ, so a stale file costs only the full parse.
    """
    seed = build_run_dir / "dbt_target" / "partial_parse.msgpack"
    target = run_dir / "dbt_target" / seed.name
    if not seed.exists() or target.exists():
        return False
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(seed, target)
    return True


def forecast_marts(ctx: RunContext, *, rescore: bool) -> dict[str, Any]:
    """One dbt build after the forecast and the projection stored their rows (rather than one after each).

    The build step ran before them, on the rows stored until last night. This rebuilds, with their data tests,
    the projection accuracy marts and, when `rescore` (the forecast stored a new backtest origin: a month
    closed), the forecast accuracy marts, so the first night's track record is scored tonight, not a night later.
    """
    from salesos.transform.dbt_build import run_dbt

    with _lock(ctx, "forecast marts"), _spark_step(ctx):
        if _on_spark(ctx):  # tonight's forecast and projection rows, for the marts Spark builds from them
            _to_spark(ctx, ("forecasts",))
        seed_partial_parse(ctx.run_dir, ctx.run_dir / "forecast_marts")
        built = run_dbt(forecast_marts_build(rescore), warehouse=ctx.build_warehouse,
                        run_dir=ctx.run_dir / "forecast_marts", settings=load_settings(ctx.settings_file),
                        as_of=ctx.as_of.isoformat(), target=ctx.dbt_target, run_id=ctx.run_id,
                        in_process=_on_spark(ctx), **_spark_place(ctx))
        if _on_spark(ctx):
            _marts_from_spark(ctx)
    return _write_step(ctx, "forecast_marts", {"accuracy_rebuilt": rescore, **built.to_dict()})


def publish(ctx: RunContext) -> dict[str, Any]:
    """Publish the build copy with its BI copy, finance exports and version record, all or nothing.

    Every output is staged beside its target and audited; then one journal write commits and each output
    is switched by a rename (salesos.publish.versions). A retried publish of a run that a kill interrupted
    after its commit finishes it and returns its summary.
    """
    from salesos.publish.report import report_path
    from salesos.publish.versions import compat_path, finance_dir, live_version, publish_set, recover

    with _lock(ctx, "publish"):
        recover(ctx.warehouse, ctx.data_dir)
        live = live_version(ctx.warehouse, ctx.data_dir)
        if live is not None and live.run_id == ctx.run_id and not ctx.build_warehouse.exists():
            summary_file = ctx.run_dir / "summary.json"
            if summary_file.exists():
                return json.loads(summary_file.read_text(encoding="utf-8"))
            return _write_summary(ctx, live.version_id, {})
        replaced_later = refuse_older_than_published(ctx)
        settings = load_settings(ctx.settings_file)
        if settings.bi_compat_copy:
            _rewrite_for_duckdb_1x(ctx.build_warehouse)
        report = build_run_report(ctx, settings)
        try:
            version = publish_set(
                ctx.build_warehouse,
                ctx.warehouse,
                ctx.data_dir,
                ctx.run_id,
                ctx.as_of.isoformat(),
                keep=settings.keep_versions,
                bi_copy=settings.bi_compat_copy,
                finance=settings.finance_exports,
                audit=audit_staged,
                report=report.index.parent,
            )
        except BaseException:
            shutil.rmtree(report.index.parent, ignore_errors=True)  # no report of a warehouse never published
            raise
        extra: dict[str, Any] = {"report": str(report.index),
                                 "report_latest": str(report_path(ctx.warehouse) / "index.html")}
        if replaced_later:
            extra["replaced_later_as_of"] = replaced_later
        if _on_spark(ctx):
            extra["spark_views"] = _publish_on_spark(ctx)
        if settings.finance_exports:
            extra["finance_exports"] = str(finance_dir(ctx.data_dir, ctx.as_of.isoformat(), ctx.run_id))
        if settings.bi_compat_copy:
            extra["bi_compat_copy"] = str(compat_path(ctx.warehouse))
        shutil.rmtree(ctx.build_dir, ignore_errors=True)
        return _write_summary(ctx, version.version_id, extra)


def build_run_report(ctx: RunContext, settings: Settings) -> Any:
    """The run's report (`<data>/runs/<run_id>/report/`), read from the marts about to be published.

    Built from the build copy once it is final (on the postgres target from Postgres, where dbt built the
    marts), so the pages show exactly what the publish makes live; a failure stops the publish.
    """
    from salesos.publish.report.build import build_report, context_for_run, write_report

    rctx = context_for_run(ctx.run_dir, as_of=ctx.as_of, run_id=ctx.run_id, version=None, warehouse=ctx.warehouse,
                           settings=settings)
    out = ctx.run_dir / "report"
    if _on_postgres(ctx):
        con = _read_marts(ctx)
        try:
            result = write_report(con, out, rctx, data_docs_href=rctx.data_docs)
        finally:
            con.close()
    else:
        result = build_report(ctx.build_warehouse, out, rctx)
    log.info("report: %d pages, %d charts in %.1f s (%s)", result.pages, result.charts, result.seconds, result.index)
    return result


def _publish_on_spark(ctx: RunContext) -> int:
    """Switch Spark's published views (`marts.*`, `forecasts.*`) to tonight's tables; drop nights no kept
    version names (salesos.warehouse.spark). Runs after the version set is committed; readers of the views see
    the last good night until then."""
    from salesos.publish.versions import list_versions
    from salesos.warehouse.spark import (
        drop_night,
        local_session,
        night_prefix,
        night_prefixes,
        publish_views,
        spark_root,
    )

    root, prefix = spark_root(ctx.data_dir), night_prefix(ctx.run_id)
    kept = {night_prefix(v.run_id) for v in list_versions(ctx.warehouse, ctx.data_dir)} | {prefix}
    with local_session(root) as spark:
        switched = publish_views(spark, prefix)
        for old in night_prefixes(spark):
            if old not in kept:
                drop_night(spark, old)
                shutil.rmtree(root / "files" / old, ignore_errors=True)
    return len(switched)


def _discard_on_spark(ctx: RunContext) -> None:
    """A failed Spark night's schemas and files go; the published views never pointed at them."""
    from salesos.publish.versions import live_version
    from salesos.warehouse.spark import drop_night, local_session, night_prefix, spark_root

    live = live_version(ctx.warehouse, ctx.data_dir)
    if live is not None and live.run_id == ctx.run_id:
        return  # the night was published (a failure after its commit): it is what readers see
    root, prefix = spark_root(ctx.data_dir), night_prefix(ctx.run_id)
    if not (root / "metastore_db").exists():
        return
    with local_session(root) as spark:
        drop_night(spark, prefix)
    shutil.rmtree(root / "files" / prefix, ignore_errors=True)


def _rewrite_for_duckdb_1x(build_warehouse: Path) -> None:
    """Write the night's build copy afresh in the 1.4 format (one COPY FROM DATABASE) before it is published.

    DuckDB 2.0's updates and deletes inside a file created in the 1.4 format can leave metadata that DuckDB 1.4
    cannot load ("Failed to load metadata pointer"): seen on a first night of the sample with the track record
    and the projection replay, while DuckDB 2.0 still read the file. A file written in one pass is readable by
    both; the rewrite replaces the private build copy atomically, so a kill leaves it as it was.
    """
    from salesos.warehouse.storage import copy_database

    copy_database(build_warehouse, build_warehouse)


def _write_summary(ctx: RunContext, version_id: str, extra: dict[str, Any]) -> dict[str, Any]:
    summary = summarize(ctx) | {"version": version_id} | extra
    text = json.dumps(summary, indent=2, default=str)
    ctx.run_dir.mkdir(parents=True, exist_ok=True)
    (ctx.run_dir / "summary.json").write_text(text, encoding="utf-8")
    (ctx.run_dir.parent / "latest.json").write_text(text, encoding="utf-8")
    return summary


def _tables(path: Path) -> list[tuple[str, str]]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.execute("select table_schema, table_name from information_schema.tables "
                           "where table_schema in ('marts', 'forecasts') order by 1, 2").fetchall()
    finally:
        con.close()


def audit_staged(staged: dict[str, Path]) -> None:
    """Before anything readers see changes: every staged output is whole and holds the same tables."""
    from salesos.publish.versions import PublishError

    wh = staged["warehouse"]
    tables = _tables(wh)  # it opens (on the postgres target the marts live in Postgres, not in this file)
    if staged["version"].stat().st_size != wh.stat().st_size:
        raise PublishError(f"audit: the kept version {staged['version']} differs in size from {wh}")
    if "bi_copy" in staged and _tables(staged["bi_copy"]) != tables:
        raise PublishError(f"audit: the staged BI copy {staged['bi_copy']} does not hold the warehouse's tables")
    if "report" in staged:
        from salesos.publish.report.build import missing_pages

        missing = missing_pages(staged["report"])
        if missing:
            raise PublishError(f"audit: the staged report {staged['report']} lacks {', '.join(missing)}")
    if "finance" in staged:
        written = {p.name for p in staged["finance"].iterdir()}
        con = duckdb.connect(str(wh), read_only=True)
        try:
            base = con.execute("select table_schema, table_name from information_schema.tables where "
                               "table_type = 'BASE TABLE' and table_schema in ('marts', 'forecasts')").fetchall()
        finally:
            con.close()
        missing = [f"{s}.{t}.{fmt}" for s, t in base for fmt in ("parquet", "csv") if f"{s}.{t}.{fmt}" not in written]
        if missing:
            raise PublishError(f"audit: finance exports missing from {staged['finance']}: {', '.join(missing)}")


def remove_stale_builds(ctx: RunContext) -> list[Path]:
    """Remove build copies left by killed or failed runs (and this run's own earlier attempt).

    Called under the warehouse lock, so no other process is working on a build now. A `salesos run`
    build copy is then stale (its run held the lock for its whole life). An Airflow run's copy lives
    between its tasks: another Airflow run removes it (the DAG allows one active run), a `salesos run`
    only once that run ended (its failure recorded); run_all refuses to start beside it before that.
    """
    removed = []
    builds = ctx.build_dir.parent
    whole_run = holds_whole_run(ctx.warehouse)
    if builds.is_dir():
        for d in builds.iterdir():
            if not d.is_dir():
                continue
            try:
                owner = json.loads((d / OWNER).read_text(encoding="utf-8"))
            except (OSError, ValueError):
                owner = None
            if d != ctx.build_dir:
                ours = (owner.get("warehouse") == str(ctx.warehouse) if owner
                        else any(p.name.startswith(ctx.warehouse.name) for p in d.iterdir()))
                if not ours:
                    continue
                if owner and owner.get("mode") == "steps" and whole_run and not _run_ended(ctx, owner["run_id"]):
                    log.warning("kept the build copy %s of run %s, which has not ended", d, owner["run_id"])
                    continue
            shutil.rmtree(d, ignore_errors=True)
            removed.append(d)
    if removed:
        log.warning("removed stale build copies: %s", ", ".join(str(d) for d in removed))
    return removed


def discard(ctx: RunContext) -> None:
    """Drop a failed run's build copy (on Spark, its night's schemas too); the published warehouse is untouched."""
    shutil.rmtree(ctx.build_dir, ignore_errors=True)
    if _on_spark(ctx):
        try:
            _discard_on_spark(ctx)
        except Exception:  # the failure being reported matters more; the next publish drops the night anyway
            log.exception("could not drop the failed night's Spark schemas")


def summarize(ctx: RunContext) -> dict[str, Any]:
    """What a person wants after a run: rows, models, tests, forecasts, and where things are."""
    steps: dict[str, Any] = {}
    for step in STEPS[:-1]:
        p = ctx.run_dir / f"{step}.json"
        if p.exists():
            steps[step] = json.loads(p.read_text(encoding="utf-8"))
    build_result = steps.get("build", {})
    projection_file = ctx.run_dir / "projection.json"
    projected = json.loads(projection_file.read_text(encoding="utf-8")) if projection_file.exists() else {}
    return {
        "run_id": ctx.run_id,
        "as_of": ctx.as_of.isoformat(),
        "rows_loaded": steps.get("extract", {}).get("rows_loaded", {}),
        "rows_quarantined": steps.get("extract", {}).get("rows_quarantined", {}),
        "quarantined_by_rule": steps.get("extract", {}).get("quarantined_by_rule", {}),
        "number_formats": steps.get("extract", {}).get("number_formats", {}),
        "missing_columns": steps.get("extract", {}).get("missing_columns", {}),
        "extra_columns": steps.get("extract", {}).get("extra_columns", {}),
        "source": steps.get("extract", {}).get("source", "exports"),
        "translation": steps.get("extract", {}).get("translation", {}),
        "checks": {
            "expectations": steps.get("validate", {}).get("expectations", 0),
            "warnings": steps.get("validate", {}).get("warnings", []),
            "data_docs": steps.get("validate", {}).get("data_docs"),
        },
        "models_built": build_result.get("models", 0),
        "tests_passed": build_result.get("tests_passed", 0),
        "tests_warned": build_result.get("tests_warned", 0),
        # the published forecast (one per series and month); Prophet's own and the backtest rows beside it
        "forecast_rows": steps.get("forecast", {}).get("selected_rows", steps.get("forecast", {}).get("rows", 0)),
        "forecast_prophet_rows": steps.get("forecast", {}).get("prophet_rows", 0),
        "forecast_backtest_rows": steps.get("forecast", {}).get("backtest_rows_new", 0),
        "forecast_series": steps.get("forecast", {}).get("series", 0),
        "forecast_charts": steps.get("forecast", {}).get("charts"),
        "projection_rows": projected.get("rows", 0),
        "projection_days": projected.get("days", 0),
        # how many open deal-days each input rule of the projection applied to (forecasting.projection)
        "projection_rules": projected.get("rules", {}),
        "warehouse": str(ctx.warehouse),
        "run_folder": str(ctx.run_dir),
        "archive": str(ctx.archive_dir),
    }


def format_summary(summary: dict[str, Any]) -> str:
    lines = [
        f"salesos run {summary['run_id']} (as of {summary['as_of']})",
        "",
        f"  {'export':<24} {'loaded':>12} {'quarantined':>12}",
    ]
    quarantined = summary.get("rows_quarantined", {})
    for name, n in summary["rows_loaded"].items():
        lines.append(f"  {name:<24} {n:>12,} {quarantined.get(name, 0):>12,}")
    if summary.get("source", "exports") != "exports":
        lines.append(f"  from the {summary['source']} tables (archived untouched under landed/):")
        for table, t in summary.get("translation", {}).items():
            made = ", ".join(
                [f"{t['written_rows']:,} current"] * bool(t["written_rows"] or not t["history_rows"])
                + [f"{t['history_rows']:,} OpportunityHistory"] * bool(t["history_rows"])
            )
            if t.get("joined_into") and not (t["written_rows"] or t["history_rows"]):
                made = f"read into {t['joined_into']}"
            lines.append(f"    {table}: {t['landed_rows']:,} landed -> {made}")
    for rule, n in summary.get("quarantined_by_rule", {}).items():
        lines.append(f"  quarantined {rule}: {n:,} (see the quarantine schema)")
    checks = summary["checks"]
    lines += [
        "",
        f"checks run:     {checks['expectations']} expectations, {len(checks['warnings'])} warnings",
        f"models built:   {summary['models_built']}",
        f"tests passed:   {summary['tests_passed']} ({summary['tests_warned']} warned)",
        f"forecasts:      {summary['forecast_rows']} rows for {summary['forecast_series']} series "
        f"(+ {summary.get('forecast_prophet_rows', 0)} Prophet rows beside them, "
        f"{summary.get('forecast_backtest_rows', 0)} new backtest track-record rows)",
        f"projections:    {summary.get('projection_rows', 0)} rows for {summary.get('projection_days', 0)} day(s)",
        "",
        f"warehouse:      {summary['warehouse']}",
        f"run logs:       {summary['run_folder']}",
    ]
    if checks.get("data_docs"):
        lines.append(f"data docs:      {checks['data_docs']}")
    if summary.get("forecast_charts"):
        lines.append(f"forecast charts: {summary['forecast_charts']}")
    if summary.get("bi_compat_copy"):
        lines.append(f"DuckDB 1.x copy: {summary['bi_compat_copy']}")
    if summary.get("finance_exports"):
        lines.append(f"finance exports: {summary['finance_exports']}")
    if summary.get("report_latest"):
        lines.append(f"report:         {summary['report_latest']} (this run's: {summary['report']})")
    if summary.get("replaced_later_as_of"):
        lines.append(f"note: published over a warehouse as of {summary['replaced_later_as_of']}, a later date "
                     "(--allow-older); `salesos rollback` restores it")
    for name, rule in summary.get("number_formats", {}).items():
        if f"{name}:ambiguous_number" in summary.get("quarantined_by_rule", {}):  # say which rule was assumed
            lines.append(f"note: {name} numbers read with {rule}; set number_decimal_separator to load the rest")
    for name, cols in summary.get("missing_columns", {}).items():
        lines.append(f"note: {name} has no {', '.join(cols)} (loaded as empty)")
    for name, cols in summary.get("extra_columns", {}).items():
        # a connector's tables carry dozens of such columns: name the first ones, count the rest
        shown = ", ".join(cols[:12]) + (f" and {len(cols) - 12} more" if len(cols) > 12 else "")
        lines.append(f"note: {name} has columns the contract does not use, kept: {shown}")
    rules = summary.get("projection_rules", {})
    for rule, what in (("missing_amount", "no amount (scored, counted as 0)"),
                       ("close_date_in_past", "a close date already past (scored as open, overdue)"),
                       ("unknown_stage", "a stage the stage rules do not know as open (scored without a stage)")):
        if rules.get(rule):
            lines.append(f"note: projection: {rules[rule]:,} open deal-days with {what}")
    for w in summary["checks"]["warnings"]:
        lines.append(f"warning: {w}")
    return "\n".join(lines)


def run_all(ctx: RunContext, *, fresh_id: bool = False, reporter: Reporter | None = None) -> dict[str, Any]:
    """All steps in one process, holding the warehouse for the whole run; on failure the build copy is dropped.

    fresh_id: the run id is a default (`asof_<date>`) that may be taken: use the first free `.<n>` of it.
    The error carries the step it failed in (`salesos.failures.failed_step`), for the run's message.
    reporter: told each step's start, progress and end (`salesos run`: bars on a terminal, else a line per step).
    """
    reporter = reporter or Reporter()
    from salesos.failures import mark_step

    with warehouse_lock(ctx.warehouse, ctx.run_id, what="salesos run", whole_run=True):
        under_way = _builds_of_runs_under_way(ctx)
        if under_way:
            other = under_way[0]
            raise RunLocked(
                f"{ctx.warehouse} is in use by run {other['run_id']} (an Airflow run between its tasks: build copy "
                f"{other['build_dir']}); run {ctx.run_id} did not start and changed nothing. If that run is over, "
                "let the next DAG run clear it or delete its build folder."
            )
        if fresh_id:
            ctx = fresh_run_id(ctx)
            relabel(ctx.warehouse, ctx.run_id)
        current, progress = "extract", None
        try:
            for current, step in zip(STEPS, (extract, validate, build, forecast, publish), strict=True):
                log.info("step %s", current)
                progress = reporter.start(current)
                result = step(ctx, progress) if step in (extract, build) else step(ctx)
                reporter.finished(progress, step_summary(current, result))
                progress = None
            return result
        except BaseException as exc:
            if progress is not None:
                reporter.finished(progress, "", ok=False)
            discard(ctx)
            mark_step(exc, current)
            raise
