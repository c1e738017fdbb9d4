"""Benchmark of the nightly forecast step alone on a built warehouse: a first night, every level, its backtest.

Run from the repository root, on a warehouse whose marts are built (e.g. by
`benchmarks/nightly.py --scales M --steps extract validate build --no-floor --data-dir /tmp/fc-bench`, which
leaves it at /tmp/fc-bench/run_M/build/bench/salesos.duckdb):

    .venv/bin/python benchmarks/forecast_step.py --warehouse /tmp/fc-bench/run_M/build/bench/salesos.duckdb \
        --repeats 3 --out /tmp/forecast_step.json

Each repeat copies the built warehouse to a fresh data folder (no forecast stored yet, no forecast cache: a
first night, as issue 16's target is stated) and runs, in a child process as an Airflow task would, what
`salesos.pipeline.forecast` does for the bookings forecast: the plan, every chunk in one process pool over
all cores, the reconciliation, the GX check, the store, the rebuild of the accuracy marts that score the new
track record, and the charts. The in-quarter projection that step runs afterwards is left out (it is a
separate model with its own benchmark, benchmarks/projection.py). It reports the wall time and the CPU
seconds (the step's process, its pool workers and dbt) of each repeat, their medians and the load average
before and after; `--code DIR` runs another checkout's code (the same
command for the before and after of a change, in one session).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
AS_OF = date(2026, 10, 31)


def _child(ctx_json: str) -> None:
    """One first-night forecast step (the projection left out), timed by the parent."""
    from salesos import pipeline
    from salesos.run_context import RunContext

    ctx = RunContext.from_dict(json.loads(ctx_json))
    pipeline.projection = lambda ctx, full_refresh: {}  # its own model and benchmark
    result = pipeline.forecast(ctx)
    print(json.dumps({k: result.get(k) for k in ("series", "fitted", "reused", "rows", "selected_rows",
                                                   "backtest_rows_new")}))


def _fit_child(warehouse: str, every: int) -> None:
    """Only the fitting: every `every`-th series of the plan (sorted ids), `forecast_many` over all cores."""
    import duckdb

    from forecasting.nightly import load_series

    try:
        from forecasting.pool import forecast_many
    except ImportError:  # the code before the library was split (forecasting/models.py)
        from forecasting.models import forecast_many
    con = duckdb.connect(warehouse, read_only=True)
    try:
        s = load_series(con)
    finally:
        con.close()
    ids = sorted(s.series)[::every]
    levels = s.meta.set_index("series_id").loc[ids, "level"].value_counts().to_dict()
    start = time.perf_counter()
    out = forecast_many({sid: s.series[sid] for sid in ids}, horizon=12, origins=6, prophet_grid="primary")
    wall = time.perf_counter() - start
    models = {}
    for res in out.values():
        models[res.selection.model] = models.get(res.selection.model, 0) + 1
    print(json.dumps({"fit_s": round(wall, 1), "series": len(ids), "of": len(s.series), "levels": levels,
                      "distinct_models": len(models)}))


def fit_once(warehouse: Path, code: Path, every: int) -> dict:
    env = {**os.environ, "PYTHONPATH": str(code)}
    load_before = os.getloadavg()[0]
    proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--fit-child", str(warehouse), str(every)],
                          cwd=code, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"fit failed:\n{proc.stderr[-3000:]}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    return {"code": str(code), "load_1min_before": round(load_before, 1),
            "load_1min_after": round(os.getloadavg()[0], 1), **out}


def _children_cpu() -> float:
    """User + system CPU seconds of the waited-for children so far (the step, its pool workers, dbt)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_once(warehouse: Path, scratch: Path, code: Path, as_of: date) -> dict:
    from salesos.run_context import RunContext

    shutil.rmtree(scratch, ignore_errors=True)
    ctx = RunContext.create(as_of=as_of, exports=scratch / "exports", warehouse=scratch / "salesos.duckdb",
                            run_id="forecast_step")
    ctx.build_dir.mkdir(parents=True)
    (scratch / "exports").mkdir()
    shutil.copyfile(warehouse, ctx.build_warehouse)
    env = {**os.environ, "PYTHONPATH": str(code)}
    load_before = os.getloadavg()[0]
    start, cpu_start = time.perf_counter(), _children_cpu()
    proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(ctx.to_dict())],
                          cwd=code, env=env, capture_output=True, text=True)
    wall, cpu = time.perf_counter() - start, _children_cpu() - cpu_start
    if proc.returncode != 0:
        raise RuntimeError(f"forecast step failed:\n{proc.stderr[-3000:]}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    return {"wall_s": round(wall, 1), "cpu_s": round(cpu, 1), "load_1min_before": round(load_before, 1),
            "load_1min_after": round(os.getloadavg()[0], 1), **out}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--warehouse", type=Path, help="a built warehouse (its marts) to forecast from")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--scratch", type=Path, default=Path("/tmp/salesos-forecast-step"))
    parser.add_argument("--code", type=Path, default=ROOT, help="the checkout whose code runs the step")
    parser.add_argument("--as-of", type=date.fromisoformat, default=AS_OF)
    parser.add_argument("--out", type=Path, default=None, help="write the results (JSON) here")
    parser.add_argument("--fit-only-every", type=int, default=0, metavar="K",
                        help="time only the fitting of every K-th series, alternating --code and --against")
    parser.add_argument("--against", type=Path, default=None, help="with --fit-only-every: the other checkout")
    parser.add_argument("--keep", action="store_true", help="keep each repeat's data folder in --scratch")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--fit-child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _child(args.child)
        return 0
    if args.fit_child:
        _fit_child(args.fit_child[0], int(args.fit_child[1]))
        return 0
    if args.warehouse is None or not args.warehouse.exists():
        parser.error(f"--warehouse {args.warehouse}: no built warehouse there")
    if args.fit_only_every:
        codes = [args.code.resolve()] + ([args.against.resolve()] if args.against else [])
        runs = []
        for _ in range(args.repeats):  # alternating, so both see the same drift of the machine's load
            for code in codes:
                runs.append(fit_once(args.warehouse, code, args.fit_only_every))
                print(json.dumps(runs[-1]), flush=True)
        result = {"runs": runs, "median_fit_s": {str(c): statistics.median(r["fit_s"] for r in runs
                                                                           if r["code"] == str(c)) for c in codes},
                  "at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
        print(json.dumps(result, indent=1))
        if args.out:
            args.out.write_text(json.dumps(result, indent=1), encoding="utf-8")
        return 0
    runs = []
    for i in range(args.repeats):
        runs.append(run_once(args.warehouse, args.scratch / f"r{i}", args.code.resolve(), args.as_of))
        print(json.dumps(runs[-1]), flush=True)
    if not args.keep:
        shutil.rmtree(args.scratch, ignore_errors=True)
    result = {"code": str(args.code), "cpus": os.cpu_count(), "runs": runs,
              "median_wall_s": statistics.median(r["wall_s"] for r in runs),
              "median_cpu_s": statistics.median(r["cpu_s"] for r in runs),
              "at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    print(json.dumps(result, indent=1))
    if args.out:
        args.out.write_text(json.dumps(result, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
