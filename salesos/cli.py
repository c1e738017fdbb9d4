"""`salesos` command line: generate sample exports, run the nightly pipeline on a folder of exports."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

DEFAULT_AS_OF = date(2026, 10, 31)


def _date(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a YYYY-MM-DD date: {value!r}") from exc


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="salesos", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="log every step (dbt output included)")
    sub = parser.add_subparsers(dest="command", required=True)

    gen = sub.add_parser("generate", help="write a deterministic sample CRM export")
    gen.add_argument("--scale", choices=["S", "M", "L"], default="S")
    gen.add_argument("--seed", type=int, default=42)
    gen.add_argument("--out", type=Path, required=True, help="folder to write the CSV files into")
    gen.add_argument("--as-of", type=_date, default=DEFAULT_AS_OF, help="last day of history (YYYY-MM-DD)")
    gen.add_argument("--faults", action="store_true", help="inject the faults real exports carry")
    gen.add_argument("--no-stage-export", action="store_true",
                     help="leave out OpportunityStage.csv (the stage picklist)")
    gen.add_argument("--rename-stage", action="append", default=[], metavar="OLD=NEW",
                     help="write a stage under another name, as a CRM with renamed stages has it (repeatable)")
    gen.add_argument("--format", choices=["salesforce", "hubspot"], default="salesforce",
                     help="salesforce: Salesforce's data export; hubspot: the same CRM as HubSpot's exports "
                          "(run it with --source hubspot-exports --settings OUT/settings.yml)")

    run = sub.add_parser("run", help="run extract, validate, build, forecast and publish on a folder of exports")
    run.add_argument("--exports", required=True,
                     help="folder or fsspec URL (s3://bucket/prefix, gs://bucket/prefix) holding the export files")
    run.add_argument("--archive", default=None,
                     help="folder or fsspec URL where each night's archive is also kept, never overwritten "
                          "(<archive>/<run_id>/; default: <exports>/_archive for an s3:// or gs:// landing)")
    run.add_argument("--warehouse", type=Path, required=True, help="the DuckDB file to publish")
    run.add_argument("--as-of", type=_date, required=True, help="the date the run reports as of (YYYY-MM-DD)")
    run.add_argument("--settings", type=Path, default=None, help="settings YAML (defaults: config/salesos.yml)")
    run.add_argument(
        "--data-dir", type=Path, default=None, help="archive, build and run folders (default: beside the warehouse)"
    )
    run.add_argument("--run-id", default=None, help="run id (default: asof_<date>)")
    run.add_argument("--json", action="store_true", help="print the summary as JSON")
    run.add_argument(
        "--allow-exports-after-as-of",
        action="store_true",
        help="publish although the exports were modified more than max_export_days_after_as_of days after "
        "the as-of date (a warning in the summary instead of a failed run)",
    )
    run.add_argument(
        "--source",
        default=None,
        help="what --exports holds: exports (a folder of export files), fivetran-salesforce, "
        "airbyte-salesforce or fivetran-hubspot (a connector's landed tables: a folder of CSV/Parquet files, "
        "a DuckDB file or a PostgreSQL URL), hubspot-exports (a folder of HubSpot's own CSV exports); "
        "default: the setting source",
    )
    run.add_argument(
        "--full-refresh",
        action="store_true",
        help="reload every raw table and rebuild every incremental model from scratch (default: only what changed)",
    )

    run.add_argument(
        "--allow-older",
        action="store_true",
        help="publish although the published warehouse is as of a later date (a backfill of a past date "
        "replaces the newer numbers readers see; default: refused before anything is touched)",
    )

    fc = sub.add_parser("forecast", help="forecasting tools")
    fc_sub = fc.add_subparsers(dest="forecast_command", required=True)
    fc_sub.add_parser(
        "backtest",
        help="backtest the forecasting methods on your own monthly series (CSV with ds,y)",
        add_help=False,
    )

    ver = sub.add_parser("versions", help="list the published versions of a warehouse")
    ver.add_argument("--warehouse", type=Path, required=True)
    ver.add_argument("--data-dir", type=Path, default=None, help="default: beside the warehouse")

    rep = sub.add_parser("report", help="build the nightly report (static HTML pages) of a kept version, read-only")
    rep.add_argument("--warehouse", type=Path, required=True)
    rep.add_argument("--data-dir", type=Path, default=None, help="default: beside the warehouse")
    rep.add_argument("--version", default=None,
                     help="version number, id or run id, as `salesos versions` lists them (default: the live one)")
    rep.add_argument("--out", type=Path, default=None,
                     help="folder to write the pages into (default: the version's run folder, "
                          "<data>/runs/<run_id>/report)")
    rep.add_argument("--settings", type=Path, default=None,
                     help="settings YAML for the currency and the deal flags (default: those the run's report used)")

    rb = sub.add_parser("rollback", help="publish an earlier version of the warehouse again")
    rb.add_argument("--warehouse", type=Path, required=True)
    rb.add_argument("--data-dir", type=Path, default=None, help="default: beside the warehouse")
    rb.add_argument("--to", dest="version", default=None, help="version id (default: the one before the current)")

    mt = sub.add_parser("metrics", help="the semantic layer: list the metrics, query them (MetricFlow, read-only)")
    mt_sub = mt.add_subparsers(dest="metrics_command", required=True)
    mt_list = mt_sub.add_parser("list", help="every metric with its type, description and dimensions")
    mt_query = mt_sub.add_parser("query", help="metrics grouped by dimensions, as MetricFlow computes them")
    for p in (mt_list, mt_query):
        p.add_argument("--warehouse", type=Path, required=True, help="the published DuckDB file")
        p.add_argument("--data-dir", type=Path, default=None, help="default: beside the warehouse")
        p.add_argument("--version", default=None,
                       help="a kept version (its id or number, see `salesos versions`; default: the live warehouse)")
        p.add_argument("--target", choices=["duckdb", "postgres"], default=None,
                       help="where the marts are: the DuckDB file, or the Postgres database of the SALESOS_PG_* "
                       "variables (default: SALESOS_DBT_TARGET, else duckdb)")
    mt_list.add_argument("--json", action="store_true", help="print JSON")
    mt_query.add_argument("--metrics", required=True, help="comma-separated metric names (`salesos metrics list`)")
    mt_query.add_argument("--group-by", default="",
                          help="comma-separated dimensions, e.g. metric_time__fiscal_quarter,team__team_name")
    mt_query.add_argument("--where", action="append", default=[],
                          help="a MetricFlow filter, e.g. \"{{ Entity('region') }} = 'EMEA'\" (repeatable)")
    mt_query.add_argument("--order", default="",
                          help="comma-separated metrics or dimensions; '-' first: descending (--order=-bookings)")
    mt_query.add_argument("--limit", type=int, default=None)
    fmt = mt_query.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="print JSON (a list of objects)")
    fmt.add_argument("--csv", action="store_true", help="print CSV")
    fmt.add_argument("--explain", action="store_true", help="print the SQL MetricFlow writes, do not run it")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:2] == ["forecast", "backtest"]:
        # its own parser (forecasting.backtest) owns the options and the help
        from forecasting.backtest import main as backtest_main

        return backtest_main(argv[2:])
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.INFO if args.verbose else logging.WARNING
    before = set(logging.getLogger().handlers)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for handler in set(logging.getLogger().handlers) - before:
        handler.setLevel(level)  # the terminal's own level: the run log below takes INFO from the root logger
    if args.command == "run":
        return _run(args)  # its own handling: the step, the published warehouse, the run log
    if args.command == "generate":
        renames = dict(r.split("=", 1) for r in args.rename_stage if "=" in r)
        if len(renames) != len(args.rename_stage):
            parser.error("--rename-stage takes OLD=NEW")
    try:
        if args.command == "generate":
            return _generate(args, renames)
        if args.command in ("versions", "rollback"):
            return _versions_command(args)
        if args.command == "metrics":
            return _metrics_command(args)
        if args.command == "report":
            return _report_command(args)
    except Exception as exc:  # one line on the terminal, the traceback with -v only
        import traceback

        from salesos.failures import reason

        why, details = reason(exc)
        print("\n".join([f"salesos {args.command} failed: {why}", *(f"  {d}" for d in details)]), file=sys.stderr)
        if args.verbose:
            traceback.print_exception(exc)
        return 1
    return 2


def _generate(args: argparse.Namespace, renames: dict[str, str]) -> int:
    from salesos.generate import generate, generate_hubspot

    if args.format == "hubspot":
        if args.faults or args.no_stage_export:
            raise ValueError("--format hubspot writes the sample without --faults and always with its pipeline "
                             "stages (pipelines.csv)")
        counts = generate_hubspot(args.out, scale=args.scale, seed=args.seed, as_of=args.as_of, rename_stages=renames)
        for name, n in counts.items():
            print(f"{name:<24} {n:>12,}")
        print(f"wrote {len(counts)} files and settings.yml to {args.out}")
        return 0
    counts = generate(args.out, scale=args.scale, seed=args.seed, as_of=args.as_of, faults=args.faults,
                      stage_export=not args.no_stage_export, rename_stages=renames)
    for name, n in counts.items():
        print(f"{name:<24} {n:>12,}")
    print(f"wrote {len(counts)} files to {args.out}")
    return 0


def _run(args: argparse.Namespace) -> int:
    """`salesos run`: every failure ends in one line (step, why, the published warehouse unchanged, the run log).

    The traceback goes to `<data>/runs/<run_id>/run.log`, which records every run, failed or not; `-v`
    also prints it on the terminal.
    """
    import traceback

    from salesos.failures import RUN_LOG, failure_text, published_state, reason, run_log
    from salesos.pipeline import format_summary, fresh_run_id, run_all
    from salesos.progress import reporter_for
    from salesos.run_context import RunContext, RunIdError

    try:
        ctx = RunContext.create(
            as_of=args.as_of,
            exports=args.exports,
            warehouse=args.warehouse,
            run_id=args.run_id,
            data_dir=args.data_dir,
            settings_file=args.settings,
            allow_exports_after_as_of=args.allow_exports_after_as_of,
            source=args.source,
            full_refresh=args.full_refresh,
            allow_older=args.allow_older,
            archive=args.archive,
        )
    except RunIdError as exc:  # a run id or path that could reach the filesystem or SQL unsafely
        print(f"salesos run failed before it started: {exc}; nothing was changed", file=sys.stderr)
        return 2
    except Exception as exc:  # refused before anything is touched
        why, details = reason(exc)
        print("\n".join([f"salesos run failed before it started: {why}; the published warehouse was not changed",
                          *(f"  {d}" for d in details)]), file=sys.stderr)
        if args.verbose:
            traceback.print_exception(exc)
        return 1
    if args.run_id is None:
        # a re-run of a date gets the first unused `asof_<date>.<n>`, so it never replaces an earlier run's archive
        # or exports; named here for the run log, and checked again under the warehouse lock by run_all
        ctx = fresh_run_id(ctx)
    log_path = ctx.run_dir / RUN_LOG
    before = published_state(ctx.warehouse)
    log = logging.getLogger("salesos.run")
    # a bar per step on a terminal; one line per step otherwise (and with -v, whose log lines would break the bars)
    reporter = reporter_for(sys.stderr, bars=sys.stderr.isatty() and os.environ.get("TERM") != "dumb"
                            and not args.verbose)
    with run_log(log_path) as handler:
        log.info("run %s as of %s: exports %s, warehouse %s", ctx.run_id, ctx.as_of, ctx.exports, ctx.warehouse)
        try:
            try:
                summary = run_all(ctx, fresh_id=args.run_id is None, reporter=reporter)
            finally:
                reporter.close()
        except (Exception, KeyboardInterrupt) as exc:
            text = failure_text(exc, run_id=ctx.run_id, warehouse_changed=published_state(ctx.warehouse) != before,
                                run_log=log_path if handler else None)
            if handler is not None:  # the traceback goes to the run log only, the terminal gets the message
                handler.handle(log.makeRecord(log.name, logging.ERROR, __file__, 0, text, None,
                                              (type(exc), exc, exc.__traceback__)))
            if args.verbose:
                traceback.print_exception(exc)
            print(text, file=sys.stderr)
            return 130 if isinstance(exc, KeyboardInterrupt) else 1
        log.info("run %s published version %s", ctx.run_id, summary.get("version"))
    print(json.dumps(summary, indent=2) if args.json else format_summary(summary))
    return 0


def _versions_command(args: argparse.Namespace) -> int:
    """`versions` lists the kept versions and marks the live one; `rollback` publishes an earlier one again.

    Both first finish or clear a publish that a kill interrupted (under the warehouse lock); `versions`
    only lists when a run holds the lock.
    """
    from salesos.publish.lock import RunLocked, warehouse_lock
    from salesos.publish.versions import list_versions, recover, rollback, versions_dir

    warehouse = args.warehouse.expanduser().resolve()
    data_dir = (args.data_dir or warehouse.parent).expanduser().resolve()
    if not versions_dir(warehouse, data_dir).is_dir():  # nothing published: create no lock file, no folder
        if args.command == "rollback":
            print(f"salesos rollback: no published versions of {warehouse} under "
                  f"{versions_dir(warehouse, data_dir)}", file=sys.stderr)
            return 1
        return 0
    if args.command == "rollback":
        try:
            with warehouse_lock(warehouse, "rollback", what="salesos rollback"):
                v = rollback(warehouse, data_dir, args.version, report_builder=_version_report(warehouse, data_dir))
                print(f"{warehouse} is now version {v.version_id} (run {v.run_id}, as of {v.as_of})")
                try:
                    views = _spark_views_after_rollback(data_dir, v.run_id)
                except RuntimeError as exc:
                    print(f"salesos rollback: {exc}", file=sys.stderr)
                    return 1
        except (ValueError, RunLocked) as exc:
            print(f"salesos rollback: {exc}", file=sys.stderr)
            return 1
        if views is not None:
            print(f"Spark's published views ({len(views)}) read that night again")
        return 0
    try:
        with warehouse_lock(warehouse, "versions", what="salesos versions"):
            recover(warehouse, data_dir)
    except RunLocked as exc:
        print(f"note: {exc}", file=sys.stderr)
    for v in list_versions(warehouse, data_dir):
        print(f"{v.version_id}  as of {v.as_of}  run {v.run_id}{' (live)' if v.live else ''}")
    return 0


def _spark_views_after_rollback(data_dir: Path, run_id: str) -> list[str] | None:
    """On a warehouse built on Spark, its published views follow the rollback (salesos.warehouse.spark)."""
    from salesos.warehouse.spark import spark_root, views_after_rollback

    if not (spark_root(data_dir) / "metastore_db").exists():
        return None  # no Spark here: no JVM to start
    return views_after_rollback(data_dir, run_id)


def _split(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def _metrics_command(args: argparse.Namespace) -> int:
    """`metrics list` / `metrics query` on the published warehouse (or a kept version), read-only.

    A query MetricFlow cannot answer (unknown metric or dimension, a bad filter) ends in one line, exit code 1.
    """
    import os

    from salesos.semantic import ManifestMissing, MetricQueryError, SemanticLayer
    from salesos.semantic.metrics import metric_warehouse

    target = args.target or os.environ.get("SALESOS_DBT_TARGET") or "duckdb"
    try:
        warehouse = metric_warehouse(args.warehouse, args.data_dir, args.version)
        with SemanticLayer(warehouse, target=target) as layer:
            if args.metrics_command == "list":
                listed = layer.list_metrics()
                if args.json:
                    print(json.dumps(listed, indent=1))
                    return 0
                for m in listed:
                    print(f"{m['name']} ({m['type']}): {m['description'] or m['label']}")
                    print(f"    dimensions: {', '.join(m['dimensions'])}")
                return 0
            metrics, group_by = _split(args.metrics), _split(args.group_by)
            if args.explain:
                print(layer.explain(metrics, group_by, where=args.where, order=_split(args.order), limit=args.limit))
                return 0
            result = layer.query(metrics, group_by, where=args.where, order=_split(args.order), limit=args.limit)
    except (MetricQueryError, ManifestMissing, FileNotFoundError) as exc:
        print(f"salesos metrics {args.metrics_command}: {exc}", file=sys.stderr)
        return 1
    print(result.render("json" if args.json else "csv" if args.csv else "table"))
    return 0


def _version_report(warehouse: Path, data_dir: Path) -> Callable[[Any, Path], None]:
    """Builds a kept version's report when its run's is gone (a rollback to it)."""
    def build(version: Any, out: Path) -> None:
        from salesos.publish.report.build import report_for_version

        report_for_version(version, warehouse, data_dir, out)

    return build


def _report_command(args: argparse.Namespace) -> int:
    """`salesos report`: the pages of a kept version, from its read-only copy; the published set is not touched."""
    from salesos.publish.report.build import find_version, report_for_version
    from salesos.publish.versions import list_versions
    from salesos.settings import load_settings

    warehouse = args.warehouse.expanduser().resolve()
    data_dir = (args.data_dir or warehouse.parent).expanduser().resolve()
    versions = list_versions(warehouse, data_dir)
    if not versions:
        print(f"salesos report: no published versions of {warehouse} under {data_dir / 'versions'}", file=sys.stderr)
        return 1
    try:
        version = find_version(versions, args.version)
    except ValueError as exc:
        print(f"salesos report: {exc}", file=sys.stderr)
        return 1
    out = (args.out or data_dir / "runs" / version.run_id / "report").expanduser().resolve()
    settings = load_settings(args.settings) if args.settings else None
    result = report_for_version(version, warehouse, data_dir, out, settings)
    print(f"report of version {version.version_id} (run {version.run_id}, as of {version.as_of}): "
          f"{result.pages} pages, {result.charts} charts in {result.seconds:.1f} s")
    print(f"open {result.index}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
