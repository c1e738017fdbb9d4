"""Benchmark of the nightly run: each step at scales S, M (and L), wall time, peak memory, rows per second.

Run from the repository root:

    .venv/bin/python benchmarks/nightly.py --scales S M --out benchmarks/results.md

Each step runs in its own child process (as in Airflow, where each task is a process), so its peak
memory is measured alone (`wait4` resource usage: the step and the processes it waited for, dbt
included). Sample data is generated once per scale and seed into --data-dir and reused. The floor is
the same core marts computed by hand-written DuckDB SQL in one process, against `dbt run` of the same
marts and their upstream models, measured in the same run; the ratio is reported.

`--incremental` measures a second night instead: night 1 runs every step on the exports in full, night 2
runs every step on exports one CRM day later (`tests.test_incremental.next_day_exports`: new, changed and
deleted records): the load and the dbt models incrementally, the forecast reusing the series whose complete
months did not change, `--repeats` times from a copy of the same night-1 state (warehouse and forecast cache;
median reported); then the same night 2 with a full refresh. The load is also timed on its own.

    .venv/bin/python benchmarks/nightly.py --scales M --incremental --as-of 2026-10-29 --out /tmp/incremental.md

With `--as-of 2026-10-29` night 2 (the 30th) is in the same month as night 1, as on most nights. On the
last day of a month that month becomes complete and every forecast series changes: `--as-of 2026-10-30`
measures that night, and the default as-of (the 31st) the first night of the next month.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

AS_OF = date(2026, 10, 31)
STEPS = ("extract", "validate", "build", "forecast", "publish")

FLOOR_SQL = """
create or replace table bench_fct_opportunities as
with fx as (
    select currency_iso_code, try_cast(rate as double) as rate, try_cast(valid_from as date) as valid_from,
           lead(try_cast(valid_from as date)) over (
               partition by currency_iso_code order by try_cast(valid_from as date)) as valid_to
    from raw.fx_rates
),
o as (
    select o.id as opportunity_id, o.owner_id, o.account_id, o.stage_name,
           try_cast(o.amount as double) as amount_local, coalesce(nullif(o.currency_iso_code, ''), 'USD') as currency,
           try_cast(o.close_date as date) as close_date, try_cast(o.created_date as timestamp)::date as created_date,
           o.is_closed = 'true' as is_closed, o.is_won = 'true' as is_won,
           try_cast(o.probability as double) / 100 as probability
    from raw.opportunities o
    where coalesce(o.is_deleted, 'false') <> 'true' and try_cast(o.created_date as timestamp)::date <= DATE '{as_of}'
)
select o.*, u.division as region,
       case when a.number_of_employees is null then 'Unknown'
            when try_cast(a.number_of_employees as bigint) >= 2000 then 'Enterprise'
            when try_cast(a.number_of_employees as bigint) >= 200 then 'Mid-Market' else 'SMB' end as segment,
       case when o.currency = 'USD' then o.amount_local else o.amount_local * fx.rate end as amount,
       case when o.is_won then 'won' when o.is_closed then 'lost' else 'open' end as status,
       case when o.currency = 'USD' then o.amount_local else o.amount_local * fx.rate end
           * o.probability as weighted_amount,
       case when o.is_closed then date_diff('day', o.created_date, o.close_date) end as sales_cycle_days
from o
left join raw.users u on u.id = o.owner_id
left join raw.accounts a on a.id = o.account_id
left join fx on fx.currency_iso_code = o.currency and o.close_date >= fx.valid_from
            and (fx.valid_to is null or o.close_date < fx.valid_to);

create or replace table bench_mart_rep_performance as
with closed as (
    select owner_id, date_trunc('month', close_date)::date as fiscal_month,
           count(*) filter (where status = 'won') as won_count, count(*) filter (where status = 'lost') as lost_count,
           coalesce(sum(amount) filter (where status = 'won'), 0) as won_amount,
           coalesce(sum(amount) filter (where status = 'lost'), 0) as lost_amount
    from bench_fct_opportunities where status <> 'open' and close_date <= DATE '{as_of}' group by all
),
q as (
    select owner_id, try_cast(period_start as date) as fiscal_month,
           sum(try_cast(quota_amount as double)) as quota_amount
    from raw.quotas group by all
)
select coalesce(c.owner_id, q.owner_id) as owner_id, coalesce(c.fiscal_month, q.fiscal_month) as fiscal_month,
       coalesce(won_count, 0) as won_count, coalesce(lost_count, 0) as lost_count,
       coalesce(won_amount, 0) as won_amount, coalesce(lost_amount, 0) as lost_amount,
       won_count / nullif(won_count + lost_count, 0) as win_rate,
       coalesce(quota_amount, 0) as quota_amount, won_amount / nullif(quota_amount, 0) as attainment
from closed c full join q on c.owner_id = q.owner_id and c.fiscal_month = q.fiscal_month
where coalesce(c.fiscal_month, q.fiscal_month) <= DATE '{as_of}';

create or replace table bench_mart_pipeline as
select DATE '{as_of}' as snapshot_date, owner_id, stage_name, count(*) as open_count, sum(amount) as amount,
       sum(weighted_amount) as weighted_amount
from bench_fct_opportunities where status = 'open' group by all;
"""

FLOOR_DBT_SELECT = ["+fct_opportunities", "+mart_rep_performance", "+mart_pipeline"]


def _step_child(step: str, ctx_json: str) -> None:
    """Entry point of one step's child process; writes the load's own wall time beside the run's logs."""
    from salesos import pipeline
    from salesos.run_context import RunContext

    ctx = RunContext.from_dict(json.loads(ctx_json))
    load_raw = pipeline.load_raw

    def timed_load(*args, **kwargs):
        start = time.perf_counter()
        result = load_raw(*args, **kwargs)
        ctx.run_dir.mkdir(parents=True, exist_ok=True)
        (ctx.run_dir / "bench_load.json").write_text(json.dumps(
            {"load_s": round(time.perf_counter() - start, 2), "mode": result.mode, "changes": result.changes}))
        return result

    pipeline.load_raw = timed_load
    getattr(pipeline, step)(ctx)


def run_child(args: list[str]) -> tuple[float, float]:
    """Run a child process; return (wall seconds, peak RSS in MB of it and what it waited for)."""
    start = time.perf_counter()
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{' '.join(args[:4])} failed:\n{err[-3000:]}")
    return wall, usage.ru_maxrss / 1024


def generate(scale: str, seed: int, data_dir: Path, as_of: date = AS_OF) -> tuple[Path, float | None]:
    out = data_dir / (f"exports_{scale}_{seed}" if as_of == AS_OF else f"exports_{scale}_{seed}_{as_of}")
    stamp = out / ".generated.json"
    want = {"scale": scale, "seed": seed, "as_of": as_of.isoformat()}
    if stamp.exists() and json.loads(stamp.read_text()) == want:
        return out, None
    shutil.rmtree(out, ignore_errors=True)
    wall, _ = run_child([sys.executable, "-m", "salesos.cli", "generate", "--scale", scale, "--seed", str(seed),
                         "--out", str(out), "--as-of", as_of.isoformat()])
    stamp.write_text(json.dumps(want))
    return out, wall


def raw_rows(warehouse: Path) -> int:
    import duckdb

    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        return int(con.execute("select sum(row_count) from raw._loads where run_id = 'bench'").fetchall()[0][0] or 0)
    finally:
        con.close()


def bench_scale(scale: str, seed: int, data_dir: Path, memory_limit: str | None,
                steps: tuple[str, ...] = STEPS, floor: bool = True) -> dict:
    from salesos.run_context import RunContext

    exports, gen_wall = generate(scale, seed, data_dir)
    work = data_dir / f"run_{scale}"
    shutil.rmtree(work, ignore_errors=True)
    ctx = RunContext.create(as_of=AS_OF, exports=exports, warehouse=work / "salesos.duckdb", run_id="bench")
    if memory_limit:
        os.environ["SALESOS_DUCKDB_MEMORY_LIMIT"] = memory_limit
    result: dict = {"scale": scale, "generate_s": gen_wall, "steps": {}}
    rows = 0
    for step in steps:
        wall, peak = run_child([sys.executable, __file__, "--child-step", step, json.dumps(ctx.to_dict())])
        if step == "extract":
            rows = raw_rows(ctx.build_warehouse)
        result["steps"][step] = {"wall_s": round(wall, 2), "peak_mb": round(peak), "rows": rows,
                                 "rows_per_s": round(rows / wall) if wall else None}
        # each step as it ends, so a long run (L) that is stopped still leaves what it measured
        print(json.dumps({"scale": scale, "step": step, **result["steps"][step],
                          "at": time.strftime("%H:%M:%S UTC", time.gmtime())}), flush=True)
    result["total_s"] = round(sum(s["wall_s"] for s in result["steps"].values()), 1)
    if floor and "publish" in steps:
        result["floor"] = bench_floor(ctx.warehouse, work)
    return result


def bench_night(exports: Path, warehouse: Path, as_of: date, run_id: str, full_refresh: bool = False) -> dict:
    """Every step of one night, each in a child process, as `salesos run` runs them (publish included)."""
    from salesos.run_context import RunContext

    ctx = RunContext.create(as_of=as_of, exports=exports, warehouse=warehouse, run_id=run_id,
                            full_refresh=full_refresh)
    night: dict = {"run_id": run_id, "full_refresh": full_refresh}
    for step in STEPS:  # the context (full_refresh included) travels to each child as its JSON form
        wall, peak = run_child([sys.executable, __file__, "--child-step", step, json.dumps(ctx.to_dict())])
        night[f"{step}_s"], night[f"{step}_peak_mb"] = round(wall, 2), round(peak)
        print(json.dumps({"night": run_id, "step": step, "wall_s": night[f"{step}_s"], "peak_mb": round(peak),
                          "at": time.strftime("%H:%M:%S UTC", time.gmtime())}), flush=True)
    load = json.loads((ctx.run_dir / "bench_load.json").read_text())
    build = json.loads((ctx.run_dir / "build.json").read_text())
    forecast = json.loads((ctx.run_dir / "forecast.json").read_text())
    night.update(load_s=load["load_s"], dbt_elapsed_s=build.get("elapsed_seconds"), modes=load["mode"],
                 changes=load["changes"], series_fitted=forecast.get("fitted"), series_reused=forecast.get("reused"))
    night["load_plus_dbt_s"] = round(night["load_s"] + night["build_s"], 2)
    night["refresh_s"] = round(night["extract_s"] + night["validate_s"] + night["build_s"], 2)
    night["night_s"] = round(sum(night[f"{step}_s"] for step in STEPS), 2)
    timings = ctx.run_dir / "dbt_target" / "run_results.json"
    if timings.exists():  # every model's and test's time, kept beside the nights for profiling
        shutil.copyfile(timings, warehouse.parent.parent / f"{run_id}.run_results.json")
    return night


def bench_incremental(scale: str, seed: int, data_dir: Path, repeats: int, as_of: date = AS_OF) -> dict:
    """Night 1 in full, then night 2 (one CRM day later) incrementally `repeats` times and with a full refresh."""
    from datetime import timedelta

    from tests.test_incremental import next_day_exports

    exports, gen_wall = generate(scale, seed, data_dir, as_of)
    day2 = exports.with_name(exports.name + "_next_day")
    if not (day2 / "Task.csv").exists():
        shutil.rmtree(day2, ignore_errors=True)
        next_day_exports(exports, day2, as_of + timedelta(days=1))
    work = data_dir / f"incremental_{scale}"
    shutil.rmtree(work, ignore_errors=True)
    night1_wh = work / "night1" / "salesos.duckdb"
    result: dict = {"scale": scale, "as_of": as_of.isoformat(), "generate_s": gen_wall,
                    "night1": bench_night(exports, night1_wh, as_of, "night1")}
    night2: list[dict] = []
    for i in range(repeats + 1):
        wh = work / f"night2_{i}" / "salesos.duckdb"
        wh.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(night1_wh, wh)  # night 1's published state: the warehouse and the forecast cache
        if (night1_wh.parent / "forecast_cache").is_dir():
            shutil.copytree(night1_wh.parent / "forecast_cache", wh.parent / "forecast_cache")
        night2.append(bench_night(day2, wh, as_of + timedelta(days=1), f"night2_{i}", full_refresh=i == repeats))
        shutil.rmtree(wh.parent, ignore_errors=True)
    result["night2_incremental"] = night2[:-1]
    result["night2_full_refresh"] = night2[-1]
    for key in ("load_s", *(f"{step}_s" for step in STEPS), "load_plus_dbt_s", "refresh_s", "night_s"):
        result[f"incremental_median_{key}"] = round(statistics.median(n[key] for n in night2[:-1]), 2)
    return result


def incremental_markdown(r: dict, when: str) -> str:
    lines = [f"## Scale {r['scale']}: second night, incremental vs full", "",
             f"- machine: {machine()}", f"- date: {when}", f"- commit: {commit()}",
             f"- as of: {r['as_of']} (night 1), the next day (night 2); command: "
             f"`.venv/bin/python benchmarks/nightly.py --scales {r['scale']} --incremental --as-of {r['as_of']}`",
             "",
             "| night | load (s) | extract (s) | validate (s) | dbt build (s) | forecast (s) | publish (s) | "
             "**all steps (s)** | load + dbt (s) | series fitted / reused | peak memory (MB) |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    rows = [("night 1 (first, full)", r["night1"])]
    rows += [(f"night 2 incremental #{i + 1}", n) for i, n in enumerate(r["night2_incremental"])]
    rows += [("night 2 --full-refresh", r["night2_full_refresh"])]
    for name, n in rows:
        peak = max(n[f"{step}_peak_mb"] for step in STEPS)
        lines.append(f"| {name} | {n['load_s']} | {n['extract_s']} | {n['validate_s']} | {n['build_s']} | "
                     f"{n['forecast_s']} | {n['publish_s']} | **{n['night_s']}** | {n['load_plus_dbt_s']} | "
                     f"{n['series_fitted']} / {n['series_reused']} | {peak} |")
    lines += ["", f"Median of the incremental night 2: all steps {r['incremental_median_night_s']} s; load "
              f"{r['incremental_median_load_s']} s, dbt build {r['incremental_median_build_s']} s, load + dbt "
              f"{r['incremental_median_load_plus_dbt_s']} s, forecast {r['incremental_median_forecast_s']} s, "
              f"publish {r['incremental_median_publish_s']} s.", "",
              "Rows changed by night 2's load (inserted/updated/deleted):", ""]
    for name, c in r["night2_incremental"][0]["changes"].items():
        lines.append(f"- {name}: {c['inserted']}/{c['updated']}/{c['deleted']} "
                     f"({r['night2_incremental'][0]['modes'][name]})")
    return "\n".join(lines) + "\n"


def bench_floor(warehouse: Path, work: Path, repeats: int = 3) -> dict:
    """Hand-written SQL for the core marts vs `dbt run` of the same marts, on copies of the warehouse."""
    import duckdb

    from salesos.settings import load_settings
    from salesos.transform.dbt_build import run_dbt

    sql_times, dbt_times, model_times, models = [], [], [], 0
    for i in range(repeats):
        copy = work / f"floor_{i}" / warehouse.name
        copy.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(warehouse, copy)
        start = time.perf_counter()
        con = duckdb.connect(str(copy))
        con.execute(FLOOR_SQL.format(as_of=AS_OF.isoformat()))
        con.close()
        sql_times.append(time.perf_counter() - start)
        start = time.perf_counter()
        # full_refresh: from the raw tables, as the hand-written SQL computes them (the copy already holds
        # last night's incremental models, which a plain run would only top up)
        run_dbt(["run", "--select", *FLOOR_DBT_SELECT], warehouse=copy, run_dir=copy.parent / "dbt",
                settings=load_settings(), as_of=AS_OF.isoformat(), full_refresh=True)
        dbt_times.append(time.perf_counter() - start)
        # the SQL dbt ran (each model's own execution time) against dbt's start-up, parsing and bookkeeping
        run_results = json.loads((copy.parent / "dbt" / "dbt_target" / "run_results.json").read_text())
        model_times.append(sum(r["execution_time"] for r in run_results["results"]))
        models = len(run_results["results"])
        shutil.rmtree(copy.parent, ignore_errors=True)
    sql, dbt = statistics.median(sql_times), statistics.median(dbt_times)
    return {"sql_median_s": round(sql, 2), "dbt_median_s": round(dbt, 2), "ratio": round(dbt / sql, 1),
            "dbt_models": models, "dbt_model_sql_median_s": round(statistics.median(model_times), 2),
            "repeats": repeats}


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    mem = int(next(line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines()
                   if line.startswith("MemTotal"))) / 1024 / 1024
    return f"{os.cpu_count()} cores ({cpu}), {mem:.0f} GiB, Python {platform.python_version()}"


def commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def to_markdown(results: list[dict], when: str) -> str:
    lines = ["# Nightly run benchmark", "", f"- machine: {machine()}", f"- date: {when}", f"- commit: {commit()}",
             f"- as of: {AS_OF}, command: `.venv/bin/python benchmarks/nightly.py --scales "
             f"{' '.join(r['scale'] for r in results)}`", ""]
    lines += ["Rows/s is the rows loaded into raw (all exports) over the step's wall time.", "",
              "| scale | step | wall (s) | peak memory (MB) | rows/s |", "| --- | --- | ---: | ---: | ---: |"]
    for r in results:
        if r.get("generate_s"):
            lines.append(f"| {r['scale']} | generate sample | {r['generate_s']:.1f} | | |")
        for step, s in r["steps"].items():
            lines.append(f"| {r['scale']} | {step} | {s['wall_s']} | {s['peak_mb']} | {s['rows_per_s'] or ''} |")
        total = "all steps" if len(r["steps"]) == len(STEPS) else " + ".join(r["steps"])
        lines.append(f"| {r['scale']} | **{total}** | **{r['total_s']}** | | |")
    lines += ["", "Floor: the core marts (fct_opportunities, mart_rep_performance, mart_pipeline) by hand-written "
              "DuckDB SQL in one process, against `dbt run` of the same marts and their upstream models "
              "(medians of the repeats, measured in the same run):", "",
              "| scale | hand-written SQL (s) | dbt (s) | ratio | dbt models run | their SQL, summed (s) |",
              "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for r in results:
        if "floor" not in r:
            continue
        f = r["floor"]
        lines.append(f"| {r['scale']} | {f['sql_median_s']} | {f['dbt_median_s']} | {f['ratio']} | "
                     f"{f.get('dbt_models', '')} | {f.get('dbt_model_sql_median_s', '')} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scales", nargs="+", default=["S"], choices=["S", "M", "L"])
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--data-dir", type=Path, default=Path("/tmp/salesos-bench"))
    parser.add_argument("--memory-limit", default=None, help="DuckDB memory limit for dbt, e.g. 6GB")
    parser.add_argument("--out", type=Path, default=None, help="write the results table (markdown) here")
    parser.add_argument("--steps", nargs="+", default=list(STEPS), choices=STEPS,
                        help="run only these steps, in pipeline order (each needs the ones before it)")
    parser.add_argument("--no-floor", action="store_true", help="skip the hand-written SQL floor")
    parser.add_argument("--incremental", action="store_true", help="measure a second night, incremental vs full")
    parser.add_argument("--repeats", type=int, default=2, help="incremental second nights to measure (median)")
    parser.add_argument("--as-of", type=date.fromisoformat, default=AS_OF,
                        help="night 1's date for --incremental (night 2 is the day after)")
    parser.add_argument("--child-step", nargs=2, metavar=("STEP", "CONTEXT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child_step:
        _step_child(*args.child_step)
        return 0
    args.data_dir.mkdir(parents=True, exist_ok=True)
    if args.incremental:
        when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        texts = []
        for scale in args.scales:
            print(f"scale {scale} (incremental) ...", flush=True)
            r = bench_incremental(scale, args.seed, args.data_dir, args.repeats, args.as_of)
            print(json.dumps(r, indent=2), flush=True)
            texts.append(incremental_markdown(r, when))
        text = "\n".join(texts)
        print(text)
        if args.out:
            args.out.write_text(text, encoding="utf-8")
        return 0
    results = []
    for scale in args.scales:
        print(f"scale {scale} ...", flush=True)
        steps = tuple(s for s in STEPS if s in args.steps)
        results.append(bench_scale(scale, args.seed, args.data_dir, args.memory_limit, steps, not args.no_floor))
        print(json.dumps(results[-1], indent=2), flush=True)
    text = to_markdown(results, time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()))
    print(text)
    if args.out:
        args.out.write_text(text, encoding="utf-8")
        (args.out.with_suffix(".json")).write_text(json.dumps(results, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
