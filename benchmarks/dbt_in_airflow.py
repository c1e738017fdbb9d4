"""dbt inside Airflow: one `dbt build` task (the project's way) against one cosmos task per model.

Issue #6. Measures, per scale (S, M), on copies of the same freshly loaded warehouse:

  a_direct   `run_dbt(["build"], ...)` called the way `pipeline.build` calls it (no Airflow);
  a_dagtest  the same call as the only task of a throwaway DAG, run with `dag.test()`;
  b_cosmos   a cosmos `DbtTaskGroup` in LOCAL mode (dbt in-process), `TestBehavior.BUILD` (one
             `dbt build --select <model>` per task, the model's tests right after it), every task in a
             one-slot pool, run with `dag.test()` of a throwaway DAG.

and records wall times, task durations from the Airflow metadata DB, the per-model overhead
(task time minus the SQL time dbt reported for the same nodes), whether each task log names each
model's result, and whether the relations dbt wrote are equal between the variants.

cosmos is NOT a project dependency. Install it into a throwaway overlay, never into the lock:

    pip install --target /tmp/h/cosmos --no-deps astronomer-cosmos==1.15.1 aenum deprecation virtualenv

(any pip for the same Python minor version as .venv; .venv itself has no pip). Then, from the
repository root:

    PYTHONPATH=/tmp/h/cosmos .venv/bin/python benchmarks/dbt_in_airflow.py --scales S M --repeat 3

Everything is written under --work (default /tmp/h/dbt_af): sample exports, the loaded raw warehouse
per scale, one copy per variant and repeat, a project-local AIRFLOW_HOME and a dags folder of
generated DAG files (the repository's dags/ is never touched). Results: <work>/results.json.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
# The code measured: a `git archive` snapshot of --commit (set in main), not the shared working tree.
SRC = ROOT

AS_OF = date(2026, 10, 31)
SEED = 7
POOL = "bench_duckdb_writer"
VARIANTS = ("a_direct", "a_dagtest", "b_cosmos")
COSMOS_HELP = (
    "astronomer-cosmos is not importable. It is deliberately not in the project lock; install it into an "
    "overlay and put that on PYTHONPATH:\n"
    "  pip install --target /tmp/h/cosmos --no-deps astronomer-cosmos==1.15.1 aenum deprecation virtualenv\n"
    "  PYTHONPATH=/tmp/h/cosmos .venv/bin/python benchmarks/dbt_in_airflow.py ..."
)
# A dbt result line as it appears in a task log, e.g. "1 of 35 OK created sql view model ..." or "PASS".
RESULT_LINE = re.compile(r"\d+ of \d+ (OK|PASS|WARN|ERROR|FAIL|SKIP)\b")

# --- DAG files written into the temporary dags folder ----------------------------------------------
# Both read their inputs from the environment at parse time (each dag.test() is its own process).

DAG_PROJECT_WAY = '''
"""Throwaway benchmark DAG: the project's single dbt_build task (run_dbt(["build"]))."""
import os
from datetime import datetime
from pathlib import Path

from airflow.sdk import dag, task


@dag(dag_id="bench_dbt_build", schedule=None, start_date=datetime(2026, 1, 1), catchup=False)
def bench_dbt_build():
    @task(retries=0, pool=os.environ.get("BENCH_POOL", "default_pool"))
    def dbt_build() -> dict:
        from salesos.settings import load_settings
        from salesos.transform.dbt_build import run_dbt

        return run_dbt(
            ["build"],
            warehouse=Path(os.environ["BENCH_WAREHOUSE"]),
            run_dir=Path(os.environ["BENCH_RUN_DIR"]),
            settings=load_settings(),
            as_of=os.environ["BENCH_AS_OF"],
        ).to_dict()

    dbt_build()


DAG = bench_dbt_build()
'''

DAG_COSMOS = '''
"""Throwaway benchmark DAG: cosmos DbtTaskGroup, LOCAL mode, `dbt build` per model, one-slot pool."""
import json
import math
import os
from datetime import datetime
from pathlib import Path

from airflow.sdk import DAG
from cosmos import DbtTaskGroup, ExecutionConfig, ProfileConfig, ProjectConfig, RenderConfig
from cosmos.constants import ExecutionMode, InvocationMode, LoadMode, TestBehavior

PROJECT = Path(os.environ["BENCH_DBT_PROJECT"])
ENV = {"SALESOS_WAREHOUSE_PATH": os.environ.get("BENCH_WAREHOUSE", ""), "SALESOS_DBT_TARGET": "duckdb"}

with DAG(dag_id="bench_cosmos", schedule=None, start_date=datetime(2026, 1, 1), catchup=False) as DAG_:
    DbtTaskGroup(
        group_id="dbt",
        project_config=ProjectConfig(
            dbt_project_path=PROJECT,
            manifest_path=os.environ["BENCH_MANIFEST"],
            env_vars=ENV,
            dbt_vars=json.loads(os.environ.get("BENCH_VARS", "{}")),
            install_dbt_deps=False,
        ),
        profile_config=ProfileConfig(
            profile_name="salesos", target_name="duckdb", profiles_yml_filepath=PROJECT / "profiles.yml"
        ),
        execution_config=ExecutionConfig(
            execution_mode=ExecutionMode.LOCAL, invocation_mode=InvocationMode.DBT_RUNNER
        ),
        # tests on two models (relationships, singular) run as their own task after both parents
        render_config=RenderConfig(
            load_method=LoadMode.DBT_MANIFEST,
            test_behavior=TestBehavior.BUILD,
            should_detach_multiple_parents_tests=True,
        ),
        operator_args={"pool": os.environ.get("BENCH_POOL", "default_pool"), "retries": 0},
    )
'''

# Runs one DAG file's dag.test() and writes timings and task instances as JSON (argv: dag file, dag id, out).
DAG_TEST_RUNNER = '''
import importlib.util, json, sqlite3, sys, time
from datetime import datetime, timedelta, timezone

t0 = time.perf_counter()
spec = importlib.util.spec_from_file_location("bench_dag_module", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
dag = next(v for v in vars(module).values() if getattr(v, "dag_id", None) == sys.argv[2])
t1 = time.perf_counter()
logical = datetime(2026, 10, 31, tzinfo=timezone.utc) + timedelta(seconds=int(sys.argv[4]))
dr = dag.test(logical_date=logical)
t2 = time.perf_counter()
db = sqlite3.connect(sys.argv[5])
rows = db.execute(
    "select task_id, state, start_date, end_date, duration, try_number from task_instance"
    " where dag_id = ? and run_id = ? order by start_date",
    (dag.dag_id, dr.run_id),
).fetchall()
out = {
    "parse_seconds": t1 - t0,
    "dag_test_seconds": t2 - t1,
    "state": str(dr.state),
    "tasks": [dict(zip(("task_id", "state", "start", "end", "duration", "try_number"), r)) for r in rows],
}
open(sys.argv[3], "w").write(json.dumps(out, default=str))
'''


def src_env() -> dict[str, str]:
    """The environment with the snapshot first on PYTHONPATH (before the editable install of the checkout)."""
    return dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (str(SRC), os.environ.get("PYTHONPATH", "")) if p))


def snapshot(commit: str, work: Path) -> tuple[str, Path]:
    """Export `commit` with `git archive` (read-only on the repository); return its sha and folder."""
    sha = subprocess.run(["git", "rev-parse", commit], cwd=ROOT, check=True, capture_output=True,
                         text=True).stdout.strip()
    dest = work / sha[:10] / "src"
    if not (dest / "dbt_project" / "dbt_project.yml").exists():
        dest.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(["git", "archive", sha], cwd=ROOT, check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    return sha, dest


def _run(cmd: list[str], env: dict[str, str] | None = None, log: Path | None = None) -> float:
    """Run a command, failing loudly; return its wall time in seconds."""
    t0 = time.perf_counter()
    if log is None:
        subprocess.run(cmd, check=True, env=env or src_env(), cwd=SRC)
    else:
        with log.open("w") as fh:
            proc = subprocess.run(cmd, env=env or src_env(), cwd=SRC, stdout=fh, stderr=subprocess.STDOUT)
        if proc.returncode != 0:
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-40:])
            raise RuntimeError(f"{' '.join(cmd[:3])} failed ({proc.returncode}), log {log}:\n{tail}")
    return time.perf_counter() - t0


def prepare_scale(work: Path, base: Path, scale: str) -> Path:
    """Generate the exports once and load the raw tables once (pipeline.extract); return the raw copy."""
    from salesos import pipeline
    from salesos.run_context import RunContext

    exports = work / f"exports_{scale}"
    if not (exports / "Opportunity.csv").exists():
        _run([sys.executable, "-m", "salesos.cli", "generate", "--scale", scale, "--seed", str(SEED),
              "--as-of", AS_OF.isoformat(), "--out", str(exports)])
    raw = base / scale / "raw" / "salesos.duckdb"
    if raw.exists():
        return raw
    landing = base / scale / "extract"
    shutil.rmtree(landing, ignore_errors=True)
    ctx = RunContext.create(as_of=AS_OF, exports=exports, warehouse=landing / "salesos.duckdb", data_dir=landing)
    t0 = time.perf_counter()
    pipeline.extract(ctx)
    print(f"[{scale}] extract {time.perf_counter() - t0:.1f}s", flush=True)
    raw.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(ctx.build_warehouse, raw)
    return raw


def fresh_copy(raw: Path, dest_dir: Path) -> Path:
    """A copy of the raw warehouse with the same file name (DuckDB names its catalog after the stem)."""
    shutil.rmtree(dest_dir, ignore_errors=True)
    dest_dir.mkdir(parents=True)
    dest = dest_dir / raw.name
    shutil.copyfile(raw, dest)
    return dest


def dbt_vars_json() -> str:
    from salesos.settings import load_settings
    from salesos.transform.dbt_build import dbt_vars

    return json.dumps(dbt_vars(load_settings(), AS_OF.isoformat()))


def write_manifest(work: Path, raw: Path) -> Path:
    """`dbt parse` once: cosmos renders the task group from this manifest (no `dbt ls` at DAG parse)."""
    from salesos.transform.dbt_build import DBT_PROJECT_DIR, dbt_env, dbt_executable

    target = work / "manifest_target"
    if not (target / "manifest.json").exists():
        subprocess.run(
            [dbt_executable(), "parse", "--project-dir", str(DBT_PROJECT_DIR), "--profiles-dir", str(DBT_PROJECT_DIR),
             "--target-path", str(target), "--log-path", str(work / "manifest_logs"), "--vars", dbt_vars_json()],
            check=True, cwd=DBT_PROJECT_DIR, env=dbt_env(raw, "duckdb"), stdout=subprocess.DEVNULL,
        )
    return target / "manifest.json"


def airflow_env(work: Path, base: Path) -> dict[str, str]:
    home = work / "airflow_home"
    env = dict(os.environ)
    env.update({
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(work / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__COSMOS__CACHE_DIR": str(base / "cosmos_cache"),
        "AIRFLOW__COSMOS__ENABLE_CACHE": "True",
        "AIRFLOW__COSMOS__ENABLE_TELEMETRY": "False",
        "DO_NOT_TRACK": "1",
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        "PYTHONPATH": os.pathsep.join(p for p in (str(SRC), env.get("PYTHONPATH", "")) if p),
    })
    return env


def prepare_airflow(work: Path, base: Path) -> dict[str, str]:
    """Temp AIRFLOW_HOME (sqlite), `airflow db migrate`, the one-slot pool, and the two DAG files."""
    env = airflow_env(work, base)
    dags = work / "dags"
    dags.mkdir(parents=True, exist_ok=True)
    (dags / "bench_dbt_build.py").write_text(DAG_PROJECT_WAY)
    (dags / "bench_cosmos.py").write_text(DAG_COSMOS)
    (work / "dag_test_runner.py").write_text(DAG_TEST_RUNNER)
    home = Path(env["AIRFLOW_HOME"])
    if not (home / "airflow.db").exists():
        home.mkdir(parents=True, exist_ok=True)
        airflow = str(ROOT / ".venv/bin/airflow")
        _run([airflow, "db", "migrate"], env=env, log=work / "db_migrate.log")
        _run([airflow, "pools", "set", POOL, "1", "one writer, as duckdb_writer"], env=env, log=work / "pool.log")
    return env


def run_results_nodes(path: Path) -> dict[str, float]:
    """Execution time per node (unique_id) from dbt's run_results.json."""
    data = json.loads(path.read_text())
    return {r["unique_id"]: float(r.get("execution_time") or 0.0) for r in data["results"]}


def count_result_lines(log: Path) -> dict[str, int]:
    counts: dict[str, int] = {}
    for line in log.read_text(errors="replace").splitlines():
        m = RESULT_LINE.search(line)
        if m:
            counts[m.group(1)] = counts.get(m.group(1), 0) + 1
    return counts


def run_direct(raw: Path, out: Path) -> dict[str, Any]:
    """(a) run_dbt(["build"]) in a child process, exactly the call pipeline.build makes."""
    wh = fresh_copy(raw, out / "wh")
    code = (
        "import sys, json, time, logging; from pathlib import Path;"
        "logging.basicConfig(level=logging.INFO, format='%(asctime)s %(message)s');"
        "from salesos.settings import load_settings; from salesos.transform.dbt_build import run_dbt;"
        "t=time.perf_counter(); r=run_dbt(['build'], warehouse=Path(sys.argv[1]), run_dir=Path(sys.argv[2]),"
        " settings=load_settings(), as_of=sys.argv[3]);"
        "print('BENCH', json.dumps({'seconds': time.perf_counter()-t, **r.to_dict()}))"
    )
    log = out / "task.log"
    wall = _run([sys.executable, "-c", code, str(wh), str(out / "run"), AS_OF.isoformat()],
                env=src_env(), log=log)
    line = next(x for x in log.read_text().splitlines() if x.startswith("BENCH "))
    res = json.loads(line[6:])
    return {
        "process_seconds": wall,
        "wall_seconds": res["seconds"],
        "dbt_elapsed": res["elapsed_seconds"],
        "models": res["models"],
        "tests_passed": res["tests_passed"],
        "statuses": res["statuses"],
        "nodes": run_results_nodes(out / "run" / "dbt_target" / "run_results.json"),
        "log_result_lines": count_result_lines(log),
        "warehouse": str(wh),
    }


def run_dag_test(raw: Path, out: Path, env: dict[str, str], work: Path, dag_file: str, dag_id: str,
                 n: int, manifest: Path) -> dict[str, Any]:
    """One dag.test() of a generated DAG in its own process; wall time and task instance durations."""
    wh = fresh_copy(raw, out / "wh")
    env = dict(env, BENCH_WAREHOUSE=str(wh), BENCH_RUN_DIR=str(out / "run"), BENCH_AS_OF=AS_OF.isoformat(),
               BENCH_POOL=POOL, BENCH_MANIFEST=str(manifest), BENCH_DBT_PROJECT=str(SRC / "dbt_project"),
               BENCH_VARS=dbt_vars_json(), SALESOS_WAREHOUSE_PATH=str(wh), SALESOS_DBT_TARGET="duckdb")
    res_file = out / "dag_test.json"
    log = out / "task.log"
    wall = _run([sys.executable, str(work / "dag_test_runner.py"), str(work / "dags" / dag_file), dag_id,
                 str(res_file), str(n), str(Path(env["AIRFLOW_HOME"]) / "airflow.db")], env=env, log=log)
    res = json.loads(res_file.read_text())
    tasks = res["tasks"]
    failed = [t["task_id"] for t in tasks if t["state"] != "success"]
    return {
        "process_seconds": wall,
        "parse_seconds": res["parse_seconds"],
        "wall_seconds": res["dag_test_seconds"],
        "state": res["state"],
        "tasks": tasks,
        "task_seconds_sum": sum(float(t["duration"] or 0) for t in tasks),
        "failed_tasks": failed,
        "log_result_lines": count_result_lines(log),
        "warehouse": str(wh),
    }


def relations(db: Path) -> list[tuple[str, str]]:
    import duckdb

    con = duckdb.connect(str(db), read_only=True)
    try:
        return [tuple(r) for r in con.execute(
            "select table_schema, table_name from information_schema.tables"
            " where table_catalog = current_database() order by 1, 2").fetchall()]
    finally:
        con.close()


def fingerprint(db: Path, skip: set[tuple[str, str]]) -> dict[str, dict[str, Any]]:
    """Per relation not in `skip`: row count, an order-free hash of all columns (bit-exact) and of the
    non-float columns, and sum/min/max of each float column (floats are compared with a tolerance:
    DuckDB's parallel aggregates may differ in the last bits between two runs of the same SQL)."""
    import duckdb

    con = duckdb.connect(str(db), read_only=True)
    out: dict[str, dict[str, Any]] = {}
    try:
        rels = con.execute(
            "select table_schema, table_name from information_schema.tables"
            " where table_catalog = current_database() order by 1, 2").fetchall()
        for schema, name in rels:
            if (schema, name) in skip:
                continue
            cols = con.execute(
                "select column_name, data_type from information_schema.columns where table_catalog ="
                " current_database() and table_schema = ? and table_name = ? order by ordinal_position",
                [schema, name]).fetchall()
            floats = [c for c, t in cols if t in ("DOUBLE", "FLOAT")]
            others = [f'"{c}"' for c, t in cols if c not in floats]
            exprs = [
                "count(*)",
                f"coalesce(sum(hash({', '.join(f'{chr(34)}{c}{chr(34)}' for c, _ in cols)})), 0)::varchar",
                f"coalesce(sum(hash({', '.join(others)})), 0)::varchar" if others else "'0'",
            ]
            for c in floats:
                exprs += [f'sum("{c}")', f'min("{c}")', f'max("{c}")']
            try:
                row = con.execute(f'select {", ".join(exprs)} from "{schema}"."{name}"').fetchall()[0]
            except duckdb.Error as exc:
                out[f"{schema}.{name}"] = {"error": str(exc).splitlines()[0]}
                continue
            out[f"{schema}.{name}"] = {"rows": row[0], "hash": row[1], "hash_nonfloat": row[2],
                                       "floats": [None if v is None else float(v) for v in row[3:]]}
    finally:
        con.close()
    return out


def _close(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)


def compare(ref: dict[str, dict[str, Any]], other: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Which relations are bit-identical, equal within float tolerance, or different."""
    identical, tolerant, different = [], [], []
    for rel in sorted(set(ref) | set(other)):
        a, b = ref.get(rel), other.get(rel)
        if a is None or b is None or "error" in a or "error" in b:
            different.append(rel)
        elif a["hash"] == b["hash"] and a["rows"] == b["rows"]:
            identical.append(rel)
        elif (a["rows"] == b["rows"] and a["hash_nonfloat"] == b["hash_nonfloat"]
              and all(_close(x, y) for x, y in zip(a["floats"], b["floats"], strict=True))):
            tolerant.append(rel)
        else:
            different.append(rel)
    return {"equal": not different, "relations": len(identical) + len(tolerant) + len(different),
            "bit_identical": len(identical), "equal_within_1e-9": tolerant, "different": different}


def per_task_overhead(cosmos: dict[str, Any], nodes: dict[str, float]) -> dict[str, Any]:
    """Task duration minus the dbt execution time of the nodes it builds (model/seed + its tests).

    Node times come from the single `dbt build` of the same data (cosmos LOCAL keeps no run_results).
    """
    by_name: dict[str, float] = {}
    for uid, secs in nodes.items():
        kind, _, rest = uid.partition(".")
        if kind in ("model", "seed", "snapshot"):
            by_name[rest.split(".")[-1]] = by_name.get(rest.split(".")[-1], 0.0) + secs
    tests_total = sum(s for u, s in nodes.items() if u.split(".")[0] in ("test", "unit_test"))
    over = []
    for t in cosmos["tasks"]:
        # task ids: dbt.<model>_model_build / dbt.<seed>_seed_build; detached tests are not matched
        name = re.sub(r"_(model|seed|snapshot)_build$", "", t["task_id"].split(".", 1)[-1])
        if name in by_name and t["duration"] is not None:
            over.append(float(t["duration"]) - by_name[name])
    return {
        "tasks_matched": len(over),
        "median_task_minus_model_sql": statistics.median(over) if over else None,
        "sum_task_minus_model_sql": sum(over),
        "test_sql_seconds_total": tests_total,
    }


def save(results_file: Path, results: dict[str, Any], scale: str) -> None:
    """Write this scale's results, keeping what another invocation (another scale) wrote meanwhile."""
    on_disk = json.loads(results_file.read_text()) if results_file.exists() else {}
    on_disk.update({k: v for k, v in results.items() if k not in ("S", "M", "L")})
    on_disk[scale] = results[scale]
    results_file.write_text(json.dumps(on_disk, indent=2, default=str))


def summary_table(results: dict[str, Any]) -> str:
    """The markdown table of benchmarks/dbt_in_airflow.md, from results.json."""
    lines = [
        "| scale | variant | runs | median wall s | median process s | tasks | failed | dbt result lines in log |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for scale in ("S", "M", "L"):
        for variant in VARIANTS:
            v = results.get(scale, {}).get(variant)
            if not v:
                continue
            runs = v["runs"]
            tasks = len(runs[0].get("tasks", [])) or 1
            failed = max(len(r.get("failed_tasks", [])) for r in runs)
            lines.append(
                f"| {scale} | {variant} | {len(runs)} | {v['median_wall_seconds']:.1f} | "
                f"{v['median_process_seconds']:.1f} | {tasks} | {failed} | {runs[0]['log_result_lines']} |")
    for scale in ("S", "M", "L"):
        sr = results.get(scale, {})
        if "b_cosmos" in sr and "a_dagtest" in sr:
            n = len(sr["b_cosmos"]["runs"][0]["tasks"])
            extra = sr["b_cosmos"]["median_wall_seconds"] - sr["a_dagtest"]["median_wall_seconds"]
            lines.append(f"\n{scale}: cosmos minus one-task dag.test = {extra:.1f} s over {n} tasks "
                         f"= {extra / n:.2f} s per task; overhead detail {sr.get('cosmos_overhead')}")
        for variant, c in sr.get("equal_to_a_direct", {}).items():
            lines.append(f"\n{scale}: {variant} vs a_direct: equal={c['equal']}, {c['relations']} relations, "
                         f"{c['bit_identical']} bit-identical, {len(c['equal_within_1e-9'])} equal within 1e-9 "
                         f"{c['equal_within_1e-9']}, different {c['different'][:10]}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--scales", nargs="+", default=["S", "M"], choices=["S", "M", "L"])
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    p.add_argument("--work", type=Path, default=Path("/tmp/h/dbt_af"))
    p.add_argument("--summary", action="store_true", help="only print the table from an earlier results.json")
    p.add_argument("--commit", default="HEAD", help="the commit whose salesos/ and dbt_project/ are measured")
    args = p.parse_args(argv)
    global SRC
    if "b_cosmos" in args.variants and not args.summary:
        try:
            import cosmos  # noqa: F401
        except ImportError:
            print(COSMOS_HELP, file=sys.stderr)
            return 2
    work: Path = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    sha, SRC = snapshot(args.commit, work)
    sys.path.insert(0, str(SRC))
    base = work / sha[:10]
    if args.summary:
        print(summary_table(json.loads((base / "results.json").read_text())))
        return 0
    env = prepare_airflow(work, base) if {"a_dagtest", "b_cosmos"} & set(args.variants) else {}
    results_file = base / "results.json"
    results: dict[str, Any] = json.loads(results_file.read_text()) if results_file.exists() else {}
    results["commit"] = sha
    results["machine"] = {"platform": platform.platform(), "python": platform.python_version(),
                          "cpus": os.cpu_count()}
    for scale in args.scales:
        raw = prepare_scale(work, base, scale)
        manifest = write_manifest(base, raw)
        raw_rels = set(relations(raw))
        scale_res: dict[str, Any] = results.setdefault(scale, {})
        for variant in args.variants:
            runs = []
            for i in range(args.repeat):
                out = base / scale / f"{variant}_{i}"
                shutil.rmtree(out, ignore_errors=True)
                out.mkdir(parents=True)
                load_before = os.getloadavg()
                if variant == "a_direct":
                    r = run_direct(raw, out)
                elif variant == "a_dagtest":
                    r = run_dag_test(raw, out, env, work, "bench_dbt_build.py", "bench_dbt_build", i, manifest)
                else:
                    r = run_dag_test(raw, out, env, work, "bench_cosmos.py", "bench_cosmos", 100 + i, manifest)
                r["loadavg_before"], r["loadavg_after"] = load_before, os.getloadavg()
                print(f"[{scale}] {variant} #{i}: {r['wall_seconds']:.1f}s (process {r['process_seconds']:.1f}s)",
                      flush=True)
                runs.append(r)
            scale_res[variant] = {
                "runs": runs,
                "median_wall_seconds": statistics.median(r["wall_seconds"] for r in runs),
                "median_process_seconds": statistics.median(r["process_seconds"] for r in runs),
            }
            save(results_file, results, scale)
        # equality of everything dbt wrote, against the first direct run
        if "a_direct" in scale_res:
            ref = fingerprint(Path(scale_res["a_direct"]["runs"][0]["warehouse"]), raw_rels)
            scale_res["relations_written"] = len(ref)
            eq = {}
            for variant in ("a_dagtest", "b_cosmos"):
                if variant in scale_res:
                    other = fingerprint(Path(scale_res[variant]["runs"][0]["warehouse"]), raw_rels)
                    eq[variant] = compare(ref, other)
            scale_res["equal_to_a_direct"] = eq
            if "b_cosmos" in scale_res:
                runs_b = sorted(scale_res["b_cosmos"]["runs"], key=lambda r: r["wall_seconds"])
                med = runs_b[len(runs_b) // 2]
                scale_res["cosmos_overhead"] = per_task_overhead(med, scale_res["a_direct"]["runs"][0]["nodes"])
        save(results_file, results, scale)
        print(json.dumps({k: v for k, v in scale_res.items() if k not in VARIANTS}, indent=2), flush=True)
    print(summary_table(json.loads(results_file.read_text())))
    print(f"results: {results_file}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
