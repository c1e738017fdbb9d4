"""Fivetran's HubSpot connector: deals, pipelines and stages, owners, companies and engagements.

Shapes from fivetran/dbt_hubspot_source (src_hubspot.yml) and the integration seeds of fivetran/dbt_hubspot.
HubSpot is not Salesforce-shaped, so its tables are not matched header by header: `translate_hubspot` builds
each contract file with SQL over the landed tables, and the export loader loads those files as any other.

- Opportunity from `deal`: the stage from `deal_pipeline_stage` (joined on `deal_pipeline_stage_id`), closed
  and won from the stage's own `is_closed` / `closed_won` flags (never from its label), the account from the
  deal's first `deal_company` association, the sync time from `_fivetran_synced`;
- OpportunityStage from `deal_pipeline_stage`: a label used in more than one pipeline is named
  `<pipeline label> / <stage label>` so that one name always means one set of flags; no ApiName (the
  stage id is not what a deal's StageName holds); SortOrder is the funnel position across pipelines
  (pipelines by their `display_order`, then each pipeline's stages by theirs);
- OpportunityHistory from `deal_stage` (one row per stage a deal entered, `value` the stage id) and
  `deal_property_history` (changes of `amount`, `closedate`, `dealstage`) for the landed deals, the values
  carried forward so each row holds what stood after the change; rows of deals not landed (deleted or
  merged away) are left out and counted; a deal with neither gets one row of its current stage;
- User from `owner` (Department: the owner's primary team from `owner_team` and `team`; HubSpot has no
  manager or role hierarchy, so ManagerId and UserRoleId stay empty), Account from `company`, Task from
  `engagement_call` / `engagement_email` / `engagement_task`, Event from `engagement_meeting` (deal from
  `engagement_deal`, owner from `property_hubspot_owner_id` or `engagement.owner_id`);
- `quotas`, `fx_rates` and `user_assignments` are sales operations' own files, landed beside the connector's tables;
  a `user_assignments` that names each past assignment's HubSpot team (`team`) gets its Division and Department
  from the team as an owner's primary team does (HubSpot keeps no assignment history of its own).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb

from salesos.contract import EXPORTS
from salesos.extract.connectors import translate as t
from salesos.extract.connectors.spec import Connector
from salesos.extract.landing import ArchivedFile

# landed table key -> its default name; the keys are HubSpot's table names (setting connector_tables renames)
TABLES = {
    "deal": "deal",
    "deal_pipeline": "deal_pipeline",
    "deal_pipeline_stage": "deal_pipeline_stage",
    "deal_stage": "deal_stage",
    "deal_property_history": "deal_property_history",
    "deal_company": "deal_company",
    "owner": "owner",
    "owner_team": "owner_team",
    "team": "team",
    "company": "company",
    "engagement": "engagement",
    "engagement_deal": "engagement_deal",
    "engagement_contact": "engagement_contact",
    "engagement_company": "engagement_company",
    "engagement_call": "engagement_call",
    "engagement_email": "engagement_email",
    "engagement_task": "engagement_task",
    "engagement_meeting": "engagement_meeting",
    "contact": "contact",
    "product": "product",
    "line_item": "line_item",
    "line_item_deal": "line_item_deal",
    "quotas": "quotas",
    "fx_rates": "fx_rates",
    "user_assignments": "user_assignments",
}
REQUIRED = ("deal", "deal_pipeline_stage", "owner", "company", "quotas")
# which contract object each landed table feeds (the docs' Sources table is checked against it)
FEEDS = {
    "deal": "Opportunity",
    "deal_pipeline": "OpportunityStage",
    "deal_pipeline_stage": "OpportunityStage",
    "deal_stage": "OpportunityHistory",
    "deal_property_history": "OpportunityHistory",
    "deal_company": "Opportunity",
    "owner": "User",
    "owner_team": "User",
    "team": "User",
    "company": "Account",
    "engagement": "Task",
    "engagement_deal": "Task",
    "engagement_contact": "Task",
    "engagement_company": "Task",
    "engagement_call": "Task",
    "engagement_email": "Task",
    "engagement_task": "Task",
    "engagement_meeting": "Event",
    "contact": "Contact",
    "product": "Product2",
    "line_item": "OpportunityLineItem",
    "line_item_deal": "OpportunityLineItem",
    "quotas": "quotas",
    "fx_rates": "fx_rates",
    "user_assignments": "user_assignments",
}
TASK_TABLES = {"engagement_call": "Call", "engagement_email": "Email", "engagement_task": "Task"}


class _Landed:
    """The landed tables as DuckDB views, with their columns, for building the contract's SQL."""

    def __init__(self, con: duckdb.DuckDBPyConnection, connector: Connector, archive_dir: Path,
                 landed: dict[str, t.LandedTable], relations: dict[str, str] | None = None,
                 options: dict[str, Any] | None = None) -> None:
        """`relations` (key -> a select with the landed row number as `t._ROW`) stand for tables in Fivetran's
        shape that another source's files were turned into (`hubspot_exports.py`); `landed[key]` is then the
        file each came from. `options`: the settings the translation reads (`team_regions`, `team_segments`)."""
        self.con, self.connector, self.landed = con, connector, landed
        self.options = options or {}
        self.cols: dict[str, t._Columns] = {}
        for key, lt in landed.items():
            view = self.view(key)
            if relations is not None and key in relations:
                con.execute(f"create or replace view {view} as {relations[key]}")
            else:
                con.execute(f"create or replace view {view} as select *, row_number() over () as {t._ROW} "
                            f"from {t._relation(archive_dir / t.LANDED_DIR / lt.filename)}")
            try:
                names = [d[0] for d in con.execute(f"select * from {view} limit 0").description]
            except duckdb.Error as exc:
                raise t.ConnectorTableError(f"{connector.title} table {lt.name} ({lt.filename}): cannot be read: "
                                            f"{' '.join(str(exc).split())[:200]}") from exc
            self.cols[key] = t._Columns([n for n in names if n != t._ROW])

    @staticmethod
    def view(key: str) -> str:
        return t._q("_hs_" + key)

    def has(self, key: str) -> bool:
        return key in self.landed

    def col(self, key: str, *names: str, required: str | None = None, alias: str = "") -> str:
        """The first of `names` the table has, as text (null if none); `required` names the error's field."""
        found = self.cols[key].find(*names)
        if found is None:
            if required is not None:
                lt = self.landed[key]
                raise t.ConnectorTableError(
                    f"{self.connector.title} table {lt.name} ({lt.filename}): required column {names[0]} "
                    f"({required}) is missing; it has {', '.join(self.cols[key].names)}")
            return "null::varchar"
        prefix = f"{alias}." if alias else ""
        return f"nullif(trim(cast({prefix}{t._q(found)} as varchar)), '')"

    def flag(self, key: str, *names: str, alias: str = "") -> str:
        """A boolean column as true/false text (null if absent or empty)."""
        value = self.col(key, *names, alias=alias)
        return f"case when lower({value}) in {t._TRUE} then 'true' when {value} is null then null else 'false' end"

    def deleted(self, key: str, alias: str = "") -> str:
        """True when HubSpot's `is_deleted` or Fivetran's `_fivetran_deleted` says so."""
        parts = [f"lower({self.col(key, c, alias=alias)}) in {t._TRUE}"
                 for c in ("is_deleted", "_fivetran_deleted") if self.cols[key].find(c)]
        return ("case when " + " or ".join(parts) + " then 'true' else 'false' end") if parts else "'false'"

    def provenance(self, key: str, alias: str = "") -> str:
        prefix = f"{alias}." if alias else ""
        return f"{t._s(self.landed[key].name)} as landed_table, {prefix}{t._ROW} as landed_row"


def _stages_sql(h: _Landed) -> str:
    """One row per pipeline stage: its id, its salesos name, flags, probability (0-100) and order."""
    s = "s"
    pipeline_label = pipeline_order = "null::varchar"
    join = ""
    if h.has("deal_pipeline"):
        join = (f" left join {h.view('deal_pipeline')} as p on "
                f"{h.col('deal_pipeline', 'pipeline_id', alias='p')} = "
                f"{h.col('deal_pipeline_stage', 'pipeline_id', alias=s)}")
        pipeline_label = h.col("deal_pipeline", "label", alias="p")
        pipeline_order = h.col("deal_pipeline", "display_order", alias="p")
    stage_id = h.col("deal_pipeline_stage", "stage_id", required="OpportunityStage.Id", alias=s)
    label = h.col("deal_pipeline_stage", "label", required="OpportunityStage.MasterLabel", alias=s)
    pipeline_id = h.col("deal_pipeline_stage", "pipeline_id", alias=s)
    return (
        f"select {stage_id} as stage_id, {label} as label, {pipeline_id} as pipeline_id, "
        f"coalesce({pipeline_label}, {pipeline_id}) as pipeline_label, "
        # as Fivetran's stg_hubspot__deal_pipeline_stage: coalesce(is_closed, closed_won); won only when closed
        f"coalesce({h.flag('deal_pipeline_stage', 'is_closed', alias=s)}, "
        f"{h.flag('deal_pipeline_stage', 'closed_won', alias=s)}, 'false') as is_closed, "
        f"case when coalesce({h.flag('deal_pipeline_stage', 'is_closed', alias=s)}, "
        f"{h.flag('deal_pipeline_stage', 'closed_won', alias=s)}, 'false') = 'true' "
        f"then coalesce({h.flag('deal_pipeline_stage', 'closed_won', alias=s)}, 'false') else 'false' end as is_won, "
        f"{_percent(h.col('deal_pipeline_stage', 'probability', alias=s))} as probability, "
        f"{h.col('deal_pipeline_stage', 'forecast_category', alias=s)} as forecast_category, "
        f"cast(row_number() over (order by try_cast({pipeline_order} as integer) nulls last, "
        f"{pipeline_id}, try_cast({h.col('deal_pipeline_stage', 'display_order', alias=s)} as integer) nulls last, "
        f"{s}.{t._ROW}) as varchar) as display_order, "
        f"case when {h.deleted('deal_pipeline_stage', alias=s)} = 'true' then 'false' "
        f"else coalesce({h.flag('deal_pipeline_stage', 'active', alias=s)}, 'true') end as active, "
        f"{h.provenance('deal_pipeline_stage', alias=s)} "
        f"from {h.view('deal_pipeline_stage')} as {s}{join}"
    )


def _named_stages(h: _Landed) -> str:
    """The stages with the name the contract's StageName holds (pipeline-qualified where a label repeats)."""
    return (
        f"with st as ({_stages_sql(h)}) select *, case when count(distinct pipeline_id) over (partition by label) > 1 "
        f"then pipeline_label || ' / ' || label else label end as stage_name from st"
    )


def _opportunity_stage_sql(h: _Landed) -> str:
    return (
        f"select stage_id as \"Id\", stage_name as \"MasterLabel\", is_closed as \"IsClosed\","
        f" is_won as \"IsWon\", probability as \"DefaultProbability\", display_order as \"SortOrder\", "
        f"active as \"IsActive\", forecast_category as \"ForecastCategoryName\", landed_table, landed_row "
        f"from ({_named_stages(h)}) order by landed_row"
    )


def _deal_account(h: _Landed) -> str:
    """deal id -> its company: the primary association (type 5) first, else the lowest company id."""
    if not h.has("deal_company"):
        return "select null::varchar as deal_id, null::varchar as company_id where false"
    deal = h.col("deal_company", "deal_id", required="Opportunity.AccountId")
    company = h.col("deal_company", "company_id", required="Opportunity.AccountId")
    type_id = h.col("deal_company", "type_id")
    return (f"select {deal} as deal_id, {company} as company_id from {h.view('deal_company')} "
            f"qualify row_number() over (partition by {deal} order by ({type_id} = '5') desc nulls last, "
            f"{company}) = 1")


def _opportunity_sql(h: _Landed) -> str:
    d = "d"

    def c(*names: str, required: str | None = None) -> str:
        return h.col("deal", *names, required=required, alias=d)

    deal_id = c("deal_id", "id", required="Opportunity.Id")
    stage_id = c("deal_pipeline_stage_id", "property_dealstage", required="Opportunity.StageName")
    probability = c("property_hs_deal_stage_probability")
    return (
        f"select {deal_id} as \"Id\", a.company_id as \"AccountId\", "
        f"{c('owner_id', 'property_hubspot_owner_id', required='Opportunity.OwnerId')} as \"OwnerId\", "
        # a stage id no pipeline stage has stays as it is, flags empty: the loader quarantines the deal (is_closed)
        f"{c('property_dealname')} as \"Name\", coalesce(st.stage_name, {stage_id}) as \"StageName\", "
        f"{c('property_amount')} as \"Amount\", "
        f"coalesce({_percent(probability)}, st.probability) as \"Probability\", "
        f"{c('property_hs_forecast_category')} as \"ForecastCategoryName\", "
        f"left({c('property_closedate')}, 10) as \"CloseDate\", {c('property_createdate')} as \"CreatedDate\", "
        f"st.is_closed as \"IsClosed\", st.is_won as \"IsWon\", {h.deleted('deal', alias=d)} as \"IsDeleted\", "
        f"{c('property_dealtype')} as \"Type\", {c('property_hs_analytics_source')} as \"LeadSource\", "
        f"{c('property_deal_currency_code')} as \"CurrencyIsoCode\", "
        f"{c('property_hs_lastmodifieddate')} as \"LastModifiedDate\", {c('_fivetran_synced')} as \"SyncedAt\", "
        f"{h.provenance('deal', alias=d)} "
        f"from {h.view('deal')} as {d} left join ({_named_stages(h)}) as st on st.stage_id = {stage_id} "
        f"left join ({_deal_account(h)}) as a on a.deal_id = {deal_id} order by landed_row"
    )


def _percent(value: str) -> str:
    """HubSpot's 0-1 probability as the contract's 0-100, as text (rounded: 0.1 * 100 is not 10 in floating point)."""
    return f"cast(round(try_cast({value} as double) * 100, 6) as varchar)"


def _deal_fields(h: _Landed) -> dict[str, str]:
    """The deal columns two builders share, as SQL over `deal as d`."""
    d = "d"
    return {
        "id": h.col("deal", "deal_id", "id", required="Opportunity.Id", alias=d),
        "stage_id": h.col("deal", "deal_pipeline_stage_id", "property_dealstage", required="Opportunity.StageName",
                          alias=d),
        "close_date": f"left({h.col('deal', 'property_closedate', alias=d)}, 10)",
        "created": h.col("deal", "property_createdate", alias=d),
        "amount": h.col("deal", "property_amount", alias=d),
        "probability": _percent(h.col("deal", "property_hs_deal_stage_probability", alias=d)),
        "forecast_category": h.col("deal", "property_hs_forecast_category", alias=d),
    }


def _closedate(value: str) -> str:
    """A close date as HubSpot's property history writes it (epoch milliseconds, or a date/time text)."""
    return (f"case when regexp_full_match({value}, '[0-9]{{10,}}') then "
            f"cast(cast(make_timestamp(cast({value} as bigint) * 1000) as date) as varchar) else left({value}, 10) end")


# deal properties whose history OpportunityHistory holds: HubSpot's property name -> the event column
HISTORY_PROPERTIES = {
    "dealstage": "stage_id",
    "amount": "amount",
    "closedate": "close_date",
    "hs_deal_stage_probability": "probability",
    "hs_forecast_category": "forecast_category",
}


def _history_sql(h: _Landed) -> str:
    """OpportunityHistory of the landed deals, as Salesforce's: one row per change of stage (`deal_stage`) or of
    amount, close date, probability or forecast category (`deal_property_history`, the HISTORY_PROPERTIES),
    each row with the values standing after the change (carried forward); rows before the deal's first known
    stage are left out. A deal with neither gets one row of its current stage (dated at its close date when
    closed, else its create date), so every deal is in the pipeline history as in Salesforce's."""
    f = _deal_fields(h)
    deals = f"(select {f['id']} from {h.view('deal')} as d)"
    tracked = list(HISTORY_PROPERTIES.values())
    events = []
    if h.has("deal_stage"):
        v = "v"
        deal = h.col("deal_stage", "deal_id", required="OpportunityHistory.OpportunityId", alias=v)
        value = h.col("deal_stage", "value", required="OpportunityHistory.StageName", alias=v)
        entered = h.col("deal_stage", "date_entered", "_fivetran_start", required="OpportunityHistory.CreatedDate",
                        alias=v)
        others = ", ".join(f"null::varchar as {c}" for c in tracked[1:])
        events.append(
            f"select {deal} as deal_id, {entered} as changed_at, {value} as stage_id, {others}, "
            f"{h.deleted('deal_stage', alias=v)} as is_deleted, "
            f"{h.provenance('deal_stage', alias=v)} from {h.view('deal_stage')} as {v} where {deal} in {deals}"
        )
    if h.has("deal_property_history"):
        p = "p"
        deal = h.col("deal_property_history", "deal_id", required="OpportunityHistory.OpportunityId", alias=p)
        name = f"lower({h.col('deal_property_history', 'name', required='OpportunityHistory.StageName', alias=p)})"
        value = h.col("deal_property_history", "value", required="OpportunityHistory.StageName", alias=p)
        changed = h.col("deal_property_history", "timestamp", "_fivetran_start",
                        required="OpportunityHistory.CreatedDate", alias=p)
        values = {"close_date": _closedate(value)}
        columns = ", ".join(f"case when {name} = {t._s(prop)} then {values.get(col, value)} end as {col}"
                            for prop, col in HISTORY_PROPERTIES.items())
        names = ", ".join(t._s(prop) for prop in HISTORY_PROPERTIES)
        events.append(
            f"select {deal} as deal_id, {changed} as changed_at, {columns}, 'false' as is_deleted, "
            f"{h.provenance('deal_property_history', alias=p)} from {h.view('deal_property_history')} "
            f"as {p} where {name} in ({names}) and {deal} in {deals}"
        )
    parts = []
    if events:
        window = ("over (partition by deal_id order by try_cast(changed_at as timestamp), changed_at, landed_table, "
                  "landed_row rows between unbounded preceding and current row)")
        carried = ", ".join(f"last_value({c} ignore nulls) {window} as {c}" for c in tracked)
        filled = (
            f"select deal_id, changed_at, is_deleted, landed_table, landed_row, {carried} "
            f"from ({' union all '.join(events)})"
        )
        # the last event of each deal and instant, then only those that change a tracked value
        last = (f"select * from ({filled}) qualify row_number() over (partition by deal_id, changed_at "
                f"order by landed_table desc, landed_row desc) = 1")
        key = "concat_ws('|', " + ", ".join(f"coalesce({c}, '\\N')" for c in tracked) + ")"
        changes = (f"select *, {key} as _key, lag({key}) over (partition by deal_id order by "
                   f"try_cast(changed_at as timestamp), changed_at) as _prev from ({last}) where stage_id is not null")
        parts.append(
            f"select c.deal_id || '@' || c.changed_at as \"Id\", c.deal_id as \"OpportunityId\", "
            f"coalesce(st.stage_name, c.stage_id) as \"StageName\", c.amount as \"Amount\", "
            f"{_percent('c.probability')} as \"Probability\", c.close_date as \"CloseDate\", "
            f"c.forecast_category as \"ForecastCategory\", c.changed_at as \"CreatedDate\", "
            f"c.is_deleted as \"IsDeleted\", st.is_closed as \"IsClosed\", st.is_won as \"IsWon\", "
            f"c.landed_table, c.landed_row "
            f"from ({changes}) as c left join ({_named_stages(h)}) as st on st.stage_id = c.stage_id "
            f"where c._prev is null or c._prev <> c._key"
        )
    with_events = " union ".join(f"select deal_id from ({e})" for e in events)
    staged = f" and {f['id']} not in ({with_events})" if events else ""
    parts.append(
        f"select {f['id']} || '@current' as \"Id\", {f['id']} as \"OpportunityId\", st.stage_name as \"StageName\", "
        f"{f['amount']} as \"Amount\", {f['probability']} as \"Probability\", {f['close_date']} as \"CloseDate\", "
        f"{f['forecast_category']} as \"ForecastCategory\", "
        f"case when st.is_closed = 'true' then coalesce({f['close_date']}, {f['created']}) else {f['created']} end "
        f"as \"CreatedDate\", {h.deleted('deal', alias='d')} as \"IsDeleted\", st.is_closed as \"IsClosed\", "
        f"st.is_won as \"IsWon\", {h.provenance('deal', alias='d')} from {h.view('deal')} as d "
        f"join ({_named_stages(h)}) as st on st.stage_id = {f['stage_id']} where true{staged}"
    )
    return " union all ".join(parts) + " order by landed_table, landed_row"


def _mapped(h: _Landed, setting: str, teams: str) -> str | None:
    """A select of (team_id, value): each team's value in the setting `setting` (team name -> value), its own or
    else its nearest parent team's (`parent_team_id`); None when the setting maps nothing."""
    mapping: dict[str, str] = h.options.get(setting) or {}
    if not mapping:
        return None
    values = ", ".join(f"({t._s(k)}, {t._s(v)})" for k, v in sorted(mapping.items()))
    return (
        f"with recursive m(name, value) as (values {values}), "
        f"up(team_id, ancestor_id, depth) as (select team_id, team_id, 0 from ({teams}) "
        f"union all select up.team_id, parent.parent_id, up.depth + 1 from up join ({teams}) as parent "
        f"on parent.team_id = up.ancestor_id where parent.parent_id is not null and up.depth < 20) "
        f"select up.team_id, nullif(m.value, '') as value from up join ({teams}) as tm on tm.team_id = up.ancestor_id "
        f"join m on m.name = tm.team_name qualify row_number() over (partition by up.team_id order by up.depth) = 1"
    )


def _teams(h: _Landed) -> str:
    """A select of (team_id, team_name, parent_id) of the landed `team` table."""
    return (f"select {h.col('team', 'id', 'team_id', required='User.Department')} as team_id, "
            f"{h.col('team', 'name', required='User.Department')} as team_name, "
            f"{h.col('team', 'parent_team_id')} as parent_id from {h.view('team')}")


def _placed(h: _Landed, teams: str, alias: str) -> tuple[str, str, str]:
    """(joins, Division, Department) of the team a joined relation `alias` holds (`team_id`, `team_name`):
    Department and Division from the settings team_segments and team_regions (the team's own entry, else its
    nearest parent's); without team_segments, Department is the team's name. One rule for a user's primary
    team and for the team of a past assignment (user_assignments)."""
    joins, department, division = "", f"{alias}.team_name", "null::varchar"
    segments, regions = _mapped(h, "team_segments", teams), _mapped(h, "team_regions", teams)
    if segments is not None:
        joins += f" left join ({segments}) as {alias}_segments on {alias}_segments.team_id = {alias}.team_id"
        department = f"{alias}_segments.value"
    if regions is not None:
        joins += f" left join ({regions}) as {alias}_regions on {alias}_regions.team_id = {alias}.team_id"
        division = f"{alias}_regions.value"
    return joins, division, department


def _user_sql(h: _Landed) -> str:
    o = "o"
    first, last = h.col("owner", "first_name", alias=o), h.col("owner", "last_name", alias=o)
    email = h.col("owner", "email", alias=o)
    active = h.flag("owner", "is_active", alias=o)
    department, division, joins = "null::varchar", "null::varchar", ""
    if h.has("owner_team") and h.has("team"):
        # the owner's primary team (else its lowest team id), placed by _placed
        ot, tm = "ot", "tm"
        team_id = h.col("owner_team", "team_id", required="User.Department", alias=ot)
        teams = _teams(h)
        pick = (f"select {h.col('owner_team', 'owner_id', required='User.Department', alias=ot)} as owner_id, "
                f"{team_id} as team_id, {tm}.team_name "
                f"from {h.view('owner_team')} as {ot} join ({teams}) as {tm} on {tm}.team_id = {team_id} "
                f"qualify row_number() over (partition by owner_id order by "
                f"({h.flag('owner_team', 'is_team_primary', alias=ot)} = 'true') desc nulls last, {team_id}) = 1")
        joins = f" left join ({pick}) as teams on teams.owner_id = {h.col('owner', 'owner_id', alias=o)}"
        placed, division, department = _placed(h, teams, "teams")
        joins += placed
    return (
        f"select {h.col('owner', 'owner_id', required='User.Id', alias=o)} as \"Id\", "
        f"coalesce(nullif(trim(concat_ws(' ', {first}, {last})), ''), {email}, "
        f"{h.col('owner', 'owner_id', alias=o)}) as \"Name\", {email} as \"Email\", "
        f"{h.col('owner', 'manager_id', alias=o)} as \"ManagerId\", "
        f"{h.col('owner', 'role_id', alias=o)} as \"UserRoleId\", {division} as \"Division\", "
        f"case when {h.deleted('owner', alias=o)} = 'true' then 'false' else coalesce({active}, 'true') end "
        f"as \"IsActive\", "
        f"{h.col('owner', 'created_at', alias=o)} as \"CreatedDate\", {department} as \"Department\", "
        f"{h.provenance('owner', alias=o)} from {h.view('owner')} as {o}{joins} order by landed_row"
    )


# the columns of user_assignments that name a HubSpot team (by id or name), the first one present is read
ASSIGNMENT_TEAM_COLUMNS = ("team", "team_id", "team_name", "primary_team")


def _user_assignment_sql(h: _Landed) -> str | None:
    """user_assignments: sales operations' file of each owner's past assignments (HubSpot keeps no history).

    Keyed by the HubSpot owner id; `manager_id` an owner id, `user_role_id` the role as the owners carry it.
    Where the file names a HubSpot team (`team`, by id or name) rather than a Division and Department, the
    team is placed as an owner's primary team is (`_placed`: the settings team_regions and team_segments), so a
    past assignment and tonight's owner row agree on the same team. Without a team column the file is read as
    the contract's, every column as landed."""
    key, a = "user_assignments", "a"
    if not h.has(key):
        return None
    if h.cols[key].find(*ASSIGNMENT_TEAM_COLUMNS) is None:
        return _own_file_sql(h, key)
    team = h.col(key, *ASSIGNMENT_TEAM_COLUMNS, alias=a)
    if h.has("team"):
        teams = _teams(h)
    else:  # no team tree: a team is known by the name the file gives
        plain = h.col(key, *ASSIGNMENT_TEAM_COLUMNS)
        teams = (f"select distinct {plain} as team_id, {plain} as team_name, null::varchar as parent_id "
                 f"from {h.view(key)} where {plain} is not null")
    # a team by its id, else by its name (case ignored); a name two teams share is not resolved
    refs = (f"select ref, min(team_id) as team_id from (select lower(team_id) as ref, team_id from ({teams}) "
            f"union all select lower(team_name), team_id from ({teams})) where ref is not null group by ref "
            f"having count(distinct team_id) = 1")
    joins = (f" left join ({refs}) as team_ref on team_ref.ref = lower({team})"
             f" left join ({teams}) as assigned_team on assigned_team.team_id = team_ref.team_id")
    placed, division, department = _placed(h, teams, "assigned_team")
    if department == "assigned_team.team_name":  # no team_segments: the name (as written when not in the tree)
        department = f"coalesce(assigned_team.team_name, {team})"
    cols = [f"{h.col(key, 'user_id', required='user_assignments.user_id', alias=a)} as user_id",
            f"{h.col(key, 'valid_from', required='user_assignments.valid_from', alias=a)} as valid_from",
            f"{h.col(key, 'valid_to', alias=a)} as valid_to",
            f"{h.col(key, 'manager_id', alias=a)} as manager_id",
            f"{h.col(key, 'user_role_id', 'role_id', 'role_name', alias=a)} as user_role_id",
            f"coalesce({h.col(key, 'division', alias=a)}, {division}) as division",
            f"coalesce({h.col(key, 'department', alias=a)}, {department}) as department"]
    return (f"select {', '.join(cols)}, {h.provenance(key, alias=a)} from {h.view(key)} as {a}{joins}{placed} "
            "order by landed_row")


def _user_role_sql(h: _Landed) -> str | None:
    """UserRole from the owners' roles (`role_id`, `role_name`), where the landed owners carry them."""
    if not h.has("owner") or h.cols["owner"].find("role_id") is None:
        return None
    role, name = h.col("owner", "role_id"), h.col("owner", "role_name", "role_id")
    return (f"select {role} as \"Id\", min({name}) as \"Name\", {t._s(h.landed['owner'].name)} as landed_table, "
            f"min({t._ROW}) as landed_row from {h.view('owner')} where {role} is not null group by {role} "
            "order by landed_row")


def _account_sql(h: _Landed) -> str:
    def c(*names: str, required: str | None = None) -> str:
        return h.col("company", *names, required=required)

    return (
        f"select {c('id', 'company_id', required='Account.Id')} as \"Id\", "
        f"coalesce({c('property_name')}, {c('property_domain')}, {c('id', 'company_id')}) as \"Name\", "
        f"{c('property_industry')} as \"Industry\", {c('property_numberofemployees')} as \"NumberOfEmployees\", "
        f"{c('property_annualrevenue')} as \"AnnualRevenue\", {c('property_country')} as \"BillingCountry\", "
        f"{c('property_hs_parent_company_id')} as \"ParentId\", "
        f"{c('property_hubspot_owner_id')} as \"OwnerId\", {c('property_type')} as \"Type\", "
        f"{h.deleted('company')} as \"IsDeleted\", {h.provenance('company')} "
        f"from {h.view('company')} order by landed_row"
    )


def _engagement_joins(h: _Landed, key: str, alias: str) -> tuple[str, str, str, str]:
    """(joins, owner, deal, contact) of an engagement_* table: the engagement's owner, deal and contact."""
    eid = h.col(key, "engagement_id", "id", required=f"{FEEDS[key]}.Id", alias=alias)
    joins, owner, deal, contact = "", h.col(key, "property_hubspot_owner_id", "owner_id", alias=alias), "null", "null"
    if h.has("engagement"):
        joins += (f" left join {h.view('engagement')} as e on {h.col('engagement', 'id', 'engagement_id', alias='e')}"
                  f" = {eid}")
        owner = f"coalesce({owner}, {h.col('engagement', 'owner_id', alias='e')})"
    joins, deal, contact = _associations(h, key, alias, joins)
    return joins, owner, deal, contact


def _engagement_time(h: _Landed, key: str, alias: str, *names: str, engagement: str) -> str:
    """An engagement_* table's own time column, else the engagement's (`timestamp`, `created_at`)."""
    own = h.col(key, *names, alias=alias)
    if h.has("engagement"):
        return f"coalesce({own}, {h.col('engagement', engagement, alias='e')})"
    return own


def _associations(h: _Landed, key: str, alias: str, joins: str) -> tuple[str, str, str]:
    """(joins, what, who): an engagement's lowest associated deal, else company (WhatId), and its lowest
    contact, else lead (WhoId), as Salesforce's Task and Event point at one record of each kind."""
    eid = h.col(key, "engagement_id", "id", alias=alias)
    what: list[str] = []
    who: list[str] = []
    for assoc, target, into in (("engagement_deal", "deal_id", what), ("engagement_company", "company_id", what),
                                ("engagement_contact", "contact_id", who), ("engagement_lead", "lead_id", who)):
        if not h.has(assoc):
            continue
        first = (f"select {h.col(assoc, 'engagement_id')} as engagement_id, min({h.col(assoc, target)}) as target "
                 f"from {h.view(assoc)} group by 1")
        joins += f" left join ({first}) as {assoc} on {assoc}.engagement_id = {eid}"
        into.append(f"{assoc}.target")

    def first_of(values: list[str]) -> str:
        return f"coalesce({', '.join(values)})" if len(values) > 1 else (values[0] if values else "null")

    return joins, first_of(what), first_of(who)


def _task_sql(h: _Landed) -> str | None:
    parts = []
    for key, subtype in TASK_TABLES.items():
        if not h.has(key):
            continue
        x = "x"
        joins, owner, deal, contact = _engagement_joins(h, key, x)
        timestamp = _engagement_time(h, key, x, "property_hs_timestamp", "timestamp", engagement="timestamp")
        created = _engagement_time(h, key, x, "property_hs_createdate", "created_at", engagement="created_at")
        parts.append(
            f"select {h.col(key, 'engagement_id', 'id', alias=x)} as \"Id\", {owner} as \"OwnerId\", "
            f"{contact} as \"WhoId\", {deal} as \"WhatId\", left({timestamp}, 10) as \"ActivityDate\", "
            f"{t._s(subtype)} as \"TaskSubtype\", {h.col(key, 'property_hs_task_status', alias=x)} as \"Status\", "
            f"coalesce({created}, {timestamp}) as \"CreatedDate\", "
            f"{h.deleted(key, alias=x)} as \"IsDeleted\", {h.provenance(key, alias=x)} "
            f"from {h.view(key)} as {x}{joins}"
        )
    return " union all ".join(parts) + " order by landed_table, landed_row" if parts else None


def _event_sql(h: _Landed) -> str | None:
    key, x = "engagement_meeting", "x"
    if not h.has(key):
        return None
    joins, owner, deal, contact = _engagement_joins(h, key, x)
    start = _engagement_time(h, key, x, "property_hs_meeting_start_time", "start_time", "property_hs_timestamp",
                             engagement="timestamp")
    end = h.col(key, "property_hs_meeting_end_time", "end_time", alias=x)
    return (
        f"select {h.col(key, 'engagement_id', 'id', alias=x)} as \"Id\", {owner} as \"OwnerId\", "
        f"{contact} as \"WhoId\", {deal} as \"WhatId\", {start} as \"StartDateTime\", {end} as \"EndDateTime\", "
        f"cast(date_diff('minute', try_cast({start} as timestamp), try_cast({end} as timestamp)) as varchar) "
        f"as \"DurationInMinutes\", "
        f"coalesce({h.col(key, 'property_hs_activity_type', alias=x)}, 'Meeting') as \"Type\", "
        f"{h.col(key, 'property_hs_meeting_title', 'title', alias=x)} "
        f"as \"Subject\", {h.deleted(key, alias=x)} as \"IsDeleted\", {h.provenance(key, alias=x)} "
        f"from {h.view(key)} as {x}{joins} order by landed_row"
    )


def _lead_sql(h: _Landed) -> str | None:
    """Lead from HubSpot's leads (the Leads object of Sales Hub), where they are landed: converted when the lead
    is associated with a deal."""
    key, x = "lead", "x"
    if not h.has(key):
        return None

    def c(*names: str, required: str | None = None) -> str:
        return h.col(key, *names, required=required, alias=x)

    deal = c("converted_deal_id")
    return (
        f"select {c('lead_id', 'id', required='Lead.Id')} as \"Id\", "
        f"{c('property_hubspot_owner_id', 'owner_id', required='Lead.OwnerId')} as \"OwnerId\", "
        f"{c('property_createdate', required='Lead.CreatedDate')} as \"CreatedDate\", "
        f"{c('property_hs_lead_status')} as \"Status\", {c('property_hs_lead_source')} as \"LeadSource\", "
        f"case when {deal} is not null then 'true' else coalesce({h.flag(key, 'property_hs_converted', alias=x)}, "
        f"'false') end as \"IsConverted\", left({c('property_hs_converted_date')}, 10) as \"ConvertedDate\", "
        f"{deal} as \"ConvertedOpportunityId\", {c('converted_company_id')} as \"ConvertedAccountId\", "
        f"{h.deleted(key, alias=x)} as \"IsDeleted\", {h.provenance(key, alias=x)} "
        f"from {h.view(key)} as {x} order by landed_row"
    )


def _contact_sql(h: _Landed) -> str | None:
    """Contact from HubSpot's contacts: the account is the contact's primary company."""
    key, x = "contact", "x"
    if not h.has(key):
        return None

    def c(*names: str, required: str | None = None) -> str:
        return h.col(key, *names, required=required, alias=x)

    first, last, email = c("property_firstname"), c("property_lastname"), c("property_email")
    return (
        f"select {c('id', 'contact_id', required='Contact.Id')} as \"Id\", "
        f"{c('property_associatedcompanyid')} as \"AccountId\", {c('property_hubspot_owner_id')} as \"OwnerId\", "
        # HubSpot needs no last name; the contract does: the email, else the id, stands in
        f"{first} as \"FirstName\", coalesce({last}, {email}, {c('id', 'contact_id')}) as \"LastName\", "
        f"{email} as \"Email\", {c('property_jobtitle')} as \"Title\", {c('property_createdate')} as \"CreatedDate\", "
        f"{h.deleted(key, alias=x)} as \"IsDeleted\", {h.provenance(key, alias=x)} "
        f"from {h.view(key)} as {x} order by landed_row"
    )


def _product_sql(h: _Landed) -> str | None:
    key, x = "product", "x"
    if not h.has(key):
        return None

    def c(*names: str, required: str | None = None) -> str:
        return h.col(key, *names, required=required, alias=x)

    return (
        f"select {c('id', 'product_id', required='Product2.Id')} as \"Id\", "
        f"coalesce({c('property_name')}, {c('id', 'product_id')}) as \"Name\", {c('property_hs_sku')} "
        f"as \"ProductCode\", {c('property_product_family', 'property_hs_product_type')} as \"Family\", "
        f"{h.flag(key, 'property_active', alias=x)} as \"IsActive\", {h.deleted(key, alias=x)} as \"IsDeleted\", "
        f"{h.provenance(key, alias=x)} from {h.view(key)} as {x} order by landed_row"
    )


def _line_item_sql(h: _Landed) -> str | None:
    """OpportunityLineItem from HubSpot's line items: the deal from `line_item_deal` (else the line's own
    `deal_id`), the product from `property_hs_product_id` (else `product_id`); a line on no deal is left out."""
    key, x = "line_item", "x"
    if not h.has(key):
        return None

    def c(*names: str, required: str | None = None) -> str:
        return h.col(key, *names, required=required, alias=x)

    line_id = c("id", "line_item_id", required="OpportunityLineItem.Id")
    deal, joins = c("deal_id", "property_deal_id"), ""
    if h.has("line_item_deal"):
        first = (f"select {h.col('line_item_deal', 'line_item_id')} as line_item_id, "
                 f"min({h.col('line_item_deal', 'deal_id')}) as deal_id from {h.view('line_item_deal')} group by 1")
        joins, deal = f" left join ({first}) as line_deal on line_deal.line_item_id = {line_id}", \
            f"coalesce(line_deal.deal_id, {deal})"
    return (
        f"select {line_id} as \"Id\", {deal} as \"OpportunityId\", "
        f"{c('property_hs_product_id', 'product_id', required='OpportunityLineItem.Product2Id')} as \"Product2Id\", "
        f"{c('property_quantity')} as \"Quantity\", {c('property_price')} as \"UnitPrice\", "
        f"{c('property_amount')} as \"TotalPrice\", {c('property_createdate')} as \"CreatedDate\", "
        f"{h.deleted(key, alias=x)} as \"IsDeleted\", {h.provenance(key, alias=x)} "
        f"from {h.view(key)} as {x}{joins} where {deal} is not null order by landed_row"
    )


def _own_file_sql(h: _Landed, key: str) -> str | None:
    """quotas, fx_rates and user_assignments: sales operations' own files, every column as landed."""
    if not h.has(key):
        return None
    cols = ", ".join(f"cast({t._q(c)} as varchar) as {t._q(c)}" for c in h.cols[key].names)
    return f"select {cols}, {h.provenance(key)} from {h.view(key)} order by landed_row"


BUILDERS: dict[str, Callable[[_Landed], str | None]] = {
    "opportunities": _opportunity_sql,
    "opportunity_histories": _history_sql,
    "opportunity_stages": _opportunity_stage_sql,
    "accounts": _account_sql,
    "users": _user_sql,
    "user_roles": _user_role_sql,
    "leads": _lead_sql,
    "contacts": _contact_sql,
    "products": _product_sql,
    "opportunity_line_items": _line_item_sql,
    "tasks": _task_sql,
    "events": _event_sql,
    "quotas": lambda h: _own_file_sql(h, "quotas"),
    "fx_rates": lambda h: _own_file_sql(h, "fx_rates"),
    "user_assignments": _user_assignment_sql,
}


def translate_hubspot(
    con: duckdb.DuckDBPyConnection, connector: Connector, archive_dir: Path, landed: dict[str, t.LandedTable],
    options: dict[str, Any] | None = None,
) -> tuple[dict[str, t.Translation], list[ArchivedFile]]:
    """Write the contract's files from HubSpot's landed tables into `archive_dir` (landed files under `landed/`)."""
    h = _Landed(con, connector, archive_dir, landed, options=options)
    translations = {lt.name: t.Translation(landed_rows=t._count(con, "_hs_" + key)) for key, lt in landed.items()}
    archived = write_contract(con, connector, archive_dir, h, translations, FEEDS)
    for key in ("deal_stage", "deal_property_history"):
        if key in landed:
            info = translations[landed[key].name]
            left_out = info.landed_rows - info.history_rows
            if left_out:
                info.notes.append(f"{left_out} row(s) left out: of deals not in {landed['deal'].name}, "
                                  "before the deal's first stage, of other properties, or changing nothing")
    deal_info = translations[landed["deal"].name]
    if deal_info.history_rows:
        deal_info.notes.append(f"{deal_info.history_rows} deal(s) without a deal_stage row: OpportunityHistory "
                               "holds their current stage (from the close date when closed, else the create date)")
    return translations, archived


def write_contract(con: duckdb.DuckDBPyConnection, connector: Connector, archive_dir: Path, h: _Landed,
                   translations: dict[str, t.Translation], feeds: dict[str, str]) -> list[ArchivedFile]:
    """Write each contract file the BUILDERS give into `archive_dir`, counting rows per landed table
    (`translations`, by landed name; `feeds`: landed key -> the contract object it feeds)."""
    archived: list[ArchivedFile] = []
    for export in EXPORTS:
        build = BUILDERS.get(export.table)
        sql = build(h) if build is not None else None
        if sql is None:
            continue
        dest = archive_dir / export.filename
        con.execute(f"copy ({sql}) to {t._s(str(dest))} (header, delimiter ',', quote '\"', escape '\"')")
        data = dest.read_bytes()
        counted = con.execute(f"select landed_table, count(*) from ({sql}) group by 1").fetchall()
        for name, n in counted:
            info = translations[name]
            if export.table == "opportunity_histories":
                info.history_rows += n
            else:
                info.written_rows += n
        names = {name for name, _ in counted}
        sources = sorted({lt.filename for key, lt in h.landed.items()
                          if feeds[key] == export.object_name or lt.name in names})
        archived.append(ArchivedFile(export.filename, export.table,
                                     f"{', '.join(f'{t.LANDED_DIR}/{s}' for s in sources)} ({connector.name})",
                                     hashlib.sha256(data).hexdigest(), len(data)))
    for key, lt in h.landed.items():
        info = translations[lt.name]
        if not (info.written_rows or info.history_rows):
            info.joined_into = feeds[key]
    return archived


FIVETRAN_HUBSPOT = Connector(
    name="fivetran-hubspot",
    title="Fivetran HubSpot",
    tables=TABLES,
    synced_column="_fivetran_synced",
    deleted_column="_fivetran_deleted",
    required_tables=REQUIRED,
    build=translate_hubspot,
    docs="https://fivetran.com/docs/connectors/applications/hubspot",
)
