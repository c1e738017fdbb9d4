"""The CRM export contract: which files a run reads, which fields it uses, and how headers match.

Input is a folder shaped like a Salesforce data export (one CSV per object, API field names as
headers) plus two files from sales operations (`quotas.csv`, optional `fx_rates.csv`). This module
is the single place that says what those files are; the generator, the loader, the validation
suites and the dbt sources all read it.

The dbt source definitions of the raw tables (`dbt_project/models/staging/*/_*__sources.yml`), their staging
models (`stg_<source>__<table>.sql`: each field renamed and cast, `Field.stage`) and the "Fields used" table of
docs/export-contract.md are written from it: `python -m salesos.contract --write-dbt-sources`
(tests/test_contract.py fails when they differ).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

FieldType = Literal["id", "string", "number", "integer", "boolean", "date", "datetime"]


@dataclass(frozen=True)
class Stage:
    """How the field's staging model renames and casts it (dbt macro `stage_columns`, macros/staging.sql).

    The defaults stage a field under its warehouse column, cast by its type (`STAGING_CASTS`), so a new field
    reaches staging with no edit beyond its `F(...)` line.
    """

    name: str = ""  # the staging column; empty: the warehouse column (`Field.column`)
    cast: str = ""  # the casting macro (macros/casting.sql); empty: its type's
    scale: int | None = None  # a number's decimal places, when not to_number's default (6)
    empty_as: str = ""  # the SQL literal an empty (or unreadable) value reads as; empty: null


# The casting macro (dbt_project/macros/casting.sql) of each field type in staging.
STAGING_CASTS: dict[str, str] = {
    "id": "clean_string",
    "string": "clean_string",
    "number": "to_number",
    "integer": "to_integer",
    "boolean": "to_boolean",
    "date": "to_date",
    "datetime": "to_timestamp",
}


@dataclass(frozen=True)
class Field:
    """One field of an export, under its Salesforce API name."""

    api_name: str
    type: FieldType = "string"
    required: bool = False
    description: str = ""
    # A required column may still allow empty values (an opportunity without an account or amount).
    nullable: bool | None = None
    # Only some sources carry it (connector tables, not Salesforce's own export): its absence is expected,
    # so it is loaded as empty without a schema-drift note.
    not_in_every_source: bool = False
    # How staging renames and casts it; None: the staging model leaves it out.
    stage: Stage | None = Stage()
    # A few words docs/export-contract.md shows after the name in "Fields used" (the generated table).
    note: str = ""

    @property
    def not_null(self) -> bool:
        """Rows with an empty value here cannot be loaded and go to quarantine."""
        return self.required and not self.nullable

    @property
    def column(self) -> str:
        """The snake_case column name used in the warehouse."""
        return snake_case(self.api_name)

    @property
    def staged_as(self) -> str | None:
        """The field's column in its staging model (None: not staged)."""
        return None if self.stage is None else self.stage.name or self.column

    def staging_expression(self) -> str | None:
        """What its staging model selects, as a reader of the model's header sees it (None: not staged)."""
        if self.stage is None:
            return None
        cast = self.stage.cast or STAGING_CASTS[self.type]
        scale = "" if self.stage.scale is None else f", {self.stage.scale}"
        sql = f"{cast}({self.column}{scale})"
        return f"coalesce({sql}, {self.stage.empty_as})" if self.stage.empty_as else sql


@dataclass(frozen=True)
class ExportFile:
    """One export file of the contract."""

    object_name: str
    filename: str
    table: str
    required: bool
    fields: tuple[Field, ...]
    description: str = ""
    key: str | None = "Id"
    # Groups of columns of which at least one must be present (e.g. owner_id or owner_email).
    one_of: tuple[tuple[str, ...], ...] = field(default_factory=tuple)
    # The dbt source the raw table belongs to (DBT_SOURCES), and what the models do when an optional file is absent.
    source: str = "crm"
    when_absent: str = ""
    # The loader's columns (LOAD_COLUMNS) its staging model carries after the fields, as they are.
    staging_load_columns: tuple[str, ...] = ("_source_file", "_row_number")

    @property
    def columns(self) -> list[str]:
        return [f.column for f in self.fields]

    @property
    def staging_model(self) -> str:
        """The dbt staging model of the raw table (`stg_crm__opportunities`)."""
        return f"stg_{self.source}__{self.table}"

    def field_by_column(self, column: str) -> Field | None:
        for f in self.fields:
            if f.column == column:
                return f
        return None


def snake_case(name: str) -> str:
    """`StageName` -> `stage_name`, `Region__c` -> `region__c`, `stage name` -> `stage_name`.

    Custom-field suffixes (`__c`) survive so custom fields stay recognisable in the warehouse.
    """
    name = name.strip().lstrip("\ufeff")
    custom = ""
    for suffix in ("__c", "__C"):
        if name.endswith(suffix):
            custom, name = "__c", name[: -len(suffix)]
            break
    s = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name)
    s = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", s)
    s = re.sub(r"[^0-9a-zA-Z]+", "_", s).strip("_").lower()
    if not s:
        s = "unnamed"
    if s[0].isdigit():
        s = f"c_{s}"
    return s + custom


def header_key(name: str) -> str:
    """Key under which headers match: case-insensitive, ignoring underscores and spaces."""
    name = name.strip().lstrip("\ufeff")
    is_custom = name.lower().endswith("__c")
    base = name[:-3] if is_custom else name
    return re.sub(r"[^0-9a-z]", "", base.lower()) + ("__c" if is_custom else "")


def F(
    api_name: str,
    type: FieldType = "string",
    required: bool = False,
    description: str = "",
    nullable: bool | None = None,
    not_in_every_source: bool = False,
    stage: Stage | str | None = "",
    note: str = "",
) -> Field:
    """A contract field; `stage` is its staging column's name (a str) or its whole `Stage` (None: not staged)."""
    return Field(api_name, type, required, description, nullable, not_in_every_source,
                 Stage(stage) if isinstance(stage, str) else stage, note)


# IsDeleted: an empty value means the record is not in the recycle bin.
NOT_DELETED = Stage(empty_as="false")


OPPORTUNITY = ExportFile(
    "Opportunity",
    "Opportunity.csv",
    "opportunities",
    required=True,
    description="Deals: one row per opportunity, as it stands at export time.",
    fields=(
        F("Id", "id", True, stage="opportunity_id",
          description="Salesforce Id of the opportunity (18 characters, 006...)."),
        F("AccountId", "id", True, nullable=True,
          description="Id of the account the deal is with; empty when the deal has no account."),
        F("OwnerId", "id", True, description="Id of the user who owns the deal (the rep credited with it)."),
        F("Name", description="Name of the deal.", stage="opportunity_name"),
        F("StageName", "string", True,
          description="Sales stage at export time (e.g. Prospecting, Closed Won). Open/won/lost comes from "
                      "is_closed and is_won, never from the stage name."),
        F("Amount", "number", True, nullable=True,
          description="Deal amount in the deal's currency (currency_iso_code)."),
        F("Probability", "number", description="Win probability, 0-100.", stage="probability_pct", note="0-100"),
        F("ForecastCategoryName", stage="forecast_category",
          description="Forecast category (Pipeline, Best Case, Commit, Closed, Omitted)."),
        F("CloseDate", "date", True,
          description="Expected (open deals) or actual (closed deals) close date, YYYY-MM-DD."),
        F("CreatedDate", "datetime", True, stage="created_at",
          description="When the deal was created, ISO 8601 date-time in UTC."),
        F("IsClosed", "boolean", True, description="true when the deal is closed (won or lost)."),
        F("IsWon", "boolean", True, description="true when the deal is closed and won."),
        F("IsDeleted", "boolean", description="true when the record is in the recycle bin.", stage=NOT_DELETED),
        F("Type", description="Deal type (e.g. New Business, Existing Business).", stage="opportunity_type"),
        F("LeadSource", description="Where the deal came from (e.g. Web, Partner)."),
        F("CurrencyIsoCode", stage=Stage(cast="clean_code"),
          description="ISO 4217 currency of amount; empty means the reporting currency."),
        F("LastModifiedDate", "datetime", stage="last_modified_at",
          description="When the record was last changed, ISO 8601 date-time in UTC."),
        # not a Salesforce field: a connector's sync time of the row (salesos.extract.connectors)
        F("SyncedAt", "datetime", description="When a connector last synced the row (Fivetran _fivetran_synced, "
          "Airbyte _airbyte_extracted_at); freshness falls back to it where LastModifiedDate is empty.",
          not_in_every_source=True, stage=None, note="a connector's sync time, [Sources](#sources)"),
    ),
)

OPPORTUNITY_HISTORY = ExportFile(
    "OpportunityHistory",
    "OpportunityHistory.csv",
    "opportunity_histories",
    required=False,
    description="Every change of stage, amount or close date of an opportunity.",
    fields=(
        F("Id", "id", stage="opportunity_history_id",
          description="Salesforce Id of the history record (may be absent from the export)."),
        F("OpportunityId", "id", True, description="Id of the opportunity that changed."),
        F("StageName", "string", True, description="Stage after the change."),
        F("Amount", "number", description="Amount after the change, in the opportunity's currency."),
        F("Probability", "number", description="Win probability after the change, 0-100.", stage="probability_pct"),
        F("CloseDate", "date", description="Close date after the change, YYYY-MM-DD."),
        F("ForecastCategory", description="Forecast category after the change."),
        F("CreatedDate", "datetime", True, stage="created_at",
          description="When the change happened, ISO 8601 date-time in UTC."),
        F("IsDeleted", "boolean", description="true when the record is in the recycle bin.", stage=NOT_DELETED),
        # Salesforce's OpportunityHistory has no flags; a connector's history-mode copy of Opportunity does.
        F("IsClosed", "boolean", not_in_every_source=True,
          description="true when the opportunity was closed after the change; empty when the export does not carry it "
                      "(Salesforce's OpportunityHistory does not, a connector's history-mode table does)."),
        F("IsWon", "boolean", not_in_every_source=True,
          description="true when the opportunity was won after the change; empty when the export does not carry it."),
    ),
)

# The stage picklist (Setup -> Opportunity Stages; the OpportunityStage object): which stage names are
# closed and won, so that nothing is ever decided from a stage's name (docs/export-contract.md, "Stages").
OPPORTUNITY_STAGE = ExportFile(
    "OpportunityStage",
    "OpportunityStage.csv",
    "opportunity_stages",
    required=False,
    description=(
        "The opportunity stage picklist (Salesforce's OpportunityStage object): which stage names are "
        "closed and won, their default probability and funnel order."
    ),
    when_absent="stage flags come from the other sources (docs/export-contract.md)",
    fields=(
        F("Id", "id", True, description="Salesforce Id of the stage (01J...).", stage="opportunity_stage_id"),
        F("MasterLabel", "string", True, stage="stage_label",
          description="The stage name as Opportunity.StageName and OpportunityHistory.StageName hold it."),
        F("ApiName", description="The stage's API name (usually the same as the label).", stage="stage_api_name"),
        F("IsClosed", "boolean", True, description="true when a deal in this stage is closed."),
        F("IsWon", "boolean", True, description="true when a deal in this stage is won."),
        F("DefaultProbability", "number", stage="default_probability_pct",
          description="Win probability of the stage, 0-100."),
        F("SortOrder", "integer", description="Funnel position of the stage, lowest first."),
        F("IsActive", "boolean",
          description="false when the stage is no longer offered (old deals may still be in it)."),
        F("ForecastCategoryName", description="Forecast category of the stage.", stage="forecast_category"),
    ),
)

ACCOUNT = ExportFile(
    "Account",
    "Account.csv",
    "accounts",
    required=True,
    description="Customers and prospects.",
    fields=(
        F("Id", "id", True, description="Salesforce Id of the account (001...).", stage="account_id"),
        F("Name", "string", True, description="Account name.", stage="account_name"),
        F("Industry", description="Industry."),
        F("NumberOfEmployees", "integer",
          description="Number of employees; drives the segment (see var segment_bands)."),
        F("AnnualRevenue", "number", description="Annual revenue, in the account's currency."),
        F("BillingCountry", description="Billing country."),
        F("ParentId", "id", description="Id of the parent account, if any.", stage="parent_account_id"),
        F("OwnerId", "id", description="Id of the user who owns the account."),
        F("Type", description="Account type (e.g. Customer, Prospect).", stage="account_type"),
        F("IsDeleted", "boolean", description="true when the record is in the recycle bin.", stage=NOT_DELETED),
    ),
)

USER = ExportFile(
    "User",
    "User.csv",
    "users",
    required=True,
    description="Sales reps, managers and everyone else who owns records.",
    fields=(
        F("Id", "id", True, description="Salesforce Id of the user (005...).", stage="user_id"),
        F("Name", "string", True, description="Full name.", stage="user_name"),
        F("Email", description="Email address; quotas.csv may identify owners by it."),
        F("ManagerId", "id", description="Id of the user's manager; the manager names the rep's team."),
        F("UserRoleId", "id", description="Id of the user's role (UserRole)."),
        F("Division", description="Division; the rep's region when region_source is division."),
        F("Department", description="Department."),
        F("IsActive", "boolean", True, description="false when the user has left (deactivated)."),
        F("CreatedDate", "datetime",
          description="When the user was created (used as hire date), ISO 8601 date-time in UTC.", stage="created_at"),
    ),
)

USER_ROLE = ExportFile(
    "UserRole",
    "UserRole.csv",
    "user_roles",
    required=False,
    description="The role hierarchy.",
    fields=(
        F("Id", "id", True, description="Salesforce Id of the role (00E...).", stage="user_role_id"),
        F("Name", "string", True, stage="user_role_name",
          description="Role name; the rep's region when region_source is role."),
        F("ParentRoleId", "id", description="Id of the parent role in the hierarchy."),
    ),
)

LEAD = ExportFile(
    "Lead",
    "Lead.csv",
    "leads",
    required=False,
    description="Leads and their conversion.",
    fields=(
        F("Id", "id", True, description="Salesforce Id of the lead (00Q...).", stage="lead_id"),
        F("OwnerId", "id", True, description="Id of the user who owns the lead."),
        F("CreatedDate", "datetime", True, stage="created_at",
          description="When the lead was created, ISO 8601 date-time in UTC."),
        F("Status", description="Lead status.", stage="lead_status"),
        F("LeadSource", description="Where the lead came from."),
        F("IsConverted", "boolean", description="true when the lead was converted."),
        F("ConvertedDate", "date", description="Date of conversion, YYYY-MM-DD."),
        F("ConvertedOpportunityId", "id", description="Id of the opportunity the lead was converted to."),
        F("ConvertedAccountId", "id", description="Id of the account the lead was converted to."),
        F("IsDeleted", "boolean", description="true when the record is in the recycle bin.", stage=NOT_DELETED),
    ),
)

TASK = ExportFile(
    "Task",
    "Task.csv",
    "tasks",
    required=False,
    description="Calls and emails.",
    staging_load_columns=("_source_file", "_row_number", "_run_id"),  # the activity models' incremental rule
    fields=(
        F("Id", "id", True, description="Salesforce Id of the task (00T...).", stage="task_id"),
        F("OwnerId", "id", True, description="Id of the user who owns the task."),
        F("WhoId", "id", description="Id of the lead or contact the task is about."),
        F("WhatId", "id", description="Id of the record (account, opportunity...) the task is about."),
        F("ActivityDate", "date", description="Due date of the task, YYYY-MM-DD."),
        F("TaskSubtype", description="Call or Email.", note="Call/Email"),
        F("Status", description="Task status.", stage="task_status"),
        F("CreatedDate", "datetime", True, stage="created_at",
          description="When the task was created, ISO 8601 date-time in UTC."),
        F("IsDeleted", "boolean", description="true when the record is in the recycle bin.", stage=NOT_DELETED),
    ),
)

EVENT = ExportFile(
    "Event",
    "Event.csv",
    "events",
    required=False,
    description="Meetings.",
    staging_load_columns=("_source_file", "_row_number", "_run_id"),
    fields=(
        F("Id", "id", True, description="Salesforce Id of the event (00U...).", stage="event_id"),
        F("OwnerId", "id", True, description="Id of the user who owns the event."),
        F("WhoId", "id", description="Id of the lead or contact the event is with."),
        F("WhatId", "id", description="Id of the record (account, opportunity...) the event is about."),
        F("StartDateTime", "datetime", True, stage="start_at",
          description="Start of the meeting, ISO 8601 date-time in UTC."),
        F("EndDateTime", "datetime", description="End of the meeting, ISO 8601 date-time in UTC.", stage="end_at"),
        F("DurationInMinutes", "integer", description="Duration in minutes.", stage="duration_minutes"),
        F("Type", description="Event type.", stage="event_type"),
        F("Subject", description="Subject line."),
        F("IsDeleted", "boolean", description="true when the record is in the recycle bin.", stage=NOT_DELETED),
    ),
)

CONTACT = ExportFile(
    "Contact",
    "Contact.csv",
    "contacts",
    required=False,
    description="The people at accounts that deals and activities are with.",
    when_absent="dim_contacts is empty",
    fields=(
        F("Id", "id", True, description="Salesforce Id of the contact (003...).", stage="contact_id"),
        F("AccountId", "id", description="Id of the contact's account."),
        F("OwnerId", "id", description="Id of the user who owns the contact."),
        F("FirstName", description="First name."),
        F("LastName", "string", True, description="Last name."),
        F("Email", description="Email address."),
        F("Title", description="Job title."),
        F("CreatedDate", "datetime", stage="created_at",
          description="When the contact was created, ISO 8601 date-time in UTC."),
        F("IsDeleted", "boolean", description="true when the record is in the recycle bin.", stage=NOT_DELETED),
    ),
)

PRODUCT = ExportFile(
    "Product2",
    "Product2.csv",
    "products",
    required=False,
    description="The product catalogue (Salesforce's Product2 object, HubSpot's products).",
    when_absent="line items have no product name or family",
    fields=(
        F("Id", "id", True, description="Salesforce Id of the product (01t...).", stage="product_id"),
        F("Name", "string", True, description="Product name.", stage="product_name"),
        F("ProductCode", description="Product code (SKU)."),
        F("Family", description="Product family.", stage="product_family"),
        F("IsActive", "boolean", description="false when the product is no longer sold."),
        F("IsDeleted", "boolean", description="true when the record is in the recycle bin.", stage=NOT_DELETED),
    ),
)

OPPORTUNITY_LINE_ITEM = ExportFile(
    "OpportunityLineItem",
    "OpportunityLineItem.csv",
    "opportunity_line_items",
    required=False,
    description="The products on a deal: one row per product line (HubSpot's line items).",
    when_absent="fct_opportunity_line_items and mart_product_performance are empty",
    fields=(
        F("Id", "id", True, description="Salesforce Id of the line item (00k...).", stage="line_item_id"),
        F("OpportunityId", "id", True, description="Id of the opportunity the line is on."),
        F("Product2Id", "id", True, description="Id of the product sold.", stage="product_id"),
        F("Quantity", "number", description="Quantity."),
        F("UnitPrice", "number", description="Price per unit, in the opportunity's currency."),
        F("TotalPrice", "number", True, nullable=True, note="line amount in the deal's currency; may be empty",
          description="Line amount (quantity times unit price less discount), in the opportunity's currency."),
        F("CreatedDate", "datetime", stage="created_at",
          description="When the line was added, ISO 8601 date-time in UTC."),
        F("IsDeleted", "boolean", description="true when the record is in the recycle bin.", stage=NOT_DELETED),
    ),
)

QUOTAS = ExportFile(
    "quotas",
    "quotas.csv",
    "quotas",
    required=True,
    key=None,
    source="sales_ops",
    description="Monthly quota per owner, from sales operations.",
    fields=(
        F("owner_id", "id", description="Id of the user the quota is for; may be empty when owner_email is given."),
        F("owner_email", description="Email of the user the quota is for, used when owner_id is empty."),
        F("period_start", "date", True, description="First day of the quota month, YYYY-MM-DD.",
          note="first day of a month"),
        F("quota_amount", "number", True, description="Bookings target for the month, in the reporting currency."),
    ),
    one_of=(("owner_id", "owner_email"),),
)

FX_RATES = ExportFile(
    "fx_rates",
    "fx_rates.csv",
    "fx_rates",
    required=False,
    key=None,
    source="sales_ops",
    description="Conversion rates to the reporting currency (1 unit of currency_iso_code = rate units).",
    fields=(
        F("currency_iso_code", "string", True, description="ISO 4217 currency code.", stage=Stage(cast="clean_code")),
        F("rate", "number", True, stage=Stage(scale=10), note="1 unit of the currency in reporting currency",
          description="Value of 1 unit of currency_iso_code in the reporting currency."),
        F("valid_from", "date",
          description="First day the rate applies, YYYY-MM-DD; empty means always (until a dated rate takes over)."),
    ),
)

USER_ASSIGNMENTS = ExportFile(
    "user_assignments",
    "user_assignments.csv",
    "user_assignments",
    required=False,
    key=None,
    source="sales_ops",
    description="Each user's past assignments (manager, role, division, department) and when they held, from "
    "sales operations: the history before the first night's User export, for crediting past deals and quotas "
    "to the team of the day.",
    when_absent="each rep's first recorded User export (the dbt snapshot snp_crm__users) holds for every "
    "earlier date",
    fields=(
        F("user_id", "id", True, description="Id of the user (005...) the assignment is of."),
        F("valid_from", "date", True, description="First day the assignment held, YYYY-MM-DD.",
          note="first day it held"),
        F("valid_to", "date",
          description="First day it no longer held, YYYY-MM-DD (exclusive); empty: until the user's next row "
          "or the first User export the warehouse recorded.",
          note="first day it no longer held; empty: until the next row"),
        F("manager_id", "id", description="Id of the user's manager then: the rep's team, as User.ManagerId."),
        F("user_role_id", "id", description="Id of the user's role then (UserRole), as User.UserRoleId."),
        F("division", description="Division then: the region when region_source is division, as User.Division."),
        F("department", description="Department then (the rep's segment when it names one), as User.Department."),
    ),
)

EXPORTS: tuple[ExportFile, ...] = (
    OPPORTUNITY,
    OPPORTUNITY_HISTORY,
    OPPORTUNITY_STAGE,
    ACCOUNT,
    USER,
    USER_ROLE,
    LEAD,
    TASK,
    EVENT,
    CONTACT,
    PRODUCT,
    OPPORTUNITY_LINE_ITEM,
    QUOTAS,
    FX_RATES,
    USER_ASSIGNMENTS,
)

# Metadata columns the loader adds to every raw table.
LOAD_COLUMNS = ("_source_file", "_row_number", "_run_id", "_loaded_at")


def export_by_table(table: str) -> ExportFile:
    for e in EXPORTS:
        if e.table == table:
            return e
    raise KeyError(table)


def export_by_filename(filename: str) -> ExportFile | None:
    """Files match by name case-insensitively (`opportunity.csv` is `Opportunity.csv`)."""
    for e in EXPORTS:
        if e.filename.lower() == filename.lower():
            return e
    return None


def map_headers(export: ExportFile, headers: list[str]) -> dict[str, str]:
    """Map a file's headers to warehouse column names.

    Contract fields match case-insensitively and in snake_case (`StageName`, `stagename`,
    `stage_name`); any other column (custom `*__c` fields included) is kept under its
    snake_case name. Raises ValueError when two headers land on the same column.
    """
    by_key = {header_key(f.api_name): f.column for f in export.fields}
    mapping: dict[str, str] = {}
    seen: dict[str, str] = {}
    for h in headers:
        col = by_key.get(header_key(h)) or snake_case(h)
        if col in seen:
            raise ValueError(f"{export.filename}: headers {seen[col]!r} and {h!r} both map to column {col!r}")
        seen[col] = h
        mapping[h] = col
    return mapping


# ------------------------------------------------------------------------------------------- dbt sources

# The dbt sources of the raw tables: name -> (its file under dbt_project/models/staging, its description).
DBT_SOURCES = {
    "crm": (
        "crm/_crm__sources.yml",
        "Salesforce-shaped CRM exports loaded by salesos.extract into the raw schema (one table per export file, "
        "all columns text, custom *__c columns kept, plus load metadata). See docs/export-contract.md.",
    ),
    "sales_ops": (
        "sales_ops/_sales_ops__sources.yml",
        "Files from sales operations (quotas.csv, fx_rates.csv, user_assignments.csv) loaded into the raw schema "
        "like the CRM exports.",
    ),
}
# The columns the loader adds to every raw table (LOAD_COLUMNS and the row fingerprint), as dbt documents them.
LOAD_COLUMN_DESCRIPTIONS = {
    "_source_file": "Name of the export file the row was loaded from.",
    "_row_number": "Position of the row in its file (1 = first data row).",
    "_run_id": "Id of the run that loaded the row.",
    "_loaded_at": "When the row was loaded (UTC).",
}
ROW_HASH_KEYED = ("Fingerprint of the row's text as read; an incremental load skips rows whose Id and fingerprint "
                  "are unchanged.")
ROW_HASH_KEYLESS = "Fingerprint of the row's text as read (these exports have no Id: every load replaces the table)."
RAW_TEXT = ("every value as text (typed fields normalised by the loader: dates YYYY-MM-DD, date-times "
            "YYYY-MM-DD HH:MM:SS in UTC, booleans true/false, plain decimals)")


def column_description(f: Field) -> str:
    """A raw column's dbt description: the contract's words, then the export field, its type and its rules."""
    rules = f.type + (", required column" if f.required else "")
    if f.not_null:
        rules += ", never empty: rows without it are quarantined by the loader"
    return f"{f.description} Export field {f.api_name} ({rules})." if f.description else \
        f"Export field {f.api_name} ({rules})."


def table_description(e: ExportFile) -> str:
    text = (f"{e.description} Raw rows of {e.filename}, {RAW_TEXT}; rows that could not load are in the "
            "quarantine schema.")
    if not e.required:
        text += " Optional export: when the file is absent the table exists and is empty"
        text += f", and {e.when_absent}." if e.when_absent else "."
    return text


def _q(text: str) -> str:
    """A YAML double-quoted scalar (JSON's string syntax is a subset of it)."""
    return json.dumps(text, ensure_ascii=False)


def dbt_source_yaml(source: str) -> str:
    """The text of one dbt sources file, generated from the contract (every export of that source)."""
    _, description = DBT_SOURCES[source]
    lines = [
        "# Generated from salesos/contract.py by `python -m salesos.contract --write-dbt-sources`: edit the contract.",
        "version: 2",
        "",
        "sources:",
        f"  - name: {source}",
        f"    description: {_q(description)}",
        "    schema: \"{{ var('raw_schema', 'raw') }}\"",
        "    config:",
        "      loaded_at_field: _loaded_at",
        "      freshness:",
        "        warn_after: {count: 36, period: hour}",
        "        error_after: {count: 72, period: hour}",
        "    tables:",
    ]
    for e in (e for e in EXPORTS if e.source == source):
        lines += [f"      - name: {e.table}", f"        description: {_q(table_description(e))}"]
        if not e.required:  # an optional export may be absent for good: its age says nothing
            lines += ["        config:", "          freshness: null"]
        lines.append("        columns:")
        columns = [(f.column, column_description(f), staging_meta(f)) for f in e.fields]
        columns += [(name, text, {"as": name} if name in e.staging_load_columns else None)
                    for name, text in LOAD_COLUMN_DESCRIPTIONS.items()]
        columns.append(("_row_hash", ROW_HASH_KEYED if e.key else ROW_HASH_KEYLESS, None))
        for name, text, meta in columns:
            lines += [f"          - name: {name}", f"            description: {_q(text)}"]
            if meta is not None:
                flow = ", ".join(f"{k}: {_q(v) if isinstance(v, str) else v}" for k, v in meta.items())
                lines += ["            config:", "              meta:", f"                staging: {{{flow}}}"]
    return "\n".join(lines) + "\n"


def staging_meta(f: Field) -> dict[str, str | int] | None:
    """What macro stage_columns reads of a raw column: its staging name and cast (None: not staged)."""
    if f.stage is None:
        return None
    meta: dict[str, str | int] = {"as": f.staged_as or f.column, "cast": f.stage.cast or STAGING_CASTS[f.type]}
    if f.stage.scale is not None:
        meta["scale"] = f.stage.scale
    if f.stage.empty_as:
        meta["empty_as"] = f.stage.empty_as
    return meta


STAGING_HEADER = """\
-- Generated from salesos/contract.py by `python -m salesos.contract --write-dbt-sources`: edit the contract.
-- Staging of raw.{table} ({filename}): renames and casts only.
-- Macro stage_columns (macros/staging.sql) selects what the `staging` meta of the columns in
-- {sources} says:
"""


def dbt_staging_sql(e: ExportFile) -> str:
    """The text of an export's staging model: the select list spelled out in its header, then the macro call."""
    sources, _ = DBT_SOURCES[e.source]
    selects = [(f.staged_as, f.staging_expression() or "") for f in e.fields if f.stage is not None]
    selects += [(name, name) for name in e.staging_load_columns]
    width = max(len(sql) for _, sql in selects)
    lines = [STAGING_HEADER.format(table=e.table, filename=e.filename, sources=f"models/staging/{sources}")]
    lines += [f"--   {sql.ljust(width)}  as {name}\n" if sql != name else f"--   {name}\n" for name, sql in selects]
    lines.append("--   then the export's custom *__c columns, as they are (macro custom_columns)\n")
    lines.append(f"with source as (select * from {{{{ source('{e.source}', '{e.table}') }}}})\n\n")
    lines.append(f"select {{{{ stage_columns('{e.source}', '{e.table}') }}}}\nfrom source\n")
    return "".join(lines)


# ------------------------------------------------------------------------------------------- the contract page

CONTRACT_PAGE = Path("docs") / "export-contract.md"
FIELDS_BEGIN = ("<!-- Generated from salesos/contract.py by `python -m salesos.contract --write-dbt-sources`: "
                "edit the contract, not this table. -->")
FIELDS_END = "<!-- end of the generated table -->"


def _field_cell(f: Field) -> str:
    name = f"**{f.api_name}**" if f.required else f.api_name
    return f"{name} ({f.note})" if f.note else name


def fields_used_table() -> str:
    """The "Fields used" table of docs/export-contract.md: every field of every export, required ones in bold.

    Fields of a `one_of` group are one cell (`owner_id *or* owner_email (one of them)`), where the first of them is.
    """
    lines = [FIELDS_BEGIN, "| file | fields |", "| --- | --- |"]
    for e in EXPORTS:
        groups = {c: g for g in e.one_of for c in g}
        cells: list[str] = []
        for f in e.fields:
            group = groups.get(f.column)
            if group is None:
                cells.append(_field_cell(f))
            elif group[0] == f.column:
                members = [m for m in e.fields if m.column in group]
                cells.append(" *or* ".join(_field_cell(m) for m in members) + " (one of them)")
        lines.append(f"| `{e.filename}` | {', '.join(cells)} |")
    return "\n".join([*lines, FIELDS_END]) + "\n"


def contract_page(text: str) -> str:
    """The contract page's text with its generated "Fields used" table rewritten from the contract."""
    begin, end = text.find(FIELDS_BEGIN), text.find(FIELDS_END)
    if begin < 0 or end < begin:
        raise ValueError(f"{CONTRACT_PAGE}: the markers of the generated Fields used table are missing "
                         f"({FIELDS_BEGIN!r} ... {FIELDS_END!r})")
    return text[:begin] + fields_used_table() + text[end + len(FIELDS_END):].removeprefix("\n")


def generated_files(root: Path | None = None) -> dict[Path, str]:
    """Every file written from the contract: the dbt files (`dbt_source_files`) and the contract page's table."""
    root = root or Path(__file__).resolve().parent.parent
    page = root / CONTRACT_PAGE
    return {**dbt_source_files(root / "dbt_project"), page: contract_page(page.read_text(encoding="utf-8"))}


def dbt_source_files(project_dir: Path | None = None) -> dict[Path, str]:
    """Every generated dbt file: the sources files and the staging models of the raw tables, path and text."""
    staging = (project_dir or Path(__file__).resolve().parent.parent / "dbt_project") / "models" / "staging"
    files = {staging / path: dbt_source_yaml(name) for name, (path, _) in DBT_SOURCES.items()}
    for e in EXPORTS:
        files[staging / Path(DBT_SOURCES[e.source][0]).parent / f"{e.staging_model}.sql"] = dbt_staging_sql(e)
    return files


def main(argv: list[str] | None = None) -> int:
    """`python -m salesos.contract --write-dbt-sources`: the dbt sources, the raw tables' staging models and the
    contract page's "Fields used" table (`--check-dbt-sources` compares)."""
    parser = argparse.ArgumentParser(prog="python -m salesos.contract", description=main.__doc__)
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--write-dbt-sources", action="store_true",
                      help="write the dbt sources files, the raw tables' staging models and the contract page's table")
    mode.add_argument("--check-dbt-sources", action="store_true",
                      help="exit 1 when a generated file is out of date")
    args = parser.parse_args(argv)
    files = generated_files()
    stale = [p for p, text in files.items() if not p.is_file() or p.read_text(encoding="utf-8") != text]
    if args.check_dbt_sources:
        for p in stale:
            print(f"{p}: out of date; run python -m salesos.contract --write-dbt-sources", file=sys.stderr)
        return 1 if stale else 0
    for p in stale:
        p.write_text(files[p], encoding="utf-8")
        print(f"wrote {p}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
