"""`salesos` command line: generate sample exports, run the nightly pipeline on a folder of exports."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from datetime import date
from pathlib import Path

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

    run = sub.add_parser("run", help="run extract, validate, build, forecast and publish on a folder of exports")
    run.add_argument("--exports", required=True, help="folder (or fsspec URL) holding the export CSV files")
    run.add_argument("--warehouse", type=Path, required=True, help="the DuckDB file to publish")
    run.add_argument("--as-of", type=_date, required=True, help="the date the run reports as of (YYYY-MM-DD)")
    run.add_argument("--settings", type=Path, default=None, help="settings YAML (defaults: config/salesos.yml)")
    run.add_argument(
        "--data-dir", type=Path, default=None, help="archive, build and run folders (default: beside the warehouse)"
    )
    run.add_argument("--run-id", default=None, help="run id (default: asof_<date>)")
    run.add_argument("--json", action="store_true", help="print the summary as JSON")
    run.add_argument(
        "--full-refresh",
        action="store_true",
        help="reload every raw table and rebuild every incremental model from scratch (default: only what changed)",
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

    rb = sub.add_parser("rollback", help="publish an earlier version of the warehouse again")
    rb.add_argument("--warehouse", type=Path, required=True)
    rb.add_argument("--data-dir", type=Path, default=None, help="default: beside the warehouse")
    rb.add_argument("--to", dest="version", default=None, help="version id (default: the one before the current)")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:2] == ["forecast", "backtest"]:
        # its own parser (forecasting.backtest) owns the options and the help
        from forecasting.backtest import main as backtest_main

        return backtest_main(argv[2:])
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if args.command == "generate":
        from salesos.generate import generate

        renames = dict(r.split("=", 1) for r in args.rename_stage if "=" in r)
        if len(renames) != len(args.rename_stage):
            parser.error("--rename-stage takes OLD=NEW")
        counts = generate(args.out, scale=args.scale, seed=args.seed, as_of=args.as_of, faults=args.faults,
                          stage_export=not args.no_stage_export, rename_stages=renames)
        for name, n in counts.items():
            print(f"{name:<24} {n:>12,}")
        print(f"wrote {len(counts)} files to {args.out}")
        return 0
    if args.command == "run":
        from salesos.extract.landing import ExportError
        from salesos.pipeline import format_summary, run_all
        from salesos.run_context import RunContext
        from salesos.settings import SettingsError
        from salesos.transform.dbt_build import DbtBuildFailed
        from salesos.validate.gx_checks import ValidationFailed

        ctx = RunContext.create(
            as_of=args.as_of,
            exports=args.exports,
            warehouse=args.warehouse,
            run_id=args.run_id,
            data_dir=args.data_dir,
            settings_file=args.settings,
        )
        if args.full_refresh:
            # read by the loader and the dbt runner (salesos.extract.load.full_refresh_requested)
            from salesos.extract.load import FULL_REFRESH_ENV

            os.environ[FULL_REFRESH_ENV] = "1"
        try:
            summary = run_all(ctx)
        except (ExportError, ValidationFailed, DbtBuildFailed, SettingsError) as exc:
            print(f"salesos run failed; the published warehouse was not changed.\n{exc}", file=sys.stderr)
            return 1
        print(json.dumps(summary, indent=2) if args.json else format_summary(summary))
        return 0
    if args.command in ("versions", "rollback"):
        from salesos.publish.versions import list_versions, rollback

        warehouse = args.warehouse.expanduser().resolve()
        data_dir = (args.data_dir or warehouse.parent).expanduser().resolve()
        if args.command == "rollback":
            try:
                v = rollback(warehouse, data_dir, args.version)
            except ValueError as exc:
                print(f"salesos rollback: {exc}", file=sys.stderr)
                return 1
            print(f"{warehouse} is now version {v.version_id} (run {v.run_id}, as of {v.as_of})")
            return 0
        for v in list_versions(warehouse, data_dir):
            current = " (published)" if warehouse.exists() and v.path.samefile(warehouse) else ""
            print(f"{v.version_id}  as of {v.as_of}  run {v.run_id}{current}")
        return 0
    return 2


if __name__ == "__main__":
    sys.exit(main())
