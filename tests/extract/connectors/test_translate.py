"""Connector tables into the export contract: current rows, versions, deletions, errors, and the loader after it."""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest

from salesos.contract import EXPORTS
from salesos.extract.connectors import (
    AIRBYTE_SALESFORCE,
    FIVETRAN_SALESFORCE,
    SOURCES,
    UnknownSourceError,
    archive_source,
    connector_for,
)
from salesos.extract.connectors.translate import (
    LANDED_DIR,
    ConnectorTableError,
    archive_connector,
    read_translations,
)
from salesos.extract.landing import ExportError, read_manifest
from salesos.extract.load import load_raw
from tests.conftest import write_csv

NOW = datetime(2026, 11, 1, tzinfo=UTC)
END = "9999-12-31 23:59:59"


def _versions() -> list[dict]:
    """o1: three versions (a stage change, a change of an untracked field, a win); o2: deleted in the CRM;
    o3: one active version, soft-deleted by the connector."""
    base = {"account_id": "a1", "owner_id": "u1", "name": "Deal", "probability": "10", "forecast_category": "Pipeline",
            "created_date": "2026-09-01 10:00:00", "is_deleted": "false", "_fivetran_synced": "2026-10-31 02:00:00"}
    return [
        {**base, "id": "o1", "_fivetran_start": "2026-09-01 10:00:00", "_fivetran_end": "2026-09-10 09:59:59",
         "_fivetran_active": "false", "stage_name": "Prospecting", "amount": "1000", "close_date": "2026-11-30",
         "is_closed": "false", "is_won": "false", "next_step": "call"},
        {**base, "id": "o1", "_fivetran_start": "2026-09-10 10:00:00", "_fivetran_end": "2026-09-20 09:59:59",
         "_fivetran_active": "false", "stage_name": "Negotiation", "amount": "1200", "close_date": "2026-11-30",
         "is_closed": "false", "is_won": "false", "next_step": "call"},
        {**base, "id": "o1", "_fivetran_start": "2026-09-20 10:00:00", "_fivetran_end": "2026-10-05 09:59:59",
         "_fivetran_active": "false", "stage_name": "Negotiation", "amount": "1200", "close_date": "2026-11-30",
         "is_closed": "false", "is_won": "false", "next_step": "send contract"},
        {**base, "id": "o1", "_fivetran_start": "2026-10-05 10:00:00", "_fivetran_end": END,
         "_fivetran_active": "true", "stage_name": "Signed", "amount": "1200", "close_date": "2026-10-05",
         "is_closed": "true", "is_won": "true", "next_step": ""},
        {**base, "id": "o2", "_fivetran_start": "2026-09-02 10:00:00", "_fivetran_end": "2026-10-01 00:00:00",
         "_fivetran_active": "false", "stage_name": "Prospecting", "amount": "500", "close_date": "2026-12-31",
         "is_closed": "false", "is_won": "false", "next_step": ""},
        {**base, "id": "o3", "_fivetran_start": "2026-09-03 10:00:00", "_fivetran_end": END,
         "_fivetran_active": "true", "stage_name": "Prospecting", "amount": "700", "close_date": "2026-12-31",
         "is_closed": "false", "is_won": "false", "next_step": "", "_fivetran_deleted": "true"},
    ]


def _landing(tmp_path: Path, opportunity_versions: list[dict] | None = None) -> Path:
    """A Fivetran landing: opportunity in history mode, users with a soft-deleted one, quotas beside them."""
    d = tmp_path / "landed"
    d.mkdir()
    rows = opportunity_versions if opportunity_versions is not None else _versions()
    fields = sorted({k for r in rows for k in r})
    write_csv(d / "opportunity.csv", [{k: r.get(k, "") for k in fields} for r in rows], fields)
    write_csv(d / "account.csv", [{"id": "a1", "name": "Acme", "is_deleted": "false", "_fivetran_synced": "2026-10-31"}])
    write_csv(d / "user.csv", [
        {"id": "u1", "name": "Ann", "is_active": "true", "_fivetran_deleted": "false", "_fivetran_synced": "2026-10-31"},
        {"id": "u2", "name": "Bob", "is_active": "true", "_fivetran_deleted": "true", "_fivetran_synced": "2026-10-31"},
    ])
    write_csv(d / "quotas.csv", [{"owner_id": "u1", "period_start": "2026-10-01", "quota_amount": "1000"}])
    return d


def _read(path: Path) -> list[dict]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_sources_list_exports_first_then_every_connector() -> None:
    assert SOURCES == ("exports", "fivetran-salesforce", "airbyte-salesforce", "fivetran-hubspot", "hubspot-exports")
    assert connector_for("exports") is None
    assert connector_for("fivetran-salesforce") is FIVETRAN_SALESFORCE
    with pytest.raises(UnknownSourceError, match="unknown source 'hubspot'; choose one of exports"):
        connector_for("hubspot")


def test_every_connector_names_only_contract_tables() -> None:
    contract = {e.table for e in EXPORTS}
    for c in (FIVETRAN_SALESFORCE, AIRBYTE_SALESFORCE):
        assert set(c.tables) <= contract
        assert {"opportunities", "accounts", "users", "quotas"} <= set(c.tables)


def test_history_mode_opportunity_becomes_current_rows_and_history(tmp_path: Path) -> None:
    archive = tmp_path / "archive" / "r1"
    archived = archive_connector(FIVETRAN_SALESFORCE, _landing(tmp_path), archive)
    assert {a.filename for a in archived} == {"Opportunity.csv", "OpportunityHistory.csv", "Account.csv", "User.csv",
                                              "quotas.csv"}
    current = _read(archive / "Opportunity.csv")
    # o2 has no active version (deleted in the CRM); o3 is active but the connector marks it deleted
    assert [(r["id"], r["stage_name"], r["is_deleted"]) for r in current] == [
        ("o1", "Signed", "false"), ("o3", "Prospecting", "true")
    ]
    assert current[0]["SyncedAt"] == "2026-10-31 02:00:00"
    assert (current[0]["landed_table"], current[0]["landed_row"]) == ("opportunity", "4")
    # the untouched landed file is kept byte for byte
    assert (archive / LANDED_DIR / "opportunity.csv").read_bytes() == (tmp_path / "landed" / "opportunity.csv").read_bytes()


def test_history_from_versions_keeps_a_row_per_tracked_change(tmp_path: Path) -> None:
    archive = tmp_path / "archive" / "r1"
    landing = _landing(tmp_path)
    (landing / "opportunity.csv").rename(landing / "opportunity_history.csv")  # as the package's seeds name it
    archived = archive_connector(FIVETRAN_SALESFORCE, landing, archive)
    assert {a.filename for a in archived} >= {"Opportunity.csv", "OpportunityHistory.csv"}
    history = _read(archive / "OpportunityHistory.csv")
    # o1's third version changed only next_step: no history row for it
    assert [(r["OpportunityId"], r["StageName"], r["Amount"], r["CreatedDate"]) for r in history] == [
        ("o1", "Prospecting", "1000", "2026-09-01 10:00:00"),
        ("o1", "Negotiation", "1200", "2026-09-10 10:00:00"),
        ("o1", "Signed", "1200", "2026-10-05 10:00:00"),
        ("o2", "Prospecting", "500", "2026-09-02 10:00:00"),
        ("o3", "Prospecting", "700", "2026-09-03 10:00:00"),
    ]
    assert history[0]["Id"] == "o1@2026-09-01 10:00:00"
    assert [r["IsDeleted"] for r in history] == ["false"] * 4 + ["true"]
    assert [(r["IsClosed"], r["IsWon"]) for r in history][2] == ("true", "true")
    # with no current opportunity table landed, the active versions are the current rows
    assert [r["id"] for r in _read(archive / "Opportunity.csv")] == ["o1", "o3"]
    translation = read_translations(archive)["translation"]["opportunity_history"]
    assert translation["landed_rows"] == 6 and translation["written_rows"] == 2 and translation["history_rows"] == 5


def test_a_history_mode_opportunity_table_gives_the_history_where_none_is_landed(tmp_path: Path) -> None:
    archive = tmp_path / "archive" / "r1"
    archive_connector(FIVETRAN_SALESFORCE, _landing(tmp_path), archive)
    history = _read(archive / "OpportunityHistory.csv")
    assert [(r["OpportunityId"], r["StageName"]) for r in history] == [
        ("o1", "Prospecting"), ("o1", "Negotiation"), ("o1", "Signed"), ("o2", "Prospecting"), ("o3", "Prospecting")
    ]
    # a landed OpportunityHistory (Salesforce's object) wins over the versions
    landing = tmp_path / "landed"
    write_csv(landing / "opportunity_history.csv", [{
        "id": "h1", "opportunity_id": "o1", "stage_name": "Prospecting", "created_date": "2026-09-01 10:00:00"}])
    archive_connector(FIVETRAN_SALESFORCE, landing, archive)
    assert [r["id"] for r in _read(archive / "OpportunityHistory.csv")] == ["h1"]


def test_a_history_mode_table_without_active_flag_keeps_each_ids_latest_start(tmp_path: Path) -> None:
    rows = [{k: v for k, v in r.items() if k != "_fivetran_active"} for r in _versions()]
    archive = tmp_path / "archive" / "r1"
    archive_connector(FIVETRAN_SALESFORCE, _landing(tmp_path, rows), archive)
    assert [(r["id"], r["stage_name"]) for r in _read(archive / "Opportunity.csv")] == [
        ("o1", "Signed"), ("o2", "Prospecting"), ("o3", "Prospecting")
    ]


def test_a_deleted_user_is_kept_inactive_so_its_deals_keep_their_owner(tmp_path: Path) -> None:
    archive = tmp_path / "archive" / "r1"
    archive_connector(FIVETRAN_SALESFORCE, _landing(tmp_path), archive)
    assert [(r["id"], r["is_active"]) for r in _read(archive / "User.csv")] == [("u1", "true"), ("u2", "false")]


def test_a_history_mode_table_without_an_id_column_is_one_line_naming_table_and_column(tmp_path: Path) -> None:
    rows = [{k: v for k, v in r.items() if k != "id"} for r in _versions()]
    with pytest.raises(ConnectorTableError) as exc:
        archive_connector(FIVETRAN_SALESFORCE, _landing(tmp_path, rows), tmp_path / "archive" / "r1")
    message = str(exc.value)
    assert "\n" not in message
    assert message.startswith("Fivetran Salesforce table opportunity (opportunity.csv): a history-mode table "
                              "needs an id column")
    assert not (tmp_path / "archive" / "r1").exists()  # nothing archived half-way


def test_a_connector_table_missing_a_required_column_is_one_line_naming_table_and_column(tmp_path: Path) -> None:
    rows = [{k: v for k, v in r.items() if k != "stage_name"} for r in _versions()]
    with pytest.raises(ConnectorTableError) as exc:
        archive_connector(FIVETRAN_SALESFORCE, _landing(tmp_path, rows), tmp_path / "archive" / "r1")
    message = str(exc.value)
    assert "\n" not in message
    assert message.startswith("Fivetran Salesforce table opportunity (opportunity.csv): required column stage_name "
                              "(Opportunity.StageName) is missing")


def test_a_missing_required_table_names_it_and_the_setting(tmp_path: Path) -> None:
    landing = _landing(tmp_path)
    (landing / "account.csv").unlink()
    with pytest.raises(ExportError, match=r"table account \(the contract's Account\) is not in .*connector_tables"):
        archive_connector(FIVETRAN_SALESFORCE, landing, tmp_path / "archive" / "r1")


def test_renamed_tables_are_read_under_their_landed_names_and_a_typo_is_refused(tmp_path: Path) -> None:
    landing = _landing(tmp_path)
    (landing / "opportunity.csv").rename(landing / "sf_opportunity_data.csv")
    archive = tmp_path / "archive" / "r1"
    archive_connector(FIVETRAN_SALESFORCE, landing, archive, {"opportunity": "sf_opportunity_data"})
    assert (archive / LANDED_DIR / "sf_opportunity_data.csv").is_file()
    with pytest.raises(ExportError, match="renames opportunty, not a Fivetran Salesforce table"):
        archive_connector(FIVETRAN_SALESFORCE, landing, archive, {"opportunty": "sf_opportunity_data"})


def test_parquet_files_and_a_duckdb_schema_give_the_same_files_as_csv(tmp_path: Path) -> None:
    landing = _landing(tmp_path)
    csv_archive = tmp_path / "a_csv"
    archive_connector(FIVETRAN_SALESFORCE, landing, csv_archive)
    parquet = tmp_path / "parquet"
    parquet.mkdir()
    db = tmp_path / "landed.duckdb"
    con = duckdb.connect(str(db))
    con.execute("create schema salesforce")
    for f in landing.iterdir():
        rel = f"read_csv('{f}', all_varchar=true)"
        con.execute(f"copy (select * from {rel}) to '{parquet / (f.stem + '.parquet')}' (format parquet)")
        con.execute(f'create table salesforce."{f.stem}" as select * from {rel}')
    con.close()
    pq_archive, db_archive = tmp_path / "a_pq", tmp_path / "a_db"
    archive_connector(FIVETRAN_SALESFORCE, parquet, pq_archive)
    archive_connector(FIVETRAN_SALESFORCE, db, db_archive, schema="salesforce")
    for name in ("Opportunity.csv", "Account.csv", "User.csv", "quotas.csv"):
        expected = _read(csv_archive / name)
        assert _read(pq_archive / name) == expected, name
        assert _read(db_archive / name) == expected, name
    assert (db_archive / LANDED_DIR / "opportunity.parquet").is_file()
    assert json.loads((db_archive / "landed.json").read_text())["tables"][0]["source"].endswith(
        "landed.duckdb:salesforce.opportunity")


def test_airbyte_tables_keep_api_names_and_sync_time(tmp_path: Path) -> None:
    d = tmp_path / "airbyte"
    d.mkdir()
    meta = {"_airbyte_raw_id": "x", "_airbyte_extracted_at": "2026-10-31 03:00:00", "_airbyte_meta": "{}"}
    write_csv(d / "Opportunity.csv", [{
        "Id": "o1", "AccountId": "a1", "OwnerId": "u1", "StageName": "Prospecting", "Amount": "10",
        "CloseDate": "2026-12-01", "CreatedDate": "2026-09-01T00:00:00Z", "IsClosed": "false", "IsWon": "false",
        "IsDeleted": "false", **meta}])
    write_csv(d / "Account.csv", [{"Id": "a1", "Name": "Acme", **meta}])
    write_csv(d / "User.csv", [{"Id": "u1", "Name": "Ann", "IsActive": "true", **meta}])
    write_csv(d / "quotas.csv", [{"owner_id": "u1", "period_start": "2026-10-01", "quota_amount": "1000"}])
    archive = tmp_path / "archive"
    archived = archive_source("airbyte-salesforce", d, archive)
    assert {a.filename for a in archived} == {"Opportunity.csv", "Account.csv", "User.csv", "quotas.csv"}
    assert _read(archive / "Opportunity.csv")[0]["SyncedAt"] == "2026-10-31 03:00:00"


def test_the_loader_loads_the_translation_and_quarantine_names_the_landed_row(tmp_path: Path) -> None:
    rows = _versions()
    rows[3]["amount"] = "lots"  # o1's active version, data row 4 of the landed table
    archive = tmp_path / "archive" / "r1"
    files = archive_connector(FIVETRAN_SALESFORCE, _landing(tmp_path, rows), archive)
    assert read_manifest(archive) == files  # checksums of the translated files, as the loader's runs check them
    con = duckdb.connect(str(tmp_path / "wh.duckdb"))
    result = load_raw(con, archive, files, "r1", NOW)
    assert result.loaded["Opportunity.csv"] == 1 and result.quarantined["Opportunity.csv"] == 1
    assert "landed_row" not in ",".join(result.extra_columns.get("Opportunity.csv", []))
    q = con.execute("select _reason, _field, _value, landed_table, landed_row from quarantine.opportunities").fetchall()
    assert q == [("unparseable_number", "amount", "lots", "opportunity", "4")]
    raw = con.execute("select id, synced_at, is_deleted from raw.opportunities").fetchall()
    assert raw == [("o3", "2026-10-31 02:00:00", "true")]


def test_the_sources_page_names_every_connector_table() -> None:
    """docs/export-contract.md's Sources table follows the Connector specs (their one definition)."""
    text = (Path(__file__).resolve().parents[3] / "docs" / "export-contract.md").read_text(encoding="utf-8")
    section = text[text.index("## Sources"):text.index("## How a run reads them")]
    for name in SOURCES:
        assert f"`{name}`" in section
    rows = [line for line in section.splitlines() if line.startswith("| ") and "`" in line]
    for e in EXPORTS:
        for c in (FIVETRAN_SALESFORCE, AIRBYTE_SALESFORCE):
            if e.table in c.tables:
                row = next(r for r in rows if e.object_name in r.split("|")[1].split("(")[0].replace(",", " ").split())
                assert f"`{c.tables[e.table]}`" in row, (c.name, e.table)


def test_a_postgres_schema_gives_the_same_files_as_csv(tmp_path: Path) -> None:
    """PostgreSQL on 127.0.0.1:5432 (SALESOS_TEST_PG_*; skipped when unreachable), database test."""
    import os
    import uuid

    psycopg2 = pytest.importorskip("psycopg2")
    host = os.environ.get("SALESOS_TEST_PG_HOST", "127.0.0.1")
    port = os.environ.get("SALESOS_TEST_PG_PORT", "5432")
    user = os.environ.get("SALESOS_TEST_PG_USER", "postgres")
    dsn = f"postgresql://{user}@{host}:{port}/test"
    try:
        pg = psycopg2.connect(dsn, connect_timeout=3)
    except psycopg2.OperationalError:
        pytest.skip("PostgreSQL is not reachable")
    landing = _landing(tmp_path)
    schema = f"salesforce_{uuid.uuid4().hex[:8]}"
    pg.autocommit = True
    try:
        with pg.cursor() as cur:
            cur.execute(f"create schema {schema}")
            for f in landing.iterdir():
                header = f.read_text(encoding="utf-8").splitlines()[0].split(",")
                # the connector's own types for its bookkeeping columns, text for the rest
                types = {"_fivetran_active": "boolean", "_fivetran_deleted": "boolean",
                         "_fivetran_synced": "timestamp", "_fivetran_start": "timestamp", "_fivetran_end": "timestamp"}
                cols = ", ".join(f'"{h}" {types.get(h, "text")}' for h in header)
                cur.execute(f'create table {schema}."{f.stem}" ({cols})')
                with f.open(encoding="utf-8") as fh:
                    cur.copy_expert(f'copy {schema}."{f.stem}" from stdin with (format csv, header)', fh)
        csv_archive, pg_archive = tmp_path / "a_csv", tmp_path / "a_pg"
        archive_connector(FIVETRAN_SALESFORCE, landing, csv_archive)
        archive_connector(FIVETRAN_SALESFORCE, dsn, pg_archive, schema=schema)
        for name in ("Opportunity.csv", "Account.csv", "User.csv", "quotas.csv"):
            expected, got = _read(csv_archive / name), _read(pg_archive / name)
            # PostgreSQL writes its booleans as t/f and a date in a timestamp column with its time: same values
            for rows in (expected, got):
                for r in rows:
                    for k in ("_fivetran_active", "_fivetran_deleted"):
                        if k in r:
                            r[k] = {"t": "true", "f": "false"}.get(r[k], r[k])
                    for k in ("_fivetran_synced", "SyncedAt"):
                        if len(r.get(k, "")) == 10:  # a date landed in a timestamp column
                            r[k] += " 00:00:00"
            assert got == expected, name
        assert "password" not in (pg_archive / "landed.json").read_text()
    finally:
        with pg.cursor() as cur:
            cur.execute(f"drop schema if exists {schema} cascade")
        pg.close()
