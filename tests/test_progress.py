"""What `salesos run` shows while it runs: bars on a terminal (tested through a pseudo-terminal), lines otherwise."""

from __future__ import annotations

import io
import os
import select
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from salesos.progress import LineReporter, dbt_node_done

STEPS = ["extract", "validate", "build", "forecast", "publish"]

# A driver that runs `salesos run` through salesos.cli with the five steps replaced by quick ones that report
# progress as the real ones do: the load per export with its rows, the build through dbt's own output lines.
DRIVER = textwrap.dedent('''
    import sys, time
    from salesos import cli, pipeline

    def extract(ctx, progress=None):
        progress.set_total(3, "exports")
        for rows in (40_000, 25_000, 15_000):
            time.sleep(0.3)
            progress.advance(1, rows=rows)
        return {"rows_read": {"Opportunity.csv": 40_000, "Task.csv": 25_000, "User.csv": 15_000}}

    def validate(ctx):
        time.sleep(0.3)
        return {"expectations": 120, "warnings": ["one"]}

    def build(ctx, progress=None):
        lines = ["\\x1b[0m12:00:01  1 of 4 START sql view model staging.stg_a ....... [RUN]",
                 "\\x1b[0m12:00:01  1 of 4 OK created sql view model staging.stg_a ....... [\\x1b[32mOK\\x1b[0m in 0.1s]",
                 "12:00:02  2 of 4 OK created sql table model marts.fct_b ....... [OK in 0.2s]",
                 "12:00:02  3 of 4 OK snapshotted snapshots.snp_crm__users ....... [OK in 0.2s]",
                 "12:00:03  4 of 4 PASS not_null_fct_b_id ....... [PASS in 0.1s]",
                 "12:00:03  1 of 1 OK hook: salesos.on-run-end.0 ....... [OK in 0.0s]"]
        for line in lines:
            progress.dbt_line(line)
            time.sleep(0.2)
        return {"models": 2, "tests_passed": 1}

    def forecast(ctx):
        time.sleep(0.2)
        return {"series": 7, "selected_rows": 84}

    def publish(ctx):
        return {"version": "000001_asof_2026-10-31", "run_id": ctx.run_id}

    for step in (extract, validate, build, forecast, publish):
        setattr(pipeline, step.__name__, step)
    pipeline.format_summary = lambda summary: "summary printed"
    sys.exit(cli.main(["run", "--exports", sys.argv[1], "--warehouse", sys.argv[2], "--as-of", "2026-10-31"]))
''')


def _driver(tmp_path: Path) -> list[str]:
    script = tmp_path / "driver.py"
    script.write_text(DRIVER, encoding="utf-8")
    (tmp_path / "exports").mkdir()
    return [sys.executable, str(script), str(tmp_path / "exports"), str(tmp_path / "wh" / "salesos.duckdb")]


def test_dbt_lines_of_finished_nodes_count_by_kind():
    assert dbt_node_done("12:00:01  3 of 404 OK created sql view model staging.stg_crm__leads .. [OK in 0.9s]") \
        == (3, 404, "model")
    assert dbt_node_done("\x1b[0m12:00:01  7 of 404 PASS unique_dim_reps_rep_id ... [\x1b[32mPASS\x1b[0m in 0.1s]") \
        == (7, 404, "test")
    assert dbt_node_done("12:00:01  9 of 404 WARN 2 warn_unresolved_quota_rows ... [WARN 2 in 0.1s]")[2] == "test"
    assert dbt_node_done("12:00:01  2 of 404 OK snapshotted snapshots.snp_crm__users .. [OK in 0.2s]")[2] == "snapshot"
    assert dbt_node_done("12:00:01  5 of 404 SKIP relation marts.fct_x .. [SKIP]") == (5, 404, "other")
    assert dbt_node_done("12:00:01  1 of 404 START sql view model staging.stg_crm__leads .. [RUN]") is None
    assert dbt_node_done("12:00:09  1 of 1 OK hook: salesos.on-run-end.0 .. [OK in 0.0s]") is None
    assert dbt_node_done("Concurrency: 4 threads (target='duckdb')") is None


def test_a_line_per_finished_step_with_its_rows_per_second_and_nodes():
    out = io.StringIO()
    reporter = LineReporter(out)
    load = reporter.start("extract")
    load.set_total(2, "exports")
    load.advance(1, rows=1_000)
    load.advance(1, rows=500)
    reporter.finished(load, "1,500 rows read from 2 exports")
    build = reporter.start("build")
    build.dbt_line("12:00:01  1 of 2 OK created sql table model marts.fct_b .. [OK in 0.2s]")
    build.dbt_line("12:00:01  2 of 2 PASS not_null_fct_b_id .. [PASS in 0.1s]")
    reporter.finished(build, "1 models built, 1 tests passed")
    failed = reporter.start("validate")
    reporter.finished(failed, "", ok=False)  # the run's own failure message is that step's line
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("extract   done in ") and "1,500 rows (" in lines[0] and "rows/s)" in lines[0]
    assert lines[1].startswith("build     done in ") and "1 model, 1 test" in lines[1]
    assert build.total == 2 and build.done == 2


def test_without_a_terminal_salesos_run_prints_one_line_per_step(tmp_path):
    proc = subprocess.run(_driver(tmp_path), capture_output=True, text=True, timeout=120,
                          env=os.environ | {"TERM": "xterm-256color"})
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.splitlines()
    assert [line.split()[0] for line in lines] == STEPS, proc.stderr
    assert all(" done in " in line for line in lines)
    assert "80,000 rows read from 3 exports; 80,000 rows (" in lines[0] and "rows/s)" in lines[0]
    assert "2 models built, 1 tests passed; 2 models, 1 snapshot, 1 test" in lines[2]
    assert "\x1b[" not in proc.stderr  # no terminal codes in a log
    assert proc.stdout.strip() == "summary printed"


def _read_pty(fd: int, proc: subprocess.Popen, timeout: float) -> bytes:
    out = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            out += chunk
        elif proc.poll() is not None:
            break
    return out


@pytest.mark.skipif(sys.platform == "win32", reason="needs a pseudo-terminal")
def test_on_a_terminal_salesos_run_draws_a_progress_bar_per_step(tmp_path):
    import pty

    leader, follower = pty.openpty()
    env = os.environ | {"TERM": "xterm-256color", "COLUMNS": "140", "LINES": "40"}
    proc = subprocess.Popen(_driver(tmp_path), stdin=follower, stdout=follower, stderr=follower, env=env,
                            close_fds=True)
    os.close(follower)
    try:
        raw = _read_pty(leader, proc, timeout=120)
        assert proc.wait(timeout=30) == 0, raw.decode(errors="replace")
    finally:
        os.close(leader)
    screen = raw.decode("utf-8", errors="replace")
    assert "\x1b[" in screen  # drawn with terminal codes (rich redraws the bars in place)
    for step in STEPS:
        assert step in screen
    assert "━" in screen  # the bars
    assert "/3 exports" in screen and "rows/s" in screen  # the load, export by export, with its rate
    assert "/4 nodes" in screen and "2 models" in screen  # the build, node by node
    assert "version 000001_asof_2026-10-31" in screen  # each bar ends with its step's result
    assert "summary printed" in screen
