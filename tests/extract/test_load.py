from datetime import UTC, datetime

import duckdb
import pytest

from salesos.contract import EXPORTS
from salesos.extract.landing import ExportError, archive_exports
from salesos.extract.load import load_raw
from salesos.settings import Settings

from ..conftest import ACCOUNTS, OPPORTUNITIES, write_csv

NOW = datetime(2026, 11, 1, 2, 0, tzinfo=UTC)


def _load(exports, tmp_path, run_id="r1", con=None, **options):
    archive = tmp_path / "archive" / run_id
    files = archive_exports(exports, archive)
    con = con or duckdb.connect(str(tmp_path / "wh.duckdb"))
    return con, load_raw(con, archive, files, run_id, NOW, **options)


def _rows(con, sql):
    return con.execute(sql).fetchall()


def test_loads_every_export_with_metadata_and_canonical_values(tiny_exports, tmp_path):
    con, res = _load(tiny_exports, tmp_path)
    assert res.loaded["Opportunity.csv"] == 4 and res.quarantined["Opportunity.csv"] == 0
    assert res.loaded["Lead.csv"] == 0  # optional and absent: empty table, not a crash
    tables = {r[0] for r in _rows(con, "select table_name from information_schema.tables where table_schema = 'raw'")}
    assert {e.table for e in EXPORTS} <= tables
    types = dict(_rows(con, "select column_name, data_type from information_schema.columns "
                            "where table_schema='raw' and table_name='opportunities'"))
    assert types["amount"] == "VARCHAR" and types["_row_number"] == "BIGINT"
    got = _rows(con, "select id, amount, created_date, is_won, competitor__c, _source_file, _row_number, _run_id "
                     "from raw.opportunities order by _row_number")
    assert got[0] == ("006A", "1000.000000", "2026-08-01 10:00:00", "true", "Initech", "Opportunity.csv", 1, "r1")
    assert [g[0] for g in got] == [o["Id"] for o in OPPORTUNITIES]


def test_snake_case_headers_and_custom_fields_are_kept(tiny_exports, tmp_path):
    rows = [{k if k != "StageName" else "stage_name": v for k, v in o.items()} for o in OPPORTUNITIES]
    rows = [{**r, "Deal_Score__c": "7"} for r in rows]
    write_csv(tiny_exports / "Opportunity.csv", rows)
    con, res = _load(tiny_exports, tmp_path)
    assert _rows(con, "select stage_name, deal_score__c from raw.opportunities limit 1") == [("Closed Won", "7")]
    assert res.extra_columns["Opportunity.csv"] == ["Competitor__c", "Deal_Score__c"]
    assert res.missing_columns.get("Opportunity.csv") is None
    assert "User.csv" not in res.missing_columns
    assert res.missing_columns["Account.csv"] == ["IsDeleted"]  # optional: loaded as empty, and reported


def test_columns_only_some_sources_carry_are_not_reported_missing(tiny_exports, tmp_path):
    """Salesforce's own OpportunityHistory export has no IsClosed/IsWon (connector tables do): no nightly note."""
    write_csv(tiny_exports / "OpportunityHistory.csv",
              [{"OpportunityId": "006A", "StageName": "Prospecting", "CreatedDate": "2026-08-01 10:00:00"}])
    con, res = _load(tiny_exports, tmp_path)
    assert res.loaded["OpportunityHistory.csv"] == 1
    assert res.missing_columns["OpportunityHistory.csv"] == ["Id", "Amount", "Probability", "CloseDate",
                                                             "ForecastCategory", "IsDeleted"]
    assert _rows(con, "select is_closed, is_won from raw.opportunity_histories") == [(None, None)]


def test_loading_the_same_files_twice_does_not_duplicate(tiny_exports, tmp_path):
    con, _ = _load(tiny_exports, tmp_path)
    _load(tiny_exports, tmp_path, con=con)
    _load(tiny_exports, tmp_path, run_id="r2", con=con)
    assert _rows(con, "select count(*) from raw.opportunities") == [(4,)]
    assert _rows(con, "select count(*) from raw._loads where run_id = 'r1'") == [(4,)]


def test_missing_required_column_names_file_and_column_before_writing(tiny_exports, tmp_path):
    rows = [{k: v for k, v in o.items() if k != "CloseDate"} for o in OPPORTUNITIES]
    write_csv(tiny_exports / "Opportunity.csv", rows)
    con = duckdb.connect(str(tmp_path / "wh.duckdb"))
    with pytest.raises(ExportError, match=r"Opportunity\.csv: required column\(s\) missing: CloseDate"):
        _load(tiny_exports, tmp_path, con=con)
    assert _rows(con, "select count(*) from information_schema.tables where table_schema='raw'") == [(0,)]


def test_quotas_need_owner_id_or_email(tiny_exports, tmp_path):
    (tiny_exports / "quotas.csv").write_text("owner_email,period_start,quota_amount\nbob@example.com,2026-09-01,5\n")
    _, res = _load(tiny_exports, tmp_path)
    assert res.loaded["quotas.csv"] == 1
    (tiny_exports / "quotas.csv").write_text("owner,period_start,quota_amount\nbob,2026-09-01,5\n")
    with pytest.raises(ExportError, match=r"quotas\.csv: needs one of the columns owner_id or owner_email"):
        _load(tiny_exports, tmp_path, run_id="r2")


def test_bad_rows_are_quarantined_with_rule_field_value_and_row(tiny_exports, tmp_path):
    rows = [dict(o) for o in OPPORTUNITIES]
    rows[1]["Id"] = "006A"  # duplicate of row 1
    rows[2]["CloseDate"] = "31/02/2024"
    rows[3]["Amount"] = "-5"
    rows.append({**OPPORTUNITIES[0], "Id": "006E", "OwnerId": ""})
    rows.append({**OPPORTUNITIES[0], "Id": "006F", "CreatedDate": "1850-01-01T00:00:00Z"})
    rows.append({**OPPORTUNITIES[0], "Id": "006G", "Amount": "1e39"})
    rows.append({**OPPORTUNITIES[0], "Id": "006H", "Amount": "inf"})
    write_csv(tiny_exports / "Opportunity.csv", rows)
    con, res = _load(tiny_exports, tmp_path)
    assert res.read["Opportunity.csv"] == 8
    assert (res.loaded["Opportunity.csv"], res.quarantined["Opportunity.csv"]) == (1, 7)
    q = _rows(con, "select _row_number, _reason, _field, _value, _source_file from quarantine.opportunities "
                   "order by _row_number")
    assert q == [
        (2, "duplicate_id", "id", "006A", "Opportunity.csv"),
        (3, "unparseable_date", "close_date", "31/02/2024", "Opportunity.csv"),
        (4, "negative_value", "amount", "-5", "Opportunity.csv"),
        (5, "missing_value", "owner_id", None, "Opportunity.csv"),
        (6, "implausible_date", "created_date", "1850-01-01T00:00:00Z", "Opportunity.csv"),
        (7, "number_out_of_range", "amount", "1e39", "Opportunity.csv"),
        (8, "number_out_of_range", "amount", "inf", "Opportunity.csv"),
    ]
    assert res.by_rule["Opportunity.csv:duplicate_id"] == 1


def test_formats_seen_in_the_wild_load(tiny_exports, tmp_path):
    header = "Id;AccountId;OwnerId;StageName;Amount;CloseDate;CreatedDate;IsClosed;IsWon\r\n"
    lines = [
        "006A;001A;005B;Closed Won;1,234.50;03/15/2026;2026-03-01T10:00:00+02:00;TRUE;1\r\n",
        # one file, one number convention (a file mixing 1,234.50 and 1.234,50: tests/extract/test_numbers.py)
        "006B;001A;005B;Prospecting;1234.5;2026-03-15;03/01/2026 09:30;false;0\r\n",
        '006C;001A;005B;"Caf\xe9\nclosing";"2,000";2026-03-15;2026-03-01;no;no\r\n',
        "Id;AccountId;OwnerId;StageName;Amount;CloseDate;CreatedDate;IsClosed;IsWon\r\n",  # duplicated header
        "006D;001A;005B;Prosp",  # truncated last line
    ]
    (tiny_exports / "Opportunity.csv").write_bytes((header + "".join(lines)).encode("latin-1"))
    con, res = _load(tiny_exports, tmp_path)
    assert res.encodings["Opportunity.csv"] == "windows-1252"  # no valid UTF-8 text: Latin-1 reads the same
    got = _rows(con, "select id, stage_name, amount, close_date, created_date, is_closed, is_won "
                     "from raw.opportunities order by _row_number")
    assert got == [
        ("006A", "Closed Won", "1234.500000", "2026-03-15", "2026-03-01 08:00:00", "true", "true"),
        ("006B", "Prospecting", "1234.500000", "2026-03-15", "2026-03-01 09:30:00", "false", "false"),
        ("006C", "Café\nclosing", "2000.000000", "2026-03-15", "2026-03-01 00:00:00", "false", "false"),
    ]
    q = _rows(con, "select _row_number, _reason, _field from quarantine.opportunities order by 1")
    assert q == [(4, "unparseable_number", "amount"), (5, "missing_value", "close_date")]


def test_header_only_file_loads_zero_rows_and_empty_optional_file_is_absent(tiny_exports, tmp_path):
    (tiny_exports / "Lead.csv").write_text("Id,OwnerId,CreatedDate\n")
    (tiny_exports / "Task.csv").write_text("")
    _, res = _load(tiny_exports, tmp_path)
    assert res.loaded["Lead.csv"] == 0 and res.loaded["Task.csv"] == 0


def test_empty_required_file_is_a_clear_error(tiny_exports, tmp_path):
    (tiny_exports / "Account.csv").write_text("\n")
    with pytest.raises(ExportError, match=r"Account\.csv: the file is empty"):
        _load(tiny_exports, tmp_path)


def test_planning_a_large_export_does_not_read_it_into_memory(tiny_exports, tmp_path):
    """The empty-file check looks at the file's first bytes only: at scale L an export is 10 GB, and reading it
    whole to look at 4 KB took the extract step's memory to the size of the largest file."""
    import tracemalloc

    from salesos.extract.load import plan_loads

    header, *rows = (tiny_exports / "Opportunity.csv").read_text().splitlines()
    body = "".join(f"{row}\n" for row in rows)
    (tiny_exports / "Opportunity.csv").write_text(header + "\n" + body * (40_000_000 // len(body) + 1))
    archive = tmp_path / "archive"
    files = archive_exports(tiny_exports, archive)
    assert (archive / "Opportunity.csv").stat().st_size > 40_000_000
    con = duckdb.connect()
    tracemalloc.start()
    try:
        plans = plan_loads(con, archive, files)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert any(p.path is not None and p.path.name == "Opportunity.csv" for p in plans)
    assert peak < 5_000_000, f"planning held {peak:,} bytes"


def test_bom_crlf_and_quoted_newlines_load(tiny_exports, tmp_path):
    text = (tiny_exports / "Account.csv").read_text().replace("\n", "\r\n").replace("Acme", '"Acme\nGmbH"')
    (tiny_exports / "Account.csv").write_bytes(b"\xef\xbb\xbf" + text.encode())
    con, res = _load(tiny_exports, tmp_path)
    assert res.loaded["Account.csv"] == len(ACCOUNTS)
    # the value is kept exactly as the file has it, embedded newline included
    assert _rows(con, "select name from raw.accounts where id = '001A'") == [("Acme\nGmbH",)]


def test_row_numbers_follow_file_order_on_a_large_file(tiny_exports, tmp_path):
    base = OPPORTUNITIES[0]
    rows = [{**base, "Id": f"006{i:07d}"} for i in range(200_000)]
    write_csv(tiny_exports / "Opportunity.csv", rows)
    con, _ = _load(tiny_exports, tmp_path)
    bad = _rows(con, "select count(*) from raw.opportunities where cast(substr(id, 4) as bigint) + 1 <> _row_number")
    assert bad == [(0,)]


# Incremental loads: a second night applies only the difference, and raw ends as a full load would.

DATA_COLS = "* exclude (_run_id, _loaded_at)"


def _same_as_full_load(con, exports, tmp_path, table="opportunities"):
    """raw.<table> equals a full load of the same files into a fresh warehouse (load metadata aside)."""
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    full, _ = _load(exports, fresh, run_id="full")
    full.close()
    con.execute(f"attach '{fresh / 'wh.duckdb'}' as fresh (read_only)")
    try:
        for a, b in ((f"raw.{table}", f"fresh.raw.{table}"), (f"fresh.raw.{table}", f"raw.{table}")):
            assert _rows(con, f"select count(*) from (select {DATA_COLS} from {a} except all "
                              f"select {DATA_COLS} from {b})") == [(0,)]
        for a, b in ((f"quarantine.{table}", f"fresh.quarantine.{table}"),
                     (f"fresh.quarantine.{table}", f"quarantine.{table}")):
            assert _rows(con, f"select count(*) from (select {DATA_COLS} from {a} except all "
                              f"select {DATA_COLS} from {b})") == [(0,)]
    finally:
        con.execute("detach fresh")


def test_second_night_applies_new_changed_and_deleted_rows_only(tiny_exports, tmp_path):
    con, first = _load(tiny_exports, tmp_path, run_id="r1")
    assert first.mode["Opportunity.csv"] == "full"
    rows = [dict(o) for o in OPPORTUNITIES]
    del rows[0]  # 006A deleted: every later row moves up one line
    rows[1]["StageName"] = "Proposal/Price Quote"  # 006C changed
    rows.append({**OPPORTUNITIES[2], "Id": "006E", "Amount": "1,500"})  # new
    write_csv(tiny_exports / "Opportunity.csv", rows)
    _, res = _load(tiny_exports, tmp_path, run_id="r2", con=con)
    assert res.mode["Opportunity.csv"] == "incremental"
    assert res.changes["Opportunity.csv"] == {"inserted": 1, "updated": 1, "deleted": 1}
    assert res.changes["Account.csv"] == {"inserted": 0, "updated": 0, "deleted": 0}
    got = _rows(con, "select id, stage_name, amount, _row_number, _run_id from raw.opportunities order by id")
    assert got == [
        ("006B", "Closed Lost", "500.000000", 1, "r1"),  # unchanged: keeps its run, follows the new file's line
        ("006C", "Proposal/Price Quote", "2000.000000", 2, "r2"),
        ("006D", "Closed Won", "3000.000000", 3, "r1"),
        ("006E", "Qualification", "1500.000000", 4, "r2"),
    ]
    assert _rows(con, "select table_name, id, change from raw._changes order by id") == [
        ("opportunities", "006A", "delete"), ("opportunities", "006C", "update"), ("opportunities", "006E", "insert"),
    ]
    assert _rows(con, "select load_mode, inserted, updated, deleted from raw._loads "
                      "where run_id = 'r2' and table_name = 'opportunities'") == [("incremental", 1, 1, 1)]
    _same_as_full_load(con, tiny_exports, tmp_path)


def test_unchanged_night_changes_nothing(tiny_exports, tmp_path):
    con, _ = _load(tiny_exports, tmp_path, run_id="r1")
    _, res = _load(tiny_exports, tmp_path, run_id="r2", con=con)
    assert all(m == "incremental" for n, m in res.mode.items() if n not in ("quotas.csv",) and res.loaded[n])
    assert res.mode["quotas.csv"] == "full"  # no key: always replaced (small)
    assert res.changes["Opportunity.csv"] == {"inserted": 0, "updated": 0, "deleted": 0}
    assert _rows(con, "select distinct _run_id from raw.opportunities") == [("r1",)]
    assert _rows(con, "select count(*) from raw._changes") == [(0,)]


def test_unchanged_row_that_a_new_earlier_row_repeats_goes_to_quarantine(tiny_exports, tmp_path):
    # An unchanged row skips the checks on an incremental night, but not the duplicate-key check.
    con, _ = _load(tiny_exports, tmp_path, run_id="r1")
    rows = [{**OPPORTUNITIES[2], "StageName": "Proposal/Price Quote"}] + [dict(o) for o in OPPORTUNITIES]
    write_csv(tiny_exports / "Opportunity.csv", rows)  # a second 006C, now first in the file
    _, res = _load(tiny_exports, tmp_path, run_id="r2", con=con)
    assert res.mode["Opportunity.csv"] == "incremental"
    assert _rows(con, "select id, _row_number, _reason from quarantine.opportunities") == [("006C", 4, "duplicate_id")]
    assert _rows(con, "select stage_name, _row_number, _run_id from raw.opportunities where id = '006C'") == [
        ("Proposal/Price Quote", 1, "r2")
    ]
    _same_as_full_load(con, tiny_exports, tmp_path)


def test_row_whose_text_changes_but_not_its_values_keeps_its_run(tiny_exports, tmp_path):
    con, _ = _load(tiny_exports, tmp_path, run_id="r1")
    rows = [dict(o) for o in OPPORTUNITIES]
    rows[0]["Amount"] = "1,000.00"  # same number, other spelling
    write_csv(tiny_exports / "Opportunity.csv", rows)
    _, res = _load(tiny_exports, tmp_path, run_id="r2", con=con)
    assert res.changes["Opportunity.csv"] == {"inserted": 0, "updated": 0, "deleted": 0}
    assert _rows(con, "select amount, _run_id from raw.opportunities where id = '006A'") == [("1000.000000", "r1")]
    # its fingerprint follows the new text: a third night with the same file finds the row unchanged
    rows[0]["Amount"] = "1,000.00"
    _, res = _load(tiny_exports, tmp_path, run_id="r3", con=con)
    assert res.changes["Opportunity.csv"] == {"inserted": 0, "updated": 0, "deleted": 0}
    _same_as_full_load(con, tiny_exports, tmp_path)


def test_rows_moving_into_and_out_of_quarantine(tiny_exports, tmp_path):
    rows = [dict(o) for o in OPPORTUNITIES]
    rows[3]["Amount"] = "-5"  # 006D quarantined on night 1
    write_csv(tiny_exports / "Opportunity.csv", rows)
    con, first = _load(tiny_exports, tmp_path, run_id="r1")
    assert first.quarantined["Opportunity.csv"] == 1
    rows[3]["Amount"] = "3000.00"  # fixed on night 2
    rows[1]["CloseDate"] = "31/02/2024"  # 006B broken on night 2
    write_csv(tiny_exports / "Opportunity.csv", rows)
    _, res = _load(tiny_exports, tmp_path, run_id="r2", con=con)
    assert res.mode["Opportunity.csv"] == "incremental"
    assert res.changes["Opportunity.csv"] == {"inserted": 1, "updated": 0, "deleted": 1}
    assert _rows(con, "select id from raw.opportunities order by id") == [("006A",), ("006C",), ("006D",)]
    assert _rows(con, "select id, _row_number, _reason, _value, _run_id from quarantine.opportunities") == [
        ("006B", 2, "unparseable_date", "31/02/2024", "r2"),
    ]
    _same_as_full_load(con, tiny_exports, tmp_path)


def test_schema_change_or_full_refresh_reloads_the_whole_table(tiny_exports, tmp_path):
    con, _ = _load(tiny_exports, tmp_path, run_id="r1")
    rows = [{**o, "Deal_Score__c": "7"} for o in OPPORTUNITIES]  # a new column
    write_csv(tiny_exports / "Opportunity.csv", rows)
    _, res = _load(tiny_exports, tmp_path, run_id="r2", con=con)
    assert res.mode["Opportunity.csv"] == "full" and res.mode["Account.csv"] == "incremental"
    assert res.changes["Opportunity.csv"] == {"inserted": 0, "updated": 4, "deleted": 0}
    assert _rows(con, "select distinct _run_id, deal_score__c from raw.opportunities") == [("r2", "7")]
    _same_as_full_load(con, tiny_exports, tmp_path)
    _, res = _load(tiny_exports, tmp_path, run_id="r3", con=con, full_refresh=True)
    assert set(res.mode.values()) == {"full"}
    assert _rows(con, "select distinct _run_id from raw.accounts") == [("r3",)]
    _, res = _load(tiny_exports, tmp_path, run_id="r4", con=con)  # the default: only what changed
    assert res.mode["Account.csv"] == "incremental"
    res = load_raw(con, tmp_path / "archive" / "r4", archive_exports(tiny_exports, tmp_path / "archive" / "r4"),
                   "r5", NOW, full_refresh=True)
    assert res.mode["Account.csv"] == "full"


def test_a_file_gone_empties_the_table_and_lists_its_keys_as_deleted(tiny_exports, tmp_path):
    (tiny_exports / "Lead.csv").write_text("Id,OwnerId,CreatedDate\n00QA,005B,2026-10-01T10:00:00Z\n")
    con, _ = _load(tiny_exports, tmp_path, run_id="r1")
    (tiny_exports / "Lead.csv").unlink()
    _, res = _load(tiny_exports, tmp_path, run_id="r2", con=con)
    assert res.loaded["Lead.csv"] == 0 and res.changes["Lead.csv"]["deleted"] == 1
    assert _rows(con, "select id, change from raw._changes where table_name = 'leads'") == [("00QA", "delete")]


def test_a_record_starting_with_hash_is_a_record_not_a_comment(tiny_exports, tmp_path):
    """DuckDB's CSV sniffer takes '#' for a comment marker unless told otherwise: no record may vanish."""
    import csv

    rows = [dict(r) for r in ACCOUNTS]
    rows[0]["Id"] = "#" + rows[0]["Id"]
    with (tiny_exports / "Account.csv").open("w", newline="") as fh:  # minimal quoting, as most tools write
        w = csv.DictWriter(fh, fieldnames=list(rows[0]), lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
    assert (tiny_exports / "Account.csv").read_text().splitlines()[1].startswith("#")
    con, res = _load(tiny_exports, tmp_path)
    assert res.read["Account.csv"] == len(rows)
    assert res.loaded["Account.csv"] + res.quarantined["Account.csv"] == len(rows)
    ids = {r[0] for r in con.execute("select id from raw.accounts").fetchall()}
    assert rows[0]["Id"] in ids


def test_big_files_load_through_compressed_work_tables_with_the_same_result(tiny_exports, tmp_path):
    # Files above the setting load_scratch_bytes work in the database's `_load` schema (compressed on disk)
    # instead of in-memory temp tables, which spill uncompressed: same rows, and nothing left behind.
    every_file_large = Settings(load_scratch_bytes=0)
    con, res = _load(tiny_exports, tmp_path, run_id="r1", settings=every_file_large)
    assert res.loaded["Opportunity.csv"] == 4 and res.mode["Opportunity.csv"] == "full"
    rows = [dict(o) for o in OPPORTUNITIES]
    rows[1]["StageName"] = "Proposal/Price Quote"
    rows.append({**OPPORTUNITIES[0], "Id": "006A"})  # a repeated key, after the first
    write_csv(tiny_exports / "Opportunity.csv", rows)
    _, res = _load(tiny_exports, tmp_path, run_id="r2", con=con, settings=every_file_large)
    assert res.mode["Opportunity.csv"] == "incremental"
    assert res.changes["Opportunity.csv"] == {"inserted": 0, "updated": 1, "deleted": 0}
    assert _rows(con, "select _row_number, _reason from quarantine.opportunities") == [(5, "duplicate_id")]
    assert _rows(con, "select count(*) from information_schema.schemata where schema_name = '_load'") == [(0,)]
    assert _rows(con, "select current_schema()") == [("main",)]
    _same_as_full_load(con, tiny_exports, tmp_path)
