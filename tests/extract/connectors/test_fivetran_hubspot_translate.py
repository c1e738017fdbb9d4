"""HubSpot's landed tables into the contract's files: stages and their flags, history, engagements, errors."""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest

from salesos.extract.connectors import FIVETRAN_HUBSPOT, archive_source, connector_for
from salesos.extract.connectors.fivetran_hubspot import FEEDS, REQUIRED, TABLES
from salesos.extract.connectors.translate import ConnectorTableError, archive_connector, read_translations
from salesos.extract.landing import ExportError, read_manifest
from salesos.extract.load import load_raw
from tests.conftest import write_csv

NOW = datetime(2026, 11, 1, tzinfo=UTC)
SYNC = {"_fivetran_synced": "2026-10-31 02:00:00"}


def _deal(deal_id: str, stage: str, amount: str, closedate: str = "2026-10-15", **extra: str) -> dict[str, str]:
    return {"deal_id": deal_id, "is_deleted": "false", "deal_pipeline_id": "", "deal_pipeline_stage_id": stage,
            "owner_id": "101", "property_dealname": f"Deal {deal_id}", "property_amount": amount,
            "property_closedate": closedate, "property_createdate": "2026-09-01 10:00:00", **SYNC, **extra}


def _landing(tmp_path: Path, **replace: list[dict[str, str]]) -> Path:
    """Two pipelines whose stages share a label ("Closed won") and have labels of their own."""
    d = tmp_path / "hubspot"
    d.mkdir(exist_ok=True)
    tables: dict[str, list[dict[str, str]]] = {
        "deal_pipeline": [
            {"pipeline_id": "sales", "_fivetran_deleted": "false", "active": "true", "display_order": "0",
             "label": "Sales"},
            {"pipeline_id": "renewals", "_fivetran_deleted": "false", "active": "true", "display_order": "1",
             "label": "Renewals"},
        ],
        "deal_pipeline_stage": [
            # deliberately not in funnel order, and the renewals pipeline first
            {"_fivetran_deleted": "false", "active": "true", "closed_won": "true", "is_closed": "true",
             "display_order": "1", "probability": "1.0", "stage_id": "r_won", "label": "Closed won",
             "pipeline_id": "renewals"},
            {"_fivetran_deleted": "false", "active": "true", "closed_won": "false", "is_closed": "false",
             "display_order": "0", "probability": "0.5", "stage_id": "r_due", "label": "Renewal due",
             "pipeline_id": "renewals"},
            {"_fivetran_deleted": "false", "active": "true", "closed_won": "false", "is_closed": "true",
             "display_order": "2", "probability": "0.0", "stage_id": "s_lost", "label": "Closed lost",
             "pipeline_id": "sales"},
            {"_fivetran_deleted": "false", "active": "true", "closed_won": "true", "is_closed": "true",
             "display_order": "1", "probability": "1.0", "stage_id": "s_won", "label": "Closed won",
             "pipeline_id": "sales"},
            {"_fivetran_deleted": "true", "active": "true", "closed_won": "false", "is_closed": "false",
             "display_order": "0", "probability": "0.2", "stage_id": "appointmentscheduled",
             "label": "Appointment scheduled", "pipeline_id": "sales"},
        ],
        "deal": [
            _deal("d1", "s_won", "1000"),
            _deal("d2", "s_lost", "500"),
            _deal("d3", "appointmentscheduled", "700", "2026-12-31"),
            _deal("d4", "r_due", "300", "2026-12-31", is_deleted="true"),
            _deal("d5", "r_won", "900"),
        ],
        "deal_company": [
            {"company_id": "c9", "deal_id": "d1", "type_id": "341", "category": "HUBSPOT_DEFINED"},
            {"company_id": "c2", "deal_id": "d1", "type_id": "5", "category": "HUBSPOT_DEFINED"},
            {"company_id": "c1", "deal_id": "d2", "type_id": "341", "category": "HUBSPOT_DEFINED"},
        ],
        "deal_stage": [
            {"_fivetran_start": "2026-09-01 10:00:00", "deal_id": "d1", "_fivetran_active": "false",
             "_fivetran_end": "2026-10-15 09:00:00", **SYNC, "date_entered": "2026-09-01 10:00:00",
             "value": "appointmentscheduled"},
            {"_fivetran_start": "2026-10-15 09:00:00", "deal_id": "d1", "_fivetran_active": "true",
             "_fivetran_end": "9999-12-31 23:59:59", **SYNC, "date_entered": "2026-10-15 09:00:00",
             "value": "s_won"},
            {"_fivetran_start": "2026-09-02 10:00:00", "deal_id": "gone", "_fivetran_active": "true",
             "_fivetran_end": "9999-12-31 23:59:59", **SYNC, "date_entered": "2026-09-02 10:00:00",
             "value": "s_lost"},
        ],
        "owner": [
            {"owner_id": "101", **SYNC, "created_at": "2025-01-01 00:00:00", "email": "ann@example.com",
             "first_name": "Ann", "last_name": "Lee", "is_active": "true"},
            {"owner_id": "102", **SYNC, "created_at": "2025-01-01 00:00:00", "email": "bob@example.com",
             "first_name": "", "last_name": "", "is_active": "true", "_fivetran_deleted": "true"},
        ],
        "company": [
            {"id": "c1", "is_deleted": "false", **SYNC, "property_name": "Acme", "property_industry": "Retail",
             "property_country": "Germany", "property_numberofemployees": "120", "property_annualrevenue": "5000000"},
            {"id": "c2", "is_deleted": "false", **SYNC, "property_name": "", "property_domain": "globex.example",
             "property_industry": "", "property_country": "", "property_numberofemployees": "",
             "property_annualrevenue": ""},
        ],
        "team": [{"id": "t1", "name": "Hunters", **SYNC}, {"id": "t2", "name": "Farmers", **SYNC}],
        "owner_team": [{"owner_id": "101", "team_id": "t1", "is_team_primary": "false", **SYNC},
                       {"owner_id": "101", "team_id": "t2", "is_team_primary": "true", **SYNC},
                       {"owner_id": "102", "team_id": "t1", "is_team_primary": "false", **SYNC}],
        "engagement": [{"id": "e1", "type": "CALL", "owner_id": "102", **SYNC}],
        "engagement_deal": [{"deal_id": "d1", "engagement_id": "e1", **SYNC}],
        "engagement_call": [{"engagement_id": "e1", "_fivetran_deleted": "false", **SYNC,
                             "property_hs_createdate": "2026-09-03 10:00:00",
                             "property_hs_timestamp": "2026-09-03 10:00:00"}],
        "engagement_task": [{"engagement_id": "e2", "_fivetran_deleted": "true", **SYNC,
                             "property_hs_createdate": "2026-09-04 10:00:00",
                             "property_hs_timestamp": "2026-09-05 10:00:00", "property_hubspot_owner_id": "101",
                             "property_hs_task_status": "COMPLETED"}],
        "engagement_meeting": [{"engagement_id": "e3", **SYNC, "property_hubspot_owner_id": "101",
                                "start_time": "2026-09-06 10:00:00", "end_time": "2026-09-06 10:45:00",
                                "title": "Demo"}],
        "quotas": [{"owner_id": "101", "period_start": "2026-10-01", "quota_amount": "1000"}],
    }
    tables.update(replace)
    for name, rows in tables.items():
        fields = list(dict.fromkeys(k for r in rows for k in r))
        write_csv(d / f"{name}.csv", rows, fields)
    return d


def _read(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _by_id(path: Path) -> dict[str, dict[str, str]]:
    return {r["Id"]: r for r in _read(path)}


def test_fivetran_hubspot_is_a_source() -> None:
    assert connector_for("fivetran-hubspot") is FIVETRAN_HUBSPOT
    assert set(REQUIRED) <= set(TABLES) and set(FEEDS) == set(TABLES)


def test_deals_take_closed_and_won_from_their_stage_and_repeated_labels_name_their_pipeline(tmp_path: Path) -> None:
    archive = tmp_path / "archive"
    archive_source("fivetran-hubspot", _landing(tmp_path), archive)
    deals = _by_id(archive / "Opportunity.csv")
    got = {k: (v["StageName"], v["IsClosed"], v["IsWon"], v["IsDeleted"], v["AccountId"]) for k, v in deals.items()}
    assert got == {
        "d1": ("Sales / Closed won", "true", "true", "false", "c2"),  # the primary company (type 5)
        "d2": ("Closed lost", "true", "false", "false", "c1"),
        "d3": ("Appointment scheduled", "false", "false", "false", ""),
        "d4": ("Renewal due", "false", "false", "true", ""),
        "d5": ("Renewals / Closed won", "true", "true", "false", ""),
    }
    assert (deals["d3"]["Probability"], deals["d3"]["SyncedAt"]) == ("20.0", "2026-10-31 02:00:00")
    stages = _read(archive / "OpportunityStage.csv")
    # funnel order: the pipelines by their display order, then each one's stages by theirs
    assert [(s["Id"], s["SortOrder"]) for s in sorted(stages, key=lambda s: int(s["SortOrder"]))] == [
        ("appointmentscheduled", "1"), ("s_won", "2"), ("s_lost", "3"), ("r_due", "4"), ("r_won", "5")]
    by_id = {s["Id"]: s for s in stages}
    assert by_id["appointmentscheduled"]["IsActive"] == "false"  # _fivetran_deleted
    assert by_id["s_lost"]["MasterLabel"] == "Closed lost" and by_id["s_lost"]["DefaultProbability"] == "0.0"
    # every deal's stage is a stage of the export: none is decided from a name
    assert {d["StageName"] for d in deals.values()} <= {s["MasterLabel"] for s in stages}


def test_a_stage_closed_only_by_closed_won_is_closed_as_fivetran_stages_it(tmp_path: Path) -> None:
    """stg_hubspot__deal_pipeline_stage: is_closed = coalesce(is_closed, closed_won)."""
    stage = {"_fivetran_deleted": "false", "active": "true", "display_order": "0", "probability": "1.0",
             "pipeline_id": "sales"}
    stages = [{**stage, "stage_id": "won", "label": "Won", "is_closed": "", "closed_won": "true"},
              {**stage, "stage_id": "open", "label": "Open", "is_closed": "", "closed_won": ""}]
    deals = [_deal("d1", "won", "10"), _deal("d2", "open", "20")]
    archive = tmp_path / "archive"
    archive_connector(FIVETRAN_HUBSPOT, _landing(tmp_path, deal_pipeline_stage=stages, deal=deals), archive)
    assert {k: (v["IsClosed"], v["IsWon"]) for k, v in _by_id(archive / "Opportunity.csv").items()} == {
        "d1": ("true", "true"), "d2": ("false", "false")}


def test_an_engagement_without_its_own_time_takes_the_engagement_s(tmp_path: Path) -> None:
    calls = [{"engagement_id": "e1", "_fivetran_deleted": "false", **SYNC}]
    engagements = [{"id": "e1", "type": "CALL", "owner_id": "101", "timestamp": "2026-09-07 08:00:00",
                    "created_at": "2026-09-06 08:00:00", **SYNC}]
    archive = tmp_path / "archive"
    archive_connector(FIVETRAN_HUBSPOT, _landing(tmp_path, engagement_call=calls, engagement=engagements), archive)
    task = _by_id(archive / "Task.csv")["e1"]
    assert (task["OwnerId"], task["ActivityDate"], task["CreatedDate"]) == ("101", "2026-09-07", "2026-09-06 08:00:00")


def test_deal_stage_gives_history_and_a_deal_without_it_its_current_stage(tmp_path: Path) -> None:
    archive = tmp_path / "archive"
    archive_source("fivetran-hubspot", _landing(tmp_path), archive)
    history = _read(archive / "OpportunityHistory.csv")
    got = sorted((h["OpportunityId"], h["StageName"], h["CreatedDate"], h["IsClosed"], h["IsWon"]) for h in history)
    assert got == [
        ("d1", "Appointment scheduled", "2026-09-01 10:00:00", "false", "false"),
        ("d1", "Sales / Closed won", "2026-10-15 09:00:00", "true", "true"),
        # no deal_stage rows: the current stage, from the close date when closed, else the create date
        ("d2", "Closed lost", "2026-10-15", "true", "false"),
        ("d3", "Appointment scheduled", "2026-09-01 10:00:00", "false", "false"),
        ("d4", "Renewal due", "2026-09-01 10:00:00", "false", "false"),
        ("d5", "Renewals / Closed won", "2026-10-15", "true", "true"),
    ]
    notes = read_translations(archive)["translation"]
    assert notes["deal_stage"]["history_rows"] == 2
    assert notes["deal_stage"]["notes"][0].startswith("1 row(s) left out: of deals not in deal")
    assert notes["deal"]["history_rows"] == 4
    # tables read only to fill others' columns say so (the run summary prints it)
    assert (notes["deal_company"]["joined_into"], notes["deal_pipeline"]["joined_into"]) == (
        "Opportunity", "OpportunityStage")
    assert notes["deal"]["joined_into"] is None


def test_property_history_gives_amount_and_close_date_changes_with_the_stage_carried_forward(tmp_path: Path) -> None:
    def change(ts: str, name: str, value: str) -> dict[str, str]:
        return {"deal_id": "d1", "timestamp": ts, **SYNC, "source": "CRM_UI", "name": name, "value": value}

    properties = [
        change("2026-08-31 09:00:00", "amount", "800"),  # before the deal's first stage: only carried forward
        change("2026-09-20 10:00:00", "amount", "1000"),
        change("2026-09-25 10:00:00", "closedate", "1792800000000"),  # epoch ms: 2026-10-24
        change("2026-09-26 10:00:00", "dealname", "renamed"),  # not tracked
        change("2026-09-27 10:00:00", "amount", "1000"),  # no change
        {**change("2026-09-28 10:00:00", "amount", "50"), "deal_id": "gone"},
    ]
    archive = tmp_path / "archive"
    archive_connector(FIVETRAN_HUBSPOT, _landing(tmp_path, deal_property_history=properties), archive)
    history = [h for h in _read(archive / "OpportunityHistory.csv") if h["OpportunityId"] == "d1"]
    got = sorted((h["CreatedDate"], h["StageName"], h["Amount"], h["CloseDate"]) for h in history)
    assert got == [
        ("2026-09-01 10:00:00", "Appointment scheduled", "800", ""),
        ("2026-09-20 10:00:00", "Appointment scheduled", "1000", ""),
        ("2026-09-25 10:00:00", "Appointment scheduled", "1000", "2026-10-24"),
        ("2026-10-15 09:00:00", "Sales / Closed won", "1000", "2026-10-24"),
    ]
    notes = read_translations(archive)["translation"]["deal_property_history"]
    assert (notes["landed_rows"], notes["history_rows"]) == (6, 2)


def test_owners_companies_and_engagements(tmp_path: Path) -> None:
    archive = tmp_path / "archive"
    archive_source("fivetran-hubspot", _landing(tmp_path), archive)
    users = _by_id(archive / "User.csv")
    assert (users["101"]["Name"], users["101"]["IsActive"]) == ("Ann Lee", "true")
    assert (users["102"]["Name"], users["102"]["IsActive"]) == ("bob@example.com", "false")
    # the primary team, else the lowest team id
    assert (users["101"]["Department"], users["102"]["Department"]) == ("Farmers", "Hunters")
    accounts = _by_id(archive / "Account.csv")
    assert accounts["c2"]["Name"] == "globex.example" and accounts["c1"]["BillingCountry"] == "Germany"
    tasks = _by_id(archive / "Task.csv")
    assert {k: (v["OwnerId"], v["WhatId"], v["TaskSubtype"], v["ActivityDate"], v["IsDeleted"])
            for k, v in tasks.items()} == {
        "e1": ("102", "d1", "Call", "2026-09-03", "false"),  # owner from engagement, deal from engagement_deal
        "e2": ("101", "", "Task", "2026-09-05", "true"),
    }
    events = _by_id(archive / "Event.csv")
    assert (events["e3"]["StartDateTime"], events["e3"]["DurationInMinutes"], events["e3"]["Subject"]) == (
        "2026-09-06 10:00:00", "45", "Demo")


def test_the_loader_loads_the_translation_and_quarantine_names_the_landed_row(tmp_path: Path) -> None:
    deals = [_deal("d1", "s_won", "1000"), _deal("d2", "s_lost", "500", closedate=""), _deal("d3", "nope", "5")]
    archive = tmp_path / "archive" / "r1"
    files = archive_connector(FIVETRAN_HUBSPOT, _landing(tmp_path, deal=deals), archive)
    assert read_manifest(archive) == files
    con = duckdb.connect(str(tmp_path / "wh.duckdb"))
    result = load_raw(con, archive, files, "r1", NOW)
    assert result.loaded["Opportunity.csv"] == 1 and result.quarantined["Opportunity.csv"] == 2
    for name in ("OpportunityStage.csv", "OpportunityHistory.csv", "Account.csv", "User.csv", "Event.csv"):
        assert result.quarantined.get(name, 0) == 0, name
    q = con.execute("select _reason, _field, landed_table, landed_row, stage_name from quarantine.opportunities "
                    "order by landed_row").fetchall()
    # a stage id no pipeline stage has: kept as the deal's stage, with no flags to say closed or won
    assert q == [("missing_value", "close_date", "deal", "2", "Closed lost"),
                 ("missing_value", "is_closed", "deal", "3", "nope")]


def test_a_missing_required_table_names_it(tmp_path: Path) -> None:
    d = _landing(tmp_path)
    (d / "deal_pipeline_stage.csv").unlink()
    with pytest.raises(ExportError, match="Fivetran HubSpot table deal_pipeline_stage is not in") as exc:
        archive_connector(FIVETRAN_HUBSPOT, d, tmp_path / "archive")
    assert "\n" not in str(exc.value)


def test_a_renamed_table_is_read_under_its_landed_name(tmp_path: Path) -> None:
    d = _landing(tmp_path)
    (d / "deal.csv").rename(d / "deal_data.csv")
    archive = tmp_path / "archive"
    archive_connector(FIVETRAN_HUBSPOT, d, archive, {"deal": "deal_data"})
    assert len(_read(archive / "Opportunity.csv")) == 5
    assert json.loads((archive / "landed.json").read_text())["translation"]["deal_data"]["written_rows"] == 5


@pytest.mark.parametrize(
    ("table", "column", "message"),
    [
        ("deal", "deal_pipeline_stage_id", r"table deal \(deal\.csv\): required column deal_pipeline_stage_id "
                                           r"\(Opportunity\.StageName\) is missing"),
        ("deal_pipeline_stage", "label", r"table deal_pipeline_stage \(deal_pipeline_stage\.csv\): required column "
                                         r"label \(OpportunityStage\.MasterLabel\)"),
        ("deal_stage", "value", r"table deal_stage \(deal_stage\.csv\): required column value"),
        ("owner", "owner_id", r"table owner \(owner\.csv\): required column owner_id \(User\.Id\)"),
    ],
)
def test_a_table_missing_a_column_the_mapping_needs_names_table_and_column(
    tmp_path: Path, table: str, column: str, message: str
) -> None:
    d = _landing(tmp_path)
    rows = [{k: v for k, v in r.items() if k != column} for r in _read(d / f"{table}.csv")]
    write_csv(d / f"{table}.csv", rows)
    with pytest.raises(ConnectorTableError, match=message) as exc:
        archive_connector(FIVETRAN_HUBSPOT, d, tmp_path / "archive")
    assert "\n" not in str(exc.value)


def test_the_sources_page_lists_every_hubspot_table_with_what_it_feeds() -> None:
    """docs/export-contract.md's HubSpot table follows TABLES, FEEDS and REQUIRED (their one definition)."""
    text = (Path(__file__).resolve().parents[3] / "docs" / "export-contract.md").read_text(encoding="utf-8")
    section = text[text.index("### HubSpot"):text.index("## How a run reads them")]
    rows = [line.split("|") for line in section.splitlines() if line.startswith("| `")]
    for key, default in TABLES.items():
        row = next(r for r in rows if f"`{default}`" in r[1])
        assert FEEDS[key] in r_objects(row[2]), key
        cell = row[3].strip()
        # "yes", "no", or "quotas: yes" on a row of several tables: the ones named before ": yes"
        required = cell == "yes" or (cell.endswith(": yes") and key in cell.removesuffix(": yes").split(", "))
        assert required == (key in REQUIRED), key


def r_objects(cell: str) -> set[str]:
    return {c.strip() for c in cell.split(",")}


def test_a_duckdb_schema_gives_the_same_files_as_csv(tmp_path: Path) -> None:
    landing = _landing(tmp_path)
    db = tmp_path / "landed.duckdb"
    con = duckdb.connect(str(db))
    con.execute("create schema hubspot")
    for f in sorted(landing.glob("*.csv")):
        # typed as DuckDB reads them (booleans, timestamps), as a connector's warehouse would hold them
        con.execute(f"create table hubspot.\"{f.stem}\" as select * from read_csv('{f}', header=true)")
    con.close()
    csv_archive, db_archive = tmp_path / "a_csv", tmp_path / "a_db"
    archive_connector(FIVETRAN_HUBSPOT, landing, csv_archive)
    archive_connector(FIVETRAN_HUBSPOT, db, db_archive, schema="hubspot")
    for name in ("Opportunity.csv", "OpportunityStage.csv", "Account.csv", "User.csv", "Task.csv"):
        def key(rows: list[dict[str, str]]) -> list[tuple[str, ...]]:
            # DuckDB writes typed timestamps and numbers its own way: compare ids, stages and flags
            return sorted((r["Id"], r.get("StageName", ""), r.get("IsClosed", ""), r.get("IsWon", ""),
                           r.get("Name", ""), r.get("OwnerId", "")) for r in rows)
        assert key(_read(db_archive / name)) == key(_read(csv_archive / name)), name
    assert (db_archive / "landed" / "deal.parquet").is_file()
