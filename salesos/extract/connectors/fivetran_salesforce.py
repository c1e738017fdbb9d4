"""Fivetran's Salesforce connector: snake_case tables named after the objects, history mode optional.

Shapes from fivetran/dbt_salesforce (src_salesforce.yml, src_salesforce_history.yml and its integration
seeds): every table carries `_fivetran_synced`; soft-deleted rows carry `_fivetran_deleted` (and Salesforce's
own `is_deleted`); a table synced in history mode holds one row per version of a record with
`_fivetran_start`, `_fivetran_end` and `_fivetran_active` (true on the current version only). Fivetran's
staging keeps `coalesce(_fivetran_active, true)` rows and drops `is_deleted` ones; salesos keeps the same
current rows and lets the models drop the deleted ones, so the raw tables still show them.
"""

from __future__ import annotations

from salesos.extract.connectors.spec import Connector

FIVETRAN_SALESFORCE = Connector(
    name="fivetran-salesforce",
    title="Fivetran Salesforce",
    tables={
        "opportunities": "opportunity",
        # Salesforce's OpportunityHistory object, or (with an id and _fivetran_start but no opportunity_id)
        # the history-mode copy of Opportunity, as the package's seeds name it
        "opportunity_histories": "opportunity_history",
        "opportunity_stages": "opportunity_stage",
        "accounts": "account",
        "users": "user",
        "user_roles": "user_role",
        "leads": "lead",
        "tasks": "task",
        "events": "event",
        "contacts": "contact",
        "products": "product_2",
        "opportunity_line_items": "opportunity_line_item",
        # sales operations' own files, landed beside the connector's tables
        "quotas": "quotas",
        "fx_rates": "fx_rates",
        "user_assignments": "user_assignments",
    },
    synced_column="_fivetran_synced",
    deleted_column="_fivetran_deleted",
    start_column="_fivetran_start",
    end_column="_fivetran_end",
    active_column="_fivetran_active",
    versions_of={"opportunity_histories": "opportunities"},
    docs="https://fivetran.com/docs/connectors/applications/salesforce",
)
