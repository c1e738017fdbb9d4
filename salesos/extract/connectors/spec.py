"""What a connector lands, declared once per connector: its table names and its bookkeeping columns."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Connector:
    """One connector's Salesforce schema, as far as salesos reads it.

    `tables` maps each contract table (`salesos.contract`) to the connector's default name for the table
    that holds it; a team whose tables have other names says so in the setting `connector_tables`
    (connector name -> landed name), as Fivetran's own dbt packages take `*_identifier` vars.
    """

    name: str
    title: str
    tables: dict[str, str]
    # when the connector last wrote the row: freshness falls back to it where a table has no LastModifiedDate
    synced_column: str
    # the connector's own mark of a record deleted in the CRM (besides Salesforce's IsDeleted)
    deleted_column: str | None = None
    # history mode: one row per version of a record, valid from start to end, the current one active
    start_column: str | None = None
    end_column: str | None = None
    active_column: str | None = None
    # contract tables that, landed in history mode, also give the version history of another contract table:
    # {history table: current table}; the opportunity versions give OpportunityHistory where none is landed
    versions_of: dict[str, str] = field(default_factory=dict)
    # a connector whose tables are not Salesforce-shaped (HubSpot): `tables` is keyed by its own table names,
    # `required_tables` are those keys that must be landed, and `build` writes the contract's files from them
    # (same signature as `translate.translate`) instead of the header-matching translation
    required_tables: tuple[str, ...] = ()
    build: Callable[..., Any] | None = None
    docs: str = ""

    def landed_name(self, table: str, overrides: dict[str, str] | None = None) -> str:
        """The name the contract table's connector table has where it landed (default or setting)."""
        default = self.tables[table]
        return (overrides or {}).get(default, default)
