"""HubSpot's own CSV exports as a source (`--source hubspot-exports`), into the same contract files as Fivetran's.

A HubSpot export (CRM > Deals / Companies / Contacts / Leads / Activities > Export, Settings > Users & Teams >
Export users) writes one CSV per object with the properties' labels as headers ("Record ID", "Deal Name",
"Deal Stage", "Close Date", "Deal owner", ...), stage and owner as their labels, and associations as
"Associated Company IDs" lists. `FILES` says once which label is which property; each file is turned into
the table Fivetran's connector lands for the same object (its columns renamed, the lists split into
association tables, a stage label resolved to its stage id, an owner's name or email to its user id) and
`fivetran_hubspot.py`'s translation builds the contract files from those, so both HubSpot sources give the
same Opportunity, OpportunityHistory, OpportunityStage, Account, User, Lead, Task and Event.

HubSpot's export has no pipeline settings, so the pipelines and stages with their flags come as a
`pipelines.csv` (Settings > Objects > Deals > Pipelines, or the pipelines API), and the deal property
history as `deal_history.csv` (the property history HubSpot keeps per deal: one row per change of
`dealstage`, `amount`, `closedate`, `hs_deal_stage_probability` or `hs_forecast_category`). HubSpot keeps
no history of a user's teams either: sales operations' `user_assignments.csv` (optional, as for Salesforce)
gives each owner's past teams, managers and roles, its team placed as users.csv's primary team is.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from salesos.contract import header_key
from salesos.extract.connectors import fivetran_hubspot as fh
from salesos.extract.connectors import translate as t
from salesos.extract.connectors.spec import Connector
from salesos.extract.landing import ArchivedFile


@dataclass(frozen=True)
class Column:
    """One property of an export file: the name Fivetran's table gives it, HubSpot's label (the header the
    export writes; `aliases` are other labels HubSpot uses for it), and what is done with its value."""

    name: str
    label: str
    aliases: tuple[str, ...] = ()
    required: bool = False
    # owner: a user's id, email or full name, resolved to the user id; ids: a list of record ids (associations);
    # first: the first id of such a list
    kind: str = "text"

    @property
    def labels(self) -> tuple[str, ...]:
        return (self.label, *self.aliases)


@dataclass(frozen=True)
class ExportFile:
    """One HubSpot export file: its name (the file's stem), the contract object it feeds, and its columns."""

    name: str
    feeds: str
    required: bool
    columns: tuple[Column, ...]
    description: str = ""
    # association lists of this file: the column's name -> (Fivetran's association table, its target column)
    associations: dict[str, tuple[str, str]] = field(default_factory=dict)

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)


def C(name: str, label: str, *aliases: str, required: bool = False, kind: str = "text") -> Column:
    return Column(name, label, aliases, required, kind)


_ACTIVITY_ASSOCIATIONS = {
    "associated_deal_ids": ("engagement_deal", "deal_id"),
    "associated_company_ids": ("engagement_company", "company_id"),
    "associated_contact_ids": ("engagement_contact", "contact_id"),
    "associated_lead_ids": ("engagement_lead", "lead_id"),
}
_ACTIVITY_LISTS = (
    C("associated_deal_ids", "Associated Deal IDs", "Associated Deal", kind="ids"),
    C("associated_company_ids", "Associated Company IDs", "Associated Company", kind="ids"),
    C("associated_contact_ids", "Associated Contact IDs", "Associated Contact", kind="ids"),
    C("associated_lead_ids", "Associated Lead IDs", "Associated Lead", kind="ids"),
)


def _activity(name: str, feeds: str, *columns: Column, description: str) -> ExportFile:
    return ExportFile(name, feeds, False, (
        C("engagement_id", "Record ID", "Activity ID", required=True),
        C("property_hubspot_owner_id", "Activity assigned to", "Activity owner", "Assigned to", kind="owner"),
        *columns,
        *_ACTIVITY_LISTS,
    ), description, _ACTIVITY_ASSOCIATIONS)


# Every HubSpot export file salesos reads, each column once. The generator writes the same labels
# (salesos/generate/hubspot.py) and docs/export-contract.md lists them (tests check both).
FILES: tuple[ExportFile, ...] = (
    ExportFile("deals", "Opportunity", True, (
        C("deal_id", "Record ID", "Deal ID", required=True),
        C("property_dealname", "Deal Name"),
        C("deal_pipeline_id", "Pipeline"),
        C("deal_pipeline_stage_id", "Deal Stage", required=True),
        C("property_amount", "Amount"),
        C("property_closedate", "Close Date"),
        C("property_createdate", "Create Date", required=True),
        C("owner_id", "Deal owner", "Deal Owner", required=True, kind="owner"),
        C("property_dealtype", "Deal Type"),
        C("property_hs_analytics_source", "Original Source", "Original Traffic Source"),
        C("property_hs_deal_stage_probability", "Deal probability", "Deal Stage Probability"),
        C("property_hs_forecast_category", "Forecast category"),
        C("property_deal_currency_code", "Currency"),
        C("property_hs_lastmodifieddate", "Last Modified Date"),
        C("associated_company_ids", "Associated Company IDs", "Associated Company", kind="ids"),
    ), "deals: one row per deal; stage and pipeline by label (or id), owner by name, email or user id",
        {"associated_company_ids": ("deal_company", "company_id")}),
    ExportFile("pipelines", "OpportunityStage", True, (
        C("pipeline_id", "Pipeline ID"),
        C("pipeline_label", "Pipeline"),
        C("pipeline_display_order", "Pipeline Display Order"),
        C("stage_id", "Stage ID", required=True),
        C("label", "Stage", "Stage Name", required=True),
        C("display_order", "Display Order", "Stage Display Order"),
        C("probability", "Probability", "Win Probability"),
        C("is_closed", "Is Closed", "Closed", required=True),
        C("closed_won", "Closed Won", "Is Won"),
        C("active", "Active"),
        C("forecast_category", "Forecast Category"),
    ), "the deal pipelines' stages: closed and won flags, probability 0-1, order"),
    ExportFile("deal_history", "OpportunityHistory", False, (
        C("deal_id", "Record ID", "Deal ID", required=True),
        C("name", "Property", "Property Name", required=True),
        C("value", "Value", "New Value", required=True),
        C("timestamp", "Timestamp", "Changed At", required=True),
    ), "deal property history: one row per change of a deal property"),
    ExportFile("companies", "Account", True, (
        C("id", "Record ID", "Company ID", required=True),
        C("property_name", "Company name", "Company Name"),
        C("property_domain", "Company Domain Name", "Domain"),
        C("property_industry", "Industry"),
        C("property_numberofemployees", "Number of Employees"),
        C("property_annualrevenue", "Annual Revenue"),
        C("property_country", "Country/Region", "Country"),
        C("property_hs_parent_company_id", "Parent Company ID", "Parent Company"),
        C("property_hubspot_owner_id", "Company owner", "Company Owner", kind="owner"),
        C("property_type", "Type", "Company Type"),
    ), "companies"),
    ExportFile("users", "User", True, (
        C("owner_id", "User ID", "Owner ID", required=True),
        C("first_name", "First Name"),
        C("last_name", "Last Name"),
        C("email", "Email", "Email Address"),
        C("is_active", "Active"),
        C("created_at", "Created Date", "Created At"),
        C("manager_id", "Manager", kind="owner"),
        C("role_id", "Role", "Assigned Role"),
        C("primary_team", "Primary Team", "Team", "Teams", "Assigned Teams"),
    ), "users and teams (Settings > Users & Teams > Export users); the primary team places the user"),
    ExportFile("teams", "User", False, (
        C("team_id", "Team ID"),
        C("name", "Team Name", "Team", required=True),
        C("parent_team", "Parent Team Name", "Parent Team"),
    ), "the team tree: a team's parent team, by name"),
    ExportFile("leads", "Lead", False, (
        C("lead_id", "Record ID", "Lead ID", required=True),
        C("property_hubspot_owner_id", "Lead owner", "Lead Owner", required=True, kind="owner"),
        C("property_createdate", "Create Date", required=True),
        C("property_hs_lead_status", "Lead Status", "Lead Stage"),
        C("property_hs_lead_source", "Lead Source"),
        C("property_hs_converted", "Converted"),
        C("property_hs_converted_date", "Converted Date"),
        C("associated_deal_ids", "Associated Deal IDs", "Associated Deal", kind="ids"),
        C("associated_company_ids", "Associated Company IDs", "Associated Company", kind="ids"),
    ), "leads (Sales Hub's Leads object); a lead associated with a deal is converted"),
    _activity("calls", "Task",
              C("property_hs_timestamp", "Activity date", "Activity Date", required=True),
              C("property_hs_createdate", "Create Date"),
              C("property_hs_task_status", "Status", "Call status"),
              description="calls"),
    _activity("emails", "Task",
              C("property_hs_timestamp", "Activity date", "Activity Date", required=True),
              C("property_hs_createdate", "Create Date"),
              C("property_hs_task_status", "Status", "Email status"),
              description="logged emails"),
    _activity("tasks", "Task",
              C("property_hs_timestamp", "Due date", "Activity date", required=True),
              C("property_hs_createdate", "Create Date"),
              C("property_hs_task_status", "Task Status", "Status"),
              description="tasks"),
    _activity("meetings", "Event",
              C("property_hs_meeting_start_time", "Meeting start time", "Start Time", required=True),
              C("property_hs_meeting_end_time", "Meeting end time", "End Time"),
              C("property_hs_meeting_title", "Meeting name", "Meeting Title"),
              C("property_hs_activity_type", "Meeting type", "Activity type"),
              description="meetings"),
    ExportFile("contacts", "Contact", False, (
        C("id", "Record ID", "Contact ID", required=True),
        C("property_firstname", "First Name"),
        C("property_lastname", "Last Name"),
        C("property_email", "Email"),
        C("property_jobtitle", "Job Title"),
        C("property_hubspot_owner_id", "Contact owner", "Contact Owner", kind="owner"),
        C("property_associatedcompanyid", "Associated Company IDs", "Primary Associated Company ID",
          "Associated Company", kind="first"),
        C("property_createdate", "Create Date"),
    ), "contacts; the account is the first associated company"),
    ExportFile("products", "Product2", False, (
        C("id", "Record ID", "Product ID", required=True),
        C("property_name", "Name", "Product Name", required=True),
        C("property_hs_sku", "SKU"),
        C("property_product_family", "Product family", "Product Type"),
        C("property_active", "Active"),
    ), "the product library"),
    ExportFile("line_items", "OpportunityLineItem", False, (
        C("id", "Record ID", "Line Item ID", required=True),
        C("property_hs_product_id", "Product ID", required=True),
        C("property_quantity", "Quantity"),
        C("property_price", "Unit price", "Price"),
        C("property_amount", "Net price", "Amount", required=True),
        C("property_createdate", "Create Date"),
        C("associated_deal_ids", "Associated Deal IDs", "Associated Deal", kind="ids"),
    ), "line items: the products on deals; the deal is the first associated deal",
        {"associated_deal_ids": ("line_item_deal", "deal_id")}),
    ExportFile("quotas", "quotas", True, (), "sales operations' quota file, as the contract's quotas.csv"),
    ExportFile("fx_rates", "fx_rates", False, (), "sales operations' rates, as the contract's fx_rates.csv"),
    ExportFile("user_assignments", "user_assignments", False, (
        C("user_id", "User ID", "Owner ID", required=True, kind="owner"),
        C("valid_from", "Valid From", required=True),
        C("valid_to", "Valid To"),
        C("manager_id", "Manager", "Manager ID", kind="owner"),
        C("user_role_id", "Role", "User Role ID"),
        C("team", "Primary Team", "Team"),
        C("division", "Division"),
        C("department", "Department"),
    ), "sales operations' record of each user's past teams, managers and roles (HubSpot keeps no assignment "
        "history), for the team of the day; one row per user and assignment, keyed by the HubSpot owner; "
        "\"Primary Team\" is placed as users.csv's is (or give Division and Department)"),
)
FILES_BY_NAME = {f.name: f for f in FILES}
# the activity files and the Fivetran table each becomes
ENGAGEMENTS = {"calls": "engagement_call", "emails": "engagement_email", "tasks": "engagement_task",
               "meetings": "engagement_meeting"}
# a file with no columns of its own is read as it is (sales operations' files)
OWN_FILES = tuple(f.name for f in FILES if not f.columns)


class _Files:
    """The landed export files as DuckDB views (every value as text, the file's row as `t._ROW`)."""

    def __init__(self, con: duckdb.DuckDBPyConnection, connector: Connector, archive_dir: Path,
                 landed: dict[str, t.LandedTable]) -> None:
        self.con, self.connector, self.landed = con, connector, landed
        self.headers: dict[str, dict[str, str]] = {}  # file -> column name -> its header in the file
        self.unknown: dict[str, list[str]] = {}
        for name, lt in landed.items():
            view = self.view(name)
            con.execute(f"create or replace view {view} as select *, row_number() over () as {t._ROW} "
                        f"from {t._relation(archive_dir / t.LANDED_DIR / lt.filename)}")
            try:
                names = [d[0] for d in con.execute(f"select * from {view} limit 0").description if d[0] != t._ROW]
            except duckdb.Error as exc:
                raise t.ConnectorTableError(f"{connector.title} file {lt.filename}: cannot be read: "
                                            f"{' '.join(str(exc).split())[:200]}") from exc
            spec = FILES_BY_NAME[name]
            by_key = {header_key(n): n for n in names}
            found: dict[str, str] = {}
            for c in spec.columns:
                header = next((by_key[header_key(label)] for label in c.labels if header_key(label) in by_key), None)
                if header is not None:
                    found[c.name] = header
                elif c.required:
                    raise t.ConnectorTableError(
                        f"{connector.title} file {lt.filename}: required column \"{c.label}\" ({spec.feeds}) is "
                        f"missing; it has {', '.join(names)}")
            self.headers[name] = found
            used = set(found.values())
            self.unknown[name] = [n for n in names if n not in used] if spec.columns else []

    @staticmethod
    def view(name: str) -> str:
        return t._q("_hx_" + name)

    def has(self, name: str) -> bool:
        return name in self.landed

    def value(self, name: str, column: str, alias: str = "") -> str:
        """The column's value as trimmed text, null when empty or when the file does not have the column."""
        header = self.headers[name].get(column)
        if header is None:
            return "null::varchar"
        prefix = f"{alias}." if alias else ""
        return f"nullif(trim(cast({prefix}{t._q(header)} as varchar)), '')"


def _owner_lookup(f: _Files) -> str:
    """(ref, owner_id): each user's id, email and full name, lower-cased; a ref two users share is left out."""
    u = "users"
    uid, email = f.value(u, "owner_id"), f.value(u, "email")
    full = f"nullif(trim(concat_ws(' ', {f.value(u, 'first_name')}, {f.value(u, 'last_name')})), '')"
    refs = " union all ".join(f"select lower({ref}) as ref, {uid} as owner_id from {f.view(u)}"
                              for ref in (uid, email, full))
    return (f"select ref, min(owner_id) as owner_id from ({refs}) where ref is not null group by ref "
            f"having count(distinct owner_id) = 1")


def _stage_lookup(f: _Files) -> str:
    """(pipeline, ref, stage_id): a stage by its id or label, within a pipeline given by its id or label
    (lower-cased), and under pipeline '*' where the label is one stage's in every pipeline."""
    p = "pipelines"
    sid, label = f.value(p, "stage_id"), f.value(p, "label")
    pid, plabel = f.value(p, "pipeline_id"), f.value(p, "pipeline_label")
    rows = []
    for pipeline in (pid, plabel, "'*'"):
        for ref in (sid, label):
            rows.append(f"select lower({pipeline}) as pipeline, lower({ref}) as ref, {sid} as stage_id "
                        f"from {f.view(p)}")
    return (f"select pipeline, ref, min(stage_id) as stage_id from ({' union all '.join(rows)}) "
            f"where pipeline is not null and ref is not null group by pipeline, ref "
            f"having count(distinct stage_id) = 1")


def _resolved_stage(value: str, pipeline: str) -> tuple[str, str]:
    """(joins, stage id) of a stage `value` (label or id) of the deal's `pipeline` (label, id or null)."""
    joins = (f" left join _hx_stage_lookup as sp on sp.pipeline = lower({pipeline}) and sp.ref = lower({value})"
             f" left join _hx_stage_lookup as sa on sa.pipeline = '*' and sa.ref = lower({value})")
    return joins, f"coalesce(sp.stage_id, sa.stage_id, {value})"


def _owner(f: _Files, name: str, column: str, alias: str) -> tuple[str, str]:
    """(joins, owner id) of an owner column: the user its id, email or full name names, else the value."""
    value = f.value(name, column, alias)
    j = f"_own_{column}"
    return (f" left join _hx_owner_lookup as {j} on {j}.ref = lower({value})",
            f"coalesce({j}.owner_id, {value})")


def _renamed(f: _Files, name: str, extra: dict[str, str] | None = None) -> str:
    """A select of the file's columns under Fivetran's names (owners resolved), with its row number."""
    spec, x = FILES_BY_NAME[name], "x"
    joins, cols = "", []
    for c in spec.columns:
        if c.kind == "ids":
            continue
        if extra and c.name in extra:
            continue
        if c.kind == "owner" and f.has("users"):
            j, value = _owner(f, name, c.name, x)
            joins += j
        elif c.kind == "first":
            value = f"nullif(trim(string_split({f.value(name, c.name, x)}, ';')[1]), '')"
        else:
            value = f.value(name, c.name, x)
        cols.append(f"{value} as {t._q(c.name)}")
    cols += [f"{v} as {t._q(k)}" for k, v in (extra or {}).items()]
    return f"select {', '.join(cols)}, {x}.{t._ROW} from {f.view(name)} as {x}{joins}"


def _association(f: _Files, names: list[str], column: str, source_key: str, target: str) -> str:
    """Fivetran's association table (source_key, target) from the list column of the files `names` (HubSpot
    separates the record ids of a list with ';')."""
    key_column = {"deal_id": "deal_id", "engagement_id": "engagement_id", "line_item_id": "id"}[source_key]
    parts = [f"select {f.value(name, key_column, 'x')} as {source_key}, "
             f"unnest(string_split(replace(coalesce({f.value(name, column, 'x')}, ''), ',', ';'), ';')) as {target}, "
             f"x.{t._ROW} from {f.view(name)} as x" for name in names]
    return (f"select {source_key}, trim({target}) as {target}, {t._ROW} from ({' union all '.join(parts)}) "
            f"where trim({target}) <> ''")


def _relations(f: _Files) -> tuple[dict[str, str], dict[str, t.LandedTable], dict[str, str]]:
    """(relations, landed, feeds): each Fivetran table the files give, the file it came from, what it feeds."""
    con = f.con
    rel: dict[str, str] = {}
    landed: dict[str, t.LandedTable] = {}
    feeds: dict[str, str] = {}

    def add(key: str, name: str, sql: str, feeds_object: str | None = None) -> None:
        rel[key], landed[key] = sql, f.landed[name]
        feeds[key] = feeds_object or FILES_BY_NAME[name].feeds

    if f.has("users"):
        con.execute(f"create or replace view _hx_owner_lookup as {_owner_lookup(f)}")
    con.execute(f"create or replace view _hx_stage_lookup as {_stage_lookup(f)}")
    # pipelines -> deal_pipeline_stage and deal_pipeline
    p = "pipelines"
    add("deal_pipeline_stage", p, _renamed(f, p, {"pipeline_id": f"coalesce({f.value(p, 'pipeline_id', 'x')}, "
                                                 f"{f.value(p, 'pipeline_label', 'x')}, 'default')"}))
    add("deal_pipeline", p, (
        f"select pipeline_id, min(label) as label, min(display_order) as display_order, min({t._ROW}) as {t._ROW} "
        f"from (select coalesce({f.value(p, 'pipeline_id')}, {f.value(p, 'pipeline_label')}, 'default') as "
        f"pipeline_id, coalesce({f.value(p, 'pipeline_label')}, {f.value(p, 'pipeline_id')}) as label, "
        f"{f.value(p, 'pipeline_display_order')} as display_order, {t._ROW} from {f.view(p)}) group by 1"))
    # deals -> deal (stage and pipeline resolved to ids) and deal_company
    d = "deals"
    joins, stage = _resolved_stage(f.value(d, "deal_pipeline_stage_id", "x"), f.value(d, "deal_pipeline_id", "x"))
    pipeline = (f"coalesce((select min(stage_pipeline.pipeline_id) from ({rel['deal_pipeline_stage']}) as "
                f"stage_pipeline where stage_pipeline.stage_id = {stage}), {f.value(d, 'deal_pipeline_id', 'x')})")
    deal = _renamed(f, d, {"deal_pipeline_stage_id": stage, "deal_pipeline_id": pipeline})
    add("deal", d, deal.replace(f" from {f.view(d)} as x", f" from {f.view(d)} as x{joins}", 1))
    add("deal_company", d, _association(f, [d], "associated_company_ids", "deal_id", "company_id"))
    if f.has("deal_history"):
        h = "deal_history"
        value, name = f.value(h, "value", "x"), f"lower({f.value(h, 'name', 'x')})"
        hj, hstage = _resolved_stage(value, "deals_of.deal_pipeline_id")
        add("deal_property_history", h, (
            f"select {f.value(h, 'deal_id', 'x')} as deal_id, {name} as name, "
            f"case when {name} = 'dealstage' then {hstage} else {value} end as value, "
            f"{f.value(h, 'timestamp', 'x')} as timestamp, x.{t._ROW} from {f.view(h)} as x "
            f"left join ({rel['deal']}) as deals_of on deals_of.deal_id = {f.value(h, 'deal_id', 'x')}{hj}"))
    add("company", "companies", _renamed(f, "companies"))
    # users -> owner, owner_team, team
    u = "users"
    add("owner", u, _renamed(f, u, {"role_name": f.value(u, "role_id", "x")}))
    if f.has("teams"):
        tm = "teams"
        team_id = f"coalesce({f.value(tm, 'team_id', 'x')}, {f.value(tm, 'name', 'x')})"
        add("team", tm, (
            f"select {team_id} as id, {f.value(tm, 'name', 'x')} as name, "
            f"coalesce(parent.id, {f.value(tm, 'parent_team', 'x')}) as parent_team_id, x.{t._ROW} "
            f"from {f.view(tm)} as x left join (select coalesce({f.value(tm, 'team_id')}, {f.value(tm, 'name')}) "
            f"as id, {f.value(tm, 'name')} as name from {f.view(tm)}) as parent "
            f"on lower(parent.name) = lower({f.value(tm, 'parent_team', 'x')}) "
            f"or parent.id = {f.value(tm, 'parent_team', 'x')}"))
        team_of = (f"coalesce((select min(team.id) from ({rel['team']}) as team where lower(team.name) = "
                   f"lower(first_team) or team.id = first_team), first_team)")
    else:
        add("team", u, (f"select distinct first_team as id, first_team as name, null::varchar as parent_team_id, "
                        f"0 as {t._ROW} from (select trim(string_split({f.value(u, 'primary_team')}, ';')[1]) as "
                        f"first_team from {f.view(u)}) where first_team <> ''"))
        team_of = "first_team"
    add("owner_team", u, (
        f"select owner_id, {team_of} as team_id, 'true' as is_team_primary, {t._ROW} from (select "
        f"{f.value(u, 'owner_id')} as owner_id, trim(string_split({f.value(u, 'primary_team')}, ';')[1]) as "
        f"first_team, {t._ROW} from {f.view(u)}) where first_team <> ''"))
    if f.has("leads"):
        ld = "leads"
        add("lead", ld, _renamed(f, ld, {
            "converted_deal_id": f"nullif(trim(string_split({f.value(ld, 'associated_deal_ids', 'x')}, ';')[1]), '')",
            "converted_company_id": (f"nullif(trim(string_split({f.value(ld, 'associated_company_ids', 'x')}, ';')[1]),"
                                     " '')")}))
    for n, key in (("contacts", "contact"), ("products", "product"), ("line_items", "line_item")):
        if f.has(n):
            add(key, n, _renamed(f, n))
    if f.has("line_items"):
        add("line_item_deal", "line_items", _association(f, ["line_items"], "associated_deal_ids", "line_item_id",
                                                         "deal_id"))
    activities = [n for n in ENGAGEMENTS if f.has(n)]
    for n in activities:
        add(ENGAGEMENTS[n], n, _renamed(f, n))
    for column, (key, target) in _ACTIVITY_ASSOCIATIONS.items():
        having = [n for n in activities if column in f.headers[n]]
        if having:
            add(key, having[0], _association(f, having, column, "engagement_id", target), "Task")
    if f.has("user_assignments"):
        add("user_assignments", "user_assignments", _renamed(f, "user_assignments"))
    for n in OWN_FILES:
        if f.has(n):
            cols = ", ".join(f"cast({t._q(c)} as varchar) as {t._q(c)}" for c in _file_columns(f, n))
            add(n, n, f"select {cols}, {t._ROW} from {f.view(n)}")
    return rel, landed, feeds


def _file_columns(f: _Files, name: str) -> list[str]:
    return [d[0] for d in f.con.execute(f"select * from {f.view(name)} limit 0").description if d[0] != t._ROW]


class UnknownStageError(t.ConnectorTableError):
    """A deal (or a deal's history) in a stage pipelines.csv does not have: nothing says whether it is closed."""


def _check_stages(f: _Files, relations: dict[str, str]) -> None:
    """Every stage a deal or its history names is a stage of pipelines.csv (by id or label), else one line
    naming the file, the row, the column and the stage."""
    stages = f"select stage_id from ({relations['deal_pipeline_stage']})"
    checks = [("deals", "deal", "deal_pipeline_stage_id", "deal_pipeline_stage_id")]
    if "deal_property_history" in relations:
        checks.append(("deal_history", "deal_property_history", "value", "value"))
    for name, key, column, spec_column in checks:
        only = " and lower(name) = 'dealstage'" if key == "deal_property_history" else ""
        bad = f.con.execute(
            f"select {column}, {t._ROW}, count(*) over () from ({relations[key]}) where {column} is not null{only} "
            f"and {column} not in ({stages}) order by {t._ROW} limit 1").fetchall()
        if bad:
            stage, row, n = bad[0]
            label = FILES_BY_NAME[name].column(spec_column).label
            raise UnknownStageError(
                f"{f.connector.title} file {f.landed[name].filename} row {row}: {label} {stage!r} is not a stage "
                f"of {f.landed['pipelines'].filename} (by Stage ID or Stage, within the deal's Pipeline; "
                f"{n} row(s) in all); add the stage with its Is Closed and Closed Won flags there")


def translate_exports(
    con: duckdb.DuckDBPyConnection, connector: Connector, archive_dir: Path, landed: dict[str, t.LandedTable],
    options: dict[str, Any] | None = None,
) -> tuple[dict[str, t.Translation], list[ArchivedFile]]:
    """Write the contract's files from HubSpot's export files (landed under `landed/`) into `archive_dir`."""
    files = _Files(con, connector, archive_dir, landed)
    relations, by_key, feeds = _relations(files)
    _check_stages(files, relations)
    h = fh._Landed(con, connector, archive_dir, by_key, relations=relations, options=options)
    translations = {lt.name: t.Translation(landed_rows=t._count(con, "_hx_" + name)) for name, lt in landed.items()}
    archived = fh.write_contract(con, connector, archive_dir, h, translations, feeds)
    for name, lt in landed.items():
        if files.unknown.get(name):
            translations[lt.name].notes.append(
                f"columns not read (archived as landed): {', '.join(files.unknown[name])}")
    return translations, archived


HUBSPOT_EXPORTS = Connector(
    name="hubspot-exports",
    title="HubSpot export",
    tables={f.name: f.name for f in FILES},
    synced_column="",
    required_tables=tuple(f.name for f in FILES if f.required),
    build=translate_exports,
    docs="https://knowledge.hubspot.com/import-and-export/export-records",
)
