"""Benchmark of the nightly forecast: every series of every level, with its backtest, at scales S and M.

Run from the repository root:

    .venv/bin/python benchmarks/forecast.py --scales S M --out benchmarks/forecast.md

For each scale it generates the sample exports (seed 7, as of 2026-10-31; reused from --data-dir), builds the
marts once with the pipeline's extract, validate and build steps, then times what the nightly `forecast`
step does with the project's default settings (horizon 12, 6 backtest origins, every level): reading the
series from `marts.fct_bookings_monthly`, the chunk plan, the rolling-origin selection and final fit of every
series in a process pool over all cores, and the reconciliation. Storing and charts are not included (the
nightly benchmark times the whole step). It reports series, wall time and series per second. The target of
issue 4 is every series of scale M (about 600) in under 10 minutes on the 2-core machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from datetime import UTC, date, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

AS_OF = date(2026, 10, 31)
SEED = 7


def built_warehouse(scale: str, data_dir: Path) -> Path:
    """The marts of one sample scale, built once with the pipeline (extract, validate, build) and reused."""
    from salesos.generate import generate
    from salesos.pipeline import build, extract, validate
    from salesos.run_context import RunContext

    exports = data_dir / f"exports_{scale}_{SEED}"
    files = list(exports.glob("*.csv"))
    if len(files) < 10 or any(f.stat().st_size == 0 for f in files):  # absent, or an interrupted generation
        generate(exports, scale=scale, seed=SEED, as_of=AS_OF)
    work = data_dir / f"forecast_{scale}"
    ctx = RunContext.create(as_of=AS_OF, exports=exports, warehouse=work / "salesos.duckdb", run_id="forecast_bench")
    marker = work / "built.json"
    if not marker.exists():
        for step in (extract, validate, build):
            step(ctx)
        marker.write_text(json.dumps({"build": str(ctx.build_warehouse)}), encoding="utf-8")
    return ctx.build_warehouse


def bench(warehouse: Path, horizon: int, origins: int, processes: int | None, prophet_grid: str) -> dict:
    import duckdb

    from forecasting.nightly import forecast_all

    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        t0 = time.perf_counter()
        rows = forecast_all(con, AS_OF, "forecast_bench", horizon=horizon, origins=origins, processes=processes,
                            prophet_grid=prophet_grid)
        wall = time.perf_counter() - t0
    finally:
        con.close()
    rows = rows[rows["is_selected"] & ~rows["is_backtest"]]  # the published forecast of each series
    series = int(rows["series_id"].nunique())
    return {
        "series": series,
        "wall_s": round(wall, 1),
        "series_per_s": round(series / wall, 2),
        "per_level": rows.groupby("level")["series_id"].nunique().to_dict(),
        "models": rows.drop_duplicates("series_id")["model"].value_counts().to_dict(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scales", nargs="+", default=["S"], choices=["XS", "S", "M", "L"])
    parser.add_argument("--data-dir", type=Path, default=Path("/tmp/salesos-bench"))
    parser.add_argument("--horizon", type=int, default=12)
    parser.add_argument("--origins", type=int, default=6)
    parser.add_argument("--processes", type=int, default=None, help="pool size (default: every core)")
    parser.add_argument("--prophet-grid", default=None, help="default: the settings' forecast_prophet_grid")
    parser.add_argument("--out", type=Path, help="append the results as a Markdown section to this file")
    args = parser.parse_args(argv)
    args.data_dir.mkdir(parents=True, exist_ok=True)
    if args.prophet_grid is None:
        from salesos.settings import load_settings

        args.prophet_grid = load_settings().forecast_prophet_grid
    results = {}
    for scale in args.scales:
        wh = built_warehouse(scale, args.data_dir)
        results[scale] = bench(wh, args.horizon, args.origins, args.processes, args.prophet_grid)
        print(scale, json.dumps(results[scale]), flush=True)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout
    lines = [
        f"## Forecast benchmark, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        "",
        f"- machine: {os.cpu_count()} cores ({platform.processor() or platform.machine()}), Python "
        f"{platform.python_version()}; commit {commit.strip()}",
        f"- command: `.venv/bin/python benchmarks/forecast.py --scales {' '.join(args.scales)}` (horizon "
        f"{args.horizon}, {args.origins} origins, Prophet grid {args.prophet_grid}, pool of "
        f"{args.processes or os.cpu_count()} processes)",
        "",
        "| scale | series | wall (s) | series/s | series per level | models chosen |",
        "| --- | ---: | ---: | ---: | --- | --- |",
    ]
    for scale, r in results.items():
        levels = ", ".join(f"{k} {v}" for k, v in sorted(r["per_level"].items()))
        models = ", ".join(f"{k} {v}" for k, v in r["models"].items())
        lines.append(f"| {scale} | {r['series']} | {r['wall_s']} | {r['series_per_s']} | {levels} | {models} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        with args.out.open("a", encoding="utf-8") as fh:
            fh.write("\n" + text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
