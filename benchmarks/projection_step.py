"""The projection step's own time at a scale (issue 17: "adds under 30 s to an S night, under 90 s to an M night").

    .venv/bin/python benchmarks/nightly.py --scales S M --steps extract validate build --no-floor \\
        --data-dir /tmp/aud-bench                                   # the built warehouses, once
    .venv/bin/python benchmarks/projection_step.py S=/tmp/aud-bench/run_S/build/bench/salesos.duckdb \\
        M=/tmp/aud-bench/run_M/build/bench/salesos.duckdb --repeats 3 [--out FILE]

What the projection adds to a night is two things the forecast task does after the forecast's own work
(`salesos.pipeline.forecast`): `projection()` (read the marts, project, store, model card) and, in
`forecast_marts`, the dbt build of the models downstream of its table (`PROJECTION_MODELS`). Each is timed
on a fresh copy of a warehouse built by the nightly benchmark (the copy is not timed), with the shipped
settings (`config/salesos.yml`: 4 replayed quarters, 1,000 simulations, retraining every 28 days):

- `first night`: the table is empty, so every day of the last four fiscal quarters is replayed (what a
  first night or a `--full-refresh` costs);
- `next night`: the table holds the replay of every day but as_of, so only as_of is projected (what every
  later night costs);
- `dbt`: `dbt build --select stg_forecasts__period_projections+` (models and their data tests) after a
  replay, given the build step's parse as the night now gives it (`salesos.pipeline.seed_partial_parse`; it
  runs at the built warehouse's path, which is moved aside to `.orig` meanwhile); `dbt-full-parse`: the
  same build parsing the whole project, as before.

The scales are measured in turn, run after run (S, M, S, M, ...), so both see the same shared load; the
median of the runs is reported with the load average (1 min) before each run, wall and CPU seconds of the
step's process (`projection()`; dbt's own process for the build).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

AS_OF = date(2026, 10, 31)  # the nightly benchmark's as-of


def _copy(warehouse: Path, work: Path, name: str) -> Path:
    out = work / name / "salesos.duckdb"
    shutil.rmtree(out.parent, ignore_errors=True)
    out.parent.mkdir(parents=True)
    shutil.copyfile(warehouse, out)
    return out


def time_projection(wh: Path, work: Path, *, keep_replay: bool) -> dict:
    """projection() on `wh` (in place), wall and CPU; with keep_replay the table's rows but as_of's stay."""
    import duckdb

    from forecasting.projection_nightly import PROJECTION_TABLE, ProjectionOptions, ensure_projection_table, project
    from salesos.settings import load_settings

    con = duckdb.connect(str(wh))
    ensure_projection_table(con)
    if keep_replay:
        con.execute(f"delete from {PROJECTION_TABLE} where as_of_date = ?", [AS_OF])
    else:
        con.execute(f"delete from {PROJECTION_TABLE}")
    load = os.getloadavg()[0]
    t0, c0 = time.perf_counter(), time.process_time()
    result = project(con, con, as_of=AS_OF, run_id="bench", model_dir=work / "model", full_refresh=False,
                     options=ProjectionOptions.from_settings(load_settings(None)))
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    con.close()
    return {"wall": wall, "cpu": cpu, "load": load, "days": result["days"], "rows": result["rows"]}


def time_dbt(wh: Path, work: Path, build_run_dir: Path | None) -> dict:
    """The forecast_marts build of the projection's models (PROJECTION_MODELS) on `wh`, wall and dbt's CPU;
    with `build_run_dir`, seeded with the build step's parse as the night does (pipeline.seed_partial_parse)."""
    from salesos.pipeline import PROJECTION_MODELS, seed_partial_parse
    from salesos.settings import load_settings
    from salesos.transform.dbt_build import run_dbt

    shutil.rmtree(work / "dbt", ignore_errors=True)
    seeded = build_run_dir is not None and seed_partial_parse(build_run_dir, work / "dbt")
    load = os.getloadavg()[0]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0, c0 = time.perf_counter(), time.process_time()
    run_dbt(["build", "--select", PROJECTION_MODELS, "--exclude-resource-type", "unit_test"], warehouse=wh,
            run_dir=work / "dbt", settings=load_settings(None), as_of=AS_OF.isoformat(), run_id="bench")
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (time.process_time() - c0) + (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall": wall, "cpu": cpu, "load": load, "seeded": seeded}


def _at_build_path(wh: Path, build: Path) -> tuple[Path, Path]:
    """The replayed copy placed where the build step's warehouse was (moved aside to `.orig` by main): dbt's
    profile names the warehouse file, and a parse is reused only under the same profile, as in the night."""
    shutil.copyfile(wh, build)
    return build, wh.parent


def build_run_dir(warehouse: Path) -> Path:
    """The nightly benchmark's run folder beside its build copy (<data>/run_S/build/bench/salesos.duckdb ->
    <data>/run_S/runs/bench), where the build step's dbt target is."""
    return warehouse.parent.parent.parent / "runs" / warehouse.parent.name


def coverage(wh: Path) -> pd.DataFrame:
    """80% and 95% interval coverage of the replayed quarters by level (marts.mart_projection_accuracy, every
    scored day of a closed fiscal quarter), as benchmarks/projection.py reports it."""
    import duckdb

    con = duckdb.connect(str(wh), read_only=True)
    try:
        return con.execute(
            "select level, count(*) as series_days, round(avg(is_in_80::int), 3) as covered_80, "
            "round(avg(is_in_95::int), 3) as covered_95 from marts.mart_projection_accuracy "
            "where period_type = 'quarter' and days_into_period >= 1 group by level order by covered_80").df()
    finally:
        con.close()


def median_row(runs: list[dict]) -> str:
    def med(key: str) -> float:
        return statistics.median(r[key] for r in runs)

    walls = ", ".join(f"{r['wall']:.1f}" for r in runs)
    loads = ", ".join(f"{r['load']:.1f}" for r in runs)
    return f"{med('wall'):.1f} s | {med('cpu'):.1f} s | {walls} | {loads}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("warehouses", nargs="+", help="SCALE=PATH of a built warehouse (benchmarks/nightly.py)")
    ap.add_argument("--repeats", type=int, default=3)
    parts = ["first", "next", "dbt", "dbt-full-parse"]
    ap.add_argument("--parts", nargs="+", default=parts, choices=parts,
                    help="dbt: seeded with the build's parse, as the night does; dbt-full-parse: without (before)")
    ap.add_argument("--coverage", action="store_true",
                    help="after the first run's dbt build, print the 80%%/95%% interval coverage by level")
    ap.add_argument("--out", type=Path, default=None, help="append the markdown table here")
    args = ap.parse_args(argv)
    scales = dict(w.split("=", 1) for w in args.warehouses)
    work = Path(tempfile.mkdtemp(prefix="projection_step_"))
    runs: dict[tuple[str, str], list[dict]] = {}
    # the built warehouses are moved aside and put back at the end (a seeded dbt build runs at their path)
    originals = {scale: Path(path).with_name(Path(path).name + ".orig") for scale, path in scales.items()}
    moved = [scale for scale, path in scales.items() if "dbt" in args.parts and not originals[scale].exists()]
    for scale in moved:
        os.replace(scales[scale], originals[scale])
    try:
        for i in range(args.repeats):
            for scale, path in scales.items():
                wh = _copy(originals[scale] if originals[scale].exists() else Path(path), work, scale)
                if args.parts:  # every part needs a replayed table
                    r = time_projection(wh, work / scale, keep_replay=False)
                    if "first" in args.parts:
                        runs.setdefault((scale, "first night (replay)"), []).append(r)
                    print(f"run {i + 1} {scale} first night: {r}", flush=True)
                if "next" in args.parts:
                    r = time_projection(wh, work / scale, keep_replay=True)
                    runs.setdefault((scale, "next night (one day)"), []).append(r)
                    print(f"run {i + 1} {scale} next night: {r}", flush=True)
                for part in ("dbt", "dbt-full-parse"):
                    if part in args.parts:
                        seed = build_run_dir(Path(path)) if part == "dbt" else None
                        r = time_dbt(*_at_build_path(wh, Path(path)) if seed else (wh, work / scale), seed)
                        label = "dbt build of its models" + (", build's parse" if r["seeded"] else ", full parse")
                        runs.setdefault((scale, label), []).append(r)
                        print(f"run {i + 1} {scale} {part}: {r}", flush=True)
                if args.coverage and i == 0 and ("dbt" in args.parts or "dbt-full-parse" in args.parts):
                    built = Path(path) if "dbt" in args.parts else wh
                    print(f"{scale} coverage of the replayed quarters:\n{coverage(built).to_string()}", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        for scale in moved:
            os.replace(originals[scale], scales[scale])
    lines = [f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {args.repeats} runs per row, "
             f"scales alternated; {os.cpu_count()} cores.", "",
             "| scale | part | median wall | median CPU | walls | load avg (1 min) before each |",
             "|---|---|---|---|---|---|"]
    lines += [f"| {scale} | {part} | {median_row(r)} |" for (scale, part), r in runs.items()]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        with args.out.open("a", encoding="utf-8") as f:
            f.write("\n" + text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
