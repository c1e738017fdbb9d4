"""Run ids and paths refused or quoted before anything is touched; one run at a time per warehouse; a re-run
of a date never replaces an earlier run's archive or exports. Issue 22, cases 1, 7 (re-runs), 11, 12 (a `'`
in the warehouse path)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import duckdb
import pytest

from salesos import pipeline
from salesos.cli import main as cli_main
from salesos.publish.lock import RunLocked, warehouse_lock
from salesos.publish.versions import publish_file
from salesos.run_context import RunContext, RunIdError, safe_run_id

AS_OF = date(2026, 10, 31)
ROOT = Path(__file__).resolve().parents[1]


def _data_folder(tmp_path: Path) -> dict[str, Path]:
    """A data folder as a few nights leave it: the warehouse, a kept version, an archive, the BI copy."""
    data = tmp_path / "data"
    files = {
        "warehouse": data / "sales.duckdb",
        "version": data / "versions" / "sales" / "000001_asof_2026-10-30" / "sales.duckdb",
        "archive": data / "archive" / "asof_2026-10-30" / "Opportunity.csv",
        "bi": data / "duckdb-v1.4" / "sales.duckdb",
        "build": data / "build" / "keep" / "notes.txt",
    }
    for name, path in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(name)
    return files


@pytest.mark.parametrize("run_id", ["..", ".", "../x", "a/b", "x\\y", "it's", "two words", "line\nbreak",
                                    "nul\x00", "-rf", ".hidden", "/abs"])
def test_an_unsafe_run_id_is_refused_before_anything_is_touched(tiny_exports, tmp_path, capsys, run_id):
    """Case 1: `--run-id ..` deleted the data folder: warehouse, kept versions, archive and BI copy."""
    files = _data_folder(tmp_path)
    code = cli_main(["run", "--exports", str(tiny_exports), "--warehouse", str(files["warehouse"]),
                     "--as-of", AS_OF.isoformat(), f"--run-id={run_id}"])
    err = capsys.readouterr().err
    assert code == 2
    assert "cannot be used" in err and "nothing was changed" in err
    assert {name: p.read_text() for name, p in files.items()} == {name: name for name in files}
    assert not (files["warehouse"].parent / "runs").exists()


def test_airflow_run_ids_map_to_folder_names_one_character_for_one():
    assert safe_run_id("manual__2026-10-31T02:00:00+00:00") == "manual__2026-10-31T02_00_00_00_00"
    assert safe_run_id("scheduled__2026-10-31T02:00:00.123+00:00") == "scheduled__2026-10-31T02_00_00.123_00_00"
    assert safe_run_id("backfill__2026~1") == "backfill__2026_1"
    for bad in ("", "..", "manual__x/../y", ":"):
        with pytest.raises(RunIdError):
            safe_run_id(bad)


def test_a_context_from_xcom_is_checked_too(tmp_path):
    ctx = RunContext.create(as_of=AS_OF, exports=tmp_path, warehouse=tmp_path / "w.duckdb")
    with pytest.raises(RunIdError):
        RunContext.from_dict(ctx.to_dict() | {"run_id": ".."})
    with pytest.raises(RunIdError, match="control character"):
        RunContext.create(as_of=AS_OF, exports=tmp_path, warehouse=tmp_path / "w\n.duckdb")


def test_a_quote_in_the_warehouse_path_is_a_path_not_a_sql_error(tmp_path):
    """Case 12: a `'` in the warehouse path crashed with a SQL parser error (BI copy and finance exports)."""
    from salesos.publish.copies import export_tables, write_compat_copy
    from salesos.warehouse.storage import connect_warehouse, storage_version

    folder = tmp_path / "o'brien's \"data\""
    wh = folder / "build" / "sales.duckdb"
    wh.parent.mkdir(parents=True)
    con = connect_warehouse(wh, compat=False)  # DuckDB 2.0's format: the BI copy is rewritten through SQL
    con.execute("create schema marts; create table marts.fct_x as select 1 as x")
    con.close()
    assert storage_version(wh) != "v1.4.0"
    copy = write_compat_copy(wh, folder / "duckdb-v1.4" / "sales.duckdb")
    assert storage_version(copy) == "v1.4.0"
    assert [p.name for p in export_tables(wh, folder / "exports" / "run=r1")] == [
        "marts.fct_x.parquet", "marts.fct_x.csv"]
    assert duckdb.sql(f"select x from '{str(folder / 'exports' / 'run=r1' / 'marts.fct_x.parquet').replace(chr(39), chr(39) * 2)}'").fetchall() == [(1,)]


# ------------------------------------------------------------------ one run at a time (case 11)

HOLDER = """
import sys, time
from pathlib import Path
from salesos.publish.lock import warehouse_lock
with warehouse_lock(Path(sys.argv[1]), sys.argv[2], what="salesos run"):
    print("held", flush=True)
    sys.stdin.readline()
"""


def _hold(wh: Path, run_id: str) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(wh), run_id], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, cwd=ROOT)
    assert proc.stdout.readline().strip() == "held"
    return proc


PAUSED_RUN = """
import sys
from salesos import pipeline
from salesos.cli import main

def paused(ctx):  # the first run stops after its extract, holding the warehouse, until told
    print("extracted", flush=True)
    sys.stdin.readline()

pipeline.validate = paused
sys.exit(main(sys.argv[1:]))
"""


def test_a_second_run_fails_at_once_naming_the_run_that_holds_the_warehouse(tiny_exports, tmp_path, capsys):
    """Case 11: no lock; the second run removed the first's build copy as "stale", both failed in DuckDB."""
    wh = tmp_path / "wh" / "sales.duckdb"
    args = ["run", "--exports", str(tiny_exports), "--warehouse", str(wh), "--as-of", AS_OF.isoformat()]
    first = subprocess.Popen([sys.executable, "-c", PAUSED_RUN, *args, "--run-id", "first"], cwd=ROOT,
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert first.stdout.readline().strip() == "extracted"
        build = wh.parent / "build" / "first" / "sales.duckdb"
        before = build.read_bytes()
        started = time.monotonic()
        code = cli_main([*args, "--run-id", "second"])
        err = capsys.readouterr().err
        assert code == 1 and time.monotonic() - started < 5
        assert "in use by run first (salesos run, pid" in err and "run second did not start" in err
        assert build.read_bytes() == before  # the first run's build copy is untouched
        assert not (wh.parent / "archive" / "second").exists()
    finally:
        first.kill()  # a real death: no finally of the run, no clean-up
        first.wait()
    # the OS released the killed run's lock: the next run takes it over, and its build copy is stale now
    nxt = RunContext.create(as_of=AS_OF, exports=tiny_exports, warehouse=wh, run_id="third")
    with warehouse_lock(wh, "third", what="salesos run", whole_run=True):
        assert json.loads((wh.parent / ".sales.duckdb.lock").read_text())["run_id"] == "third"
        assert pipeline.remove_stale_builds(nxt) == [build.parent]


def test_each_writing_step_takes_the_lock(tmp_path):
    wh = tmp_path / "sales.duckdb"
    ctx = RunContext.create(as_of=AS_OF, exports=tmp_path, warehouse=wh, run_id="airflow_run")
    holder = _hold(wh, "other")
    try:
        for step in (pipeline.extract, pipeline.build, pipeline.forecast_plan, pipeline.forecast_store,
                     pipeline.publish):
            with pytest.raises(RunLocked, match="in use by run other"):
                step(ctx)
    finally:
        holder.kill()
        holder.wait()


def _airflow_build(tmp_path: Path, wh: Path, run_id: str) -> RunContext:
    ctx = RunContext.create(as_of=AS_OF, exports=tmp_path, warehouse=wh, run_id=run_id)
    ctx.build_dir.mkdir(parents=True)
    ctx.build_warehouse.write_text("between tasks")
    (ctx.build_dir / pipeline.OWNER).write_text(json.dumps(
        {"run_id": run_id, "warehouse": str(wh), "mode": "steps"}))
    return ctx


def test_a_salesos_run_leaves_an_airflow_run_between_its_tasks_alone(tiny_exports, tmp_path, capsys):
    """Its build copy lives between tasks with no process holding the lock; `remove_stale_builds` removed it."""
    wh = tmp_path / "wh" / "sales.duckdb"
    dag_run = _airflow_build(tmp_path, wh, "manual__2026-10-31T02_00_00_00_00")
    code = cli_main(["run", "--exports", str(tiny_exports), "--warehouse", str(wh), "--as-of", AS_OF.isoformat()])
    assert code == 1
    assert "in use by run manual__2026-10-31T02_00_00_00_00" in capsys.readouterr().err
    assert dag_run.build_warehouse.read_text() == "between tasks"
    # once Airflow recorded its failure, the build copy is stale
    dag_run.run_dir.mkdir(parents=True)
    (dag_run.run_dir / "failure.json").write_text("{}")
    cli = RunContext.create(as_of=AS_OF, exports=tiny_exports, warehouse=wh, run_id="cli")
    with warehouse_lock(wh, "cli", what="salesos run", whole_run=True):
        assert pipeline.remove_stale_builds(cli) == [dag_run.build_dir]


def test_the_next_airflow_run_clears_the_build_of_the_one_before(tmp_path):
    """The DAG allows one active run: a build copy of another DAG run is stale when a new one extracts."""
    wh = tmp_path / "wh" / "sales.duckdb"
    old = _airflow_build(tmp_path, wh, "scheduled__2026-10-30")
    new = RunContext.create(as_of=AS_OF, exports=tmp_path, warehouse=wh, run_id="scheduled__2026-10-31")
    with warehouse_lock(wh, new.run_id, what="extract"):
        assert pipeline.remove_stale_builds(new) == [old.build_dir]


# ------------------------------------------------------------------ re-runs never overwrite (case 7)


def test_a_rerun_of_a_date_gets_a_fresh_run_id(tmp_path):
    wh = tmp_path / "sales.duckdb"
    ctx = RunContext.create(as_of=AS_OF, exports=tmp_path, warehouse=wh)
    assert pipeline.fresh_run_id(ctx).run_id == "asof_2026-10-31"
    ctx.archive_dir.mkdir(parents=True)  # an earlier run of the date: its archive is never replaced
    assert pipeline.fresh_run_id(ctx).run_id == "asof_2026-10-31.2"
    (tmp_path / "archive" / "asof_2026-10-31.2").mkdir()
    assert pipeline.fresh_run_id(ctx).run_id == "asof_2026-10-31.3"


def test_extract_refuses_a_published_run_id_and_keeps_its_archive(tiny_exports, tmp_path):
    """The docs say archives and finance exports are never overwritten; re-running a run id replaced both."""
    wh = tmp_path / "sales.duckdb"
    ctx = RunContext.create(as_of=AS_OF, exports=tiny_exports, warehouse=wh, run_id="nightly")
    ctx.archive_dir.mkdir(parents=True)
    (ctx.archive_dir / "Opportunity.csv").write_text("what that night received")
    build = tmp_path / "b" / "sales.duckdb"
    build.parent.mkdir()
    build.write_text("published")
    publish_file(build, wh, tmp_path, "nightly", AS_OF.isoformat())
    with pytest.raises(pipeline.RunRefused, match="already published"):
        pipeline.extract(ctx)
    assert (ctx.archive_dir / "Opportunity.csv").read_text() == "what that night received"


def test_a_retried_extract_replaces_its_own_unpublished_archive(tiny_exports, tmp_path):
    """Airflow retries extract with the same run id: that must keep working."""
    wh = tmp_path / "wh" / "sales.duckdb"
    ctx = RunContext.create(as_of=AS_OF, exports=tiny_exports, warehouse=wh, run_id="manual__retry")
    pipeline.extract(ctx)
    (tiny_exports / "quotas.csv").write_text((tiny_exports / "quotas.csv").read_text() + "005B,2026-11-01,2000\n")
    assert pipeline.extract(ctx)["rows_loaded"]["quotas.csv"] == 4
    assert os.path.getsize(ctx.archive_dir / "quotas.csv") == os.path.getsize(tiny_exports / "quotas.csv")
