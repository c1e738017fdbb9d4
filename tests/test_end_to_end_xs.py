"""End-to-end tests that need a published night but not the S sample's numbers: on copies of the shared XS night.

`dbt docs generate` and dbt's unit tests on a published warehouse, a BI reader holding the warehouse while a
night publishes, and a night killed in the middle of dbt and recovered by the next. Each works on a copy of the
`xs_night` warehouse (tests/conftest.py: one night per test session, shared with the mart digests, the semantic
layer and the report in the browser), never on the night itself. Split from tests/test_end_to_end.py, whose
tests check the numbers of an S night: there the reader's and the killed run's nights were S nights, and the
four kept the longest file on one worker; here the two CI workers can run them beside it. Marked e2e.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from salesos.cli import main as cli_main
from salesos.pipeline import run_all
from salesos.run_context import RunContext
from tests.transform.mart_digests import AS_OF, SETTINGS, sample_exports
from tests.warehouse_queries import query_frame

pytestmark = pytest.mark.e2e


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_dbt_docs_generate_works_on_the_published_warehouse(xs_night, tmp_path):
    from salesos.settings import load_settings
    from salesos.transform.dbt_build import DBT_PROJECT_DIR, dbt_env, dbt_executable, dbt_vars

    copy = tmp_path / "docs" / xs_night.name
    copy.parent.mkdir()
    shutil.copyfile(xs_night, copy)
    import json as _json

    proc = subprocess.run(
        [dbt_executable(), "docs", "generate", "--project-dir", str(DBT_PROJECT_DIR), "--profiles-dir",
         str(DBT_PROJECT_DIR), "--target-path", str(tmp_path / "target"), "--log-path", str(tmp_path / "logs"),
         "--vars", _json.dumps(dbt_vars(load_settings(), AS_OF.isoformat()))],
        env=dbt_env(copy, "duckdb"), capture_output=True, text=True,
    )
    assert proc.returncode == 0, proc.stdout[-2000:]
    catalog = _json.loads((tmp_path / "target" / "catalog.json").read_text())
    assert "model.salesos.mart_rep_scorecard" in catalog["nodes"]


def test_dbt_unit_tests_pass(xs_night, tmp_path):
    """The nightly build leaves dbt's unit tests out (fixed fixtures, not the night's data): they run here, on a
    copy of a published warehouse (dbt reads the columns of a unit test's inputs from the relations)."""
    from salesos.settings import load_settings
    from salesos.transform.dbt_build import run_dbt

    build = json.loads((xs_night.parent / "runs" / f"asof_{AS_OF.isoformat()}" / "build.json").read_text())
    assert not any(k.startswith("unit_test:") for k in build["statuses"]), build["statuses"]
    copy = tmp_path / "unit" / xs_night.name
    copy.parent.mkdir()
    shutil.copyfile(xs_night, copy)
    result = run_dbt(["test", "--select", "test_type:unit"], warehouse=copy, run_dir=tmp_path / "unit_run",
                     settings=load_settings(), as_of=AS_OF.isoformat())
    assert result.tests_passed >= 25 and not result.failures


def test_a_reader_holding_the_warehouse_sees_one_version_while_a_run_publishes(xs_night, tmp_path):
    """A BI reader keeps the file open during a nightly run: it is not blocked, it never blocks the run,
    and every query it makes sees the same (old) version until it reopens.

    On a copy of the shared XS night's warehouse in a data folder of its own, and that sample's exports less
    100 deals: what is under test is the switch under an open reader, which no number of rows changes (the
    numbers of an S night are checked above); a night on S without a forecast cache cost a whole S night more."""
    sample = sample_exports(xs_night)
    ctx = RunContext.create(as_of=AS_OF, exports=sample, warehouse=tmp_path / "wh" / "salesos.duckdb",
                            settings_file=SETTINGS)
    ctx.warehouse.parent.mkdir(parents=True)
    shutil.copyfile(xs_night, ctx.warehouse)
    reader = subprocess.Popen(
        [sys.executable, "-c", (
            "import duckdb, sys, time\n"
            "con = duckdb.connect(sys.argv[1], read_only=True)\n"
            "print('ready', flush=True)\n"
            "while True:\n"
            "    row = con.execute('select count(*), sum(amount) from marts.fct_opportunities').fetchall()[0]\n"
            "    print(row[0], round(row[1], 2), flush=True)\n"
            "    if sys.stdin.readline().strip() == 'stop':\n"
            "        break\n"
        ), str(ctx.warehouse)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert reader.stdout.readline().strip() == "ready"
        first = reader.stdout.readline().strip()
        changed = tmp_path / "changed"
        shutil.copytree(sample, changed)
        opp = pd.read_csv(changed / "Opportunity.csv", dtype=str, keep_default_na=False)
        opp.head(len(opp) - 100).to_csv(changed / "Opportunity.csv", index=False)  # a visibly different export
        run_all(RunContext.create(as_of=AS_OF, exports=changed, warehouse=ctx.warehouse, run_id="while_read", settings_file=SETTINGS))
        reader.stdin.write("again\n")
        reader.stdin.flush()
        during = reader.stdout.readline().strip()
        reader.stdin.write("stop\n")
        reader.stdin.flush()
    finally:
        reader.wait(timeout=30)
    assert during == first  # the open connection still reads the version it opened
    now = query_frame(ctx.warehouse, "select count(*) n, round(sum(amount), 2) s from marts.fct_opportunities")
    assert f"{now['n'].iloc[0]} {now['s'].iloc[0]}" != first  # a new connection sees the new version


def test_a_run_killed_in_the_middle_of_dbt_is_recovered_by_the_next_run(xs_night, tmp_path, capsys):
    """Killed with SIGKILL while dbt writes models into the build copy: the published warehouse is untouched
    and the next run clears the half-built copy and publishes. On a copy of the shared XS night's warehouse
    (its own data folder): the recovery is the same at any size, and XS keeps the next run to an XS night."""
    import os
    import signal
    import time

    sample = sample_exports(xs_night)
    warehouse = tmp_path / "wh" / "salesos.duckdb"
    warehouse.parent.mkdir(parents=True)
    shutil.copyfile(xs_night, warehouse)
    data_dir = warehouse.parent
    before = _sha(warehouse)
    salesos = str(Path(sys.executable).with_name("salesos"))
    args = ["run", "--exports", str(sample), "--warehouse", str(warehouse), "--as-of", AS_OF.isoformat(),
            "--settings", str(SETTINGS)]
    proc = subprocess.Popen([salesos, *args, "--run-id", "killed"], start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    dbt_log = data_dir / "runs" / "killed" / "dbt_logs" / "dbt.log"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (dbt_log.exists() and "Concurrency" in dbt_log.read_text(errors="ignore")):
        time.sleep(0.2)
    assert proc.poll() is None, "the run ended before dbt started"
    time.sleep(1.5)  # dbt is writing models into the build copy
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert _sha(warehouse) == before  # the killed run published nothing
    assert (data_dir / "build" / "killed").exists()  # and left its half-built copy behind
    capsys.readouterr()
    assert cli_main([*args, "--run-id", "next"]) == 0
    assert not (data_dir / "build" / "killed").exists()
    assert _sha(warehouse) != before  # the next run published
    opp = pd.read_csv(sample / "Opportunity.csv", dtype=str, keep_default_na=False)
    live = opp[opp["IsDeleted"].str.lower() != "true"]["Id"].nunique()
    assert query_frame(warehouse, "select count(*) n from marts.fct_opportunities")["n"].iloc[0] == live
    # no terminal (pytest captures stderr): one line per step as it ends, rows/s for the load, dbt's nodes
    steps = [line for line in capsys.readouterr().err.splitlines() if " done in " in line]
    assert [line.split()[0] for line in steps] == ["extract", "validate", "build", "forecast", "publish"]
    assert "rows read from" in steps[0] and "rows/s" in steps[0]
    assert "models built" in steps[2] and " models" in steps[2].split(";")[-1] and " tests" in steps[2]
