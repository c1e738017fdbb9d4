"""The sample CRM as HubSpot's own exports: the same records as the Salesforce-shaped sample, HubSpot's files.

`salesos generate --format hubspot` writes the Salesforce sample (`sample_crm.py`) and turns it, file by
file, into what HubSpot's exports give for the same org (`salesos.extract.connectors.hubspot_exports` says
which label is which property): deals, companies, users and teams, leads, calls, emails, meetings, the
pipeline's stages and the deals' property history. Record ids stay the sample's own (a HubSpot Record ID is
any id), so the two exports of one sample hold the same content and must give the same marts
(tests/extract/connectors/test_hubspot_equals_salesforce.py).

What HubSpot has no field for is carried as HubSpot carries it:
- a user's region and segment (Salesforce's Division and Department) become teams: a root team per region,
  a child team per region and segment (`<region> <segment>`), a team per department without a region; the
  settings `team_regions` and `team_segments` (written to `settings.yml` beside the files) map them back;
- the role hierarchy becomes each user's role by name (HubSpot's roles have no parent);
- sales operations' `user_assignments.csv` (a rep's past managers, roles and teams) is written keyed by the
  owner, its manager and role by name and its division and department as the team they make, as a HubSpot
  team would keep it beside the exports;
- records in Salesforce's recycle bin (IsDeleted) are not in the HubSpot files: HubSpot's export leaves
  deleted records out.
"""

from __future__ import annotations

import csv
import shutil
import tempfile
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import yaml

from salesos.contract import (
    ACCOUNT,
    CONTACT,
    EVENT,
    FX_RATES,
    LEAD,
    OPPORTUNITY,
    OPPORTUNITY_HISTORY,
    OPPORTUNITY_LINE_ITEM,
    OPPORTUNITY_STAGE,
    PRODUCT,
    QUOTAS,
    TASK,
    USER,
    USER_ASSIGNMENTS,
    USER_ROLE,
)
from salesos.extract.connectors.hubspot_exports import FILES_BY_NAME, HUBSPOT_EXPORTS

CSV_FORMAT: dict[str, Any] = {"quoting": csv.QUOTE_ALL, "lineterminator": "\n"}
PIPELINE_ID = "default"
PIPELINE_LABEL = "Sales Pipeline"
SETTINGS_FILE = "settings.yml"
# properties whose history deal_history.csv holds: HubSpot's property name -> the OpportunityHistory field
HISTORY_FIELDS = {
    "dealstage": "StageName",
    "amount": "Amount",
    "closedate": "CloseDate",
    "hs_deal_stage_probability": "Probability",
    "hs_forecast_category": "ForecastCategory",
}


def _rows(path: Path) -> Iterator[dict[str, str]]:
    with path.open(newline="", encoding="utf-8-sig") as fh:
        yield from csv.DictReader(fh)


def _live(rows: Iterator[dict[str, str]]) -> Iterator[dict[str, str]]:
    """The records not in the recycle bin (HubSpot's exports have no deleted records)."""
    return (r for r in rows if r.get("IsDeleted", "").lower() != "true")


class _Writer:
    """One HubSpot export file, its header the labels of the columns given (hubspot_exports.FILES)."""

    def __init__(self, out: Path, name: str, columns: list[str], extra: tuple[str, ...] = ()) -> None:
        spec = FILES_BY_NAME[name]
        self.columns = columns
        self.fh = (out / f"{name}.csv").open("w", newline="", encoding="utf-8")
        self.w = csv.writer(self.fh, **CSV_FORMAT)
        self.w.writerow([spec.column(c).label for c in columns] + list(extra))
        self.rows = 0

    def row(self, values: dict[str, Any], *extra: Any) -> None:
        self.w.writerow([values.get(c, "") for c in self.columns] + list(extra))
        self.rows += 1

    def close(self) -> int:
        self.fh.close()
        return self.rows


def _percent_to_fraction(value: str) -> str:
    """Salesforce's 0-100 probability as HubSpot's 0-1."""
    return "" if value == "" else f"{float(value) / 100:g}"


def _split_name(name: str) -> tuple[str, str]:
    first, _, last = name.partition(" ")
    return first, last


def convert(sf: Path, out: Path) -> dict[str, int]:
    """Write HubSpot's exports of the Salesforce-shaped export folder `sf` into `out`; rows per file written."""
    out.mkdir(parents=True, exist_ok=True)
    counts: dict[str, int] = {}
    users = list(_rows(sf / USER.filename))
    names = {u["Id"]: u["Name"] for u in users}
    roles = {r["Id"]: r["Name"] for r in _rows(sf / USER_ROLE.filename)} if (sf / USER_ROLE.filename).is_file() else {}

    # teams: a root team per region, a child per region and segment, a root per department without a region
    teams: dict[str, str] = {}  # team name -> parent team name
    regions: dict[str, str] = {}
    segments: dict[str, str] = {}

    def team_of(u: dict[str, str]) -> str:
        division, department = u["Division"], u["Department"]
        if division:
            teams.setdefault(division, "")
            regions[division] = division
            if not department:
                return division
            name = f"{division} {department}"
            teams.setdefault(name, division)
            segments[name] = department
            return name
        if department:
            teams.setdefault(department, "")
            segments[department] = department
            return department
        return ""

    w = _Writer(out, "users", ["owner_id", "first_name", "last_name", "email", "is_active", "created_at", "manager_id",
                               "role_id", "primary_team"])
    for u in users:
        first, last = _split_name(u["Name"])
        w.row({"owner_id": u["Id"], "first_name": first, "last_name": last, "email": u["Email"],
               "is_active": u["IsActive"], "created_at": u["CreatedDate"], "manager_id": names.get(u["ManagerId"], ""),
               "role_id": roles.get(u["UserRoleId"], ""), "primary_team": team_of(u)})
    counts["users.csv"] = w.close()
    if (sf / USER_ASSIGNMENTS.filename).is_file():
        # sales operations' assignment history, as a HubSpot team keeps it: by owner, manager by name, role by
        # name, the team the division and department make (HubSpot has no assignment history of its own)
        w = _Writer(out, "user_assignments", ["user_id", "valid_from", "valid_to", "manager_id", "user_role_id",
                                              "team"])
        for a in _rows(sf / USER_ASSIGNMENTS.filename):
            w.row({"user_id": a["user_id"], "valid_from": a["valid_from"], "valid_to": a["valid_to"],
                   "manager_id": names.get(a["manager_id"], a["manager_id"]),
                   "user_role_id": roles.get(a["user_role_id"], a["user_role_id"]),
                   "team": team_of({"Division": a["division"], "Department": a["department"]})})
        counts["user_assignments.csv"] = w.close()
    w = _Writer(out, "teams", ["team_id", "name", "parent_team"])
    ids = {name: str(1000 + k) for k, name in enumerate(teams)}
    for name, parent in teams.items():
        w.row({"team_id": ids[name], "name": name, "parent_team": parent})
    counts["teams.csv"] = w.close()

    w = _Writer(out, "pipelines", ["pipeline_id", "pipeline_label", "pipeline_display_order", "stage_id", "label",
                                   "display_order", "probability", "is_closed", "closed_won", "active",
                                   "forecast_category"])
    for s in _rows(sf / OPPORTUNITY_STAGE.filename):
        w.row({"pipeline_id": PIPELINE_ID, "pipeline_label": PIPELINE_LABEL, "pipeline_display_order": "0",
               "stage_id": s["Id"], "label": s["MasterLabel"], "display_order": s["SortOrder"],
               "probability": _percent_to_fraction(s["DefaultProbability"]), "is_closed": s["IsClosed"],
               "closed_won": s["IsWon"], "active": s["IsActive"], "forecast_category": s["ForecastCategoryName"]})
    counts["pipelines.csv"] = w.close()

    w = _Writer(out, "deals", ["deal_id", "property_dealname", "deal_pipeline_id", "deal_pipeline_stage_id",
                               "property_amount", "property_closedate", "property_createdate", "owner_id",
                               "property_dealtype", "property_hs_analytics_source",
                               "property_hs_deal_stage_probability", "property_hs_forecast_category",
                               "property_deal_currency_code", "property_hs_lastmodifieddate",
                               "associated_company_ids"], extra=("Competitor",))
    for o in _live(_rows(sf / OPPORTUNITY.filename)):
        w.row({"deal_id": o["Id"], "property_dealname": o["Name"], "deal_pipeline_id": PIPELINE_LABEL,
               "deal_pipeline_stage_id": o["StageName"], "property_amount": o["Amount"],
               "property_closedate": o["CloseDate"], "property_createdate": o["CreatedDate"],
               "owner_id": names.get(o["OwnerId"], o["OwnerId"]), "property_dealtype": o["Type"],
               "property_hs_analytics_source": o["LeadSource"],
               "property_hs_deal_stage_probability": _percent_to_fraction(o["Probability"]),
               "property_hs_forecast_category": o["ForecastCategoryName"],
               "property_deal_currency_code": o["CurrencyIsoCode"],
               "property_hs_lastmodifieddate": o["LastModifiedDate"], "associated_company_ids": o["AccountId"]},
              o.get("Competitor__c", ""))
    counts["deals.csv"] = w.close()

    w = _Writer(out, "deal_history", ["deal_id", "name", "value", "timestamp"])
    before: dict[str, dict[str, str]] = {}
    for r in _live(_rows(sf / OPPORTUNITY_HISTORY.filename)):
        prev = before.setdefault(r["OpportunityId"], {})
        for prop, fld in HISTORY_FIELDS.items():
            value = _percent_to_fraction(r[fld]) if fld == "Probability" else r[fld]
            if prev.get(prop) != value:
                w.row({"deal_id": r["OpportunityId"], "name": prop, "value": value, "timestamp": r["CreatedDate"]})
                prev[prop] = value
    counts["deal_history.csv"] = w.close()

    w = _Writer(out, "companies", ["id", "property_name", "property_industry", "property_numberofemployees",
                                   "property_annualrevenue", "property_country", "property_hs_parent_company_id",
                                   "property_hubspot_owner_id", "property_type"], extra=("Tier",))
    for a in _live(_rows(sf / ACCOUNT.filename)):
        w.row({"id": a["Id"], "property_name": a["Name"], "property_industry": a["Industry"],
               "property_numberofemployees": a["NumberOfEmployees"], "property_annualrevenue": a["AnnualRevenue"],
               "property_country": a["BillingCountry"], "property_hs_parent_company_id": a["ParentId"],
               "property_hubspot_owner_id": names.get(a["OwnerId"], a["OwnerId"]), "property_type": a["Type"]},
              a.get("Tier__c", ""))
    counts["companies.csv"] = w.close()

    if (sf / LEAD.filename).is_file():
        w = _Writer(out, "leads", ["lead_id", "property_hubspot_owner_id", "property_createdate",
                                   "property_hs_lead_status", "property_hs_lead_source", "property_hs_converted",
                                   "property_hs_converted_date", "associated_deal_ids", "associated_company_ids"])
        for ld in _live(_rows(sf / LEAD.filename)):
            w.row({"lead_id": ld["Id"], "property_hubspot_owner_id": names.get(ld["OwnerId"], ld["OwnerId"]),
                   "property_createdate": ld["CreatedDate"], "property_hs_lead_status": ld["Status"],
                   "property_hs_lead_source": ld.get("LeadSource", ""), "property_hs_converted": ld["IsConverted"],
                   "property_hs_converted_date": ld["ConvertedDate"],
                   "associated_deal_ids": ld["ConvertedOpportunityId"],
                   "associated_company_ids": ld["ConvertedAccountId"]})
        counts["leads.csv"] = w.close()

    def associations(r: dict[str, str]) -> dict[str, str]:
        """Salesforce's WhatId/WhoId as HubSpot's associations (the sample's id prefixes say the object)."""
        what, who = r["WhatId"], r["WhoId"]
        return {"associated_deal_ids": what if what.startswith("006") else "",
                "associated_company_ids": what if what.startswith("001") else "",
                "associated_lead_ids": who if who.startswith("00Q") else "",
                "associated_contact_ids": who if who.startswith("003") else ""}

    lists = list(associations({"WhatId": "", "WhoId": ""}))
    if (sf / TASK.filename).is_file():
        subtypes = {"Call": "calls", "Email": "emails", "Task": "tasks"}
        writers = {name: _Writer(out, name, ["engagement_id", "property_hubspot_owner_id", "property_hs_timestamp",
                                             "property_hs_createdate", "property_hs_task_status", *lists])
                   for name in subtypes.values()}
        for r in _live(_rows(sf / TASK.filename)):
            writer = writers[subtypes.get(r["TaskSubtype"], "tasks")]
            writer.row({"engagement_id": r["Id"], "property_hubspot_owner_id": names.get(r["OwnerId"], r["OwnerId"]),
                        "property_hs_timestamp": r["ActivityDate"], "property_hs_createdate": r["CreatedDate"],
                        "property_hs_task_status": r["Status"], **associations(r)})
        for name, writer in writers.items():
            counts[f"{name}.csv"] = writer.close()
    if (sf / EVENT.filename).is_file():
        w = _Writer(out, "meetings", ["engagement_id", "property_hubspot_owner_id", "property_hs_meeting_start_time",
                                      "property_hs_meeting_end_time", "property_hs_meeting_title",
                                      "property_hs_activity_type", *lists])
        for r in _live(_rows(sf / EVENT.filename)):
            w.row({"engagement_id": r["Id"], "property_hubspot_owner_id": names.get(r["OwnerId"], r["OwnerId"]),
                   "property_hs_meeting_start_time": r["StartDateTime"],
                   "property_hs_meeting_end_time": r["EndDateTime"], "property_hs_meeting_title": r["Subject"],
                   "property_hs_activity_type": r["Type"], **associations(r)})
        counts["meetings.csv"] = w.close()

    if (sf / CONTACT.filename).is_file():
        w = _Writer(out, "contacts", ["id", "property_firstname", "property_lastname", "property_email",
                                      "property_jobtitle", "property_hubspot_owner_id",
                                      "property_associatedcompanyid", "property_createdate"])
        for c in _live(_rows(sf / CONTACT.filename)):
            w.row({"id": c["Id"], "property_firstname": c["FirstName"], "property_lastname": c["LastName"],
                   "property_email": c["Email"], "property_jobtitle": c["Title"],
                   "property_hubspot_owner_id": names.get(c["OwnerId"], c["OwnerId"]),
                   "property_associatedcompanyid": c["AccountId"], "property_createdate": c["CreatedDate"]})
        counts["contacts.csv"] = w.close()
    if (sf / PRODUCT.filename).is_file():
        w = _Writer(out, "products", ["id", "property_name", "property_hs_sku", "property_product_family",
                                      "property_active"])
        for pr in _live(_rows(sf / PRODUCT.filename)):
            w.row({"id": pr["Id"], "property_name": pr["Name"], "property_hs_sku": pr["ProductCode"],
                   "property_product_family": pr["Family"], "property_active": pr["IsActive"]})
        counts["products.csv"] = w.close()
    if (sf / OPPORTUNITY_LINE_ITEM.filename).is_file():
        w = _Writer(out, "line_items", ["id", "property_hs_product_id", "property_quantity", "property_price",
                                        "property_amount", "property_createdate", "associated_deal_ids"])
        for li in _live(_rows(sf / OPPORTUNITY_LINE_ITEM.filename)):
            w.row({"id": li["Id"], "property_hs_product_id": li["Product2Id"], "property_quantity": li["Quantity"],
                   "property_price": li["UnitPrice"], "property_amount": li["TotalPrice"],
                   "property_createdate": li["CreatedDate"], "associated_deal_ids": li["OpportunityId"]})
        counts["line_items.csv"] = w.close()

    for export in (QUOTAS, FX_RATES):
        if (sf / export.filename).is_file():
            shutil.copyfile(sf / export.filename, out / export.filename)
            counts[export.filename] = sum(1 for _ in _rows(out / export.filename))
    settings = {"source": HUBSPOT_EXPORTS.name, "team_regions": regions, "team_segments": segments}
    (out / SETTINGS_FILE).write_text(
        "# The settings this HubSpot sample needs: its source, and its teams' regions and segments.\n"
        + yaml.safe_dump(settings, sort_keys=True, allow_unicode=True), encoding="utf-8")
    return counts


def generate_hubspot(out_dir: str | Path, scale: str = "S", seed: int = 42, as_of: date = date(2026, 10, 31),
                     rename_stages: dict[str, str] | None = None) -> dict[str, int]:
    """The sample CRM of (scale, seed, as_of) as HubSpot's exports in `out_dir`; rows written per file."""
    from salesos.generate.sample_crm import generate

    with tempfile.TemporaryDirectory(prefix="salesos-sf-sample-") as tmp:
        generate(tmp, scale=scale, seed=seed, as_of=as_of, stage_export=True, rename_stages=rename_stages)
        return convert(Path(tmp), Path(out_dir))
