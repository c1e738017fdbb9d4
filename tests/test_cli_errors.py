"""Every failure of `salesos run` ends in the run's own one-line message, never a bare traceback: the step,
why (with the file, row and field the error names), whether the published warehouse changed, and the run
log, which holds the traceback. The Airflow failure callback records the same line in failure.json.
"""

from __future__ import annotations

import json
import logging
from datetime import date, datetime
from pathlib import Path

import duckdb
import pytest

from salesos import pipeline
from salesos.cli import main as cli_main
from salesos.orchestrate import record_failure

AS_OF = "2026-10-31"


def _warehouse(tmp_path: Path) -> Path:
    wh = tmp_path / "wh" / "salesos.duckdb"
    wh.parent.mkdir()
    con = duckdb.connect(str(wh))
    con.execute("create schema marts; create table marts.fct_opportunities as select 'last good' as note")
    con.close()
    return wh


def _run(exports: Path, wh: Path, *extra: str) -> int:
    return cli_main(["run", "--exports", str(exports), "--warehouse", str(wh), "--as-of", AS_OF, *extra])


def _only_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith("salesos run")]
    assert len(lines) == 1, err
    return lines[0]


def test_an_unexpected_error_is_one_line_and_its_traceback_goes_to_the_run_log(tiny_exports, tmp_path, capsys,
                                                                               monkeypatch):
    wh = _warehouse(tmp_path)
    before = wh.read_bytes()

    def locked(ctx):
        raise duckdb.IOException(f'IO Error: Could not set lock on file "{ctx.build_warehouse}": Conflicting lock')

    monkeypatch.setattr(pipeline, "validate", locked)
    assert _run(tiny_exports, wh) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    run_log = wh.parent / "runs" / "asof_2026-10-31" / "run.log"
    assert _only_line(err) == (
        f"salesos run asof_2026-10-31 failed in step validate: duckdb.IOException: IO Error: Could not set lock on "
        f'file "{wh.parent / "build" / "asof_2026-10-31" / "salesos.duckdb"}": Conflicting lock; '
        f"the published warehouse was not changed; run log: {run_log}"
    )
    log = run_log.read_text(encoding="utf-8")
    assert "Traceback (most recent call last)" in log and "in locked" in log  # the whole traceback
    assert "step extract" in log and "step validate" in log  # and the run's own records before it
    assert wh.read_bytes() == before


def test_an_os_error_names_its_path(tiny_exports, tmp_path, capsys, monkeypatch):
    wh = _warehouse(tmp_path)

    def cross_device(ctx, progress=None):
        raise OSError(18, "Invalid cross-device link", str(ctx.build_warehouse), None, str(ctx.warehouse))

    monkeypatch.setattr(pipeline, "build", cross_device)
    monkeypatch.setattr(pipeline, "validate", lambda ctx: {})
    assert _run(tiny_exports, wh) == 1
    line = _only_line(capsys.readouterr().err)
    assert line.startswith("salesos run asof_2026-10-31 failed in step build: OSError: [Errno 18] Invalid "
                           "cross-device link: ")
    assert f"'{wh}'" in line and "the published warehouse was not changed" in line


def test_a_known_error_keeps_its_details_under_the_line(tiny_exports, tmp_path, capsys):
    (tiny_exports / "Opportunity.csv").write_text("Id,Name\n006A,x\n", encoding="utf-8")
    wh = _warehouse(tmp_path)
    assert _run(tiny_exports, wh) == 1
    err = capsys.readouterr().err
    line = _only_line(err)
    assert line.startswith("salesos run asof_2026-10-31 failed in step extract: Opportunity.csv: required column(s) "
                           "missing: AccountId, OwnerId, StageName")
    assert "Traceback" not in err
    assert "ExportError" in (wh.parent / "runs" / "asof_2026-10-31" / "run.log").read_text(encoding="utf-8")


def test_failing_checks_are_listed_below_the_line(tiny_exports, tmp_path, capsys):
    wh = _warehouse(tmp_path)
    assert cli_main(["run", "--exports", str(tiny_exports), "--warehouse", str(wh), "--as-of", "2020-01-01"]) == 1
    err = capsys.readouterr().err
    assert _only_line(err).startswith("salesos run asof_2020-01-01 failed in step validate: 2 failing check(s); the "
                                      "published warehouse was not changed; run log: ")
    lines = err.splitlines()
    assert lines[0].startswith("extract   done in ")  # the step that finished (no terminal: one line each)
    details = lines[lines.index(_only_line(err)) + 1:]
    assert details[0].startswith("  - Opportunity.csv: no opportunity was created on or before the as-of date")
    assert details[1].startswith("  - Opportunity.csv: the newest LastModifiedDate is 2026-10-30 10:00:00")
    assert details[2].startswith("  Data Docs: ")


def test_ctrl_c_is_a_clean_message(tiny_exports, tmp_path, capsys, monkeypatch):
    wh = _warehouse(tmp_path)

    def interrupted(ctx, progress=None):
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline, "validate", lambda ctx: {})
    monkeypatch.setattr(pipeline, "build", interrupted)
    assert _run(tiny_exports, wh) == 130
    err = capsys.readouterr().err
    assert _only_line(err).startswith("salesos run asof_2026-10-31 was interrupted in step build; the published "
                                      "warehouse was not changed; run log: ")
    assert "Traceback" not in err
    assert not (wh.parent / "build" / "asof_2026-10-31").exists()  # the build copy is gone, as on any failure


def test_verbose_also_prints_the_traceback(tiny_exports, tmp_path, capsys, monkeypatch):
    wh = _warehouse(tmp_path)
    monkeypatch.setattr(pipeline, "validate", lambda ctx: {}["missing"])
    assert cli_main(["-v", "run", "--exports", str(tiny_exports), "--warehouse", str(wh), "--as-of", AS_OF]) == 1
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err
    assert err.rstrip().splitlines()[-1].startswith("salesos run asof_2026-10-31 failed in step validate: KeyError: "
                                                    "'missing'")


def test_a_failure_after_the_swap_does_not_claim_the_warehouse_unchanged(tiny_exports, tmp_path, capsys,
                                                                         monkeypatch):
    wh = _warehouse(tmp_path)

    def swapped_then_failed(ctx):
        replacement = wh.with_name("new.duckdb")
        replacement.write_bytes(wh.read_bytes())
        replacement.replace(wh)
        raise PermissionError(13, "Permission denied", str(ctx.run_dir / "summary.json"))

    for step in ("validate", "build", "forecast"):
        monkeypatch.setattr(pipeline, step, lambda ctx, progress=None: {})
    monkeypatch.setattr(pipeline, "publish", swapped_then_failed)
    assert _run(tiny_exports, wh) == 1
    line = _only_line(capsys.readouterr().err)
    assert "failed in step publish: PermissionError: [Errno 13] Permission denied: " in line
    assert "the published warehouse was replaced before the failure" in line and "not changed" not in line


def test_a_run_that_succeeds_has_a_run_log_too(tmp_path, capsys, monkeypatch):
    def fake_run_all(ctx, fresh_id=False, reporter=None):
        logging.getLogger("salesos.pipeline").info("step %s", "extract")
        return {"run_id": ctx.run_id, "version": "000001"}

    monkeypatch.setattr(pipeline, "run_all", fake_run_all)
    wh = tmp_path / "wh" / "salesos.duckdb"
    assert _run(tmp_path, wh, "--json", "--run-id", "ok") == 0
    assert json.loads(capsys.readouterr().out)["version"] == "000001"
    log = (tmp_path / "wh" / "runs" / "ok" / "run.log").read_text(encoding="utf-8")
    assert "salesos.pipeline: step extract" in log and "run ok published version 000001" in log


def test_an_error_before_the_run_starts_is_one_line(tmp_path, capsys, monkeypatch):
    from salesos.run_context import RunContext

    def refuse(**kwargs):
        raise ValueError("run id '..' is not a plain name")

    monkeypatch.setattr(RunContext, "create", refuse)
    assert _run(tmp_path, tmp_path / "w.duckdb", "--run-id", "..") == 1
    err = capsys.readouterr().err
    assert err.strip() == ("salesos run failed before it started: ValueError: run id '..' is not a plain name; "
                           "the published warehouse was not changed")


class _TI:
    task_id = "validate"
    try_number = 2


def test_the_airflow_failure_record_carries_the_one_line_message(tmp_path):
    try:
        raise duckdb.IOException("IO Error: Could not set lock on file")
    except duckdb.IOException as caught:
        exc = caught
    context = {"run_id": "scheduled__2026-10-31T02:00:00+00:00", "logical_date": datetime(2026, 10, 31),
               "params": {"exports": str(tmp_path), "warehouse": str(tmp_path / "wh" / "salesos.duckdb")},
               "task_instance": _TI(), "exception": exc}
    failure = record_failure(context)
    run_dir = tmp_path / "wh" / "runs" / "scheduled__2026-10-31T02_00_00_00_00"
    recorded = json.loads((run_dir / "failure.json").read_text(encoding="utf-8"))
    assert recorded["message"] == failure["message"] == (
        "salesos run scheduled__2026-10-31T02_00_00_00_00 failed in step validate: duckdb.IOException: IO Error: "
        f"Could not set lock on file; the published warehouse was not changed; run log: {run_dir / 'run.log'}"
    )
    log = (run_dir / "run.log").read_text(encoding="utf-8")
    assert "Traceback (most recent call last)" in log and recorded["message"] in log


@pytest.mark.parametrize("task, says", [("publish", "see `salesos versions`"), ("dbt_build", "was not changed")])
def test_a_failed_publish_task_does_not_claim_the_warehouse_unchanged(tmp_path, task, says):
    ti = type("TI", (), {"task_id": task, "try_number": 1})()
    context = {"run_id": "manual__1", "logical_date": date(2026, 10, 31), "task_instance": ti,
               "params": {"exports": str(tmp_path), "warehouse": str(tmp_path / "salesos.duckdb")},
               "exception": RuntimeError("boom")}
    assert says in record_failure(context)["message"]


def test_generate_versions_and_rollback_fail_in_one_line_too(tmp_path, capsys):
    """A path that is a file where a folder is needed: one line naming it, no traceback on the terminal."""
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    assert cli_main(["generate", "--scale", "S", "--out", str(blocker / "exports")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("salesos generate failed: ") and str(blocker) in err and "Traceback" not in err

    versions = tmp_path / "versions" / "salesos"
    versions.mkdir(parents=True)
    (versions / "versions.json").write_text("{not json", encoding="utf-8")
    for command in ("versions", "rollback"):
        code = cli_main([command, "--warehouse", str(tmp_path / "salesos.duckdb")])
        err = capsys.readouterr().err
        assert code == 1, command
        assert err.startswith(f"salesos {command} failed: ") and str(versions / "versions.json") in err, err
        assert "Traceback" not in err
