"""Every suite: a check meant to pass passes, one meant to fail fails, naming file, row and field."""

from datetime import UTC, date, datetime

import duckdb
import pandas as pd
import pytest

from salesos.extract.landing import archive_exports
from salesos.extract.load import load_raw
from salesos.settings import load_settings
from salesos.validate.frames import frame_columns, query_frame, raw_frame, resolve_params
from salesos.validate.gx_checks import (
    RAW_SUITES,
    ValidationFailed,
    load_suite,
    run_params,
    run_suite,
    validate_forecasts,
    validate_raw,
)

from ..conftest import OPPORTUNITIES, QUOTAS, USERS, write_csv

SETTINGS = load_settings()
AS_OF = date(2026, 10, 31)


def _con(exports, tmp_path, run_id="r1", con=None):
    archive = tmp_path / "archive" / run_id
    files = archive_exports(exports, archive)
    con = con or duckdb.connect()
    load_raw(con, archive, files, run_id, datetime(2026, 11, 1, tzinfo=UTC))
    return con


def assert_raw_frames_as_df_gives_them(con: duckdb.DuckDBPyConnection) -> None:
    """Every raw table's validated frame, read through Arrow, equals what DuckDB's `.df()` gives, dtypes and all."""
    for name in RAW_SUITES:
        table = load_suite(name)["table"]
        select = ", ".join(f'{e} as "{c}"' for c, e in frame_columns(con, table).items())
        expected = con.execute(f'select {select} from raw."{table}" t order by _row_number').df()
        pd.testing.assert_frame_equal(raw_frame(con, table), expected, check_exact=True, obj=table)


def test_query_frame_gives_what_df_gives_for_every_type_with_and_without_nulls():
    con = duckdb.connect()
    sql = """select * from (values
        (1::bigint, 1::bigint, 7::integer, true, true, 'a', null::varchar, date '2020-01-01',
         timestamp '2020-01-01 10:00', 1.5::double, '1'::varchar),
        (2, null, null, false, null, null, null, null, null, null, '2')
    ) t(i, ni, ni32, b, nb, s, all_null, d, ts, f, keep) where keep <= ?"""
    for keep in ("2", "1", "0"):  # two rows (some nulls), one row (no nulls), none
        expected = con.execute(sql, [keep]).df()
        got = query_frame(con, sql, [keep])
        pd.testing.assert_frame_equal(got, expected, check_exact=True, obj=keep)
        assert got.dtypes.to_dict() == expected.dtypes.to_dict(), keep  # an empty frame's dtypes too
    other = "select interval 1 day as i, [1, 2] as l, {'a': 1} as st"  # types it does not convert: as .df()
    pd.testing.assert_frame_equal(query_frame(con, other), con.execute(other).df())


def test_raw_frames_read_through_arrow_equal_the_df_ones(tiny_exports, tmp_path):
    opportunities = [dict(o) for o in OPPORTUNITIES]
    opportunities[1]["Amount"] = ""  # a typed number with a null
    opportunities[2]["CloseDate"] = "not a date"
    write_csv(tiny_exports / "Opportunity.csv", opportunities)
    assert_raw_frames_as_df_gives_them(_con(tiny_exports, tmp_path))


def test_clean_exports_pass_every_suite(tiny_exports, tmp_path):
    con = _con(tiny_exports, tmp_path)
    report = validate_raw(con, run_params(con, "r1", SETTINGS, AS_OF))
    assert report.success
    assert report.suites == list(RAW_SUITES)
    # 006C has no account: allowed (reference checks only look at references that are set)
    assert report.warnings == []


def _findings(tiny_exports, tmp_path, suite_name):
    con = _con(tiny_exports, tmp_path)
    suite = load_suite(suite_name)
    return run_suite(suite, raw_frame(con, suite["table"]), params=run_params(con, "r1", SETTINGS, AS_OF))[1]


@pytest.mark.parametrize(
    ("suite", "file", "rows", "row_no", "field", "value", "expected_column", "severity"),
    [
        ("raw_opportunities", "Opportunity.csv", OPPORTUNITIES, 2, "StageName", "Won!", "stage_name", "warn"),
        (
            "raw_opportunities",
            "Opportunity.csv",
            OPPORTUNITIES,
            2,
            "ForecastCategoryName",
            "Maybe",
            "forecast_category_name",
            "warn",
        ),
        ("raw_opportunities", "Opportunity.csv", OPPORTUNITIES, 3, "Probability", "250", "probability", "warn"),
        ("raw_opportunities", "Opportunity.csv", OPPORTUNITIES, 2, "OwnerId", "005GONE", "owner_id", "warn"),
        ("raw_opportunities", "Opportunity.csv", OPPORTUNITIES, 1, "AccountId", "001GONE", "account_id", "warn"),
        ("raw_opportunities", "Opportunity.csv", OPPORTUNITIES, 3, "IsWon", "true", "closed_flags", "warn"),
        ("raw_users", "User.csv", USERS, 2, "ManagerId", "005GONE", "manager_id", "warn"),
        ("raw_quotas", "quotas.csv", QUOTAS, 2, "period_start", "2026-10-15", "period_start", "fail"),
        ("raw_quotas", "quotas.csv", QUOTAS, 3, "owner_id", "005B", "owner_key,period_start", "warn"),
    ],
)
def test_each_check_fails_on_its_fault_naming_file_row_and_field(
    tiny_exports, tmp_path, suite, file, rows, row_no, field, value, expected_column, severity
):
    assert _findings(tiny_exports, tmp_path, suite) == []  # passes on clean data
    rows = [dict(r) for r in rows]
    rows[row_no - 1][field] = value
    if field == "owner_id":
        rows[row_no - 1]["period_start"] = rows[1]["period_start"]
    write_csv(tiny_exports / file, rows)
    findings = _findings(tiny_exports, tmp_path / "again", suite)
    assert [(f.column, f.severity) for f in findings] == [(expected_column, severity)]
    assert findings[0].file == file
    if "," not in expected_column:
        assert row_no in findings[0].sample_rows
        assert f"data rows {row_no}" in findings[0].message() or f", {row_no}" in findings[0].message()


def test_a_shrunken_export_fails_against_the_previous_run(tiny_exports, tmp_path):
    con = _con(tiny_exports, tmp_path, "r1")
    write_csv(tiny_exports / "Opportunity.csv", OPPORTUNITIES[:1])
    _con(tiny_exports, tmp_path, "r2", con=con)
    params = run_params(con, "r2", SETTINGS, AS_OF)
    assert params["min_rows"]["opportunities"] == 2  # half of the 4 rows of r1
    with pytest.raises(
        ValidationFailed, match=r"Opportunity\.csv: expect_table_row_count_to_be_between min_value=2 failed: observed 1"
    ):
        validate_raw(con, params)


def test_warnings_do_not_stop_the_run(tiny_exports, tmp_path):
    rows = [dict(r) for r in OPPORTUNITIES]
    rows[1]["OwnerId"] = "005GONE"
    write_csv(tiny_exports / "Opportunity.csv", rows)
    con = _con(tiny_exports, tmp_path)
    report = validate_raw(con, run_params(con, "r1", SETTINGS, AS_OF))
    assert report.success
    assert [w.column for w in report.warnings] == ["owner_id"]
    assert "data rows 2" in report.warnings[0].message()


def test_every_export_has_a_suite():
    from salesos.contract import EXPORTS

    assert {load_suite(s)["table"] for s in RAW_SUITES} == {e.table for e in EXPORTS}


def test_a_stale_export_fails(tiny_exports, tmp_path):
    con = _con(tiny_exports, tmp_path)
    with pytest.raises(
        ValidationFailed,
        match=r"Opportunity\.csv: field 'last_modified_date' fails expect_column_max_to_be_between min_value=2026-12-28 00:00:00: observed 2026-10-30 10:00:00.*stale",
    ):
        validate_raw(con, run_params(con, "r1", SETTINGS, date(2026, 12, 31)))


@pytest.mark.parametrize(("synced", "fresh"), [("2026-10-30 02:00:00", True), ("2026-09-01 02:00:00", False)])
def test_freshness_falls_back_to_the_sync_time_where_rows_have_no_last_modified_date(tiny_exports, tmp_path,
                                                                                      synced, fresh):
    """A connector's opportunity table often has no LastModifiedDate: its SyncedAt says how fresh it is."""
    rows = [{**{k: v for k, v in o.items() if k != "LastModifiedDate"}, "SyncedAt": synced} for o in OPPORTUNITIES]
    write_csv(tiny_exports / "Opportunity.csv", rows)
    con = _con(tiny_exports, tmp_path)
    params = run_params(con, "r1", SETTINGS, AS_OF)
    if fresh:
        validate_raw(con, params)
    else:
        with pytest.raises(ValidationFailed, match=r"field 'last_modified_date' fails expect_column_max_to_be_between "
                                                   r"min_value=2026-10-28 00:00:00: observed 2026-09-01 02:00:00"):
            validate_raw(con, params)


def test_parameters_are_filled_from_the_run():
    assert resolve_params({"a": "${x.y}", "b": ["${z}"]}, {"x": {"y": 1}, "z": 2}) == {"a": 1, "b": [2]}
    with pytest.raises(KeyError, match="nope"):
        resolve_params("${nope}", {})


def _forecast_rows(**changes):
    df = pd.DataFrame(
        {
            "as_of_date": [pd.Timestamp("2026-10-31").date()] * 2,
            "series_id": ["company"] * 2,
            "model": ["theta"] * 2,
            "period_start": [pd.Timestamp("2026-11-01").date(), pd.Timestamp("2026-12-01").date()],
            "yhat": [100.0, 120.0],
            "yhat_lower_80": [80.0, 90.0],
            "yhat_upper_80": [120.0, 150.0],
            "yhat_lower_95": [60.0, 70.0],
            "yhat_upper_95": [140.0, 170.0],
        }
    )
    for k, v in changes.items():
        df.loc[1, k] = v
    return df


def test_forecast_suite_passes_good_rows():
    assert validate_forecasts(_forecast_rows()).success


@pytest.mark.parametrize(
    "changes",
    [
        {"yhat": -1.0, "yhat_lower_80": -2.0, "yhat_lower_95": -3.0},
        {"yhat_lower_80": 130.0},
        {"yhat_upper_95": 149.0},
        {"period_start": pd.Timestamp("2026-11-01").date()},
        {"yhat": None},
    ],
)
def test_forecast_suite_fails_bad_rows(changes):
    with pytest.raises(ValidationFailed, match="fct_forecasts"):
        validate_forecasts(_forecast_rows(**changes))
