"""Issue 22 cases 9 and 12: malformed CSV rows are quarantined with their row number and raw text, the run
goes on; duplicate header names and two files that differ only by case are refused, naming both.

Before: one malformed row failed the whole file with a CSV sniffer error and no line number; `Amount,Amount`
loaded as `amount` and `amount_1` silently; of `Opportunity.csv` and `opportunity.csv` one was picked by
directory order.
"""

import random
from datetime import UTC, datetime

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from salesos.extract.landing import ExportError, archive_exports
from salesos.extract.load import load_raw
from salesos.pipeline import format_summary
from salesos.settings import Settings

from ..conftest import OPPORTUNITIES, write_csv

NOW = datetime(2026, 11, 1, 2, 0, tzinfo=UTC)
HEADER = "Id,AccountId,OwnerId,StageName,Amount,CloseDate,CreatedDate,IsClosed,IsWon"


def _row(i: int, name: str = "Prospecting") -> str:
    return f"006{i:05d},001A,005B,{name},{100 + i}.50,2026-09-10,2026-08-01T10:00:00Z,false,false"


def _load(exports, tmp_path, run_id="r1", con=None, **options):
    archive = tmp_path / "archive" / run_id
    files = archive_exports(exports, archive)
    con = con or duckdb.connect(str(tmp_path / "wh.duckdb"))
    return con, load_raw(con, archive, files, run_id, NOW, **options)


def _q(con):
    return con.execute("select _row_number, _reason, _field, _value from quarantine.opportunities order by 1").fetchall()


def test_malformed_rows_are_quarantined_with_row_number_and_raw_text(tiny_exports, tmp_path):
    lines = [
        HEADER,
        _row(1),
        _row(2, '"Multi\nline stage"'),  # a quoted newline: one record over two lines
        _row(3) + ",surplus",  # an unquoted comma: too many fields
        _row(4),
        _row(5, 'bad"quote'),  # a stray quote inside an unquoted field is kept as text
        _row(6, '"unterminated"x'),  # a field that closes its quote and goes on
        _row(7),
    ]
    (tiny_exports / "Opportunity.csv").write_text("\n".join(lines) + "\n")
    con, res = _load(tiny_exports, tmp_path)
    loaded = con.execute("select id, _row_number, stage_name from raw.opportunities order by 2").fetchall()
    assert loaded == [
        ("00600001", 1, "Prospecting"),
        ("00600002", 2, "Multi\nline stage"),
        ("00600004", 4, "Prospecting"),
        ("00600005", 5, 'bad"quote'),
        ("00600007", 7, "Prospecting"),
    ]
    assert _q(con) == [
        (3, "malformed_row", None, _row(3) + ",surplus"),
        (6, "malformed_row", "stage_name", _row(6, '"unterminated"x')),
    ]
    assert res.read["Opportunity.csv"] == 7 == res.loaded["Opportunity.csv"] + res.quarantined["Opportunity.csv"]
    assert res.by_rule["Opportunity.csv:malformed_row"] == 2
    summary = {
        "run_id": "r1", "as_of": "2026-10-31", "rows_loaded": res.loaded, "rows_quarantined": res.quarantined,
        "quarantined_by_rule": res.by_rule, "checks": {"expectations": 0, "warnings": []}, "models_built": 0,
        "tests_passed": 0, "tests_warned": 0, "forecast_rows": 0, "forecast_series": 0, "warehouse": "w",
        "run_folder": "f",
    }
    assert "quarantined Opportunity.csv:malformed_row: 2" in format_summary(summary)
    summary["number_formats"] = {"Opportunity.csv": "decimal '.', thousands ',' (mixed in the file)"}
    assert "note: Opportunity.csv numbers" not in format_summary(summary)  # nothing ambiguous quarantined
    summary["quarantined_by_rule"] = {"Opportunity.csv:ambiguous_number": 1}
    assert "note: Opportunity.csv numbers read with decimal '.'" in format_summary(summary)


def test_malformed_rows_of_a_large_file_load_through_the_scratch_schema_too(tiny_exports, tmp_path):
    every_file_large = Settings(load_scratch_bytes=1)  # every file counts as large: work tables in schema _load
    lines = [HEADER, _row(1), _row(2) + ",surplus", _row(3, '"two\nlines"'), _row(4)]
    (tiny_exports / "Opportunity.csv").write_text("\n".join(lines) + "\n")
    con, res = _load(tiny_exports, tmp_path, settings=every_file_large)
    assert [r[:2] for r in _q(con)] == [(2, "malformed_row")]
    assert con.execute("select id, _row_number from raw.opportunities order by 2").fetchall() == [
        ("00600001", 1), ("00600003", 3), ("00600004", 4),
    ]
    assert res.read["Opportunity.csv"] == 4
    assert con.execute("select count(*) from information_schema.schemata where schema_name = '_load'").fetchall() == [
        (0,)
    ]


def test_a_malformed_row_next_to_a_short_row_and_crlf(tiny_exports, tmp_path):
    lines = [HEADER, _row(1), "00600002,001A,005B,Prosp", _row(3) + ',"x",y', _row(4)]
    (tiny_exports / "Opportunity.csv").write_bytes(("\r\n".join(lines) + "\r\n").encode())
    con, _ = _load(tiny_exports, tmp_path)
    # the short row is padded and fails its rules (as before); the long one is malformed
    assert [r[:3] for r in _q(con)] == [(2, "missing_value", "close_date"), (3, "malformed_row", None)]
    assert _q(con)[1][3] == _row(3) + ',"x",y'
    assert con.execute("select id, _row_number from raw.opportunities order by 2").fetchall() == [
        ("00600001", 1),
        ("00600004", 4),
    ]


def test_incremental_night_keeps_counting_malformed_rows(tiny_exports, tmp_path):
    lines = [HEADER, *(_row(i) for i in range(1, 6))]
    (tiny_exports / "Opportunity.csv").write_text("\n".join(lines) + "\n")
    con, _ = _load(tiny_exports, tmp_path)
    lines[2] = _row(2) + ",extra"
    (tiny_exports / "Opportunity.csv").write_text("\n".join(lines) + "\n")
    con, res = _load(tiny_exports, tmp_path, run_id="r2", con=con)
    assert res.mode["Opportunity.csv"] == "incremental"
    assert res.changes["Opportunity.csv"] == {"inserted": 0, "updated": 0, "deleted": 1}
    assert [r[:2] for r in _q(con)] == [(2, "malformed_row")]
    assert con.execute("select id, _row_number, _run_id from raw.opportunities order by 2").fetchall() == [
        ("00600001", 1, "r1"), ("00600003", 3, "r1"), ("00600004", 4, "r1"), ("00600005", 5, "r1"),
    ]


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    n=st.integers(min_value=1, max_value=60),
    seed=st.integers(min_value=0, max_value=10**6),
    share=st.floats(min_value=0.0, max_value=0.6),
)
def test_any_mix_of_malformed_rows_keeps_every_row_numbered_as_in_the_file(
    tiny_exports, tmp_path_factory, n, seed, share
):
    rng = random.Random(seed)
    kinds = ["ok", "multiline", "surplus", "closed_quote"]
    rows, expected_bad = [], {}
    for i in range(1, n + 1):
        kind = kinds[rng.randrange(4)] if rng.random() < share else "ok"
        if kind == "multiline":
            rows.append(_row(i, '"two\nlines"'))
        elif kind == "surplus":
            rows.append(_row(i) + ",x")
            expected_bad[i] = rows[-1]
        elif kind == "closed_quote":
            rows.append(_row(i, '"a"b'))
            expected_bad[i] = rows[-1]
        else:
            rows.append(_row(i))
    (tiny_exports / "Opportunity.csv").write_text("\n".join([HEADER, *rows]) + "\n")
    tmp = tmp_path_factory.mktemp("hostile")
    con, res = _load(tiny_exports, tmp)
    good = con.execute("select id, _row_number from raw.opportunities").fetchall()
    assert all(int(id_[3:]) == number for id_, number in good)  # each row keeps its own number
    assert {r[0]: r[3] for r in _q(con)} == expected_bad
    assert res.read["Opportunity.csv"] == n == len(good) + len(expected_bad)


def test_duplicate_header_names_fail_naming_file_and_header(tiny_exports, tmp_path):
    text = (tiny_exports / "Opportunity.csv").read_text()
    header, rest = text.split("\n", 1)
    (tiny_exports / "Opportunity.csv").write_text(header + ",Amount\n" + rest.replace("\n", ",7\n"))
    with pytest.raises(ExportError, match=r"Opportunity\.csv: header 'Amount' appears twice \(columns 6 and \d+\)"):
        _load(tiny_exports, tmp_path)


def test_two_files_differing_only_by_case_are_refused_naming_both(tiny_exports, tmp_path):
    write_csv(tiny_exports / "opportunity.csv", OPPORTUNITIES[:1])
    with pytest.raises(ExportError, match=r"Opportunity\.csv and opportunity\.csv"):
        archive_exports(tiny_exports, tmp_path / "archive")
    assert not (tmp_path / "archive").exists()  # refused before anything is written
