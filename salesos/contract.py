"""The CRM export contract: which files a run reads, which fields it uses, and how headers match.

Input is a folder shaped like a Salesforce data export (one CSV per object, API field names as
headers) plus two files from sales operations (`quotas.csv`, optional `fx_rates.csv`). This module
is the single place that says what those files are; the generator, the loader, the validation
suites and the dbt sources all read it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

FieldType = Literal["id", "string", "number", "integer", "boolean", "date", "datetime"]


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

    @property
    def not_null(self) -> bool:
        """Rows with an empty value here cannot be loaded and go to quarantine."""
        return self.required and not self.nullable

    @property
    def column(self) -> str:
        """The snake_case column name used in the warehouse."""
        return snake_case(self.api_name)


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

    @property
    def columns(self) -> list[str]:
        return [f.column for f in self.fields]

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
) -> Field:
    return Field(api_name, type, required, description, nullable, not_in_every_source)


OPPORTUNITY = ExportFile(
    "Opportunity",
    "Opportunity.csv",
    "opportunities",
    required=True,
    description="Deals: one row per opportunity, as it stands at export time.",
    fields=(
        F("Id", "id", True),
        F("AccountId", "id", True, "Empty for deals without an account.", nullable=True),
        F("OwnerId", "id", True),
        F("Name"),
        F("StageName", "string", True),
        F("Amount", "number", True, "Deal amount in CurrencyIsoCode; may be empty.", nullable=True),
        F("Probability", "number", description="Win probability, 0-100."),
        F("ForecastCategoryName"),
        F("CloseDate", "date", True),
        F("CreatedDate", "datetime", True),
        F("IsClosed", "boolean", True),
        F("IsWon", "boolean", True),
        F("IsDeleted", "boolean"),
        F("Type"),
        F("LeadSource"),
        F("CurrencyIsoCode"),
        F("LastModifiedDate", "datetime"),
        # not a Salesforce field: a connector's sync time of the row (salesos.extract.connectors)
        F("SyncedAt", "datetime", description="When a connector last synced the row (Fivetran _fivetran_synced, "
          "Airbyte _airbyte_extracted_at); freshness falls back to it where LastModifiedDate is empty.",
          not_in_every_source=True),
    ),
)

OPPORTUNITY_HISTORY = ExportFile(
    "OpportunityHistory",
    "OpportunityHistory.csv",
    "opportunity_histories",
    required=False,
    description="Every change of stage, amount or close date of an opportunity.",
    fields=(
        F("Id", "id"),
        F("OpportunityId", "id", True),
        F("StageName", "string", True),
        F("Amount", "number"),
        F("Probability", "number"),
        F("CloseDate", "date"),
        F("ForecastCategory"),
        F("CreatedDate", "datetime", True),
        F("IsDeleted", "boolean"),
        # Salesforce's OpportunityHistory has no flags; a connector's history-mode copy of Opportunity does.
        F("IsClosed", "boolean", description="Closed after the change, where the export carries it.",
          not_in_every_source=True),
        F("IsWon", "boolean", description="Won after the change, where the export carries it.",
          not_in_every_source=True),
    ),
)

# The stage picklist (Setup -> Opportunity Stages; the OpportunityStage object): which stage names are
# closed and won, so that nothing is ever decided from a stage's name (docs/export-contract.md, "Stages").
OPPORTUNITY_STAGE = ExportFile(
    "OpportunityStage",
    "OpportunityStage.csv",
    "opportunity_stages",
    required=False,
    description="The opportunity stages of the CRM, with their closed and won flags and funnel order.",
    fields=(
        F("Id", "id", True),
        F("MasterLabel", "string", True, "The stage name as Opportunity.StageName holds it."),
        F("ApiName", "string", description="The stage's API name, when it differs from the label."),
        F("IsClosed", "boolean", True),
        F("IsWon", "boolean", True),
        F("DefaultProbability", "number", description="Win probability of the stage, 0-100."),
        F("SortOrder", "integer", description="Funnel position of the stage (lowest first)."),
        F("IsActive", "boolean"),
        F("ForecastCategoryName"),
    ),
)

ACCOUNT = ExportFile(
    "Account",
    "Account.csv",
    "accounts",
    required=True,
    description="Customers and prospects.",
    fields=(
        F("Id", "id", True),
        F("Name", "string", True),
        F("Industry"),
        F("NumberOfEmployees", "integer"),
        F("AnnualRevenue", "number"),
        F("BillingCountry"),
        F("ParentId", "id"),
        F("OwnerId", "id"),
        F("Type"),
        F("IsDeleted", "boolean"),
    ),
)

USER = ExportFile(
    "User",
    "User.csv",
    "users",
    required=True,
    description="Sales reps, managers and everyone else who owns records.",
    fields=(
        F("Id", "id", True),
        F("Name", "string", True),
        F("Email"),
        F("ManagerId", "id"),
        F("UserRoleId", "id"),
        F("Division"),
        F("Department"),
        F("IsActive", "boolean", True),
        F("CreatedDate", "datetime"),
    ),
)

USER_ROLE = ExportFile(
    "UserRole",
    "UserRole.csv",
    "user_roles",
    required=False,
    description="The role hierarchy.",
    fields=(
        F("Id", "id", True),
        F("Name", "string", True),
        F("ParentRoleId", "id"),
    ),
)

LEAD = ExportFile(
    "Lead",
    "Lead.csv",
    "leads",
    required=False,
    description="Leads and their conversion.",
    fields=(
        F("Id", "id", True),
        F("OwnerId", "id", True),
        F("CreatedDate", "datetime", True),
        F("Status"),
        F("LeadSource"),
        F("IsConverted", "boolean"),
        F("ConvertedDate", "date"),
        F("ConvertedOpportunityId", "id"),
        F("ConvertedAccountId", "id"),
        F("IsDeleted", "boolean"),
    ),
)

TASK = ExportFile(
    "Task",
    "Task.csv",
    "tasks",
    required=False,
    description="Calls and emails.",
    fields=(
        F("Id", "id", True),
        F("OwnerId", "id", True),
        F("WhoId", "id"),
        F("WhatId", "id"),
        F("ActivityDate", "date"),
        F("TaskSubtype", description="Call or Email."),
        F("Status"),
        F("CreatedDate", "datetime", True),
        F("IsDeleted", "boolean"),
    ),
)

EVENT = ExportFile(
    "Event",
    "Event.csv",
    "events",
    required=False,
    description="Meetings.",
    fields=(
        F("Id", "id", True),
        F("OwnerId", "id", True),
        F("WhoId", "id"),
        F("WhatId", "id"),
        F("StartDateTime", "datetime", True),
        F("EndDateTime", "datetime"),
        F("DurationInMinutes", "integer"),
        F("Type"),
        F("Subject"),
        F("IsDeleted", "boolean"),
    ),
)

QUOTAS = ExportFile(
    "quotas",
    "quotas.csv",
    "quotas",
    required=True,
    key=None,
    description="Monthly quota per owner, from sales operations.",
    fields=(
        F("owner_id", "id"),
        F("owner_email"),
        F("period_start", "date", True, "First day of the quota month."),
        F("quota_amount", "number", True),
    ),
    one_of=(("owner_id", "owner_email"),),
)

FX_RATES = ExportFile(
    "fx_rates",
    "fx_rates.csv",
    "fx_rates",
    required=False,
    key=None,
    description="Conversion rates to the reporting currency (1 unit of currency_iso_code = rate units).",
    fields=(
        F("currency_iso_code", "string", True),
        F("rate", "number", True),
        F("valid_from", "date", description="First day the rate applies; absent means always."),
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
    QUOTAS,
    FX_RATES,
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
