"""Airbyte's Salesforce source: one table per stream, named after the object, columns under their API names.

Airbyte's records keep Salesforce's field names (`StageName`, `IsDeleted`; the loader matches them as it
matches an export's headers) and add `_airbyte_raw_id`, `_airbyte_extracted_at` and `_airbyte_meta`. It
has no history mode: with "incremental | append + deduped" the final table holds the current record, and
OpportunityHistory is its own stream. Deleted records arrive with `IsDeleted` true (queryAll).
"""

from __future__ import annotations

from salesos.extract.connectors.spec import Connector

AIRBYTE_SALESFORCE = Connector(
    name="airbyte-salesforce",
    title="Airbyte Salesforce",
    tables={
        "opportunities": "Opportunity",
        "opportunity_histories": "OpportunityHistory",
        "opportunity_stages": "OpportunityStage",
        "accounts": "Account",
        "users": "User",
        "user_roles": "UserRole",
        "leads": "Lead",
        "tasks": "Task",
        "events": "Event",
        "contacts": "Contact",
        "products": "Product2",
        "opportunity_line_items": "OpportunityLineItem",
        "quotas": "quotas",
        "fx_rates": "fx_rates",
        "user_assignments": "user_assignments",
    },
    synced_column="_airbyte_extracted_at",
    docs="https://docs.airbyte.com/integrations/sources/salesforce",
)
