"""Connector-landed CRM tables as a source: the tables Fivetran or Airbyte land, turned into the export contract.

`salesos run --source` (DAG param `source`, setting `source`) says what the landing location holds:
`exports` (a folder of Salesforce-shaped export files, `salesos.extract.landing`) or one of `SOURCES`,
a connector's own tables in their own names and columns, as CSV or Parquet files in a folder or as the
tables of a schema in a DuckDB file. Each connector is a `Connector` spec (`fivetran_salesforce.py`,
`airbyte_salesforce.py`); `translate.py` archives what it landed untouched and writes the contract's
files from it, which the export loader then loads with all its guarantees.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from salesos.extract.connectors.airbyte_salesforce import AIRBYTE_SALESFORCE
from salesos.extract.connectors.fivetran_hubspot import FIVETRAN_HUBSPOT
from salesos.extract.connectors.fivetran_salesforce import FIVETRAN_SALESFORCE
from salesos.extract.connectors.hubspot_exports import HUBSPOT_EXPORTS
from salesos.extract.connectors.spec import Connector

if TYPE_CHECKING:
    from salesos.extract.landing import ArchivedFile

EXPORTS_SOURCE = "exports"
CONNECTORS: dict[str, Connector] = {
    c.name: c for c in (FIVETRAN_SALESFORCE, AIRBYTE_SALESFORCE, FIVETRAN_HUBSPOT, HUBSPOT_EXPORTS)
}
# Every value `--source` takes, the export folder first (the default).
SOURCES: tuple[str, ...] = (EXPORTS_SOURCE, *CONNECTORS)


class UnknownSourceError(ValueError):
    """A `source` that is neither `exports` nor a known connector."""


def connector_for(source: str) -> Connector | None:
    """The connector of a source name; None for the export folder. Raises UnknownSourceError otherwise."""
    if source == EXPORTS_SOURCE:
        return None
    try:
        return CONNECTORS[source]
    except KeyError:
        raise UnknownSourceError(f"unknown source {source!r}; choose one of {', '.join(SOURCES)}") from None


def archive_source(
    source: str,
    location: str | Path,
    archive_dir: Path,
    connector_tables: dict[str, str] | None = None,
    connector_schema: str | None = None,
    options: dict[str, Any] | None = None,
) -> list[ArchivedFile]:
    """Archive what `location` holds for this source; returns the contract files the loader reads.

    exports: the export files, byte for byte (`salesos.extract.landing.archive_exports`); a connector:
    its landed tables untouched under `landed/`, and the contract files translated from them
    (`connector_tables`, `connector_schema`: the settings of the same names; `options`: the other settings a
    connector's translation reads, `team_regions` and `team_segments`).
    """
    from salesos.extract.connectors.translate import archive_connector
    from salesos.extract.landing import archive_exports

    connector = connector_for(source)
    if connector is None:
        return archive_exports(location, archive_dir)
    return archive_connector(connector, location, archive_dir, connector_tables or {}, connector_schema, options)
