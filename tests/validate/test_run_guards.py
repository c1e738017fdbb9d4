"""Run-level guards: an export that vanished since the last published run, and an as-of date the exports
do not support. Each case runs extract and validate against a folder that already has a published warehouse
(a real earlier night, swapped in as publish does), and asserts the message and the untouched warehouse.
"""

from __future__ import annotations

import hashlib
import os
from datetime import date
from pathlib import Path

import pytest

from salesos import pipeline
from salesos.extract.landing import ExportError
from salesos.orchestrate import context_for_run
from salesos.run_context import RunContext
from salesos.settings import SettingsError, load_settings
from salesos.validate.gx_checks import ValidationFailed

from ..conftest import OPPORTUNITIES, USERS, write_csv

AS_OF = date(2026, 10, 31)
TASKS = [
    {"Id": f"00T{i:03d}", "OwnerId": "005B", "WhoId": "", "WhatId": "006A", "ActivityDate": "2026-09-01",
     "TaskSubtype": "Call", "Status": "Completed", "CreatedDate": "2026-09-01T10:00:00.000Z", "IsDeleted": "false"}
    for i in range(6)
]
HISTORY = [
    {"Id": f"008{i:03d}", "OpportunityId": o["Id"], "StageName": o["StageName"], "Amount": o["Amount"],
     "Probability": o["Probability"], "CloseDate": o["CloseDate"], "ForecastCategory": "Pipeline",
     "CreatedDate": o["CreatedDate"], "IsDeleted": "false"}
    for i, o in enumerate(OPPORTUNITIES)
]


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _night(exports: Path, warehouse: Path, run_id: str, as_of: date = AS_OF, **kw) -> dict:
    """Extract + validate, then swap the build copy in as publish does (dbt and the forecast are not under test)."""
    ctx = RunContext.create(as_of=as_of, exports=exports, warehouse=warehouse, run_id=run_id, **kw)
    try:
        extracted = pipeline.extract(ctx)
        validated = pipeline.validate(ctx)
    except BaseException:
        pipeline.discard(ctx)
        raise
    os.replace(ctx.build_warehouse, warehouse)
    pipeline.discard(ctx)
    return {"extract": extracted, "validate": validated}


def _fails(exports: Path, warehouse: Path, run_id: str, error: type, match: str, as_of: date = AS_OF, **kw) -> None:
    before = _sha(warehouse)
    ctx = RunContext.create(as_of=as_of, exports=exports, warehouse=warehouse, run_id=run_id, **kw)
    with pytest.raises(error, match=match):
        try:
            pipeline.extract(ctx)
            pipeline.validate(ctx)
        finally:
            pipeline.discard(ctx)
    assert _sha(warehouse) == before, "a failed run changed the published warehouse"


@pytest.fixture
def with_activity(tiny_exports: Path) -> Path:
    write_csv(tiny_exports / "Task.csv", TASKS)
    write_csv(tiny_exports / "OpportunityHistory.csv", HISTORY)
    return tiny_exports


@pytest.fixture
def published(with_activity: Path, tmp_path: Path) -> Path:
    """A warehouse whose last published run (run id asof_2026-10-31) loaded 6 tasks and 4 history rows."""
    warehouse = tmp_path / "wh" / "salesos.duckdb"
    _night(with_activity, warehouse, "asof_2026-10-31")
    return warehouse


VANISHED = (
    r"export file\(s\) missing or empty in this run's exports: "
    r"OpportunityHistory\.csv \(the last published run, asof_2026-10-31, loaded 4 rows from it\); "
    r"Task\.csv \(the last published run, asof_2026-10-31, loaded 6 rows from it\)\. .*"
    r"list them in the setting exports_optional_for_good"
)


def test_a_vanished_export_stops_a_rerun_of_the_same_date(with_activity, published):
    """The issue's case: the same as-of again (same run id, whose audit rows the load replaces), two files gone."""
    (with_activity / "Task.csv").unlink()
    (with_activity / "OpportunityHistory.csv").unlink()
    _fails(with_activity, published, "asof_2026-10-31", ExportError, VANISHED)


def test_a_vanished_export_stops_the_next_night(with_activity, published):
    """An incremental night keeps the raw tables: what counts is that this run loaded no file for them."""
    (with_activity / "Task.csv").unlink()
    _fails(with_activity, published, "asof_2026-11-01", ExportError,
           r"Task\.csv \(the last published run, asof_2026-10-31, loaded 6 rows from it\)",
           as_of=date(2026, 11, 1))


def test_an_export_that_arrives_empty_is_vanished_too(with_activity, published):
    (with_activity / "Task.csv").write_bytes(b"")
    _fails(with_activity, published, "asof_2026-10-31", ExportError, r"missing or empty .*Task\.csv .*6 rows")


def test_a_rerun_of_the_same_date_keeps_the_shrink_guard(with_activity, published):
    """The shrink guard compares with the last published run even when this run re-uses its id."""
    write_csv(with_activity / "Task.csv", TASKS[:2])
    _fails(with_activity, published, "asof_2026-10-31", ValidationFailed,
           r"Task\.csv: expect_table_row_count_to_be_between min_value=3 failed: observed 2")


def test_an_export_declared_optional_for_good_may_go(with_activity, published, tmp_path):
    settings = tmp_path / "settings.yml"
    settings.write_text("exports_optional_for_good: [task.csv]\n", encoding="utf-8")
    (with_activity / "Task.csv").unlink()
    result = _night(with_activity, published, "asof_2026-10-31", settings_file=settings)
    assert "Task.csv" in result["extract"]["rows_loaded"] and result["extract"]["rows_loaded"]["Task.csv"] == 0
    # and the night after, it is not in the last published run any more: nothing to guard
    _night(with_activity, published, "asof_2026-11-01", as_of=date(2026, 11, 1))


def test_the_optional_for_good_setting_names_optional_export_files(tmp_path):
    bad = tmp_path / "s.yml"
    bad.write_text("exports_optional_for_good: [Tasks.csv]\n", encoding="utf-8")
    with pytest.raises(SettingsError, match=r"exports_optional_for_good names 'Tasks\.csv', not an export file"):
        load_settings(bad)
    bad.write_text("exports_optional_for_good: [Opportunity.csv]\n", encoding="utf-8")
    with pytest.raises(SettingsError, match=r"Opportunity\.csv, a required export"):
        load_settings(bad)


def test_a_header_only_file_in_the_last_run_may_go(tiny_exports, tmp_path):
    """Only an export that had rows is guarded: nothing is lost when an empty one goes."""
    (tiny_exports / "Task.csv").write_text(",".join(TASKS[0]) + "\n", encoding="utf-8")
    warehouse = tmp_path / "wh" / "salesos.duckdb"
    _night(tiny_exports, warehouse, "asof_2026-10-31")
    (tiny_exports / "Task.csv").unlink()
    _night(tiny_exports, warehouse, "asof_2026-10-31")


def test_an_as_of_before_every_opportunity_stops_the_run(tiny_exports, published):
    _fails(tiny_exports, published, "early", ValidationFailed,
           r"Opportunity\.csv: no opportunity was created on or before the as-of date 2020-01-01: "
           r"the earliest CreatedDate is 2026-06-01 \(data row 4\)",
           as_of=date(2020, 1, 1))


def test_exports_modified_long_after_the_as_of_are_refused_with_the_option_named(tiny_exports, published):
    _fails(tiny_exports, published, "backfill", ValidationFailed,
           r"Opportunity\.csv: the newest LastModifiedDate is 2026-10-30 10:00:00 \(data row 1\), 60 days after the "
           r"as-of date 2026-08-31 \(setting max_export_days_after_as_of: 1\).*--allow-exports-after-as-of",
           as_of=date(2026, 8, 31))


def test_with_the_option_they_publish_with_a_warning_in_the_summary(tiny_exports, published):
    result = _night(tiny_exports, published, "backfill", as_of=date(2026, 8, 31), allow_exports_after_as_of=True)
    warnings = result["validate"]["warnings"]
    assert len(warnings) == 1 and "60 days after the as-of date 2026-08-31" in warnings[0]
    assert "published anyway (--allow-exports-after-as-of)" in warnings[0]


def test_exports_pulled_the_morning_after_the_as_of_pass(tiny_exports, published):
    """A normal night: the newest change is on the day after the as-of date (LastModifiedDate 2026-10-30)."""
    assert _night(tiny_exports, published, "night", as_of=date(2026, 10, 29))["validate"]["warnings"] == []
    _fails(tiny_exports, published, "two_days", ValidationFailed, r"2 days after the as-of date 2026-10-28",
           as_of=date(2026, 10, 28))


def test_without_last_modified_date_the_created_date_counts(tiny_exports, published):
    rows = [{k: v for k, v in o.items() if k != "LastModifiedDate"} for o in OPPORTUNITIES]
    rows[2]["CreatedDate"] = "2026-10-30T09:00:00.000Z"  # the newest record; also fresh enough for the freshness check
    write_csv(tiny_exports / "Opportunity.csv", rows)
    write_csv(tiny_exports / "User.csv", USERS)
    _fails(tiny_exports, published, "no_lmd", ValidationFailed,
           r"the newest CreatedDate is 2026-10-30 09:00:00 \(data row 3\), 30 days after the as-of date 2026-09-30",
           as_of=date(2026, 9, 30))


def test_the_option_travels_as_a_run_option(tmp_path):
    """A CLI flag and a DAG param, carried by the RunContext between Airflow tasks (never an env var)."""
    from salesos.cli import build_parser

    args = build_parser().parse_args(["run", "--exports", "e", "--warehouse", "w.duckdb", "--as-of", "2026-08-31",
                                      "--allow-exports-after-as-of"])
    assert args.allow_exports_after_as_of is True
    ctx = context_for_run("manual__x", date(2026, 8, 31), {"exports": str(tmp_path), "warehouse": str(tmp_path / "w"),
                                                           "allow_exports_after_as_of": True})
    assert ctx.allow_exports_after_as_of is True
    assert RunContext.from_dict(ctx.to_dict()) == ctx
    assert context_for_run("manual__x", date(2026, 8, 31), {"exports": "e", "warehouse": "w"}).allow_exports_after_as_of \
        is False


def test_the_dag_declares_the_option_as_a_param_off_by_default():
    from airflow.dag_processing.dagbag import DagBag

    dags = Path(__file__).resolve().parents[2] / "dags"
    dag = DagBag(dag_folder=str(dags)).dags["sales_nightly"]
    assert dag.params["allow_exports_after_as_of"] is False
    assert dag.params["full_refresh"] is False


def test_full_refresh_is_a_dag_param_carried_by_the_run_context(tmp_path):
    params = {"exports": str(tmp_path), "warehouse": str(tmp_path / "w"), "full_refresh": True}
    ctx = context_for_run("manual__x", date(2026, 8, 31), params)
    assert ctx.full_refresh is True
    assert RunContext.from_dict(ctx.to_dict()).full_refresh is True  # between Airflow tasks (XCom)
    assert context_for_run("manual__x", date(2026, 8, 31), params | {"full_refresh": False}).full_refresh is False
