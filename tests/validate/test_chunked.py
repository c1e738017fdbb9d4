"""Validating raw tables slice by slice gives exactly what validating them whole gives.

Both paths run on the same loaded exports: the whole-frame path (`run_suite` on `raw_frame`, what
validation did before slicing) and the sliced one with a chunk size small enough that every table is cut
in several slices. Pass/fail, counts, percentages, sample rows and values, messages and the GX results
handed to Data Docs must all be equal - on the broken-export corpus, on faults that put unexpected rows
in several slices, and (e2e) on a scale-S sample with injected faults.
"""

from __future__ import annotations

import math
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import duckdb
import pytest

from salesos import pipeline
from salesos.extract.landing import ExportError, archive_exports
from salesos.extract.load import load_raw
from salesos.run_context import RunContext
from salesos.settings import load_settings
from salesos.validate.chunked import CHUNKABLE, _slices
from salesos.validate.frames import gx_context, raw_frame
from salesos.validate.gx_checks import (
    RAW_SUITES,
    ValidationFailed,
    duckdb_memory_limit,
    load_suite,
    run_params,
    run_suite,
    run_suite_chunked,
    validate_raw,
)

from ..conftest import ACCOUNTS, OPPORTUNITIES, QUOTAS, USERS, write_csv
from .test_broken_exports import CASES
from .test_gx_checks import assert_raw_frames_as_df_gives_them

SETTINGS = load_settings()
AS_OF = date(2026, 10, 31)


def _load(exports: Path, tmp_path: Path) -> duckdb.DuckDBPyConnection:
    archive = tmp_path / "archive"
    files = archive_exports(exports, archive)
    con = duckdb.connect()
    load_raw(con, archive, files, "r1", datetime(2026, 11, 1, tzinfo=UTC))
    return con


def _comparable(result: Any) -> dict:
    """A suite's GX result without what differs between any two runs (load and validation times)."""
    d = result.to_json_dict()
    d["meta"].get("batch_markers", {}).pop("ge_load_time", None)
    d["meta"].pop("validation_time", None)
    return d


def _outcome(con: duckdb.DuckDBPyConnection, params: dict, chunk_rows: int) -> tuple[str, dict]:
    try:
        report = validate_raw(con, params, chunk_rows=chunk_rows)
    except ValidationFailed as exc:
        return str(exc), exc.report.to_dict()
    return "passed", report.to_dict()


def assert_same_both_ways(con: duckdb.DuckDBPyConnection, params: dict, chunk_rows: Any) -> list:
    """Every raw suite whole and sliced (`chunk_rows(n)` rows per slice of an n-row table): equal results.

    Returns the findings, so callers can check the faults they planted were found.
    """
    findings = []
    whole_context, sliced_context = gx_context(), gx_context()
    for name in RAW_SUITES:
        suite = load_suite(name)
        rows = con.execute(f'select count(*) from raw."{suite["table"]}"').fetchall()[0][0]
        whole_results: list = []
        sliced_results: list = []
        n, whole = run_suite(suite, raw_frame(con, suite["table"]), whole_context, params, whole_results)
        m, sliced = run_suite_chunked(con, suite, chunk_rows(rows), sliced_context, params, sliced_results)
        assert (m, sliced) == (n, whole), name
        assert [f.message() for f in sliced] == [f.message() for f in whole], name
        assert _comparable(sliced_results[0]) == _comparable(whole_results[0]), name
        findings += whole
    return findings


def test_slices_cover_every_row_once_in_order(tiny_exports, tmp_path):
    con = _load(tiny_exports, tmp_path)
    whole = con.execute("select _row_number from raw.opportunities order by 1").fetchall()
    for chunk_rows in (1, 2, 3, 4, 5):
        got = []
        for where, args in _slices(con, "opportunities", chunk_rows, "raw"):
            part = raw_frame(con, "opportunities", where=where, params=args)
            assert 0 < len(part) <= chunk_rows
            got += [(r,) for r in part["_row_number"]]
        assert got == whole, chunk_rows


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_broken_exports_give_the_same_result_sliced(case, tiny_exports, tmp_path):
    case.breaks(tiny_exports)
    wh = tmp_path / "wh" / "salesos.duckdb"
    ctx = RunContext.create(as_of=AS_OF, exports=tiny_exports, warehouse=wh, run_id="broken")
    try:
        pipeline.extract(ctx)
    except ExportError:
        assert case.fails_with  # the corpus expects it; validation never runs
        return
    con = duckdb.connect(str(ctx.build_warehouse), read_only=True)
    params = run_params(con, ctx.run_id, SETTINGS, AS_OF)
    assert_same_both_ways(con, params, lambda n: 2)
    assert_raw_frames_as_df_gives_them(con)  # the frames GX sees are what `.df()` gives, for every broken file


def test_faults_spread_over_slices_are_counted_and_sampled_as_whole(tiny_exports, tmp_path):
    opportunities = [dict(o) for o in OPPORTUNITIES]
    for i, o in enumerate([*OPPORTUNITIES, *OPPORTUNITIES, *OPPORTUNITIES]):
        opportunities.append({**o, "Id": f"{o['Id']}{i}"})
    for i in (1, 4, 6, 9, 11, 13, 15):  # seven unknown stages: more than the five samples, in every slice
        opportunities[i]["StageName"] = f"Stage {i}"
    opportunities[7]["Probability"] = "250"
    opportunities[14]["OwnerId"] = "005GONE"
    write_csv(tiny_exports / "Opportunity.csv", opportunities)
    # half the accounts without a size: `mostly: 0.5` holds for the table although one slice is all null
    write_csv(tiny_exports / "Account.csv", [ACCOUNTS[0], {**ACCOUNTS[1], "NumberOfEmployees": ""}])
    quotas = [*QUOTAS, {**QUOTAS[0], "period_start": "2026-11-15"}, dict(QUOTAS[1])]  # a fail and a duplicate
    write_csv(tiny_exports / "quotas.csv", quotas)
    write_csv(tiny_exports / "User.csv", [*USERS, {**USERS[2], "Id": "005D", "ManagerId": "005GONE"}])
    con = _load(tiny_exports, tmp_path)
    params = run_params(con, "r1", SETTINGS, AS_OF)

    findings = assert_same_both_ways(con, params, lambda n: 3)
    assert_same_both_ways(con, params, lambda n: max(1, math.ceil(n / 2)))
    by_column = {f.column: f for f in findings}
    stage = by_column["stage_name"]
    assert (stage.unexpected_count, stage.element_count) == (7, 16)
    assert stage.sample_rows == [2, 5, 7, 10, 12]
    assert stage.sample_values == ["Stage 1", "Stage 4", "Stage 6", "Stage 9", "Stage 11"]
    assert "number_of_employees" not in by_column
    assert by_column["period_start"].sample_rows == [4]
    assert by_column["owner_key,period_start"].unexpected_count == 2

    failed, report = _outcome(con, params, chunk_rows=3)
    assert (failed, report) == _outcome(con, params, chunk_rows=10**9)
    assert "quotas.csv: field 'period_start' fails expect_column_values_to_be_in_set in 1 of 5 rows" in failed


def test_slices_read_only_the_checked_columns(tiny_exports, tmp_path, monkeypatch):
    """A slice holds only what the row checks read (GX's frame fingerprint, which read every column, is off)."""
    from salesos.validate import chunked

    opportunities = [{**o, "Id": f"{o['Id']}{i}"} for i, o in enumerate(OPPORTUNITIES * 4)]
    for i in (1, 6, 9):
        opportunities[i]["StageName"] = f"Stage {i}"
    opportunities[14]["OwnerId"] = "005GONE"
    write_csv(tiny_exports / "Opportunity.csv", opportunities)
    con = _load(tiny_exports, tmp_path)
    params = run_params(con, "r1", SETTINGS, AS_OF)
    read: list = []
    real = chunked.raw_frame
    monkeypatch.setattr(chunked, "raw_frame", lambda *a, **k: read.append(a) or real(*a, **k))

    findings = assert_same_both_ways(con, params, lambda n: 3)
    assert {f.column for f in findings} >= {"stage_name", "owner_id"}
    slices = [a[3] for a in read if a[1] == "opportunities" and len(a) == 6]  # (con, table, schema, columns, ...)
    assert len(slices) >= 2 and all("stage_name" in c and "amount" not in c for c in slices)


def test_no_frame_is_hashed_and_each_raw_result_names_its_export(tiny_exports, tmp_path, monkeypatch):
    """GX's pandas fingerprint is never computed; the export's sha256 (raw._loads) marks the batch instead."""
    import hashlib

    import pandas as pd

    from salesos.validate import gx_checks

    hashed: list = []
    real_hash = pd.util.hash_pandas_object
    monkeypatch.setattr(pd.util, "hash_pandas_object", lambda *a, **k: hashed.append(1) or real_hash(*a, **k))
    marked: list = []
    real_mark = gx_checks._mark_export
    monkeypatch.setattr(gx_checks, "_mark_export", lambda c, t, r: marked.append((t, r)) or real_mark(c, t, r))
    con = _load(tiny_exports, tmp_path)
    params = run_params(con, "r1", SETTINGS, AS_OF)
    digest = hashlib.sha256((tmp_path / "archive" / "Opportunity.csv").read_bytes()).hexdigest()
    for chunk_rows in (2, 1000):  # in slices, then whole
        marked.clear()
        validate_raw(con, params, chunk_rows=chunk_rows)
        markers = {table: result.meta["batch_markers"] for table, result in marked}
        assert markers["opportunities"]["export_file"] == "Opportunity.csv"
        assert markers["opportunities"]["export_sha256"] == digest
        assert all("pandas_data_fingerprint" not in m for m in markers.values())
    assert hashed == []


def test_mostly_is_applied_to_the_whole_table_not_to_each_slice(tiny_exports, tmp_path):
    accounts = [{**ACCOUNTS[i % 2], "Id": f"001X{i}", "NumberOfEmployees": "" if i < 3 else "10"} for i in range(5)]
    write_csv(tiny_exports / "Account.csv", accounts)  # 3 of 5 without a size: 40% < mostly 0.5
    con = _load(tiny_exports, tmp_path)
    params = run_params(con, "r1", SETTINGS, AS_OF)
    suite = load_suite("raw_accounts")
    for chunk_rows in (1, 2, 3, 4):
        _, findings = run_suite_chunked(con, suite, chunk_rows, gx_context(), params)
        assert [(f.column, f.unexpected_count, f.element_count) for f in findings] == [("number_of_employees", 3, 5)]
    assert [f.sample_rows for f in findings] == [[1, 2, 3]]


def test_every_expectation_in_the_suites_is_sliced_or_run_whole_on_purpose():
    table_level = {
        "expect_table_row_count_to_be_between",
        "expect_column_max_to_be_between",
        "expect_compound_columns_to_be_unique",
    }
    types = {e["type"] for name in RAW_SUITES for e in load_suite(name)["expectations"]}
    assert types <= CHUNKABLE | table_level
    assert not table_level & CHUNKABLE


def test_validation_caps_duckdb_memory(monkeypatch):
    con = duckdb.connect()
    monkeypatch.setenv("SALESOS_DUCKDB_MEMORY_LIMIT", "1GB")
    duckdb_memory_limit(con)
    assert con.execute("select current_setting('memory_limit')").fetchall()[0][0] in ("1.0 GiB", "953.6 MiB")
    monkeypatch.delenv("SALESOS_DUCKDB_MEMORY_LIMIT")
    duckdb_memory_limit(con)
    assert con.execute("select current_setting('memory_limit')").fetchall()[0][0] in ("4.0 GiB", "3.7 GiB")


def test_big_tables_are_sliced_in_a_run_with_data_docs(tiny_exports, tmp_path, monkeypatch):
    from salesos.validate import gx_checks

    calls = []
    real = gx_checks.run_chunked
    monkeypatch.setattr(
        gx_checks, "run_chunked", lambda con, suite, *a: calls.append(suite["table"]) or real(con, suite, *a)
    )
    con = _load(tiny_exports, tmp_path)
    report = validate_raw(con, run_params(con, "r1", SETTINGS, AS_OF), docs_dir=tmp_path / "docs", run_name="r1",
                          chunk_rows=2)
    assert report.success
    assert sorted(calls) == ["opportunities", "quotas", "users"]  # the tables of more than 2 rows
    assert Path(report.data_docs).is_file()
    pages = [p.read_text() for p in (tmp_path / "docs" / "validations").rglob("*.html")]
    assert len(pages) == len(RAW_SUITES)


@pytest.mark.e2e
def test_scale_s_sample_with_faults_gives_the_same_result_sliced(tmp_path):
    from salesos.generate import generate

    exports = tmp_path / "exports"
    generate(exports, scale="S", seed=11, as_of=AS_OF, faults=True)
    con = _load(exports, tmp_path)
    params = run_params(con, "r1", SETTINGS, AS_OF)
    findings = assert_same_both_ways(con, params, lambda n: max(1, math.ceil(n / 2)))
    assert any(f.column == "owner_id" and f.sample_rows for f in findings)  # the faults were found
