"""The nightly run as five steps: extract, validate, build, forecast, publish.

The Airflow DAG calls each step as a task; `salesos run` calls them in one process. Steps share
nothing but the RunContext and the files it names, so each can run in its own worker. Every step
writes only to the run's build copy; `publish` is the single atomic switch that readers see.
"""

from __future__ import annotations

import json
import logging
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

from salesos.extract.landing import archive_exports
from salesos.extract.load import load_raw
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


def _write_step(ctx: RunContext, step: str, result: dict[str, Any]) -> dict[str, Any]:
    ctx.run_dir.mkdir(parents=True, exist_ok=True)
    (ctx.run_dir / f"{step}.json").write_text(json.dumps(result, indent=2, default=str), encoding="utf-8")
    return result


def extract(ctx: RunContext) -> dict[str, Any]:
    """Archive the exports untouched, start the build copy, and load the raw tables."""
    from salesos.warehouse.storage import connect_warehouse, convert_to_compat

    settings = load_settings(ctx.settings_file)  # fail early on a bad settings file
    archived = archive_exports(ctx.exports, ctx.archive_dir)
    remove_stale_builds(ctx)
    ctx.build_dir.mkdir(parents=True)
    if ctx.warehouse.exists():
        # A byte copy takes no DuckDB lock, so a BI tool holding the published file never blocks us;
        # history kept in the warehouse (forecasts) carries over to the new version.
        shutil.copyfile(ctx.warehouse, ctx.build_warehouse)
        if settings.bi_compat_copy:
            convert_to_compat(ctx.build_warehouse)  # a warehouse from before 1.4-format files, once
    # with the BI copy on, a new warehouse is created in the DuckDB 1.4 format (salesos.warehouse.storage)
    con = connect_warehouse(ctx.build_warehouse, compat=settings.bi_compat_copy)
    try:
        # _loaded_at is load metadata (when the bytes arrived), never used by a model
        # the files this step has just archived and hashed: checking them against the manifest again
        # (read_manifest) would read every byte a third time, 4.5 s at scale M
        result = load_raw(con, ctx.archive_dir, archived, ctx.run_id, datetime.now(UTC))
        from forecasting.bookings import ensure_forecast_table

        ensure_forecast_table(con)
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
            "missing_columns": result.missing_columns,
            "extra_columns": result.extra_columns,
            "load_mode": result.mode,
            "rows_changed": result.changes,
            "archive": str(ctx.archive_dir),
        },
    )


def validate(ctx: RunContext) -> dict[str, Any]:
    """Great Expectations on the raw tables; a failing check stops the run before any model is built."""
    from salesos.validate.gx_checks import ValidationFailed, run_params, validate_raw, write_report
    from salesos.validate.stages import check_stages

    con = duckdb.connect(str(ctx.build_warehouse), read_only=True)
    try:
        params = run_params(con, ctx.run_id, load_settings(ctx.settings_file), ctx.as_of)
        report = validate_raw(con, params, docs_dir=ctx.run_dir / "data_docs", run_name=ctx.run_id)
        # a stage no source knows would be neither open nor closed in every pipeline model: stop here
        check_stages(con, load_settings(ctx.settings_file), report, ctx.settings_file)
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


def _read_marts(ctx: RunContext) -> Any:
    """A read-only connection to wherever dbt built the marts: the build copy, or Postgres."""
    if _on_postgres(ctx):
        from salesos.warehouse.postgres import PgReader, pg_dsn_from_env

        return PgReader(pg_dsn_from_env())
    from salesos.warehouse.duckdb_limits import apply_memory_limit

    con = duckdb.connect(str(ctx.build_warehouse), read_only=True)
    apply_memory_limit(con)
    return con


def build(ctx: RunContext) -> dict[str, Any]:
    """dbt build (models and data tests) on the build copy, or on Postgres after copying the raw tables there."""
    from salesos.transform.dbt_build import NIGHTLY_BUILD, run_dbt

    if _on_postgres(ctx):
        _copy_to_postgres(ctx, ("raw", "quarantine", "forecasts"))

    result = run_dbt(
        NIGHTLY_BUILD,
        warehouse=ctx.build_warehouse,
        run_dir=ctx.run_dir,
        settings=load_settings(ctx.settings_file),
        as_of=ctx.as_of.isoformat(),
        target=ctx.dbt_target,
        run_id=ctx.run_id,
    )
    return _write_step(ctx, "build", result.to_dict())


def _forecast_work(ctx: RunContext) -> Path:
    return ctx.build_dir / "forecast"


def _models_dir(ctx: RunContext) -> Path:
    return ctx.run_dir / "forecast_models"


def _forecast_cache(ctx: RunContext, settings: Settings) -> tuple[Path | None, bool]:
    """Where unchanged series' forecasts are kept between nights, and whether this run may reuse them.

    The cache sits beside the warehouse (on a filesystem every forecast worker sees, as the run folders do);
    a full refresh fits every series again and rewrites it.
    """
    from salesos.extract.load import full_refresh_requested

    if not settings.forecast_reuse_unchanged:
        return None, False
    return ctx.data_dir / "forecast_cache", not full_refresh_requested()


def forecast_plan(ctx: RunContext) -> list[str]:
    """Read the bookings series from the built marts once; return the chunks (one per region) to forecast."""
    from forecasting.nightly import plan_forecast

    settings = load_settings(ctx.settings_file)
    con = _read_marts(ctx)
    try:
        chunks = plan_forecast(con, _forecast_work(ctx), tuple(settings.forecast_levels))
    finally:
        con.close()
    shutil.rmtree(_models_dir(ctx), ignore_errors=True)  # a retried plan keeps no model of an earlier attempt
    return chunks


def forecast_chunk(ctx: RunContext, chunk: str) -> dict[str, Any]:
    """Forecast one chunk of series; touches no warehouse, so chunks run in parallel on any worker."""
    from forecasting.nightly import forecast_chunk as run_chunk

    settings = load_settings(ctx.settings_file)
    cache_dir, reuse = _forecast_cache(ctx, settings)
    return run_chunk(_forecast_work(ctx), chunk, horizon=settings.forecast_horizon,
                     origins=settings.forecast_origins, models_dir=_models_dir(ctx),
                     prophet_grid=settings.forecast_prophet_grid, cache_dir=cache_dir, reuse=reuse)


def forecast_store(ctx: RunContext) -> dict[str, Any]:
    """Reconcile the chunks, check the rows (Great Expectations), append them, and draw the charts."""
    from forecasting.bookings import store_forecasts
    from forecasting.nightly import assemble_forecasts, fitted_and_reused, prune_forecast_cache, write_charts
    from salesos.validate.gx_checks import validate_forecasts

    rows = assemble_forecasts(_forecast_work(ctx), ctx.as_of, ctx.run_id)
    if rows.empty:
        log.warning("no closed bookings before %s: no forecast written", ctx.as_of)
        return _write_step(ctx, "forecast", {"series": 0, "rows": 0, "checks": 0, "models": {}})
    report = validate_forecasts(rows)
    con = _connect(ctx.build_warehouse)
    try:
        written = store_forecasts(con, rows)
    finally:
        con.close()
    if _on_postgres(ctx):
        _copy_to_postgres(ctx, ("forecasts",))
    cache_dir, _ = _forecast_cache(ctx, load_settings(ctx.settings_file))
    if cache_dir is not None:
        prune_forecast_cache(_forecast_work(ctx), cache_dir)
    con = _read_marts(ctx)
    try:
        charts = write_charts(con, rows, ctx.run_dir / "forecast_charts")
    finally:
        con.close()
    return _write_step(
        ctx,
        "forecast",
        {
            "series": int(rows["series_id"].nunique()),
            # series fitted tonight, and series whose inputs had not changed, taken from the cache
            **fitted_and_reused(_forecast_work(ctx)),
            "rows": written,
            "checks": report.expectations,
            "series_per_level": rows.groupby("level")["series_id"].nunique().to_dict(),
            "models": rows.groupby("model")["series_id"].nunique().to_dict(),
            "charts": str(ctx.run_dir / "forecast_charts") if charts else None,
            "prophet_models": str(_models_dir(ctx)) if _models_dir(ctx).exists() else None,
        },
    )


def forecast(ctx: RunContext) -> dict[str, Any]:
    """Forecast bookings at every level from the marts: plan, every chunk in one process pool, store."""
    from forecasting.nightly import forecast_chunks

    chunks = forecast_plan(ctx)
    if chunks:
        settings = load_settings(ctx.settings_file)
        cache_dir, reuse = _forecast_cache(ctx, settings)
        forecast_chunks(_forecast_work(ctx), chunks, horizon=settings.forecast_horizon,
                        origins=settings.forecast_origins, models_dir=_models_dir(ctx),
                        prophet_grid=settings.forecast_prophet_grid, cache_dir=cache_dir, reuse=reuse)
    return forecast_store(ctx)


def publish(ctx: RunContext) -> dict[str, Any]:
    """Swap the build copy in with one atomic rename, keep it as a version, and write the run summary."""
    from salesos.publish.copies import compat_path, export_tables, write_compat_copy
    from salesos.publish.versions import publish_file

    settings = load_settings(ctx.settings_file)
    extra: dict[str, Any] = {}
    if settings.finance_exports:
        out = ctx.data_dir / "exports" / f"as_of={ctx.as_of.isoformat()}" / f"run={ctx.run_id}"
        extra["finance_exports"] = str(out) if export_tables(ctx.build_warehouse, out) else None
    if settings.bi_compat_copy:
        extra["bi_compat_copy"] = str(write_compat_copy(ctx.build_warehouse, compat_path(ctx.warehouse)))
    version = publish_file(
        ctx.build_warehouse,
        ctx.warehouse,
        ctx.data_dir,
        ctx.run_id,
        ctx.as_of.isoformat(),
        keep=settings.keep_versions,
    )
    shutil.rmtree(ctx.build_dir, ignore_errors=True)
    summary = summarize(ctx) | {"version": version.version_id} | extra
    text = json.dumps(summary, indent=2, default=str)
    (ctx.run_dir / "summary.json").write_text(text, encoding="utf-8")
    (ctx.run_dir.parent / "latest.json").write_text(text, encoding="utf-8")
    return summary


def remove_stale_builds(ctx: RunContext) -> list[Path]:
    """Remove build copies left by killed or failed runs (and this run's own earlier attempt).

    Runs of one warehouse never overlap (the DAG allows one active run; DuckDB one writer), so any
    build copy present when a run starts is stale. This is how a run killed at any point is recovered.
    """
    removed = []
    builds = ctx.build_dir.parent
    if builds.is_dir():
        for d in builds.iterdir():
            if d.is_dir() and (any(p.name.startswith(ctx.warehouse.name) for p in d.iterdir()) or d == ctx.build_dir):
                shutil.rmtree(d, ignore_errors=True)
                removed.append(d)
    if removed:
        log.warning("removed stale build copies: %s", ", ".join(str(d) for d in removed))
    return removed


def discard(ctx: RunContext) -> None:
    """Drop a failed run's build copy; the published warehouse is untouched."""
    shutil.rmtree(ctx.build_dir, ignore_errors=True)


def summarize(ctx: RunContext) -> dict[str, Any]:
    """What a person wants after a run: rows, models, tests, forecasts, and where things are."""
    steps: dict[str, Any] = {}
    for step in STEPS[:-1]:
        p = ctx.run_dir / f"{step}.json"
        if p.exists():
            steps[step] = json.loads(p.read_text(encoding="utf-8"))
    build_result = steps.get("build", {})
    return {
        "run_id": ctx.run_id,
        "as_of": ctx.as_of.isoformat(),
        "rows_loaded": steps.get("extract", {}).get("rows_loaded", {}),
        "rows_quarantined": steps.get("extract", {}).get("rows_quarantined", {}),
        "quarantined_by_rule": steps.get("extract", {}).get("quarantined_by_rule", {}),
        "missing_columns": steps.get("extract", {}).get("missing_columns", {}),
        "extra_columns": steps.get("extract", {}).get("extra_columns", {}),
        "checks": {
            "expectations": steps.get("validate", {}).get("expectations", 0),
            "warnings": steps.get("validate", {}).get("warnings", []),
            "data_docs": steps.get("validate", {}).get("data_docs"),
        },
        "models_built": build_result.get("models", 0),
        "tests_passed": build_result.get("tests_passed", 0),
        "tests_warned": build_result.get("tests_warned", 0),
        "forecast_rows": steps.get("forecast", {}).get("rows", 0),
        "forecast_series": steps.get("forecast", {}).get("series", 0),
        "forecast_charts": steps.get("forecast", {}).get("charts"),
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
    for rule, n in summary.get("quarantined_by_rule", {}).items():
        lines.append(f"  quarantined {rule}: {n:,} (see the quarantine schema)")
    checks = summary["checks"]
    lines += [
        "",
        f"checks run:     {checks['expectations']} expectations, {len(checks['warnings'])} warnings",
        f"models built:   {summary['models_built']}",
        f"tests passed:   {summary['tests_passed']} ({summary['tests_warned']} warned)",
        f"forecasts:      {summary['forecast_rows']} rows for {summary['forecast_series']} series",
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
    for name, cols in summary.get("missing_columns", {}).items():
        lines.append(f"note: {name} has no {', '.join(cols)} (loaded as empty)")
    for name, cols in summary.get("extra_columns", {}).items():
        lines.append(f"note: {name} has columns the contract does not use, kept: {', '.join(cols)}")
    for w in summary["checks"]["warnings"]:
        lines.append(f"warning: {w}")
    return "\n".join(lines)


def run_all(ctx: RunContext) -> dict[str, Any]:
    """All steps in one process; on failure the build copy is dropped and the error re-raised."""
    try:
        for step in (extract, validate, build, forecast):
            log.info("step %s", step.__name__)
            step(ctx)
        return publish(ctx)
    except BaseException:
        discard(ctx)
        raise
