"""HubSpot's own CSV exports into the contract's files: labels, stages by label, owners by name, teams, errors."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from salesos.extract.connectors import archive_source
from salesos.extract.connectors.hubspot_exports import FILES, FILES_BY_NAME, UnknownStageError
from salesos.extract.connectors.translate import ConnectorTableError, read_translations
from salesos.extract.landing import ExportError
from tests.conftest import write_csv

SOURCE = "hubspot-exports"


def _stage(pipeline: str, stage_id: str, label: str, order: str, prob: str, closed: str, won: str) -> dict:
    return {"Pipeline ID": pipeline.lower(), "Pipeline": pipeline, "Stage ID": stage_id, "Stage": label,
            "Display Order": order, "Probability": prob, "Is Closed": closed, "Closed Won": won}


def _deal(record: str, stage: str, owner: str, pipeline: str = "Sales", company: str = "", **extra: str) -> dict:
    return {"Record ID": record, "Deal Name": f"Deal {record}", "Pipeline": pipeline, "Deal Stage": stage,
            "Amount": "1000", "Close Date": "2026-10-15", "Create Date": "2026-09-01 10:00", "Deal owner": owner,
            "Associated Company IDs": company, "Deal probability": "0.1", "Sales Region": "north", **extra}


def _folder(tmp_path: Path, **replace: list[dict]) -> Path:
    """Two pipelines sharing the label "Closed won"; owners named by name, email and id."""
    d = tmp_path / "hubspot"
    d.mkdir(exist_ok=True)
    files: dict[str, list[dict]] = {
        "pipelines": [
            _stage("Sales", "s_open", "Qualified", "0", "0.2", "false", "false"),
            _stage("Sales", "s_won", "Closed won", "1", "1.0", "true", "true"),
            _stage("Sales", "s_lost", "Closed lost", "2", "0.0", "true", "false"),
            _stage("Renewals", "r_won", "Closed won", "0", "1.0", "true", "true"),
        ],
        "deals": [
            _deal("d1", "Closed won", "Ann Lee", company="c1;c2"),
            _deal("d2", "Closed won", "bo@example.com", pipeline="Renewals"),
            _deal("d3", "s_open", "u3", pipeline="sales"),
            _deal("d4", "Closed lost", "Ann Lee"),
        ],
        "companies": [{"Record ID": "c1", "Company name": "Acme", "Number of Employees": "50",
                       "Company owner": "Ann Lee"},
                      {"Record ID": "c2", "Company name": "Beta", "Number of Employees": "5000",
                       "Company owner": "u2"}],
        "users": [
            {"User ID": "u1", "First Name": "Ann", "Last Name": "Lee", "Email": "ann@example.com",
             "Primary Team": "EMEA Enterprise", "Manager": "bo@example.com", "Role": "Sales Rep"},
            {"User ID": "u2", "First Name": "Bo", "Last Name": "Ng", "Email": "bo@example.com",
             "Primary Team": "EMEA", "Manager": "", "Role": "Sales Manager"},
            {"User ID": "u3", "First Name": "Cy", "Last Name": "Ito", "Email": "cy@example.com",
             "Primary Team": "", "Manager": "Ann Lee", "Role": ""},
        ],
        "teams": [{"Team ID": "1", "Team Name": "EMEA", "Parent Team Name": ""},
                  {"Team ID": "2", "Team Name": "EMEA Enterprise", "Parent Team Name": "EMEA"}],
        "deal_history": [
            {"Record ID": "d1", "Property": "dealstage", "Value": "Qualified", "Timestamp": "2026-09-01 10:00"},
            {"Record ID": "d1", "Property": "amount", "Value": "900", "Timestamp": "2026-09-01 10:00"},
            {"Record ID": "d1", "Property": "hs_deal_stage_probability", "Value": "0.2",
             "Timestamp": "2026-09-01 10:00"},
            {"Record ID": "d1", "Property": "dealstage", "Value": "s_won", "Timestamp": "2026-10-15 09:00"},
            {"Record ID": "d1", "Property": "amount", "Value": "1000", "Timestamp": "2026-10-15 09:00"},
        ],
        "calls": [{"Record ID": "e1", "Activity assigned to": "Cy Ito", "Activity date": "2026-09-03",
                   "Associated Deal IDs": "", "Associated Company IDs": "c2", "Associated Contact IDs": ""}],
        "meetings": [{"Record ID": "m1", "Activity assigned to": "u1", "Meeting start time": "2026-09-04 10:00",
                      "Meeting end time": "2026-09-04 10:45", "Meeting name": "Demo", "Meeting type": "Demo",
                      "Associated Deal IDs": "d3;d1"}],
        "quotas": [{"owner_id": "u1", "period_start": "2026-10-01", "quota_amount": "2000"}],
    }
    files.update(replace)
    for name, rows in files.items():
        write_csv(d / f"{name}.csv", rows)
    return d


def _read(archive: Path, name: str) -> dict[str, dict[str, str]]:
    with (archive / name).open(newline="", encoding="utf-8") as fh:
        return {r["Id"]: r for r in csv.DictReader(fh)}


OPTIONS = {"team_regions": {"EMEA": "Europe"}, "team_segments": {"EMEA Enterprise": "Enterprise"}}


def test_deals_get_their_stage_by_label_within_their_pipeline_and_their_owner_by_name_or_email(tmp_path: Path):
    archive = tmp_path / "archive"
    archive_source(SOURCE, _folder(tmp_path), archive, options=OPTIONS)
    opps = _read(archive, "Opportunity.csv")
    assert {k: (o["StageName"], o["IsClosed"], o["IsWon"], o["OwnerId"]) for k, o in opps.items()} == {
        "d1": ("Sales / Closed won", "true", "true", "u1"),
        "d2": ("Renewals / Closed won", "true", "true", "u2"),
        "d3": ("Qualified", "false", "false", "u3"),
        "d4": ("Closed lost", "true", "false", "u1"),
    }
    assert opps["d1"]["AccountId"] == "c1" and opps["d3"]["AccountId"] == ""
    assert float(opps["d1"]["Probability"]) == 10  # HubSpot's 0-1 as the contract's 0-100
    accounts = _read(archive, "Account.csv")
    assert (accounts["c1"]["OwnerId"], accounts["c2"]["OwnerId"]) == ("u1", "u2")
    stages = _read(archive, "OpportunityStage.csv")
    assert {s["MasterLabel"]: (s["IsClosed"], s["IsWon"]) for s in stages.values()}["Closed lost"] == ("true", "false")


def test_users_get_manager_role_and_the_region_and_segment_their_teams_map_to(tmp_path: Path):
    archive = tmp_path / "archive"
    archive_source(SOURCE, _folder(tmp_path), archive, options=OPTIONS)
    users = _read(archive, "User.csv")
    assert {k: (u["Name"], u["ManagerId"], u["UserRoleId"], u["Division"], u["Department"])
            for k, u in users.items()} == {
        "u1": ("Ann Lee", "u2", "Sales Rep", "Europe", "Enterprise"),  # the region from the parent team
        "u2": ("Bo Ng", "", "Sales Manager", "Europe", ""),
        "u3": ("Cy Ito", "u1", "", "", ""),
    }
    assert {r["Name"] for r in _read(archive, "UserRole.csv").values()} == {"Sales Rep", "Sales Manager"}


def test_without_team_segments_the_department_is_the_primary_team(tmp_path: Path):
    archive = tmp_path / "archive"
    archive_source(SOURCE, _folder(tmp_path), archive)
    users = _read(archive, "User.csv")
    assert (users["u1"]["Department"], users["u1"]["Division"]) == ("EMEA Enterprise", "")


def test_the_property_history_becomes_opportunity_history_with_stage_flags(tmp_path: Path):
    archive = tmp_path / "archive"
    archive_source(SOURCE, _folder(tmp_path), archive)
    history = sorted(_read(archive, "OpportunityHistory.csv").values(), key=lambda r: (r["OpportunityId"],
                                                                                       r["CreatedDate"]))
    d1 = [(r["StageName"], r["Amount"], r["IsClosed"], r["IsWon"]) for r in history if r["OpportunityId"] == "d1"]
    assert d1 == [("Qualified", "900", "false", "false"), ("Sales / Closed won", "1000", "true", "true")]
    assert float(next(r for r in history if r["OpportunityId"] == "d1")["Probability"]) == 20
    # deals without history get one row of their current stage
    assert {r["OpportunityId"] for r in history} == {"d1", "d2", "d3", "d4"}


def test_activities_point_at_their_deal_else_their_company(tmp_path: Path):
    archive = tmp_path / "archive"
    archive_source(SOURCE, _folder(tmp_path), archive)
    task = _read(archive, "Task.csv")["e1"]
    assert (task["TaskSubtype"], task["OwnerId"], task["WhatId"]) == ("Call", "u3", "c2")
    event = _read(archive, "Event.csv")["m1"]
    assert (event["WhatId"], event["Type"], event["DurationInMinutes"]) == ("d1", "Demo", "45")


ASSIGNMENTS = [
    # keyed by the HubSpot owner (id, email or name), manager by name or email, the team by name or Team ID
    {"User ID": "u1", "Valid From": "2025-01-06", "Valid To": "2026-03-02", "Manager": "Bo Ng", "Role": "Sales Rep",
     "Primary Team": "EMEA"},
    {"User ID": "ann@example.com", "Valid From": "2026-03-02", "Valid To": "", "Manager": "bo@example.com",
     "Role": "Sales Rep", "Primary Team": "2"},
    {"User ID": "u3", "Valid From": "2024-05-01", "Valid To": "", "Manager": "Ann Lee", "Role": "",
     "Primary Team": "Partners"},
]


def _assignments(archive: Path) -> list[tuple[str, ...]]:
    with (archive / "user_assignments.csv").open(newline="", encoding="utf-8") as fh:
        return [(r["user_id"], r["valid_from"], r["valid_to"], r["manager_id"], r["user_role_id"], r["division"],
                 r["department"]) for r in csv.DictReader(fh)]


def test_user_assignments_are_keyed_by_owner_and_their_teams_placed_as_the_users_are(tmp_path: Path):
    archive = tmp_path / "archive"
    archive_source(SOURCE, _folder(tmp_path, user_assignments=ASSIGNMENTS), archive, options=OPTIONS)
    assert _assignments(archive) == [
        ("u1", "2025-01-06", "2026-03-02", "u2", "Sales Rep", "Europe", ""),  # EMEA: a region, no segment
        ("u1", "2026-03-02", "", "u2", "Sales Rep", "Europe", "Enterprise"),  # team 2, EMEA Enterprise
        ("u3", "2024-05-01", "", "u1", "", "", ""),  # a team the tree and the settings do not know
    ]
    # the current assignment agrees with the user's own row, as the team of the day compares them
    user = _read(archive, "User.csv")["u1"]
    assert (user["ManagerId"], user["UserRoleId"], user["Division"], user["Department"]) == _assignments(archive)[1][3:]


def test_user_assignments_without_team_settings_name_the_team_and_may_give_division_and_department(tmp_path: Path):
    rows = [*({**a, "Division": "", "Department": ""} for a in ASSIGNMENTS), {"User ID": "u2", "Valid From": "2024-01-01", "Valid To": "", "Manager": "",
                           "Role": "Sales Manager", "Primary Team": "", "Division": "Americas",
                           "Department": "SMB"}]
    archive = tmp_path / "archive"
    archive_source(SOURCE, _folder(tmp_path, user_assignments=rows), archive)
    assert [(a[0], a[5], a[6]) for a in _assignments(archive)] == [
        ("u1", "", "EMEA"), ("u1", "", "EMEA Enterprise"), ("u3", "", "Partners"), ("u2", "Americas", "SMB")]


def test_user_assignments_without_a_valid_from_column_stop_with_the_file_and_column(tmp_path: Path):
    rows = [{k: v for k, v in a.items() if k != "Valid From"} for a in ASSIGNMENTS]
    with pytest.raises(ConnectorTableError) as err:
        archive_source(SOURCE, _folder(tmp_path, user_assignments=rows), tmp_path / "archive")
    assert "\n" not in str(err.value)
    assert 'user_assignments.csv: required column "Valid From" (user_assignments) is missing' in str(err.value)


def test_columns_not_read_are_archived_and_named(tmp_path: Path):
    archive = tmp_path / "archive"
    archive_source(SOURCE, _folder(tmp_path), archive)
    notes = read_translations(archive)["translation"]["deals"]["notes"]
    assert any("Sales Region" in n for n in notes)
    assert (archive / "landed" / "deals.csv").read_bytes() == (tmp_path / "hubspot" / "deals.csv").read_bytes()


def test_a_deal_in_a_stage_no_pipeline_has_stops_with_the_file_row_and_stage(tmp_path: Path):
    deals = [_deal("d1", "Closed won", "u1"), _deal("d2", "Signed", "u1")]
    with pytest.raises(UnknownStageError) as err:
        archive_source(SOURCE, _folder(tmp_path, deals=deals), tmp_path / "archive")
    message = str(err.value)
    assert "\n" not in message
    assert "deals.csv row 2" in message and "Deal Stage 'Signed'" in message and "pipelines.csv" in message


def test_a_history_stage_no_pipeline_has_stops_too(tmp_path: Path):
    history = [{"Record ID": "d1", "Property": "dealstage", "Value": "Dead", "Timestamp": "2026-09-01 10:00"}]
    with pytest.raises(UnknownStageError, match=r"deal_history.csv row 1: Value 'Dead'"):
        archive_source(SOURCE, _folder(tmp_path, deal_history=history), tmp_path / "archive")


def test_a_file_missing_a_required_column_stops_with_the_file_and_column(tmp_path: Path):
    deals = [{k: v for k, v in _deal("d1", "Closed won", "u1").items() if k != "Deal Stage"}]
    with pytest.raises(ConnectorTableError) as err:
        archive_source(SOURCE, _folder(tmp_path, deals=deals), tmp_path / "archive")
    assert "\n" not in str(err.value)
    assert 'deals.csv: required column "Deal Stage" (Opportunity) is missing' in str(err.value)


def test_a_missing_required_file_stops_with_its_name(tmp_path: Path):
    folder = _folder(tmp_path)
    (folder / "pipelines.csv").unlink()
    with pytest.raises(ExportError, match="pipelines is not in"):
        archive_source(SOURCE, folder, tmp_path / "archive")


def test_every_export_file_and_label_is_on_the_export_contract_page():
    text = (Path(__file__).resolve().parents[3] / "docs" / "export-contract.md").read_text(encoding="utf-8")
    section = text[text.index("### HubSpot exports"):text.index("## How a run reads them")]
    for spec in FILES:
        assert f"`{spec.name}.csv`" in section, spec.name
        for c in spec.columns:
            assert f'"{c.label}"' in section, (spec.name, c.label)
    assert FILES_BY_NAME["deals"].required and not FILES_BY_NAME["leads"].required


def test_products_line_items_and_contacts_become_their_contract_files(tmp_path: Path):
    folder = _folder(tmp_path, products=[
        {"Record ID": "p1", "Name": "Platform", "SKU": "PLT", "Product family": "Core"},
    ], line_items=[
        {"Record ID": "l1", "Product ID": "p1", "Quantity": "2", "Unit price": "300", "Net price": "600",
         "Associated Deal IDs": "d1"},
        {"Record ID": "l2", "Product ID": "p1", "Quantity": "1", "Unit price": "50", "Net price": "50",
         "Associated Deal IDs": ""},  # a quote's line on no deal: left out
    ], contacts=[
        {"Record ID": "k1", "First Name": "Di", "Last Name": "Ro", "Email": "di@acme.example",
         "Contact owner": "Ann Lee", "Associated Company IDs": "c1;c2"},
    ])
    archive = tmp_path / "archive"
    archive_source(SOURCE, folder, archive)
    assert {k: (r["OpportunityId"], r["Product2Id"], r["TotalPrice"])
            for k, r in _read(archive, "OpportunityLineItem.csv").items()} == {"l1": ("d1", "p1", "600")}
    assert _read(archive, "Product2.csv")["p1"]["Family"] == "Core"
    contact = _read(archive, "Contact.csv")["k1"]
    assert (contact["AccountId"], contact["OwnerId"], contact["LastName"]) == ("c1", "u1", "Ro")
